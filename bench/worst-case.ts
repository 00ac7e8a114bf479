/**
 * Worst-case inputs, timed here rather than in the tests (a test must not depend on the machine's
 * speed; the tests prove the behaviour and count the work, these rows say how long it takes):
 *   - the events-map condition evaluator on the fuzz corpus (bench/condition-corpus.ts, the same
 *     generators and seed as test/fuzz-condition.test.ts): the slowest compile + test of one input;
 *   - one AMI frame of 50 000 colon-less lines (test/ami-framer.test.ts): a header lookup after
 *     them, and the same at 100 000 lines (linear: about 2x; a quadratic colon search: about 4x).
 */
import fc from 'fast-check';
import { parseFrame } from '../src/ami/index.js';
import { compileCondition } from '../src/odoo/index.js';
import { CONDITION_RUNS, CONDITION_SEED, conditionEvent, conditionInput } from './condition-corpus.js';
import type { BenchResult } from './types.js';

const CONDITION_MAX_MS = 100;
const FRAME_LOOKUP_MAX_MS = 500;
const FRAME_GROWTH_MAX = 3;

function conditionWorst(): { worstMs: number; p99Ms: number; inputs: number; worst: string } {
  const times: number[] = [];
  let worstMs = -1;
  let worst = '';
  fc.assert(
    fc.property(conditionInput, fc.array(conditionEvent, { maxLength: 3 }), (src, events) => {
      const t0 = performance.now();
      try {
        const c = compileCondition(src);
        for (const ev of events) c.test(Object.assign(Object.create(null) as Record<string, unknown>, ev));
      } catch {
        /* rejected inputs are timed too */
      }
      const ms = performance.now() - t0;
      times.push(ms);
      if (ms > worstMs) [worstMs, worst] = [ms, JSON.stringify(src).slice(0, 60)];
    }),
    { seed: CONDITION_SEED, numRuns: CONDITION_RUNS },
  );
  times.sort((a, b) => a - b);
  return { worstMs, p99Ms: times[Math.floor(times.length * 0.99)]!, inputs: times.length, worst };
}

/** median ms of `runs` lookups of the last header after `lines` colon-less lines */
function frameLookupMs(lines: number, runs: number): number {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const frame = parseFrame('Event: X\r\n' + 'nocolon\r\n'.repeat(lines) + 'Last: one');
    const t0 = performance.now();
    if (frame.get('Last') !== 'one') throw new Error('the header after the colon-less lines was not found');
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)]!;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

export async function run(opts: { runs?: number } = {}): Promise<BenchResult[]> {
  const runs = opts.runs ?? 7;
  const c = conditionWorst();
  const at50k = frameLookupMs(50_000, runs);
  const at100k = frameLookupMs(100_000, runs);
  const growth = at100k / Math.max(at50k, 0.001);
  return [
    {
      name: 'condition: slowest compile + test of one fuzz input',
      value: round(c.worstMs),
      unit: 'ms',
      target: `< ${CONDITION_MAX_MS}`,
      ok: c.worstMs < CONDITION_MAX_MS,
      note: `${c.inputs} inputs (seed ${CONDITION_SEED}), p99 ${round(c.p99Ms, 3)} ms; slowest ${c.worst}`,
    },
    {
      name: 'AMI frame: header lookup after 50 000 colon-less lines',
      value: round(at50k),
      unit: 'ms',
      target: `< ${FRAME_LOOKUP_MAX_MS}`,
      ok: at50k < FRAME_LOOKUP_MAX_MS,
      note: `median of ${runs}`,
    },
    {
      name: 'AMI frame: the same lookup, 100 000 lines vs 50 000',
      value: round(growth),
      unit: 'x',
      target: `< ${FRAME_GROWTH_MAX} (linear ~2)`,
      ok: growth < FRAME_GROWTH_MAX,
      note: `${round(at100k)} ms at 100 000 lines, median of ${runs}`,
    },
  ];
}
