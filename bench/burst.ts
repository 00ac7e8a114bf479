/**
 * Burst benchmark (issue 19): N attackers × 5 failures written at once into the daemon's AMI
 * socket → bans/s until the last element is in the kernel set, and the daemon's event-loop lag
 * during it. The real `pbx-guardian run` in its own process (JSON log at info level to a pipe, as
 * under systemd), AmiSimulator (real TCP, in the bench process), nftables in a private network
 * namespace, kernel notifications of new elements stamped on receipt (bench/set-monitor.ts).
 * A warm-up burst of other addresses first (JIT, caches; reported, not held to the target).
 * Lag: bench/loop-lag-probe.ts preloaded in the daemon, 10 ms timer, samples from the first write
 * to the last element.
 *   node dist/bench/burst.js [--quick] [--attackers 20000,100000]   (root)
 *   PBXG_BENCH_DAEMON_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the daemon
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './types.js';
import { childRowsInNetns, skipReason } from './firewall.js';
import { listSet, type SetMonitor } from './set-monitor.js';
import { daemonRig, spawnDaemon } from './daemon-rig.js';
import { pct, procCpu, sleep } from './fail2ban/schedule.js';
import { PACKAGE_ROOT } from '../src/config/index.js';
import type { AmiSimulator } from '../src/demo/ami-simulator.js';
import { loadTemplate, replayBytes } from '../src/demo/attack.js';

const SELF = fileURLToPath(import.meta.url);
const TABLE = 'pbxg_burst';
const M = 5;
const FIXTURES = join(PACKAGE_ROOT, 'test', 'fixtures', 'ami');
const BOUND_MS = 120_000;
const r1 = (x: number) => Math.round(x * 10) / 10;

/** 198.18.0.0/15 (benchmark range): up to 131,072 attackers; `base` separates the bursts */
const attacker = (i: number) => `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;
const legit = (i: number) => `203.0.113.${i & 255}`;

interface Burst {
  n: number;
  seconds: number | null;
  present: number;
  lagP99: number;
  lagMax: number;
  lagSamples: number;
  writtenMs: number;
  /** daemon CPU seconds (user + system), first write → last element */
  cpuS: number;
}

async function burst(pid: number, sim: AmiSimulator, mon: SetMonitor, lagFile: string, first: number, n: number): Promise<Burst> {
  const fail = loadTemplate(FIXTURES, 'security-sip-register-wrong-password.raw');
  const ok = loadTemplate(FIXTURES, 'security-sip-register-success.raw');
  const addrs = Array.from({ length: n }, (_, i) => attacker(first + i));
  const rounds = Array.from({ length: M }, (_, k) => {
    const parts: string[] = [];
    for (let i = 0; i < n; i++) {
      parts.push(replayBytes(fail, addrs[i]!));
      if (i % 10 === 0) parts.push(replayBytes(ok, legit(k + i)));
    }
    return sim.prepare(Buffer.from(parts.join(''), 'latin1'));
  });
  const cpu0 = procCpu(pid).own;
  const t0 = Date.now();
  const start = performance.now();
  for (const r of rounds) sim.broadcast(r);
  const writtenMs = performance.now() - start;
  let next = 0;
  const end = start + BOUND_MS;
  while (performance.now() < end) {
    while (next < n && mon.seen.has(addrs[next]!)) next++;
    if (next === n) break;
    await sleep(5);
  }
  const cpuS = procCpu(pid).own - cpu0;
  const got = addrs.filter((a) => mon.seen.has(a));
  const last = got.length ? Math.max(...got.map((a) => mon.seen.get(a)!)) : NaN;
  const t1 = t0 + (last - start);
  await sleep(300); // the probe flushes every 100 ms
  const lags = readFileSync(lagFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').map(Number) as [number, number])
    .filter(([t]) => t >= t0 && t <= t1 + 10)
    .map(([, v]) => v);
  const listed = await listSet('inet', TABLE, 'ban4');
  return {
    n,
    seconds: next === n ? (last - start) / 1000 : null,
    present: addrs.filter((a) => listed.has(a)).length,
    lagP99: pct(lags, 99),
    lagMax: lags.length ? Math.max(...lags) : NaN,
    lagSamples: lags.length,
    writtenMs,
    cpuS,
  };
}

async function child(sizes: number[], warm: number): Promise<BenchResult[]> {
  const rig = await daemonRig('pbxg-burst-', () => ({
    firewall: { backend: 'nftables', table: TABLE, reconcileIntervalMs: 0 },
    metrics: { enabled: false },
  }));
  const { dir, sim, mon, lagFile } = rig;
  const d = spawnDaemon(rig);
  const rows: BenchResult[] = [];
  try {
    for (const end = Date.now() + 15_000; sim.loggedIn === 0 && Date.now() < end && d.exitCode === null;) await sleep(10);
    if (sim.loggedIn === 0) throw new Error('the daemon did not log in to the AMI simulator');
    const w = await burst(d.pid!, sim, mon, lagFile, 0, warm);
    let first = warm;
    const results: Burst[] = [];
    for (const n of sizes) {
      await sleep(1000);
      results.push(await burst(d.pid!, sim, mon, lagFile, first, n));
      first += n;
    }
    const note = (b: Burst) =>
      `${b.present}/${b.n} in the set (nft -j list); ${b.seconds === null ? `NOT ALL within ${BOUND_MS / 1000} s` : `${r1(b.seconds * 1000)} ms`} from the first write to the last element (notifications${mon.overflows ? `, ${mon.overflows} OVERFLOWS` : ''}); written in ${r1(b.writtenMs)} ms; warm-up burst ${w.n}: ${w.seconds === null ? 'not all' : `${Math.round(w.n / w.seconds)} bans/s`}`;
    for (const b of results) {
      rows.push({
        name: `burst: ${b.n.toLocaleString('en')} attackers × ${M} failures at once → all in the kernel, bans/s`,
        value: b.seconds === null ? 0 : Math.round(b.n / b.seconds),
        unit: 'bans/s',
        target: '≥ 50000',
        ok: b.seconds !== null && b.n / b.seconds >= 50_000 && b.present === b.n,
        note: note(b),
      });
      rows.push({
        name: `burst: ${b.n.toLocaleString('en')} attackers, daemon CPU per 1,000 bans`,
        value: r1((b.cpuS * 1e6) / b.n),
        unit: 'ms',
        note: `${b.cpuS.toFixed(2)} s of the pbx-guardian run process (user + system, /proc/<pid>/stat), first write → last element: the figure the load of the machine disturbs least`,
      });
      rows.push({
        name: `burst: ${b.n.toLocaleString('en')} attackers, daemon event-loop lag p99`,
        value: r1(b.lagP99),
        unit: 'ms',
        target: b.n >= 100_000 ? '< 50' : undefined,
        ok: b.n >= 100_000 ? b.lagP99 < 50 : undefined,
        note: `max ${r1(b.lagMax)} ms over ${b.lagSamples} samples of a 10 ms timer in the daemon, first write → last element`,
      });
    }
  } finally {
    d.kill('SIGTERM');
    await new Promise((r) => (d.exitCode !== null ? r(null) : d.once('exit', r)));
    mon.stop();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export async function run(opts: { quick?: boolean; sizes?: number[] } = {}): Promise<BenchResult[]> {
  const skip = skipReason();
  if (skip) return [{ name: 'burst benchmark skipped', value: 0, unit: '-', note: skip }];
  const sizes = opts.sizes ?? (opts.quick ? [5000] : [20_000, 100_000]);
  return childRowsInNetns(SELF, ['--child', `--sizes=${sizes.join(',')}`, `--warm=${opts.quick ? 2000 : 10_000}`], 'burst benchmark');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (k: string) => process.argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3);
  if (process.argv.includes('--child')) {
    child(arg('sizes')!.split(',').map(Number), Number(arg('warm'))).then(
      (rows) => console.log(JSON.stringify(rows)),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  } else {
    const sizes = arg('attackers')?.split(',').map(Number);
    run({ quick: process.argv.includes('--quick'), sizes }).then(
      (rows) => {
        for (const r of rows)
          console.log(`${r.name}  ${r.value} ${r.unit} ${r.target ?? ''} ${r.ok === undefined ? '' : r.ok ? 'ok' : 'MISS'}  ${r.note ?? ''}`);
      },
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  }
}
