import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatNetwork, parseNetwork, NetworkList } from '../src/guard/index.js';

test('addresses and networks are canonicalised', () => {
  const cases: Array<[string, string | null]> = [
    ['192.0.2.1', '192.0.2.1'],
    ['198.51.100.77/24', '198.51.100.0/24'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:1:2:3:4:5:6/64', '2001:db8:1:2::/64'],
    ['fe80::1%eth0', 'fe80::1'],
    ['::ffff:192.0.2.9', '192.0.2.9'],
    ['[::1]', '::1'],
    ['::', '::'],
    ['2001:db8:0:1:0:0:0:0', '2001:db8:0:1::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['256.1.1.1', null],
    ['1.2.3', null],
    ['1.2.3.4/33', null],
    ['::1/129', null],
    ['1.2.3.4; drop', null],
    ['', null],
    ['a'.repeat(100), null],
  ];
  for (const [input, want] of cases) {
    const net = parseNetwork(input);
    assert.equal(net ? formatNetwork(net) : null, want, input);
  }
});

test('network lists find containment and overlap', () => {
  const list = new NetworkList([parseNetwork('10.0.0.0/8')!, parseNetwork('2001:db8::/32')!]);
  assert.equal(list.contains(parseNetwork('10.1.2.3')!), true);
  assert.equal(list.contains(parseNetwork('11.1.2.3')!), false);
  assert.equal(list.contains(parseNetwork('2001:db8:ffff::1')!), true);
  assert.equal(list.contains(parseNetwork('0.0.0.0/0')!), false);
  assert.ok(list.findOverlap(parseNetwork('0.0.0.0/0')!));
  assert.equal(list.findOverlap(parseNetwork('2001:db9::/32')!), undefined);
});
