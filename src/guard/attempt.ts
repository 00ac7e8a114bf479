/**
 * One PJSIP attempt gives several failure events (measured on Asterisk 22, see docs/detection.md):
 * an unknown user is InvalidAccountID on both requests of the attempt and then a
 * ChallengeResponseFailed, an ACL refusal FailedACL twice and a ChallengeResponseFailed. Counting
 * events would make "5 failures" mean 2 attempts, so PJSIP failure events of one attempt are
 * merged: same attacker key, same SessionID (the SIP Call-ID), close together.
 *
 * The attacker chooses the Call-ID, so the merge is bounded to what one attempt produces:
 *  - at most MAX_EVENTS failure events per attempt, all within WITHIN_MS of its first event;
 *  - a ChallengeResponseFailed (the verdict on the credential sent) is the last event of an
 *    attempt: the next failure opens a new one, so every refused password is an attempt of its own;
 *  - a second ChallengeSent in the same Call-ID is a new request: it opens a new attempt.
 *  - a failure after the attempt's challenge is the second request's (unknown user, ACL) or a
 *    new no-credential probe's (InvalidAccountID + ChallengeSent again): it is deferred until the
 *    key's next event tells which (placeEvent).
 * Hence for any SessionID pattern, F failure events of which V are ChallengeResponseFailed count
 * at least max(V, ceil((F - 1) / MAX_EVENTS)) times, the 1 being a deferred failure that waits for
 * the attacker's next event, and N attempts as Asterisk 22 produces them count N
 * (test/fuzz-attempts.test.ts). Other services (AMI, chan_sip, IAX2) give one event per attempt
 * and are counted per event.
 *
 * State per key is one small number array [sessionHash, startMs, flags], kept in the detector's
 * per-key array (no Map per key): the hash bounds it whatever the SessionID's length, and a hash
 * collision only merges what the same SessionID could have merged anyway (the bound holds).
 */

export const ATTEMPT_WITHIN_MS = 2000;
export const ATTEMPT_MAX_EVENTS = 3;
/** only the first this-many characters of a SessionID are hashed (bounded work per event) */
const HASHED_CHARS = 64;

const COUNT_MASK = 3;
const VERDICT = 4;
const CHALLENGE = 8;
const PENDING = 16;

/** [sessionHash, startMs, flags, pendingRules, pendingAt]: flags = failures in the attempt
 *  (2 bits) | VERDICT | CHALLENGE | PENDING; pendingRules: the caller's mask of the deferred
 *  event's rules; pendingAt: its time */
export type AttemptState = number[];

/** true for the events whose failures of one attempt are merged */
export function mergesAttempts(service: string | undefined): boolean {
  return service === 'PJSIP';
}

function hashSession(s: string): number {
  let h = 0x811c9dc5 ^ s.length;
  const n = Math.min(s.length, HASHED_CHARS);
  for (let i = 0; i < n; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}

export type Outcome = 'count' | 'absorb' | 'defer';

export interface Placement {
  /** the array given (updated in place) or a new one */
  state: AttemptState;
  /** count: a new attempt (or its first failure); absorb: part of an attempt already counted;
   *  defer: undecided until the key's next event (the caller keeps `pending` for it) */
  outcome: Outcome;
  /** the deferred event's rules (the caller's mask) to count now, or 0 */
  release: number;
  /** 1 when the deferred event is absorbed now (with this verdict) */
  dropped?: number;
}

/**
 * Places one event in the key's current attempt. Non-failures (ChallengeSent) are never absorbed;
 * they only mark a new request. A failure after the attempt's challenge (the second request's
 * InvalidAccountID or FailedACL) is deferred: the key's next event decides. A ChallengeResponseFailed
 * in the same Call-ID makes it part of this attempt (dropped); anything else (a new challenge: a
 * no-credential probe, another Call-ID, time out) releases it, to be counted then. `canDefer`
 * false (the caller cannot hold it) absorbs it instead.
 */
export function placeEvent(
  state: AttemptState | undefined,
  sessionId: string | undefined,
  isFailure: boolean,
  isVerdict: boolean,
  now: number,
  canDefer = true,
): Placement {
  const h = sessionId ? hashSession(sessionId) : 0;
  const within = (st: AttemptState): boolean => !!sessionId && st[0] === h && now >= st[1]! && now - st[1]! <= ATTEMPT_WITHIN_MS;
  let same = state !== undefined && within(state);
  let flags = same ? state![2]! : 0;
  let release = 0;
  if (state !== undefined && (state[2]! & PENDING) !== 0) {
    if (same && isVerdict) {
      // the deferred failure was this attempt's second request: it and this verdict are absorbed
      state[2] = (flags & ~PENDING) | VERDICT;
      state[3] = 0;
      return { state, outcome: 'absorb', release: 0, dropped: 1 };
    }
    release = state[3]!;
    // the released failure opened a new request (and attempt) of its own, at its own time
    state[1] = state[4]!;
    state[2] = 1;
    state[3] = 0;
    same = within(state);
    flags = same ? 1 : 0;
  }
  if (!isFailure) {
    if (same && (flags & CHALLENGE) === 0) {
      state![2] = flags | CHALLENGE;
      return { state: state!, outcome: 'count', release };
    }
    return { state: reset(state, h, now, CHALLENGE), outcome: 'count', release };
  }
  const count = flags & COUNT_MASK;
  const verdict = isVerdict ? VERDICT : 0;
  if (same && count > 0 && count < ATTEMPT_MAX_EVENTS && (flags & VERDICT) === 0) {
    const defer = canDefer && !isVerdict && (flags & CHALLENGE) !== 0;
    state![2] = (flags & ~COUNT_MASK) | (count + 1) | verdict | (defer ? PENDING : 0);
    if (defer) state![4] = now;
    return { state: state!, outcome: defer ? 'defer' : 'absorb', release };
  }
  if (same && count === 0) {
    // the attempt was opened by its challenge: this is its first failure
    state![2] = flags | 1 | verdict;
    return { state: state!, outcome: 'count', release };
  }
  return { state: reset(state, h, now, 1 | verdict), outcome: 'count', release };
}

function reset(state: AttemptState | undefined, h: number, now: number, flags: number): AttemptState {
  if (!state) return [h, now, flags, 0, 0];
  state[0] = h;
  state[1] = now;
  state[2] = flags;
  state[3] = 0;
  return state;
}
