/** What a ban may cover and how long it lasts: the checks of manual bans and the record a crossed rule window gives. */
import { formatDuration } from '../common/duration.js';
import { formatNetwork, isSingleAddress, type IpNetwork } from '../net/ip.js';
import type { AllowList } from './allow.js';
import type { Rule } from './rules.js';
import type { BanScope } from './scope.js';
import { AllowListedError, BanDurationError, BanScopeError, InvalidTargetError, OwnAddressError, type BanRecord } from './types.js';

export interface RuleBanInput {
  target: IpNetwork;
  rule: Rule;
  /** failures (attempts) in the crossed window */
  count: number;
  windowMs: number;
  eventName: string;
  now: number;
  /** times of this target's earlier bans within max(escalation lookback, recidive window) */
  earlier: number[];
  escalation: { factor: number; maxSec: number; lookbackSec: number };
  recidive: { bans: number; withinSec: number; banSec: number } | null;
  maxBanSec: number;
}

/** Throws when `net` may not be banned, in this order: too wide or in a reserved range (scope),
 *  allow-listed (by `allow`, with its origin), the host's own address (scope: the interface
 *  addresses are on the allow-list too, but the scope names them, code OWN_ADDRESS). */
export function checkBannable(net: IpNetwork, scope: BanScope, allow: AllowList): void {
  const refused = scope.refusal(net);
  if (refused && refused.code !== 'OWN_ADDRESS') throw new BanScopeError(refused.message, refused.code);
  const allowed = allow.refusal(net, 'interfaces');
  if (allowed) throw new AllowListedError(allowed);
  if (refused) throw new OwnAddressError(refused.message);
  const own = allow.refusal(net);
  if (own) throw new OwnAddressError(own);
}

/** Throws when a manual ban's duration (seconds, null = permanent) is not allowed. */
export function checkDuration(duration: number | null, maxBanSec: number): void {
  if (duration === null) return;
  if (!Number.isFinite(duration) || duration <= 0) throw new InvalidTargetError(`ban duration must be a positive number of seconds, or permanent`);
  if (duration > maxBanSec) {
    throw new BanDurationError(
      `ban duration ${formatDuration(duration)} is longer than the longest allowed (${formatDuration(maxBanSec)}, guard.maxBanDuration): give a shorter one, ban permanently, or raise guard.maxBanDuration`,
    );
  }
}

/** The ban a crossed rule window gives: escalated for repeat offenders, recidive past its count. */
export function ruleBan(i: RuleBanInput): BanRecord {
  const { target, rule, count, windowMs, eventName, now, earlier, escalation, recidive, maxBanSec } = i;
  const prior = earlier.filter((t) => t >= now - escalation.lookbackSec * 1000).length;
  let durationSec = Math.min(rule.banSec * Math.pow(escalation.factor, prior), Math.max(escalation.maxSec, rule.banSec), maxBanSec);
  let ruleName = rule.name;
  let source: BanRecord['source'] = 'rule';
  let reason = `${count} × ${rule.events.includes(eventName) ? eventName : rule.name} within ${formatDuration(windowMs / 1000)}`;
  if (prior > 0) reason += ` (repeat offender: ban ${prior + 1})`;
  if (recidive && earlier.filter((t) => t >= now - recidive.withinSec * 1000).length + 1 >= recidive.bans) {
    durationSec = Math.min(recidive.banSec, maxBanSec);
    ruleName = 'recidive';
    source = 'recidive';
    reason = `banned ${recidive.bans} times within ${formatDuration(recidive.withinSec)} (last: ${rule.name})`;
  }
  return {
    target: formatNetwork(target),
    family: target.family,
    isNetwork: !isSingleAddress(target),
    createdAt: now,
    expiresAt: now + durationSec * 1000,
    rule: ruleName,
    source,
    reason,
    count,
  };
}
