// The systemd unit: `systemd-analyze verify` must be clean and `systemd-analyze security` must
// rate its exposure at 2.0 or less. Runs against systemd/pbx-guardian.service, laid out in a
// temporary root (with stubs for /usr/bin/pbx-guardian and /bin/kill, the host's unit directory
// for the targets it references, and the man page from packaging/ on MANPATH) so it needs neither
// the package installed nor a running systemd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// compiled to dist/test/systemd.test.js: the repo is two levels up
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const unitSrc = join(repo, 'systemd', 'pbx-guardian.service');
const manSrc = join(repo, 'packaging', 'pbx-guardian.1');
const MAX_EXPOSURE = 2.0;

function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

const analyze = which('systemd-analyze');
const skip = analyze ? false : 'systemd-analyze is not installed (apt-get install systemd; it need not run)';

function run(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(analyze as string, args, { encoding: 'utf8', env, timeout: 60_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

/** A temporary root holding the unit at its installed path and what it refers to. */
function makeRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'pbxg-unit-'));
  mkdirSync(join(root, 'usr', 'bin'), { recursive: true });
  mkdirSync(join(root, 'usr', 'lib', 'systemd'), { recursive: true });
  // merged-/usr layout, as on Debian 12
  symlinkSync('usr/lib', join(root, 'lib'));
  symlinkSync('usr/bin', join(root, 'bin'));
  const hostUnits = '/usr/lib/systemd/system';
  if (existsSync(hostUnits)) cpSync(hostUnits, join(root, 'usr', 'lib', 'systemd', 'system'), { recursive: true, verbatimSymlinks: true });
  else mkdirSync(join(root, 'usr', 'lib', 'systemd', 'system'));
  cpSync(unitSrc, join(root, 'usr', 'lib', 'systemd', 'system', 'pbx-guardian.service'));
  for (const stub of ['pbx-guardian', 'kill']) {
    writeFileSync(join(root, 'usr', 'bin', stub), '#!/bin/sh\nexit 0\n');
    chmodSync(join(root, 'usr', 'bin', stub), 0o755);
  }
  mkdirSync(join(root, 'man', 'man1'), { recursive: true });
  cpSync(manSrc, join(root, 'man', 'man1', 'pbx-guardian.1'));
  return root;
}

test('systemd-analyze verify reports nothing for the unit', { skip }, (t) => {
  const root = makeRoot();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  // --root: ExecStart/ExecReload binaries and referenced units are looked up in the temporary
  // root; Documentation=man:pbx-guardian(1) is checked with the host's man over MANPATH.
  // Without man-db, the Documentation= check cannot run: skip just that part (--man=no).
  const man = which('man') ? [] : ['--man=no'];
  if (man.length) t.diagnostic('man is not installed: verify runs with --man=no (apt-get install man-db to check the man page too)');
  const r = run(['verify', ...man, `--root=${root}`, '/lib/systemd/system/pbx-guardian.service'], { ...process.env, MANPATH: join(root, 'man') });
  if (r.error) throw r.error;
  t.diagnostic(`systemd-analyze verify exit ${r.status}, output: ${JSON.stringify(r.out.trim())}`);
  assert.equal(r.out.trim(), '', `systemd-analyze verify printed:\n${r.out}`);
  assert.equal(r.status, 0);
});

test(`systemd-analyze security exposure is <= ${MAX_EXPOSURE}`, { skip }, (t) => {
  const r = run(['security', '--offline=yes', '--no-pager', unitSrc]);
  if (r.error) throw r.error;
  if (/unrecognized option|unknown option/i.test(r.out)) {
    t.skip(`this systemd-analyze has no --offline (needs systemd >= 252): ${r.out.trim().split('\n')[0]}`);
    return;
  }
  const m = /Overall exposure level for pbx-guardian\.service:\s*([0-9]+(?:\.[0-9]+)?)/.exec(r.out);
  assert.ok(m, `no exposure figure in the output:\n${r.out}`);
  const exposure = Number(m[1]);
  t.diagnostic(`exposure ${exposure}`);
  const failing = r.out
    .split('\n')
    .filter((l) => l.startsWith('✗'))
    .map((l) => l.replace(/\s{2,}/g, ' | ').trim());
  assert.ok(exposure <= MAX_EXPOSURE, `exposure ${exposure} > ${MAX_EXPOSURE}; open items:\n${failing.join('\n')}`);
});

test('the unit grants CAP_NET_ADMIN only, runs the daemon as pbx-guardian and keeps JIT memory usable', () => {
  const unit = readFileSync(unitSrc, 'utf8');
  const settings = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) settings.set(m[1]!, [...(settings.get(m[1]!) ?? []), m[2]!]);
  }
  const one = (k: string) => {
    const v = settings.get(k);
    assert.ok(v, `${k}= is not set`);
    return v[v.length - 1];
  };
  assert.equal(one('ExecStart'), '/usr/bin/pbx-guardian run --config /etc/pbx-guardian/guardian.yaml');
  assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(one('User'), 'pbx-guardian');
  assert.equal(one('AmbientCapabilities'), 'CAP_NET_ADMIN');
  assert.equal(one('CapabilityBoundingSet'), 'CAP_NET_ADMIN');
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('StateDirectory'), 'pbx-guardian');
  assert.equal(one('RuntimeDirectory'), 'pbx-guardian');
  assert.equal(one('SupplementaryGroups'), 'asterisk');
  assert.equal(one('Restart'), 'on-failure');
  // config error (2) and "another daemon holds the state dir" (10) are not restarted (src/cli/main.ts EXIT)
  assert.equal(one('RestartPreventExitStatus'), '2 10');
  assert.equal(one('KillSignal'), 'SIGTERM');
  assert.equal(one('RestrictAddressFamilies'), 'AF_UNIX AF_INET AF_INET6 AF_NETLINK');
  // V8's JIT needs writable+executable mappings: MemoryDenyWriteExecute=yes aborts node.
  assert.equal(settings.has('MemoryDenyWriteExecute'), false, 'MemoryDenyWriteExecute= breaks V8');
  // capabilities in a user namespace do not reach the host's nftables
  assert.equal(settings.has('PrivateUsers'), false, 'PrivateUsers= would void CAP_NET_ADMIN on the host');
  assert.equal(settings.has('PrivateNetwork'), false, 'PrivateNetwork= would ban in an empty namespace');
});
