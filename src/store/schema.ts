/**
 * The state database's schema version (SQLite `PRAGMA user_version`) and its migrations. Each
 * migration runs in its own transaction together with the version bump, so a crash or a full
 * disk leaves the file at the previous version, never half-way. docs/store.md: how to add one.
 *
 * Only the store's own tables are here. The outboxes (odoo_outbox, one webhook_outbox_* per
 * configured webhook) keep their `CREATE TABLE IF NOT EXISTS` in outbox.ts: their names are
 * chosen at run time from the config, they exist only while their stage is enabled, and the
 * same class runs on other databases (tests, in-memory bridges). A change to their shape would
 * be a migration here that alters every table matching their name pattern.
 */
import type { Database } from 'better-sqlite3';
import { StartupError } from '../common/errors.js';

export interface Migration {
  /** the version the database has once this migration ran (1, 2, ... without gaps) */
  version: number;
  /** what it does, for the log */
  name: string;
  /** SQL run in one transaction with the version bump */
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    // The schema before versions existed, word for word (IF NOT EXISTS: an unversioned database
    // made by that code already has it, and is adopted without a change; see migrateSchema).
    name: 'bans and ban_history',
    sql: `
      CREATE TABLE IF NOT EXISTS bans (
        target TEXT PRIMARY KEY,
        family INTEGER NOT NULL,
        is_network INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        rule TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        count INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS ban_history (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        rule TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        count INTEGER NOT NULL,
        ended_at INTEGER,
        end_reason TEXT
      );
      CREATE INDEX IF NOT EXISTS ban_history_target ON ban_history (target, created_at);
    `,
  },
  {
    version: 2,
    // the retention prune finds old ended rows by this index instead of scanning the history
    name: 'index of ended ban_history rows (retention)',
    sql: `CREATE INDEX IF NOT EXISTS ban_history_ended ON ban_history (ended_at) WHERE ended_at IS NOT NULL;`,
  },
  {
    version: 3,
    // src/accounts: what each account authenticated from, so a restart does not forget every phone
    name: 'account memory (networks, User-Agents, successful addresses, anomalies)',
    sql: `
      CREATE TABLE account_networks (
        account TEXT NOT NULL,
        network TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (account, network)
      );
      CREATE TABLE account_agents (
        account TEXT NOT NULL,
        family TEXT NOT NULL,
        full TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (account, family)
      );
      CREATE TABLE account_successes (
        address TEXT NOT NULL,
        account TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (address, account)
      );
      CREATE TABLE account_anomalies (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        at INTEGER NOT NULL,
        signal TEXT NOT NULL,
        address TEXT NOT NULL,
        detail TEXT NOT NULL,
        action TEXT NOT NULL,
        acknowledged_at INTEGER
      );
      CREATE INDEX account_anomalies_open ON account_anomalies (account) WHERE acknowledged_at IS NULL;
      CREATE TABLE account_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `,
  },
  {
    version: 4,
    // the fraud stage's account blocks (src/fraud): restored at start and written to AstDB again at each AMI login
    name: 'account_blocks (fraud)',
    sql: `
      CREATE TABLE IF NOT EXISTS account_blocks (
        account TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        policy TEXT NOT NULL,
        reason TEXT NOT NULL,
        address TEXT
      );
    `,
  },
  {
    version: 5,
    // src/fleet/outbox.ts: the bans waiting to be pushed to a CrowdSec Local API (written before the
    // push is tried, deleted once the LAPI accepted them); the alert is built at push time from these
    // facts, so its duration is what remains of the ban then
    name: 'fleet_outbox (CrowdSec machine pushes)',
    sql: `
      CREATE TABLE IF NOT EXISTS fleet_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target TEXT NOT NULL,
        is_network INTEGER NOT NULL,
        rule TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        count INTEGER NOT NULL,
        banned_at INTEGER NOT NULL,
        expires_at INTEGER
      );
      CREATE INDEX IF NOT EXISTS fleet_outbox_expiry ON fleet_outbox (expires_at) WHERE expires_at IS NOT NULL;
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

/** The database was written by a newer pbx-guardian: opening it could lose what that version keeps. */
export class SchemaVersionError extends StartupError {
  constructor(
    readonly path: string,
    readonly found: number,
    readonly known: number,
  ) {
    super(
      `the state database ${path} has schema version ${found}, and this pbx-guardian knows versions up to ${known}: ` +
        'it was written by a newer pbx-guardian (a downgrade?). It was not changed. Run the newer version again, or, to ' +
        'start with an empty ban store and ban history, stop the daemon and move the file aside (with its -wal and -shm files)',
      'SCHEMA_TOO_NEW',
    );
    this.name = 'SchemaVersionError';
  }
}

export interface MigrationResult {
  from: number;
  to: number;
  /** true when the file had no version but the tables of the code before versions (adopted as 1) */
  adopted: boolean;
}

/** Brings the database to the latest version. Throws SchemaVersionError for a newer one. */
export function migrateSchema(db: Database, path: string, migrations: readonly Migration[] = MIGRATIONS): MigrationResult {
  const latest = migrations.at(-1)?.version ?? 0;
  const from = db.pragma('user_version', { simple: true }) as number;
  if (from > latest) throw new SchemaVersionError(path, from, latest);
  // version 0 is both "new file" and "made before versions": migration 1 is that schema with
  // IF NOT EXISTS, so running it adopts the old file as it is and creates the tables in a new one
  const adopted = from === 0 && db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'bans'`).get() !== undefined;
  for (const m of migrations) {
    if (m.version <= from) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
  return { from, to: Math.max(from, latest), adopted };
}
