/**
 * One queued ban as the alert CrowdSec LAPI 1.4 takes in POST /v1/alerts (pkg/models/alert.go):
 * every field the model marks required is present (a missing one is refused with 422), with one
 * decision of the ban's scope, value and remaining duration. The LAPI sets the alert's machine_id
 * from the JWT itself; ours is sent too so the body says who made it.
 */
import { formatGoDuration, scenarioOf } from './decision.js';
import type { QueuedBan } from './outbox.js';

/** the decision origin a watcher's own alert carries in 1.4 (what cscli decisions list shows) */
export const ORIGIN = 'crowdsec';
/** longest alert message (the ban's reason) pushed */
const MESSAGE_MAX = 512;

export interface AlertOptions {
  /** the duration pushed for a permanent ban */
  permanentMs: number;
  machineId: string;
}

export function alertOf(ban: QueuedBan, now: number, o: AlertOptions): Record<string, unknown> {
  const scope = ban.isNetwork ? 'Range' : 'Ip';
  const remaining = ban.expiresAt === null ? o.permanentMs : ban.expiresAt - now;
  const scenario = scenarioOf(ban);
  const at = new Date(ban.bannedAt).toISOString();
  return {
    scenario,
    scenario_hash: '',
    scenario_version: '',
    // eslint-disable-next-line no-control-regex -- the reason may hold text an attacker sent: one line only
    message: ban.reason.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, MESSAGE_MAX),
    events_count: ban.count,
    start_at: at,
    stop_at: at,
    capacity: 0,
    leakspeed: '0',
    simulated: false,
    remediation: true,
    events: [],
    machine_id: o.machineId,
    source: ban.isNetwork ? { scope, value: ban.target, range: ban.target } : { scope, value: ban.target, ip: ban.target },
    decisions: [{ origin: ORIGIN, type: 'ban', scope, value: ban.target, duration: formatGoDuration(remaining), scenario, simulated: false }],
  };
}
