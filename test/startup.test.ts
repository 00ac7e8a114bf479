/**
 * Fail fast at start, with real processes: `node dist/src/cli/main.js run --config <tmp>` is
 * spawned inside a private network namespace (`unshare -n`: its nftables ruleset is empty and
 * private), and the test looks at what a person would see — the exit code, the message — and at
 * the side effects: `nft list tables` in that namespace, the lock file, the admin socket.
 *
 * Each scenario runs in its own namespace child (this file with PBXG_SCENARIO set) and prints one
 * JSON report; the tests below assert on it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { callDaemon } from '../src/admin/client.js';
import { Store } from '../src/store/index.js';
import { assertPrivateNetns, netnsSkipReason, reportScenario, runInNetns } from './helpers/netns.js';

const SELF = fileURLToPath(import.meta.url);
/** compiled to dist/test/: the CLI is dist/src/cli/main.js */
const CLI = resolve(dirname(SELF), '..', 'src', 'cli', 'main.js');
const NFT = '/usr/sbin/nft';
const TABLE = 'pbx_guardian';

interface CliResult {
  code: number | null;
  signal: string | null;
  stderr: string;
  stdout: string;
  ms: number;
}

/** Runs the CLI to its end (killed after `timeoutMs`). */
function cli(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 20_000): CliResult {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, timeout: timeoutMs, killSignal: 'SIGKILL' });
  return { code: r.status, signal: r.signal, stderr: r.stderr ?? '', stdout: r.stdout ?? '', ms: Date.now() - t0 };
}

function tables(): string {
  return execFileSync(NFT, ['list', 'tables'], { encoding: 'utf8' });
}

/** `nft list tables` once our table is there (or after timeoutMs): the admin socket answers before
 *  the start reaches the firewall, so a daemon whose socket answers may not have its table yet. */
async function tablesOnceCreated(timeoutMs = 10_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const t = tables();
    if (t.includes(TABLE) || Date.now() > until) return t;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A config file in a fresh directory; every test config is a dry run unless it asks for nftables. */
function writeConfig(base: string, cfg: Record<string, unknown>): string {
  const full = {
    stateDir: join(base, 'state'),
    logLevel: 'info',
    ami: { enabled: false },
    firewall: { backend: 'nftables' },
    metrics: { enabled: false },
    admin: { socket: join(base, 'admin.sock') },
    ...cfg,
  };
  const path = join(base, 'guardian.yaml');
  writeFileSync(path, JSON.stringify(full, null, 2)); // JSON is YAML
  return path;
}

/** A daemon left running in the background. */
function startBackground(config: string): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, out: () => out, exited };
}

async function waitForSocket(socket: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await callDaemon(socket, 'GET', '/status');
      return;
    } catch (err) {
      if (Date.now() > until) throw new Error(`the daemon's admin socket ${socket} never answered: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const answers = (socket: string) =>
  callDaemon(socket, 'GET', '/status').then(
    () => true,
    () => false,
  );

// ------------------------------------------------------------------------- scenarios (in the netns)

const scenarios: Record<string, (base: string) => Promise<unknown>> = {
  async 'bad-allow'(base) {
    const r = cli(['run', '--config', writeConfig(base, { guard: { allow: ['198.51.100.0/24', '192.0.2.300'] } })]);
    return { ...r, tables: tables(), lock: existsSync(join(base, 'state', 'guardian.lock')) };
  },

  async 'busy-port'(base) {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as AddressInfo).port;
    try {
      const r = cli(['run', '--config', writeConfig(base, { metrics: { enabled: true, host: '127.0.0.1', port } })]);
      return { ...r, port, tables: tables(), lock: existsSync(join(base, 'state', 'guardian.lock')), adminSocketLeft: existsSync(join(base, 'admin.sock')) };
    } finally {
      holder.close();
    }
  },

  async 'second-instance'(base) {
    const config = writeConfig(base, {});
    const socket = join(base, 'admin.sock');
    const first = startBackground(config);
    try {
      await waitForSocket(socket);
      const inodeBefore = statSync(socket).ino;
      const tablesWhileFirstRuns = await tablesOnceCreated();
      const second = cli(['run', '--config', config]);
      const status = cli(['status', '--socket', socket]);
      const inodeAfter = statSync(socket).ino;
      first.child.kill('SIGTERM');
      const firstExit = await first.exited;
      return {
        firstPid: first.child.pid,
        second,
        status,
        sameSocket: inodeBefore === inodeAfter,
        tablesWhileFirstRuns,
        firstExit,
        lockAfterStop: existsSync(join(base, 'state', 'guardian.lock')),
      };
    } finally {
      first.child.kill('SIGKILL');
    }
  },

  async 'sigkilled-lock'(base) {
    const config = writeConfig(base, { firewall: { backend: 'memory' } });
    const socket = join(base, 'admin.sock');
    const lockPath = join(base, 'state', 'guardian.lock');
    const first = startBackground(config);
    await waitForSocket(socket);
    first.child.kill('SIGKILL');
    await first.exited;
    const lockLeft = JSON.parse(readFileSync(lockPath, 'utf8')) as { pid: number };
    const second = startBackground(config);
    try {
      await waitForSocket(socket);
      const lockNow = JSON.parse(readFileSync(lockPath, 'utf8')) as { pid: number };
      const secondAnswers = await answers(socket);
      second.child.kill('SIGTERM');
      const secondExit = await second.exited;
      return {
        firstPid: first.child.pid,
        secondPid: second.child.pid,
        lockLeft,
        lockNow,
        secondAnswers,
        secondExit,
        log: second.out(),
        lockAfterStop: existsSync(lockPath),
      };
    } finally {
      second.child.kill('SIGKILL');
    }
  },

  async 'dead-pid-lock'(base) {
    // a lock naming a pid that no longer exists, written by hand (a daemon that died long ago)
    const dead = spawnSync('/bin/true').pid!;
    mkdirSync(join(base, 'state'));
    writeFileSync(join(base, 'state', 'guardian.lock'), JSON.stringify({ pid: dead, startTicks: 1, at: Date.now(), token: 'old', argv: [] }));
    const config = writeConfig(base, { firewall: { backend: 'memory' } });
    const d = startBackground(config);
    try {
      await waitForSocket(join(base, 'admin.sock'));
      d.child.kill('SIGTERM');
      return { dead, exit: await d.exited, log: d.out() };
    } finally {
      d.child.kill('SIGKILL');
    }
  },

  async 'sigterm-during-start'(base) {
    // 60k stored bans: their restore into the kernel comes after the admin socket answers, so a
    // SIGTERM sent as soon as it answers lands while the start is still running
    const store = Store.open(join(base, 'state'));
    const now = Date.now();
    store.db.transaction(() => {
      for (let i = 0; i < 60_000; i++) {
        const target = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
        store.saveBan({
          target,
          family: 4,
          isNetwork: false,
          createdAt: now,
          expiresAt: now + 3_600_000,
          rule: 'auth-failure',
          source: 'rule',
          reason: 'test',
          count: 5,
        });
      }
    })();
    store.close();
    const d = startBackground(writeConfig(base, {}));
    try {
      await waitForSocket(join(base, 'admin.sock'));
      d.child.kill('SIGTERM');
      const exit = await d.exited;
      return { exit, log: d.out(), lockLeft: existsSync(join(base, 'state', 'guardian.lock')), socketLeft: existsSync(join(base, 'admin.sock')) };
    } finally {
      d.child.kill('SIGKILL');
    }
  },

  async 'proc-state-dir'(base) {
    const r = cli(['run', '--config', writeConfig(base, { stateDir: '/proc/nope' })], process.env, 15_000);
    return { ...r, tables: tables() };
  },

  async 'empty-ami-secret'(base) {
    const env = { ...process.env };
    delete env.ASTERISK_AMI_PASSWORD;
    const r = cli(['run', '--config', writeConfig(base, { ami: { enabled: true, host: '127.0.0.1', port: 5038, secret: '' } })], env);
    return { ...r, tables: tables() };
  },

  async 'demo-duration'() {
    return ['abc', '0', '=-5', '999999999', '1e9'].map((v) => {
      const args = v.startsWith('=') ? ['demo', `--duration${v}`] : ['demo', '--duration', v];
      const r = cli(args, process.env, 10_000);
      return { value: v, code: r.code, signal: r.signal, stderr: r.stderr };
    });
  },
};

if (process.env.PBXG_SCENARIO) {
  const name = process.env.PBXG_SCENARIO;
  reportScenario(async () => {
    assertPrivateNetns();
    const base = mkdtempSync(join(tmpdir(), `pbxg-startup-${name}-`));
    try {
      return await scenarios[name]!(base);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
} else {
  const skip = netnsSkipReason([NFT]) ?? false;
  const run = <T>(name: string) => runInNetns<T>(SELF, { PBXG_SCENARIO: name }, [], 90_000);
  const noTable = (t: string) => !new RegExp(`\\b${TABLE}\\b`).test(t);

  test('a bad guard.allow entry: exit 2 naming the key and the entry, no nftables table created', { skip }, async (t) => {
    const r = await run<CliResult & { tables: string; lock: boolean }>('bad-allow');
    t.diagnostic(`exit ${r.code}: ${r.stderr.trim()}`);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /guard\.allow\[1\]: "192\.0\.2\.300" is not an IPv4\/IPv6 address or CIDR/);
    assert.ok(noTable(r.tables), `no ${TABLE} table in the namespace; nft list tables: ${r.tables}`);
    assert.equal(r.lock, false, 'nothing was written in the state directory');
  });

  test('metrics port taken: non-zero exit naming the listener, address and key; no table; lock and admin socket released', { skip }, async (t) => {
    const r = await run<CliResult & { port: number; tables: string; lock: boolean; adminSocketLeft: boolean }>('busy-port');
    t.diagnostic(`exit ${r.code}: ${r.stderr.trim()}`);
    assert.equal(r.code, 12);
    assert.ok(r.stderr.includes(`127.0.0.1:${r.port}`), 'the message names the address and port');
    assert.match(r.stderr, /metrics endpoint \(metrics\.host \/ metrics\.port\).*EADDRINUSE/);
    assert.ok(noTable(r.tables), `no ${TABLE} table in the namespace; nft list tables: ${r.tables}`);
    assert.equal(r.lock, false, 'the lock was released');
    assert.equal(r.adminSocketLeft, false, 'the admin socket bound before the failure was closed');
  });

  test("a second run on the same state dir is refused with the first one's pid; the first keeps its admin socket", { skip }, async (t) => {
    const r = await run<{
      firstPid: number;
      second: CliResult;
      status: CliResult;
      sameSocket: boolean;
      tablesWhileFirstRuns: string;
      firstExit: number | null;
      lockAfterStop: boolean;
    }>('second-instance');
    t.diagnostic(`second: exit ${r.second.code}: ${r.second.stderr.trim()}`);
    assert.ok(!noTable(r.tablesWhileFirstRuns), `the first daemon created its table (the check can see one): ${r.tablesWhileFirstRuns}`);
    assert.equal(r.second.code, 10);
    assert.match(r.second.stderr, new RegExp(`another pbx-guardian \\(pid ${r.firstPid},`));
    assert.equal(r.status.code, 0, `status through the first daemon's socket: ${r.status.stderr}`);
    assert.match(r.status.stdout, /Currently banned/);
    assert.equal(r.sameSocket, true, "the admin socket file is still the first daemon's");
    assert.equal(r.firstExit, 0);
    assert.equal(r.lockAfterStop, false, 'the lock is released at stop');
  });

  test("a SIGKILLed daemon's lock is stale: the next run takes it over", { skip }, async (t) => {
    const r = await run<{
      firstPid: number;
      secondPid: number;
      lockLeft: { pid: number };
      lockNow: { pid: number };
      secondAnswers: boolean;
      secondExit: number | null;
      log: string;
      lockAfterStop: boolean;
    }>('sigkilled-lock');
    assert.equal(r.lockLeft.pid, r.firstPid, "SIGKILL left the first daemon's lock behind");
    assert.equal(r.lockNow.pid, r.secondPid);
    assert.equal(r.secondAnswers, true);
    const line = r.log.split('\n').find((l) => l.includes('took over a stale lock'));
    t.diagnostic(line ?? '(no take-over line)');
    assert.match(line ?? '', new RegExp(`process ${r.firstPid} is gone`));
    assert.equal(r.secondExit, 0);
    assert.equal(r.lockAfterStop, false);
  });

  test('a lock naming a dead pid is taken over and logged', { skip }, async () => {
    const r = await run<{ dead: number; exit: number | null; log: string }>('dead-pid-lock');
    assert.match(r.log, new RegExp(`took over a stale lock .*process ${r.dead} is gone`));
    assert.equal(r.exit, 0);
  });

  test(
    'a SIGTERM while the start is still running (admin socket up, bans being restored) stops it cleanly: exit 0, lock and socket removed',
    { skip },
    async () => {
      const r = await run<{ exit: number | null; log: string; lockLeft: boolean; socketLeft: boolean }>('sigterm-during-start');
      assert.equal(r.exit, 0, `exit ${r.exit} (null: killed by the signal): ${r.log.slice(-800)}`);
      assert.match(r.log, /"msg":"stopping"/);
      assert.equal(r.lockLeft, false);
      assert.equal(r.socketLeft, false);
    },
  );

  test('stateDir /proc/nope: exits at once with exit 11 and a message (was: 100% CPU, silent, forever)', { skip }, async (t) => {
    const r = await run<CliResult & { tables: string }>('proc-state-dir');
    t.diagnostic(`exit ${r.code} after ${r.ms} ms: ${r.stderr.trim()}`);
    assert.equal(r.signal, null, 'it ended by itself (not killed at the 15 s timeout)');
    assert.equal(r.code, 11);
    assert.match(r.stderr, /the state directory \/proc\/nope \(config key stateDir\) cannot be used/);
    assert.ok(noTable(r.tables));
  });

  test('an empty AMI secret with ami.enabled: exit 2 saying where to set it', { skip }, async (t) => {
    const r = await run<CliResult & { tables: string }>('empty-ami-secret');
    t.diagnostic(`exit ${r.code}: ${r.stderr.trim()}`);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ami\.secret: empty/);
    assert.match(r.stderr, /ASTERISK_AMI_PASSWORD/);
    assert.ok(noTable(r.tables));
  });

  test('demo --duration that is not a duration from 1s to 24h: usage error, exit 2', { skip }, async () => {
    const r = await run<Array<{ value: string; code: number | null; signal: string | null; stderr: string }>>('demo-duration');
    for (const x of r) {
      assert.equal(x.signal, null, `--duration ${x.value} must not run on (was: never ends)`);
      assert.equal(x.code, 2, `--duration ${x.value}: ${x.stderr}`);
      assert.match(x.stderr, /--duration/);
    }
  });
}
