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
import { spawn } from 'node:child_process';
import { accessSync, constants, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './types.js';
import { F2B_CLIENT, F2B_SERVER, fail2banChild } from './fail2ban/fail2ban-side.js';
import { crowdsecChild, crowdsecSkipReason, CS_M } from './fail2ban/crowdsec-side.js';
import { guardianChild } from './fail2ban/guardian-side.js';
import { BURST_BOUND_MS, FULL, M, pct, QUICK, type BurstReport, type Plan, type SideResult } from './fail2ban/schedule.js';

export { FULL, QUICK, type Plan, type SideResult, type BurstReport } from './fail2ban/schedule.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const UNSHARE = '/usr/bin/unshare';

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

function inNetns(side: SideResult['side'], quick: boolean, timeoutMs: number): Promise<SideResult> {
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

/** attempts each attacker got through before its ban (attemptsPhase), as one row */
function attemptsRow(prefix: string, s: SideResult, anchor?: SideResult): Row[] {
  const a = s.attempts;
  if (!a) return [];
  return [
    {
      name: `${prefix}: attempts allowed per attacker (${a.attackers} × up to ${a.max}, one per ${a.everyMs} ms), ${s.side}`,
      value: a.p50,
      unit: 'attempts',
      anchor: anchor?.attempts ? `${anchor.side} ${anchor.attempts.p50}` : undefined,
      note: `p50 ${a.p50}, min ${a.min}, max ${a.maxSeen}; ${a.allThrough}/${a.attackers} attackers got all ${a.max} through; an attacker stops once its address is in the kernel set (the firewall would drop the rest); ${r1(a.seconds)} s`,
    },
  ];
}

export function compare(g: SideResult, f: SideResult, plan: Plan): Row[] {
  const rows: Row[] = [];
  const gP50 = pct(g.latencyMs, 50);
  const gP99 = pct(g.latencyMs, 99);
  const fP50 = pct(f.latencyMs, 50);
  const fP99 = pct(f.latencyMs, 99);
  const lNote = (s: SideResult) =>
    `${s.latencyMs.length}/${plan.latencyAddrs} addresses banned${s.latencyMissing ? ` (${s.latencyMissing} MISSING)` : ''}; M-th failure written → element in the kernel set (${s.instrument}${s.overflows ? `, ${s.overflows} NOTIFICATION OVERFLOWS` : ''})`;
  rows.push({ name: 'vs fail2ban: ban latency p50, guardian', value: r1(gP50), unit: 'ms', note: lNote(g) });
  rows.push({
    name: 'vs fail2ban: ban latency p99, guardian',
    value: r1(gP99),
    unit: 'ms',
    target: `<= fail2ban p50 / 25`,
    ok: gP99 * 25 <= fP50 && g.latencyMissing === 0,
    anchor: `fail2ban p50 ${r1(fP50)} ms`,
    ratio: r1(fP50 / gP99),
    note: g.decidedLatencyMs?.length
      ? `ban decided (the daemon's log line, ms resolution): p50 ${r1(pct(g.decidedLatencyMs, 50))} ms, p99 ${r1(pct(g.decidedLatencyMs, 99))} ms`
      : undefined,
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
    rows.push({
      name: `vs fail2ban: burst bans/s (${fb.size.toLocaleString('en')} addresses), fail2ban`,
      value: r1(rate(fb)),
      unit: 'bans/s',
      note: bNote(fb, main ? burstOf(f, 'warm-up') : null),
    });
  }
  rows.push({
    name: 'vs fail2ban: CPU for the attack, guardian',
    value: r2(g.cpuSeconds),
    unit: 's',
    anchor: `fail2ban ${r2(f.cpuSeconds)} s`,
    ratio: r1(f.cpuSeconds / g.cpuSeconds),
    note: g.cpuNote,
  });
  rows.push({ name: 'vs fail2ban: CPU for the attack, fail2ban', value: r2(f.cpuSeconds), unit: 's', note: f.cpuNote });
  rows.push(...attemptsRow('vs fail2ban', g), ...attemptsRow('vs fail2ban', f));
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
    rows.push({
      name: `vs fail2ban: restore ${size.toLocaleString('en')} bans, fail2ban`,
      value: fs === null ? plan.restoreBoundS : r2(fs),
      unit: 's',
      note: fs === null ? `> ${plan.restoreBoundS} s: ${fr.present}/${size} restored when stopped` : `${fr.present}/${size}`,
    });
  }
  rows.push({
    name: 'vs fail2ban: legitimate addresses banned (guardian / fail2ban)',
    value: g.legitBanned,
    unit: 'addresses',
    target: '0',
    ok: g.legitBanned === 0,
    note: `fail2ban: ${f.legitBanned}`,
  });
  return rows;
}

export async function run(opts: { quick?: boolean } = {}): Promise<Row[]> {
  const skip = skipReason();
  if (skip) return [{ name: 'vs fail2ban: skipped', value: NaN, unit: '-', note: skip }];
  const plan = opts.quick ? QUICK : FULL;
  const bound = (plan.restoreBoundS * plan.restoreSizes.length + 300) * 1000;
  const g = await inNetns('guardian', !!opts.quick, bound);
  const f = await inNetns('fail2ban', !!opts.quick, bound);
  const rows = compare(g, f, plan);
  const csSkip = crowdsecSkipReason();
  if (csSkip) return [...rows, { name: 'vs crowdsec: skipped', value: NaN, unit: '-', note: csSkip }];
  // a failing third contestant must not cost the first two their rows
  const c = await inNetns('crowdsec', !!opts.quick, bound).catch((e: unknown) => e as Error);
  if (c instanceof Error) return [...rows, { name: 'vs crowdsec: failed', value: NaN, unit: '-', ok: false, note: c.message.slice(0, 1500) }];
  return [...rows, ...compareCrowdsec(g, f, c, plan)];
}

/** CrowdSec's rows, each anchored on the guardian's figure (and fail2ban's in the note). */
export function compareCrowdsec(g: SideResult, f: SideResult, c: SideResult, plan: Plan): Row[] {
  const rows: Row[] = [];
  const cP50 = pct(c.latencyMs, 50);
  rows.push({
    name: 'vs crowdsec: ban latency p50, crowdsec',
    value: r1(cP50),
    unit: 'ms',
    anchor: `guardian p50 ${r1(pct(g.latencyMs, 50))} ms`,
    ratio: r1(cP50 / pct(g.latencyMs, 50)),
    note: `${c.latencyMs.length}/${plan.latencyAddrs} addresses banned${c.latencyMissing ? ` (${c.latencyMissing} MISSING)` : ''}; the ${CS_M}th failure written → element in the bouncer's set (${c.instrument}${c.overflows ? `, ${c.overflows} NOTIFICATION OVERFLOWS` : ''}); fail2ban p50 ${r1(pct(f.latencyMs, 50))} ms`,
  });
  rows.push({
    name: 'vs crowdsec: ban latency p99, crowdsec',
    value: r1(pct(c.latencyMs, 99)),
    unit: 'ms',
    anchor: `guardian p99 ${r1(pct(g.latencyMs, 99))} ms`,
  });
  const burstOf = (s: SideResult, role: BurstReport['role']) => s.bursts.find((b) => b.role === role)!;
  const rate = (b: BurstReport) => (b.seconds ? b.size / b.seconds : NaN);
  for (const role of ['measured', 'small'] as const) {
    const cb = burstOf(c, role);
    const gb = burstOf(g, role);
    const warm = role === 'measured' ? burstOf(c, 'warm-up') : null;
    rows.push({
      name: `vs crowdsec: burst bans/s (${cb.size.toLocaleString('en')} addresses), crowdsec`,
      value: r1(rate(cb)),
      unit: 'bans/s',
      anchor: `guardian ${Math.round(rate(gb))} bans/s`,
      ratio: r1(rate(gb) / rate(cb)),
      note:
        `${cb.size} addresses × ${CS_M} failures written at once (${r1(cb.writtenMs)} ms of writes); ${cb.verified}/${cb.size} verified in the set` +
        `${cb.seconds === null ? `; ${cb.missing} not banned within ${BURST_BOUND_MS / 1000} s` : `; last element at ${r2(cb.seconds)} s`}; ban latency p50 ${r1(cb.p50Ms)} ms, p99 ${r1(cb.p99Ms)} ms` +
        `${warm ? `; warm-up burst: ${warm.seconds === null ? 'incomplete' : `${Math.round(rate(warm))} bans/s`}` : ''}; fail2ban ${r1(rate(burstOf(f, role)))} bans/s`,
    });
  }
  rows.push({
    name: 'vs crowdsec: CPU for the attack, crowdsec',
    value: r2(c.cpuSeconds),
    unit: 's',
    anchor: `guardian ${r2(g.cpuSeconds)} s`,
    ratio: r1(c.cpuSeconds / g.cpuSeconds),
    note: `${c.cpuNote}; fail2ban ${r2(f.cpuSeconds)} s`,
  });
  rows.push(...attemptsRow('vs crowdsec', c, g));
  for (const cr of c.restore) {
    const gr = g.restore.find((r) => r.size === cr.size);
    rows.push({
      name: `vs crowdsec: restore ${cr.size.toLocaleString('en')} bans, crowdsec`,
      value: cr.seconds === null ? NaN : r2(cr.seconds),
      unit: 's',
      anchor: gr?.seconds != null ? `guardian ${r2(gr.seconds)} s` : undefined,
      note: `${cr.present}/${cr.size} in the bouncer's set${cr.bounded ? ` when stopped at ${plan.restoreBoundS} s` : ''}; decisions imported into the LAPI (cscli decisions import, not timed), then a fresh bouncer, from its start to the last element`,
    });
  }
  rows.push({ name: 'vs crowdsec: legitimate addresses banned, crowdsec', value: c.legitBanned, unit: 'addresses', note: c.mode });
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const child = process.argv.find((a) => a.startsWith('--child='))?.slice(8);
  const quick = process.argv.includes('--quick');
  const plan = quick ? QUICK : FULL;
  if (child === 'fail2ban' || child === 'guardian' || child === 'crowdsec') {
    (child === 'fail2ban' ? fail2banChild(plan) : child === 'crowdsec' ? crowdsecChild(plan) : guardianChild(plan)).then(
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
        for (const r of rows)
          console.log(
            `${r.name}: ${r.value} ${r.unit}${r.target ? ` (target ${r.target}: ${r.ok ? 'met' : 'NOT met'})` : ''}${r.anchor ? ` [${r.anchor}${r.ratio !== undefined ? `, ratio ${r.ratio}x` : ''}]` : ''}${r.note ? ` — ${r.note}` : ''}`,
          );
      },
      (err: unknown) => {
        console.error(err);
        process.exitCode = 1;
      },
    );
  }
}
