/**
 * Most tracked keys are scanners seen once: state [count, rule, [0, t]] (detector.ts). As two
 * arrays that is ~104 bytes per key; packed in one double it is one 16-byte HeapNumber.
 * Layout: t * 512 + rule * 8 + count, with count < 8, rule < 64 and 0 <= t < 2^43 ms (year
 * 2248), so the value stays below 2^52 and every part is exact.
 */
type KeyState = Array<number | number[] | undefined>;

const COUNT_SPAN = 8;
const RULE_SPAN = 64;
const TIME_LIMIT = 2 ** 43;

/** The number a state packs into, or undefined when it has more than one rule, hit or attempt. */
export function pack(st: KeyState): number | undefined {
  if (st.length !== 3) return undefined;
  const count = st[0] as number;
  const rule = st[1] as number;
  const ring = st[2];
  if (!Array.isArray(ring) || ring.length !== 2 || ring[0] !== 0) return undefined;
  return packHit(ring[1]!, rule, count);
}

/** The number for one hit at `t` of rule `rule` with `count` failures, or undefined. */
export function packHit(t: number, rule: number, count: number): number | undefined {
  if (!(rule >= 0 && rule < RULE_SPAN && Number.isInteger(rule))) return undefined;
  if (!(count >= 0 && count < COUNT_SPAN && Number.isInteger(count))) return undefined;
  if (!(t >= 0 && t < TIME_LIMIT && Number.isInteger(t))) return undefined;
  return (t * RULE_SPAN + rule) * COUNT_SPAN + count;
}

/** A fresh state array for a packed number (the caller may change it). */
export function unpack(v: number): KeyState {
  const count = v % COUNT_SPAN;
  const rest = (v - count) / COUNT_SPAN;
  const rule = rest % RULE_SPAN;
  return [count, rule, [0, (rest - rule) / RULE_SPAN]];
}
