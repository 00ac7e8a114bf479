/**
 * The machine's durable queue: the bans waiting to be pushed to the Local API, in the store's
 * fleet_outbox table (migration 5, src/store/schema.ts). A row is written before its push is
 * tried and deleted once the LAPI accepted it (or it can never be pushed), so a restart pushes
 * what is left. Bounded: past maxRows the oldest rows go first. It keeps the ban's facts, not
 * the alert: the alert's duration is what remains of the ban when it is sent.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { BanRecord, BanSource } from '../guard/types.js';

/** One queued ban (the BanRecord fields an alert needs). */
export interface QueuedBan {
  id: number;
  target: string;
  isNetwork: boolean;
  rule: string;
  source: BanSource;
  reason: string;
  count: number;
  bannedAt: number;
  /** epoch ms; null = permanent */
  expiresAt: number | null;
}

interface Row {
  id: number;
  target: string;
  is_network: number;
  rule: string;
  source: string;
  reason: string;
  count: number;
  banned_at: number;
  expires_at: number | null;
}

export class FleetOutbox {
  private readonly insert: Statement;
  private readonly peekStmt: Statement;
  private readonly del: Statement;
  private readonly purge: Statement;
  private readonly cap: Statement;
  private readonly oldest: Statement;
  private rows: number;

  constructor(
    private readonly db: Database,
    private readonly maxRows: number,
  ) {
    this.insert = db.prepare('INSERT INTO fleet_outbox (target, is_network, rule, source, reason, count, banned_at, expires_at) VALUES (?,?,?,?,?,?,?,?)');
    this.peekStmt = db.prepare('SELECT * FROM fleet_outbox ORDER BY id LIMIT ?');
    this.del = db.prepare('DELETE FROM fleet_outbox WHERE id = ?');
    this.purge = db.prepare('DELETE FROM fleet_outbox WHERE expires_at IS NOT NULL AND expires_at <= ?');
    this.cap = db.prepare('DELETE FROM fleet_outbox WHERE id IN (SELECT id FROM fleet_outbox ORDER BY id LIMIT ?)');
    this.oldest = db.prepare('SELECT banned_at FROM fleet_outbox ORDER BY id LIMIT 1');
    this.rows = (db.prepare('SELECT COUNT(*) AS n FROM fleet_outbox').get() as { n: number }).n;
  }

  count(): number {
    return this.rows;
  }

  /** epoch ms of the oldest queued ban, or null when empty */
  oldestBannedAt(): number | null {
    if (this.rows === 0) return null;
    return (this.oldest.get() as { banned_at: number } | undefined)?.banned_at ?? null;
  }

  /** Appends in one transaction, then keeps the newest maxRows. Returns how many old rows the cap dropped. */
  append(bans: readonly BanRecord[]): number {
    if (bans.length === 0) return 0;
    let capped = 0;
    this.db.transaction(() => {
      for (const b of bans) this.insert.run(b.target, b.isNetwork ? 1 : 0, b.rule, b.source, b.reason, b.count, b.createdAt, b.expiresAt);
      this.rows += bans.length;
      const over = this.rows - this.maxRows;
      if (over > 0) {
        capped = this.cap.run(over).changes;
        this.rows -= capped;
      }
    })();
    return capped;
  }

  /** Deletes the rows whose ban has ended by `until`; returns how many. */
  purgeExpired(until: number): number {
    const n = this.purge.run(until).changes;
    this.rows -= n;
    return n;
  }

  /** The oldest `limit` rows. */
  peek(limit: number): QueuedBan[] {
    return (this.peekStmt.all(limit) as Row[]).map((r) => ({
      id: r.id,
      target: r.target,
      isNetwork: r.is_network === 1,
      rule: r.rule,
      source: r.source as BanSource,
      reason: r.reason,
      count: r.count,
      bannedAt: r.banned_at,
      expiresAt: r.expires_at,
    }));
  }

  remove(ids: readonly number[]): void {
    if (ids.length === 0) return;
    let n = 0;
    this.db.transaction(() => {
      for (const id of ids) n += this.del.run(id).changes;
    })();
    this.rows -= n;
  }
}
