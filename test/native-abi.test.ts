/**
 * A native module compiled for another Node.js ABI: a real .node file whose registration claims
 * another NODE_MODULE_VERSION (compiled here with cc), refused by this Node's dlopen exactly as a
 * better-sqlite3 or nftables addon built for Node 22 is refused by Node 20. Full lane: it runs cc.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { abiMismatch, sqliteAbiError } from '../src/common/native-abi.js';
import { tryLoadAddon } from '../src/firewall/nft-addon.js';
import { exitCodeOf } from '../src/cli/exit.js';
import { repoPath } from './helpers/fixtures.js';

const RUNNING = Number(process.versions.modules);
const OTHER = RUNNING === 127 ? 115 : 127;
const OTHER_NODE = OTHER === 127 ? 22 : 20;

/** node_module as node.h lays it out; registered from a constructor at dlopen, like NODE_MODULE() does */
const SOURCE = `struct node_module { int nm_version; unsigned int nm_flags; void *nm_dso_handle; const char *nm_filename;
  void *nm_register_func; void *nm_context_register_func; const char *nm_modname; void *nm_priv; struct node_module *nm_link; };
extern void node_module_register(void *mod);
static void reg(void) {}
static struct node_module m = { ${OTHER}, 0, 0, "other-abi.c", (void *)reg, 0, "other_abi", 0, 0 };
__attribute__((constructor)) static void init(void) { node_module_register(&m); }
`;

function buildOtherAbiModule(dir: string): string {
  writeFileSync(join(dir, 'other-abi.c'), SOURCE);
  const out = join(dir, 'other-abi.node');
  const r = spawnSync('cc', ['-shared', '-fPIC', '-o', out, join(dir, 'other-abi.c')], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return out;
}

const hasCc = spawnSync('cc', ['--version']).status === 0;

test('a module built for another Node ABI: the nftables addon loader and better-sqlite3 name both ABIs and the fix', { skip: !hasCc && 'no cc' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-abi-'));
  try {
    const file = buildOtherAbiModule(dir);

    const addon = tryLoadAddon(file);
    assert.ok('error' in addon, 'not loaded');
    assert.equal(
      addon.error.split(';')[0],
      `the nftables addon (${file}) was built for Node.js ${OTHER_NODE} (module ABI ${OTHER}) but this is Node.js ${process.versions.node} (module ABI ${RUNNING})`,
    );
    assert.match(addon.error, /npm rebuild/);

    let thrown: unknown;
    try {
      new Database(':memory:', { nativeBinding: file });
    } catch (err) {
      thrown = err;
    }
    assert.ok(thrown instanceof Error, 'better-sqlite3 refuses the binding');
    assert.deepEqual(abiMismatch(thrown), { file, built: OTHER, running: RUNNING });
    const startup = sqliteAbiError(thrown);
    assert.ok(startup);
    assert.equal(startup.code, 'NATIVE_MODULE_ABI');
    assert.equal(exitCodeOf(startup), 4);
    assert.match(
      startup.message,
      new RegExp(
        `^better-sqlite3 \\(.*\\) was built for Node\\.js ${OTHER_NODE} \\(module ABI ${OTHER}\\) but this is Node\\.js ${process.versions.node.replace(/\./g, '\\.')} \\(module ABI ${RUNNING}\\): the state database cannot be opened`,
      ),
    );
    assert.match(startup.message, /npm rebuild better-sqlite3/);

    // any other load error is not taken for an ABI mismatch
    writeFileSync(join(dir, 'garbage.node'), 'not an ELF file');
    const garbage = tryLoadAddon(join(dir, 'garbage.node'));
    assert.ok('error' in garbage);
    assert.match(garbage.error, /garbage\.node: .*(invalid ELF header|file too short)/);
    assert.equal(sqliteAbiError(new Error('SQLITE_CANTOPEN: unable to open database file')), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pbx-guardian run with better-sqlite3 built for another Node ABI: exit 4, both ABIs and the fix on stderr', { skip: !hasCc && 'no cc' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-abi-run-'));
  try {
    const fake = buildOtherAbiModule(dir);
    // an installed copy of the program whose better-sqlite3 holds the other-ABI binding (the rest
    // of node_modules linked from this checkout's)
    const root = join(dir, 'pkg');
    mkdirSync(join(root, 'node_modules'), { recursive: true });
    for (const f of ['package.json', 'rules', 'dist']) cpSync(repoPath(f), join(root, f), { recursive: true });
    const modules = realpathSync(repoPath('node_modules'));
    for (const name of readdirSync(modules)) if (name !== 'better-sqlite3') symlinkSync(join(modules, name), join(root, 'node_modules', name));
    const bs = join(root, 'node_modules', 'better-sqlite3');
    for (const f of ['package.json', 'lib']) cpSync(join(modules, 'better-sqlite3', f), join(bs, f), { recursive: true });
    mkdirSync(join(bs, 'build', 'Release'), { recursive: true });
    cpSync(fake, join(bs, 'build', 'Release', 'better_sqlite3.node'));
    const config = join(dir, 'guardian.yaml');
    writeFileSync(
      config,
      [
        `stateDir: ${join(dir, 'state')}`,
        'ami: { enabled: false }',
        'firewall: { backend: memory }',
        'metrics: { enabled: false }',
        `admin: { socket: ${join(dir, 'admin.sock')} }`,
        '',
      ].join('\n'),
    );
    const r = spawnSync(process.execPath, [join(root, 'dist', 'src', 'cli', 'main.js'), 'run', '--config', config], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 4, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    assert.match(
      r.stderr,
      new RegExp(
        `better-sqlite3 \\(.*better_sqlite3\\.node\\) was built for Node\\.js ${OTHER_NODE} \\(module ABI ${OTHER}\\) but this is Node\\.js [0-9.]+ \\(module ABI ${RUNNING}\\)`,
      ),
    );
    assert.match(r.stderr, /npm rebuild better-sqlite3/);
    assert.doesNotMatch(r.stderr, /check the mount/, 'not taken for a disk problem');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
