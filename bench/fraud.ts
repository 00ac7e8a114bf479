/**
 * Fraud guard, black box on the AMI wire (issue 16): `pbx-guardian run` (whatever build is in
 * dist/) logs in to a synthetic Asterisk 22 (src/demo/call-traffic.ts: calls rendered from the real
 * transcripts, actions answered like Asterisk), and only what it sends back over AMI is measured.
 *
 *   1. attack under load: ordinary calls (internal and national) at `rate`/s from 100 accounts for
 *      `seconds`; a third of the way in, one account opens the fixtures' burst: 10 international,
 *      satellite, high-risk and premium calls, one every 250 ms, answered after 0.5 s, kept up.
 *      Measured: each burst call's AMI Hangup (the first Hangup action that names one of its
 *      channels, exact or /regex/), and the DBPut guardian-blocked/<account>;
 *        - from the crossing call: the later of the call's own DialBegin and the DialBegin of burst
 *          call `crossing` (default 5: the shipped burst policy is 5 risky calls in 30 s; set
 *          PBXG_BENCH_FRAUD_CROSSING when the policy differs) — the figure the targets are for;
 *        - from each call's own DialBegin, and from the burst's first call event, for reference.
 *      Any Hangup or DBPut that names an ordinary account is a false action, counted.
 *   2. office day: `officeCalls` ordinary calls from 100 accounts at human pace (one call at a time
 *      per account, 2–15 s between calls, 3–30 s of talk): internal, national, some international
 *      to ordinary countries, unanswered, busy and congested calls. Expected: no Hangup, no DBPut.
 *   3. CPU of the daemon process per 1,000 call events it received (Events mask applied).
 *
 * Missed targets are reported as MISS rows; only a harness failure throws. A build without a fraud
 * stage says "no fraud actions seen".
 *
 *   node dist/bench/run.js --only fraud [--quick]
 *   node dist/bench/fraud.js [--seconds 30] [--rate 200] [--office-calls 2000] [--quick]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE_ROOT } from '../src/config/index.js';
import { parseEventMask } from '../src/demo/ami-simulator.js';
import { CallTraffic, type ActionRecord, type CallKind, type CallSpec, type PlacedCall, type TrafficAccount } from '../src/demo/call-traffic.js';
import { buildHasFraudSection, DaemonProcess, fraudSection, GUARDIAN_EVENTS, WebhookCounter } from './fraud-daemon.js';
import type { BenchResult } from './types.js';

const FIXTURES = join(PACKAGE_ROOT, 'test', 'fixtures', 'ami-asterisk22-calls');
export const HANGUP_P99_MAX_MS = 500;
export const BLOCK_MAX_MS = 2000;
const BLOCK_FAMILY = 'guardian-blocked';
/** the fixtures' burst (call-pjsip-burst-international.raw): satellite, Cuba, Somalia, Tajikistan, premium 0900, ... */
export const BURST_NUMBERS = [
  '00881612345001',
  '00881612345002',
  '0088213540003',
  '+88213540004',
  '+5352540005',
  '0025261234006',
  '00992370000007',
  '09001234560008',
  '+37259120009',
  '0023767100010',
];
const BURST_SPACING_MS = 250;
const ATTACKER = '7001';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface FraudBenchOptions {
  seconds: number;
  rate: number;
  accounts: number;
  officeCalls: number;
  /** the burst call (1-based) that crosses the policy */
  crossing: number;
  /** how long after the burst's last call the bench waits for actions */
  settleMs: number;
}

export function accounts(n: number): TrafficAccount[] {
  const list = Array.from({ length: n }, (_, i) => ({ name: String(2000 + i), callerName: `Office ${2000 + i}`, address: `10.20.${i >> 8}.${(i & 255) + 1}` }));
  list.push({ name: ATTACKER, callerName: 'Reception', address: '198.51.100.77' });
  return list;
}

const rnd = (a: number, b: number) => a + Math.random() * (b - a);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
const national = () => `0${pick(['30', '40', '89', '221', '69'])}${Math.floor(rnd(1_000_000, 9_999_999))}`;
const abroad = () => `00${pick(['44', '33', '41', '31', '43'])}${Math.floor(rnd(100_000_000, 999_999_999))}`;

/** One ordinary call of account `a` (of `n`): `fast` is the background load (short calls). */
export function ordinaryCall(a: number, n: number, fast: boolean): CallSpec {
  const account = String(2000 + a);
  const other = () => String(2000 + ((a + 1 + Math.floor(Math.random() * (n - 1))) % n));
  const r = Math.random();
  const talk = fast ? rnd(1000, 3000) : rnd(3000, 30_000);
  const ring = fast ? rnd(200, 800) : rnd(1000, 4000);
  if (fast)
    return r < 0.8
      ? { account, dialled: other(), kind: 'internal', ringMs: ring, talkMs: talk }
      : { account, dialled: national(), kind: 'answered', ringMs: ring, talkMs: talk };
  const mix: Array<[number, () => CallSpec]> = [
    [0.55, () => ({ account, dialled: other(), kind: 'internal', ringMs: ring, talkMs: talk })],
    [0.85, () => ({ account, dialled: national(), kind: 'answered', ringMs: ring, talkMs: talk })],
    [0.89, () => ({ account, dialled: abroad(), kind: 'answered', ringMs: ring, talkMs: talk })],
    [0.93, () => ({ account, dialled: national(), kind: 'no-answer', ringMs: 8000, talkMs: 0 })],
    [0.97, () => ({ account, dialled: national(), kind: 'busy', ringMs: rnd(100, 400), talkMs: 0 })],
    [1.01, () => ({ account, dialled: national(), kind: 'congestion', ringMs: rnd(100, 400), talkMs: 0 })],
  ];
  return mix.find(([p]) => r < p)![1]();
}

/** p-th percentile (nearest rank) */
export function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const r2 = (x: number) => Math.round(x * 100) / 100;

/** The first Hangup action (from `from` on) that hung up one of the call's channels. */
function hangupOf(actions: ActionRecord[], call: PlacedCall): ActionRecord | undefined {
  const mine = [call.values.callerChannel, call.values.calleeChannel];
  return actions.find((a) => a.action.toLowerCase() === 'hangup' && a.hungUp.some((c) => mine.includes(c)));
}

const isHangup = (a: ActionRecord) => a.action.toLowerCase() === 'hangup';
const isBlock = (a: ActionRecord) => a.action.toLowerCase() === 'dbput' && a.headers.Family === BLOCK_FAMILY;

/** frames the daemon's session received of what was sent (its Events mask, as Asterisk filters) */
function delivered(sent: Map<string, number>, loginEvents: string | undefined): { all: number; call: number } {
  const mask = parseEventMask(loginEvents);
  let all = 0;
  let call = 0;
  for (const [priv, n] of sent) {
    const classes = priv
      .split(',')
      .map((c) => c.trim().toLowerCase())
      .filter((c) => c && c !== 'all');
    if (mask !== 'all' && !classes.every((c) => mask.has(c))) continue;
    all += n;
    if (classes.includes('call') || classes.includes('cdr')) call += n;
  }
  return { all, call };
}

const diff = (a: Map<string, number>, b: Map<string, number>) => new Map([...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)]));

function guardianEvents(w0: Map<string, number>, w1: Map<string, number>): string {
  const d = diff(w0, w1);
  const parts = [...d].filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
  return parts.length ? parts.join(', ') : `none of ${GUARDIAN_EVENTS.join('/')}`;
}

interface Session {
  d: DaemonProcess;
  /** the daemon's login Events: header */
  events: string | undefined;
}

/** A fresh daemon (its own state dir: no block or memory carried over) for one scenario. */
async function withDaemon<T>(dir: string, traffic: CallTraffic, hooks: WebhookCounter, fraud: unknown, fn: (s: Session) => Promise<T>): Promise<T> {
  const logins = traffic.sim.logins;
  const { daemon: d } = DaemonProcess.start({ dir, amiPort: traffic.port, webhookPort: hooks.port, fraud });
  try {
    const end = Date.now() + 20_000;
    while (traffic.sim.logins === logins && Date.now() < end && d.running) await sleep(20);
    if (traffic.sim.logins === logins) throw new Error(`the daemon did not log in to the call-traffic PBX: ${d.lastOutput}`);
    const login = traffic.sim.requests.filter((r) => r.action.toLowerCase() === 'login').at(-1);
    const events = login?.headers.find(([k]) => k.toLowerCase() === 'events')?.[1];
    await sleep(1000); // the daemon's start-up work is not in the figures
    const out = await fn({ d, events });
    if (!d.running) throw new Error(`the daemon exited during the bench: ${d.lastOutput}`);
    return out;
  } finally {
    await d.stop();
  }
}

/** What fired, from the webhook (GuardianFraud by policy and action), with a reason each. */
function fired(hooks: WebhookCounter, w0: Map<string, number>): string {
  const s = guardianEvents(w0, hooks.snapshot());
  const reasons = [...hooks.reasons].map(([p, r]) => `${p}: ${r}`).slice(0, 4);
  return reasons.length ? `${s}; e.g. ${reasons.join(' | ')}` : s;
}

async function attack(o: FraudBenchOptions, traffic: CallTraffic, hooks: WebhookCounter, { d, events }: Session, hasFraud: boolean): Promise<BenchResult[]> {
  const sent0 = new Map(traffic.sentByPrivilege);
  const w0 = hooks.snapshot();
  hooks.reasons.clear();
  const cpu0 = d.cpuSeconds();
  const a0 = traffic.actions.length;
  const burst: PlacedCall[] = [];
  const burstDone = (async () => {
    await sleep(Math.max(1000, (o.seconds * 1000) / 3));
    for (const [i, dialled] of BURST_NUMBERS.entries()) {
      if (i > 0) await sleep(BURST_SPACING_MS);
      burst.push(traffic.place({ account: ATTACKER, dialled, kind: 'answered', ringMs: 500, talkMs: null, tag: 'burst' }));
      traffic.flush();
    }
  })();
  const bg = await traffic.run(o.rate, o.seconds, (i) => ordinaryCall(i % o.accounts, o.accounts, true));
  await burstDone;
  const settleEnd = performance.now() + o.settleMs;
  while (performance.now() < settleEnd && !burst.every((c) => c.phase === 2)) await sleep(20);
  const cpu = d.cpuSeconds() - cpu0;
  const dv = delivered(diff(sent0, new Map(traffic.sentByPrivilege)), events);
  const acts = traffic.actions.slice(a0);
  const first = burst[0]!.dialBeginAt;
  const cross = burst[o.crossing - 1]!.dialBeginAt;
  const fromCross: number[] = [];
  const fromOwn: number[] = [];
  const fromFirst: number[] = [];
  for (const c of burst) {
    const h = hangupOf(acts, c);
    if (!h) continue;
    fromCross.push(h.at - Math.max(c.dialBeginAt, cross));
    fromOwn.push(h.at - c.dialBeginAt);
    fromFirst.push(h.at - first);
  }
  const burstChannels = new Set(burst.flatMap((c) => [c.values.callerChannel, c.values.calleeChannel]));
  const hangups = acts.filter(isHangup);
  const falseHangups = hangups.filter((a) => a.hungUp.some((ch) => !burstChannels.has(ch)));
  const block = acts.find((a) => isBlock(a) && a.headers.Key === ATTACKER);
  const falseBlocks = acts.filter((a) => isBlock(a) && a.headers.Key !== ATTACKER);
  const why =
    hangups.length === 0 && !acts.some(isBlock)
      ? `no fraud actions seen (no AMI Hangup, no DBPut ${BLOCK_FAMILY}); this build ${hasFraud ? 'has a fraud: config section' : 'has no fraud stage (no fraud: config section)'}; daemon login Events: ${events ?? '(none)'}`
      : '';
  const latencyRow = (name: string, xs: number[], p: number, target: boolean): BenchResult => ({
    name,
    value: xs.length ? Math.round(pct(xs, p)) : NaN,
    unit: 'ms',
    ...(target ? { target: `<= ${HANGUP_P99_MAX_MS}`, ok: xs.length === burst.length && pct(xs, 99) <= HANGUP_P99_MAX_MS } : {}),
    note: xs.length
      ? `${xs.length}/${burst.length} burst calls hung up; p50 ${Math.round(pct(xs, 50))} ms, max ${Math.round(Math.max(...xs))} ms`
      : why || `no burst call hung up within ${o.settleMs} ms after the burst`,
  });
  return [
    latencyRow(`burst → AMI Hangup of each offending channel, from the crossing call (call ${o.crossing}), p99`, fromCross, 99, true),
    latencyRow('burst → AMI Hangup, from the call’s own DialBegin, p50', fromOwn, 50, false),
    latencyRow('burst → AMI Hangup, from the call’s own DialBegin, p99', fromOwn, 99, false),
    latencyRow('burst → AMI Hangup, from the burst’s first call event, p99', fromFirst, 99, false),
    {
      name: `burst → DBPut ${BLOCK_FAMILY}/${ATTACKER}, from the crossing call`,
      value: block ? Math.round(block.at - cross) : NaN,
      unit: 'ms',
      target: `<= ${BLOCK_MAX_MS}`,
      ok: block !== undefined && block.at - cross <= BLOCK_MAX_MS,
      note: block
        ? `from the burst's first call ${Math.round(block.at - first)} ms; Val "${block.headers.Val ?? ''}"; answered ${block.response}`
        : why || `no DBPut ${BLOCK_FAMILY}/${ATTACKER} within ${o.settleMs} ms after the burst`,
    },
    {
      name: `burst: false actions on ordinary accounts (Hangup, DBPut) at ${o.rate} calls/s`,
      value: falseHangups.length + falseBlocks.length,
      unit: 'actions',
      target: '0',
      ok: falseHangups.length + falseBlocks.length === 0,
      note: `${bg} ordinary calls in ${o.seconds} s from ${o.accounts} accounts (80% internal, 20% national, 1–3 s talk); Hangup ${falseHangups.length}, DBPut ${falseBlocks.length}${falseBlocks.length ? ` (accounts ${[...new Set(falseBlocks.map((a) => a.headers.Key))].slice(0, 5).join(' ')})` : ''}; webhook: ${fired(hooks, w0)}`,
    },
    {
      name: `daemon CPU per 1,000 call events, ${o.rate} calls/s + burst`,
      value: dv.call > 0 ? r2((cpu * 1e6) / dv.call) : NaN,
      unit: 'ms',
      note:
        dv.call > 0
          ? `${r2(cpu)} s CPU (/proc) for ${dv.call} call/cdr frames (${dv.all} frames in all) received under Events: ${events}; ${r1((cpu * 100) / (o.seconds + o.settleMs / 1000))}% of one core`
          : `the daemon's login Events mask (${events ?? 'none'}) takes no call events: ${r2(cpu)} s CPU for ${dv.all} frames`,
    },
  ];
}

async function officeDay(o: FraudBenchOptions, traffic: CallTraffic, hooks: WebhookCounter, { d, events }: Session): Promise<BenchResult[]> {
  const sent0 = new Map(traffic.sentByPrivilege);
  const w0 = hooks.snapshot();
  hooks.reasons.clear();
  const a0 = traffic.actions.length;
  const idle0 = d.cpuSeconds();
  await sleep(2000);
  const idle = (d.cpuSeconds() - idle0) / 2;
  const cpu0 = d.cpuSeconds();
  const t0 = performance.now();
  const kinds = new Map<CallKind, number>();
  let placed = 0;
  const day = async (a: number) => {
    await sleep(rnd(0, 15_000));
    while (placed < o.officeCalls) {
      placed++;
      const s = ordinaryCall(a, o.accounts, false);
      kinds.set(s.kind, (kinds.get(s.kind) ?? 0) + 1);
      const c = traffic.place(s);
      while (c.phase !== 2) await sleep(250);
      await sleep(rnd(2000, 15_000));
    }
  };
  await Promise.all(Array.from({ length: o.accounts }, (_, a) => day(a)));
  await sleep(2000);
  const cpu = d.cpuSeconds() - cpu0;
  const secs = (performance.now() - t0) / 1000;
  const acts = traffic.actions.slice(a0);
  const dv = delivered(diff(sent0, new Map(traffic.sentByPrivilege)), events);
  const hangups = acts.filter(isHangup).length;
  const blocks = acts.filter(isBlock).length;
  return [
    {
      name: `office day: AMI actions on ${placed} ordinary calls (Hangup + DBPut ${BLOCK_FAMILY})`,
      value: hangups + blocks,
      unit: 'actions',
      target: '0',
      ok: hangups + blocks === 0,
      note: `${Math.round(secs)} s, ${o.accounts} accounts, one call at a time each; ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}; Hangup ${hangups}, DBPut ${blocks}; webhook: ${fired(hooks, w0)}`,
    },
    {
      name: 'daemon CPU per 1,000 call events, office day',
      value: dv.call > 0 ? r2((cpu * 1e6) / dv.call) : NaN,
      unit: 'ms',
      note:
        dv.call > 0
          ? `${r2(cpu)} s CPU for ${dv.call} call/cdr frames (${dv.all} in all) under Events: ${events}; idle before: ${r1(idle * 100)}% of a core (timers, included)`
          : `no call events taken (Events: ${events ?? 'none'})`,
    },
  ];
}

export async function run(opts: Partial<FraudBenchOptions> & { quick?: boolean } = {}): Promise<BenchResult[]> {
  const o: FraudBenchOptions = {
    seconds: opts.seconds ?? (opts.quick ? 10 : 30),
    rate: opts.rate ?? 200,
    accounts: opts.accounts ?? 100,
    officeCalls: opts.officeCalls ?? (opts.quick ? 300 : 2000),
    crossing: opts.crossing ?? Number(process.env.PBXG_BENCH_FRAUD_CROSSING ?? 5),
    settleMs: opts.settleMs ?? 5000,
  };
  if (!(o.crossing >= 1 && o.crossing <= BURST_NUMBERS.length)) throw new Error(`crossing call ${o.crossing}: 1 to ${BURST_NUMBERS.length}`);
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-fraud-bench-'));
  const traffic = new CallTraffic({ fixturesDir: FIXTURES, accounts: accounts(o.accounts), username: 'guardian', secret: 'bench-fraud' });
  const hooks = new WebhookCounter();
  try {
    await traffic.listen();
    await hooks.listen();
    const hasFraud = buildHasFraudSection();
    const { fraud, what } = fraudSection(hasFraud);
    const rows = await withDaemon(join(dir, 'attack'), traffic, hooks, fraud, (s) => attack(o, traffic, hooks, s, hasFraud));
    if (o.officeCalls > 0) rows.push(...(await withDaemon(join(dir, 'office'), traffic, hooks, fraud, (s) => officeDay(o, traffic, hooks, s))));
    // which fraud config the figures are for
    rows[0]!.note = `${rows[0]!.note ?? ''}; daemon config: ${what}`;
    return rows;
  } finally {
    await traffic.close();
    await hooks.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (k: string) => {
    const i = process.argv.indexOf(k);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const rows = await run({
    quick: process.argv.includes('--quick'),
    seconds: arg('--seconds'),
    rate: arg('--rate'),
    officeCalls: arg('--office-calls'),
    crossing: arg('--crossing'),
  });
  for (const r of rows)
    console.log(
      `${r.name.padEnd(96)} ${String(r.value).padStart(8)} ${r.unit.padEnd(8)} ${r.target ?? ''} ${r.ok === undefined ? '' : r.ok ? 'ok' : 'MISS'}\n    ${r.note ?? ''}`,
    );
  process.exit(0);
}
