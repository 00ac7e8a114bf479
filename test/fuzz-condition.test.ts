/**
 * Property test of the events-map condition evaluator (compileCondition): random strings and
 * random token soups never throw anything but ConditionError, never run code, and the work of a
 * test() is bounded by the token cap (counted as reads of the event, not timed: the slowest
 * compile + test on this corpus is the `worst-case` benchmark row). Fixed seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileCondition, ConditionError } from '../src/odoo/index.js';
import { CONDITION_MAX_TOKENS } from '../src/odoo/condition.js';
import { CONDITION_RUNS, CONDITION_SEED, EVENT_MAX_KEYS, conditionEvent, conditionInput } from '../bench/condition-corpus.js';

const g = globalThis as Record<string, unknown>;

// Each `event` in the source is evaluated once per test() and reads the event at most
// max(2, keys + 1) times: `event['X']` / `event.get('X')` a descriptor and a value, `x in event`
// one descriptor, a bare `event` tested for truth its keys and each key's descriptor.
// Re-evaluating a subtree, or a walk over the event per node, breaks this bound.
const eventUses = (src: string) => (src.match(/\bevent\b/g) ?? []).length;
const readBound = (src: string, ev: object) => eventUses(src) * Math.max(2, Object.keys(ev).length + 1);
// and the tokenizer caps how many there can be
const MAX_EVENT_READS = CONDITION_MAX_TOKENS * (EVENT_MAX_KEYS + 1);

/** The event behind a proxy that counts every read of it. */
function counted(ev: Record<string, unknown>): { event: Record<string, unknown>; reads: () => number } {
  let n = 0;
  const target = Object.assign(Object.create(null) as Record<string, unknown>, ev);
  const event = new Proxy(target, {
    get: (t, k) => (n++, Reflect.get(t, k)),
    has: (t, k) => (n++, Reflect.has(t, k)),
    ownKeys: (t) => (n++, Reflect.ownKeys(t)),
    getOwnPropertyDescriptor: (t, k) => (n++, Reflect.getOwnPropertyDescriptor(t, k)),
  });
  return { event, reads: () => n };
}

test('fuzz compileCondition: only ConditionError, never code execution, bounded work', (t) => {
  let runs = 0;
  let compiled = 0;
  let mostReads = 0;
  g.__pbxgPwned = undefined;
  fc.assert(
    fc.property(conditionInput, fc.array(conditionEvent, { maxLength: 3 }), (src, events) => {
      runs++;
      let c;
      try {
        c = compileCondition(src);
      } catch (e) {
        assert.ok(e instanceof ConditionError, `${JSON.stringify(src).slice(0, 120)} threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        assert.ok((e as Error).message.length > 0 && (e as Error).message.length < 500);
      }
      if (c) {
        compiled++;
        for (const ev of events) {
          const before = JSON.stringify(ev);
          const { event, reads } = counted(ev);
          const r = c.test(event);
          const n = reads();
          assert.equal(typeof r, 'boolean');
          assert.equal(JSON.stringify(event), before, 'the event is not modified');
          mostReads = Math.max(mostReads, n);
          assert.ok(
            n <= readBound(src, ev) && n <= MAX_EVENT_READS,
            `${n} reads of the event (bound ${readBound(src, ev)}) for ${JSON.stringify(src).slice(0, 80)}`,
          );
        }
      }
      assert.equal(g.__pbxgPwned, undefined);
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
    }),
    { seed: CONDITION_SEED, numRuns: CONDITION_RUNS },
  );
  t.diagnostic(`${runs} inputs, ${compiled} compiled; most reads of one event by one test() ${mostReads} (bound ${MAX_EVENT_READS})`);
});

test('hostile conditions are rejected at compile time (never evaluated)', () => {
  for (const src of [
    "__import__('os').system('id')",
    'event.__class__.__bases__[0].__subclasses__()',
    'globalThis.__pbxgPwned = 1',
    '(function(){ globalThis.__pbxgPwned = 1 })()',
    "event['a'].constructor.constructor('globalThis.__pbxgPwned = 1')()",
    "event.get('a').__proto__",
    '[x for x in event]',
    'lambda: 1',
    "open('/etc/shadow').read()",
    "event['Channel'].lower() == 'x'",
    'process.exit(1)',
    '${1+1}',
  ]) {
    assert.throws(() => compileCondition(src), ConditionError, src);
  }
  assert.equal(g.__pbxgPwned, undefined);
});
