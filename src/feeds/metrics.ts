/** One metric family per feed fact, labelled by feed (docs/metrics.md). */
import { Counter, Gauge, type Registry } from 'prom-client';

export type FeedMetrics = ReturnType<typeof feedMetrics>;

const RESULTS = ['ok', 'unchanged', 'refused', 'failed'];
const REASONS = ['allowed', 'scope', 'garbage', 'cap'];

/** The families, with every feed's series at zero from the start. */
export function feedMetrics(registry: Registry | undefined, feeds: string[]) {
  const registers = registry ? [registry] : [];
  const m = {
    entries: new Gauge({ name: 'pbx_guardian_feed_entries', help: 'entries of a feed enforced in its kernel sets', labelNames: ['feed'], registers }),
    refreshes: new Counter({
      name: 'pbx_guardian_feed_refresh_total',
      help: 'feed refreshes, by result (ok, unchanged: nothing new, refused: the answer refused whole and the last good list kept, failed)',
      labelNames: ['feed', 'result'],
      registers,
    }),
    lastSuccess: new Gauge({
      name: 'pbx_guardian_feed_last_success_timestamp_seconds',
      help: 'when a feed last refreshed (unix seconds)',
      labelNames: ['feed'],
      registers,
    }),
    refused: new Counter({
      name: 'pbx_guardian_feed_entries_refused_total',
      help: "a feed's entries not enforced, by reason (allowed: allow-listed, scope: the ban scope limits, garbage: no address, cap: maxEntries)",
      labelNames: ['feed', 'reason'],
      registers,
    }),
  };
  for (const feed of feeds) {
    m.entries.set({ feed }, 0);
    for (const result of RESULTS) m.refreshes.inc({ feed, result }, 0);
    for (const reason of REASONS) m.refused.inc({ feed, reason }, 0);
  }
  return m;
}
