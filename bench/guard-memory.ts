/**
 * RSS with N distinct attacking addresses tracked by the guard (default 1M), each with one
 * counted failure, through the real hot path (the AMI source, src/sources/ami-source.ts, on a lazily parsed AMI frame, into Guardian.observe).
 * Target: 250 MB or less for 1M (issue 19), IPv4 only and a half-IPv6 mix (one address in each
 * of N/2 distinct /64s: the guard counts IPv6 by its /64). Also reports the hot-path cost per event.
 * Run: node --expose-gc dist/bench/guard-memory.js [N] [ipv6-share 0..1] [--hits=K] [--pjsip]
 * (--hits: K failures from each address, in K rounds over all of them; the default run is 1: a
 * key hit twice keeps arrays, detector.ts. --pjsip: each failure is a PJSIP wrong-password attempt
 * of 2 events as Asterisk 22 sends it, from IPv4 addresses: two rules and the attempt merge)
 */
import pino from 'pino';
import { parseFrame } from '../src/ami/index.js';
import { Guardian, loadRulesDir } from '../src/guard/index.js';
import { MemoryBanStore } from '../src/store/memory.js';
import { amiObserver } from '../src/sources/index.js';
import { PACKAGE_ROOT } from '../src/config/index.js';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './types.js';

/** Address `i`: IPv4, or with `v6` an address in the i-th /64 of 2001:db8::/32 (both distinct per i). */
function addressFor(i: number, v6: boolean): string {
  if (v6) return `IPV6/UDP/2001:db8:${((i >>> 16) & 0xffff).toString(16)}:${(i & 0xffff).toString(16)}::${(1 + (i % 250)).toString(16)}`;
  return `IPV4/UDP/${10 + ((i >>> 16) & 0x7f)}.${(i >>> 8) & 255}.${i & 255}.${1 + (i % 250)}`;
}

function frameFor(i: number, v6: boolean): string {
  return [
    'Event: InvalidPassword',
    'Privilege: security,all',
    'EventTV: 2026-11-22T10:17:12.098+0000',
    'Severity: Error',
    'Service: SIP',
    'EventVersion: 2',
    'AccountID: 100',
    'SessionID: 0x7f51fc001ec0',
    'LocalAddress: IPV4/UDP/127.0.0.1/5060',
    `RemoteAddress: ${addressFor(i, v6)}/36778`,
    'Challenge: 746d9a41',
    'ReceivedChallenge: 746d9a41',
    'ReceivedHash: 077b03d63f0eca85f99d6d7366c54960',
  ].join('\r\n');
}

/** A PJSIP wrong-password attempt as Asterisk 22 sends it (test/fixtures/ami-asterisk22-pjsip/
 *  pjsip-udp-wrong-password.raw): ChallengeSent then ChallengeResponseFailed, one Call-ID. */
function pjsipAttempt(i: number, round: number): string[] {
  const a = `${10 + ((i >>> 16) & 0x7f)}.${(i >>> 8) & 255}.${i & 255}.${1 + (i % 250)}`;
  const head = (event: string, severity: string) => [
    `Event: ${event}`,
    'Privilege: security,all',
    'EventTV: 2026-12-02T05:55:28.466+0000',
    `Severity: ${severity}`,
    'Service: PJSIP',
    'EventVersion: 1',
    'AccountID: 100',
    `SessionID: 4qkdxqmq${i.toString(36)}-${round}`,
    'LocalAddress: IPV4/UDP/192.0.2.1/5060',
    `RemoteAddress: IPV4/UDP/${a}/50126`,
  ];
  return [
    [...head('ChallengeSent', 'Informational'), 'Challenge: '].join('\r\n'),
    [
      ...head('ChallengeResponseFailed', 'Error'),
      'Challenge: 1796190928/5c3b0d8e3d2e5e1b8f0c2a4d6e8f0a1b',
      'Response: 0f1e2d3c4b5a69788796a5b4c3d2e1f0',
      'ExpectedResponse: ',
    ].join('\r\n'),
  ];
}

function newGuardian(clock: () => number): Guardian {
  return new Guardian(
    {
      rules: loadRulesDir(join(PACKAGE_ROOT, 'rules')),
      allow: [],
      automaticAllow: ['127.0.0.0/8', '::1'],
      ipv6Prefix: 64,
      maxTracked: 1_000_000,
      trackTtlSec: 12 * 3600,
      escalation: { factor: 2, maxSec: 86400 * 30, lookbackSec: 86400 * 30 },
      recidive: null,
    },
    new MemoryBanStore(),
    { ban: async () => {}, unban: async () => {}, setAllow: async () => {} },
    pino({ level: 'silent' }),
    clock,
  );
}

/** PJSIP wrong-password attempts from `attackers` addresses (2 events each, one attempt per
 *  address per round, a new Call-ID each), `rounds` rounds below the ban threshold: the attempt
 *  merge's cost on the hot path, comparable with a build without it (nothing banned in either). */
function pjsipHotPath(attackers: number, rounds: number): BenchResult {
  let clock = Date.parse('2026-11-22T10:00:00Z');
  const guardian = newGuardian(() => clock);
  const observe = amiObserver(guardian, () => clock);
  const frames = Array.from({ length: rounds }, (_, r) => Array.from({ length: attackers }, (_, i) => pjsipAttempt(i, r)));
  let events = 0;
  const start = process.hrtime.bigint();
  for (const round of frames) {
    for (const attempt of round) {
      for (const text of attempt) {
        clock += 1;
        observe(parseFrame(text));
        events++;
      }
    }
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return {
    name: 'guard: hot path (parse + detect), PJSIP wrong-password attempts',
    value: Math.round(events / seconds),
    unit: 'events/s',
    note: `${((seconds * 1e6) / events).toFixed(2)} µs/event; ${attackers} addresses × ${rounds} attempts of 2 events; ${guardian.status().currentlyBanned} banned`,
  };
}

/** RSS and event rate with `n` distinct attacker keys, a share `v6` of them IPv6 /64s, each hit `hits` times. */
async function tracked(n: number, v6: number, hits = 1, pjsip = false): Promise<BenchResult[]> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const rssBefore = process.memoryUsage().rss;
  let clock = Date.parse('2026-11-22T10:00:00Z');
  const guardian = newGuardian(() => clock);
  const observe = amiObserver(guardian, () => clock);
  const start = process.hrtime.bigint();
  for (let round = 0; round < hits; round++)
    for (let i = 0; i < n; i++) {
      clock += 1;
      if (pjsip) for (const text of pjsipAttempt(i, round)) observe(parseFrame(text));
      // every (1/v6)-th key IPv6, spread evenly
      else observe(parseFrame(frameFor(i, Math.floor((i + 1) * v6) > Math.floor(i * v6))));
    }
  const events = n * hits * (pjsip ? 2 : 1);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  // Settle: a few full collections with pauses, so pages V8 has freed are returned before RSS is read.
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 200));
  }
  const rssAfter = process.memoryUsage().rss;
  const tracked = guardian.status().currentlyFailed;
  const mb = rssAfter / 1048576;
  const heapMb = Math.round(process.memoryUsage().heapUsed / 1048576);
  const buffersMb = Math.round(process.memoryUsage().arrayBuffers / 1048576);
  const mix = (pjsip ? ', PJSIP attempts (2 events)' : v6 > 0 ? `, ${Math.round(v6 * 100)}% IPv6 /64s` : '') + (hits > 1 ? `, ${hits} failures each` : '');
  const peakMb = Math.round(process.resourceUsage().maxRSS / 1024);
  return [
    {
      name: `guard: RSS with ${n.toLocaleString('en')} attacking addresses tracked${mix}`,
      value: Math.round(mb),
      unit: 'MB',
      target: n === 1_000_000 ? '<= 250' : undefined,
      ok: n === 1_000_000 ? mb <= 250 : undefined,
      note: `${tracked} tracked, ${guardian.status().currentlyBanned} banned; heap used ${heapMb} MB, typed arrays ${buffersMb} MB; RSS before ${Math.round(rssBefore / 1048576)} MB, peak ${peakMb} MB${gc ? '' : ' (run with --expose-gc for a settled figure)'}`,
    },
    {
      name: `guard: hot path (parse + detect), distinct addresses${mix}`,
      value: Math.round(events / seconds),
      unit: 'events/s',
      note: `${((seconds * 1e6) / events).toFixed(2)} µs/event incl. building the frame text`,
    },
  ];
}

export async function run(opts: { addresses?: number; ipv6Share?: number; hits?: number; pjsip?: boolean } = {}): Promise<BenchResult[]> {
  const n = opts.addresses ?? 1_000_000;
  const out = await tracked(n, opts.ipv6Share ?? 0, opts.hits, opts.pjsip);
  if (opts.pjsip) return out;
  // the mix in a child of its own: RSS read here after the first run would count its freed pages
  if (opts.ipv6Share === undefined) {
    const json = execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), String(n), '0.5', `--hits=${opts.hits ?? 1}`, '--json'], {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    out.push(...(JSON.parse(json) as BenchResult[]).slice(0, 2));
  }
  out.push(pjsipHotPath(Math.min(n, 50_000), 4));
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const n = args[0] ? Number(args[0]) : undefined;
  const share = args[1] ? Number(args[1]) : undefined;
  const hitsArg = process.argv.find((a) => a.startsWith('--hits='));
  const hits = hitsArg ? Number(hitsArg.slice(7)) : undefined;
  const results = await run({ addresses: n, ipv6Share: share, hits, pjsip: process.argv.includes('--pjsip') });
  if (process.argv.includes('--json')) console.log(JSON.stringify(results));
  else
    for (const r of results)
      console.log(`${r.name}: ${r.value} ${r.unit}${r.target ? ` (target ${r.target}: ${r.ok ? 'met' : 'NOT met'})` : ''}${r.note ? ` — ${r.note}` : ''}`);
}
