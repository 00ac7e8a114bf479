/**
 * `pbx-guardian why ADDRESS`, the guard's part: is it allowed (by which entry), never banned (the
 * scope), banned (by which ban), what is counted against it per rule and window now, and what its
 * next failure would do. Read-only: nothing here counts, bans or touches the LRU's order.
 */
import { formatNetwork, type IpNetwork } from '../net/ip.js';
import type { AllowList } from './allow.js';
import { ruleBan } from './ban-judge.js';
import type { Detector } from './detector.js';
import { coveringBans, type BanMatch } from './lookup.js';
import type { BanScope } from './scope.js';
import type { BanRecord } from './types.js';

export interface WindowCount {
  /** the window's count and length */
  count: number;
  withinMs: number;
  /** failures inside it now */
  hits: number;
}

export interface RuleCount {
  rule: string;
  events: string[];
  windows: WindowCount[];
}

/** What the next failure counted by `rule` would do. */
export interface NextFailure {
  rule: string;
  /** 'ban': a window is crossed; 'count': counted, no window crossed yet */
  outcome: 'ban' | 'count';
  /** the window it crosses (ban), or the one closest to crossing (count): hits after it */
  window: WindowCount;
  /** the ban it would give (ban): target, duration (null: permanent), its rule and reason
   *  (escalation and recidive included) */
  ban?: { target: string; durationSec: number | null; rule: string; reason: string };
}

export interface AddressReport {
  address: string;
  /** the key its failures are counted under (the address, or its IPv6 prefix) */
  key: string;
  /** the allow-list entries that contain it, with their origin */
  allowed: Array<{ entry: string; from: string }>;
  /** never counted nor banned whatever the allow-list says */
  neverBanned: 'link-local' | 'reserved' | 'own-address' | null;
  bans: BanMatch[];
  failures: RuleCount[];
  /** null: its next failure is not counted (why: allowed, neverBanned or banned) */
  next: NextFailure[] | null;
}

export interface ExplainContext {
  detector: Detector;
  allow: AllowList;
  scope: BanScope;
  active: ReadonlyMap<string, BanRecord>;
  escalation: { factor: number; maxSec: number; lookbackSec: number };
  recidive: { bans: number; withinSec: number; banSec: number } | null;
  maxBanSec: number;
  /** creation times of the target's earlier automatic bans (the store) */
  banTimesSince(target: string, since: number): number[];
  now: number;
}

/** The report of one single address (a network is refused by the caller). */
export function explainAddress(address: IpNetwork, c: ExplainContext): AddressReport {
  const key = c.detector.keyOf(address);
  const keyText = formatNetwork(key);
  const allowed = c.allow.entriesContaining(address);
  const neverBanned = c.scope.neverBanned(address);
  const bans = coveringBans(c.active, address, key, c.now);
  const hits = c.detector.hitsOf(keyText);
  const failures: RuleCount[] = hits.map(({ rule, times }) => ({
    rule: rule.name,
    events: rule.events,
    windows: rule.windows.map((w) => ({ count: w.count, withinMs: w.withinMs, hits: times.filter((t) => c.now - t < w.withinMs).length })),
  }));
  const counted = allowed.length === 0 && neverBanned === null && bans.length === 0;
  return {
    address: formatNetwork(address),
    key: keyText,
    allowed,
    neverBanned,
    bans,
    failures,
    next: counted ? nextFailures(address, key, hits, c) : null,
  };
}

function nextFailures(address: IpNetwork, key: IpNetwork, hits: ReturnType<Detector['hitsOf']>, c: ExplainContext): NextFailure[] {
  // as Guardian.observe: an IPv6 prefix that would cover an allowed address or leave the scope
  // bans the address alone
  const target = key !== address && (c.allow.findOverlap(key) || c.scope.refusal(key)) ? address : key;
  const targetText = formatNetwork(target);
  const since = c.now - 1000 * Math.max(c.escalation.lookbackSec, c.recidive?.withinSec ?? 0);
  let earlier: number[] | undefined;
  return c.detector.ruleList.map((rule): NextFailure => {
    const times = hits.find((h) => h.rule === rule)?.times ?? [];
    const after = rule.windows.map((w) => ({
      count: w.count,
      withinMs: w.withinMs,
      hits: Math.min(w.count, times.filter((t) => c.now - t < w.withinMs).length + rule.weight),
    }));
    const crossed = after.find((w) => w.hits >= w.count);
    if (!crossed) {
      const closest = [...after].sort((a, b) => b.hits / b.count - a.hits / a.count)[0]!;
      return { rule: rule.name, outcome: 'count', window: closest };
    }
    earlier ??= c.banTimesSince(targetText, since);
    const rec = ruleBan({
      target,
      rule,
      count: crossed.count,
      windowMs: crossed.withinMs,
      eventName: rule.events[0]!,
      now: c.now,
      earlier,
      escalation: c.escalation,
      recidive: c.recidive,
      maxBanSec: c.maxBanSec,
    });
    const durationSec = rec.expiresAt === null ? null : Math.round((rec.expiresAt - rec.createdAt) / 1000);
    return { rule: rule.name, outcome: 'ban', window: crossed, ban: { target: rec.target, durationSec, rule: rec.rule, reason: rec.reason } };
  });
}
