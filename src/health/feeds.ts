/** The feeds' part: each block-list feed, and whether one fails for longer than it may. */
import type { FeedsHealth } from '../feeds/index.js';
import { ago, disabled, part } from './judge-parts.js';
import type { PartHealth } from './types.js';

/** a feed may fail (or be refused) this many intervals in a row before it is a problem */
export const FEED_FAILING_MAX_INTERVALS = 3;

export function judgeFeeds(list: FeedsHealth | null | undefined, now: number): PartHealth {
  if (!list || list.length === 0) return disabled('feeds', 'no block-list feed configured (feeds: [])');
  const problems: string[] = [];
  const lines: string[] = [];
  for (const f of list) {
    if (f.failingSince !== null && now - f.failingSince > FEED_FAILING_MAX_INTERVALS * f.intervalMs)
      problems.push(
        `feed ${f.name} fails since ${ago(f.failingSince, now)}, more than ${FEED_FAILING_MAX_INTERVALS} intervals (${f.lastError ?? 'no answer'}): ` +
          `its ${f.entries} entries of the last good answer stay until their timeout. Check feeds[].url${f.kind === 'apiban' ? ' and feeds[].key' : ''}`,
      );
    const fw = f.set.firewall;
    if (fw && fw.state === 'failing')
      problems.push(`feed ${f.name}: its kernel sets (${f.set.names}) are failing: ${fw.lastError?.message ?? 'unknown error'}; retried with backoff`);
    const state = f.failingSince !== null ? `FAILING since ${ago(f.failingSince, now)}` : f.lastSuccessAt === null ? 'waiting for the first answer' : 'ok';
    lines.push(`${f.name} (${f.kind}) ${state}: ${f.entries} entries in ${f.set.names}, last success ${ago(f.lastSuccessAt, now)}`);
  }
  return part('feeds', `${list.length} feed${list.length === 1 ? '' : 's'}: ${lines.join('; ')}`, problems, { feeds: list });
}
