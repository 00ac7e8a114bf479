/**
 * The pool of key states past one packed hit (src/guard/state-pool.ts): states round-trip exactly
 * (attempt hashes, masks up to 2^52, reset rings, long rings), what it cannot hold is refused,
 * blocks stay dense (the last one moves into a freed one and its owner is told) and shrink, and
 * the detector frees a key's block when the key is forgotten, evicted or expired.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodedSize, MAX_SIZE, StatePool } from '../src/guard/state-pool.js';
import { Detector, type EventView } from '../src/guard/index.js';
import { compileRule } from '../src/guard/rules.js';
import { formatNetwork, parseNetwork } from '../src/net/ip.js';

type KeyState = Array<number | number[] | undefined>;
const T = 1_796_190_928_466;

test('states round-trip exactly; sizes as documented', () => {
  const pool = new StatePool(() => {});
  const states: KeyState[] = [
    [0],
    [3, 0, [0, T, T + 1]],
    [1, -1, [-2_023_406_815, T, 29, 0, 0], 3, [0, T], 0, [0, T + 5]],
    [2, -1, [0x7fffffff, T, 16, 2 ** 52 - 1, T + 9]],
    [7, 2, undefined, 5, [1, T, T + 1, T + 2]],
    [40, 126, [3, ...Array.from({ length: 60 }, (_, i) => T + i)]],
  ];
  assert.deepEqual(
    states.map((st) => encodedSize(st)),
    [1, 5, 13, 7, 7, 63],
  );
  states.forEach((st, owner) => {
    const h = pool.store(st, encodedSize(st), undefined, owner);
    assert.deepEqual(pool.load(h), st);
  });
  assert.equal(pool.blocks, states.length);
});

test('encodedSize refuses what the layout cannot hold', () => {
  assert.equal(encodedSize([0, 127, [0, T]]), 0, 'tag out of range');
  assert.equal(encodedSize([0, -2, [0, T]]), 0);
  assert.equal(encodedSize([0, 0, 5 as unknown as number[]]), 0, 'not an array');
  assert.equal(encodedSize([0, 0, new Array<number>(MAX_SIZE - 1).fill(T)]), 0, 'larger than MAX_SIZE');
  assert.equal(encodedSize([0, 0, new Array<number>(MAX_SIZE - 2).fill(T)]), MAX_SIZE);
});

test('dense blocks: a freed block is filled by the last one, whose owner is told; same size reuses the block; shrinks', () => {
  const moves: Array<[number, number]> = [];
  const pool = new StatePool((owner, handle) => moves.push([owner, handle]));
  const st = (i: number): KeyState => [i, 0, [0, T + i, T + i + 1]];
  const handles = Array.from({ length: 300 }, (_, i) => pool.store(st(i), 5, undefined, i));
  assert.equal(pool.store(st(1000), 5, handles[7], 7), handles[7], 'same size: in place');
  assert.deepEqual(pool.load(handles[7]!), st(1000));
  pool.free(handles[0]!);
  assert.deepEqual(moves, [[299, handles[0]]]);
  assert.deepEqual(pool.load(handles[0]!), st(299), 'the last block now at the freed one');
  const bigger = pool.store([1, 0, [0, T, T, T]], 6, handles[1], 1);
  assert.notEqual(bigger % MAX_SIZE, handles[1]! % MAX_SIZE);
  assert.deepEqual(moves[1], [298, handles[1]]);
  const cap = pool.capacityOf(5);
  assert.ok(cap >= 298 * 5, `capacity ${cap}`);
  // free everything left of size 5, following the moves
  const live = new Map<number, number>(); // owner -> handle
  for (let i = 2; i < 299; i++) live.set(i, handles[i]!);
  live.set(299, handles[0]!);
  live.set(298, handles[1]!);
  for (const [owner, handle] of moves) if (live.has(owner)) live.set(owner, handle);
  while (live.size > 0) {
    const [owner, handle] = live.entries().next().value!;
    live.delete(owner);
    const before = moves.length;
    pool.free(handle);
    for (const [o, h] of moves.slice(before)) live.set(o, h);
  }
  assert.equal(pool.blocks, 1, 'the size-6 block is left');
  assert.ok(pool.capacityOf(5) < cap / 2, `shrunk: ${pool.capacityOf(5)} of ${cap}`);
});

const pw = compileRule({ name: 'pw', events: ['InvalidPassword'], resetOn: ['SuccessfulAuth'], windows: [{ count: 5, within: '10m' }], ban: '1h' }, 'test');
const ev = (name: string): EventView => ({ get: (k) => ({ Event: name, Severity: name === 'SuccessfulAuth' ? 'Informational' : 'Error', Service: 'SIP' })[k] });

test('the detector: two hits are pooled, read back by why, and the block goes with the key (forget, LRU, TTL)', async () => {
  const d = new Detector([pw], { ipv6Prefix: 64, maxTracked: 10, trackTtlMs: 40 });
  const hit = (text: string, now: number, name = 'InvalidPassword') => {
    const key = d.keyOf(parseNetwork(text)!);
    return d.observe(name, ev(name), key, formatNetwork(key), now);
  };
  for (let i = 1; i <= 20; i++) {
    hit(`198.51.100.${i}`, T + i);
    hit(`198.51.100.${i}`, T + i + 1);
  }
  assert.equal(d.trackedCount, 10);
  assert.equal(d.pooledStates, 10, 'the evicted keys freed their blocks');
  assert.deepEqual(
    d.hitsOf('198.51.100.20').map((h) => h.times),
    [[T + 20, T + 21]],
  );
  assert.equal(d.failuresOf('198.51.100.20'), 2);
  // every key of the table read back after the moves the evictions made
  for (let i = 11; i <= 20; i++) assert.equal(d.hitsOf(`198.51.100.${i}`)[0]?.times[1], T + i + 1, `key ${i}`);
  hit('198.51.100.19', T + 50, 'SuccessfulAuth');
  assert.deepEqual(d.hitsOf('198.51.100.19'), [], 'reset');
  assert.equal(d.failuresOf('198.51.100.19'), 2);
  d.forget('198.51.100.20');
  assert.equal(d.pooledStates, 9);
  await new Promise((r) => setTimeout(r, 80));
  for (let i = 11; i <= 19; i++) assert.equal(d.failuresOf(`198.51.100.${i}`), 0);
  assert.equal(d.pooledStates, 0, 'expired keys freed theirs');
  assert.equal(d.trackedCount, 0);
});
