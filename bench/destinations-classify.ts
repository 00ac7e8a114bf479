/**
 * Destination classification (src/fraud/destinations.ts): classify() runs on every outbound
 * call. Numbers per second with the shipped rules/fraud-destinations.yaml, and with a synthetic
 * file of 100,000 prefixes: the digit trie makes the cost depend on the number's length, not on
 * the size of the file, so the two rates should be close.
 *
 * Run: node dist/bench/destinations-classify.js [calls]
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/paths.js';
import { loadDestinationPlan, parseDestinationPlan, type DestinationPlan, type DialingPlan } from '../src/fraud/destinations.js';
import type { BenchResult } from './types.js';

const DE: DialingPlan = { country: '49', nationalPrefix: '0', internationalPrefixes: ['00', '+'], internalMaxDigits: 6 };

/** The fixtures' burst and ordinary calls (test/fixtures/ami-asterisk22-calls), plus garbage. */
const NUMBERS = [
  '00881612345001',
  '0088213540003',
  '+88213540004',
  '+5352540005',
  '0025261234006',
  '00992370000007',
  '09001234560008',
  '+37259120009',
  '0023767100010',
  '004930123180',
  '101',
  '600',
  '00 881-612 (345) 001',
  'sip:00881612345001@203.0.113.50',
];

function synthetic(prefixes: number): DestinationPlan {
  const lines: string[] = [];
  for (let i = 0; i < prefixes; i++) lines.push(`"+${(100000 + i * 7919).toString().slice(0, 9)}${i % 10}"`);
  const unique = [...new Set(lines)];
  return parseDestinationPlan(`classes:\n  big: { description: synthetic, sources: [bench], prefixes: [${unique.join(', ')}] }\n`, 'synthetic.yaml');
}

function rate(plan: DestinationPlan, calls: number): number {
  let sink = 0;
  for (let i = 0; i < 20_000; i++) sink += plan.classify(NUMBERS[i % NUMBERS.length]!, DE).classes.length; // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) sink += plan.classify(NUMBERS[i % NUMBERS.length]!, DE).classes.length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (sink < 0) throw new Error('unreachable');
  return calls / s;
}

export function run(opts: { calls?: number } = {}): BenchResult[] {
  const calls = opts.calls ?? 1_000_000;
  const shipped = loadDestinationPlan(join(PACKAGE_ROOT, 'rules', 'fraud-destinations.yaml'));
  const t0 = process.hrtime.bigint();
  const big = synthetic(100_000);
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const a = rate(shipped, calls);
  const b = rate(big, calls);
  return [
    {
      name: 'classify, shipped classes',
      value: Math.round(a),
      unit: 'numbers/s',
      target: '>= 100000',
      ok: a >= 100_000,
      note: `${NUMBERS.length} fixture and garbage numbers`,
    },
    {
      name: 'classify, 100k-prefix file',
      value: Math.round(b),
      unit: 'numbers/s',
      target: '>= 50% of the shipped rate',
      ok: b >= a * 0.5,
      note: 'trie: cost by number length, not file size',
    },
    { name: 'parse a 100k-prefix file', value: Math.round(loadMs), unit: 'ms', target: '<= 2000', ok: loadMs <= 2000 },
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const calls = Number(process.argv[2] ?? 1_000_000);
  for (const r of run({ calls })) console.log(`${r.name}: ${r.value} ${r.unit} (target ${r.target}) ${r.ok ? 'ok' : 'NOT MET'}`);
}
