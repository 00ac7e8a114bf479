/**
 * Soak: a sustained stream of security events (default 5k/s from 100k addresses, legitimate
 * traffic interleaved) through the real daemon (startDaemon: AmiClient → Guardian → Enforcer →
 * backend, SQLite store) for a bounded time.
 *
 * The producer (AmiSimulator, a real TCP AMI peer) runs in a worker thread, so that generating
 * and writing frames does not run on the daemon's event loop: the event-loop delay measured
 * (perf_hooks.monitorEventLoopDelay) is the daemon's own.
 *
 * Address populations (of `addresses`):
 *   60% attackers   10.0.0.0/8 (90% IPv4) and 2001:db8:…/64 (10% IPv6): failures round robin,
 *                   so every attacker crosses 5 failures within minutes: each must be banned;
 *   30% noise       172.16.0.0/12: at most 3 failures each: must never be banned;
 *   10% allow-listed 100.64.0.0/10 (guard.allow): failures without end: must never be banned;
 *   plus 1,000 phones 198.19.0.0/16 sending ChallengeSent + SuccessfulAuth: never banned.
 * Event mix: 50% attacker failures, 15% noise, 15% allow-listed, 20% legitimate.
 *
 * Reports: RSS curve (sampled), growth of the last third's max over the first third's max,
 * event-loop delay p50/p99/max, events sent vs received, drain time at the end, missed attackers,
 * allow-listed / legitimate / noise addresses banned.
 *
 * Run: node dist/bench/soak.js [--seconds 600] [--rate 5000] [--addresses 100000] [--memory]
 *   As root (and unless --memory) it runs in a private network namespace with the nftables
 *   backend; otherwise with the memory backend.
 */
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import pino from 'pino';
import { buildConfig, PACKAGE_ROOT } from '../src/config/index.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';
import { loadTemplate, retarget } from '../src/demo/attack.js';
import { createBackend, defaultFirewallConfig, MemoryBackend, type FirewallBackend } from '../src/firewall/index.js';
import { startDaemon } from '../src/main.js';
import type { BenchResult } from './types.js';

const SELF = fileURLToPath(import.meta.url);
const FIXTURES = join(PACKAGE_ROOT, 'test', 'fixtures', 'ami');
const NFT = '/usr/sbin/nft';
const UNSHARE = '/usr/bin/unshare';
const TABLE = 'pbxg_soak';
const THRESHOLD = 5; // rules/asterisk.yaml auth-failure: 5 within 10m
const NOISE_MAX = 3;
const PHONES = 1000;
const pexec = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface SoakOptions {
  seconds: number;
  /** security events per second */
  rate: number;
  addresses: number;
  backend: 'memory' | 'nftables';
  /** RSS sample interval */
  sampleMs?: number;
  /** bound on the wait for the daemon to catch up after the producer stops */
  drainBoundMs?: number;
}

export interface SoakResult {
  backend: string;
  seconds: number;
  rate: number;
  addresses: number;
  eventsSent: number;
  eventsReceived: number;
  achievedRate: number;
  producerBacklogMaxBytes: number;
  producerSkippedTicks: number;
  drainMs: number;
  rssMb: Array<[number, number]>;
  rssFirstThirdMaxMb: number;
  rssLastThirdMaxMb: number;
  rssGrowthPct: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** seconds into the run of the longest stall, and the longest GC pause (ms, at s) */
  stallAtS: number;
  gcMaxMs: number;
  gcMaxAtS: number;
  attackersExpected: number;
  attackersBanned: number;
  attackersMissed: number;
  missedSample: string[];
  allowListedBanned: number;
  legitBanned: number;
  noiseBanned: number;
  bansTotal: number;
}

// ------------------------------------------------------------------ populations

function populations(n: number) {
  const attackers = Math.floor(n * 0.6);
  const noise = Math.floor(n * 0.3);
  const allow = n - attackers - noise;
  return { attackers, noise, allow };
}

/** the attacker's address, and the target the guard bans for it (IPv6: its /64) */
export function attackerAddr(i: number): { address: string; target: string } {
  if (i % 10 === 9) {
    const g3 = (0x100 + (i >> 12)).toString(16);
    const g4 = (0x1000 + (i & 0xfff)).toString(16);
    return { address: `2001:db8:${g3}:${g4}::5`, target: `2001:db8:${g3}:${g4}::/64` };
  }
  const a = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  return { address: a, target: a };
}
const noiseAddr = (i: number) => `172.${16 + ((i >> 16) & 15)}.${(i >> 8) & 255}.${i & 255}`;
const allowAddr = (i: number) => `100.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`;
const phoneAddr = (i: number) => `198.19.${(i >> 8) & 255}.${i & 255}`;

// ------------------------------------------------------------------ producer (worker thread)

interface ProducerData {
  fixturesDir: string;
  rate: number;
  seconds: number;
  addresses: number;
}

interface ProducerDone {
  sent: number;
  attackerCounts: Uint8Array;
  backlogMax: number;
  skippedTicks: number;
}

function frameOf(file: string, event: string): string {
  const f = loadTemplate(FIXTURES, file).find((x) => x.startsWith(`Event: ${event}\r\n`));
  if (!f) throw new Error(`${file} has no ${event} frame`);
  return f;
}

async function producer(d: ProducerData): Promise<void> {
  const sim = new AmiSimulator({ fixturesDir: d.fixturesDir, username: 'guardian', secret: 'soak', loginFailDelayMs: 10 });
  const port = await sim.listen();
  parentPort!.postMessage({ port });
  await new Promise<void>((r) => parentPort!.once('message', () => r())); // "go"
  // real frames, retargeted
  const ip = frameOf('security-sip-register-wrong-password.raw', 'InvalidPassword');
  const ip6 = frameOf('security-sip-register-wrong-password-ipv6.raw', 'InvalidPassword');
  const crf = frameOf('security-ami-challenge-response-failed.raw', 'ChallengeResponseFailed');
  const challenge = frameOf('security-sip-register-success.raw', 'ChallengeSent');
  const success = frameOf('security-sip-register-success.raw', 'SuccessfulAuth');
  const pop = populations(d.addresses);
  const attackerCounts = new Uint8Array(pop.attackers);
  const noiseCounts = new Uint8Array(pop.noise);
  let aCur = 0;
  let nCur = 0;
  let wCur = 0;
  let pCur = 0;
  let sent = 0;
  let backlogMax = 0;
  let skippedTicks = 0;
  let skippedEvents = 0;
  const tickMs = 10;
  const perTick = d.rate / (1000 / tickMs);
  const t0 = performance.now();
  const end = t0 + d.seconds * 1000;
  let due = 0; // events owed so far
  let k = 0; // position in the 20-slot mix
  const socks = () => (sim as unknown as { sessions: Set<{ sock: { writableLength: number } }> }).sessions;
  while (performance.now() < end) {
    const now = performance.now();
    due = Math.floor(((now - t0) / tickMs) * perTick) - skippedEvents;
    let backlog = 0;
    for (const s of socks()) backlog = Math.max(backlog, s.sock.writableLength);
    backlogMax = Math.max(backlogMax, backlog);
    if (backlog > 64 * 1048576) {
      // the daemon is not keeping up: do not buffer without bound; the shortfall shows in the rate
      skippedTicks++;
      skippedEvents += Math.max(0, due - sent); // owe nothing for this tick
      await sleep(tickMs);
      continue;
    }
    const parts: string[] = [];
    while (sent < due) {
      const slot = k++ % 20;
      if (slot < 10) {
        const i = aCur++ % pop.attackers;
        const { address } = attackerAddr(i);
        parts.push(retarget(address.includes(':') ? ip6 : i % 3 === 0 ? crf : ip, address) + '\r\n\r\n');
        if (attackerCounts[i]! < 255) attackerCounts[i]!++;
        sent++;
      } else if (slot < 13) {
        let tries = 0;
        while (tries < pop.noise && noiseCounts[nCur % pop.noise]! >= NOISE_MAX) {
          nCur++;
          tries++;
        }
        if (tries >= pop.noise) {
          // noise exhausted: a phone registers instead (ChallengeSent + SuccessfulAuth: a bare
          // ChallengeSent from a phone, again and again, is what the challenge-flood rule bans)
          const a = phoneAddr(pCur++ % PHONES);
          parts.push(retarget(challenge, a) + '\r\n\r\n' + retarget(success, a) + '\r\n\r\n');
          sent++;
        } else {
          const i = nCur++ % pop.noise;
          noiseCounts[i]!++;
          parts.push(retarget(ip, noiseAddr(i)) + '\r\n\r\n');
        }
        sent++;
      } else if (slot < 16) {
        parts.push(retarget(ip, allowAddr(wCur++ % pop.allow)) + '\r\n\r\n');
        sent++;
      } else {
        // a phone registering: ChallengeSent then SuccessfulAuth (two events, two slots)
        const a = phoneAddr(pCur++ % PHONES);
        parts.push(retarget(challenge, a) + '\r\n\r\n' + retarget(success, a) + '\r\n\r\n');
        k++;
        sent += 2;
      }
    }
    if (parts.length) sim.broadcast(parts.join(''));
    const next = t0 + Math.ceil((performance.now() - t0 + 0.001) / tickMs) * tickMs;
    await sleep(Math.max(1, next - performance.now()));
  }
  // wait for the socket to flush (bounded)
  const flushEnd = Date.now() + 60_000;
  while (Date.now() < flushEnd && [...socks()].some((s) => s.sock.writableLength > 0)) await sleep(20);
  const done: ProducerDone = { sent, attackerCounts, backlogMax, skippedTicks };
  parentPort!.postMessage({ done });
  await new Promise<void>((r) => parentPort!.once('message', () => r())); // "close"
  await sim.close();
}

// ------------------------------------------------------------------ the daemon side

function pctOf(h: ReturnType<typeof monitorEventLoopDelay>, p: number): number {
  return h.percentile(p) / 1e6;
}

export async function soak(o: SoakOptions): Promise<SoakResult> {
  const sampleMs = o.sampleMs ?? 5000;
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-soak-'));
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { fixturesDir: FIXTURES, rate: o.rate, seconds: o.seconds, addresses: o.addresses } satisfies ProducerData,
  });
  const messages: unknown[] = [];
  const waiters: Array<(m: unknown) => void> = [];
  worker.on('message', (m: unknown) => (waiters.length ? waiters.shift()!(m) : messages.push(m)));
  const next = (boundMs: number) =>
    new Promise<unknown>((resolve, reject) => {
      if (messages.length) return resolve(messages.shift());
      const t = setTimeout(() => reject(new Error('producer worker did not answer in time')), boundMs);
      waiters.push((m) => {
        clearTimeout(t);
        resolve(m);
      });
    });
  worker.on('error', (err) => {
    for (const w of waiters.splice(0)) w({ error: err });
  });
  const silent = pino({ level: 'silent' });
  let backend: FirewallBackend;
  const memory = new MemoryBackend();
  if (o.backend === 'nftables') backend = await createBackend({ ...defaultFirewallConfig, backend: 'nftables', table: TABLE, reconcileIntervalMs: 0 }, silent);
  else backend = memory;
  const { port } = (await next(10_000)) as { port: number };
  const config = buildConfig({
    stateDir: join(dir, 'state'),
    logLevel: 'silent',
    ami: { host: '127.0.0.1', port, username: 'guardian', secret: 'soak' },
    guard: { allow: ['100.64.0.0/10'] },
    firewall: { backend: o.backend, table: TABLE },
    metrics: { enabled: false },
    admin: { socket: join(dir, 'admin.sock') },
  });
  const daemon = await startDaemon({ config, backend, logger: silent, adminSocket: false });
  try {
    const loginEnd = Date.now() + 10_000;
    while (daemon.ami?.state !== 'connected' && Date.now() < loginEnd) await sleep(10);
    if (daemon.ami?.state !== 'connected') throw new Error('the daemon did not log in to the AMI simulator');
    let received = 0;
    daemon.ami.on('event', (m: { get(k: string): string | undefined }) => {
      const e = m.get('Event');
      // not the simulator's own login frames (FullyBooted, the AMI SuccessfulAuth of our login)
      if (e !== 'FullyBooted' && !(e === 'SuccessfulAuth' && m.get('Service') === 'AMI')) received++;
    });
    const rss: Array<[number, number]> = [];
    const t0 = performance.now();
    const sample = () => rss.push([Math.round((performance.now() - t0) / 100) / 10, Math.round(process.memoryUsage().rss / 104857.6) / 10]);
    sample();
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    // when the longest stall happened, and the longest GC pause: what a max lag was
    let lastTick = performance.now();
    let stall = { ms: 0, atS: 0 };
    const stallTimer = setInterval(() => {
      const now = performance.now();
      if (now - lastTick > stall.ms) stall = { ms: now - lastTick, atS: Math.round((lastTick - t0) / 100) / 10 };
      lastTick = now;
    }, 5);
    let gcMax = { ms: 0, atS: 0 };
    const gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.duration > gcMax.ms) gcMax = { ms: e.duration, atS: Math.round((e.startTime - t0) / 100) / 10 };
    });
    gcObserver.observe({ entryTypes: ['gc'] });
    const timer = setInterval(sample, sampleMs);
    worker.postMessage('go');
    const done = (await next(o.seconds * 1000 + 120_000)) as { done?: ProducerDone; error?: Error };
    if (!done.done) throw done.error ?? new Error('producer failed');
    const p = done.done;
    const tStop = performance.now();
    const drainEnd = Date.now() + (o.drainBoundMs ?? 60_000);
    while (received < p.sent && Date.now() < drainEnd) await sleep(10);
    const drainMs = performance.now() - tStop;
    h.disable();
    clearInterval(stallTimer);
    gcObserver.disconnect();
    clearInterval(timer);
    sample();
    // let the enforcer apply what is queued (bounded)
    const qEnd = Date.now() + 30_000;
    while (daemon.enforcer.queued > 0 && Date.now() < qEnd) await sleep(20);
    await sleep(50);

    const inKernel = new Set((await backend.list()).map((e) => e.target));
    const pop = populations(o.addresses);
    let expected = 0;
    let banned = 0;
    const missed: string[] = [];
    for (let i = 0; i < pop.attackers; i++) {
      if (p.attackerCounts[i]! < THRESHOLD) continue;
      expected++;
      const { target } = attackerAddr(i);
      if (inKernel.has(target)) banned++;
      else if (missed.push(target) > 1e6) break;
    }
    let allowBanned = 0;
    let legitBanned = 0;
    let noiseBanned = 0;
    for (const t of inKernel) {
      if (t.startsWith('100.')) allowBanned++;
      else if (t.startsWith('198.19.')) legitBanned++;
      else if (t.startsWith('172.')) noiseBanned++;
    }
    const third = Math.max(1, Math.floor(rss.length / 3));
    const first = Math.max(...rss.slice(0, third).map((x) => x[1]));
    const last = Math.max(...rss.slice(rss.length - third).map((x) => x[1]));
    const secs = (tStop - t0) / 1000;
    return {
      backend: o.backend === 'nftables' ? 'nftables (private network namespace)' : 'memory',
      seconds: Math.round(secs),
      rate: o.rate,
      addresses: o.addresses,
      eventsSent: p.sent,
      eventsReceived: received,
      achievedRate: Math.round(p.sent / secs),
      producerBacklogMaxBytes: p.backlogMax,
      producerSkippedTicks: p.skippedTicks,
      drainMs: Math.round(drainMs),
      rssMb: rss,
      rssFirstThirdMaxMb: first,
      rssLastThirdMaxMb: last,
      rssGrowthPct: Math.round(((last - first) / first) * 1000) / 10,
      lagP50Ms: Math.round(pctOf(h, 50) * 10) / 10,
      lagP99Ms: Math.round(pctOf(h, 99) * 10) / 10,
      lagMaxMs: Math.round((h.max / 1e6) * 10) / 10,
      stallAtS: stall.atS,
      gcMaxMs: Math.round(gcMax.ms * 10) / 10,
      gcMaxAtS: gcMax.atS,
      attackersExpected: expected,
      attackersBanned: banned,
      attackersMissed: missed.length,
      missedSample: missed.slice(0, 5),
      allowListedBanned: allowBanned,
      legitBanned,
      noiseBanned,
      bansTotal: inKernel.size,
    };
  } finally {
    await daemon.stop();
    if (o.backend === 'nftables') await pexec(NFT, ['delete', 'table', 'inet', TABLE]).catch(() => undefined);
    worker.postMessage('close');
    await Promise.race([new Promise((r) => worker.once('exit', r)), sleep(5000).then(() => worker.terminate())]);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ bench entry

/** Allowed growth of the last third's RSS max over the first third's. */
export const RSS_GROWTH_MAX_PCT = 25;
export const LAG_P99_MAX_MS = 50;

export function toRows(r: SoakResult): BenchResult[] {
  const curve = r.rssMb.map(([t, mb]) => `${t}s:${mb}`).join(' ');
  return [
    {
      name: `soak: events delivered (${r.seconds} s, target rate ${r.rate}/s)`,
      value: r.achievedRate,
      unit: 'events/s',
      target: `>= ${Math.round(r.rate * 0.95)}`,
      ok: r.achievedRate >= r.rate * 0.95 && r.eventsReceived === r.eventsSent,
      note: `${r.eventsSent} sent, ${r.eventsReceived} received, drain after stop ${r.drainMs} ms; producer socket backlog max ${Math.round(r.producerBacklogMaxBytes / 1024)} KiB${r.producerSkippedTicks ? `, ${r.producerSkippedTicks} ticks skipped (daemon behind)` : ''}; backend ${r.backend}`,
    },
    {
      name: 'soak: event-loop delay p99',
      value: r.lagP99Ms,
      unit: 'ms',
      target: `< ${LAG_P99_MAX_MS}`,
      ok: r.lagP99Ms < LAG_P99_MAX_MS,
      note: `p50 ${r.lagP50Ms} ms, max ${r.lagMaxMs} ms at ${r.stallAtS} s (monitorEventLoopDelay, 1 ms sampling; figures include that 1 ms); longest GC pause ${r.gcMaxMs} ms at ${r.gcMaxAtS} s`,
    },
    {
      name: 'soak: RSS growth, last third max vs first third max',
      value: r.rssGrowthPct,
      unit: '%',
      target: `<= ${RSS_GROWTH_MAX_PCT}`,
      ok: r.rssGrowthPct <= RSS_GROWTH_MAX_PCT,
      note: `first ${r.rssFirstThirdMaxMb} MB, last ${r.rssLastThirdMaxMb} MB; curve (s:MB) ${curve}`,
    },
    {
      name: 'soak: attackers missed',
      value: r.attackersMissed,
      unit: 'addresses',
      target: '0',
      ok: r.attackersExpected > 0 && r.attackersMissed === 0,
      note: `${r.attackersBanned}/${r.attackersExpected} attackers that crossed ${THRESHOLD} failures are in the set${r.missedSample.length ? `; e.g. ${r.missedSample.join(', ')}` : ''}`,
    },
    {
      name: 'soak: allow-listed / legitimate / noise addresses banned',
      value: r.allowListedBanned + r.legitBanned + r.noiseBanned,
      unit: 'addresses',
      target: '0',
      ok: r.allowListedBanned + r.legitBanned + r.noiseBanned === 0,
      note: `allow-listed ${r.allowListedBanned}, phones ${r.legitBanned}, noise (<= ${NOISE_MAX} failures) ${r.noiseBanned}; ${r.bansTotal} bans in total`,
    },
  ];
}

function canNetns(): boolean {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return false;
  try {
    accessSync(UNSHARE, constants.X_OK);
    accessSync(NFT, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function inNetns(o: SoakOptions): Promise<SoakResult> {
  return new Promise((resolve, reject) => {
    const args = ['-n', process.execPath, SELF, '--child', '--seconds', String(o.seconds), '--rate', String(o.rate), '--addresses', String(o.addresses)];
    const c = spawn(UNSHARE, args, { env: { ...process.env, PBXG_PARENT_NETNS: readlinkSync('/proc/self/ns/net') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), (o.seconds + 300) * 1000);
    c.on('error', reject);
    c.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`soak child exited ${code}: ${err.slice(-1500)}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as SoakResult);
      } catch {
        reject(new Error(`soak child printed no JSON: ${out.slice(-500)} ${err.slice(-500)}`));
      }
    });
  });
}

export async function run(opts: { quick?: boolean; seconds?: number; rate?: number; addresses?: number; memory?: boolean } = {}): Promise<BenchResult[]> {
  const o: SoakOptions = {
    seconds: opts.seconds ?? (opts.quick ? 20 : 600),
    rate: opts.rate ?? 5000,
    // quick: few enough addresses that attackers cross the threshold within 20 s
    addresses: opts.addresses ?? (opts.quick ? 5000 : 100_000),
    backend: !opts.memory && canNetns() ? 'nftables' : 'memory',
  };
  const r = o.backend === 'nftables' ? await inNetns(o) : await soak(o);
  const rows = toRows(r);
  if (o.backend === 'memory' && !opts.memory) rows[0]!.note += ' (not root: memory backend, no kernel set)';
  return rows;
}

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

if (!isMainThread && workerData && (workerData as ProducerData).fixturesDir) {
  producer(workerData as ProducerData).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else if (isMainThread && process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--child')) {
    // inside the private namespace: loopback up, nftables backend
    const parent = process.env.PBXG_PARENT_NETNS;
    if (!parent || parent === readlinkSync('/proc/self/ns/net')) throw new Error('refusing to run: not in a private network namespace');
    await pexec('/usr/sbin/ip', ['link', 'set', 'lo', 'up']);
    const r = await soak({ seconds: arg('seconds') ?? 600, rate: arg('rate') ?? 5000, addresses: arg('addresses') ?? 100_000, backend: 'nftables' });
    console.log(JSON.stringify(r));
    process.exit(0);
  } else {
    const rows = await run({
      seconds: arg('seconds'),
      rate: arg('rate'),
      addresses: arg('addresses'),
      memory: process.argv.includes('--memory'),
      quick: process.argv.includes('--quick'),
    });
    for (const r of rows)
      console.log(`${r.name}: ${r.value} ${r.unit}${r.target ? ` (target ${r.target}: ${r.ok ? 'met' : 'NOT met'})` : ''}${r.note ? ` — ${r.note}` : ''}`);
  }
}
