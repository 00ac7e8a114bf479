import type { Rule } from './rules.js';
import { attackerKey, formatNetwork, parseNetwork, type IpNetwork } from '../net/ip.js';
import { mergesAttempts, placeEvent, type AttemptState, type Outcome } from './attempt.js';
import type { EventView } from './observation.js';
import { pack, packHit, unpack } from './packed.js';
import { KeyTable, keyOfNetwork, newKey, TEXT_KIND, type TableKey } from './key-table.js';
import { encodedSize, StatePool } from './state-pool.js';

export type { EventView } from './observation.js';

export interface DetectorOptions {
  /** IPv6 attackers are counted and banned by this prefix (default 64) */
  ipv6Prefix: number;
  /** tracked attacker keys at most (LRU) */
  maxTracked: number;
  /** forget an attacker key not seen for this long */
  trackTtlMs: number;
}

/** A rule window crossed by an attacker key. */
export interface Detection {
  /** the network counted and banned: the address (IPv4) or its prefix (IPv6) */
  key: IpNetwork;
  keyText: string;
  rule: Rule;
  /** failures inside the crossed window */
  count: number;
  windowMs: number;
}

/**
 * Per attacker key, one compact array (this is what 1M tracked addresses cost, so it is small):
 * slot 0 holds the failures counted, then (tag, value) pairs for what the key has been seen by:
 * tag = a rule's index → that rule's hit ring (undefined after a reset), tag ATTEMPT_TAG → its
 * current attempt (src/guard/attempt.ts, PJSIP only). Most keys hit one rule: [n, rule, ring] is
 * 3 slots, where a slot per rule cost one per rule loaded (measured: 24 MB more at 1M keys with
 * 2 rules and the attempt added). Pairs are added with concat (exact size; see pushHit).
 * A ring is `[next, t1, t2, ...]`: it grows one time per hit up to the rule's largest window
 * count, then `next` says which slot the next hit overwrites. Most scanners send a handful of
 * events, so most rings stay short. Most keys are seen once: [count, rule, [0, t]] is kept in the
 * table as one packed number instead (packed.ts; measured: heap 247 -> 133 MB at 1M IPv4 keys),
 * and the table keys an address by its words, not its text (key-table.ts).
 */
type KeyState = Array<number | number[] | undefined>;
/** What the table holds per key: the commonest state packed in a number >= 0 (packed.ts), the
 *  handle h of a pooled one as -(h + 1) (state-pool.ts), or the arrays of one too large for both. */
type Stored = KeyState | number;

type Ring = number[];
const ATTEMPT_TAG = -1;
/** never written: pushHit grows a ring by concat, and a new key's array is replaced by the concat
 *  that adds its first pair before anything is written to it */
const EMPTY_RING: Ring = [0];
const FRESH_STATE: KeyState = [0];
/** a deferred event's rules are kept as a bit mask in one number: rule sets larger than this
 *  absorb instead of deferring (attempt.ts) */
const MAX_MASK_RULES = 52;
const POW2 = Array.from({ length: MAX_MASK_RULES }, (_, i) => 2 ** i);
/** bit `i` of a mask kept in a double (bitwise operators stop at 32 bits) */
const hasBit = (mask: number, i: number): boolean => Math.floor(mask / (POW2[i] ?? 2 ** i)) % 2 === 1;

/** Index of the value tagged `tag` in a key's array, or -1 (a handful of pairs: a short walk). */
function slotOf(st: KeyState, tag: number): number {
  for (let i = 1; i < st.length; i += 2) if (st[i] === tag) return i + 1;
  return -1;
}

/** Adds a hit; returns the ring, which is a new array while it grows (exact-size arrays: a
 *  `push` would reserve 16 spare slots, which at 1M keys is ~270 MB of nothing). */
function pushHit(ring: Ring, size: number, now: number): Ring {
  if (ring.length - 1 < size) return ring.concat(now);
  ring[1 + ring[0]!] = now;
  ring[0] = (ring[0]! + 1) % size;
  return ring;
}

/** Time of the nth most recent hit (n >= 1), or undefined when there are fewer hits. */
function nthRecent(ring: Ring, size: number, n: number): number | undefined {
  const filled = ring.length - 1;
  if (filled < n) return undefined;
  if (filled < size) return ring[filled - n + 1];
  return ring[1 + ((ring[0]! - n + size) % size)];
}

/**
 * Counts failures per attacker key and rule in exact sliding windows. Memory per key is bounded
 * by the rules' largest window counts, and the number of keys by an LRU with a TTL.
 */
export class Detector {
  private readonly byEvent = new Map<string, Array<{ rule: Rule; index: number }>>();
  private readonly resetBy = new Map<string, number[]>();
  private readonly state: KeyTable<KeyState>;
  private readonly pool = new StatePool((id, handle) => this.state.write(id, -(handle + 1)));
  /** the key being looked up (one object reused: the hot path allocates none) */
  private readonly k: TableKey = newKey();
  /** failures counted since start (status: "total failed"): attempts, see attempt.ts */
  totalFailures = 0;
  /** failure events merged into an attempt already counted (attempt.ts) */
  mergedEvents = 0;
  /** the key's array while one event is counted (it is replaced when a pair is added) */
  private cur: KeyState = FRESH_STATE;

  constructor(
    private readonly rules: Rule[],
    private readonly options: DetectorOptions,
  ) {
    rules.forEach((rule, index) => {
      for (const ev of rule.events) {
        const list = this.byEvent.get(ev) ?? [];
        list.push({ rule, index });
        this.byEvent.set(ev, list);
      }
      for (const ev of rule.resetOn) {
        const list = this.resetBy.get(ev) ?? [];
        list.push(index);
        this.resetBy.set(ev, list);
      }
    });
    this.state = new KeyTable<KeyState>({
      max: options.maxTracked,
      ttlMs: options.trackTtlMs,
      onRemove: (v) => {
        if (v < 0) this.pool.free(-v - 1);
      },
    });
  }

  /** true when some rule counts or resets on this event name (cheap pre-filter for the hot path) */
  watches(eventName: string): boolean {
    return this.byEvent.has(eventName) || this.resetBy.has(eventName);
  }

  /** The key an address is counted under. */
  keyOf(address: IpNetwork): IpNetwork {
    return attackerKey(address, this.options.ipv6Prefix);
  }

  /**
   * Counts one event from attacker `key` (see keyOf; `keyText` is its canonical text) at `now` (ms). Returns the first window crossed, if any.
   * The caller has already dropped allow-listed and already-banned addresses.
   */
  observe(eventName: string, event: EventView, key: IpNetwork, keyText: string, now: number): Detection | null {
    const resets = this.resetBy.get(eventName);
    const candidates = this.byEvent.get(eventName);
    if (!resets && !candidates) return null;
    const k = keyOfNetwork(this.k, key, keyText);
    const id = this.state.find(k);
    if (resets && id >= 0) {
      const peeked = this.state.value(id);
      const st = this.load(peeked);
      let reset = false;
      for (const i of resets) {
        if (!fromSource(this.rules[i]!, event)) continue;
        const at = slotOf(st, i);
        if (at > 0) {
          st[at] = undefined;
          reset = true;
        }
      }
      // in place: a reset is not a use (the key's age and LRU place stay)
      if (reset && typeof peeked === 'number') this.save(id, st, peeked);
    }
    if (!candidates) return null;
    let mask = 0;
    let matched = 0;
    let only = -1;
    for (const { rule, index } of candidates)
      if (!hasBit(mask, index) && matches(rule, event)) {
        mask += POW2[index] ?? 2 ** index;
        matched++;
        only = index;
      }
    if (mask === 0) return null;
    if (id >= 0) this.state.touch(id);
    const stored = id >= 0 ? this.state.value(id) : undefined;
    // ChallengeSent is counted by its flood rule but is not itself a failure (status, metrics).
    const isFailure = event.get('Severity') !== 'Informational';
    if (stored === undefined && matched === 1 && !mergesAttempts(event.get('Service'))) {
      const first = this.firstHit(only, isFailure, key, keyText, now);
      if (first !== undefined) return first;
    }
    this.cur = stored === undefined ? FRESH_STATE : this.load(stored);
    let found: Detection | null = null;
    let outcome: Outcome = 'count';
    if (mergesAttempts(event.get('Service'))) {
      const at = slotOf(this.cur, ATTEMPT_TAG);
      const placed = placeEvent(
        at > 0 ? (this.cur[at] as AttemptState) : undefined,
        event.get('SessionID'),
        isFailure,
        eventName === 'ChallengeResponseFailed',
        now,
        this.rules.length <= MAX_MASK_RULES,
      );
      if (at < 0) this.cur = this.cur === FRESH_STATE ? [0, ATTEMPT_TAG, placed.state] : this.cur.concat(ATTEMPT_TAG, [placed.state]);
      if (placed.release !== 0) found = this.countRules(placed.release, true, key, keyText, now);
      outcome = placed.outcome;
      if (outcome === 'defer') placed.state[3] = mask;
      else if (outcome === 'absorb') this.mergedEvents += 1 + (placed.dropped ?? 0);
    }
    if (!found && outcome === 'count') found = this.countRules(mask, isFailure, key, keyText, now);
    this.save(id, this.cur, stored);
    return found;
  }

  /** The state arrays of a stored value (fresh ones for a packed or pooled value). */
  private load(stored: Stored): KeyState {
    if (typeof stored !== 'number') return stored;
    return stored >= 0 ? unpack(stored) : this.pool.load(-stored - 1);
  }

  /** Keeps `st` as the state of entry `id` (or inserts this.k when id < 0) in its most compact
   *  form; `stored` is what the entry held (its pool block is reused or freed). */
  private save(id: number, st: KeyState, stored: Stored | undefined): void {
    const old = typeof stored === 'number' && stored < 0 ? -stored - 1 : undefined;
    let next: Stored | undefined = pack(st);
    const size = next === undefined ? encodedSize(st) : 0;
    if (size > 0) {
      // the block's owner is the entry: a new key is inserted first (a placeholder value)
      if (id < 0) id = this.state.insert(this.k, 0);
      next = -(this.pool.store(st, size, old, id) + 1);
    } else {
      if (old !== undefined) this.pool.free(old);
      next ??= st;
    }
    if (next === stored) return;
    if (id >= 0) this.state.write(id, next);
    else this.state.insert(this.k, next);
  }

  /** A new key's one hit of one rule, stored packed without building its arrays (most scanners'
   *  only event: the hot path); what countRules would do. undefined when it does not pack. */
  private firstHit(index: number, isFailure: boolean, key: IpNetwork, keyText: string, now: number): Detection | null | undefined {
    const rule = this.rules[index]!;
    const packed = rule.weight === 1 ? packHit(now, index, isFailure ? 1 : 0) : undefined;
    if (packed === undefined) return undefined;
    this.state.insert(this.k, packed);
    if (isFailure) this.totalFailures += 1;
    // one hit is inside every window of count 1 (withinMs > 0)
    for (const window of rule.windows) if (window.count === 1) return { key, keyText, rule, count: 1, windowMs: window.withinMs };
    return null;
  }

  /** Counts one hit in each rule of `mask` (bit = rule index) on the key's array (this.cur);
   *  returns the first window crossed. */
  private countRules(mask: number, isFailure: boolean, key: IpNetwork, keyText: string, now: number): Detection | null {
    for (let index = 0; index < this.rules.length; index++) {
      if (!hasBit(mask, index)) continue;
      const rule = this.rules[index]!;
      let st = this.cur;
      const at = slotOf(st, index);
      let ring = (at > 0 ? (st[at] as Ring | undefined) : undefined) ?? EMPTY_RING;
      for (let w = 0; w < rule.weight; w++) ring = pushHit(ring, rule.ringSize, now);
      if (at > 0) st[at] = ring;
      else this.cur = st = st === FRESH_STATE ? [0, index, ring] : st.concat(index, [ring]);
      // after the concat: a new key's array is the shared FRESH_STATE until then
      if (isFailure) {
        this.totalFailures += rule.weight;
        st[0] = (st[0] as number) + rule.weight;
      }
      for (const window of rule.windows) {
        const nth = nthRecent(ring, rule.ringSize, window.count);
        if (nth !== undefined && now - nth < window.withinMs) return { key, keyText, rule, count: window.count, windowMs: window.withinMs };
      }
    }
    return null;
  }

  /** Forget everything counted for a key (after it is banned, or unbanned by hand). */
  forget(keyText: string): void {
    this.state.delete(this.keyFromText(keyText));
  }

  /** States kept in the pool now (tests: each key holds one block at most, freed with it). */
  get pooledStates(): number {
    return this.pool.blocks;
  }

  /** Keys with failures counted now (status: "currently failed"; expired ones are dropped as
   *  they are met, so a few may still be counted). */
  get trackedCount(): number {
    return this.state.size;
  }

  /** The table key of a key's text (a network's canonical text, as observe is given it). */
  private keyFromText(keyText: string): TableKey {
    const net = parseNetwork(keyText);
    if (net) return keyOfNetwork(this.k, net, formatNetwork(net));
    this.k.kind = TEXT_KIND;
    this.k.text = keyText;
    return this.k;
  }

  /** The stored state of a key, without touching its age (`why`, status). */
  private peek(keyText: string): Stored | undefined {
    const id = this.state.find(this.keyFromText(keyText));
    return id >= 0 ? this.state.value(id) : undefined;
  }

  /** The hit times each rule keeps for a key now (newest last; a rule never hit or reset is
   *  left out): `pbx-guardian why`. A read: the key's age in the table is not touched. */
  hitsOf(keyText: string): Array<{ rule: Rule; times: number[] }> {
    const peeked = this.peek(keyText);
    if (peeked === undefined) return [];
    const st = this.load(peeked);
    const out: Array<{ rule: Rule; times: number[] }> = [];
    this.rules.forEach((rule, index) => {
      const at = slotOf(st, index);
      const ring = at > 0 ? (st[at] as Ring | undefined) : undefined;
      if (!ring || ring.length < 2) return;
      const times: number[] = [];
      for (let n = Math.min(ring.length - 1, rule.ringSize); n >= 1; n--) times.push(nthRecent(ring, rule.ringSize, n)!);
      out.push({ rule, times });
    });
    return out;
  }

  /** Failures counted for a key, for status and tests. */
  failuresOf(keyText: string): number {
    const peeked = this.peek(keyText);
    if (peeked === undefined) return 0;
    return (this.load(peeked)[0] as number | undefined) ?? 0;
  }

  get ruleList(): readonly Rule[] {
    return this.rules;
  }
}

function fromSource(rule: Rule, event: EventView): boolean {
  return rule.sources === null || (event.source !== undefined && rule.sources.has(event.source));
}

function matches(rule: Rule, event: EventView): boolean {
  if (rule.sources !== null && !fromSource(rule, event)) return false;
  for (const [field, accepted] of rule.match) {
    const value = event.get(field);
    if (value === undefined || !accepted.has(value.toLowerCase())) return false;
  }
  return true;
}
