import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { BanRecord, BanSource } from '../guard/types.js';
import { makeDirs } from './dirs.js';
import { AccountBlocks } from './blocks.js';
import { HistoryPruner, type HistoryPruneOptions } from './retention.js';
import { migrateSchema, type MigrationResult } from './schema.js';
import { queryHistory, type HistoryQuery, type HistoryRow } from './history.js';

export { makeDirs, prepareStateDir, StateDirError } from './dirs.js';
export { MIGRATIONS, SCHEMA_VERSION, SchemaVersionError, type Migration, type MigrationResult } from './schema.js';
export { HistoryPruner, PRUNE_CHUNK_ROWS, type HistoryPruneOptions } from './retention.js';
export { acquireStateLock, AlreadyRunningError, LOCK_FILE, type LockRecord, type StateLock } from './lock.js';
export { StateOwnership } from './ownership.js';

export type { Database } from 'better-sqlite3';
export { AccountBlocks } from './blocks.js';
export { HISTORY_MAX_ROWS, type HistoryQuery, type HistoryRow } from './history.js';

/** bound on the in-memory index of earlier offenders (about 80 bytes each) */
const OFFENDER_INDEX_MAX = 250_000;

/** Why a ban ended, as kept in the history. */
export type BanEndReason = 'expired' | 'unbanned' | 'replaced';

/** a row of `active`, in its column order */
type BanTuple = [string, number, number, number, number | null, string, string, string, number];

/** distinct rule / source / reason texts shared across one load (beyond it, each row keeps its own) */
const INTERN_MAX = 4096;

/**
 * Rows of `active` as BanRecords, one row at a time: at 1M bans `.all()` holding every row array
 * until the last was read cost 3.3 s against 1.9 s this way (most of it the GC copying live rows
 * around). The rule, source and reason texts repeat across bans: each distinct one is kept once.
 */
function loadRecords(rows: Iterable<BanTuple>): BanRecord[] {
  const pool = new Map<string, string>();
  const intern = (text: string): string => {
    const known = pool.get(text);
    if (known !== undefined) return known;
    if (pool.size < INTERN_MAX) pool.set(text, text);
    return text;
  };
  const out: BanRecord[] = [];
  for (const r of rows)
    out.push({
      target: r[0],
      family: r[1] === 6 ? 6 : 4,
      isNetwork: r[2] === 1,
      createdAt: r[3],
      expiresAt: r[4],
      rule: intern(r[5]),
      source: intern(r[6]) as BanSource,
      reason: intern(r[7]),
      count: r[8],
    });
  return out;
}

/**
 * The guardian's durable state: active bans and the ban history (for escalation, recidive and
 * restore after a restart). One SQLite file in WAL mode; other stages add their own tables
 * through `db` (the Odoo outbox).
 */
export class Store {
  readonly db: Database.Database;
  private readonly stmts;
  /**
   * Ban writes are queued and written together once per event-loop turn: a burst of bans costs
   * one transaction instead of one each (the kernel has them already; the store is for restarts).
   */
  private readonly writes: Array<{ save: BanRecord; replaces: boolean } | { end: string; now: number; why: BanEndReason }> = [];
  private flushScheduled = false;
  /** creation times of the automatic bans in `writes`, by target */
  private readonly queuedBanTimes = new Map<string, number[]>();
  /**
   * Every target with an automatic ban in the history (a superset): banTimesSince answers a
   * target outside it without a query, and most attackers are first-time offenders. null once the
   * history holds more than OFFENDER_INDEX_MAX targets; then every call queries.
   */
  private offenders: Set<string> | null;
  /** Called when queued writes fail (read-only, disk full) with how many were lost; bans stay in the kernel. */
  onWriteError: (err: Error, lostWrites: number) => void = () => {};
  /** the last queued write that failed (health: recent write errors) */
  lastWriteError: { message: string; at: number; lost: number } | null = null;
  /** epoch ms of the last queued write that succeeded */
  lastWriteOkAt: number | null = null;

  /** the schema version found at open and the one it was brought to (src/store/schema.ts) */
  readonly schema: MigrationResult;
  /** the fraud stage's account blocks (its BlockStorePort) */
  readonly blocks: AccountBlocks;
  private pruner: HistoryPruner | null = null;

  /** why the state file could not be opened, when this is the in-memory fallback (set by main.ts) */
  fallbackReason: string | null = null;

  /** false for ':memory:' (the fallback when the state file cannot be opened): nothing survives a restart */
  get onDisk(): boolean {
    return this.path !== ':memory:' && this.path !== '';
  }

  constructor(readonly path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 2000');
    try {
      this.schema = migrateSchema(this.db, path);
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.stmts = {
      upsertBan: this.db.prepare(`INSERT INTO bans (target, family, is_network, created_at, expires_at, rule, source, reason, count)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(target) DO UPDATE SET family=excluded.family, is_network=excluded.is_network, created_at=excluded.created_at,
          expires_at=excluded.expires_at, rule=excluded.rule, source=excluded.source, reason=excluded.reason, count=excluded.count`),
      closeHistory: this.db.prepare(`UPDATE ban_history SET ended_at=@now, end_reason=@why WHERE target=@target AND ended_at IS NULL`),
      addHistory: this.db.prepare(`INSERT INTO ban_history (target, created_at, expires_at, rule, source, reason, count)
        VALUES (?, ?, ?, ?, ?, ?, ?)`),
      deleteBan: this.db.prepare(`DELETE FROM bans WHERE target = ?`),
      // no ORDER BY (the guard sorts what it lists) and rows as arrays: at 1M bans the sort and the
      // row objects were 3 s and 1.8 s of a 7.3 s load (bench/scale.ts, load ~8 on 2 CPUs)
      active: this.db
        .prepare(`SELECT target, family, is_network, created_at, expires_at, rule, source, reason, count FROM bans WHERE expires_at IS NULL OR expires_at > ?`)
        .raw(),
      expired: this.db.prepare(`SELECT target FROM bans WHERE expires_at IS NOT NULL AND expires_at <= ?`),
      banTimes: this.db.prepare(
        `SELECT created_at FROM ban_history WHERE target = ? AND created_at >= ? AND source IN ('rule','recidive') ORDER BY created_at`,
      ),
      totalBans: this.db.prepare(`SELECT count(*) AS n FROM ban_history`),
    };
    this.blocks = new AccountBlocks(this.db);
    const known = this.db
      .prepare(`SELECT DISTINCT target FROM ban_history WHERE source IN ('rule','recidive') LIMIT ?`)
      .pluck()
      .all(OFFENDER_INDEX_MAX + 1) as string[];
    this.offenders = known.length > OFFENDER_INDEX_MAX ? null : new Set(known);
  }

  /** Opens (creating it if needed) the state file in a state directory. */
  static open(stateDir: string): Store {
    makeDirs(stateDir, 0o750);
    return new Store(join(stateDir, 'guardian.sqlite'));
  }

  /** Records a ban as active and appends it to the history, replacing an active ban of the target. */
  saveBan(rec: BanRecord, replaces = true): void {
    if (rec.source === 'rule' || rec.source === 'recidive') {
      const times = this.queuedBanTimes.get(rec.target);
      if (times) times.push(rec.createdAt);
      else this.queuedBanTimes.set(rec.target, [rec.createdAt]);
      if (this.offenders) {
        this.offenders.add(rec.target);
        if (this.offenders.size > OFFENDER_INDEX_MAX) this.offenders = null;
      }
    }
    this.queue({ save: rec, replaces });
  }

  /** Ends the active ban of a target (nothing when there is none). */
  endBan(target: string, now: number, why: BanEndReason): void {
    this.queue({ end: target, now, why });
  }

  private queue(write: (typeof this.writes)[number]): void {
    this.writes.push(write);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      const pending = this.writes.length;
      try {
        this.flush();
        this.lastWriteOkAt = Date.now();
      } catch (err) {
        this.lastWriteError = { message: (err as Error).message, at: Date.now(), lost: pending };
        this.onWriteError(err as Error, pending);
      }
    });
  }

  /** Writes what is queued, in order, in one transaction. Throws when the database refuses. */
  flush(): void {
    this.flushScheduled = false;
    if (this.writes.length === 0) return;
    const batch = this.writes.splice(0);
    this.queuedBanTimes.clear();
    this.db.transaction(() => {
      for (const w of batch) {
        if ('save' in w) this.writeBan(w.save, w.replaces);
        else if (this.stmts.deleteBan.run(w.end).changes > 0) this.stmts.closeHistory.run({ target: w.end, now: w.now, why: w.why });
      }
    })();
  }

  private writeBan(rec: BanRecord, replaces: boolean): void {
    if (replaces) this.stmts.closeHistory.run({ target: rec.target, now: rec.createdAt, why: 'replaced' });
    const isNetwork = rec.isNetwork ? 1 : 0;
    this.stmts.upsertBan.run(rec.target, rec.family, isNetwork, rec.createdAt, rec.expiresAt, rec.rule, rec.source, rec.reason, rec.count);
    this.stmts.addHistory.run(rec.target, rec.createdAt, rec.expiresAt, rec.rule, rec.source, rec.reason, rec.count);
  }

  /** Bans still in force at `now`, oldest first. */
  activeBans(now: number): BanRecord[] {
    this.flush();
    return loadRecords(this.stmts.active.iterate(now) as IterableIterator<BanTuple>);
  }

  /** Targets whose ban has run out by `now` but is still recorded active. */
  expiredTargets(now: number): string[] {
    this.flush();
    return (this.stmts.expired.all(now) as Array<{ target: string }>).map((r) => r.target);
  }

  /** Creation times of the automatic bans of a target since `since` (escalation, recidive). */
  banTimesSince(target: string, since: number): number[] {
    if (this.offenders && !this.offenders.has(target)) return [];
    const queued = this.queuedBanTimes.get(target);
    const stored = (this.stmts.banTimes.all(target, since) as Array<{ created_at: number }>).map((r) => r.created_at);
    if (queued) for (const t of queued) if (t >= since) stored.push(t);
    return stored;
  }

  /** Bans from the history, newest first (bounded: src/store/history.ts). */
  history(q: HistoryQuery): HistoryRow[] {
    this.flush();
    return queryHistory(this.db, q);
  }

  totalBans(): number {
    this.flush();
    return (this.stmts.totalBans.get() as { n: number }).n;
  }

  /** Prunes ended history older than the retention, periodically (src/store/retention.ts). */
  startHistoryPrune(opts: HistoryPruneOptions): HistoryPruner {
    this.pruner?.stop();
    this.pruner = new HistoryPruner(this.db, opts);
    this.pruner.start();
    return this.pruner;
  }

  close(): void {
    this.pruner?.stop();
    try {
      this.flush();
    } finally {
      this.db.close();
    }
  }
}
