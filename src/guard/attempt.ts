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
 * Hence for any SessionID pattern, F failure events of which V are ChallengeResponseFailed count
 * at least max(V, ceil(F / MAX_EVENTS)) times (test/fuzz-attempts.test.ts). The one case the
 * merge can under-count is a no-credential probe (InvalidAccountID + ChallengeSent) right after
 * another in one Call-ID: its InvalidAccountID looks like the second request of an unknown-user
 * attempt. Such probes carry no guess, and each is still a ChallengeSent counted, unmerged, by
 * challenge-flood. Other services (AMI, chan_sip, IAX2) give one event per attempt and are
 * counted per event.
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

/** [sessionHash, startMs, flags]: flags = failures in the attempt (2 bits) | VERDICT | CHALLENGE */
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

/**
 * Places one event in the key's current attempt. Returns the new state (the array given, updated
 * in place, or a new one) and whether the event is absorbed: a failure that belongs to an attempt
 * already counted. Non-failures (ChallengeSent) are never absorbed; they only mark a new request.
 */
export function placeEvent(
  state: AttemptState | undefined,
  sessionId: string | undefined,
  isFailure: boolean,
  isVerdict: boolean,
  now: number,
): { state: AttemptState; absorbed: boolean } {
  const h = sessionId ? hashSession(sessionId) : 0;
  const same = state !== undefined && !!sessionId && state[0] === h && now >= state[1]! && now - state[1]! <= ATTEMPT_WITHIN_MS;
  const flags = same ? state[2]! : 0;
  if (!isFailure) {
    if (same && (flags & CHALLENGE) === 0) {
      state[2] = flags | CHALLENGE;
      return { state, absorbed: false };
    }
    return { state: reset(state, h, now, CHALLENGE), absorbed: false };
  }
  const count = flags & COUNT_MASK;
  const verdict = isVerdict ? VERDICT : 0;
  if (same && count > 0 && count < ATTEMPT_MAX_EVENTS && (flags & VERDICT) === 0) {
    state[2] = (flags & ~COUNT_MASK) | (count + 1) | verdict;
    return { state, absorbed: true };
  }
  if (same && count === 0) {
    // the attempt was opened by its challenge: this is its first failure
    state[2] = flags | 1 | verdict;
    return { state, absorbed: false };
  }
  return { state: reset(state, h, now, 1 | verdict), absorbed: false };
}

function reset(state: AttemptState | undefined, h: number, now: number, flags: number): AttemptState {
  if (!state) return [h, now, flags];
  state[0] = h;
  state[1] = now;
  state[2] = flags;
  return state;
}
