/** The fleet's part: the CrowdSec Local API link as a machine (pushes) and as a bouncer (the stream). */
import type { FleetHealth } from '../fleet/index.js';
import { ago, part, disabled, OUTBOX_FULL_RATIO } from './judge-parts.js';
import type { PartHealth } from './types.js';

/** the stream may fail this long (a LAPI restart) before the fleet counts as down */
export const FLEET_STREAM_FAILING_MAX_MS = 60_000;
/** pushes may fail this long before it is a problem (they wait in the durable queue) */
export const FLEET_PUSH_FAILING_MAX_MS = 5 * 60_000;

export function judgeFleet(f: FleetHealth | null, now: number): PartHealth {
  if (!f) return disabled('fleet', 'no CrowdSec Local API configured (crowdsec.machine / crowdsec.bouncer off)');
  const problems: string[] = [];
  const lines: string[] = [];
  const m = f.machine;
  if (m) {
    if (m.failingSince !== null && now - m.failingSince > FLEET_PUSH_FAILING_MAX_MS)
      problems.push(
        `pushing bans to the Local API fails since ${ago(m.failingSince, now)} (${m.lastError ?? 'no answer'}): ${m.queued} wait in the durable queue. ` +
          'Check crowdsec.url and that cscli machines list shows this machine validated',
      );
    if (m.queued >= m.maxRows * OUTBOX_FULL_RATIO)
      problems.push(`the push queue is nearly full (${m.queued} of crowdsec.machine.maxRows ${m.maxRows}): the oldest pushes are dropped next`);
    lines.push(`machine ${m.failingSince === null ? 'pushing' : `FAILING since ${ago(m.failingSince, now)}`} (${m.pushed} pushed, ${m.queued} queued)`);
  }
  const b = f.bouncer;
  if (b) {
    if (b.failingSince !== null && now - b.failingSince > FLEET_STREAM_FAILING_MAX_MS)
      problems.push(
        `the decisions stream fails since ${ago(b.failingSince, now)} (${b.lastError ?? 'no answer'}): the fleet's ${b.decisions} decisions stay enforced, ` +
          'new ones are not seen. Check crowdsec.url and crowdsec.bouncer.apiKey against cscli bouncers list',
      );
    const fw = b.set.firewall;
    if (fw && fw.state === 'failing')
      problems.push(`the fleet's kernel sets (${b.set.names}) are failing: ${fw.lastError?.message ?? 'unknown error'}; retried with backoff`);
    const state = b.failingSince !== null ? `FAILING since ${ago(b.failingSince, now)}` : b.state === 'starting' ? 'waiting for the first answer' : 'following';
    lines.push(`bouncer ${state} (${b.decisions} decisions in ${b.set.names}, last answer ${ago(b.lastSuccessAt, now)})`);
  }
  return part('fleet', `${f.url}: ${lines.join('; ')}`, problems, { ...f });
}
