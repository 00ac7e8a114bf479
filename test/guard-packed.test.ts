/**
 * A key with one hit of one rule is kept as one packed number (src/guard/packed.ts): the layout
 * round-trips at its edges and refuses what it cannot hold, and a packed key behaves like the
 * arrays it replaces (windows, reset, `why`, failures, the LRU bound, the TTL).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Detector, type EventView } from '../src/guard/index.js';
import { compileRule } from '../src/guard/rules.js';
import { pack, unpack } from '../src/guard/packed.js';
import { parseNetwork, formatNetwork } from '../src/net/ip.js';

test('pack/unpack: exact at the edges of every part', () => {
  for (const t of [0, 1, 1_796_190_928_466, 2 ** 43 - 1])
    for (const rule of [0, 1, 63])
      for (const count of [0, 1, 7]) {
        const v = pack([count, rule, [0, t]]);
        assert.ok(v !== undefined && Number.isSafeInteger(v), `${count} ${rule} ${t}`);
        assert.deepEqual(unpack(v), [count, rule, [0, t]]);
      }
});

test('pack refuses what one number cannot hold', () => {
  const refused = [
    [8, 0, [0, 5]],
    [0, 64, [0, 5]],
    [0, -1, [0, 5]], // the attempt tag
    [0, 0, [0, -1]],
    [0, 0, [0, 2 ** 43]],
    [0, 0, [0, 1.5]],
    [0, 0, [0, 5, 6]],
    [0, 0, [1, 5]],
    [0, 0, undefined],
    [0],
    [1, 0, [0, 5], 1, [0, 6]],
  ];
  for (const st of refused) assert.equal(pack(st as Array<number | number[] | undefined>), undefined, JSON.stringify(st));
});

const rule = compileRule({ name: 'pw', events: ['InvalidPassword'], resetOn: ['SuccessfulAuth'], windows: [{ count: 2, within: '10s' }], ban: '1h' }, 'test');
const ev = (name: string, severity = 'Error'): EventView => {
  const f: Record<string, string> = { Event: name, Severity: severity, Service: 'SIP' };
  return { get: (k) => f[k] };
};
const T0 = 1_796_190_000_000;

function hit(d: Detector, text: string, now: number, name = 'InvalidPassword', severity = 'Error') {
  const key = d.keyOf(parseNetwork(text)!);
  return d.observe(name, ev(name, severity), key, formatNetwork(key), now);
}

test('a packed key: its one hit counts in the window, is shown by why, and is reset', () => {
  const d = new Detector([rule], { ipv6Prefix: 64, maxTracked: 100, trackTtlMs: 3_600_000 });
  assert.equal(hit(d, '192.0.2.1', T0), null);
  assert.equal(d.failuresOf('192.0.2.1'), 1);
  assert.deepEqual(
    d.hitsOf('192.0.2.1').map((h) => h.times),
    [[T0]],
  );
  // second hit inside 10 s crosses count 2
  assert.equal(hit(d, '192.0.2.1', T0 + 9_999)?.count, 2);
  // outside the window: not crossed
  assert.equal(hit(d, '192.0.2.2', T0), null);
  assert.equal(hit(d, '192.0.2.2', T0 + 10_000), null);
  // a reset on a packed key forgets its hit, keeps its failures
  assert.equal(hit(d, '192.0.2.3', T0), null);
  assert.equal(hit(d, '192.0.2.3', T0 + 1, 'SuccessfulAuth', 'Informational'), null);
  assert.deepEqual(d.hitsOf('192.0.2.3'), []);
  assert.equal(d.failuresOf('192.0.2.3'), 1);
  assert.equal(hit(d, '192.0.2.3', T0 + 2), null, 'the hit before the reset is not counted');
  assert.equal(hit(d, '192.0.2.3', T0 + 3)?.count, 2);
  // an informational event is counted by its rule but is not a failure
  const flood = compileRule({ name: 'flood', events: ['ChallengeSent'], windows: [{ count: 2, within: '1m' }], ban: '1h' }, 'test');
  const f = new Detector([flood], { ipv6Prefix: 64, maxTracked: 100, trackTtlMs: 3_600_000 });
  assert.equal(hit(f, '2001:db8::1', T0, 'ChallengeSent', 'Informational'), null);
  assert.equal(f.failuresOf('2001:db8::/64'), 0);
  assert.equal(hit(f, '2001:db8::2', T0 + 1, 'ChallengeSent', 'Informational')?.keyText, '2001:db8::/64');
  assert.equal(f.totalFailures, 0);
});

test('packed keys keep the LRU bound and the TTL', async () => {
  const d = new Detector([rule], { ipv6Prefix: 64, maxTracked: 3, trackTtlMs: 30 });
  for (let i = 1; i <= 4; i++) hit(d, `192.0.2.${i}`, T0 + i);
  assert.equal(d.trackedCount, 3);
  assert.equal(d.failuresOf('192.0.2.1'), 0, 'the least recently used key is evicted');
  assert.equal(d.failuresOf('192.0.2.4'), 1);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(d.failuresOf('192.0.2.4'), 0, 'forgotten after trackTtlMs');
  assert.equal(hit(d, '192.0.2.4', T0 + 5), null, 'and counted afresh');
});

test("a new key's first hit: a window of count 1 is crossed at once; a weighted rule keeps its arrays", () => {
  const once = compileRule(
    {
      name: 'once',
      events: ['InvalidPassword'],
      windows: [
        { count: 3, within: '1m' },
        { count: 1, within: '1s' },
      ],
      ban: '1h',
    },
    'test',
  );
  const d = new Detector([once], { ipv6Prefix: 64, maxTracked: 100, trackTtlMs: 3_600_000 });
  const found = hit(d, '198.51.100.7', T0);
  assert.deepEqual([found?.count, found?.windowMs, found?.keyText], [1, 1000, '198.51.100.7']);
  assert.equal(d.totalFailures, 1);
  const heavy = compileRule({ name: 'heavy', events: ['InvalidPassword'], weight: 2, windows: [{ count: 4, within: '1m' }], ban: '1h' }, 'test');
  const w = new Detector([heavy], { ipv6Prefix: 64, maxTracked: 100, trackTtlMs: 3_600_000 });
  assert.equal(hit(w, '198.51.100.8', T0), null);
  assert.equal(w.failuresOf('198.51.100.8'), 2);
  assert.deepEqual(
    w.hitsOf('198.51.100.8').map((h) => h.times),
    [[T0, T0]],
  );
  assert.equal(hit(w, '198.51.100.8', T0 + 1)?.count, 4);
});
