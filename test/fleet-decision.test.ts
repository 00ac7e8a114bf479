import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { BanScope } from '../src/guard/index.js';
import { parseNetwork, type IpNetwork } from '../src/net/ip.js';
import { crowdsecConfigErrors } from '../src/fleet/config-schema.js';
import { defaultsOf } from '../src/common/config-schema.js';
import { CrowdsecConfigSchema } from '../src/fleet/config-schema.js';
import {
  formatGoDuration,
  isOwn,
  judge,
  LapiAnswerError,
  parseGoDuration,
  parseStream,
  targetOf,
  type FleetJudge,
  type FleetTarget,
} from '../src/fleet/decision.js';

const fixture = (name: string) => fs.readFileSync(new URL(`../../test/fixtures/crowdsec/${name}`, import.meta.url), 'utf8');

test('parseGoDuration reads what LAPI 1.4 writes', () => {
  assert.equal(parseGoDuration('59m58.205153073s'), 59 * 60_000 + 58_205.153073);
  assert.equal(parseGoDuration('1h59m58.925797083s'), 3_600_000 + 59 * 60_000 + 58_925.797083);
  assert.equal(parseGoDuration('-18.296741ms'), -18.296741);
  assert.equal(parseGoDuration('0s'), 0);
  assert.equal(parseGoDuration('0'), 0);
  assert.equal(parseGoDuration('1.5µs'), 0.0015);
  for (const bad of ['', '3', '1d', 'h', '1h ', 'abc', 5, null]) assert.equal(parseGoDuration(bad), null, String(bad));
  assert.equal(formatGoDuration(3_599_001), '3600s');
  assert.equal(formatGoDuration(10), '1s');
});

test('parseStream: recorded startup, new and deleted answers', () => {
  const start = parseStream(fixture('stream-startup.json'));
  assert.equal(start.new.length, 2);
  assert.equal(start.deleted.length, 0);
  assert.deepEqual(
    start.new.map((d) => [d.id, d.scope, d.value, d.scenario]),
    [
      [1, 'Ip', '203.0.113.7', 'pbx-guardian/sip-auth'],
      [2, 'Range', '2001:db8:1::/48', 'pbx-guardian/manual'],
    ],
  );
  const del = parseStream(fixture('stream-delta-deleted.json'));
  assert.deepEqual(
    del.deleted.map((d) => d.id),
    [3, 4],
  );
  assert.ok(del.deleted[0]!.durationMs < 0);
  assert.deepEqual(parseStream('{"new":null,"deleted":null}'), { new: [], deleted: [], malformed: 0 });
});

test('parseStream: bad JSON and wrong shapes are clear errors; bad entries are skipped and counted', () => {
  assert.throws(() => parseStream('<html>'), LapiAnswerError);
  assert.throws(() => parseStream('[1,2]'), /not \{"new", "deleted"\}/);
  assert.throws(() => parseStream('{"new":{"a":1}}'), /"new" is not a list/);
  const d = parseStream(
    '{"new":[{"id":"x"},{"id":9,"origin":"cscli","type":"ban","scope":"Ip","value":"192.0.2.1","duration":"1h","scenario":"t"},7],"deleted":null}',
  );
  assert.equal(d.new.length, 1);
  assert.equal(d.malformed, 2);
});

const dec = (scope: string, value: string, extra: Partial<{ type: string; scenario: string; durationMs: number }> = {}) => ({
  id: 1,
  origin: 'cscli',
  type: 'ban',
  scope,
  value,
  durationMs: 3_600_000,
  scenario: 'test',
  ...extra,
});

test('targetOf: Ip and Range, IPv4 and IPv6; other types, scopes and values are skipped', () => {
  const t = (d: ReturnType<typeof dec>) => {
    const r = targetOf(d);
    return 'skip' in r ? r.skip : [r.target, r.family, r.isNetwork];
  };
  assert.deepEqual(t(dec('Ip', '198.51.100.9')), ['198.51.100.9', 4, false]);
  assert.deepEqual(t(dec('ip', '2001:DB8::1')), ['2001:db8::1', 6, false]);
  assert.deepEqual(t(dec('Range', '198.51.0.0/16')), ['198.51.0.0/16', 4, true]);
  assert.deepEqual(t(dec('Range', '2001:db8:1::/48')), ['2001:db8:1::/48', 6, true]);
  assert.equal(t(dec('Ip', '198.51.0.0/16')), 'value');
  assert.equal(t(dec('Range', '198.51.100.9')), 'value');
  assert.equal(t(dec('Ip', 'not-an-ip; rm -rf /')), 'value');
  assert.equal(t(dec('Country', 'CN')), 'scope');
  assert.equal(t(dec('Ip', '198.51.100.9', { type: 'captcha' })), 'type');
});

function judgeWith(allow: string[], local: Record<string, { rule: string; expiresAt: number | null }> = {}): FleetJudge {
  const nets = allow.map((a) => parseNetwork(a)!);
  const scope = new BanScope({ widestV4: 16, widestV6: 32 }, { addresses: () => [{ address: '192.0.2.10', why: 'an address of this host (eth0)' }] });
  return {
    allowed: (net: IpNetwork) => (nets.some((n) => overlaps(n, net)) ? 'guard.allow' : null),
    scopeRefusal: (net) => scope.refusal(net)?.message ?? null,
    localBan: (target) => local[target],
  };
}

function overlaps(a: IpNetwork, b: IpNetwork): boolean {
  if (a.family !== b.family) return false;
  const p = Math.min(a.prefix, b.prefix);
  for (let bit = 0; bit < p; bit++) if (((a.bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) !== ((b.bytes[bit >> 3]! >> (7 - (bit & 7))) & 1)) return false;
  return true;
}

test('judge: the allow-list wins, then the scope limits (remote ranges too), then our own bans are recognised', () => {
  const now = 1_000_000;
  const j = judgeWith(['203.0.113.0/24']);
  const tgt = (d: ReturnType<typeof dec>) => targetOf(d) as FleetTarget;
  const v = (d: ReturnType<typeof dec>, jj = j) => {
    const r = judge(d, tgt(d), jj, now);
    return r.enforce ? 'enforce' : r.why;
  };
  assert.equal(v(dec('Ip', '198.51.100.9')), 'enforce');
  assert.equal(v(dec('Ip', '203.0.113.7')), 'allowed');
  assert.equal(v(dec('Range', '203.0.0.0/16')), 'allowed', 'a range covering an allowed network is not enforced');
  assert.equal(v(dec('Range', '10.0.0.0/8')), 'scope', 'wider than guard.widestBanIPv4');
  assert.equal(v(dec('Range', '2001:db8::/16')), 'scope', 'wider than guard.widestBanIPv6');
  assert.equal(v(dec('Ip', '192.0.2.10')), 'scope', "the host's own address");
  assert.equal(v(dec('Ip', '224.0.0.1')), 'scope', 'multicast');
  const local = judgeWith([], { '198.51.100.9': { rule: 'sip-auth', expiresAt: now + 3_600_000 } });
  assert.equal(v(dec('Ip', '198.51.100.9', { scenario: 'pbx-guardian/sip-auth' }), local), 'own');
  assert.equal(v(dec('Ip', '198.51.100.9', { scenario: 'pbx-guardian/other' }), local), 'enforce', 'another rule: another guardian');
  assert.equal(v(dec('Ip', '198.51.100.9', { scenario: 'pbx-guardian/sip-auth', durationMs: 7_200_000 }), local), 'enforce', 'it lasts longer than ours');
  assert.equal(v(dec('Ip', '198.51.100.9', { scenario: 'test' }), local), 'enforce');
  assert.equal(
    isOwn(
      dec('Ip', '198.51.100.9', { scenario: 'pbx-guardian/manual' }),
      tgt(dec('Ip', '198.51.100.9')),
      { localBan: () => ({ rule: 'manual', expiresAt: null }) },
      now,
    ),
    true,
  );
});

test('crowdsec config: off by default; enabled parts need their url and credentials', () => {
  const c = defaultsOf(CrowdsecConfigSchema);
  assert.deepEqual(crowdsecConfigErrors(c), []);
  const on = {
    ...c,
    url: 'http://user:pw@lapi:8080',
    machine: { ...c.machine, enabled: true, push: ['rule', 'nope'] },
    bouncer: { ...c.bouncer, enabled: true },
  };
  const errors = crowdsecConfigErrors(on);
  assert.ok(errors.some((e) => e.startsWith('crowdsec.url: no user')));
  assert.ok(errors.some((e) => e.startsWith('crowdsec.machine.login')));
  assert.ok(errors.some((e) => e.startsWith('crowdsec.machine.password')));
  assert.ok(errors.some((e) => e.includes('"nope"')));
  assert.ok(errors.some((e) => e.startsWith('crowdsec.bouncer.apiKey')));
  const ok = {
    ...c,
    url: 'http://127.0.0.1:8080',
    machine: { ...c.machine, enabled: true, login: 'pbx1', password: 'secretpw123' },
    bouncer: { ...c.bouncer, enabled: true, apiKey: 'bouncerkey1234567' },
  };
  assert.deepEqual(crowdsecConfigErrors(ok), []);
});
