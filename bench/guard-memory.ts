/**
 * RSS with N distinct attacking addresses tracked by the guard (default 1M), each with one
 * counted failure, through the real hot path (Guardian.handleEvent on a lazily parsed AMI frame).
 * Target: 400 MB or less for 1M. Also reports the hot-path cost per event.
 * Run: node --expose-gc dist/bench/guard-memory.js [N]
 */
import pino from 'pino';
import { parseFrame } from '../src/ami/index.js';
import { Guardian, loadRulesDir } from '../src/guard/index.js';
import { MemoryBanStore } from '../src/store/memory.js';
import { PACKAGE_ROOT } from '../src/config/index.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './types.js';

function frameFor(i: number): string {
  const a = `${10 + ((i >>> 16) & 0x7f)}.${(i >>> 8) & 255}.${i & 255}.${1 + (i % 250)}`;
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
    `RemoteAddress: IPV4/UDP/${a}/36778`,
    'Challenge: 746d9a41',
    'ReceivedChallenge: 746d9a41',
    'ReceivedHash: 077b03d63f0eca85f99d6d7366c54960',
  ].join('\r\n');
}

export async function run(opts: { addresses?: number } = {}): Promise<BenchResult[]> {
  const n = opts.addresses ?? 1_000_000;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const rssBefore = process.memoryUsage().rss;
  let clock = Date.parse('2026-11-22T10:00:00Z');
  const guardian = new Guardian(
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
    () => clock,
  );
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    clock += 1;
    guardian.handleEvent(parseFrame(frameFor(i)), clock);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  // Settle: a few full collections with pauses, so pages V8 has freed are returned before RSS is read.
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 200));
  }
  const rssAfter = process.memoryUsage().rss;
  const tracked = guardian.status().currentlyFailed;
  const mb = rssAfter / 1048576;
  return [
    { name: `guard: RSS with ${n.toLocaleString('en')} attacking addresses tracked`, value: Math.round(mb), unit: 'MB', target: n === 1_000_000 ? '<= 400' : undefined, ok: n === 1_000_000 ? mb <= 400 : undefined, note: `${tracked} tracked; heap used ${Math.round(process.memoryUsage().heapUsed / 1048576)} MB; RSS before ${Math.round(rssBefore / 1048576)} MB${gc ? '' : ' (run with --expose-gc for a settled figure)'}` },
    { name: 'guard: hot path (parse + detect), distinct addresses', value: Math.round(n / seconds), unit: 'events/s', note: `${((seconds * 1e6) / n).toFixed(2)} µs/event incl. building the frame text` },
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const n = process.argv[2] ? Number(process.argv[2]) : undefined;
  for (const r of await run({ addresses: n })) console.log(`${r.name}: ${r.value} ${r.unit}${r.target ? ` (target ${r.target}: ${r.ok ? 'met' : 'NOT met'})` : ''}${r.note ? ` — ${r.note}` : ''}`);
}
