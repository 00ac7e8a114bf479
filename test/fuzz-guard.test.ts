/**
 * Property test of the Guardian fed random and hostile AMI security events (fixed clock, memory
 * store, direct memory enforcement): it never bans below a rule's threshold, never sends anything
 * but a canonical address/CIDR to enforcement, never bans an allow-listed address, and does ban an
 * IPv4 source that crossed the auth-failure threshold. Fixed seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatNetwork, parseNetwork } from '../src/guard/index.js';
import { parseRemoteAddress } from '../src/ami/index.js';
import { attackerKey, networksOverlap } from '../src/net/ip.js';
import { makeGuardian, shippedRules } from './helpers/guard.js';

const SEED = 7331;
const ALLOW = ['192.0.2.0/24', '2001:db8:a11::/48', '127.0.0.0/8', '::1'];
const rules = shippedRules();
const WATCHED = [...new Set(rules.flatMap((r) => [...r.events, ...r.resetOn]))];

class Ev {
  constructor(private readonly h: Array<[string, string]>) {}
  get(k: string): string | undefined {
    const l = k.toLowerCase();
    return this.h.find(([x]) => x.toLowerCase() === l)?.[1];
  }
}

const v4Pool = fc.constantFrom('203.0.113.1', '203.0.113.2', '198.51.100.9', '192.0.2.10', '192.0.2.200', '127.0.0.1', '10.0.0.1');
const v6Pool = fc.constantFrom(
  '2001:db8:bad:1::1',
  '2001:db8:bad:1::2',
  '2001:db8:bad:2::1',
  '2001:db8:a11::5',
  '2001:db8:a11:0:1::9',
  '::1',
  'fe80::1%eth0',
  '::ffff:203.0.113.1',
);
const hostile = fc.constantFrom(
  '1.2.3.4;reboot',
  '$(id)',
  '1.2.3.4\r\nX: y',
  '::ffff:999.1.1.1',
  '999.1.1.1',
  '',
  '[::1',
  'IPV4/UDP/1.2.3.4',
  'localhost',
  '1.2.3.4 ',
  '0x7f000001',
  '2130706433',
);
const remote = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(v4Pool, fc.constantFrom('UDP', 'TCP', 'TLS', 'WS')).map(([a, tr]) => `IPV4/${tr}/${a}/5060`) },
  { weight: 3, arbitrary: fc.tuple(v6Pool, fc.constantFrom('UDP', 'TCP')).map(([a, tr]) => `IPV6/${tr}/${a}/5060`) },
  { weight: 1, arbitrary: v4Pool },
  { weight: 1, arbitrary: hostile.map((h) => `IPV4/UDP/${h}/5060`) },
  { weight: 1, arbitrary: hostile },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);
const event = fc.record({
  name: fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom('InvalidPassword', 'ChallengeResponseFailed', 'InvalidAccountID') },
    { weight: 6, arbitrary: fc.constantFrom(...WATCHED) },
    { weight: 1, arbitrary: fc.constantFrom('PeerStatus', 'FullyBooted', 'invalidpassword', '') },
  ),
  remote: fc.option(remote, { freq: 12 }),
  severity: fc.constantFrom('Error', 'Informational', 'Warning', ''),
  service: fc.constantFrom('SIP', 'PJSIP', 'AMI', 'IAX2', '<script>'),
  junk: fc.array(fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 30 })), { maxLength: 3 }),
});

test('fuzz Guardian: bans only above a threshold, only canonical addresses, never allow-listed ones', (t) => {
  let runs = 0;
  let events = 0;
  let bans = 0;
  let completeChecked = 0;
  const allowNets = ALLOW.map((a) => parseNetwork(a)!);
  fc.assert(
    fc.property(fc.array(event, { minLength: 10, maxLength: 400, size: 'max' }), (evs) => {
      runs++;
      const { guardian, enforcement } = makeGuardian({ rules, maxTracked: 1000, allow: ALLOW.slice(0, 2), automaticAllow: ALLOW.slice(2) });
      // model: hits per (key, rule) of events that the guard could count
      const hits = new Map<string, number>();
      for (const e of evs) {
        events++;
        const headers: Array<[string, string]> = [['Event', e.name], ['Severity', e.severity], ['Service', e.service], ...e.junk];
        if (e.remote !== null) headers.push(['RemoteAddress', e.remote]);
        guardian.handleEvent(new Ev(headers));
        const r = e.remote === null ? null : parseRemoteAddress(e.remote);
        const a = r ? parseNetwork(r.address) : null;
        if (!a) continue;
        const key = formatNetwork(attackerKey(a, 64));
        for (const rule of rules) if (rule.events.includes(e.name)) hits.set(`${key}|${rule.name}`, (hits.get(`${key}|${rule.name}`) ?? 0) + 1);
      }
      const banned = guardian.listBans();
      bans += banned.length;
      for (const c of enforcement.calls) {
        const n = parseNetwork(c.target);
        assert.ok(n, `enforcement got a non-address ${JSON.stringify(c.target)}`);
        assert.equal(formatNetwork(n), c.target, 'enforcement only gets canonical text');
        assert.ok(!allowNets.some((al) => networksOverlap(al, n)), `${c.target} is allow-listed and was banned`);
      }
      for (const b of banned) {
        const rule = rules.find((r) => r.name === b.rule)!;
        assert.ok(rule, `ban by unknown rule ${b.rule}`);
        const min = Math.min(...rule.windows.map((w) => w.count));
        const n = parseNetwork(b.target)!;
        const key = formatNetwork(attackerKey(n, 64));
        assert.ok(
          (hits.get(`${key}|${rule.name}`) ?? 0) >= min,
          `${b.target} banned by ${rule.name} after ${hits.get(`${key}|${rule.name}`) ?? 0} < ${min} events`,
        );
        assert.ok(b.count >= min);
      }
      // completeness for plain IPv4 auth failures (no reset rule for them)
      for (const [k, n] of hits) {
        const [key, ruleName] = k.split('|') as [string, string];
        const net = parseNetwork(key)!;
        if (ruleName !== 'auth-failure' || net.family !== 4 || n < 5) continue;
        if (allowNets.some((al) => networksOverlap(al, net))) continue;
        completeChecked++;
        assert.ok(
          banned.some((b) => b.target === key),
          `${key} had ${n} auth failures and is not banned`,
        );
      }
    }),
    { seed: SEED, numRuns: 800 },
  );
  t.diagnostic(
    `${runs} random event streams, ${events} events, ${bans} bans checked against the model; ${completeChecked} over-threshold IPv4 sources confirmed banned`,
  );
});
