/** Reading the ban history (`pbx-guardian history`, `why`): bounded queries on ban_history. */
import type Database from 'better-sqlite3';

/** most rows one query returns */
export const HISTORY_MAX_ROWS = 1000;
/** most targets one query names (every prefix of an IPv6 address is 129) */
const MAX_TARGETS = 200;

export interface HistoryQuery {
  /** only these targets (e.g. an address and every network containing it); absent: all */
  targets?: string[];
  /** epoch ms: bans created at or after */
  since?: number;
  /** newest first, at most this many (capped at HISTORY_MAX_ROWS) */
  limit?: number;
}

export interface HistoryRow {
  target: string;
  createdAt: number;
  expiresAt: number | null;
  rule: string;
  source: string;
  reason: string;
  count: number;
  /** null while the ban is in force */
  endedAt: number | null;
  endReason: string | null;
}

interface Row {
  target: string;
  created_at: number;
  expires_at: number | null;
  rule: string;
  source: string;
  reason: string;
  count: number;
  ended_at: number | null;
  end_reason: string | null;
}

export function queryHistory(db: Database.Database, q: HistoryQuery): HistoryRow[] {
  const where: string[] = [];
  const args: Array<string | number> = [];
  if (q.targets !== undefined) {
    const targets = q.targets.slice(0, MAX_TARGETS);
    if (targets.length === 0) return [];
    where.push(`target IN (${targets.map(() => '?').join(',')})`);
    args.push(...targets);
  }
  if (q.since !== undefined) {
    where.push('created_at >= ?');
    args.push(q.since);
  }
  const limit = Math.max(1, Math.min(HISTORY_MAX_ROWS, Math.floor(q.limit ?? 100)));
  const sql = `SELECT target, created_at, expires_at, rule, source, reason, count, ended_at, end_reason FROM ban_history
    ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ?`;
  return (db.prepare(sql).all(...args, limit) as Row[]).map((r) => ({
    target: r.target,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    rule: r.rule,
    source: r.source,
    reason: r.reason,
    count: r.count,
    endedAt: r.ended_at,
    endReason: r.end_reason,
  }));
}
