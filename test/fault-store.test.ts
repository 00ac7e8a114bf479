/**
 * Fault: the state store cannot be written.
 * - read-only at run time: SQLite's own read-only mode (PRAGMA query_only) on the daemon's open
 *   database, so every write fails with SQLite's real error (in process, real daemon + AMI);
 * - disk full: the state directory is a 256 KiB tmpfs, filled up while the daemon runs (a child
 *   in private mount + network namespaces: `unshare -m -n`; the host's mounts are never touched);
 * - read-only at start: the state directory is a read-only tmpfs holding the state of an earlier
 *   run (same child namespaces).
 * At run time: a clear error in the log, the guard keeps banning to the enforcer, and
 * pbx_guardian_store_errors_total increases. At start: the daemon refuses to start (fail fast,
 * StateDirError) before the firewall backend is set up — bans that would not survive a restart
 * are not silently accepted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AmiFrame } from '../src/ami/index.js';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { startDaemon, type Daemon } from '../src/main.js';
import { loadTemplate, retarget } from '../src/demo/attack.js';
import { fixturePath } from './helpers/fixtures.js';
import { assertPrivateNetns, netnsSkipReason, UNSHARE, reportScenario } from './helpers/netns.js';
import { attackBytes, LogCapture, startTestDaemon, waitFor } from './helpers/daemon.js';

const SELF = fileURLToPath(import.meta.url);
const STORE_ERR = /state store write\/read failed; bans still go to the kernel but may not survive a restart/;

async function storeErrors(d: Daemon): Promise<number> {
  return (await d.metrics.storeErrors.get()).values.reduce((a, v) => a + v.value, 0);
}

function attack(d: Daemon, address: string, times = 5): void {
  const frames = loadTemplate(fixturePath('ami'), 'security-sip-register-wrong-password.raw');
  for (let i = 0; i < times; i++) for (const f of frames) d.guardian.handleEvent(new AmiFrame(retarget(f, address)));
}

if (!process.env.PBXG_SCENARIO) {
  test('store read-only at run time: clear error, bans still reach the enforcer, store_errors_total increases', async (t) => {
    const td = await startTestDaemon();
    try {
      const { daemon, sim } = td;
      await waitFor('AMI login', () => daemon.ami?.state === 'connected');
      for (let i = 0; i < 5; i++) sim!.broadcast(attackBytes('203.0.113.70'));
      await waitFor('first ban', async () => (await td.backend.list()).some((e) => e.target === '203.0.113.70'));
      assert.equal(await storeErrors(daemon), 0);
      daemon.store.db.pragma('query_only = ON'); // the state can no longer be written
      for (const a of ['203.0.113.71', '203.0.113.72', '2001:db8:77::1']) {
        const tr = a.includes(':') ? 'security-sip-register-wrong-password-ipv6.raw' : 'security-sip-register-wrong-password.raw';
        for (let i = 0; i < 5; i++) sim!.broadcast(attackBytes(a, tr));
      }
      await waitFor('bans while the store is read-only', async () => (await td.backend.list()).length === 4);
      const targets = (await td.backend.list()).map((e) => e.target).sort();
      assert.deepEqual(targets, ['2001:db8:77::/64', '203.0.113.70', '203.0.113.71', '203.0.113.72']);
      const errs = await storeErrors(daemon);
      t.diagnostic(`pbx_guardian_store_errors_total = ${errs} after 3 bans on a read-only store`);
      assert.ok(errs >= 3, 'one error per failed ban write at least');
      const metricsText = await daemon.metrics.registry.metrics();
      assert.match(metricsText, /pbx_guardian_store_errors_total \d+/);
      const logged = td.log.errors().find((l) => STORE_ERR.test(String(l.msg)));
      assert.ok(logged, 'a clear error in the log');
      assert.match(JSON.stringify(logged!.err), /readonly|read-only/i, 'the cause is in the log record');
      // still only the store is affected: the guard state and the kernel agree
      assert.equal(daemon.guardian.listBans().length, 4);
      daemon.store.db.pragma('query_only = OFF');
    } finally {
      await td.close();
    }
  });
}

// ------------------------------------------------------------------ private mount namespace child

interface ChildReport {
  started: boolean;
  startError?: string;
  bannedBefore?: string[];
  filled?: number;
  banned?: string[];
  storeErrors?: number;
  errorLog?: string;
  errorCause?: string;
  errorLogs?: string[];
  errorName?: string;
  setupCalls?: number;
}

function mountTmpfs(dir: string, opts: string): void {
  execFileSync('/usr/bin/mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
}

function childConfig(stateDir: string, base: string) {
  return buildConfig({
    stateDir,
    logLevel: 'silent',
    ami: { enabled: false },
    firewall: { backend: 'memory' },
    metrics: { enabled: false },
    admin: { socket: join(base, 'admin.sock') },
  });
}

async function diskFull(): Promise<ChildReport> {
  assertPrivateNetns();
  const base = mkdtempSync(join(tmpdir(), 'pbxg-full-'));
  const stateDir = join(base, 'state');
  mkdirSync(stateDir);
  mountTmpfs(stateDir, 'size=256k,mode=0750');
  const log = new LogCapture();
  const backend = new MemoryBackend();
  const d = await startDaemon({ config: childConfig(stateDir, base), backend, logger: log.logger, adminSocket: false });
  try {
    attack(d, '203.0.113.80');
    await waitFor('first ban', async () => (await backend.list()).length === 1);
    const bannedBefore = (await backend.list()).map((e) => e.target);
    // fill the disk (bounded: 256 KiB / 4 KiB)
    const fd = openSync(join(stateDir, 'filler'), 'w');
    let filled = 0;
    try {
      for (let i = 0; i < 1000; i++) {
        writeSync(fd, Buffer.alloc(4096, 1));
        filled += 4096;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    } finally {
      closeSync(fd);
    }
    for (let i = 1; i <= 40; i++) attack(d, `198.51.100.${i}`);
    await waitFor('bans on a full disk', async () => (await backend.list()).length === 41, 5000);
    const err = log.errors().find((l) => STORE_ERR.test(String(l.msg)));
    return {
      started: true,
      bannedBefore,
      filled,
      banned: (await backend.list()).map((e) => e.target).sort(),
      storeErrors: (await d.metrics.storeErrors.get()).values.reduce((a, v) => a + v.value, 0),
      errorLog: err ? String(err.msg) : undefined,
      errorCause: err ? JSON.stringify(err.err) : undefined,
    };
  } finally {
    await d.stop().catch(() => undefined);
    execFileSync('/usr/bin/umount', [stateDir]);
    rmSync(base, { recursive: true, force: true });
  }
}

async function readOnlyAtStart(): Promise<ChildReport> {
  assertPrivateNetns();
  const base = mkdtempSync(join(tmpdir(), 'pbxg-ro-'));
  const stateDir = join(base, 'state');
  mkdirSync(stateDir);
  mountTmpfs(stateDir, 'size=4m,mode=0750');
  try {
    // an earlier run left its state (one active ban)
    const first = await startDaemon({ config: childConfig(stateDir, base), backend: new MemoryBackend(), logger: new LogCapture().logger, adminSocket: false });
    attack(first, '203.0.113.90');
    await first.stop();
    execFileSync('/usr/bin/mount', ['-o', 'remount,ro', stateDir]);
    const backend = new MemoryBackend();
    let setups = 0;
    backend.setup = async () => void setups++;
    try {
      const d = await startDaemon({ config: childConfig(stateDir, base), backend, logger: new LogCapture().logger, adminSocket: false });
      await d.stop();
      return { started: true, setupCalls: setups };
    } catch (e) {
      return { started: false, startError: (e as Error).message, errorName: (e as Error).name, setupCalls: setups };
    }
  } finally {
    try {
      execFileSync('/usr/bin/umount', ['-l', stateDir]); // lazy: a failed start may leave the db open
      rmSync(base, { recursive: true, force: true });
    } catch {
      /* the private mount namespace goes away with this process */
    }
  }
}

/** `unshare -m -n node SELF`: private mount and network namespaces; prints one JSON line. */
function runInMountNs(scenario: string): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(UNSHARE, ['-m', '-n', '--propagation', 'private', process.execPath, SELF], {
      env: { ...process.env, PBXG_SCENARIO: scenario, PBXG_PARENT_NETNS: execFileSync('readlink', ['/proc/self/ns/net'], { encoding: 'utf8' }).trim() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`child exited ${code}: ${err.slice(-2000)} ${out.slice(-500)}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!) as ChildReport);
      } catch {
        reject(new Error(`child printed no JSON: ${out.slice(-1000)} ${err.slice(-1000)}`));
      }
    });
  });
}

const scenario = process.env.PBXG_SCENARIO;
if (scenario === 'disk-full' || scenario === 'ro-start') {
  reportScenario(() => (scenario === 'disk-full' ? diskFull() : readOnlyAtStart()));
} else {
  const skip = netnsSkipReason(['/usr/bin/mount', '/usr/bin/umount']);
  test('disk full (256 KiB tmpfs in a private mount namespace): clear error, bans go on, store_errors_total increases', { skip: skip ?? false }, async (t) => {
    const r = await runInMountNs('disk-full');
    t.diagnostic(
      `filled ${r.filled} bytes; ${r.banned?.length} bans in the backend; store_errors_total ${r.storeErrors}; log: ${r.errorLog}; cause: ${r.errorCause?.slice(0, 160)}`,
    );
    assert.ok(r.started);
    assert.deepEqual(r.bannedBefore, ['203.0.113.80']);
    assert.equal(r.banned!.length, 41, 'every attacker banned while the disk is full');
    assert.ok(r.storeErrors! > 0, 'pbx_guardian_store_errors_total increased');
    assert.match(r.errorLog ?? '', STORE_ERR);
    assert.match(r.errorCause ?? '', /full|SQLITE_FULL|ENOSPC/i, 'the cause (disk full) is in the log record');
  });
  test(
    'state dir read-only at start (ro tmpfs, private mount namespace): the daemon refuses to start, before the firewall is set up',
    { skip: skip ?? false },
    async (t) => {
      const r = await runInMountNs('ro-start');
      t.diagnostic(JSON.stringify(r).slice(0, 600));
      assert.equal(r.started, false, 'a daemon whose bans would not survive a restart must not start');
      assert.equal(r.errorName, 'StateDirError');
      assert.match(r.startError ?? '', /the state directory .*state \(config key stateDir\) cannot be used: .*(read-only|EROFS)/);
      assert.match(r.startError ?? '', /the firewall was not touched/);
      assert.equal(r.setupCalls, 0, 'the firewall backend was never set up');
    },
  );
}
