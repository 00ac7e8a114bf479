/**
 * Account-aware bans (src/guard/account-aware.ts with src/accounts as the evidence), replaying the
 * real PJSIP transcripts. The office behind NAT is the phones' own frames with their source
 * rewritten to one address (192.0.2.10), and the stale phone is pjsip-udp-wrong-password.raw
 * (endpoint 100 from 192.0.2.11) rewritten to endpoint 204 from that address.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { parseFrame, type AmiFrame } from '../src/ami/index.js';
import { AccountWatch } from '../src/accounts/index.js';
import type { AccountFailureReport, BanRecord } from '../src/guard/index.js';
import { readFixtureText } from './helpers/fixtures.js';
import { makeGuardian } from './helpers/guard.js';

const silent = pino({ level: 'silent' });
const OFFICE = '192.0.2.10';

function frames(name: string, edit: (text: string) => string = (t) => t): AmiFrame[] {
  return readFixtureText(name)
    .split('\r\n\r\n')
    .filter((f) => f.includes(': '))
    .map((f) => parseFrame(edit(f.replace(/^Asterisk Call Manager[^\r]*\r\n/, ''))));
}

/** The wrong-password attempts (5 ChallengeResponseFailed), as `account` from `address`; `tag`
 *  makes the Call-IDs of one replay differ from another's. */
function wrongPassword(
  account: string,
  address: string,
  tag: string,
  file = 'ami-asterisk22-pjsip/pjsip-udp-wrong-password.raw',
  from = '192.0.2.11',
): AmiFrame[] {
  return frames(file, (t) =>
    t
      .replace(/^AccountID: 100$/m, `AccountID: ${account}`)
      .split(`/${from}/`)
      .join(`/${address}/`)
      .replace(/^SessionID: (.*)$/m, (_l, id: string) => (id.startsWith('0x') ? `SessionID: ${id}` : `SessionID: ${tag}-${id}`)),
  ).filter((f) => f.get('AccountID') !== 'recorder');
}

function setup(withAccounts = true) {
  const g = makeGuardian();
  const watch = new AccountWatch({
    limits: { maxAccounts: 100, maxNetworks: 16, maxAgents: 8, forgetAfterMs: 90 * 86400_000, recentSuccessMs: 2 * 3600_000, maxAddresses: 1000 },
    learningPeriodMs: 0,
    distantWindowMs: 120_000,
    policy: { 'new-network': 'alert', 'new-user-agent': 'alert', 'distant-networks': 'alert' },
    userAgentLookup: false,
    emit: () => {},
    logger: silent,
    clock: () => g.clock.now,
  });
  const reports: AccountFailureReport[] = [];
  const bans: BanRecord[] = [];
  if (withAccounts)
    g.guardian.setAccountEvidence(watch.memory, { enumerationAccounts: 5, reportAfter: 5, reportEveryMs: 600_000, windowMs: 12 * 3600_000, maxAddresses: 100 });
  g.guardian.on({ accountFailing: (r) => reports.push(r), banned: (n) => bans.push(n.record) });
  /** each frame to the accounts stage (AMI subscriber) and the guard (AMI source), 50 ms apart */
  const replay = (list: AmiFrame[]) => {
    for (const f of list) {
      g.clock.now += 50;
      watch.handleAmiEvent(f);
      g.guardian.handleEvent(f, g.clock.now);
    }
  };
  return { ...g, watch, reports, bans, replay };
}

/** phones 100 and 101 registering, both from the office's NAT address */
const officePhones = () => frames('ami-asterisk22-calls/account-pjsip-register-phones-100-101.raw', (t) => t.replace(/\/192\.0\.2\.10[01]\//g, `/${OFFICE}/`));

test('office behind NAT: 100 and 101 succeed from 192.0.2.10, 204 keeps failing from it: reported, counted, not banned', () => {
  const s = setup();
  s.replay(officePhones());
  assert.equal(s.watch.memory.successfulAccounts(OFFICE, s.clock.now), 2);
  for (let i = 0; i < 3; i++) s.replay(wrongPassword('204', OFFICE, `r${i}`));
  assert.equal(s.bans.length, 0, 'a stale phone does not ban the office');
  assert.equal(s.guardian.listBans().length, 0);
  assert.equal(s.reports.length, 1, 'reported once within reportEvery');
  assert.deepEqual(s.reports[0], { account: '204', address: OFFICE, failures: 5, accounts: 1, succeeding: 2 });
  assert.ok(s.guardian.status().totalFailed >= 15, 'the failures are still counted');
});

test('office behind NAT: failures spread over 5 accounts (enumeration) ban the address', () => {
  const s = setup();
  s.replay(officePhones());
  s.replay(wrongPassword('204', OFFICE, 'a'));
  for (const account of ['200', '201', '202']) s.replay(wrongPassword(account, OFFICE, account));
  assert.equal(s.bans.length, 0, 'four accounts: below the threshold');
  s.replay(wrongPassword('203', OFFICE, '203'));
  assert.equal(s.bans.length, 1);
  assert.equal(s.bans[0]!.target, OFFICE);
  assert.match(s.bans[0]!.reason, /failures for 5 accounts from an address where others authenticate: enumeration/);
});

test('an attacker with no successes is banned exactly as without the account memory', () => {
  const run = (withAccounts: boolean) => {
    const s = setup(withAccounts);
    s.replay(officePhones()); // successes elsewhere change nothing for 192.0.2.11
    s.replay(wrongPassword('100', '192.0.2.11', 'x'));
    return { bans: s.bans, failed: s.guardian.status().totalFailed, reports: s.reports };
  };
  const without = run(false);
  const withMemory = run(true);
  assert.equal(without.bans.length, 1);
  assert.deepEqual(withMemory, without);
});

test('prefix aggregation: an IPv6 /64 where a phone authenticated is not banned as a prefix, only the attacker', () => {
  const run = (phoneInPrefix: boolean) => {
    const s = setup();
    if (phoneInPrefix)
      s.watch.authenticated(
        '300',
        { family: 6, bytes: new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x50]), prefix: 128 },
        s.clock.now,
      );
    s.replay(frames('ami-asterisk22-pjsip/pjsip-udp6-wrong-password.raw', (t) => t).filter((f) => f.get('AccountID') !== 'recorder'));
    return s.bans.map((b) => b.target);
  };
  assert.deepEqual(run(false), ['2001:db8:b::/64'], 'as before: the attacker prefix');
  assert.deepEqual(run(true), ['2001:db8:b::11'], 'the phone at 2001:db8:b::50 keeps its prefix out of the ban');
});
