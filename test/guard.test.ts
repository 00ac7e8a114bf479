import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { splitTranscript, type AmiMessage } from '../src/ami/index.js';
import { AllowListedError, InvalidTargetError } from '../src/guard/index.js';
import { Store } from '../src/store/index.js';
import { readFixture } from './helpers/fixtures.js';
import { makeGuardian } from './helpers/guard.js';

function events(file: string, name?: string): AmiMessage[] {
  return splitTranscript(readFixture(`ami/${file}`))
    .map((f) => f.message)
    .filter((m) => m.get('Event') !== undefined && (name === undefined || m.get('Event') === name));
}

/** The real InvalidPassword frame of a chan_sip brute force, from 127.0.0.2. */
const sipWrongPassword = () => events('security-sip-register-wrong-password.raw', 'InvalidPassword')[0]!;

test('a replayed SIP brute force bans the address at the rule threshold (5 in 10m), not before', () => {
  const { guardian, enforcement, clock } = makeGuardian();
  const frame = sipWrongPassword();
  for (let i = 1; i <= 4; i++) {
    clock.now += 1000;
    guardian.handleEvent(frame);
    assert.equal(guardian.listBans().length, 0, `no ban after ${i} failures`);
  }
  clock.now += 1000;
  guardian.handleEvent(frame);
  const bans = guardian.listBans();
  assert.equal(bans.length, 1);
  assert.equal(bans[0]!.target, '127.0.0.2');
  assert.equal(bans[0]!.rule, 'auth-failure');
  assert.equal(bans[0]!.count, 5);
  assert.equal(bans[0]!.expiresAt! - bans[0]!.createdAt, 3600_000);
  assert.deepEqual(enforcement.calls, [{ op: 'ban', target: '127.0.0.2' }]);
});

test('failures spread wider than the window do not ban', () => {
  const { guardian, clock } = makeGuardian();
  const frame = sipWrongPassword();
  for (let i = 0; i < 12; i++) {
    clock.now += 3 * 60_000; // 3 failures per ~10 minutes: under 5/10m, and 12 < 20/12h
    guardian.handleEvent(frame);
  }
  assert.equal(guardian.listBans().length, 0);
  assert.equal(guardian.status().totalFailed, 12);
});

test('every failure kind of the fixtures counts: AMI, SIP, IPv6, TCP, ACL, bad requests', () => {
  const cases: Array<[string, string, string]> = [
    ['security-ami-invalid-password.raw', 'InvalidPassword', '127.0.0.2'],
    ['security-ami-invalid-account.raw', 'InvalidAccountID', '127.0.0.2'],
    ['security-ami-challenge-response-failed.raw', 'ChallengeResponseFailed', '127.0.0.2'],
    ['security-ami-failed-acl.raw', 'FailedACL', '127.0.0.2'],
    ['security-ami-request-not-allowed.raw', 'RequestNotAllowed', '127.0.0.2'],
    ['security-ami-request-bad-format.raw', 'RequestBadFormat', '127.0.0.2'],
    // ::/64 would cover the unspecified address :: (never banned): the address alone
    ['security-ami-invalid-password-ipv6.raw', 'InvalidPassword', '::1'],
    ['security-sip-register-wrong-password-tcp.raw', 'InvalidPassword', '127.0.0.2'],
    ['security-sip-register-wrong-password-ipv6.raw', 'InvalidPassword', '::1'],
    ['security-sip-register-unknown-peer-no-alwaysauthreject.raw', 'InvalidAccountID', '127.0.0.2'],
  ];
  for (const [file, name, target] of cases) {
    const { guardian, clock } = makeGuardian();
    const frame = events(file, name)[0];
    assert.ok(frame, `${file} has a ${name} event`);
    for (let i = 0; i < 5; i++) {
      clock.now += 100;
      guardian.handleEvent(frame);
    }
    assert.deepEqual(
      guardian.listBans().map((b) => b.target),
      [target],
      `${file}: ${name} x5 bans ${target}`,
    );
  }
});

test('SuccessfulAuth (and the ChallengeSent before it) never bans', () => {
  const { guardian, clock } = makeGuardian();
  const frames = events('security-sip-register-success.raw');
  assert.ok(frames.some((f) => f.get('Event') === 'SuccessfulAuth'));
  for (let i = 0; i < 200; i++) {
    for (const f of frames) {
      clock.now += 10;
      guardian.handleEvent(f);
    }
  }
  assert.equal(guardian.listBans().length, 0);
});

test('a ChallengeSent flood that never authenticates bans (challenge-flood)', () => {
  const { guardian, clock } = makeGuardian();
  const challenge = events('security-sip-register-wrong-password.raw', 'ChallengeSent')[0]!;
  for (let i = 0; i < 29; i++) {
    clock.now += 100;
    guardian.handleEvent(challenge);
  }
  assert.equal(guardian.listBans().length, 0);
  clock.now += 100;
  guardian.handleEvent(challenge);
  assert.equal(guardian.listBans()[0]?.rule, 'challenge-flood');
});

test('failures from an allow-listed address never ban, by any path', async () => {
  const { guardian, clock } = makeGuardian({ allow: ['127.0.0.0/29'] });
  const frame = sipWrongPassword();
  for (let i = 0; i < 100; i++) {
    clock.now += 10;
    guardian.handleEvent(frame);
  }
  assert.equal(guardian.listBans().length, 0);
  await assert.rejects(guardian.ban({ target: '127.0.0.2', source: 'manual' }), AllowListedError);
  await assert.rejects(guardian.ban({ target: '127.0.0.0/24', source: 'odoo' }), /overlaps the allow-listed 127\.0\.0\.0\/29/);
  await assert.rejects(guardian.ban({ target: 'not-an-ip', source: 'api' }), InvalidTargetError);
});

test('the automatic allow-list (loopback, AMI host) protects our own AMI login', () => {
  const { guardian, clock } = makeGuardian({ automaticAllow: ['127.0.0.0/8', '::1'] });
  for (let i = 0; i < 20; i++) {
    clock.now += 10;
    guardian.handleEvent(sipWrongPassword());
  }
  assert.equal(guardian.listBans().length, 0);
});

test('IPv6 attackers are counted and banned by their /64', () => {
  const { guardian, clock } = makeGuardian();
  const base = events('security-sip-register-wrong-password-ipv6.raw', 'InvalidPassword')[0]!;
  const from = (addr: string) => ({ get: (k: string) => (k === 'RemoteAddress' ? `IPV6/UDP/${addr}/5060` : base.get(k)) });
  for (let i = 1; i <= 5; i++) {
    clock.now += 10;
    guardian.handleEvent(from(`2001:db8:1:2::${i}`));
  }
  assert.deepEqual(
    guardian.listBans().map((b) => [b.target, b.isNetwork]),
    [['2001:db8:1:2::/64', true]],
  );
});

test('escalation: each new ban of the same address is longer by the factor, up to the cap; recidive', () => {
  const { guardian, clock } = makeGuardian({
    escalation: { factor: 2, maxSec: 3 * 3600, lookbackSec: 30 * 86400 },
    recidive: { bans: 4, withinSec: 86400, banSec: 7 * 86400 },
  });
  const frame = sipWrongPassword();
  const durations: Array<[string, number]> = [];
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 5; i++) {
      clock.now += 1000;
      guardian.handleEvent(frame);
    }
    const ban = guardian.listBans()[0]!;
    durations.push([ban.rule, (ban.expiresAt! - ban.createdAt) / 1000]);
    clock.now = ban.expiresAt! + 1;
    guardian.sweepExpired();
    assert.equal(guardian.listBans().length, 0, 'ban expired');
  }
  assert.deepEqual(durations, [
    ['auth-failure', 3600],
    ['auth-failure', 7200],
    ['auth-failure', 3 * 3600],
    ['recidive', 7 * 86400],
  ]);
});

test('a restart restores active bans with their remaining time, from SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-store-'));
  try {
    const store1 = Store.open(dir);
    const first = makeGuardian({}, store1);
    for (let i = 0; i < 5; i++) first.guardian.handleEvent(sipWrongPassword());
    await first.guardian.ban({ target: '198.51.100.0/24', durationSec: 60, source: 'manual', reason: 'scanner net' });
    await first.guardian.ban({ target: '2001:db8::7', durationSec: null, source: 'odoo' });
    store1.close();

    const store2 = Store.open(dir);
    const second = makeGuardian({}, store2);
    second.clock.now = first.clock.now + 30_000;
    const restored = second.guardian.restore();
    assert.deepEqual(restored.map((b) => b.target).sort(), ['127.0.0.2', '198.51.100.0/24', '2001:db8::7']);
    const entries = second.guardian.activeEntries();
    const net = entries.find((e) => e.target === '198.51.100.0/24')!;
    assert.equal(net.isNetwork, true);
    assert.equal(net.expiresAt! - second.clock.now, 30_000, 'remaining time, not the full duration');
    assert.equal(entries.find((e) => e.target === '2001:db8::7')!.expiresAt, null);

    second.clock.now += 31_000;
    assert.equal(second.guardian.sweepExpired(), 1, 'the 60 s ban ended');
    store2.close();
    const store3 = Store.open(dir);
    assert.deepEqual(
      store3
        .activeBans(second.clock.now)
        .map((b) => b.target)
        .sort(),
      ['127.0.0.2', '2001:db8::7'],
    );
    store3.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('escalation across a restart: SQLite history finds the earlier offender; queued bans count before they are written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-store-'));
  const escalation = { factor: 2, maxSec: 86400, lookbackSec: 30 * 86400 };
  try {
    const store1 = Store.open(dir);
    const first = makeGuardian({ escalation }, store1);
    for (let i = 0; i < 5; i++) first.guardian.handleEvent(sipWrongPassword());
    const b1 = first.guardian.listBans()[0]!;
    assert.equal((b1.expiresAt! - b1.createdAt) / 1000, 3600);
    store1.close();

    const store2 = Store.open(dir);
    const second = makeGuardian({ escalation }, store2);
    second.clock.now = b1.expiresAt! + 1000;
    assert.equal(second.guardian.restore().length, 0, 'the first ban ran out while down');
    for (let i = 0; i < 5; i++) second.guardian.handleEvent(sipWrongPassword());
    const b2 = second.guardian.listBans()[0]!;
    assert.equal(b2.target, b1.target);
    assert.equal((b2.expiresAt! - b2.createdAt) / 1000, 7200, 'second ban doubled from the stored history');
    // not flushed yet (same turn): the queued ban is counted with the stored one
    assert.deepEqual(store2.banTimesSince(b1.target, 0), [b1.createdAt, b2.createdAt]);
    assert.deepEqual(store2.banTimesSince('203.0.113.9', 0), [], 'an address never banned');
    store2.flush();
    assert.deepEqual(store2.banTimesSince(b1.target, b1.createdAt + 1), [b2.createdAt], 'since is honoured');
    store2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('manual ban and unban; unban of an address that is not banned is false', async () => {
  const { guardian, enforcement } = makeGuardian();
  const rec = await guardian.ban({ target: '203.0.113.0/255', durationSec: 600, source: 'manual' }).catch((e: Error) => e);
  assert.ok(rec instanceof InvalidTargetError);
  const ban = await guardian.ban({ target: '203.0.113.77', durationSec: 600, reason: 'by hand', source: 'manual' });
  assert.equal(ban.rule, 'manual');
  assert.equal(await guardian.unban('203.0.113.77'), true);
  assert.equal(await guardian.unban('203.0.113.77'), false);
  assert.deepEqual(
    enforcement.calls.map((c) => c.op),
    ['ban', 'unban'],
  );
});

test('Odoo access rules replace the allow list and the deny list', async () => {
  const { guardian } = makeGuardian();
  await guardian.replaceAccessRules({ allow: ['192.0.2.0/24'], deny: ['203.0.113.9', '198.51.100.0/24'] });
  assert.deepEqual(
    guardian.listBans().map((b) => [b.target, b.expiresAt]),
    [
      ['203.0.113.9', null],
      ['198.51.100.0/24', null],
    ],
  );
  assert.equal(guardian.isAllowListed('192.0.2.55'), true);
  await guardian.replaceAccessRules({ allow: [], deny: ['203.0.113.9'] });
  assert.deepEqual(
    guardian.listBans().map((b) => b.target),
    ['203.0.113.9'],
  );
  assert.equal(guardian.isAllowListed('192.0.2.55'), false);
});

test('per-address state is bounded by maxTracked', () => {
  const { guardian, clock } = makeGuardian({ maxTracked: 1000 });
  const base = sipWrongPassword();
  for (let i = 0; i < 5000; i++) {
    clock.now += 1;
    const addr = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    guardian.handleEvent({ get: (k: string) => (k === 'RemoteAddress' ? `IPV4/UDP/${addr}/5060` : base.get(k)) });
  }
  assert.ok(guardian.status().currentlyFailed <= 1000, `tracked ${guardian.status().currentlyFailed}`);
});

test('hostile RemoteAddress values are ignored, never banned', () => {
  const { guardian, clock } = makeGuardian();
  const base = sipWrongPassword();
  for (const bad of ['IPV4/UDP/999.1.1.1/5060', 'IPV4/UDP/1.2.3.4; rm -rf //5060', '', 'IPV6/UDP/zz::1/1', 'x'.repeat(10_000)]) {
    for (let i = 0; i < 10; i++) {
      clock.now += 1;
      guardian.handleEvent({ get: (k: string) => (k === 'RemoteAddress' ? bad : base.get(k)) });
    }
  }
  assert.equal(guardian.listBans().length, 0);
});
