/**
 * The account memory and its anomalies (src/accounts), replaying the real Asterisk 22
 * registration transcripts (test/fixtures/ami-asterisk22-calls/README.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseFrame, type AmiFrame } from '../src/ami/index.js';
import type { AmiActionFields, AmiResponse } from '../src/ami/types.js';
import { AccountStore, AccountWatch, agentFamily, type AccountRestrictPort, type AccountWatchOptions } from '../src/accounts/index.js';
import { Store } from '../src/store/index.js';
import { readFixtureText } from './helpers/fixtures.js';
import { makeGuardian } from './helpers/guard.js';
import { createAdminApp } from '../src/admin/admin.js';

const silent = pino({ level: 'silent' });
const T0 = Date.parse('2026-12-02T06:36:00Z');

/** The frames of a transcript (the greeting line dropped). */
export function frames(name: string): AmiFrame[] {
  return readFixtureText(name)
    .split('\r\n\r\n')
    .filter((f) => f.includes(': '))
    .map((f) => parseFrame(f.replace(/^Asterisk Call Manager[^\r]*\r\n/, '')));
}

const calls = (name: string) => frames(`ami-asterisk22-calls/${name}.raw`);

interface Harness {
  watch: AccountWatch;
  events: Array<Record<string, string>>;
  clock: { now: number };
  replay(name: string, stepMs?: number): void;
}

function harness(over: Partial<AccountWatchOptions> = {}, clock = { now: T0 }): Harness {
  const events: Array<Record<string, string>> = [];
  const watch = new AccountWatch({
    limits: { maxAccounts: 100, maxNetworks: 16, maxAgents: 8, forgetAfterMs: 90 * 86400_000, recentSuccessMs: 2 * 3600_000, maxAddresses: 1000 },
    learningPeriodMs: 0,
    distantWindowMs: 120_000,
    policy: { 'new-network': 'alert', 'new-user-agent': 'alert', 'distant-networks': 'alert' },
    userAgentLookup: false,
    emit: (ev) => events.push(ev),
    logger: silent,
    clock: () => clock.now,
    ...over,
  });
  return {
    watch,
    events,
    clock,
    replay(name, stepMs = 1) {
      for (const f of calls(name)) {
        clock.now += stepMs;
        watch.handleAmiEvent(f);
      }
    },
  };
}

const anomalies = (h: Harness) => h.events.filter((e) => e.Event === 'GuardianAccountAnomaly');

test('usual address, re-register: nothing; the new network (198.51.100.77) raises new-network, and the move is no "distant at once"', () => {
  const h = harness();
  h.replay('account-pjsip-register-phones-100-101');
  h.replay('account-pjsip-register-usual-address');
  h.clock.now += 30 * 60_000;
  h.replay('account-pjsip-reregister-usual-address');
  h.watch.sweep(h.clock.now + 10_000);
  assert.deepEqual(anomalies(h), [], 'first registrations and a refresh are learned silently');
  assert.deepEqual([...h.watch.memory.get('102')!.networks.keys()], ['192.0.2.0/24']);

  h.clock.now += 30 * 60_000;
  h.replay('account-pjsip-register-new-network');
  h.clock.now += 10_000;
  h.watch.sweep();
  const got = anomalies(h);
  assert.equal(got.length, 1, JSON.stringify(got));
  const ev = got[0]!;
  assert.equal(ev.Account, '102');
  assert.equal(ev.Address, '198.51.100.77');
  assert.equal(ev.Signal, 'new-network');
  assert.equal(ev.Action, 'alert');
  assert.equal(ev.Networks, '192.0.2.0/24 198.51.100.0/24');
  assert.match(ev.Reason!, /account 102 from 198\.51\.100\.0\/24, a network it has never used/);
  assert.ok(!Number.isNaN(Date.parse(ev.Time!)));
  // the same network again is known now: one alert, not one per registration
  h.replay('account-pjsip-register-new-network');
  assert.equal(anomalies(h).length, 1);
  assert.equal(h.watch.list().accounts.find((a) => a.account === '102')!.anomalies.length, 1);
});

test('IPv6: 102 from 2001:db8:77::77 is a new /48', () => {
  const h = harness();
  h.replay('account-pjsip-register-usual-address');
  h.replay('account-pjsip-register-new-network-ipv6');
  h.replay('account-pjsip-unregister');
  h.watch.sweep(h.clock.now + 10_000);
  const got = anomalies(h);
  assert.deepEqual(
    got.map((e) => [e.Signal, e.Address]),
    [['new-network', '2001:db8:77::77']],
  );
  assert.equal(got[0]!.Networks, '192.0.2.0/24 2001:db8:77::/48');
});

test('learning period: a fresh install learns the new network without an anomaly', () => {
  const h = harness({ learningPeriodMs: 7 * 86400_000 });
  h.replay('account-pjsip-register-usual-address');
  h.replay('account-pjsip-register-new-network');
  assert.equal(h.watch.learning, true);
  assert.deepEqual(anomalies(h), []);
  assert.equal(h.watch.memory.get('102')!.networks.size, 2, 'both networks learned');
  h.clock.now += 8 * 86400_000;
  h.replay('account-pjsip-register-new-network');
  assert.deepEqual(anomalies(h), [], 'after the learning period the learned network is known');
});

test('User-Agent: the ContactList of PJSIPShowContacts; 102 changing from Yealink to MicroSIP is new-user-agent, the others nothing', () => {
  const h = harness();
  h.replay('action-pjsipshowcontacts-before');
  assert.deepEqual(anomalies(h), []);
  h.replay('action-pjsipshowcontacts');
  const got = anomalies(h);
  assert.equal(got.length, 1);
  assert.equal(got[0]!.Signal, 'new-user-agent');
  assert.equal(got[0]!.Account, '102');
  assert.equal(got[0]!.UserAgent, 'MicroSIP/3.21.3');
  assert.equal(got[0]!.Address, '198.51.100.77');
  assert.match(got[0]!.UserAgents!, /Yealink SIP-T54W 96\.86\.0\.100/);
  // a firmware upgrade is not a new device
  assert.equal(agentFamily('Yealink SIP-T54W 96.86.0.100'), agentFamily('Yealink SIP-T54W 96.86.0.120'));
  assert.notEqual(agentFamily('Yealink SIP-T54W 96.86.0.100'), agentFamily('MicroSIP/3.21.3'));
});

test('a new contact asks PJSIPShowContacts (once for a burst) and reads the User-Agents from its reply', async () => {
  const asked: AmiActionFields[] = [];
  const listFrames = calls('action-pjsipshowcontacts');
  const ami = {
    action: async (fields: AmiActionFields): Promise<AmiResponse> => {
      asked.push(fields);
      return { response: listFrames[0]!, events: listFrames.filter((f) => f.get('Event') === 'ContactList') };
    },
  };
  const h = harness({ ami, userAgentLookup: true });
  h.replay('account-pjsip-register-phones-100-101');
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(asked, [{ Action: 'PJSIPShowContacts' }], 'two new contacts, one lookup');
  assert.equal(h.watch.memory.get('101')!.agents.values().next().value!.full, 'Grandstream GXP2170 1.0.11.23');
  assert.equal(h.watch.memory.get('102')!.agents.values().next().value!.full, 'MicroSIP/3.21.3');
});

test('distant networks at once: 102 registered at 192.0.2.10 and authenticating from 198.51.100.77 with no contact removed', () => {
  const h = harness();
  h.replay('account-pjsip-register-usual-address');
  h.clock.now += 30_000;
  // only the INVITE-like authentication from the other network: no new contact, the old one stays
  for (const f of calls('account-pjsip-register-new-network').filter((f) => f.get('Event') === 'SuccessfulAuth')) h.watch.handleAmiEvent(f);
  h.watch.sweep(h.clock.now + 1000);
  assert.deepEqual(
    anomalies(h).map((e) => e.Signal),
    ['new-network'],
    'judged only after the grace (a move removes the old contact within it)',
  );
  h.watch.sweep(h.clock.now + 6000);
  const distant = anomalies(h).filter((e) => e.Signal === 'distant-networks');
  assert.equal(distant.length, 1);
  assert.match(distant[0]!.Reason!, /192\.0\.2\.10, 198\.51\.100\.77/);
  h.watch.sweep(h.clock.now + 20_000);
  assert.equal(anomalies(h).filter((e) => e.Signal === 'distant-networks').length, 1, 'reported once');
});

class RecordingRestrict implements AccountRestrictPort {
  readonly calls: string[] = [];
  async restrict(account: string, reason: string): Promise<void> {
    this.calls.push(`restrict ${account}: ${reason}`);
  }
  async lift(account: string): Promise<void> {
    this.calls.push(`lift ${account}`);
  }
}

test('policy restrict calls the port; acknowledge lifts it and the network stays learned', async () => {
  const restrict = new RecordingRestrict();
  const h = harness({ restrict, policy: { 'new-network': 'restrict', 'new-user-agent': 'alert', 'distant-networks': 'alert' } });
  h.replay('account-pjsip-register-usual-address');
  h.replay('account-pjsip-register-new-network');
  assert.deepEqual(restrict.calls, ['restrict 102: account 102 from 198.51.100.0/24, a network it has never used']);
  assert.equal(anomalies(h)[0]!.Action, 'restrict');
  assert.equal(h.watch.list().accounts.find((a) => a.account === '102')!.restricted, true);

  const r = await h.watch.acknowledge('102');
  assert.deepEqual(r, { account: '102', acknowledged: 1, lifted: true });
  assert.deepEqual(restrict.calls.at(-1), 'lift 102');
  const view = h.watch.list().accounts.find((a) => a.account === '102')!;
  assert.equal(view.restricted, false);
  assert.deepEqual(view.anomalies, []);
  h.replay('account-pjsip-register-new-network');
  assert.equal(anomalies(h).length, 1, 'the acknowledged network raises nothing again');
  await assert.rejects(h.watch.acknowledge('999'), { code: 'ACCOUNT_UNKNOWN' });
  await assert.rejects(h.watch.acknowledge('1\r\nAction: Originate'), { code: 'INVALID_ACCOUNT' });
});

test('bounds: accounts, networks per account and User-Agents per account are LRU', () => {
  const h = harness({ limits: { maxAccounts: 3, maxNetworks: 2, maxAgents: 2, forgetAfterMs: 86400_000, recentSuccessMs: 3600_000, maxAddresses: 2 } });
  const m = h.watch.memory;
  for (const a of ['a1', 'a2', 'a3']) m.seeNetwork(a, '192.0.2.0/24', (h.clock.now += 1));
  m.seeNetwork('a1', '192.0.2.0/24', (h.clock.now += 1)); // a1 used again: a2 is now the oldest
  m.seeNetwork('a4', '192.0.2.0/24', (h.clock.now += 1));
  assert.deepEqual([...m.all()].map((s) => s.account).sort(), ['a1', 'a3', 'a4']);
  for (const n of ['198.51.100.0/24', '203.0.113.0/24']) m.seeNetwork('a1', n, (h.clock.now += 1));
  assert.deepEqual([...m.get('a1')!.networks.keys()], ['198.51.100.0/24', '203.0.113.0/24']);
  for (const ua of ['Yealink T46S 1', 'Grandstream 2', 'Snom 3']) m.seeAgent('a1', ua, (h.clock.now += 1));
  assert.equal(m.get('a1')!.agents.size, 2);
  // sliding: a network unused for forgetAfter is gone at the next sighting
  h.clock.now += 2 * 86400_000;
  assert.equal(m.seeNetwork('a1', '192.0.2.0/24', h.clock.now), 'first', 'everything older than forgetAfter was forgotten');
});

test('persistence: a restart keeps the networks, the open anomalies and the learning start (a real SQLite file)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-accounts-'));
  try {
    const clock = { now: T0 };
    let store = Store.open(dir);
    let h = harness({ store: new AccountStore(store.db), learningPeriodMs: 3600_000 }, clock);
    h.replay('account-pjsip-register-phones-100-101');
    h.replay('account-pjsip-register-usual-address');
    await h.watch.close();
    store.close();

    clock.now += 2 * 3600_000; // past the learning hour, counted from the first start
    store = Store.open(dir);
    h = harness({ store: new AccountStore(store.db), learningPeriodMs: 3600_000 }, clock);
    assert.equal(h.watch.learning, false, 'learning started at the first start, not this one');
    assert.deepEqual([...h.watch.memory.get('102')!.networks.keys()], ['192.0.2.0/24']);
    h.replay('account-pjsip-reregister-usual-address');
    h.replay('account-pjsip-register-phones-100-101');
    assert.deepEqual(anomalies(h), [], 'the phones are known after the restart: no alert on every phone');
    h.replay('account-pjsip-register-new-network');
    assert.equal(anomalies(h).length, 1);
    await h.watch.close();
    store.close();

    store = Store.open(dir);
    h = harness({ store: new AccountStore(store.db), learningPeriodMs: 3600_000 }, clock);
    assert.deepEqual(
      h.watch
        .list()
        .accounts.find((a) => a.account === '102')!
        .anomalies.map((a) => a.signal),
      ['new-network'],
      'the open anomaly survived',
    );
    assert.equal(h.watch.memory.successfulAccounts('192.0.2.100', clock.now), 1, 'the evidence of successes survived too');
    await h.watch.acknowledge('102');
    await h.watch.close();
    store.close();
    store = Store.open(dir);
    h = harness({ store: new AccountStore(store.db) }, clock);
    assert.deepEqual(h.watch.list().accounts.find((a) => a.account === '102')!.anomalies, [], 'the acknowledgement survived');
    await h.watch.close();
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attacker text: a bad account name or a User-Agent with control characters is not kept as such', () => {
  const h = harness();
  h.watch.handleAmiEvent(parseFrame('Event: SuccessfulAuth\r\nService: PJSIP\r\nAccountID: 10 2;x\r\nRemoteAddress: IPV4/UDP/198.51.100.9/5060'));
  assert.equal(h.watch.memory.size, 0);
  h.watch.handleAmiEvent(parseFrame('Event: ContactList\r\nEndpoint: 100\r\nUri: sip:100@192.0.2.100:5060\r\nUserAgent: Evil\u0007UA' + 'x'.repeat(500)));
  const ua = h.watch.memory.get('100')!.agents.values().next().value!.full;
  assert.equal(ua.length, 120);
  assert.ok(!ua.includes('\u0007'));
});

test('admin routes: GET /accounts lists, POST /accounts/:account/acknowledge closes and lifts; errors keep their codes', async () => {
  const restrict = new RecordingRestrict();
  const h = harness({ restrict, policy: { 'new-network': 'restrict', 'new-user-agent': 'alert', 'distant-networks': 'alert' } });
  h.replay('account-pjsip-register-usual-address');
  h.replay('account-pjsip-register-new-network');
  let on: AccountWatch | null = h.watch;
  const makeGuard = makeGuardian();
  const admin = createAdminApp({
    control: makeGuard.guardian,
    status: () => makeGuard.guardian.status(),
    reload: async () => ({ rules: 0 }),
    version: 'test',
    accounts: () => on,
  });
  await admin.ready();
  const list = await admin.inject({ method: 'GET', url: '/accounts' });
  assert.equal(list.statusCode, 200);
  const body = list.json() as ReturnType<AccountWatch['list']>;
  const a102 = body.accounts.find((a) => a.account === '102')!;
  assert.equal(a102.restricted, true);
  assert.deepEqual(
    a102.networks.map((n) => n.network),
    ['192.0.2.0/24', '198.51.100.0/24'],
  );
  const ack = await admin.inject({ method: 'POST', url: '/accounts/102/acknowledge' });
  assert.equal(ack.statusCode, 200);
  assert.deepEqual(ack.json(), { account: '102', acknowledged: 1, lifted: true });
  assert.equal(restrict.calls.at(-1), 'lift 102');
  const unknown = await admin.inject({ method: 'POST', url: '/accounts/999/acknowledge' });
  assert.deepEqual([unknown.statusCode, unknown.json().code], [404, 'ACCOUNT_UNKNOWN']);
  const bad = await admin.inject({ method: 'POST', url: `/accounts/${encodeURIComponent('1 2')}/acknowledge` });
  assert.deepEqual([bad.statusCode, bad.json().code], [400, 'INVALID_ACCOUNT']);
  on = null;
  const off = await admin.inject({ method: 'GET', url: '/accounts' });
  assert.deepEqual([off.statusCode, off.json().code], [404, 'ACCOUNTS_DISABLED']);
  await admin.close();
});

test('hasRecentSuccess (asked before a prefix ban): the /64 index, wider prefixes, IPv4 apart, age and eviction', async () => {
  const { AccountMemory } = await import('../src/accounts/index.js');
  const { parseNetwork } = await import('../src/net/ip.js');
  const net = (t: string) => parseNetwork(t)!;
  const m = new AccountMemory({ maxAccounts: 10, maxNetworks: 10, maxAgents: 10, forgetAfterMs: 86_400_000, recentSuccessMs: 60_000, maxAddresses: 3 });
  const t0 = 1_000_000;
  assert.equal(m.hasRecentSuccess(net('2001:db8:b::/64'), t0), false, 'nothing seen');
  m.success(net('2001:db8:b::50'), '300', t0);
  m.success(net('192.0.2.50'), '301', t0);
  assert.equal(m.hasRecentSuccess(net('2001:db8:b::/64'), t0), true, 'the phone inside the /64');
  assert.equal(m.hasRecentSuccess(net('2001:db8:b::/96'), t0), true, 'a longer prefix holding it');
  assert.equal(m.hasRecentSuccess(net('2001:db8:b::1:0:0/96'), t0), false, 'a longer prefix of the same /64 without it');
  assert.equal(m.hasRecentSuccess(net('2001:db8:c::/64'), t0), false, 'another /64');
  assert.equal(m.hasRecentSuccess(net('2001:db8::/32'), t0), true, 'a wider prefix (walks the addresses)');
  assert.equal(m.hasRecentSuccess(net('2001:db9::/48'), t0), false);
  assert.equal(m.hasRecentSuccess(net('192.0.2.0/24'), t0), true, 'IPv4 kept apart, still answered');
  assert.equal(m.hasRecentSuccess(net('198.51.100.0/24'), t0), false);
  assert.equal(m.hasRecentSuccess(net('2001:db8:b::/64'), t0 + 60_001), false, 'older than recentSuccess');
  // maxAddresses 3: two more addresses evict the IPv6 phone (least recently seen) from the index too
  m.success(net('192.0.2.51'), '302', t0);
  m.success(net('192.0.2.52'), '303', t0);
  assert.equal(m.hasRecentSuccess(net('2001:db8:b::/64'), t0), false, 'evicted');
  assert.equal(m.hasRecentSuccess(net('2001:db8::/32'), t0), false, 'evicted (wide prefix)');
  m.success(net('2001:db8:b::51'), '300', t0);
  assert.equal(m.hasRecentSuccess(net('2001:db8:b::/64'), t0), true, 'seen again');
});
