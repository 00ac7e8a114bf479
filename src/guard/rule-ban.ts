import { formatDuration } from '../config/duration.js';
import { formatNetwork, isSingleAddress, type IpNetwork } from '../net/ip.js';
import type { Rule } from './rules.js';
import type { BanRecord } from './types.js';

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
