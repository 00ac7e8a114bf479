/**
 * A native module compiled for another Node.js ABI: a real .node file whose registration claims
 * another NODE_MODULE_VERSION (compiled here with cc), refused by this Node's dlopen exactly as a
 * better-sqlite3 or nftables addon built for Node 22 is refused by Node 20. Full lane: it runs cc,
 * and a daemon as root in a private network namespace (unshare -n).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
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

/** An installed copy of the program (dist, rules, package.json) with node_modules linked from
 *  this checkout's, except the native modules given: copied with `sqlite` as better-sqlite3's
 *  binding, `addon` as build/Release/nftables.node. */
function installedCopy(dir: string, o: { sqlite?: string; addon?: string }): string {
  const root = join(dir, 'pkg');
  mkdirSync(join(root, 'node_modules'), { recursive: true });
  for (const f of ['package.json', 'rules', 'dist']) cpSync(repoPath(f), join(root, f), { recursive: true });
  const modules = realpathSync(repoPath('node_modules'));
  for (const name of readdirSync(modules)) if (name !== 'better-sqlite3' || !o.sqlite) symlinkSync(join(modules, name), join(root, 'node_modules', name));
  if (o.sqlite) {
    const bs = join(root, 'node_modules', 'better-sqlite3');
    for (const f of ['package.json', 'lib']) cpSync(join(modules, 'better-sqlite3', f), join(bs, f), { recursive: true });
    mkdirSync(join(bs, 'build', 'Release'), { recursive: true });
    cpSync(o.sqlite, join(bs, 'build', 'Release', 'better_sqlite3.node'));
  }
  if (o.addon) {
    mkdirSync(join(root, 'build', 'Release'), { recursive: true });
    cpSync(o.addon, join(root, 'build', 'Release', 'nftables.node'));
  }
  return root;
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
    const root = installedCopy(dir, { sqlite: fake });
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

const canNetns = process.getuid?.() === 0 && spawnSync('unshare', ['-n', 'true']).status === 0 && spawnSync('nft', ['--version']).status === 0;

test(
  'the nftables addon built for another Node ABI: the daemon says so and bans through the nft command (private network namespace)',
  { skip: (!hasCc && 'no cc') || (!canNetns && 'needs root, unshare and nft') },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pbxg-abi-nft-'));
    try {
      const root = installedCopy(dir, { addon: buildOtherAbiModule(dir) });
      const config = join(dir, 'guardian.yaml');
      writeFileSync(
        config,
        [
          `stateDir: ${join(dir, 'state')}`,
          'logLevel: info',
          'ami: { enabled: false }',
          'firewall: { backend: nftables }',
          'metrics: { enabled: false }',
          `admin: { socket: ${join(dir, 'admin.sock')} }`,
          '',
        ].join('\n'),
      );
      const child = spawn('unshare', ['-n', process.execPath, join(root, 'dist', 'src', 'cli', 'main.js'), 'run', '--config', config], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
      const deadline = Date.now() + 20_000;
      while (!out.includes('firewall enforcement ready') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      // a ban by hand through the admin socket, then the element read from the daemon's namespace
      const cli = join(root, 'dist', 'src', 'cli', 'main.js');
      const ban = spawnSync(process.execPath, [cli, 'ban', '203.0.113.9', '--for', '1h', '--config', config], { encoding: 'utf8', timeout: 20_000 });
      let listed = '';
      for (let i = 0; i < 50 && !listed.includes('203.0.113.9'); i++) {
        await new Promise((r) => setTimeout(r, 50));
        listed = spawnSync('nsenter', ['-t', String(child.pid), '-n', 'nft', 'list', 'set', 'inet', 'pbx_guardian', 'ban4'], { encoding: 'utf8' }).stdout ?? '';
      }
      child.kill('SIGTERM');
      const code = await exited;
      assert.equal(ban.status, 0, `${ban.stdout}${ban.stderr}`);
      assert.match(listed, /203\.0\.113\.9/, `the ban is in the kernel set of the daemon's namespace:\n${listed}`);
      const lines = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg?: string; reason?: string; backend?: string });
      const fallback = lines.find((l) => l.msg === 'nftables addon unavailable; the nft command will be used');
      assert.ok(fallback, out);
      assert.match(
        fallback.reason ?? '',
        new RegExp(
          `^the nftables addon \\(.*nftables\\.node\\) was built for Node\\.js ${OTHER_NODE} \\(module ABI ${OTHER}\\) but this is Node\\.js [0-9.]+ \\(module ABI ${RUNNING}\\); rebuild it`,
        ),
      );
      assert.ok(
        lines.some((l) => l.msg === 'firewall enforcement ready' && l.backend === 'nftables'),
        out,
      );
      assert.equal(code, 0, out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
