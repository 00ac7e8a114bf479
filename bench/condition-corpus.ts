/**
 * The hostile-input corpus for the events-map condition evaluator (compileCondition), shared by
 * the property test (test/fuzz-condition.test.ts: what the evaluator does) and the worst-case
 * benchmark (bench/worst-case.ts: how long the slowest input takes). Fixed seed: both see the
 * same inputs.
 */
import fc from 'fast-check';

export const CONDITION_SEED = 48000;
export const CONDITION_RUNS = 6000;
/** keys per random event (the work bound in the test counts them) */
export const EVENT_MAX_KEYS = 6;

const TOKENS = [
  'event',
  "event['Channel']",
  "event.get('Variable')",
  "event.get('X', 'd')",
  '.startswith',
  '.endswith',
  '.get',
  '.lower()',
  '.__class__',
  '__import__',
  "('os')",
  '.system',
  "('id')",
  '(',
  ')',
  '[',
  ']',
  ',',
  ':',
  '==',
  '!=',
  ' in ',
  ' not in ',
  ' and ',
  ' or ',
  'not ',
  ' is ',
  'lambda x: x',
  'True',
  'False',
  'None',
  "'Local/'",
  '"Up"',
  "'\\n'",
  "'\\x41'",
  '0',
  '-1',
  '1e309',
  '3.14',
  '[1, 2]',
  "('a', 'b')",
  'eval',
  'exec',
  'open',
  'globalThis',
  'process',
  'constructor',
  'prototype',
  '__proto__',
  "event['__proto__']",
  "event['constructor']",
  '+',
  '*',
  '**',
  '%',
  '<',
  '>=',
  '`',
  '${',
  '\\',
  '#',
  ';',
  '\n',
  ' ',
];
const soup = fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((a) => a.join(''));
export const conditionInput = fc.oneof(
  soup,
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 100 }),
  fc.constantFrom(
    '('.repeat(1500),
    'not '.repeat(490) + 'True',
    '['.repeat(900) + ']'.repeat(900),
    "event['a'] == " + "'x' + ".repeat(300) + "'x'",
    "'" + 'a'.repeat(1990) + "'",
    'a'.repeat(2001),
  ),
);
export const conditionEvent = fc.dictionary(
  fc.oneof(fc.constantFrom('Channel', 'Variable', 'X', 'Response', '__proto__', 'constructor', 'Uniqueid'), fc.string({ maxLength: 8 })),
  fc.string({ maxLength: 20 }),
  { maxKeys: EVENT_MAX_KEYS },
);
