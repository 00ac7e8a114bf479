/**
 * The account memory in the state database (tables of migration 3, src/store/schema.ts). Writes
 * are queued and written in one transaction per event-loop turn, like the ban store's: a
 * registration storm after an Asterisk restart costs one transaction, not one per phone.
 */
import type { Database, Statement } from 'better-sqlite3';
import { parseNetwork } from '../net/ip.js';
import type { AccountMemory, MemoryWrites, Seen } from './memory.js';

export interface AnomalyRow {
  id: number;
  account: string;
  at: number;
  signal: string;
  address: string;
  detail: string;
  action: string;
  acknowledgedAt: number | null;
}

/** open anomalies kept per account (older ones are acknowledged in bulk by acknowledge) */
const MAX_ANOMALY_ROWS = 10_000;
const LEARNING_KEY = 'learning_started_at';
/** queued writes at most before they are written without waiting for the next turn */
const MAX_QUEUED = 10_000;

type Write = () => void;

export class AccountStore implements MemoryWrites {
  private readonly q: Write[] = [];
  private scheduled = false;
  private readonly s: Record<string, Statement>;
  /** called when a queued write fails (the memory goes on; only a restart would forget) */
  onError: (err: Error) => void = () => {};

  constructor(private readonly db: Database) {
    this.s = {
      network: db.prepare(`INSERT INTO account_networks (account, network, first_seen, last_seen, count) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT(account, network) DO UPDATE SET last_seen=excluded.last_seen, count=excluded.count`),
      agent: db.prepare(`INSERT INTO account_agents (account, family, full, first_seen, last_seen, count) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT(account, family) DO UPDATE SET full=excluded.full, last_seen=excluded.last_seen, count=excluded.count`),
      success: db.prepare(`INSERT INTO account_successes (address, account, at) VALUES (?, ?, ?) ON CONFLICT(address, account) DO UPDATE SET at=excluded.at`),
      forgetAccount: db.prepare(`DELETE FROM account_networks WHERE account = ?`),
      forgetAccountAgents: db.prepare(`DELETE FROM account_agents WHERE account = ?`),
      forgetNetwork: db.prepare(`DELETE FROM account_networks WHERE account = ? AND network = ?`),
      forgetAgent: db.prepare(`DELETE FROM account_agents WHERE account = ? AND family = ?`),
      forgetAddress: db.prepare(`DELETE FROM account_successes WHERE address = ?`),
      anomaly: db.prepare(`INSERT INTO account_anomalies (account, at, signal, address, detail, action) VALUES (?, ?, ?, ?, ?, ?)`),
      trimAnomalies: db.prepare(`DELETE FROM account_anomalies WHERE id <= (SELECT max(id) FROM account_anomalies) - ?`),
      acknowledge: db.prepare(`UPDATE account_anomalies SET acknowledged_at = ? WHERE account = ? AND acknowledged_at IS NULL`),
      getMeta: db.prepare(`SELECT value FROM account_meta WHERE key = ?`).pluck(),
      setMeta: db.prepare(`INSERT INTO account_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value`),
    };
  }

  // ---- MemoryWrites ----
  network(account: string, network: string, seen: Seen): void {
    this.queue(() => this.s.network!.run(account, network, seen.first, seen.last, seen.count));
  }
  agent(account: string, family: string, seen: Seen & { full: string }): void {
    this.queue(() => this.s.agent!.run(account, family, seen.full, seen.first, seen.last, seen.count));
  }
  success(address: string, account: string, at: number): void {
    this.queue(() => this.s.success!.run(address, account, at));
  }
  forgetAccount(account: string): void {
    this.queue(() => {
      this.s.forgetAccount!.run(account);
      this.s.forgetAccountAgents!.run(account);
    });
  }
  forgetNetwork(account: string, network: string): void {
    this.queue(() => this.s.forgetNetwork!.run(account, network));
  }
  forgetAgent(account: string, family: string): void {
    this.queue(() => this.s.forgetAgent!.run(account, family));
  }
  forgetAddress(address: string): void {
    this.queue(() => this.s.forgetAddress!.run(address));
  }

  /** An anomaly, written at once (it is rare, and what an operator acknowledges). */
  addAnomaly(a: Omit<AnomalyRow, 'id' | 'acknowledgedAt'>): number {
    this.flush();
    const id = Number(this.s.anomaly!.run(a.account, a.at, a.signal, a.address, a.detail, a.action).lastInsertRowid);
    this.s.trimAnomalies!.run(MAX_ANOMALY_ROWS);
    return id;
  }

  acknowledge(account: string, now: number): number {
    this.flush();
    return this.s.acknowledge!.run(now, account).changes;
  }

  /** Anomalies not acknowledged yet, oldest first. */
  openAnomalies(): AnomalyRow[] {
    this.flush();
    return (
      this.db.prepare(`SELECT * FROM account_anomalies WHERE acknowledged_at IS NULL ORDER BY id`).all() as Array<{
        id: number;
        account: string;
        at: number;
        signal: string;
        address: string;
        detail: string;
        action: string;
        acknowledged_at: number | null;
      }>
    ).map((r) => ({ ...r, acknowledgedAt: r.acknowledged_at }));
  }

  /** When learning began (set to `now` the first time: a fresh memory starts learning). */
  learningStartedAt(now: number): number {
    const v = this.s.getMeta!.get(LEARNING_KEY) as string | undefined;
    if (v !== undefined && Number.isFinite(Number(v))) return Number(v);
    this.s.setMeta!.run(LEARNING_KEY, String(now));
    return now;
  }

  /** Fills `memory` with what was kept, dropping what ran out of forgetAfter / recentSuccess. */
  load(memory: AccountMemory, now: number): void {
    const { forgetAfterMs, recentSuccessMs, maxAccounts, maxAddresses } = memory.limits;
    const cut = now - forgetAfterMs;
    // the most recently seen accounts, within the bound; rows oldest first so the LRU order holds
    const nets = this.db
      .prepare(
        `SELECT n.* FROM account_networks n JOIN (SELECT account, max(last_seen) AS l FROM account_networks WHERE last_seen >= ? GROUP BY account ORDER BY l DESC LIMIT ?) a
         ON a.account = n.account WHERE n.last_seen >= ? ORDER BY n.last_seen`,
      )
      .all(cut, maxAccounts, cut) as Array<{ account: string; network: string; first_seen: number; last_seen: number; count: number }>;
    for (const r of nets) memory.restoreNetwork(r.account, r.network, { first: r.first_seen, last: r.last_seen, count: r.count });
    const agents = this.db.prepare(`SELECT * FROM account_agents WHERE last_seen >= ? ORDER BY last_seen`).all(cut) as Array<{
      account: string;
      family: string;
      full: string;
      first_seen: number;
      last_seen: number;
      count: number;
    }>;
    for (const r of agents)
      if (memory.get(r.account)) memory.restoreAgent(r.account, r.family, { first: r.first_seen, last: r.last_seen, count: r.count, full: r.full });
    const successes = this.db
      .prepare(`SELECT * FROM account_successes WHERE at >= ? ORDER BY at LIMIT ?`)
      .all(now - recentSuccessMs, maxAddresses * 4) as Array<{ address: string; account: string; at: number }>;
    for (const r of successes) {
      const net = parseNetwork(r.address);
      if (net) memory.restoreSuccess(net, r.account, r.at);
    }
    this.db.prepare(`DELETE FROM account_successes WHERE at < ?`).run(now - recentSuccessMs);
  }

  private queue(w: Write): void {
    this.q.push(w);
    // one turn of the event loop with this many changes (a registration storm): written now
    if (this.q.length >= MAX_QUEUED) {
      try {
        this.flush();
      } catch (err) {
        this.onError(err as Error);
      }
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      try {
        this.flush();
      } catch (err) {
        this.onError(err as Error);
      }
    });
  }

  /** Writes what is queued in one transaction (throws when the database refuses). */
  flush(): void {
    this.scheduled = false;
    if (this.q.length === 0) return;
    const batch = this.q.splice(0);
    this.db.transaction(() => {
      for (const w of batch) w();
    })();
  }
}
