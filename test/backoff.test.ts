import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffMs } from '../src/net/backoff.js';

test('backoffMs doubles from the first delay and stops at the cap', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, 250, 10_000)),
    [250, 500, 1000, 2000, 4000, 8000, 10_000],
  );
  assert.equal(backoffMs(0, 1000, 60_000), 1000);
});

test('backoffMs stays finite after a very long outage', () => {
  assert.equal(backoffMs(5000, 500, 30_000), 30_000);
  assert.equal(backoffMs(5000, 500, Number.MAX_SAFE_INTEGER), 500 * 2 ** 30);
  assert.equal(backoffMs(-1, 500, 30_000), 500);
});
