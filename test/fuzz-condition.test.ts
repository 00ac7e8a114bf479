/**
 * Property test of the events-map condition evaluator (compileCondition): random strings and
 * random token soups never throw anything but ConditionError, never run code, and compile + test
 * stay fast. Fixed seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileCondition, ConditionError } from '../src/odoo/index.js';

const SEED = 48000;
const g = globalThis as Record<string, unknown>;

const TOKENS = [
  'event', "event['Channel']", "event.get('Variable')", "event.get('X', 'd')", '.startswith', '.endswith', '.get', '.lower()', '.__class__', '__import__',
  "('os')", '.system', "('id')", '(', ')', '[', ']', ',', ':', '==', '!=', ' in ', ' not in ', ' and ', ' or ', 'not ', ' is ', 'lambda x: x', 'True', 'False', 'None',
  "'Local/'", '"Up"', "'\\n'", "'\\x41'", '0', '-1', '1e309', '3.14', '[1, 2]', "('a', 'b')", 'eval', 'exec', 'open', 'globalThis', 'process', 'constructor', 'prototype',
  '__proto__', "event['__proto__']", "event['constructor']", '+', '*', '**', '%', '<', '>=', '`', '${', '\\', '#', ';', '\n', ' ',
];
const soup = fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((a) => a.join(''));
const input = fc.oneof(soup, fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }), fc.constantFrom('('.repeat(1500), 'not '.repeat(490) + 'True', '['.repeat(900) + ']'.repeat(900), "event['a'] == " + "'x' + ".repeat(300) + "'x'", "'" + 'a'.repeat(1990) + "'", 'a'.repeat(2001)));
const evObj = fc.dictionary(fc.oneof(fc.constantFrom('Channel', 'Variable', 'X', 'Response', '__proto__', 'constructor', 'Uniqueid'), fc.string({ maxLength: 8 })), fc.string({ maxLength: 20 }), { maxKeys: 6 });

test('fuzz compileCondition: only ConditionError, never code execution, bounded time', (t) => {
  let runs = 0;
  let compiled = 0;
  let worstMs = 0;
  g.__pbxgPwned = undefined;
  fc.assert(
    fc.property(input, fc.array(evObj, { maxLength: 3 }), (src, events) => {
      runs++;
      const t0 = performance.now();
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
          const r = c.test(Object.assign(Object.create(null) as Record<string, unknown>, ev));
          assert.equal(typeof r, 'boolean');
          assert.equal(JSON.stringify(ev), before, 'the event is not modified');
        }
      }
      const ms = performance.now() - t0;
      worstMs = Math.max(worstMs, ms);
      assert.ok(ms < 100, `${ms.toFixed(1)} ms for ${JSON.stringify(src).slice(0, 80)}`);
      assert.equal(g.__pbxgPwned, undefined);
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
    }),
    { seed: SEED, numRuns: 6000 },
  );
  t.diagnostic(`${runs} inputs, ${compiled} compiled; slowest compile+test ${worstMs.toFixed(2)} ms`);
});

test('hostile conditions are rejected at compile time (never evaluated)', () => {
  for (const src of [
    "__import__('os').system('id')",
    "event.__class__.__bases__[0].__subclasses__()",
    "globalThis.__pbxgPwned = 1",
    "(function(){ globalThis.__pbxgPwned = 1 })()",
    "event['a'].constructor.constructor('globalThis.__pbxgPwned = 1')()",
    "event.get('a').__proto__",
    "[x for x in event]",
    "lambda: 1",
    "open('/etc/shadow').read()",
    "event['Channel'].lower() == 'x'",
    "process.exit(1)",
    "${1+1}",
  ]) {
    assert.throws(() => compileCondition(src), ConditionError, src);
  }
  assert.equal(g.__pbxgPwned, undefined);
});
