/**
 * The state database's schema version and migrations, and the ban history retention, on real
 * SQLite files. The unversioned fixture was written by the store of commit e19fdcc (before
 * versions; test/fixtures/store/make-unversioned.mjs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { buildConfig, ConfigError } from '../src/config/index.js';
import { HistoryPruner, MIGRATIONS, SCHEMA_VERSION, SchemaVersionError, Store, type Migration } from '../src/store/index.js';
import { migrateSchema } from '../src/store/schema.js';
import { Outbox } from '../src/store/outbox.js';
import type { BanRecord } from '../src/guard/types.js';
import { fixturePath, repoPath } from './helpers/fixtures.js';

const DAY = 86_400_000;

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-schema-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function version(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
}

const indexes = (db: Database.Database) =>
  db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all();

function rec(target: string, createdAt: number, sec: number | null, source: BanRecord['source'] = 'rule'): BanRecord {
  return {
    target,
    family: 4,
    isNetwork: false,
    createdAt,
    expiresAt: sec === null ? null : createdAt + sec * 1000,
    rule: 'auth-failure',
    source,
    reason: 't',
    count: 5,
  };
}

test('the migrations are numbered 1, 2, ... without a gap; SCHEMA_VERSION is the last', () => {
  assert.deepEqual(
    MIGRATIONS.map((m) => m.version),
    MIGRATIONS.map((_, i) => i + 1),
  );
  assert.equal(SCHEMA_VERSION, MIGRATIONS.length);
});

test('a fresh database is created at the latest version, with every table and index', (t) => {
  const dir = tmp(t);
  const store = Store.open(dir);
  assert.deepEqual(store.schema, { from: 0, to: SCHEMA_VERSION, adopted: false });
  assert.deepEqual(indexes(store.db), ['account_anomalies_open', 'ban_history_ended', 'ban_history_target', 'fleet_outbox_expiry']);
  store.close();
  assert.equal(version(join(dir, 'guardian.sqlite')), SCHEMA_VERSION);
  const again = Store.open(dir);
  assert.deepEqual(again.schema, { from: SCHEMA_VERSION, to: SCHEMA_VERSION, adopted: false }, 'nothing to do the second time');
  again.close();
});

test('a database made by the store before versions is adopted as version 1 and migrated: bans, history and outbox kept', (t) => {
  const dir = tmp(t);
  copyFileSync(fixturePath('store/unversioned-e19fdcc.sqlite'), join(dir, 'guardian.sqlite'));
  assert.equal(version(join(dir, 'guardian.sqlite')), 0, 'the fixture has no version');
  const store = Store.open(dir);
  assert.deepEqual(store.schema, { from: 0, to: SCHEMA_VERSION, adopted: true });
  const t0 = Date.UTC(2026, 0, 1);
  assert.deepEqual(
    store.activeBans(t0 + 4 * DAY).map((b) => b.target),
    ['192.0.2.2', '198.51.100.7'],
  );
  assert.deepEqual(store.banTimesSince('192.0.2.1', t0), [t0, t0 + 2 * DAY], 'the history of an earlier offender');
  assert.equal(store.totalBans(), 4);
  const outbox = new Outbox(store.db, { maxRows: 10, maxPayloadBytes: 1000 });
  assert.equal(outbox.count(), 1);
  assert.equal(outbox.getState('k'), 'v');
  assert.ok(indexes(store.db).includes('ban_history_ended'));
  store.saveBan(rec('203.0.113.9', t0 + 5 * DAY, 60));
  store.close();
  const reopened = Store.open(dir);
  assert.equal(reopened.totalBans(), 5, 'it goes on working');
  reopened.close();
});

test('a version-1 database gets the later migrations only', (t) => {
  const file = join(tmp(t), 'state.sqlite');
  const v1 = new Database(file);
  migrateSchema(v1, file, MIGRATIONS.slice(0, 1));
  v1.prepare(`INSERT INTO ban_history (target, created_at, rule, source, reason, count, ended_at) VALUES ('192.0.2.1', 1, 'r', 'rule', 't', 1, 2)`).run();
  assert.deepEqual(indexes(v1), ['ban_history_target']);
  v1.close();
  const store = new Store(file);
  assert.deepEqual(store.schema, { from: 1, to: SCHEMA_VERSION, adopted: false });
  assert.ok(indexes(store.db).includes('ban_history_ended'));
  assert.equal(store.totalBans(), 1);
  store.close();
});

test('a migration that fails leaves the database at the version before it (one transaction each)', (t) => {
  const file = join(tmp(t), 'state.sqlite');
  const db = new Database(file);
  const broken: Migration[] = [
    ...MIGRATIONS,
    { version: SCHEMA_VERSION + 1, name: 'broken', sql: 'CREATE TABLE half (x INTEGER); INSERT INTO nope VALUES (1);' },
  ];
  assert.throws(() => migrateSchema(db, file, broken), /no such table: nope/);
  assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  assert.equal(db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'half'`).pluck().get(), 0, 'the half-made table is rolled back');
  db.close();
});

test('a database from a newer pbx-guardian is refused with what to do, and left unchanged', (t) => {
  const dir = tmp(t);
  const file = join(dir, 'guardian.sqlite');
  const db = new Database(file);
  db.exec(`CREATE TABLE future (x INTEGER); INSERT INTO future VALUES (42); PRAGMA user_version = ${SCHEMA_VERSION + 7};`);
  db.close();
  assert.throws(
    () => Store.open(dir),
    (err: unknown) => {
      assert.ok(err instanceof SchemaVersionError);
      assert.match(err.message, new RegExp(`schema version ${SCHEMA_VERSION + 7}, and this pbx-guardian knows versions up to ${SCHEMA_VERSION}`));
      assert.match(err.message, /newer pbx-guardian \(a downgrade\?\)\. It was not changed\. Run the newer version again, or, .* move the file aside/);
      return true;
    },
  );
  assert.equal(version(file), SCHEMA_VERSION + 7);
  const after = new Database(file, { readonly: true });
  assert.deepEqual(after.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all(), ['future'], 'no table of ours was added');
  after.close();
});

test('pbx-guardian run on a database from a newer version: exit 11 (state directory) with the message', (t) => {
  const base = tmp(t);
  mkdirSync(join(base, 'state'));
  const db = new Database(join(base, 'state', 'guardian.sqlite'));
  db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  const config = join(base, 'guardian.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      stateDir: join(base, 'state'),
      ami: { enabled: false },
      firewall: { backend: 'memory' },
      metrics: { enabled: false },
      admin: { socket: join(base, 'admin.sock') },
    }),
  );
  // killed after 20 s: a daemon that wrongly starts on the file would run forever
  const r = spawnSync(process.execPath, [repoPath('dist/src/cli/main.js'), 'run', '--config', config], {
    encoding: 'utf8',
    timeout: 20_000,
    killSignal: 'SIGKILL',
  });
  t.diagnostic(`exit ${r.status}: ${r.stderr.trim()}`);
  assert.equal(r.status, 11);
  assert.match(
    r.stderr,
    /the state directory .* cannot be used: the state database .*guardian\.sqlite has schema version \d+, and this pbx-guardian knows versions up to \d+/,
  );
  assert.doesNotMatch(r.stderr, /move a damaged file aside/, 'not called damaged');
});

/** A history of `n` bans per kind, all made by real Store writes. */
function seeded(file: string, now: number): Store {
  const store = new Store(file);
  for (let i = 0; i < 30; i++) {
    const target = `192.0.2.${i}`;
    store.saveBan(rec(target, now - 200 * DAY + i, 3600)); // old, ended (expired)
    store.endBan(target, now - 200 * DAY + i + 3600_000, 'expired');
    store.saveBan(rec(target, now - 10 * DAY + i, 3600)); // recent, ended
    store.endBan(target, now - 10 * DAY + i + 3600_000, 'expired');
  }
  store.saveBan(rec('198.51.100.1', now - 400 * DAY, null, 'manual')); // very old but still active (permanent)
  store.saveBan(rec('198.51.100.2', now - 100 * DAY, 200 * 86400)); // old but still active
  store.flush();
  return store;
}

test('the prune deletes only ended history older than the retention: active bans and recent history stay', async (t) => {
  const now = Date.UTC(2026, 5, 1);
  const store = seeded(join(tmp(t), 's.sqlite'), now);
  assert.equal(store.totalBans(), 62);
  const pruner = new HistoryPruner(store.db, { retentionMs: 90 * DAY, now: () => now });
  assert.equal(await pruner.run(), 30);
  assert.equal(store.totalBans(), 32);
  assert.equal(await pruner.run(), 0, 'nothing left to delete');
  const left = store.db.prepare(`SELECT target, created_at, ended_at FROM ban_history`).all() as Array<{
    target: string;
    created_at: number;
    ended_at: number | null;
  }>;
  assert.ok(left.every((r) => r.ended_at === null || r.ended_at >= now - 90 * DAY));
  assert.deepEqual(
    store.activeBans(now).map((b) => b.target),
    ['198.51.100.1', '198.51.100.2'],
  );
  assert.equal(left.filter((r) => r.ended_at === null).length, 2, 'the history rows of the active bans stay, however old');
  store.close();
});

test('what escalation and recidive count (banTimesSince over the lookback) is the same before and after a prune', async (t) => {
  const now = Date.UTC(2026, 5, 1);
  const store = seeded(join(tmp(t), 's.sqlite'), now);
  const lookbackMs = 30 * DAY;
  const before = Array.from({ length: 30 }, (_, i) => store.banTimesSince(`192.0.2.${i}`, now - lookbackMs));
  // the shortest retention the config accepts for a 30d lookback
  await new HistoryPruner(store.db, { retentionMs: lookbackMs, now: () => now }).run();
  assert.deepEqual(
    Array.from({ length: 30 }, (_, i) => store.banTimesSince(`192.0.2.${i}`, now - lookbackMs)),
    before,
  );
  assert.ok(before.every((times) => times.length === 1));
  store.close();
});

test('the prune works in chunks and gives the event loop a turn between them', async (t) => {
  const now = Date.UTC(2026, 5, 1);
  const db = new Database(join(tmp(t), 's.sqlite'));
  migrateSchema(db, 's.sqlite');
  const ins = db.prepare(
    `INSERT INTO ban_history (target, created_at, rule, source, reason, count, ended_at, end_reason) VALUES (?, ?, 'r', 'rule', 't', 1, ?, 'expired')`,
  );
  db.transaction(() => {
    for (let i = 0; i < 1050; i++) ins.run(`10.0.${i >> 8}.${i & 255}`, now - 100 * DAY, now - 99 * DAY);
  })();
  let pruned: [number, number] | null = null;
  const pruner = new HistoryPruner(db, { retentionMs: 90 * DAY, chunkRows: 100, now: () => now, onPruned: (rows, chunks) => (pruned = [rows, chunks]) });
  assert.equal(pruner.pruneChunk(now - 90 * DAY), 100, 'one chunk is at most chunkRows');
  let turns = 0;
  let ticking = true;
  const tick = () => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const rows = await pruner.run();
  ticking = false;
  assert.equal(rows, 950);
  assert.deepEqual(pruned, [950, 10], '9 full chunks and the short one that ends the run');
  assert.ok(turns >= 9, `the event loop ran between chunks (${turns} turns)`);
  assert.equal(db.prepare('SELECT count(*) FROM ban_history').pluck().get(), 0);
  db.close();
});

test('started, the prune runs after its first delay; stopped, it deletes no more; retention 0 never prunes', async (t) => {
  const now = Date.UTC(2026, 5, 1);
  const dir = tmp(t);
  const store = seeded(join(dir, 's.sqlite'), now);
  const done = new Promise<number>((resolve) => store.startHistoryPrune({ retentionMs: 90 * DAY, now: () => now, firstDelayMs: 1, onPruned: resolve }));
  const alive = setInterval(() => {}, 1000); // the prune's timers are unref'd: they do not keep a process alive
  assert.equal(await done, 30);
  clearInterval(alive);
  store.close();
  const other = seeded(join(dir, 't.sqlite'), now);
  const never = new HistoryPruner(other.db, { retentionMs: 0, now: () => now });
  assert.equal(await never.run(), 0);
  assert.equal(other.totalBans(), 62);
  const stopped = new HistoryPruner(other.db, { retentionMs: 90 * DAY, chunkRows: 10, now: () => now });
  const run = stopped.run(); // the first chunk runs now, the next after a turn
  stopped.stop();
  assert.equal(await run, 10, 'a stop ends the run after the current chunk');
  other.close();
});

test('config: store.historyRetention is a duration (default 90d) and may not be shorter than what the guard reads back', () => {
  assert.equal(buildConfig({}).store.historyRetention, '90d');
  assert.equal(buildConfig({ store: { historyRetention: 0 } }).store.historyRetention, '0');
  assert.equal(buildConfig({ store: { historyRetention: '30d' } }).store.historyRetention, '30d', 'equal to the 30d lookback is enough');
  assert.throws(() => buildConfig({ store: { historyRetention: 'soon' } }), /store\.historyRetention: "soon" is not a duration/);
  assert.throws(
    () => buildConfig({ store: { historyRetention: '7d' } }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /store\.historyRetention: "7d" is shorter than guard\.escalation\.lookback \("30d"\), which counts earlier bans from the history: set it to at least 30d, or 0 to keep the history forever/,
      );
      assert.doesNotMatch(err.message, /recidive/, 'recidive.within (1d) fits');
      return true;
    },
  );
  const recidive = { store: { historyRetention: '40d' }, guard: { recidive: { within: '60d', ban: '30d' } } };
  assert.throws(() => buildConfig(recidive), /store\.historyRetention: "40d" is shorter than guard\.recidive\.within \("60d"\)/);
  assert.equal(
    buildConfig({ ...recidive, guard: { recidive: { ...recidive.guard.recidive, enabled: false } } }).store.historyRetention,
    '40d',
    'a disabled recidive reads nothing',
  );
});
