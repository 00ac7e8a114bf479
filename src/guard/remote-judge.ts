import { formatNetwork } from '../net/ip.js';
import type { AllowList } from './allow.js';
import type { BanScope } from './scope.js';
import type { BanRecord, RemoteBanJudge } from './types.js';

/** A ban decided elsewhere (the fleet, a feed) judged by the guard's own allow-list and scope limits. */
export function remoteJudgeOf(allow: AllowList, scope: BanScope, active: ReadonlyMap<string, BanRecord>): RemoteBanJudge {
  return {
    allowed: (net) => {
      const by = allow.findOverlap(net);
      return by ? `${formatNetwork(by)}, ${allow.originOf(by)}` : null;
    },
    scopeRefusal: (net) => scope.refusal(net)?.message ?? null,
    localBan: (target) => {
      const rec = active.get(target);
      return rec && { rule: rec.rule, expiresAt: rec.expiresAt };
    },
  };
}
