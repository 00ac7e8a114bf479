/**
 * The guardian side of bench/fail2ban.ts: AmiSimulator (real TCP, in the bench process) →
 * `pbx-guardian run` (the real daemon in its own process) → nftables.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { buildConfig, PACKAGE_ROOT } from '../../src/config/index.js';
import { AmiSimulator, type PreparedEvents } from '../../src/demo/ami-simulator.js';
import { loadTemplate, replayBytes } from '../../src/demo/attack.js';
import { createBackend, defaultFirewallConfig } from '../../src/firewall/index.js';
import { startDaemon } from '../../src/main.js';
import { Store } from '../../src/store/index.js';
import { listSet, SetMonitor } from '../set-monitor.js';
import {
  assertPrivateNetns,
  attack,
  attemptsPhase,
  BURST_BOUND_MS,
  M,
  procCpu,
  attackReport,
  cpuBetween,
  restoreAddr,
  sleep,
  type Plan,
  type SideResult,
  type Sink,
} from './schedule.js';

const NFT = '/usr/sbin/nft';
const TABLE = 'pbxg_f2bbench';
const pexec = promisify(execFile);
const silent = pino({ level: 'silent' });
const FIXTURES = join(PACKAGE_ROOT, 'test', 'fixtures');

const dropTable = () =>
  pexec(NFT, ['delete', 'table', 'inet', TABLE]).then(
    () => undefined,
    () => undefined,
  );

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

export async function guardianChild(plan: Plan): Promise<SideResult> {
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
      // PBXG_BENCH_EXTRA='{"fraud":{"enabled":false}}': what a stage costs on the security path
      ...(JSON.parse(process.env.PBXG_BENCH_EXTRA ?? '{}') as object),
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
    // ban lines can trail the kernel: the log is written asynchronously
    const all = [...out.warmup.addrs, ...out.burst.addrs, ...out.small.addrs];
    for (const end = Date.now() + 10_000; Date.now() < end && !all.every((a) => daemon!.decided.has(a));) await sleep(20);
    const report = attackReport(out, inSet, mon, daemon.decided);
    const cpu = cpuBetween(cpu0, cpu1);
    const attempts = await attemptsPhase(sink, mon);
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
          store.saveBan({
            target: restoreAddr(i),
            family: 4,
            isNetwork: false,
            createdAt: now,
            expiresAt: now + 3600_000,
            rule: 'auth-failure',
            source: 'rule',
            reason: 'bench',
            count: M,
          });
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
      ...report,
      attempts,
      decidedLatencyMs,
      cpuSeconds: cpu.total,
      cpuNote: `the pbx-guardian run process ${cpu.own.toFixed(2)} s + its children ${cpu.children.toFixed(2)} s (/proc/<pid>/stat)`,
      restore,
    };
  } finally {
    mon.stop();
    await daemon?.stop();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
