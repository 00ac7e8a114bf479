/**
 * The last good answer of a feed across a restart: `<stateDir>/feed-<name>.json` holding the
 * entries with their ends, the APIBAN cursor and the last success. Bounded on read (its size and
 * maxEntries) and re-checked entry by entry: the file is ours, but a target is parsed again anyway.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../common/atomic-write.js';
import type { FirewallEntry } from '../firewall/index.js';
import { targetOf } from './parse.js';

export interface FeedState {
  cursor: string | null;
  lastSuccessAt: number | null;
  entries: FirewallEntry[];
}

/** bytes a saved entry takes at most (`["<ipv6 CIDR>",<ms>],`) */
const ENTRY_BYTES = 80;

export function stateFile(stateDir: string, feed: string): string {
  return path.join(stateDir, `feed-${feed}.json`);
}

/** The saved state, live entries only; null when there is none or it is not readable (logged by the caller). */
export function loadState(file: string, maxEntries: number, now: number): FeedState | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return null;
  }
  if (!st.isFile() || st.size > maxEntries * ENTRY_BYTES + 4096) throw new Error(`${file} is larger than ${maxEntries} entries can be: ignored`);
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as { cursor?: unknown; lastSuccessAt?: unknown; entries?: unknown };
  const entries: FirewallEntry[] = [];
  if (Array.isArray(raw.entries))
    for (const e of raw.entries.slice(0, maxEntries)) {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number' || e[1] <= now) continue;
      const t = targetOf(e[0]);
      if (t) entries.push({ target: t.target, family: t.family, isNetwork: t.isNetwork, expiresAt: e[1] });
    }
  return {
    cursor: typeof raw.cursor === 'string' && /^[0-9]{1,20}$/.test(raw.cursor) ? raw.cursor : null,
    lastSuccessAt: typeof raw.lastSuccessAt === 'number' && Number.isFinite(raw.lastSuccessAt) ? raw.lastSuccessAt : null,
    entries,
  };
}

export async function saveState(file: string, state: FeedState): Promise<void> {
  const body = JSON.stringify({ cursor: state.cursor, lastSuccessAt: state.lastSuccessAt, entries: state.entries.map((e) => [e.target, e.expiresAt]) });
  await writeFileAtomic(file, body, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mode: 0o600 });
}
