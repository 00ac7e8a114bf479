/**
 * Daemon soak (issue 19): sustained security events (default 20,000/s for 10 minutes) through the
 * real `pbx-guardian run` in its own process (JSON log at info to a pipe, as under systemd; metrics
 * on; defaults otherwise, but guard.maxBanDuration 2m so that the set and the state reach a steady
 * size within the run), AmiSimulator (real TCP, in the bench process), nftables through the
 * addon in a private network namespace. The traffic is bench/soak-mix.ts: frames of the real
 * Asterisk 22 transcripts, paced evenly (every ~1 ms, what is due is written).
 *
 * Failure → kernel: for every IPv4 attacker whose crossing frame is unambiguous (PJSIP wrong
 * password: the 5th ChallengeResponseFailed; AMI wrong secret: the 5th InvalidPassword), from the
 * moment the bench wrote that frame to the AMI socket (performance.now(), just before write) to
 * the kernel's netlink notification of the new ban4 element (bench/native/setelem-monitor.c,
 * stamped with CLOCK_MONOTONIC when recv() returns: the bench's own lag does not move it).
 * Loop lag: bench/loop-lag-probe.ts in the daemon (10 ms timer). RSS: /proc/<pid>/status every
 * 10 s. CPU: /proc/<pid>/stat. Nothing missed: every attacker that wrote its script is in ban4
 * (notifications) or in pfx6 (IPv6 /64s: `nft -j list set` every 20 s; bans last 2 min); no
 * phone or noise address in either.
 *   node dist/bench/soak-daemon.js [--minutes 10] [--rate 20000] [--quick] [--ipv4-only]
 *   (root; --quick: 30 s; --ipv4-only: a diagnostic, the IPv6 attackers become IPv4 ones, no CIDR bans)
 *   PBXG_BENCH_DAEMON_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the daemon
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { BenchResult } from './types.js';
import { childRowsInNetns, skipReason } from './firewall.js';
import { daemonRig, spawnDaemon } from './daemon-rig.js';
import { procCpu, sleep } from './fail2ban/schedule.js';
import { CANARY4, CANARY6 } from '../src/firewall/canary.js';
import { attackerAddress, attackerTarget, kindOf, population, setIpv4Only, SoakMix } from './soak-mix.js';

const SELF = fileURLToPath(import.meta.url);
const TABLE = 'pbxg_soakd';
const NFT = '/usr/sbin/nft';
const METRICS_PORT = 9470;
const BACKLOG_MAX = 64 * 1048576;
const pexec = promisify(execFile);
const r1 = (x: number) => Math.round(x * 10) / 10;
const r2 = (x: number) => Math.round(x * 100) / 100;

export interface SoakDaemonOptions {
  seconds: number;
  rate: number;
  lanes: number;
  phones: number;
}

/** what the daemon wrote to its journal (stdout) */
const journal = { bytes: 0, lines: 0 };

/** drained as a journal would, counted */
function countJournal(b: Buffer): void {
  journal.bytes += b.length;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) journal.lines++;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** targets of one set as `nft -j list set` shows them: addresses, and prefixes as a/len */
async function listTargets(set: string): Promise<string[]> {
  const { stdout } = await pexec(NFT, ['-j', 'list', 'set', 'inet', TABLE, set], { maxBuffer: 512 * 1024 * 1024 });
  const out: string[] = [];
  const doc = JSON.parse(stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
  const one = (v: unknown) => {
    if (typeof v === 'string') out.push(v);
    else if (v && typeof v === 'object' && 'prefix' in v) {
      const p = (v as { prefix: { addr: string; len: number } }).prefix;
      out.push(`${p.addr}/${p.len}`);
    } else if (v && typeof v === 'object' && 'elem' in v) one((v as { elem: { val?: unknown } }).elem.val);
  };
  for (const o of doc.nftables) for (const e of o.set?.elem ?? []) one(e);
  return out;
}

function quantiles(xs: Float64Array | number[]): { p50: number; p99: number; max: number; n: number } {
  const s = Float64Array.from(xs).sort();
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN);
  return { p50: q(0.5), p99: q(0.99), max: s.length ? s[s.length - 1]! : NaN, n: s.length };
}

/** least-squares slope (y per x) */
function slope(pts: Array<[number, number]>): number {
  const n = pts.length;
  if (n < 2) return NaN;
  const mx = pts.reduce((a, p) => a + p[0], 0) / n;
  const my = pts.reduce((a, p) => a + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of pts) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return num / den;
}

async function metricSum(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name + '{') || line.startsWith(name + ' ')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

async function child(o: SoakDaemonOptions): Promise<BenchResult[]> {
  const rig = await daemonRig('pbxg-soakd-', () => ({
    guard: { maxBanDuration: '2m', manualBanDuration: '2m', escalation: { max: '2m' }, recidive: { ban: '2m' } },
    firewall: { backend: 'nftables', table: TABLE },
    metrics: { enabled: true, host: '127.0.0.1', port: METRICS_PORT },
  }));
  const { dir, sim, mon, lagFile } = rig;
  const d = spawnDaemon(rig, countJournal);
  const maxAttackers = Math.ceil((o.rate * o.seconds * 16) / 20 / 5) + o.lanes + 16;
  const thresholdAt = new Float64Array(maxAttackers).fill(NaN);
  let stamp: number[] = [];
  const mix = new SoakMix({ lanes: o.lanes, phones: o.phones, onThreshold: (n) => stamp.push(n) });
  const v6Seen = new Set<string>();
  const falseBans = new Map<string, string>();
  const seeSet = async (set: string) => {
    for (const key of await listTargets(set)) {
      const t = set === 'pfx6' ? `${key}/64` : key; // pfx6 holds a /64's masked address
      if (population(t) === 'attacker') v6Seen.add(t);
      else if (key !== CANARY6 && key !== CANARY4) falseBans.set(t, population(t)); // the backend's own canaries
    }
  };
  try {
    for (const end = Date.now() + 15_000; sim.loggedIn === 0 && Date.now() < end && d.exitCode === null;) await sleep(10);
    if (sim.loggedIn === 0) throw new Error('the daemon did not log in to the AMI simulator');
    await sleep(1000); // the login's own checks settle
    const counted0 = await metricSum('pbx_guardian_security_events_total'); // the daemon's own AMI login
    const sessions = (sim as unknown as { sessions: Set<{ sock: { writableLength: number } }> }).sessions;
    const rss: Array<[number, number]> = [];
    const cpuAt: Array<[number, number]> = [];
    const t0 = performance.now();
    const epoch0 = Date.now();
    const cpu0 = procCpu(d.pid!).own;
    // what of the RSS is the JavaScript heap (used, and reserved) and what external (ArrayBuffers:
    // the tracker's tables); the rest is native (SQLite, the addon, malloc)
    const heap: Array<[number, number, number, number]> = [];
    const sample = () => {
      const t = (performance.now() - t0) / 1000;
      rss.push([t, rssMb(d.pid!)]);
      cpuAt.push([t, procCpu(d.pid!).own - cpu0]);
      void Promise.all(['nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_external_memory_bytes'].map(metricSum)).then(
        ([used, total, ext]) => heap.push([t, used! / 1e6, total! / 1e6, ext! / 1e6]),
        () => undefined,
      );
    };
    sample();
    const sampler = setInterval(sample, 10_000);
    let polling = false;
    const poller = setInterval(() => {
      if (polling) return;
      polling = true;
      void Promise.all([seeSet('pfx6'), seeSet('ban6')]).finally(() => (polling = false));
    }, 20_000);
    let sent = 0;
    let backlogMax = 0;
    let skippedMs = 0;
    let owedFrom = 0; // frames not owed because the daemon was behind
    const end = t0 + o.seconds * 1000;
    for (let now = performance.now(); now < end; now = performance.now()) {
      let backlog = 0;
      for (const s of sessions) backlog = Math.max(backlog, s.sock.writableLength);
      backlogMax = Math.max(backlogMax, backlog);
      const due = Math.floor(((now - t0) / 1000) * o.rate) - owedFrom - sent;
      if (backlog > BACKLOG_MAX) {
        owedFrom += Math.max(0, due);
        skippedMs++;
      } else if (due > 0) {
        const text = mix.take(due, Date.now());
        const at = performance.now();
        sim.broadcast(text);
        for (const n of stamp) thresholdAt[n] = at;
        stamp = [];
        sent += due;
      }
      await sleep(1);
    }
    const tStop = performance.now();
    clearInterval(sampler);
    sample();
    const cpuS = procCpu(d.pid!).own - cpu0;
    const completed = mix.attackersCompleted;
    // the last bans: every IPv4 attacker that wrote its script in ban4 (bounded)
    const v4 = (n: number) => kindOf(n) !== 'pjsip6-wrong-password';
    const drainEnd = performance.now() + 15_000;
    let firstMissing = 0;
    while (performance.now() < drainEnd) {
      while (
        firstMissing < mix.attackersStarted &&
        (Number.isNaN(thresholdAt[firstMissing]!) || !v4(firstMissing) || mon.seen.has(attackerAddress(firstMissing)))
      )
        firstMissing++;
      if (firstMissing >= mix.attackersStarted) break;
      await sleep(20);
    }
    const drainMs = performance.now() - tStop;
    clearInterval(poller);
    while (polling) await sleep(20);
    await seeSet('pfx6');
    await seeSet('ban6');
    const received = (await metricSum('pbx_guardian_security_events_total').catch(() => NaN)) - counted0;
    await sleep(300); // the probe flushes every 100 ms
    const epochStop = epoch0 + (tStop - t0);
    const lags = readFileSync(lagFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ').map(Number) as [number, number])
      .filter(([t]) => t >= epoch0 && t <= epochStop)
      .map(([, v]) => v);

    const lat: number[] = [];
    const latAt: Array<[number, number]> = []; // for PBXG_BENCH_SOAK_DUMP
    let expected = 0;
    let missed = 0;
    let unknownBefore = 0;
    const missedSample: string[] = [];
    for (let n = 0; n < mix.attackersStarted; n++) {
      const at = thresholdAt[n]!;
      if (Number.isNaN(at)) continue;
      expected++;
      const k = kindOf(n);
      const t = v4(n) ? mon.seen.get(attackerAddress(n)) : v6Seen.has(attackerTarget(n)) ? 0 : undefined;
      if (t === undefined) {
        if (missed++ < 5) missedSample.push(attackerTarget(n));
        continue;
      }
      if (k === 'pjsip-wrong-password' || k === 'ami-wrong-secret') {
        lat.push(t - at);
        latAt.push([Math.round(at - t0), r2(t - at)]);
      } else if (k === 'pjsip-unknown-user' && t < at) unknownBefore++;
    }
    for (const a of mon.seen.keys()) if (population(a) !== 'attacker' && a !== CANARY4) falseBans.set(a, population(a));
    if (process.env.PBXG_BENCH_SOAK_DUMP)
      writeFileSync(process.env.PBXG_BENCH_SOAK_DUMP, JSON.stringify({ epoch0, t0, lagLines: readFileSync(lagFile, 'utf8'), lat: latAt }));
    const q = quantiles(lat);
    const lq = quantiles(lags);
    const secs = (tStop - t0) / 1000;
    const window = rss.filter(([t]) => t >= secs * 0.2);
    const sl = slope(window) * 60; // MB per minute
    const wMax = Math.max(...window.map((x) => x[1]));
    const wMin = Math.min(...window.map((x) => x[1]));
    const wMean = window.reduce((a, x) => a + x[1], 0) / window.length;
    const growth = (sl * (secs * 0.8)) / 60;
    const falseList = [...falseBans].slice(0, 5).map(([a, p]) => `${a} (${p})`);
    const curve = rss.map(([t, mb]) => `${Math.round(t)}s:${Math.round(mb)}`).join(' ');
    const cpuCurve = cpuAt
      .slice(1)
      .map(([t, c], i) => `${Math.round(t)}s:${Math.round(((c - cpuAt[i]![1]) / (t - cpuAt[i]![0])) * 100)}%`)
      .join(' ');
    return [
      {
        name: `soak-daemon: security events delivered (${Math.round(secs)} s, target ${o.rate}/s)`,
        value: Math.round(sent / secs),
        unit: 'events/s',
        target: `>= ${Math.round(o.rate * 0.98)}`,
        ok: sent / secs >= o.rate * 0.98 && received === sent,
        note: `${sent} written, ${received} counted by the daemon (pbx_guardian_security_events_total); ${mix.attackersCompleted} attackers completed their script (${Math.round(completed / secs)}/s, ${o.lanes} at a time), ${mix.phoneRegistrations} phone registrations (${o.phones} phones), ${mix.scanners} scanner and ${mix.unknownNoise} unknown-user noise addresses; AMI socket backlog max ${Math.round(backlogMax / 1024)} KiB${skippedMs ? `, ${skippedMs} ticks not written (backlog > 64 MiB)` : ''}`,
      },
      {
        name: 'soak-daemon: threshold failure written → element in the kernel, p99',
        value: r2(q.p99),
        unit: 'ms',
        target: '<= 10',
        ok: q.n > 0 && q.p99 <= 10 && mon.overflows === 0,
        note: `p50 ${r2(q.p50)} ms, max ${r1(q.max)} ms over ${q.n} bans (IPv4 PJSIP wrong password and AMI wrong secret: write of the 5th counted failure → ${mon.instrument}${mon.overflows ? `, ${mon.overflows} OVERFLOWS` : ''}); unknown-user attackers banned before their last frame: ${unknownBefore}`,
      },
      {
        name: 'soak-daemon: daemon event-loop lag p99',
        value: r2(lq.p99),
        unit: 'ms',
        target: '< 10',
        ok: lq.n > 0 && lq.p99 < 10,
        note: `p50 ${r2(lq.p50)} ms, max ${r1(lq.max)} ms over ${lq.n} samples of a 10 ms timer in the daemon (bench/loop-lag-probe.ts)`,
      },
      {
        name: `soak-daemon: daemon RSS slope over the last ${Math.round((secs * 0.8) / 60)} min`,
        value: r2(sl),
        unit: 'MB/min',
        target: 'growth <= 5 % of mean',
        ok: growth <= wMean * 0.05,
        note: `${r1(growth)} MB over the window by the slope; window max − min ${r1(wMax - wMin)} MB, mean ${r1(wMean)} MB; curve (s:MB) ${curve}; JS heap used / reserved / external (s:MB) ${heap
          .filter((_, i) => i % 6 === 0 || i === heap.length - 1)
          .map(([t, u, r, x]) => `${Math.round(t)}s:${Math.round(u)}/${Math.round(r)}/${Math.round(x)}`)
          .join(' ')}`,
      },
      {
        name: 'soak-daemon: attackers missed',
        value: missed,
        unit: 'addresses',
        target: '0',
        ok: expected > 0 && missed === 0 && mon.overflows === 0,
        note: `${expected - missed}/${expected} attackers that wrote 5 failures banned (IPv4: ban4 notifications, IPv6 /64: pfx6 listed every 20 s); drain after the last write ${Math.round(drainMs)} ms${missedSample.length ? `; e.g. ${missedSample.join(', ')}` : ''}`,
      },
      {
        name: 'soak-daemon: phone / noise addresses banned',
        value: falseBans.size,
        unit: 'addresses',
        target: '0',
        ok: falseBans.size === 0,
        note: falseList.length ? falseList.join(', ') : 'none of the phones, scanner or unknown-user noise addresses in ban4, ban6 or pfx6',
      },
      {
        name: 'soak-daemon: daemon CPU',
        value: r1((cpuS / secs) * 100),
        unit: '% core',
        note: `${cpuS.toFixed(1)} s of the pbx-guardian run process (user + system) over ${Math.round(secs)} s; ${r2((cpuS * 1e6) / sent)} µs per event; journal (stdout) ${journal.lines} lines, ${r1(journal.bytes / 1048576)} MB; per 10 s: ${cpuCurve}`,
      },
    ];
  } finally {
    d.kill('SIGTERM');
    await new Promise((r) => (d.exitCode !== null ? r(null) : d.once('exit', r)));
    mon.stop();
    await sim.close();
    await pexec(NFT, ['delete', 'table', 'inet', TABLE]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(opts: { quick?: boolean; minutes?: number; rate?: number; ipv4Only?: boolean } = {}): Promise<BenchResult[]> {
  const skip = skipReason();
  if (skip) return [{ name: 'soak-daemon benchmark skipped', value: 0, unit: '-', note: skip }];
  const seconds = opts.minutes !== undefined ? Math.round(opts.minutes * 60) : opts.quick ? 30 : 600;
  const rows = await childRowsInNetns(
    SELF,
    ['--child', `--seconds=${seconds}`, `--rate=${opts.rate ?? 20_000}`, ...(opts.ipv4Only ? ['--ipv4-only'] : [])],
    'soak-daemon benchmark',
  );
  if (opts.ipv4Only) for (const r of rows) r.name = r.name.replace('soak-daemon:', 'soak-daemon (IPv4-only mix, diagnostic):');
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (k: string) => {
    const i = process.argv.findIndex((a) => a === `--${k}` || a.startsWith(`--${k}=`));
    if (i < 0) return undefined;
    const a = process.argv[i]!;
    return a.includes('=') ? a.slice(a.indexOf('=') + 1) : process.argv[i + 1];
  };
  if (process.argv.includes('--child')) {
    setIpv4Only(process.argv.includes('--ipv4-only'));
    const rate = Number(arg('rate'));
    child({ seconds: Number(arg('seconds')), rate, lanes: Number(arg('lanes') ?? Math.max(100, Math.round(rate / 6))), phones: 20_000 }).then(
      (rows) => console.log(JSON.stringify(rows)),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  } else {
    const minutes = arg('minutes');
    const rate = arg('rate');
    run({
      quick: process.argv.includes('--quick'),
      ipv4Only: process.argv.includes('--ipv4-only'),
      minutes: minutes === undefined ? undefined : Number(minutes),
      rate: rate === undefined ? undefined : Number(rate),
    }).then(
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
