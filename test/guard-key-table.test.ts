/**
 * The detector's table of tracked keys (src/guard/key-table.ts) against what lru-cache gave it:
 * LRU eviction at max, the TTL restarted by use, growth up to max, IPv4 and IPv6 keys kept apart
 * by kind and prefix, text keys, and removal inside probe runs (collisions built from the seeded
 * hash, wrapping around the index) checked against a Map.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashKey, KeyTable, keyOfNetwork, newKey, TEXT_KIND, type TableKey } from '../src/guard/key-table.js';
import { Detector, type EventView } from '../src/guard/index.js';
import { compileRule } from '../src/guard/rules.js';
import { formatNetwork, parseNetwork } from '../src/net/ip.js';

const SEED = new Uint32Array([0x12345678, 0x9abcdef0]);
const net = (text: string): TableKey => {
  const n = parseNetwork(text)!;
  return keyOfNetwork(newKey(), n, formatNetwork(n));
};
const v4 = (i: number): TableKey => ({ kind: 33, w0: i >>> 0, w1: 0, text: '' });
const order = (t: KeyTable<object>) => [...t.ids()].map((id) => t.value(id));

test('LRU: at max the least recently used goes; touch and insert make a key the most recent; write does not', () => {
  const t = new KeyTable<object>({ max: 3, ttlMs: 0, seed: SEED });
  for (let i = 1; i <= 3; i++) t.insert(v4(i), i);
  assert.deepEqual(order(t), [3, 2, 1]);
  t.touch(t.find(v4(1)));
  t.write(t.find(v4(2)), 20);
  assert.deepEqual(order(t), [1, 3, 20]);
  t.insert(v4(4), 4);
  assert.equal(t.size, 3);
  assert.equal(t.find(v4(2)), -1, 'the least recently used, 2, is evicted');
  assert.deepEqual(order(t), [4, 1, 3]);
  assert.ok(t.delete(v4(1)));
  assert.equal(t.delete(v4(1)), false);
  t.insert(v4(5), 5);
  t.insert(v4(6), 6);
  assert.deepEqual(order(t), [6, 5, 4], '3 evicted, the freed id reused');
  assert.equal(t.capacity, 3);
});

test('TTL: gone once unused for longer than ttlMs; a touch restarts it; expired keys are dropped as found and a few per insert', () => {
  let now = 1000;
  const t = new KeyTable<object>({ max: 100, ttlMs: 50, seed: SEED, now: () => now });
  t.insert(v4(1), 1);
  t.insert(v4(2), 2);
  now += 50;
  assert.notEqual(t.find(v4(1)), -1, 'at exactly ttlMs it is still there (as lru-cache)');
  t.touch(t.find(v4(2)));
  now += 1;
  assert.equal(t.find(v4(1)), -1);
  assert.equal(t.size, 1, 'found expired: removed');
  assert.equal(t.value(t.find(v4(2))), 2, 'touched 1 ms ago');
  for (let i = 10; i < 20; i++) t.insert(v4(i), i);
  now += 100;
  t.insert(v4(100), 100);
  assert.deepEqual(order(t), [100, 19, 18, 17, 16, 15, 14, 13, 12, 11], 'the insert dropped the two oldest expired entries');
  assert.equal(t.find(v4(15)), -1);
  assert.equal(t.size, 9);
  const none = new KeyTable<object>({ max: 10, ttlMs: 0, seed: SEED, now: () => now });
  none.insert(v4(1), 1);
  now += 1e12;
  assert.equal(none.value(none.find(v4(1))), 1, 'ttlMs 0: no TTL');
});

test('growth: capacity doubles up to max (not beyond, max need not be a power of two), every key and value kept', () => {
  const t = new KeyTable<{ i: number }>({ max: 1000, ttlMs: 0, seed: SEED, initial: 16 });
  assert.equal(t.capacity, 16);
  for (let i = 0; i < 1000; i++) t.insert(v4(0x0a000000 + i), i % 3 === 0 ? { i } : i);
  assert.equal(t.capacity, 1000);
  assert.ok(t.indexSize >= 2 * t.capacity && (t.indexSize & (t.indexSize - 1)) === 0, `index ${t.indexSize}`);
  for (let i = 0; i < 1000; i++) {
    const v = t.value(t.find(v4(0x0a000000 + i)));
    assert.deepEqual(v, i % 3 === 0 ? { i } : i);
  }
  t.insert(v4(1), 1);
  assert.equal(t.capacity, 1000);
  assert.equal(t.size, 1000);
  assert.equal(t.find(v4(0x0a000000)), -1, 'full: the oldest evicted, no growth past max');
  assert.throws(() => t.write(t.find(v4(1)), NaN), /NaN/);
});

test('keys: IPv4 and IPv6 with the same words, two IPv6 prefixes, and text keys are all distinct', () => {
  const keys = ['10.0.0.1', '10.0.0.0/8', 'a00:1::/64', 'a00:1::/48', '2001:db8:1:2::/64', '2001:db8:1:2::/63', '2001:db8::1', '#'];
  const t = new KeyTable<object>({ max: 100, ttlMs: 0, seed: SEED });
  const k = (s: string) => (s === '#' ? { kind: TEXT_KIND, w0: 0, w1: 0, text: '#' } : net(s));
  assert.deepEqual([net('a00:1::/64').w0, net('a00:1::/64').w1], [net('10.0.0.1').w0, net('10.0.0.1').w1], 'the same words');
  assert.equal(net('2001:db8::1').kind, TEXT_KIND, 'an IPv6 key longer than /64 is kept by its text');
  keys.forEach((s, i) => t.insert(k(s), i));
  keys.forEach((s, i) => assert.equal(t.value(t.find(k(s))), i, s));
  assert.equal(t.find(net('2001:db8:1:2::/62')), -1);
  assert.ok(t.delete(k('2001:db8::1')));
  assert.ok(t.delete(k('#')));
  assert.equal(t.find(k('#')), -1);
  assert.equal(t.size, keys.length - 2);
  assert.deepEqual(order(t), [5, 4, 3, 2, 1, 0], 'text keys share the LRU list');
});

test('collisions: removal inside a probe run, wrapping the end of the index, leaves every other key found', () => {
  const t = new KeyTable<object>({ max: 16, ttlMs: 0, seed: SEED, initial: 16 });
  const mask = t.indexSize - 1;
  const home = (i: number) => hashKey(SEED, 33, i >>> 0, 0) & mask;
  // one key whose home is the last slot, then three whose home is slot 0, then four more of the
  // last slot: one run wrapping around, whose first removal must leave slot 0's keys in place
  const last: number[] = [];
  const first: number[] = [];
  for (let i = 0; last.length < 5 || first.length < 3; i++) {
    if (home(i) === mask && last.length < 5) last.push(i);
    else if (home(i) === 0 && first.length < 3) first.push(i);
  }
  const all = [last[0]!, ...first, ...last.slice(1)];
  all.forEach((i) => t.insert(v4(i), i));
  const gone: number[] = [];
  for (const i of [last[0]!, first[1]!, last[4]!, last[1]!]) {
    assert.ok(t.delete(v4(i)));
    gone.push(i);
    for (const j of all) {
      const id = t.find(v4(j));
      if (gone.includes(j)) assert.equal(id, -1, `removed ${j}`);
      else assert.equal(id >= 0 && t.value(id), j, `key ${j} after removing ${gone.join(', ')}`);
    }
  }
  for (const i of gone) t.insert(v4(i), i);
  for (const j of all) assert.equal(t.value(t.find(v4(j))), j, `key ${j} inserted again`);
});

test('churn against a Map: random inserts, touches and deletes in a small full table keep both equal', () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const t = new KeyTable<object>({ max: 64, ttlMs: 0, seed: SEED, initial: 16 });
  const model = new Map<number, number>(); // insertion order = LRU order, oldest first
  for (let step = 0; step < 20_000; step++) {
    const key = rand(200);
    const id = t.find(v4(key));
    assert.equal(id >= 0, model.has(key), `step ${step}: key ${key}`);
    if (id >= 0 && rand(3) === 0) {
      t.remove(id);
      model.delete(key);
    } else if (id >= 0) {
      t.touch(id);
      const v = model.get(key)!;
      model.delete(key);
      model.set(key, v);
    } else {
      t.insert(v4(key), step);
      if (model.size === 64) model.delete(model.keys().next().value!);
      model.set(key, step);
    }
  }
  assert.equal(t.size, model.size);
  assert.deepEqual(order(t), [...model.values()].reverse());
});

const pw = compileRule({ name: 'pw', events: ['InvalidPassword'], windows: [{ count: 3, within: '1m' }], ban: '1h' }, 'test');
const ev: EventView = { get: (k) => ({ Event: 'InvalidPassword', Severity: 'Error', Service: 'SIP' })[k] };
const T0 = 1_796_190_000_000;

test('the detector: forget by text removes only that key; IPv6 keys longer than /64 are counted by their text', () => {
  const d = new Detector([pw], { ipv6Prefix: 64, maxTracked: 100, trackTtlMs: 3_600_000 });
  const hit = (text: string, now: number) => {
    const key = d.keyOf(parseNetwork(text)!);
    return d.observe('InvalidPassword', ev, key, formatNetwork(key), now);
  };
  hit('2001:db8:5::1', T0);
  hit('2001:db8:5::2', T0 + 1);
  hit('192.0.2.9', T0);
  assert.equal(d.failuresOf('2001:db8:5::/64'), 2);
  d.forget('2001:db8:5::/48');
  d.forget('2001:db8:5::1');
  d.forget('not an address');
  assert.equal(d.failuresOf('2001:db8:5::/64'), 2, 'another prefix or the address is not the /64 key');
  assert.equal(hit('2001:db8:5::3', T0 + 2)?.count, 3);
  d.forget('2001:db8:5::/64');
  assert.equal(d.failuresOf('2001:db8:5::/64'), 0);
  assert.equal(d.trackedCount, 1);
  const long = new Detector([pw], { ipv6Prefix: 96, maxTracked: 2, trackTtlMs: 3_600_000 });
  const k = long.keyOf(parseNetwork('2001:db8::1:2:3')!);
  assert.equal(formatNetwork(k), '2001:db8::1:0:0/96');
  long.observe('InvalidPassword', ev, k, formatNetwork(k), T0);
  long.observe('InvalidPassword', ev, k, formatNetwork(k), T0 + 1);
  assert.deepEqual(
    long.hitsOf('2001:db8::1:0:0/96').map((h) => h.times),
    [[T0, T0 + 1]],
  );
  for (const a of ['192.0.2.1', '192.0.2.2']) {
    const key = long.keyOf(parseNetwork(a)!);
    long.observe('InvalidPassword', ev, key, a, T0 + 2);
  }
  assert.equal(long.failuresOf('2001:db8::1:0:0/96'), 0, 'the text key is evicted by the LRU like the others');
  assert.equal(long.trackedCount, 2);
});
