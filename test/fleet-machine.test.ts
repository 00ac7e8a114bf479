import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { defaultsOf } from '../src/common/config-schema.js';
import { isSecretKey } from '../src/common/redact.js';
import { alertOf } from '../src/fleet/alert.js';
import { CrowdsecConfigSchema, type CrowdsecConfig } from '../src/fleet/config-schema.js';
import { isOwn, parseGoDuration, scenarioOf, targetOf } from '../src/fleet/decision.js';
import type { MachineHandle } from '../src/fleet/index.js';
import { startFleetMachine, type FleetMachine } from '../src/fleet/machine.js';
import type { BanRecord, BanSource } from '../src/guard/types.js';
import Database from 'better-sqlite3';
import { FleetOutbox } from '../src/fleet/outbox.js';
import { MIGRATIONS, Store } from '../src/store/index.js';
import { migrateSchema } from '../src/store/schema.js';

const PASSWORD = 'machine-pw-Zq81xK';

interface Alert {
  scenario: string;
  message: string;
  events_count: number;
  machine_id: string;
  start_at: string;
  stop_at: string;
  source: { scope: string; value: string; ip?: string; range?: string };
  decisions: Array<{ origin: string; type: string; scope: string; value: string; duration: string; scenario: string }>;
}

/** A fake LAPI 1.4 on loopback: login with the machine's password, POST /v1/alerts answered with `status`. */
class FakeLapi {
  /** accepted POSTs, each a batch */
  batches: Alert[][] = [];
  /** ms timestamps of every POST /v1/alerts */
  attempts: number[] = [];
  /** what the next POSTs answer (shifted per request), then `status` */
  script: number[] = [];
  status = 200;
  body = '{"message":"refused"}';
  logins = 0;
  /** a POST holding one of these values is refused whole with `refusal` (as 1.4.6 does: none of it is stored) */
  refuse = new Map<string, { status: number; body: string }>();
  /** run when a POST arrives, before it is answered */
  onPost: (() => void) | null = null;
  private readonly server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      if (req.url === '/v1/watchers/login') {
        this.logins++;
        const { password } = JSON.parse(raw) as { password: string };
        if (password !== PASSWORD) return res.writeHead(401).end('{"code":401,"message":"incorrect Username or Password"}');
        return res.writeHead(200).end(JSON.stringify({ code: 200, token: 'jwt-token', expire: new Date(Date.now() + 3600e3).toISOString() }));
      }
      if (req.url === '/v1/alerts' && req.headers.authorization === 'Bearer jwt-token') {
        this.attempts.push(Date.now());
        this.onPost?.();
        const alerts = JSON.parse(raw) as Alert[];
        const refusal = alerts.map((a) => this.refuse.get(a.source.value)).find((r) => r !== undefined);
        if (refusal) return res.writeHead(refusal.status).end(refusal.body);
        const status = this.script.shift() ?? this.status;
        if (status === 200 || status === 201) {
          this.batches.push(alerts);
          return res.writeHead(201).end(JSON.stringify(alerts.map((_, i) => String(i + 1))));
        }
        return res.writeHead(status).end(this.body);
      }
      res.writeHead(404).end();
    });
  });
  url = '';
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
  pushed(): Alert[] {
    return this.batches.flat();
  }
}

function config(url: string, machine: Partial<CrowdsecConfig['machine']> = {}, top: Partial<CrowdsecConfig> = {}): CrowdsecConfig {
  const c = defaultsOf(CrowdsecConfigSchema);
  return {
    ...c,
    url,
    maxBackoffMs: 400,
    timeoutMs: 2000,
    ...top,
    machine: { ...c.machine, enabled: true, login: 'pbx1', password: PASSWORD, batchWindowMs: 30, ...machine },
  };
}

function ban(target: string, o: Partial<BanRecord> = {}, now = Date.now()): BanRecord {
  return {
    target,
    family: target.includes(':') ? 6 : 4,
    isNetwork: target.includes('/'),
    createdAt: now,
    expiresAt: now + 3600_000,
    rule: 'sip-auth',
    source: 'rule' as BanSource,
    reason: 'sip-auth: 5 failures in 60 s',
    count: 5,
    ...o,
  };
}

function logCapture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Setup {
  lapi: FakeLapi;
  store: Store;
  /** closes the state file and opens it again (a daemon restart) */
  reopen(): Store;
}

async function withSetup(fn: (s: Setup) => Promise<void>): Promise<void> {
  const lapi = new FakeLapi();
  await lapi.start();
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-fleet-machine-'));
  const s: Setup = {
    lapi,
    store: new Store(join(dir, 'guardian.sqlite')),
    reopen() {
      s.store.close();
      s.store = new Store(join(dir, 'guardian.sqlite'));
      return s.store;
    },
  };
  try {
    await fn(s);
  } finally {
    s.store.close();
    await lapi.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const queuedRows = (store: Store) => (store.db.prepare('SELECT COUNT(*) AS n FROM fleet_outbox').get() as { n: number }).n;

test('bans of the configured sources are pushed in batches of batchMaxSize, each an alert with its decision; rows are in SQLite before the push', async () => {
  await withSetup(async ({ lapi, store }) => {
    const registry = new Registry();
    const { logger } = logCapture();
    const m = startFleetMachine({ config: config(lapi.url, { batchMaxSize: 3, push: ['rule', 'recidive', 'manual'] }), db: store.db, logger, registry });
    const rowsAtPost: number[] = [];
    lapi.onPost = () => rowsAtPost.push(queuedRows(store));
    try {
      const now = Date.now();
      for (const t of ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4']) m.subscriber.handleBanNotice!({ action: 'ban', record: ban(t, {}, now) });
      m.subscriber.handleBanNotice!({
        action: 'ban',
        record: ban('2001:db8:7::/48', { rule: 'manual', source: 'manual', reason: 'manual ban (cli)', count: 0, expiresAt: null }, now),
      });
      m.subscriber.handleBanNotice!({ action: 'ban', record: ban('198.51.100.1', { rule: 'manual', source: 'odoo' }, now) }); // odoo: not in push
      m.subscriber.handleBanNotice!({ action: 'unban', record: ban('203.0.113.9', {}, now) }); // unbans are not pushed
      await until('two batches', () => m.health().pushed === 5);
      assert.deepEqual(
        lapi.batches.map((b) => b.length),
        [3, 2],
      );
      assert.deepEqual(rowsAtPost, [5, 2], 'every row was written before its push, and deleted once accepted');
      const ip = lapi.pushed().find((a) => a.source.value === '203.0.113.1')!;
      assert.equal(ip.scenario, 'pbx-guardian/sip-auth');
      assert.equal(ip.message, 'sip-auth: 5 failures in 60 s');
      assert.equal(ip.events_count, 5);
      assert.equal(ip.machine_id, 'pbx1');
      assert.equal(ip.start_at, new Date(now).toISOString());
      assert.deepEqual(ip.source, { scope: 'Ip', value: '203.0.113.1', ip: '203.0.113.1' });
      assert.equal(ip.decisions.length, 1);
      const d = ip.decisions[0]!;
      assert.deepEqual(
        { ...d, duration: undefined },
        { origin: 'crowdsec', type: 'ban', scope: 'Ip', value: '203.0.113.1', duration: undefined, scenario: 'pbx-guardian/sip-auth', simulated: false },
      );
      const secs = Number(/^(\d+)s$/.exec(d.duration)![1]);
      assert.ok(secs <= 3600 && secs >= 3590, `the remaining duration ${d.duration}`);
      const range = lapi.pushed().find((a) => a.source.value === '2001:db8:7::/48')!;
      assert.equal(range.scenario, 'pbx-guardian/manual');
      assert.deepEqual(range.source, { scope: 'Range', value: '2001:db8:7::/48', range: '2001:db8:7::/48' });
      assert.equal(range.decisions[0]!.duration, `${8760 * 3600}s`, 'a permanent ban is pushed with permanentDuration');
      assert.equal(lapi.pushed().length, 5, 'the odoo ban and the unban were not pushed');
      assert.equal(queuedRows(store), 0);
      const h = m.health();
      assert.deepEqual(
        { ...h, lastPushAt: h.lastPushAt !== null },
        {
          enabled: true,
          state: 'ok',
          queued: 0,
          maxRows: 100000,
          lastPushAt: true,
          failingSince: null,
          lastError: null,
          pushed: 5,
          dropped: { expired: 0, refused: 0, cap: 0 },
        },
      );
      const text = await registry.metrics();
      assert.match(text, /^pbx_guardian_fleet_pushed_total 5$/m);
      assert.match(text, /^pbx_guardian_fleet_queue 0$/m);
      for (const r of ['expired', 'refused', 'cap']) assert.match(text, new RegExp(`^pbx_guardian_fleet_dropped_total\\{reason="${r}"\\} 0$`, 'm'));
      assert.equal(lapi.logins, 1, 'one login: the JWT is kept');
    } finally {
      await m.stop();
    }
  });
});

test('a LAPI that fails is retried with the capped exponential backoff; health says failing, then ok; the password is in no log line', async () => {
  await withSetup(async ({ lapi, store }) => {
    const registry = new Registry();
    const { logger, lines } = logCapture();
    lapi.script = [503, 503, 503, 503];
    const m = startFleetMachine({ config: config(lapi.url, {}, { maxBackoffMs: 200 }), db: store.db, logger, registry, firstRetryMs: 50 });
    try {
      m.subscriber.handleBanNotice!({ action: 'ban', record: ban('203.0.113.20') });
      await until('the first failure', () => lapi.attempts.length >= 1 && m.health().state === 'failing');
      const h = m.health();
      assert.equal(h.queued, 1);
      assert.ok(h.failingSince !== null);
      assert.match(h.lastError!, /HTTP 503/);
      await until('the push', () => m.health().pushed > 0);
      const gaps = lapi.attempts.slice(1).map((t, i) => t - lapi.attempts[i]!);
      assert.equal(gaps.length, 4);
      // 50, 100, 200, then capped at 200 (timers fire late, never early; a few ms of HTTP on top)
      [50, 100, 200, 200].forEach((want, i) => assert.ok(gaps[i]! >= want - 2, `retry ${i + 1} came ${gaps[i]} ms after the last, expected >= ${want}`));
      assert.ok(gaps[3]! < 200 + 150, `the cap holds: ${gaps[3]} ms`);
      assert.equal(m.health().state, 'ok');
      assert.equal(m.health().failingSince, null);
      assert.match(await registry.metrics(), /^pbx_guardian_fleet_push_failures_total 4$/m);
      assert.equal(lines.filter((l) => /push failed/.test(l)).length, 1, 'an outage is logged once a minute, not at each retry');
      assert.ok(lines.some((l) => /takes pushes again/.test(l)));
    } finally {
      await m.stop();
    }
    // a wrong password: the login is refused, retried, logged, and the password appears nowhere
    const wrong = startFleetMachine({ config: config(lapi.url, { password: 'wrong-' + PASSWORD }), db: store.db, logger, firstRetryMs: 50 });
    try {
      wrong.subscriber.handleBanNotice!({ action: 'ban', record: ban('203.0.113.21') });
      await until('a refused login', () => wrong.health().state === 'failing');
      assert.match(wrong.health().lastError!, /login of machine "pbx1".*HTTP 401/);
    } finally {
      await wrong.stop();
    }
    assert.ok(lines.length >= 3);
    for (const l of lines) assert.ok(!l.includes(PASSWORD), `a log line holds the password: ${l}`);
    assert.ok(isSecretKey('crowdsec.machine.password'), 'config errors and status hide its value');
  });
});

test('a refusal that can never succeed (422; LAPI 1.4.6: HTTP 500 "validation failure" or "invalid addr/range") drops only the bans refused, counted, logged once a minute', async () => {
  await withSetup(async ({ lapi, store }) => {
    const { logger, lines } = logCapture();
    const m = startFleetMachine({ config: config(lapi.url, { batchWindowMs: 10 }), db: store.db, logger, firstRetryMs: 50 });
    try {
      lapi.refuse.set('203.0.113.30', { status: 422, body: '{"message":"refused"}' });
      for (const t of ['203.0.113.30', '203.0.113.31', '203.0.113.32']) m.subscriber.handleBanNotice!({ action: 'ban', record: ban(t) });
      await until('the batch sorted out', () => m.health().pushed === 2 && m.health().dropped.refused === 1);
      assert.deepEqual(
        lapi.batches.map((b) => b.map((a) => a.source.value)),
        [['203.0.113.31'], ['203.0.113.32']],
        'the refused POST of 3 was pushed again one ban at a time: only the refused ban is lost',
      );
      assert.equal(lapi.attempts.length, 4, '1 POST of 3, then 3 of 1; the refused ban is not retried');
      // what LAPI 1.4.6 answers (seen on the real one) to a missing field and to a value it cannot parse
      lapi.refuse.set('203.0.113.33', { status: 500, body: '{"message":"validation failure list:\\n0.events in body is required"}' });
      lapi.refuse.set('203.0.113.34', { status: 500, body: '{"message":"unable to create alerts: invalid addr/range 203.0.113.34 : invalid address"}' });
      m.subscriber.handleBanNotice!({ action: 'ban', record: ban('203.0.113.33') });
      await until('the second refusal', () => m.health().dropped.refused === 2);
      m.subscriber.handleBanNotice!({ action: 'ban', record: ban('203.0.113.34') });
      await until('the third refusal', () => m.health().dropped.refused === 3);
      assert.equal(lapi.attempts.length, 6, 'neither was retried');
      assert.equal(queuedRows(store), 0);
      assert.equal(lines.filter((l) => /refused/.test(l)).length, 1, 'logged once within the minute');
      assert.match(m.health().lastError!, /invalid addr\/range/);
      // a plain 500 is an outage, not a refusal
      lapi.script = [500];
      lapi.body = '{"message":"unable to create alerts: database is locked"}';
      m.subscriber.handleBanNotice!({ action: 'ban', record: ban('203.0.113.35') });
      await until('the retried push', () => m.health().pushed === 3);
      assert.equal(lapi.pushed().at(-1)!.source.value, '203.0.113.35');
      assert.equal(lapi.attempts.length, 8);
      assert.equal(m.health().dropped.refused, 3);
    } finally {
      await m.stop();
    }
  });
});

test('bans that ended while the LAPI was down are dropped unsent; past maxRows the oldest go first', async () => {
  await withSetup(async ({ lapi, store }) => {
    const { logger, lines } = logCapture();
    let clock = Date.now();
    lapi.status = 503;
    const m = startFleetMachine({ config: config(lapi.url, { maxRows: 3, batchWindowMs: 5 }), db: store.db, logger, now: () => clock, firstRetryMs: 50 });
    try {
      m.subscriber.handleBanNotice!({ action: 'ban', record: ban('203.0.113.40', { expiresAt: clock + 500 }, clock) }); // ends within a second
      m.subscriber.handleBanNotice!({ action: 'ban', record: ban('203.0.113.41', {}, clock) }); // the oldest: the cap drops it
      await until('a failed push', () => lapi.attempts.length >= 1);
      assert.equal(m.health().dropped.expired, 1, 'a ban ending within the second is not worth a decision');
      m.subscriber.handleBanNotice!({ action: 'ban', record: ban('203.0.113.42', { expiresAt: clock + 60_000 }, clock) });
      for (const t of ['203.0.113.43', '203.0.113.44']) m.subscriber.handleBanNotice!({ action: 'ban', record: ban(t, {}, clock) });
      await until('the cap', () => m.health().dropped.cap === 1);
      assert.equal(lines.filter((l) => /the queue is full/.test(l)).length, 1, 'the cap is logged, apart from the outage');
      assert.equal(m.health().queued, 3);
      clock += 120_000; // 203.0.113.42's ban ends while the LAPI is down
      lapi.status = 200;
      await until('the push', () => m.health().pushed > 0);
      assert.deepEqual(
        lapi.pushed().map((a) => a.source.value),
        ['203.0.113.43', '203.0.113.44'],
      );
      const h = m.health();
      assert.deepEqual(h.dropped, { expired: 2, refused: 0, cap: 1 });
      assert.equal(h.queued, 0);
    } finally {
      await m.stop();
    }
  });
});

test('what is left in the queue at stop is pushed at the next start', async () => {
  await withSetup(async (s) => {
    const { lapi } = s;
    const { logger } = logCapture();
    lapi.status = 503;
    let m: FleetMachine = startFleetMachine({ config: config(lapi.url), db: s.store.db, logger, firstRetryMs: 50 });
    for (const t of ['203.0.113.50', '203.0.113.51', '203.0.113.52']) m.subscriber.handleBanNotice!({ action: 'ban', record: ban(t) });
    await until('a failed push', () => lapi.attempts.length >= 1);
    m.subscriber.handleBanNotice!({ action: 'ban', record: ban('203.0.113.53') });
    await m.stop(); // the last ban was still in memory: stop writes it
    assert.equal(queuedRows(s.store), 4);
    const store = s.reopen();
    lapi.status = 200;
    m = startFleetMachine({ config: config(lapi.url), db: store.db, logger, firstRetryMs: 50 });
    try {
      assert.equal(m.health().queued, 4);
      await until('the push after the restart', () => m.health().pushed === 4);
      assert.deepEqual(
        lapi.pushed().map((a) => a.source.value),
        ['203.0.113.50', '203.0.113.51', '203.0.113.52', '203.0.113.53'],
      );
      await until('the queue emptied', () => m.health().queued === 0);
      assert.equal(queuedRows(store), 0);
    } finally {
      await m.stop();
    }
  });
});

test('machine.enabled false: health says off, nothing is pushed or stored', async () => {
  await withSetup(async ({ lapi, store }) => {
    const c = config(lapi.url);
    const m = startFleetMachine({ config: { ...c, machine: { ...c.machine, enabled: false } }, db: store.db, logger: pino({ level: 'silent' }) });
    // what src/fleet/index.ts holds (the lead's wiring): checked by the compiler
    const handle: MachineHandle = m;
    assert.equal(handle.subscriber.name, 'crowdsec-machine');
    assert.equal(m.subscriber.handleBanNotice, undefined);
    assert.equal(m.health().state, 'off');
    assert.equal(m.health().enabled, false);
    await m.stop();
    assert.equal(queuedRows(store), 0);
  });
});

test('migration 5: a state file of version 4 gets fleet_outbox, its bans kept; the queue works on it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-fleet-migrate-'));
  try {
    const file = join(dir, 'guardian.sqlite');
    const db = new Database(file);
    migrateSchema(db, file, MIGRATIONS.slice(0, 4));
    db.prepare(`INSERT INTO bans VALUES ('203.0.113.60', 4, 0, 1, NULL, 'sip-auth', 'rule', 'r', 5)`).run();
    db.close();
    const store = new Store(file);
    try {
      assert.deepEqual(store.schema, { from: 4, to: 5, adopted: false });
      assert.deepEqual(
        store.activeBans(2).map((b) => b.target),
        ['203.0.113.60'],
      );
      const q = new FleetOutbox(store.db, 2);
      assert.equal(q.count(), 0);
      assert.equal(q.append([ban('203.0.113.61'), ban('203.0.113.62'), ban('203.0.113.63', { expiresAt: null })]), 1, 'the cap dropped the oldest');
      assert.deepEqual(
        q.peek(10).map((r) => [r.target, r.expiresAt === null]),
        [
          ['203.0.113.62', false],
          ['203.0.113.63', true],
        ],
      );
      assert.equal(q.purgeExpired(Date.now() + 7200_000), 1, 'a permanent ban never expires');
      assert.equal(q.count(), 1);
    } finally {
      store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the queue database failing: the bans are counted lost and logged once, nothing throws, no busy loop', async () => {
  await withSetup(async ({ lapi, store }) => {
    const { logger, lines } = logCapture();
    const own = new Store(':memory:');
    const m = startFleetMachine({ config: config(lapi.url, { batchWindowMs: 5 }), db: own.db, logger });
    try {
      own.db.close();
      for (let i = 0; i < 20; i++) {
        m.subscriber.handleBanNotice!({ action: 'ban', record: ban(`203.0.113.${90 + (i % 5)}`) });
        await new Promise((r) => setTimeout(r, 10));
      }
      await until('the losses counted', () => m.health().dropped.cap === 20);
      await new Promise((r) => setTimeout(r, 100));
      const errors = lines.filter((l) => /"level":50/.test(l));
      assert.equal(errors.length, 1, `the failure is logged once a minute, not per ban: ${errors.join('\n')}`);
      assert.match(errors[0]!, /database connection is not open/);
      assert.equal(lapi.attempts.length, 0);
      assert.equal(m.health().state, 'ok');
    } finally {
      await m.stop();
    }
    assert.equal(queuedRows(store), 0);
  });
});

test('what the machine pushes, coming back through the stream, is recognised as our own ban (no double work), whatever the source', () => {
  const now = Date.now();
  const cases: Array<Partial<BanRecord>> = [
    { rule: 'sip-auth', source: 'rule' },
    { rule: 'recidive', source: 'recidive', expiresAt: now + 7 * 86400_000 },
    { rule: 'manual', source: 'manual', expiresAt: null },
    { rule: 'manual', source: 'odoo' },
    { rule: 'manual', source: 'api', expiresAt: now + 600_000 },
  ];
  for (const c of cases) {
    const rec = ban('203.0.113.99', c, now);
    const pushedAt = now + 5000; // pushed a few seconds after the decision
    const alert = alertOf({ ...rec, id: 1, bannedAt: rec.createdAt }, pushedAt, { permanentMs: 8760 * 3600_000, machineId: 'pbx1' }) as unknown as Alert;
    const d = alert.decisions[0]!;
    const back = {
      id: 7,
      origin: d.origin,
      type: d.type,
      scope: d.scope,
      value: d.value,
      scenario: d.scenario,
      durationMs: parseGoDuration(d.duration)! - 300,
    };
    const t = targetOf(back);
    assert.ok(!('skip' in t));
    const local = { localBan: () => ({ rule: rec.rule, expiresAt: rec.expiresAt }) };
    // the stream seen 300 ms after the push
    assert.equal(isOwn(back, t, local, pushedAt + 300), true, `${alert.scenario} for a ${c.source} ban`);
    assert.equal(isOwn({ ...back, scenario: 'pbx-guardian/other-rule' }, t, local, pushedAt + 300), false, 'another rule: another guardian');
  }
  assert.equal(scenarioOf({ rule: 'manual', source: 'odoo' }), 'pbx-guardian/odoo');
});
