/**
 * Side by side with fail2ban 1.0.2: the same attack, delivered to both.
 *
 *  - fail2ban reads it as an Asterisk security log (lines in the exact format of
 *    test/fixtures/asterisk-security.log, stamped with the moment they are written), with its stock
 *    `asterisk` filter and the stock `nftables[type=allports]` action, backend `polling` (pyinotify
 *    is not installed here), maxretry 5 / findtime 600 (our auth-failure rule: 5 within 10m). A
 *    throwaway fail2ban-server with its own config dir, socket, pid file and db under a temp dir.
 *  - the guardian reads it as AMI events: AmiSimulator (real TCP, in the bench process) →
 *    `pbx-guardian run` (the real daemon in its own process, as fail2ban-server is; JSON log at
 *    info level to a pipe, as under systemd) → nftables backend.
 *
 * Each runs in its OWN private network namespace (`unshare -n`, a child process per side, one
 * after the other so that they do not compete for the 2 cores). The moment an address is banned
 * is taken the same way for both: the kernel's netlink notification of the new element in that
 * namespace, stamped on receipt (bench/set-monitor.ts); the set is then verified with
 * `nft -j list set`. For the guardian the moment of
 * the decision (its ban log line) is reported too.
 *
 * Phases, same schedule for both:
 *   1. latency: L addresses; their first M-1 failures written up front, then each address's M-th
 *      (threshold-crossing) failure at 10 per second, with legitimate SuccessfulAuth traffic from
 *      other addresses in between. Latency = element present − M-th failure written.
 *   2. bursts: N addresses × M failures (plus legitimate traffic) written at once, the bytes made
 *      before the clock starts; bans/s = N / time until the last element is present. A warm-up
 *      burst of N other addresses first (reported, not held to the target), then the measured
 *      one, then a small one (fixed latencies weigh more there).
 *   3. restore after a restart with 3k and 100k active bans (fail2ban: rows in its db's `bips`
 *      table, restoreCurrentBans on start, bounded; guardian: Store with N active bans → a new
 *      daemon's Enforcer.start()).
 *   CPU: /proc/<pid>/stat utime+stime (+ cutime/cstime: children) of fail2ban-server and of the
 *   guardian's daemon process, over phases 1 and 2.
 *
 * Run: node dist/bench/fail2ban.js [--quick]      (root; skips with a note otherwise)
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, appendFileSync, constants, cpSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import pino from 'pino';
import { buildConfig, PACKAGE_ROOT } from '../src/config/index.js';
import { AmiSimulator, type PreparedEvents } from '../src/demo/ami-simulator.js';
import { loadTemplate, replayBytes } from '../src/demo/attack.js';
import { createBackend, defaultFirewallConfig, type FirewallBackend } from '../src/firewall/index.js';
import { startDaemon } from '../src/main.js';
import { Store } from '../src/store/index.js';
import { listSet, SetMonitor } from './set-monitor.js';
import type { BenchResult } from './types.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const F2B_SERVER = '/usr/bin/fail2ban-server';
const F2B_CLIENT = '/usr/bin/fail2ban-client';
const UNSHARE = '/usr/bin/unshare';
const pexec = promisify(execFile);
const silent = pino({ level: 'silent' });
const FIXTURES = join(PACKAGE_ROOT, 'test', 'fixtures');
const M = 5; // failures per address = maxretry = our rule's count
const TABLE = 'pbxg_f2bbench';
/** a burst not fully banned by then is reported incomplete */
const BURST_BOUND_MS = 180_000;

export interface Plan {
  latencyAddrs: number;
  /** the measured burst (throughput target), after a warm-up burst of the same size */
  burstAddrs: number;
  /** a small burst after it, reported too (fixed latencies weigh more there) */
  smallBurstAddrs: number;
  restoreSizes: number[];
  /** bound on fail2ban's restore, seconds */
  restoreBoundS: number;
}

export const FULL: Plan = { latencyAddrs: 100, burstAddrs: 3000, smallBurstAddrs: 300, restoreSizes: [3000, 100_000], restoreBoundS: 120 };
export const QUICK: Plan = { latencyAddrs: 30, burstAddrs: 300, smallBurstAddrs: 50, restoreSizes: [1000], restoreBoundS: 60 };


/** What one side reports (printed as JSON by its child). */
export interface SideResult {
  side: 'fail2ban' | 'guardian';
  mode: string;
  latencyMs: number[];
  latencyMissing: number;
  /** guardian: M-th failure written → its ban line in the daemon's log */
  decidedLatencyMs?: number[];
  bursts: BurstReport[];
  cpuSeconds: number;
  cpuNote: string;
  restore: Array<{ size: number; seconds: number | null; present: number; bounded: boolean; startedS?: number }>;
  legitBanned: number;
  /** how ban moments were taken (SetMonitor.instrument), and kernel notifications lost */
  instrument: string;
  overflows: number;
}

/** One burst as a side reports it. */
export interface BurstReport {
  role: 'warm-up' | 'measured' | 'small';
  size: number;
  /** first write → last element announced by the kernel; null when not all were banned in time */
  seconds: number | null;
  missing: number;
  /** in the set after the attack (nft list set) */
  verified: number;
  p50Ms: number;
  p99Ms: number;
  /** ms the writes took (the clock runs from their start) */
  writtenMs: number;
  /** guardian: the last ban line in the daemon's log, ms after the first write */
  lastDecidedMs?: number;
}

function reportBurst(b: BurstOutcome, role: BurstReport['role'], inSet: Set<string>, decided?: Map<string, number>): BurstReport {
  const r: BurstReport = {
    role,
    size: b.addrs.length,
    seconds: b.seconds,
    missing: b.missing,
    verified: b.addrs.filter((a) => inSet.has(a)).length,
    p50Ms: pct(b.latencyMs, 50),
    p99Ms: pct(b.latencyMs, 99),
    writtenMs: b.writtenMs,
  };
  if (decided) r.lastDecidedMs = Math.max(...b.addrs.map((a) => decided.get(a) ?? NaN)) - b.start;
  return r;
}

// ------------------------------------------------------------------ addresses and traffic

const attacker = (i: number) => `198.18.${(i >> 8) & 255}.${(i & 255) + 0}`;
const legit = (i: number) => `198.19.${(i >> 8) & 255}.${i & 255}`;
const restoreAddr = (i: number) => `100.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`;
const lat0 = 0; // attacker index ranges: latency [0, L), burst [1000, 1000 + N), warm-up [20000, 20000 + N), small burst [40000, ...)
const burst0 = 1000;
const warm0 = 20_000;
const small0 = 40_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function assertPrivateNetns(): void {
  const parent = process.env.PBXG_PARENT_NETNS;
  const mine = readlinkSync('/proc/self/ns/net');
  if (!parent || parent === mine) throw new Error(`refusing to run: not in a private network namespace (${mine})`);
}

// ------------------------------------------------------------------ log lines (fail2ban's input)

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

interface LogTemplates {
  challenge: string;
  invalidPassword: string;
  successChallenge: string;
  success: string;
}

/** Real lines of the recorded security log: a chan_sip wrong password (ChallengeSent +
 *  InvalidPassword) and a successful registration (ChallengeSent + SuccessfulAuth). */
function logTemplates(): LogTemplates {
  const lines = readFileSync(join(FIXTURES, 'asterisk-security.log'), 'utf8').split('\n');
  const sip = lines.filter((l) => l.includes('Service="SIP"') && l.includes('IPV4/UDP'));
  const ip = sip.find((l) => l.includes('SecurityEvent="InvalidPassword"'))!;
  const session = /SessionID="([^"]+)"/.exec(ip)![1]!;
  const challenge = sip.find((l) => l.includes('SecurityEvent="ChallengeSent"') && l.includes(session))!;
  const success = sip.find((l) => l.includes('SecurityEvent="SuccessfulAuth"'))!;
  const sSession = /SessionID="([^"]+)"/.exec(success)![1]!;
  const successChallenge = sip.find((l) => l.includes('SecurityEvent="ChallengeSent"') && l.includes(sSession))!;
  return { challenge, invalidPassword: ip, successChallenge, success };
}

/** The template line, stamped with `at` (the log prefix in local time as Asterisk writes it,
 *  EventTV in UTC) and coming from `address`. */
function stamp(line: string, at: Date, address: string): string {
  const p2 = (n: number) => String(n).padStart(2, '0');
  const prefix = `[${MONTHS[at.getMonth()]} ${String(at.getDate()).padStart(2, ' ')} ${p2(at.getHours())}:${p2(at.getMinutes())}:${p2(at.getSeconds())}]`;
  const tv = at.toISOString().replace('Z', '+0000');
  return line
    .replace(/^\[[^\]]+\]/, prefix)
    .replace(/EventTV="[^"]+"/, `EventTV="${tv}"`)
    .replace(/RemoteAddress="IPV4\/(\w+)\/[^/]+\/(\d+)"/, `RemoteAddress="IPV4/$1/${address}/$2"`);
}

function failureLines(t: LogTemplates, address: string, at = new Date()): string {
  return stamp(t.challenge, at, address) + '\n' + stamp(t.invalidPassword, at, address) + '\n';
}

function legitLines(t: LogTemplates, address: string, at = new Date()): string {
  return stamp(t.successChallenge, at, address) + '\n' + stamp(t.success, at, address) + '\n';
}

// ------------------------------------------------------------------ the attack schedule

/** The bytes of an attack for one side, and how they reach it. */
interface Sink<T> {
  /** failures from `addresses` and legitimate traffic from `legit`, interleaved, made ready to
   *  deliver (for the guardian: filtered by its login's Events mask, as Asterisk does when it
   *  generates events) */
  prepare(addresses: string[], legit: string[]): T;
  /** written at once: appended to the log (fail2ban) or sent as AMI frames (guardian) */
  deliver(prepared: T): void;
}

interface BurstOutcome {
  latencyMs: number[];
  seconds: number | null;
  missing: number;
  addrs: string[];
  /** ms after the first write: when the writes returned */
  writtenMs: number;
  /** performance.now() of the first write */
  start: number;
}

interface AttackOutcome {
  latencyMs: number[];
  latencyMissing: number;
  /** M-th failure written, for each latency-phase address */
  crossAt: Map<string, number>;
  /** the first burst, unmeasured against the target: warms both sides up (JIT, caches) */
  warmup: BurstOutcome;
  burst: BurstOutcome;
  small: BurstOutcome;
}

/**
 * Every address's M failures written at once, legitimate traffic interleaved. The bytes are made
 * before the clock starts (the attacker's packets are not the defender's work), then written in M
 * writes, one per round of failures.
 */
async function burstPhase<T>(sink: Sink<T>, mon: SetMonitor, first: number, n: number, legitBase: number, boundMs: number): Promise<BurstOutcome> {
  const addrs = Array.from({ length: n }, (_, i) => attacker(first + i));
  const legitPer = Math.ceil(n / 10);
  const rounds = Array.from({ length: M }, (_, k) => sink.prepare(addrs, Array.from({ length: legitPer }, (_, j) => legit(legitBase + k * legitPer + j))));
  const start = performance.now();
  for (const bytes of rounds) sink.deliver(bytes);
  const writtenMs = performance.now() - start;
  const all = await mon.waitFor(addrs, boundMs);
  const got = addrs.filter((a) => mon.seen.has(a));
  const last = got.length ? Math.max(...got.map((a) => mon.seen.get(a)!)) : NaN;
  return { latencyMs: got.map((a) => mon.seen.get(a)! - start), seconds: all ? (last - start) / 1000 : null, missing: n - got.length, addrs, writtenMs, start };
}

async function attack<T>(plan: Plan, sink: Sink<T>, mon: SetMonitor, boundMs: number, pause: number): Promise<AttackOutcome> {
  const crossAt = new Map<string, number>();
  // 1. latency
  const lat = Array.from({ length: plan.latencyAddrs }, (_, i) => attacker(lat0 + i));
  for (let k = 0; k < M - 1; k++) sink.deliver(sink.prepare(lat, [legit(k)]));
  await sleep(pause); // let a polling reader take the first M-1 lines in
  const t0 = performance.now();
  for (let i = 0; i < lat.length; i++) {
    const due = t0 + i * 100;
    while (performance.now() < due) await sleep(Math.max(1, due - performance.now()));
    const bytes = sink.prepare([lat[i]!], [legit(100 + i)]);
    crossAt.set(lat[i]!, performance.now());
    sink.deliver(bytes);
  }
  await mon.waitFor(lat, boundMs);
  const latencyMs = lat.filter((a) => mon.seen.has(a)).map((a) => mon.seen.get(a)! - crossAt.get(a)!);
  await sleep(pause);

  // 2. bursts: a warm-up one, then the measured one, each of N addresses
  const warmup = await burstPhase(sink, mon, warm0, plan.burstAddrs, 30_000, boundMs);
  await sleep(pause);
  const burst = await burstPhase(sink, mon, burst0, plan.burstAddrs, 1000, boundMs);
  await sleep(pause);
  const small = await burstPhase(sink, mon, small0, plan.smallBurstAddrs, 60_000, boundMs);
  return { latencyMs, latencyMissing: lat.length - latencyMs.length, crossAt, warmup, burst, small };
}

// ------------------------------------------------------------------ fail2ban side

function procCpu(pid: number): { own: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = 100; // CLK_TCK on Linux
  // fields after ")": state(0) ... utime(11) stime(12) cutime(13) cstime(14)
  return { own: (Number(f[11]) + Number(f[12])) / hz, children: (Number(f[13]) + Number(f[14])) / hz };
}

class Fail2ban {
  readonly dir: string;
  readonly conf: string;
  readonly log: string;
  readonly sock: string;
  readonly db: string;
  proc: ChildProcess | null = null;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'pbxg-f2b-'));
    this.conf = join(this.dir, 'conf');
    this.log = join(this.dir, 'security.log');
    this.sock = join(this.dir, 'f2b.sock');
    this.db = join(this.dir, 'f2b.sqlite3');
    cpSync('/etc/fail2ban', this.conf, { recursive: true });
    for (const f of readdirSync(join(this.conf, 'jail.d'))) rmSync(join(this.conf, 'jail.d', f), { force: true, recursive: true });
    writeFileSync(
      join(this.conf, 'fail2ban.local'),
      `[Definition]\nloglevel = INFO\nlogtarget = ${join(this.dir, 'fail2ban.log')}\nsocket = ${this.sock}\npidfile = ${join(this.dir, 'f2b.pid')}\ndbfile = ${this.db}\ndbpurgeage = 1d\n`,
    );
    writeFileSync(
      join(this.conf, 'jail.local'),
      [
        '[DEFAULT]',
        'backend = polling',
        'ignoreip = 127.0.0.1/8 ::1',
        '',
        '[asterisk]',
        'enabled = true',
        'filter = asterisk',
        `logpath = ${this.log}`,
        `maxretry = ${M}`,
        'findtime = 600',
        'bantime = 3600',
        'action = nftables[type=allports]',
        '',
      ].join('\n'),
    );
    writeFileSync(this.log, '');
  }

  async start(): Promise<void> {
    this.proc = spawn(F2B_SERVER, ['-f', '-x', '-c', this.conf, '-s', this.sock, '-p', join(this.dir, 'f2b.pid')], { stdio: 'ignore' });
    const end = Date.now() + 30_000;
    while (Date.now() < end) {
      try {
        await pexec(F2B_CLIENT, ['-c', this.conf, '-s', this.sock, 'status', 'asterisk'], { timeout: 5000 });
        return;
      } catch {
        await sleep(100);
      }
    }
    throw new Error('fail2ban-server did not answer within 30 s');
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    await pexec(F2B_CLIENT, ['-c', this.conf, '-s', this.sock, 'stop'], { timeout: 30_000 }).catch(() => undefined);
    const killed = await Promise.race([exited.then(() => false), sleep(30_000).then(() => true)]);
    if (killed) {
      p.kill('SIGKILL');
      await exited;
    }
    this.proc = null;
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function fail2banChild(plan: Plan): Promise<SideResult> {
  assertPrivateNetns();
  const t = logTemplates();
  const f2b = new Fail2ban();
  const mon = await SetMonitor.start('addr-set-asterisk');
  try {
    await f2b.start();
    const pid = f2b.proc!.pid!;
    const sink: Sink<Buffer> = {
      prepare: (as, ls) => {
        const at = new Date();
        const parts: string[] = [];
        const n = Math.max(as.length, ls.length);
        for (let i = 0; i < n; i++) {
          if (i < as.length) parts.push(failureLines(t, as[i]!, at));
          if (i < ls.length) parts.push(legitLines(t, ls[i]!, at));
        }
        return Buffer.from(parts.join(''), 'latin1');
      },
      deliver: (bytes) => appendFileSync(f2b.log, bytes),
    };
    const cpu0 = procCpu(pid);
    const out = await attack(plan, sink, mon, BURST_BOUND_MS, 2500);
    const cpu1 = procCpu(pid);
    const inSet = await listSet('inet', 'f2b-table', 'addr-set-asterisk');
    const legitBanned = [...inSet].filter((a) => a.startsWith('198.19.')).length;
    const bursts = [reportBurst(out.warmup, 'warm-up', inSet), reportBurst(out.burst, 'measured', inSet), reportBurst(out.small, 'small', inSet)];
    await f2b.stop();

    // restore: N rows in bips (what fail2ban keeps for current bans), then a fresh start
    const restore: SideResult['restore'] = [];
    for (const size of plan.restoreSizes) {
      const db = new Database(f2b.db);
      const now = Math.floor(Date.now() / 1000);
      db.prepare('DELETE FROM bips').run();
      db.prepare('DELETE FROM bans').run();
      const ins = db.prepare('INSERT INTO bips (ip, jail, timeofban, bantime, bancount, data) VALUES (?, ?, ?, ?, 1, ?)');
      const insB = db.prepare('INSERT INTO bans (jail, ip, timeofban, bantime, bancount, data) VALUES (?, ?, ?, ?, 1, ?)');
      db.transaction(() => {
        for (let i = 0; i < size; i++) {
          const ip = restoreAddr(i);
          const data = JSON.stringify({ failures: M, ip4: ip });
          ins.run(ip, 'asterisk', now, 3600, data);
          insB.run('asterisk', ip, now, 3600, data);
        }
      })();
      db.close();
      const want = Array.from({ length: size }, (_, i) => restoreAddr(i));
      mon.seen.clear();
      const t0 = performance.now();
      await f2b.start();
      const all = await mon.waitFor(want, plan.restoreBoundS * 1000 - (performance.now() - t0));
      const present = want.filter((a) => mon.seen.has(a)).length;
      const last = all ? Math.max(...want.map((a) => mon.seen.get(a)!)) : NaN;
      restore.push({ size, seconds: all ? (last - t0) / 1000 : null, present, bounded: !all });
      // a bounded stop: fail2ban unbans everything on stop (set flush with the nftables action)
      await f2b.stop();
    }
    return {
      side: 'fail2ban',
      mode: 'fail2ban 1.0.2, backend polling, action nftables[type=allports]',
      latencyMs: out.latencyMs,
      latencyMissing: out.latencyMissing,
      bursts,
      cpuSeconds: cpu1.own - cpu0.own + (cpu1.children - cpu0.children),
      cpuNote: `fail2ban-server ${(cpu1.own - cpu0.own).toFixed(2)} s + its nft children ${(cpu1.children - cpu0.children).toFixed(2)} s`,
      restore,
      legitBanned,
      instrument: mon.instrument,
      overflows: mon.overflows,
    };
  } finally {
    mon.stop();
    await f2b.stop().catch(() => undefined);
    f2b.cleanup();
  }
}

// ------------------------------------------------------------------ guardian side

const dropTable = () => pexec(NFT, ['delete', 'table', 'inet', TABLE]).then(() => undefined, () => undefined);

/** `pbx-guardian run` (the real daemon, its own process like fail2ban-server), logging JSON at
 *  info level to a pipe as under systemd; the moment of each ban is read from its log. */
class GuardianProcess {
  readonly decided = new Map<string, number>();
  readonly proc: ChildProcess;
  private buf = '';
  private stderr = '';
  constructor(configPath: string) {
    // PBXG_BENCH_DAEMON_NODE_ARGS: extra node options for the daemon, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
    const nodeArgs = (process.env.PBXG_BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const args = [...nodeArgs, join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js'), 'run', '--config', configPath];
    this.proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (b: Buffer) => (this.stderr = (this.stderr + b.toString()).slice(-2000)));
    this.proc.stdout!.on('data', (b: Buffer) => {
      this.buf += b.toString();
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (!line.includes('"event":"ban"')) continue;
        const rec = JSON.parse(line) as { time: number; address: string };
        // pino's time is epoch ms; on this process's performance.now() timeline:
        this.decided.set(rec.address, rec.time - performance.timeOrigin);
      }
    });
  }
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000).then(() => this.proc.kill('SIGKILL'))]);
  }
  get lastError(): string {
    return this.stderr;
  }
}

async function guardianChild(plan: Plan): Promise<SideResult> {
  assertPrivateNetns();
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-gbench-'));
  await pexec('/usr/sbin/ip', ['link', 'set', 'lo', 'up']); // loopback is down in a new namespace
  const sim = new AmiSimulator({ fixturesDir: join(FIXTURES, 'ami'), username: 'guardian', secret: 'bench', loginFailDelayMs: 10 });
  await sim.listen();
  const mon = await SetMonitor.start('ban4');
  const fwConfig = { ...defaultFirewallConfig, backend: 'nftables' as const, table: TABLE, reconcileIntervalMs: 0 };
  const cfgFor = (stateDir: string, ami: boolean) =>
    buildConfig({
      stateDir,
      logLevel: 'silent',
      ami: { enabled: ami, host: '127.0.0.1', port: sim.port, username: 'guardian', secret: 'bench' },
      firewall: { backend: 'nftables', table: TABLE, reconcileIntervalMs: 0 },
      metrics: { enabled: false },
      admin: { socket: join(dir, 'admin.sock') },
    });
  let daemon: GuardianProcess | null = null;
  try {
    const configPath = join(dir, 'guardian.yaml');
    const daemonConfig = {
      stateDir: join(dir, 'state'),
      logLevel: 'info',
      ami: { host: '127.0.0.1', port: sim.port, username: 'guardian', secret: 'bench' },
      firewall: { backend: 'nftables', table: TABLE, reconcileIntervalMs: 0 },
      metrics: { enabled: false },
      admin: { socket: join(dir, 'admin.sock') },
    };
    writeFileSync(configPath, JSON.stringify(daemonConfig, null, 2), { mode: 0o600 }); // JSON is YAML
    daemon = new GuardianProcess(configPath);
    const pid = daemon.proc.pid!;
    const endLogin = Date.now() + 15_000;
    while (sim.loggedIn === 0 && Date.now() < endLogin && daemon.proc.exitCode === null) await sleep(10);
    if (sim.loggedIn === 0) throw new Error(`the daemon did not log in to the AMI simulator: ${daemon.lastError}`);
    const fail = loadTemplate(join(FIXTURES, 'ami'), 'security-sip-register-wrong-password.raw');
    const ok = loadTemplate(join(FIXTURES, 'ami'), 'security-sip-register-success.raw');
    const sink: Sink<PreparedEvents> = {
      prepare: (as, ls) => {
        const parts: string[] = [];
        const n = Math.max(as.length, ls.length);
        for (let i = 0; i < n; i++) {
          if (i < as.length) parts.push(replayBytes(fail, as[i]!));
          if (i < ls.length) parts.push(replayBytes(ok, ls[i]!));
        }
        return sim.prepare(Buffer.from(parts.join(''), 'latin1'));
      },
      deliver: (prepared) => sim.broadcast(prepared),
    };
    const cpu0 = procCpu(pid);
    const out = await attack(plan, sink, mon, BURST_BOUND_MS, 300);
    const cpu1 = procCpu(pid);
    const inSet = await listSet('inet', TABLE, 'ban4');
    const legitBanned = [...inSet].filter((a) => a.startsWith('198.19.')).length;
    // ban lines can trail the kernel: the log is written asynchronously
    const all = [...out.warmup.addrs, ...out.burst.addrs, ...out.small.addrs];
    for (const end = Date.now() + 10_000; Date.now() < end && !all.every((a) => daemon!.decided.has(a)); ) await sleep(20);
    const bursts = [reportBurst(out.warmup, 'warm-up', inSet, daemon.decided), reportBurst(out.burst, 'measured', inSet, daemon.decided), reportBurst(out.small, 'small', inSet, daemon.decided)];
    const decidedLatencyMs = [...out.crossAt].filter(([a]) => daemon!.decided.has(a)).map(([a, t]) => daemon!.decided.get(a)! - t);
    await daemon.stop(); // kernel state stays
    await dropTable();

    // restore: a Store with N active bans, then a new daemon (no AMI): createBackend + setup +
    // Enforcer.start() (one transaction) until every element is present
    const restore: SideResult['restore'] = [];
    for (const size of plan.restoreSizes) {
      const stateDir = join(dir, `restore-${size}`);
      const store = Store.open(stateDir);
      const now = Date.now();
      store.db.transaction(() => {
        for (let i = 0; i < size; i++) {
          store.saveBan({ target: restoreAddr(i), family: 4, isNetwork: false, createdAt: now, expiresAt: now + 3600_000, rule: 'auth-failure', source: 'rule', reason: 'bench', count: M });
        }
      })();
      store.close();
      const want = Array.from({ length: size }, (_, i) => restoreAddr(i));
      mon.seen.clear();
      const t0 = performance.now();
      const be = await createBackend(fwConfig, silent);
      const d = await startDaemon({ config: cfgFor(stateDir, false), backend: be, logger: silent, adminSocket: false });
      const startedS = (performance.now() - t0) / 1000;
      const all = await mon.waitFor(want, plan.restoreBoundS * 1000);
      const last = all ? Math.max(...want.map((a) => mon.seen.get(a)!)) : NaN;
      const listed = await listSet('inet', TABLE, 'ban4');
      const present = want.filter((a) => listed.has(a)).length;
      restore.push({ size, seconds: all ? Math.max(startedS, (last - t0) / 1000) : null, present, bounded: !all, startedS });
      await d.stop();
      await dropTable();
      await sleep(500);
    }
    return {
      side: 'guardian',
      mode: 'pbx-guardian run (own process), nftables backend',
      latencyMs: out.latencyMs,
      latencyMissing: out.latencyMissing,
      decidedLatencyMs,
      bursts,
      cpuSeconds: cpu1.own - cpu0.own + (cpu1.children - cpu0.children),
      cpuNote: `the pbx-guardian run process ${(cpu1.own - cpu0.own).toFixed(2)} s + its children ${(cpu1.children - cpu0.children).toFixed(2)} s (/proc/<pid>/stat)`,
      restore,
      legitBanned,
      instrument: mon.instrument,
      overflows: mon.overflows,
    };
  } finally {
    mon.stop();
    await daemon?.stop();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ orchestration

function skipReason(): string | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root (private network namespaces, nftables)';
  for (const p of [UNSHARE, NFT, F2B_SERVER, F2B_CLIENT]) {
    try {
      accessSync(p, constants.X_OK);
    } catch {
      return `${p} is missing`;
    }
  }
  return null;
}

function inNetns(side: 'fail2ban' | 'guardian', quick: boolean, timeoutMs: number): Promise<SideResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(UNSHARE, ['-n', process.execPath, SELF, `--child=${side}`, ...(quick ? ['--quick'] : [])], {
      env: { ...process.env, PBXG_PARENT_NETNS: readlinkSync('/proc/self/ns/net') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', reject);
    c.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`${side} child exited ${code}: ${err.slice(-1500)}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as SideResult);
      } catch {
        reject(new Error(`${side} child printed no JSON: ${out.slice(-500)} ${err.slice(-500)}`));
      }
    });
  });
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const r2 = (x: number) => Math.round(x * 100) / 100;

export interface Row extends BenchResult {
  anchor?: string;
  ratio?: number;
}

export function compare(g: SideResult, f: SideResult, plan: Plan): Row[] {
  const rows: Row[] = [];
  const gP50 = pct(g.latencyMs, 50);
  const gP99 = pct(g.latencyMs, 99);
  const fP50 = pct(f.latencyMs, 50);
  const fP99 = pct(f.latencyMs, 99);
  const lNote = (s: SideResult) => `${s.latencyMs.length}/${plan.latencyAddrs} addresses banned${s.latencyMissing ? ` (${s.latencyMissing} MISSING)` : ''}; M-th failure written → element in the kernel set (${s.instrument}${s.overflows ? `, ${s.overflows} NOTIFICATION OVERFLOWS` : ''})`;
  rows.push({ name: 'vs fail2ban: ban latency p50, guardian', value: r1(gP50), unit: 'ms', note: lNote(g) });
  rows.push({
    name: 'vs fail2ban: ban latency p99, guardian',
    value: r1(gP99),
    unit: 'ms',
    target: `<= fail2ban p50 / 25`,
    ok: gP99 * 25 <= fP50 && g.latencyMissing === 0,
    anchor: `fail2ban p50 ${r1(fP50)} ms`,
    ratio: r1(fP50 / gP99),
    note: g.decidedLatencyMs?.length ? `ban decided (the daemon's log line, ms resolution): p50 ${r1(pct(g.decidedLatencyMs, 50))} ms, p99 ${r1(pct(g.decidedLatencyMs, 99))} ms` : undefined,
  });
  rows.push({ name: 'vs fail2ban: ban latency p50, fail2ban', value: r1(fP50), unit: 'ms', note: lNote(f) });
  rows.push({ name: 'vs fail2ban: ban latency p99, fail2ban', value: r1(fP99), unit: 'ms' });
  const burstOf = (s: SideResult, role: BurstReport['role']) => s.bursts.find((b) => b.role === role)!;
  const rate = (b: BurstReport) => (b.seconds ? b.size / b.seconds : NaN);
  const bNote = (b: BurstReport, warm: BurstReport | null) =>
    `${b.size} addresses × ${M} failures written at once (${r1(b.writtenMs)} ms of writes), ${Math.ceil(b.size / 10)} legitimate logins per round; ${b.verified}/${b.size} verified in the set` +
    `${b.seconds === null ? `; ${b.missing} not banned within ${BURST_BOUND_MS / 1000} s` : ''}; ban latency p50 ${r1(b.p50Ms)} ms, p99 ${r1(b.p99Ms)} ms` +
    `${b.lastDecidedMs !== undefined ? `; last ban decided (log line) at ${r1(b.lastDecidedMs)} ms` : ''}` +
    `${warm ? `; the warm-up burst before it (same size, other addresses): ${warm.seconds === null ? 'incomplete' : `${Math.round(rate(warm))} bans/s`}` : ''}`;
  for (const role of ['measured', 'small'] as const) {
    const gb = burstOf(g, role);
    const fb = burstOf(f, role);
    const main = role === 'measured';
    rows.push({
      name: `vs fail2ban: burst bans/s (${gb.size.toLocaleString('en')} addresses), guardian`,
      value: Math.round(rate(gb)),
      unit: 'bans/s',
      target: main ? '>= 100x fail2ban' : undefined,
      ok: main ? rate(gb) >= 100 * rate(fb) && gb.verified === gb.size : undefined,
      anchor: `fail2ban ${r1(rate(fb))} bans/s`,
      ratio: r1(rate(gb) / rate(fb)),
      note: bNote(gb, main ? burstOf(g, 'warm-up') : null),
    });
    rows.push({ name: `vs fail2ban: burst bans/s (${fb.size.toLocaleString('en')} addresses), fail2ban`, value: r1(rate(fb)), unit: 'bans/s', note: bNote(fb, main ? burstOf(f, 'warm-up') : null) });
  }
  rows.push({ name: 'vs fail2ban: CPU for the attack, guardian', value: r2(g.cpuSeconds), unit: 's', anchor: `fail2ban ${r2(f.cpuSeconds)} s`, ratio: r1(f.cpuSeconds / g.cpuSeconds), note: g.cpuNote });
  rows.push({ name: 'vs fail2ban: CPU for the attack, fail2ban', value: r2(f.cpuSeconds), unit: 's', note: f.cpuNote });
  for (const size of plan.restoreSizes) {
    const gr = g.restore.find((r) => r.size === size);
    const fr = f.restore.find((r) => r.size === size);
    if (!gr || !fr) continue;
    const fs = fr.seconds;
    const fText = fs === null ? `> ${plan.restoreBoundS} s (${fr.present}/${size} restored when stopped)` : `${r2(fs)} s`;
    const ratio = gr.seconds !== null ? (fs !== null ? fs / gr.seconds : plan.restoreBoundS / gr.seconds) : NaN;
    rows.push({
      name: `vs fail2ban: restore ${size.toLocaleString('en')} bans, guardian`,
      value: gr.seconds === null ? NaN : r2(gr.seconds),
      unit: 's',
      target: '>= 20x faster',
      ok: gr.seconds !== null && ratio >= 20 && gr.present === size,
      anchor: `fail2ban ${fText}`,
      ratio: fs === null ? undefined : r1(ratio),
      note: `${gr.present}/${size} in the kernel set; startDaemon (store load + setup + one transaction) returned after ${gr.startedS !== undefined ? r2(gr.startedS) : '?'} s, the value is when the kernel announced the last element${fs === null ? `; ratio > ${r1(ratio)}x (fail2ban bounded at ${plan.restoreBoundS} s)` : ''}`,
    });
    rows.push({ name: `vs fail2ban: restore ${size.toLocaleString('en')} bans, fail2ban`, value: fs === null ? plan.restoreBoundS : r2(fs), unit: 's', note: fs === null ? `> ${plan.restoreBoundS} s: ${fr.present}/${size} restored when stopped` : `${fr.present}/${size}` });
  }
  rows.push({ name: 'vs fail2ban: legitimate addresses banned (guardian / fail2ban)', value: g.legitBanned, unit: 'addresses', target: '0', ok: g.legitBanned === 0, note: `fail2ban: ${f.legitBanned}` });
  return rows;
}

export async function run(opts: { quick?: boolean } = {}): Promise<Row[]> {
  const skip = skipReason();
  if (skip) return [{ name: 'vs fail2ban: skipped', value: NaN, unit: '-', note: skip }];
  const plan = opts.quick ? QUICK : FULL;
  const bound = (plan.restoreBoundS * plan.restoreSizes.length + 300) * 1000;
  const g = await inNetns('guardian', !!opts.quick, bound);
  const f = await inNetns('fail2ban', !!opts.quick, bound);
  return compare(g, f, plan);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const child = process.argv.find((a) => a.startsWith('--child='))?.slice(8);
  const quick = process.argv.includes('--quick');
  const plan = quick ? QUICK : FULL;
  if (child === 'fail2ban' || child === 'guardian') {
    (child === 'fail2ban' ? fail2banChild(plan) : guardianChild(plan)).then(
      (r) => {
        console.log(JSON.stringify(r));
        process.exit(0);
      },
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  } else {
    run({ quick }).then(
      (rows) => {
        for (const r of rows) console.log(`${r.name}: ${r.value} ${r.unit}${r.target ? ` (target ${r.target}: ${r.ok ? 'met' : 'NOT met'})` : ''}${r.anchor ? ` [${r.anchor}${r.ratio !== undefined ? `, ratio ${r.ratio}x` : ''}]` : ''}${r.note ? ` — ${r.note}` : ''}`);
      },
      (err: unknown) => {
        console.error(err);
        process.exitCode = 1;
      },
    );
  }
}
