import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { rawStream } from '../src/fleet/decision.js';
import { rawStreamSplit } from '../src/fleet/stream-split.js';

const fixture = (name: string) => fs.readFileSync(new URL(`../../test/fixtures/crowdsec/${name}`, import.meta.url), 'utf8');
let turns = 0;
const nextTurn = () => (turns++, new Promise<void>((r) => setImmediate(r)));

test('the split parse gives what JSON.parse gives: recorded answers, odd spacing, strings holding brackets and commas, repeated keys', async () => {
  const tricky = JSON.stringify({
    deleted: [{ id: 1, value: '198.51.100.1', scenario: 'a "quoted", [bracketed] {braced} \\ name', duration: '-1s' }],
    other: { new: [1, 2] },
    new: [{ id: 2, value: 'x', nested: { a: [1, { b: '}' }] } }, 3, null, 'str,ing'],
  });
  const cases = [
    fixture('stream-startup.json'),
    fixture('stream-delta-new.json'),
    fixture('stream-delta-deleted.json'),
    '{"deleted":null,"new":null}',
    '{ "new" : [ ] , "deleted" : [ {"id":1} ,\n {"id":2} ] }',
    tricky,
    '{"new":[{"id":1}],"new":[{"id":2},{"id":3}]}',
  ];
  for (const text of cases) assert.deepEqual(await rawStreamSplit(text, nextTurn), rawStream(text), text.slice(0, 80));
});

test('a large answer goes in many turns and loses no element', async () => {
  const n = 30_000;
  const text = JSON.stringify({
    deleted: null,
    new: Array.from({ length: n }, (_, i) => ({ id: i, value: `20.0.${(i >> 8) & 255}.${i & 255}`, s: 'x'.repeat(100) })),
  });
  turns = 0;
  const r = await rawStreamSplit(text, nextTurn);
  assert.equal(r.new.length, n);
  assert.deepEqual(r.new[n - 1], { id: n - 1, value: `20.0.${((n - 1) >> 8) & 255}.${(n - 1) & 255}`, s: 'x'.repeat(100) });
  assert.ok(turns >= 6, `${turns} turns`);
});

test('what is not valid JSON is refused as a whole, as JSON.parse would', async () => {
  for (const text of [
    '{"new":[{"id":1},]}',
    '{"new":[{"id":1},,{"id":2}]}',
    '{"new":[{"id":1}]',
    '{"new":[{"id":1}]} trailing',
    '{"new":[{"id":1 "x"}]}',
    '{"new":"oops"}',
    '[{"id":1}]',
    '{"new":[{"id":"unterminated}]}',
    '<html>502</html>',
  ]) {
    assert.throws(() => rawStream(text), /not JSON|not a list|not \{"new"/, text);
    await assert.rejects(rawStreamSplit(text, nextTurn), /not JSON|not a list|not \{"new"/, text);
  }
});
