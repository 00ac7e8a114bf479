/**
 * The attack both sides receive in bench/fail2ban.ts: plans, addresses, the schedule (latency
 * phase, bursts), and what each side reports.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import type { SetMonitor } from '../set-monitor.js';

export const M = 5; // failures per address = maxretry = our rule's count
/** a burst not fully banned by then is reported incomplete */
export const BURST_BOUND_MS = 180_000;

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
  side: 'fail2ban' | 'guardian' | 'crowdsec';
  mode: string;
  latencyMs: number[];
  latencyMissing: number;
  /** guardian: M-th failure written → its ban line in the daemon's log */
  decidedLatencyMs?: number[];
  bursts: BurstReport[];
  cpuSeconds: number;
  cpuNote: string;
  restore: Array<{ size: number; seconds: number | null; present: number; bounded: boolean; startedS?: number }>;
  /** the sustained attack after phases 1-2 (see attemptsPhase), when the side ran it */
  attempts?: AttemptsReport;
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

export const attacker = (i: number) => `198.18.${(i >> 8) & 255}.${(i & 255) + 0}`;
export const legit = (i: number) => `198.19.${(i >> 8) & 255}.${i & 255}`;
export const restoreAddr = (i: number) => `100.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`;
const lat0 = 0; // attacker index ranges: latency [0, L), burst [1000, 1000 + N), warm-up [20000, 20000 + N), small burst [40000, ...)
const burst0 = 1000;
const warm0 = 20_000;
const small0 = 40_000;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export function assertPrivateNetns(): void {
  const parent = process.env.PBXG_PARENT_NETNS;
  const mine = readlinkSync('/proc/self/ns/net');
  if (!parent || parent === mine) throw new Error(`refusing to run: not in a private network namespace (${mine})`);
}

// ------------------------------------------------------------------ the attack schedule

/** The bytes of an attack for one side, and how they reach it. */
export interface Sink<T> {
  /** failures from `addresses` and legitimate traffic from `legit`, interleaved, made ready to
   *  deliver (for the guardian: filtered by its login's Events mask, as Asterisk does when it
   *  generates events) */
  prepare(addresses: string[], legit: string[]): T;
  /** written at once: appended to the log (fail2ban) or sent as AMI frames (guardian) */
  deliver(prepared: T): void;
}

export interface BurstOutcome {
  latencyMs: number[];
  seconds: number | null;
  missing: number;
  addrs: string[];
  /** ms after the first write: when the writes returned */
  writtenMs: number;
  /** performance.now() of the first write */
  start: number;
}

export interface AttackOutcome {
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
export async function burstPhase<T>(
  sink: Sink<T>,
  mon: SetMonitor,
  first: number,
  n: number,
  legitBase: number,
  boundMs: number,
  m = M,
): Promise<BurstOutcome> {
  const addrs = Array.from({ length: n }, (_, i) => attacker(first + i));
  const legitPer = Math.ceil(n / 10);
  const rounds = Array.from({ length: m }, (_, k) =>
    sink.prepare(
      addrs,
      Array.from({ length: legitPer }, (_, j) => legit(legitBase + k * legitPer + j)),
    ),
  );
  const start = performance.now();
  for (const bytes of rounds) sink.deliver(bytes);
  const writtenMs = performance.now() - start;
  const all = await mon.waitFor(addrs, boundMs);
  const got = addrs.filter((a) => mon.seen.has(a));
  const last = got.length ? Math.max(...got.map((a) => mon.seen.get(a)!)) : NaN;
  return { latencyMs: got.map((a) => mon.seen.get(a)! - start), seconds: all ? (last - start) / 1000 : null, missing: n - got.length, addrs, writtenMs, start };
}

/** How a side's detector counts: `m` failures per address cross its threshold (default M, the
 *  guardian's rule and fail2ban's maxretry); `leadMs`: write an address's first m-1 failures only
 *  that long before its threshold one, for a detector that forgets (CrowdSec's leaky bucket leaks
 *  one failure per 10 s, so failures written up front would no longer be counted when the last
 *  latency-phase address crosses 12 s later). */
export interface Threshold {
  m: number;
  leadMs?: number;
}

export async function attack<T>(plan: Plan, sink: Sink<T>, mon: SetMonitor, boundMs: number, pause: number, th: Threshold = { m: M }): Promise<AttackOutcome> {
  const m = th.m;
  const crossAt = new Map<string, number>();
  // 1. latency
  const lat = Array.from({ length: plan.latencyAddrs }, (_, i) => attacker(lat0 + i));
  const before = (as: string[], k0: number) => {
    for (let k = 0; k < m - 1; k++) sink.deliver(sink.prepare(as, [legit(k0 + k)]));
  };
  const lead = th.leadMs;
  if (lead === undefined) {
    before(lat, 0);
    await sleep(pause); // let a polling reader take the first m-1 lines in
  }
  const t0 = performance.now() + (lead ?? 0);
  let pre = 0; // with a lead: the next address whose first m-1 failures are still to be written
  for (let i = 0; i < lat.length; i++) {
    const due = t0 + i * 100;
    for (;;) {
      while (lead !== undefined && pre < lat.length && t0 + pre * 100 - lead <= performance.now()) before([lat[pre]!], 200 + pre++ * m);
      if (performance.now() >= due) break;
      await sleep(Math.max(1, Math.min(due, lead !== undefined && pre < lat.length ? t0 + pre * 100 - lead : due) - performance.now()));
    }
    const bytes = sink.prepare([lat[i]!], [legit(100 + i)]);
    crossAt.set(lat[i]!, performance.now());
    sink.deliver(bytes);
  }
  await mon.waitFor(lat, boundMs);
  const latencyMs = lat.filter((a) => mon.seen.has(a)).map((a) => mon.seen.get(a)! - crossAt.get(a)!);
  await sleep(pause);

  // 2. bursts: a warm-up one, then the measured one, each of N addresses
  const warmup = await burstPhase(sink, mon, warm0, plan.burstAddrs, 30_000, boundMs, m);
  await sleep(pause);
  const burst = await burstPhase(sink, mon, burst0, plan.burstAddrs, 1000, boundMs, m);
  await sleep(pause);
  const small = await burstPhase(sink, mon, small0, plan.smallBurstAddrs, 60_000, boundMs, m);
  return { latencyMs, latencyMissing: lat.length - latencyMs.length, crossAt, warmup, burst, small };
}

/** What attackers that keep trying got through before their ban: each sends one failure every
 *  `everyMs` until it has sent `max` or its address is in the kernel set (from then on the
 *  firewall drops its packets and Asterisk logs nothing more of it). */
export interface AttemptsReport {
  attackers: number;
  max: number;
  everyMs: number;
  /** failures written per attacker before its element appeared */
  p50: number;
  min: number;
  maxSeen: number;
  /** attackers whose `max` attempts all got through */
  allThrough: number;
  seconds: number;
}

export const ATTEMPTS = { attackers: 500, max: 30, everyMs: 100 };
const attempts0 = 50_000; // attacker indexes [50000, 50500); legitimate traffic from legit(62000 + …)

export async function attemptsPhase<T>(
  sink: Sink<T>,
  mon: SetMonitor,
  attackers = ATTEMPTS.attackers,
  max = ATTEMPTS.max,
  everyMs = ATTEMPTS.everyMs,
): Promise<AttemptsReport> {
  const addrs = Array.from({ length: attackers }, (_, i) => attacker(attempts0 + i));
  const sent = new Map(addrs.map((a) => [a, 0]));
  const legitPer = Math.max(1, Math.ceil(attackers / 10));
  const t0 = performance.now();
  for (let r = 0; r < max; r++) {
    const due = t0 + r * everyMs;
    while (performance.now() < due) await sleep(Math.max(1, due - performance.now()));
    const open = addrs.filter((a) => !mon.seen.has(a));
    if (open.length === 0) break;
    for (const a of open) sent.set(a, sent.get(a)! + 1);
    sink.deliver(
      sink.prepare(
        open,
        Array.from({ length: legitPer }, (_, j) => legit(62_000 + ((r * legitPer + j) % 3000))),
      ),
    );
  }
  const seconds = (performance.now() - t0) / 1000;
  await mon.waitFor(addrs, 10_000); // the last ones in flight
  const counts = addrs.map((a) => sent.get(a)!);
  return {
    attackers,
    max,
    everyMs,
    p50: pct(counts, 50),
    min: Math.min(...counts),
    maxSeen: Math.max(...counts),
    allThrough: counts.filter((c) => c === max).length,
    seconds,
  };
}

export function procCpu(pid: number): { own: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = 100; // CLK_TCK on Linux
  // fields after ")": state(0) ... utime(11) stime(12) cutime(13) cstime(14)
  return { own: (Number(f[11]) + Number(f[12])) / hz, children: (Number(f[13]) + Number(f[14])) / hz };
}

/** CPU seconds a process (own, and its waited-for children) spent between two procCpu readings. */
export function cpuBetween(a: { own: number; children: number }, b: { own: number; children: number }): { own: number; children: number; total: number } {
  const own = b.own - a.own;
  const children = b.children - a.children;
  return { own, children, total: own + children };
}

/** What both sides report of the attack phases: the latencies, each burst checked against the
 *  set as listed afterwards, legitimate addresses banned, and how ban moments were taken. */
export function attackReport(
  out: AttackOutcome,
  inSet: Set<string>,
  mon: SetMonitor,
  decided?: Map<string, number>,
): Pick<SideResult, 'latencyMs' | 'latencyMissing' | 'bursts' | 'legitBanned' | 'instrument' | 'overflows'> {
  return {
    latencyMs: out.latencyMs,
    latencyMissing: out.latencyMissing,
    bursts: [
      reportBurst(out.warmup, 'warm-up', inSet, decided),
      reportBurst(out.burst, 'measured', inSet, decided),
      reportBurst(out.small, 'small', inSet, decided),
    ],
    legitBanned: [...inSet].filter((a) => a.startsWith('198.19.')).length,
    instrument: mon.instrument,
    overflows: mon.overflows,
  };
}
