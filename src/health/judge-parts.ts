/** What every judge builds its answer with. */
import { formatDuration } from '../common/duration.js';
import type { PartHealth, PartName } from './types.js';

/** an outbox this full drops its oldest rows soon */
export const OUTBOX_FULL_RATIO = 0.9;

export function part(name: PartName, summary: string, problems: string[], detail: Record<string, unknown>): PartHealth {
  return { part: name, enabled: true, healthy: problems.length === 0, summary, problems, detail };
}

export function disabled(name: PartName, summary: string): PartHealth {
  return { part: name, enabled: false, healthy: true, summary, problems: [], detail: {} };
}

/** "12s", "5m3s"; "never" for null */
export function ago(at: number | null, now: number): string {
  if (at === null) return 'never';
  return `${formatDuration(Math.max(0, (now - at) / 1000))} ago`;
}

export function iso(at: number | null): string | null {
  return at === null ? null : new Date(at).toISOString();
}

/** The client's messages end with its retry plan, which is stale by the time status shows them. */
