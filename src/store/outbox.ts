/**
 * Durable outbox for Odoo calls that could not be delivered (Odoo down, slow, or rejecting
 * our login). Rows drain in `seq` order. Each row has an expiry (per-event policy) and a
 * priority: at the row cap the oldest rows of the lowest priority go first.
 * Also a tiny key/value table for the Odoo bridge's cached state (the last events map).
 */
import type { Database, Statement } from 'better-sqlite3';

export interface OutboxItem {
  /** monotonic order of the event (assigned by the forwarder) */
  seq: number;
  /** ordering lane (call id); rows of a lane drain one after another */
  lane: string;
  /** event name or "JobResult", for the policy and the logs */
  kind: string;
  model: string;
  method: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  priority: number;
  createdAt: number;
  expiresAt: number;
}

export interface OutboxRow extends OutboxItem {
  attempts: number;
}

export type OutboxDropReason = 'cap' | 'expired' | 'too_large';

export interface OutboxOptions {
  maxRows: number;
  maxPayloadBytes: number;
  now?: () => number;
  onDrop?: (reason: OutboxDropReason, n: number) => void;
  /** table name (default odoo_outbox, state in odoo_state); other channels (webhooks) use their own */
  table?: string;
}

export class Outbox {
  private readonly insertStmt: Statement;
  private readonly peekStmt: Statement;
  private readonly deleteStmt: Statement;
  private readonly purgeStmt: Statement;
  private readonly capStmt: Statement;
  private readonly oldestStmt: Statement;
  private readonly attemptStmt: Statement;
  private readonly maxSeqStmt: Statement;
  private readonly stateTable: string;
  private readonly now: () => number;
  private rows: number;

  constructor(
    private readonly db: Database,
    private readonly opts: OutboxOptions,
  ) {
    this.now = opts.now ?? Date.now;
    const t = opts.table ?? 'odoo_outbox';
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(t)) throw new Error(`outbox table name ${JSON.stringify(t)}: lower-case letters, digits, "_"`);
    this.stateTable = opts.table ? `${t}_state` : 'odoo_state';
    db.exec(`
      CREATE TABLE IF NOT EXISTS ${t} (
        seq INTEGER PRIMARY KEY,
        lane TEXT NOT NULL,
        kind TEXT NOT NULL,
        model TEXT NOT NULL,
        method TEXT NOT NULL,
        payload TEXT NOT NULL,
        priority INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS ${t}_prio ON ${t} (priority, seq);
      CREATE INDEX IF NOT EXISTS ${t}_expiry ON ${t} (expires_at);
      CREATE TABLE IF NOT EXISTS ${this.stateTable} (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);
    `);
    this.insertStmt = db.prepare(
      `INSERT OR REPLACE INTO ${t} (seq, lane, kind, model, method, payload, priority, created_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?)`,
    );
    this.peekStmt = db.prepare(`SELECT * FROM ${t} ORDER BY seq LIMIT ?`);
    this.deleteStmt = db.prepare(`DELETE FROM ${t} WHERE seq = ?`);
    this.purgeStmt = db.prepare(`DELETE FROM ${t} WHERE expires_at <= ?`);
    this.capStmt = db.prepare(`DELETE FROM ${t} WHERE seq IN (SELECT seq FROM ${t} ORDER BY priority ASC, seq ASC LIMIT ?)`);
    this.oldestStmt = db.prepare(`SELECT created_at FROM ${t} ORDER BY seq LIMIT 1`);
    this.attemptStmt = db.prepare(`UPDATE ${t} SET attempts = attempts + 1 WHERE seq = ?`);
    this.maxSeqStmt = db.prepare(`SELECT MAX(seq) AS m FROM ${t}`);
    this.rows = (db.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get() as { n: number }).n;
  }

  /** rows currently held */
  count(): number {
    return this.rows;
  }

  maxSeq(): number {
    const r = this.maxSeqStmt.get() as { m: number | null };
    return r.m ?? 0;
  }

  /** epoch ms of the oldest row, or null when empty */
  oldestCreatedAt(): number | null {
    if (this.rows === 0) return null;
    const r = this.oldestStmt.get() as { created_at: number } | undefined;
    return r ? r.created_at : null;
  }

  /** Append items in one transaction, then enforce the row cap. Returns how many were stored. */
  append(items: OutboxItem[]): number {
    if (items.length === 0) return 0;
    let stored = 0;
    let tooLarge = 0;
    let capped = 0;
    const tx = this.db.transaction(() => {
      for (const it of items) {
        const payload = JSON.stringify({ a: it.args, k: it.kwargs });
        if (payload.length > this.opts.maxPayloadBytes) {
          tooLarge++;
          continue;
        }
        const r = this.insertStmt.run(it.seq, it.lane, it.kind, it.model, it.method, payload, it.priority, it.createdAt, it.expiresAt);
        if (r.changes > 0) stored++;
      }
      this.rows += stored;
      const over = this.rows - this.opts.maxRows;
      if (over > 0) {
        capped = this.capStmt.run(over).changes;
        this.rows -= capped;
      }
    });
    tx();
    if (tooLarge) this.opts.onDrop?.('too_large', tooLarge);
    if (capped) this.opts.onDrop?.('cap', capped);
    return stored;
  }

  /** Delete expired rows; returns how many. */
  purgeExpired(): number {
    const n = this.purgeStmt.run(this.now()).changes;
    if (n) {
      this.rows -= n;
      this.opts.onDrop?.('expired', n);
    }
    return n;
  }

  /** The next rows in seq order (expired ones are purged first). */
  peek(limit: number): OutboxRow[] {
    this.purgeExpired();
    const raw = this.peekStmt.all(limit) as Array<{
      seq: number;
      lane: string;
      kind: string;
      model: string;
      method: string;
      payload: string;
      priority: number;
      created_at: number;
      expires_at: number;
      attempts: number;
    }>;
    return raw.map((r) => {
      const p = JSON.parse(r.payload) as { a: unknown[]; k: Record<string, unknown> };
      return {
        seq: r.seq,
        lane: r.lane,
        kind: r.kind,
        model: r.model,
        method: r.method,
        args: p.a,
        kwargs: p.k,
        priority: r.priority,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        attempts: r.attempts,
      };
    });
  }

  /** Remove delivered (or rejected) rows. */
  remove(seqs: number[]): void {
    if (seqs.length === 0) return;
    let n = 0;
    const tx = this.db.transaction(() => {
      for (const s of seqs) n += this.deleteStmt.run(s).changes;
    });
    tx();
    this.rows -= n;
  }

  noteAttempt(seq: number): void {
    this.attemptStmt.run(seq);
  }

  getState(key: string): string | null {
    const r = this.db.prepare(`SELECT value FROM ${this.stateTable} WHERE key = ?`).get(key) as { value: string } | undefined;
    return r ? r.value : null;
  }

  setState(key: string, value: string): void {
    this.db.prepare(`INSERT OR REPLACE INTO ${this.stateTable} (key, value, updated_at) VALUES (?,?,?)`).run(key, value, this.now());
  }
}
