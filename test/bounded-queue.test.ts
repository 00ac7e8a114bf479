/**
 * BoundedQueue (src/common/bounded-queue.ts): FIFO order across the ring's wrap and growth, the
 * bound and both drop policies reported by push and counted, drain and a reloaded capacity.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedQueue } from '../src/common/bounded-queue.js';

test('FIFO across wrap-around and growth, shift and peek on an empty queue', () => {
  const q = new BoundedQueue<number>(2000);
  assert.equal(q.shift(), undefined);
  assert.equal(q.peek(), undefined);
  const seen: number[] = [];
  let next = 0;
  // interleave pushes and shifts so the head walks around the ring while it grows (16 -> 32 -> 64 ...)
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < round + 3; i++) assert.equal(q.push(next++), 'queued');
    for (let i = 0; i < 2; i++) seen.push(q.shift()!);
  }
  assert.equal(q.peek(), seen.length);
  while (q.length > 0) seen.push(q.shift()!);
  assert.deepEqual(
    seen,
    Array.from({ length: next }, (_, i) => i),
  );
  assert.equal(q.dropped, 0);
});

test('reject-newest: a full queue refuses the new item, says so and counts it; the queued ones stay', () => {
  const q = new BoundedQueue<string>(3);
  assert.deepEqual(
    ['a', 'b', 'c', 'd', 'e'].map((x) => q.push(x)),
    ['queued', 'queued', 'queued', 'rejected', 'rejected'],
  );
  assert.equal(q.isFull, true);
  assert.equal(q.dropped, 2);
  assert.deepEqual(q.drainAll(), ['a', 'b', 'c']);
  assert.equal(q.length, 0);
  assert.equal(q.isFull, false);
  assert.equal(q.push('f'), 'queued');
  assert.equal(q.shift(), 'f');
});

test('drop-oldest: the oldest leaves for the new one, onDrop gets it, the counter counts it', () => {
  const gone: number[] = [];
  const q = new BoundedQueue<number>(4, 'drop-oldest', (x) => gone.push(x));
  const results = Array.from({ length: 10 }, (_, i) => q.push(i));
  assert.deepEqual(results.slice(0, 4), ['queued', 'queued', 'queued', 'queued']);
  assert.ok(results.slice(4).every((r) => r === 'dropped-oldest'));
  assert.deepEqual(gone, [0, 1, 2, 3, 4, 5]);
  assert.equal(q.dropped, 6);
  assert.deepEqual(q.drainAll(), [6, 7, 8, 9]);
});

test('a new capacity applies to the next push; a longer queue keeps its items; clear empties it', () => {
  const q = new BoundedQueue<number>(5);
  for (let i = 0; i < 5; i++) q.push(i);
  q.capacity = 2;
  assert.equal(q.length, 5);
  assert.equal(q.push(5), 'rejected');
  q.capacity = 7;
  assert.equal(q.push(6), 'queued');
  assert.equal(q.clear(), 6);
  assert.equal(q.length, 0);
  const dropOld = new BoundedQueue<number>(4, 'drop-oldest');
  for (let i = 0; i < 4; i++) dropOld.push(i);
  dropOld.capacity = 2;
  // shrunk below its length: the push drops down to the new bound, oldest first
  assert.equal(dropOld.push(9), 'dropped-oldest');
  assert.deepEqual(dropOld.drainAll(), [3, 9]);
  assert.equal(dropOld.dropped, 3);
});

test('a capacity below 1 or not whole is refused', () => {
  for (const bad of [0, -1, 1.5, NaN]) assert.throws(() => new BoundedQueue(bad), RangeError, String(bad));
  assert.throws(() => {
    new BoundedQueue(3).capacity = 0;
  }, RangeError);
  assert.equal(new BoundedQueue(Number.MAX_SAFE_INTEGER).push(1), 'queued');
});
