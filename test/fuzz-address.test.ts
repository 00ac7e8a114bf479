/**
 * Property tests of the two address parsers: parseRemoteAddress (AMI RemoteAddress) and
 * parseNetwork/formatNetwork (src/guard/ip.ts). Never throw; what they accept round-trips;
 * garbage gives null. Fixed seeds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import fc from 'fast-check';
import { parseRemoteAddress } from '../src/ami/index.js';
import { formatNetwork, parseNetwork } from '../src/net/ip.js';
import { canonicalTarget } from '../src/firewall/index.js';
import { resolveAttacker } from '../src/sources/address.js';

const SEED = 5038;

const ip6 = fc.ipV6();
const ip4 = fc.ipV4();
const addrLike = fc.oneof(
  ip4,
  ip6,
  fc.ipV4Extended(),
  ip6.map((a) => a.toUpperCase()),
  ip4.map((a) => `::ffff:${a}`),
  ip6.map((a) => `${a}%eth0`),
  ip6.map((a) => `[${a}]`),
  fc.string({ maxLength: 20 }),
  fc.constantFrom(
    '',
    ' ',
    '::',
    '::1',
    '0.0.0.0',
    '255.255.255.255',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    '256.1.1.1',
    ':::',
    '1::2::3',
    'fe80::1%',
    'fe80::1%a b',
    '1.2.3.4;reboot',
    '$(id)',
    '1.2.3.4\r\nX: y',
    '::ffff:999.1.1.1',
  ),
);
const remoteLike = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('IPV4', 'IPV6', 'ipv4', 'IPV5', ''),
      fc.option(fc.constantFrom('UDP', 'TCP', 'TLS', 'WS', 'WSS', 'udp', 'SCTP', '')),
      addrLike,
      fc.oneof(fc.integer({ min: 0, max: 70000 }).map(String), fc.string({ maxLength: 6 })),
    )
    .map(([f, tr, a, p]) => [f, ...(tr === null ? [] : [tr]), a, p].join('/')),
  addrLike,
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
);

test('fuzz parseRemoteAddress: never throws; what it accepts is a valid address that re-parses to itself', (t) => {
  let runs = 0;
  let accepted = 0;
  fc.assert(
    fc.property(remoteLike, (s) => {
      runs++;
      const r = parseRemoteAddress(s);
      if (r === null) return;
      accepted++;
      assert.ok(r.family === 4 || r.family === 6);
      assert.equal(isIP(r.address), r.family, `${JSON.stringify(s)} → ${r.address}`);
      // the address alone, and a re-rendered RemoteAddress, parse back to the same
      const again = parseRemoteAddress(r.scope ? `${r.address}%${r.scope}` : r.address);
      assert.deepEqual({ family: again?.family, address: again?.address }, { family: r.family, address: r.address });
      const rendered = [`IPV${r.family}`, ...(r.transport ? [r.transport] : []), r.scope ? `${r.address}%${r.scope}` : r.address, String(r.port ?? 0)].join(
        '/',
      );
      const back = parseRemoteAddress(rendered);
      assert.equal(back?.address, r.address);
      assert.equal(back?.family, r.family);
      if (r.port !== undefined) assert.ok(Number.isInteger(r.port) && r.port >= 0 && r.port <= 65535);
      assert.ok(!/[\s\r\n;$]/.test(r.address), 'no whitespace / shell characters in an accepted address');
      assert.notEqual(parseNetwork(r.address), null, 'the guard can key on it');
    }),
    { seed: SEED, numRuns: 6000 },
  );
  t.diagnostic(`${runs} inputs, ${accepted} accepted`);
});

test('fuzz parseRemoteAddress: garbage (no address inside) gives null', (t) => {
  let runs = 0;
  fc.assert(
    fc.property(
      fc.string({ maxLength: 80 }).filter((s) => !/[.:]/.test(s)),
      (s) => {
        runs++;
        assert.equal(parseRemoteAddress(s), null);
        assert.equal(parseRemoteAddress(`IPV4/UDP/${s}/5060`), null);
      },
    ),
    { seed: SEED + 1, numRuns: 2000 },
  );
  t.diagnostic(`${runs} garbage inputs → null`);
});

test('fuzz parseNetwork/formatNetwork: never throws; accepted input round-trips to one canonical form', (t) => {
  let runs = 0;
  let accepted = 0;
  const netLike = fc.oneof(
    addrLike,
    fc.tuple(addrLike, fc.oneof(fc.integer({ min: 0, max: 140 }).map(String), fc.string({ maxLength: 4 }))).map(([a, p]) => `${a}/${p}`),
    fc.string({ unit: 'binary', maxLength: 70 }),
  );
  fc.assert(
    fc.property(netLike, (s) => {
      runs++;
      const n = parseNetwork(s);
      if (n === null) return;
      accepted++;
      const text = formatNetwork(n);
      const again = parseNetwork(text);
      assert.ok(again, `${JSON.stringify(s)} → ${text} does not re-parse`);
      assert.deepEqual(again, n, `${JSON.stringify(s)} → ${text}`);
      assert.equal(formatNetwork(again), text, 'canonical form is a fixed point');
      assert.equal(n.bytes.length, n.family === 4 ? 4 : 16);
      assert.ok(n.prefix >= 0 && n.prefix <= n.bytes.length * 8);
      // the firewall stage's own canonicaliser agrees (defence in depth must not disagree)
      assert.equal(canonicalTarget(text)?.target, text);
    }),
    { seed: SEED + 2, numRuns: 6000 },
  );
  t.diagnostic(`${runs} inputs, ${accepted} accepted and round-tripped`);
});

/** near-misses of a dotted quad: 3 to 5 parts of digits (leading zeros, > 255, empty) and stray characters */
const dottedLike = fc
  .array(
    fc.oneof(
      fc.stringMatching(/^[0-9]{0,4}$/),
      fc.integer({ min: 0, max: 300 }).map(String),
      fc.constantFrom('0', '00', '01', '255', '256', ' 1', '1a', '+1', '-1'),
    ),
    { minLength: 3, maxLength: 5 },
  )
  .map((parts) => parts.join('.'));

test('fuzz parseNetwork: agrees with node:net isIP on plain addresses; garbage gives null', (t) => {
  let runs = 0;
  fc.assert(
    fc.property(fc.oneof(ip4, ip6, fc.ipV4Extended(), fc.string({ maxLength: 40 }), dottedLike), (s) => {
      runs++;
      const n = parseNetwork(s);
      if (isIP(s) !== 0) assert.notEqual(n, null, `${s} is an IP for node but not for parseNetwork`);
      else if (!/[[\]%/\s]/.test(s)) assert.equal(n, null, `${s} is no IP for node but parseNetwork accepts it`);
    }),
    { seed: SEED + 3, numRuns: 4000 },
  );
  fc.assert(
    fc.property(
      fc.string({ maxLength: 60 }).filter((s) => !/[.:]/.test(s)),
      (s) => {
        runs++;
        assert.equal(parseNetwork(s), null);
      },
    ),
    { seed: SEED + 4, numRuns: 1000 },
  );
  t.diagnostic(`${runs} inputs`);
});

test('fuzz resolveAttacker: its one-pass IPv4 scan says exactly what parseRemoteAddress + parseNetwork say', (t) => {
  let runs = 0;
  let fast = 0;
  const general = (s: string) => {
    const r = parseRemoteAddress(s);
    const n = r ? parseNetwork(r.address) : null;
    return n ? { address: n, keyText: formatNetwork(n) } : null;
  };
  const port = fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 70000 }).map(String), weight: 6 },
    fc.stringMatching(/^[0-9]{0,7}$/),
    fc.constantFrom('5060 ', ' 5060', '5060/1', '+1', ''),
  );
  const asteriskLike = fc
    .tuple(
      fc.constantFrom('IPV4', 'IPV4', 'ipv4', 'IPV6', 'IPV4 '),
      fc.option(fc.constantFrom('UDP', 'TCP', 'TLS', 'WS', 'WSS', 'udp', 'UDPX', '1', '')),
      fc.oneof({ arbitrary: ip4, weight: 6 }, dottedLike, addrLike),
      port,
    )
    .map(([f, tr, a, p]) => [f, ...(tr === null ? [] : [tr]), a, p].join('/'));
  fc.assert(
    fc.property(fc.oneof({ arbitrary: asteriskLike, weight: 3 }, remoteLike), (s) => {
      runs++;
      const got = resolveAttacker(s, (a) => a);
      const want = general(s);
      assert.deepEqual(got === null ? null : { address: got.address, keyText: got.keyText }, want, JSON.stringify(s));
      if (got) {
        assert.equal(got.key, got.address, 'an IPv4 attacker is keyed by its address');
        if (/^IPV4\/([A-Z]+\/)?[0-9.]+\/[0-9]+$/.test(s)) fast++;
      }
    }),
    { seed: SEED + 5, numRuns: 8000 },
  );
  t.diagnostic(`${runs} inputs, ${fast} accepted in the fast form`);
  assert.ok(fast > 500, `the generator reaches the fast form (${fast})`);
});
