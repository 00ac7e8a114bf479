import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ExpiryQueue, SWEEP_TURN_MAX } from '../src/guard/expiry.js';
import { Guardian } from '../src/guard/guardian.js';
import { MemoryBanStore } from '../src/store/memory.js';
import type { BanRecord } from '../src/guard/types.js';

const rec = (target: string, expiresAt: number | null): BanRecord => ({
  target,
  family: 4,
  isNetwork: false,
  createdAt: 0,
  expiresAt,
  rule: 'r',
  source: 'manual',
  reason: 'x',
  count: 0,
});

function queueOver(active: Map<string, BanRecord>): ExpiryQueue {
  return new ExpiryQueue((r) => active.get(r.target) === r);
}

test('expiry queue: due bans come out soonest first, the rest stay; permanent bans never', () => {
  const active = new Map<string, BanRecord>();
  const q = queueOver(active);
  const ends = [50, 10, 40, 30, 20, 60, 10];
  ends.forEach((at, i) => {
    const r = rec(`10.0.0.${i}`, at);
    active.set(r.target, r);
    q.add(r, active.size, () => active.values());
  });
  const perm = rec('10.0.1.1', null);
  active.set(perm.target, perm);
  q.add(perm, active.size, () => active.values());
  assert.deepEqual(
    q.due(30, Infinity).map((r) => r.expiresAt),
    [10, 10, 20, 30],
  );
  assert.equal(q.pending(39), false);
  assert.equal(q.pending(40), true);
  assert.deepEqual(
    q.due(1000, 2).map((r) => r.expiresAt),
    [40, 50],
    'the limit cuts the turn short',
  );
  assert.equal(q.pending(1000), true, 'one more is due');
  assert.deepEqual(
    q.due(1000, Infinity).map((r) => r.target),
    ['10.0.0.5'],
  );
  assert.equal(q.size, 0, 'the permanent ban was never queued');
});

test('expiry queue: a replaced or lifted ban is skipped; stale entries are compacted', () => {
  const active = new Map<string, BanRecord>();
  const q = queueOver(active);
  const first = rec('10.0.0.1', 100);
  active.set(first.target, first);
  q.add(first, active.size, () => active.values());
  const longer = rec('10.0.0.1', 500); // replaced by a longer ban
  active.set(longer.target, longer);
  q.add(longer, active.size, () => active.values());
  const lifted = rec('10.0.0.2', 200);
  q.add(lifted, active.size, () => active.values()); // unbanned early: not active
  assert.deepEqual(q.due(300, Infinity), [], 'the old end of a replaced ban and a lifted ban end nothing');
  assert.deepEqual(q.due(500, Infinity), [longer]);
  active.delete(longer.target); // what the guard's endBan does
  // churn: one active ban replaced 10,000 times keeps the heap bounded
  for (let i = 0; i < 10_000; i++) {
    const r = rec('10.0.0.3', 1000 + i);
    active.set(r.target, r);
    q.add(r, active.size, () => active.values());
  }
  assert.ok(q.size <= 2 * active.size + 4096 + 1, `heap bounded (${q.size})`);
  assert.deepEqual(
    q.due(Number.MAX_SAFE_INTEGER, Infinity).map((r) => r.expiresAt),
    [1000 + 9999],
  );
});

test('expiry queue: rebuild orders a restored set of any order', () => {
  const active = new Map<string, BanRecord>();
  const ends = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 1000);
  for (const [i, at] of ends.entries()) active.set(`t${i}`, rec(`t${i}`, at));
  const q = queueOver(active);
  q.rebuild(active.values());
  const out = q.due(Infinity, Infinity).map((r) => r.expiresAt!);
  assert.equal(out.length, 1000);
  assert.deepEqual(
    out,
    [...out].sort((a, b) => a - b),
  );
});

test('the guard ends 5,000 bans due in the same second over several short turns, none twice', async () => {
  let now = Date.parse('2026-12-01T00:00:00Z');
  const unbanned: string[] = [];
  const guardian = new Guardian(
    {
      rules: [],
      allow: [],
      automaticAllow: [],
      ipv6Prefix: 64,
      maxTracked: 1000,
      trackTtlSec: 60,
      escalation: { factor: 1, maxSec: 3600, lookbackSec: 60 },
      recidive: null,
    },
    new MemoryBanStore(),
    { ban: async () => {}, unban: async (t) => void unbanned.push(t.target), setAllow: async () => {} },
    pino({ level: 'silent' }),
    () => now,
  );
  for (let i = 0; i < 5000; i++) await guardian.ban({ target: `198.51.${i >> 8}.${i & 255}`, durationSec: 60, source: 'manual' });
  await guardian.ban({ target: '203.0.113.9', durationSec: 120, source: 'manual' });
  now += 60_000;
  let turns = 0;
  const ended: number[] = [];
  const sweep = guardian.sweepExpired.bind(guardian);
  guardian.sweepExpired = (at?: number, limit?: number) => {
    turns++;
    const n = sweep(at, limit);
    ended.push(n);
    return n;
  };
  guardian.startExpirySweep(5);
  try {
    for (let i = 0; i < 200 && unbanned.length < 5000; i++) await new Promise((r) => setTimeout(r, 5));
  } finally {
    guardian.stop();
  }
  assert.equal(unbanned.length, 5000, 'every due ban ended');
  assert.equal(new Set(unbanned).size, 5000, 'none twice');
  assert.ok(Math.max(...ended) <= SWEEP_TURN_MAX, `at most ${SWEEP_TURN_MAX} a turn (${ended.join(',')})`);
  assert.ok(turns >= 3);
  assert.deepEqual(
    guardian.listBans().map((b) => b.target),
    ['203.0.113.9'],
  );
});
