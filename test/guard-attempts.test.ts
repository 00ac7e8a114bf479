/**
 * Detection on real Asterisk 22 captures, replayed at their own pace through the guard's clock:
 * attempts (not events) are counted, a slow challenge-only scanner is banned, phones never are,
 * and SessionLimit / MemoryLimit / LoadAverageLimit are in rules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFrame } from '../src/ami/index.js';
import { makeGuardian } from './helpers/guard.js';
import { attemptsOf, eventsFrom, loadCapture, withSession, type CapturedFrame } from './helpers/capture.js';

type Guard = ReturnType<typeof makeGuardian>;

/** Replays `n` attempts made of `template`'s real frames, `spacingMs` apart (each frame keeps its
 *  offset inside the attempt); `session(i)` gives attempt i's SessionID. Returns the 1-based
 *  attempt during which the first ban came, or null. */
function replayAttempts(g: Guard, template: CapturedFrame[], n: number, spacingMs: number, session: (i: number) => string | null): number | null {
  const t0 = template[0]!.at;
  for (let i = 0; i < n; i++) {
    for (const f of template) {
      const at = t0 + i * spacingMs + (f.at - t0);
      g.clock.now = at;
      const id = session(i);
      g.guardian.handleEvent(id === null ? f.frame : withSession(f.text, id), at);
      if (g.guardian.listBans().length > 0) return i + 1;
    }
  }
  return null;
}

const CASES: Array<{ capture: string; attacker: string; eventsPerAttempt: number }> = [
  { capture: 'pjsip-udp-wrong-password', attacker: '192.0.2.11', eventsPerAttempt: 1 },
  { capture: 'pjsip-tcp-wrong-password', attacker: '192.0.2.13', eventsPerAttempt: 1 },
  { capture: 'pjsip-udp6-wrong-password', attacker: '2001:db8:b::11', eventsPerAttempt: 1 },
  { capture: 'pjsip-udp-unknown-user', attacker: '192.0.2.12', eventsPerAttempt: 3 },
  { capture: 'pjsip-tcp-unknown-user', attacker: '192.0.2.14', eventsPerAttempt: 3 },
  { capture: 'pjsip-tcp6-unknown-user', attacker: '2001:db8:c::12', eventsPerAttempt: 3 },
  { capture: 'pjsip-udp-acl-denied', attacker: '192.0.2.21', eventsPerAttempt: 3 },
  { capture: 'pjsip-udp-invite-unknown-user', attacker: '192.0.2.16', eventsPerAttempt: 1 },
  { capture: 'ami-wrong-secret', attacker: '192.0.2.17', eventsPerAttempt: 1 },
  { capture: 'ami-unknown-user', attacker: '192.0.2.18', eventsPerAttempt: 1 },
  { capture: 'ami-acl-denied', attacker: '192.0.2.19', eventsPerAttempt: 1 },
  { capture: 'ami-md5-wrong-key', attacker: '192.0.2.30', eventsPerAttempt: 1 },
];

for (const c of CASES) {
  test(`${c.capture}: banned at the 5th attempt, with a new Call-ID per attempt or one reused`, () => {
    const attempts = attemptsOf(eventsFrom(loadCapture(c.capture), c.attacker));
    assert.ok(attempts.length >= 2, 'the capture has at least two attempts');
    const failures = attempts[0]!.filter((f) => f.frame.get('Severity') !== 'Informational').length;
    assert.equal(failures, c.eventsPerAttempt, 'failure events per attempt, as Asterisk 22 sends them');
    const spacing = attempts[1]![0]!.at - attempts[0]![0]!.at;
    const pjsip = attempts[0]![0]!.frame.get('Service') === 'PJSIP';
    const fresh = makeGuardian();
    assert.equal(
      replayAttempts(fresh, attempts[0]!, 10, spacing, (i) => (pjsip ? `attempt-${i}-callid` : null)),
      5,
    );
    const ban = fresh.guardian.listBans()[0]!;
    assert.ok(ban.reason.startsWith('5 × '), ban.reason);
    // the attacker chooses the Call-ID: one for every attempt must not make him slower to ban
    const reused = makeGuardian();
    assert.equal(
      replayAttempts(reused, attempts[0]!, 10, spacing, () => (pjsip ? 'same-callid-always' : null)),
      5,
    );
    // and bursts (no pause between attempts) neither
    const burst = makeGuardian();
    const span = attempts[0]!.at(-1)!.at - attempts[0]![0]!.at + 1;
    assert.equal(
      replayAttempts(burst, attempts[0]!, 10, span, () => (pjsip ? 'same-callid-always' : null)),
      5,
    );
  });
}

test('the unknown-user and ACL captures as recorded: 2 and 3 attempts are counted as 2 and 3, not 6 and 9', () => {
  for (const [capture, attacker, attempts] of [
    ['pjsip-udp-unknown-user', '192.0.2.12', 2],
    ['pjsip-udp-acl-denied', '192.0.2.21', 3],
  ] as const) {
    const g = makeGuardian();
    for (const f of loadCapture(capture)) {
      g.clock.now = f.at;
      g.guardian.handleEvent(f.frame, f.at);
    }
    assert.equal(g.guardian.listBans().length, 0, `${capture}: ${attempts} attempts are not a ban`);
    assert.equal(g.guardian.status().totalFailed, attempts, `${capture}: failures counted`);
    void attacker;
  }
});

test('a scanner collecting challenges at 24/min (ChallengeSent alone) is banned by challenge-flood', () => {
  const frames = eventsFrom(loadCapture('pjsip-udp-invite-noauth-known'), '192.0.2.15');
  const challenge = frames.find((f) => f.frame.get('Event') === 'ChallengeSent')!;
  const g = makeGuardian();
  const at = replayAttempts(g, [challenge], 24 * 60, 2500, (i) => `scan-${i}`);
  assert.equal(at, 40, 'banned at the 40th challenge (~100 s)');
  assert.equal(g.guardian.listBans()[0]!.rule, 'challenge-flood');
  assert.equal(g.guardian.listBans()[0]!.target, '192.0.2.15');
});

test('legit-phones.raw (3 phones × 40 REGISTERs in 10 s) as recorded: nothing counted, nothing banned', () => {
  const g = makeGuardian();
  for (const f of loadCapture('legit-phones')) {
    g.clock.now = f.at;
    g.guardian.handleEvent(f.frame, f.at);
  }
  assert.equal(g.guardian.listBans().length, 0);
  assert.equal(g.guardian.status().totalFailed, 0);
});

test('a phone re-registering every 60 s for 24 h (challenged, then authenticated) is never banned', () => {
  const frames = eventsFrom(loadCapture('legit-phones'), '198.51.100.50');
  const i = frames.findIndex((f) => f.frame.get('Event') === 'ChallengeSent');
  const pair = frames.slice(i, i + 2);
  assert.deepEqual(
    pair.map((f) => f.frame.get('Event')),
    ['ChallengeSent', 'SuccessfulAuth'],
  );
  const g = makeGuardian();
  assert.equal(
    replayAttempts(g, pair, 24 * 60, 60_000, (n) => `register-${n}`),
    null,
  );
  // the same phone making a call every 2 s (each INVITE challenged then authenticated): never banned
  const calls = makeGuardian();
  assert.equal(
    replayAttempts(calls, pair, 5000, 2000, (n) => `invite-${n}`),
    null,
  );
});

/** An Asterisk security event of a class the captures do not hold, in the captured frames' form. */
function limitEvent(event: string, address: string, callId: string): ReturnType<typeof parseFrame> {
  return parseFrame(
    [
      `Event: ${event}`,
      'Privilege: security,all',
      'EventTV: 2026-12-02T06:00:00.000+0000',
      'Severity: Error',
      'Service: PJSIP',
      'EventVersion: 1',
      'AccountID: 100',
      `SessionID: ${callId}`,
      'LocalAddress: IPV4/UDP/192.0.2.1/5060',
      `RemoteAddress: IPV4/UDP/${address}/5060`,
    ].join('\r\n'),
  );
}

test('SessionLimit, MemoryLimit and LoadAverageLimit: a flood from one source is banned, phones during an overload are not', () => {
  for (const [event, rule, flood, spacing] of [
    ['SessionLimit', 'session-limit', 10, 1000],
    ['MemoryLimit', 'overload-flood', 60, 100],
    ['LoadAverageLimit', 'overload-flood', 60, 100],
  ] as const) {
    const g = makeGuardian();
    let t = g.clock.now;
    for (let i = 1; i <= flood; i++) {
      t += spacing;
      g.clock.now = t;
      g.guardian.handleEvent(limitEvent(event, '192.0.2.40', `flood-${i}`), t);
      assert.equal(g.guardian.listBans().length, i < flood ? 0 : 1, `${event}: ${i} refusals`);
    }
    assert.equal(g.guardian.listBans()[0]!.rule, rule);
  }
  // an overloaded PBX refuses 200 phones (one NAT address each) re-registering every 60 s for an hour
  const g = makeGuardian();
  let t = g.clock.now;
  for (let minute = 0; minute < 60; minute++) {
    for (let p = 0; p < 200; p++) {
      t += 300;
      g.clock.now = t;
      g.guardian.handleEvent(limitEvent(minute % 2 ? 'LoadAverageLimit' : 'MemoryLimit', `198.51.100.${p + 1}`, `reg-${minute}-${p}`), t);
    }
  }
  assert.equal(g.guardian.listBans().length, 0);
});
