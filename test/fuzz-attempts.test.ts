/**
 * The attempt merge (src/guard/attempt.ts) against an attacker who chooses every SessionID (the
 * SIP Call-ID) and every pause: no pattern makes his failures count less than
 * max(ChallengeResponseFailed, ceil((failure events - 1) / 3)), nor N real attempts (Asterisk 22's
 * shapes, no-credential probes included) less than N.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Detector, type EventView } from '../src/guard/index.js';
import { compileRule } from '../src/guard/rules.js';
import { parseNetwork } from '../src/net/ip.js';
import { ATTEMPT_MAX_EVENTS, ATTEMPT_WITHIN_MS } from '../src/guard/attempt.js';

/** xorshift32: the same cases every run, a seed in the failure message */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

const SEVERITY: Record<string, string> = { ChallengeSent: 'Informational', ChallengeResponseFailed: 'Error', InvalidAccountID: 'Error', FailedACL: 'Error' };
const NAMES = Object.keys(SEVERITY);

function view(event: string, session: string, service = 'PJSIP'): EventView {
  const f: Record<string, string> = {
    Event: event,
    Severity: SEVERITY[event]!,
    Service: service,
    SessionID: session,
    RemoteAddress: 'IPV4/UDP/192.0.2.50/5060',
  };
  return { get: (k) => f[k] };
}

function detector(): Detector {
  // one rule over every event, windows never crossed: what is counted is what we look at
  const rule = compileRule({ name: 'all', events: NAMES, windows: [{ count: 10_000, within: '1h' }], ban: '1h' }, 'fuzz');
  return new Detector([rule], { ipv6Prefix: 64, maxTracked: 1000, trackTtlMs: 86_400_000 });
}

const key = parseNetwork('192.0.2.50')!;
/** pauses inside one attempt (a round trip): an attempt of 4 events stays within ATTEMPT_WITHIN_MS */
const INSIDE = [0, 1, 3, 300, 600];
const GAPS = [0, 1, 3, ATTEMPT_WITHIN_MS - 1, ATTEMPT_WITHIN_MS, ATTEMPT_WITHIN_MS + 1, 300, 5000];

/** Asterisk 22's PJSIP attempts (test/fixtures/ami-asterisk22-pjsip), each ending in a refused
 *  credential. (A bare authenticated request, [InvalidAccountID, ChallengeResponseFailed], right
 *  after a probe in the same Call-ID is exactly the unknown-user attempt: it is one attempt there,
 *  so it is not a shape of its own here; the first test bounds it.) */
const SHAPES: string[][] = [
  ['ChallengeSent', 'ChallengeResponseFailed'], // wrong password
  ['InvalidAccountID', 'ChallengeSent', 'InvalidAccountID', 'ChallengeResponseFailed'], // unknown user
  ['FailedACL', 'ChallengeSent', 'FailedACL', 'ChallengeResponseFailed'], // ACL refusal
];
/** no-credential probes (pjsip-udp-invite-unknown-user): no refused credential, counted too; a
 *  probe's failure waits for the next event, so the runs below end with a full attempt */
const PROBES: string[][] = [
  ['InvalidAccountID', 'ChallengeSent'],
  ['FailedACL', 'ChallengeSent'],
];

test('any event order, SessionID and pause: counted >= max(refused credentials, failure events / 3), <= failure events', () => {
  for (let seed = 1; seed <= 3000; seed++) {
    const rnd = prng(seed);
    const d = detector();
    const pool = Array.from({ length: 1 + Math.floor(rnd() * 3) }, (_, i) => `cid-${i}`);
    let now = 1_796_190_000_000;
    let failures = 0;
    let verdicts = 0;
    const n = 1 + Math.floor(rnd() * 60);
    for (let i = 0; i < n; i++) {
      const name = NAMES[Math.floor(rnd() * NAMES.length)]!;
      now += rnd() < 0.5 ? GAPS[Math.floor(rnd() * GAPS.length)]! : Math.floor(rnd() * 4000);
      const session = rnd() < 0.1 ? '' : pool[Math.floor(rnd() * pool.length)]!;
      d.observe(name, view(name, session), key, '192.0.2.50', now);
      if (SEVERITY[name] !== 'Informational') failures++;
      if (name === 'ChallengeResponseFailed') verdicts++;
    }
    const counted = d.totalFailures;
    // at most one failure waits for the attacker's next event (deferred, attempt.ts)
    const waiting = failures - counted - d.mergedEvents;
    assert.ok(waiting === 0 || waiting === 1, `seed ${seed}: ${waiting} failure events neither counted nor merged`);
    const floor = Math.max(verdicts, Math.ceil((failures - 1) / ATTEMPT_MAX_EVENTS));
    assert.ok(counted >= floor, `seed ${seed}: ${counted} counted for ${failures} failure events, ${verdicts} refused credentials (floor ${floor})`);
    assert.ok(counted <= failures, `seed ${seed}: ${counted} counted for ${failures} failure events`);
  }
});

test('N real attempts (Asterisk 22 shapes) under any Call-ID pattern and pace count N', () => {
  for (let seed = 1; seed <= 3000; seed++) {
    const rnd = prng(seed * 7919);
    const d = detector();
    const mode = seed % 3; // 0: one Call-ID for everything, 1: a fresh one per attempt, 2: a small pool
    let now = 1_796_190_000_000;
    const n = 1 + Math.floor(rnd() * 30);
    for (let a = 0; a < n; a++) {
      const all = a === n - 1 ? SHAPES : [...SHAPES, ...PROBES];
      const shape = all[Math.floor(rnd() * all.length)]!;
      const session = mode === 0 ? 'same' : mode === 1 ? `a-${a}` : `p-${Math.floor(rnd() * 2)}`;
      for (const name of shape) {
        now += INSIDE[Math.floor(rnd() * INSIDE.length)]!;
        d.observe(name, view(name, session), key, '192.0.2.50', now);
      }
      now += GAPS[Math.floor(rnd() * GAPS.length)]!;
    }
    assert.equal(d.totalFailures, n, `seed ${seed} (mode ${mode}): ${n} attempts counted ${d.totalFailures}`);
  }
});

test('AMI and other services: every failure event is an attempt, whatever the SessionID', () => {
  const d = detector();
  for (let i = 0; i < 50; i++) d.observe('InvalidAccountID', view('InvalidAccountID', '0x7f1859418460', 'AMI'), key, '192.0.2.50', 1_796_190_000_000 + i);
  assert.equal(d.totalFailures, 50);
  assert.equal(d.mergedEvents, 0);
});
