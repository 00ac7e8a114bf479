import { parseDuration } from '../common/duration.js';
import { InvalidTargetError } from './types.js';

/**
 * The duration of a manual ban as the CLI and REST send it: seconds or a text like 10m, 1h, 7d;
 * null, "" (fastify's coercion of a JSON null) or "permanent" mean permanent (null); absent means
 * the configured default (undefined: guard.manualBanDuration).
 */
export function requestedBanDuration(value: unknown): number | null | undefined {
  if (value === undefined) return undefined;
  if (value === null || value === '' || value === 'permanent') return null;
  const sec = parseDuration(value);
  if (sec === null || sec <= 0) throw new InvalidTargetError(`"${String(value)}" is not a duration (e.g. 10m, 1h, 7d, or "permanent")`);
  return sec;
}
