/**
 * The snapshots the judges read, taken from real stages in a real daemon: the Odoo bridge against
 * a FakeOdoo that changes the password or goes down, a webhook receiver answering 503, a state
 * store that refuses writes. Each is then judged (now, and a few minutes later for the thresholds).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { judgeOdoo, judgeStore, judgeWebhooks, type HealthReport } from '../src/health/index.js';
import { FakeOdoo } from './helpers/fake-odoo.js';
import { startTestDaemon, waitFor } from './helpers/daemon.js';

const MIN = 60_000;
const MAP = [{ id: 2, name: 'GuardianBan', source: 'AMI', model: 'asterisk_plus.security', method: 'on_guardian_ban', delay: 0, condition: false }];

const partOf = (report: HealthReport, name: string) => report.parts.find((p) => p.part === name)!;

test('odoo: logged in → healthy; Odoo down → the outbox and its oldest event are in the snapshot, unhealthy after 5 min; password changed → login refused', async () => {
  const odoo = new FakeOdoo({ eventsMap: MAP });
  const td = await startTestDaemon({ odoo });
  try {
    const d = td.daemon;
    await waitFor('events map downloaded', () => d.odoo!.forwarder.hasMap());
    await waitFor('logged in', () => d.odoo!.health().rpc?.loggedIn === true);
    const ok = partOf(d.health(), 'odoo');
    assert.equal(ok.enabled, true);
    assert.equal(ok.healthy, true, ok.problems.join('; '));
    assert.match(ok.summary, /db testdb: logged in as asterisk1; outbox empty; delivering directly/);

    odoo.mode = 'http503';
    const before = Date.now();
    await d.guardian.ban({ target: '203.0.113.40', durationSec: 600, source: 'manual', reason: 'health test' });
    await waitFor('the GuardianBan in the outbox', () => d.odoo!.health().outboxDepth >= 1, 10_000);
    const down = d.odoo!.health();
    assert.ok(down.oldestUndeliveredAt !== null && down.oldestUndeliveredAt >= before - 1000, 'the oldest undelivered event is dated');
    assert.ok(down.rpc!.failingSince !== null, 'the RPC client knows since when calls fail');
    assert.match(down.rpc!.lastError!.message, /503/);
    assert.equal(partOf(d.health(), 'odoo').healthy, true, 'a fresh outage is within bounds');
    const later = judgeOdoo(down, Date.now() + 6 * MIN);
    assert.equal(later.healthy, false);
    assert.ok(
      later.problems.some((p) => /fail since 6m ago .*503/.test(p)),
      later.problems.join('\n'),
    );
    assert.ok(
      later.problems.some((p) => /the oldest undelivered event was queued 6m ago \(1 in the outbox\)/.test(p)),
      later.problems.join('\n'),
    );

    odoo.mode = 'ok';
    await waitFor('outbox drained', () => d.odoo!.health().outboxDepth === 0, 15_000);
    assert.equal(d.odoo!.health().rpc!.failingSince, null, 'a delivered call ends the outage');

    odoo.password = 'rotated-in-odoo';
    await d.odoo!.reloadEvents().catch(() => undefined);
    await waitFor('login refused', () => d.odoo!.health().rpc?.authError != null, 10_000);
    const refused = partOf(d.health(), 'odoo');
    assert.equal(refused.healthy, false);
    assert.match(refused.problems[0]!, /Odoo refuses our login: Odoo rejected login for user asterisk1 on db testdb: check odoo\.user\/odoo\.password/);
    assert.match(refused.summary, /login REFUSED/);
    assert.equal(d.health().healthy, false);
  } finally {
    await td.close();
  }
});

test('webhooks: a receiver answering 503 is failing since its first refusal; unhealthy after 5 min; delivering again clears it', async () => {
  let status = 503;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(status).end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const td = await startTestDaemon({
    ami: false,
    config: {
      webhooks: [{ name: 'crm', url: `http://127.0.0.1:${port}/hook`, events: ['GuardianBan'], secret: 'webhook-secret-0123456789', maxBackoffMs: 50 }],
    },
  });
  try {
    const d = td.daemon;
    assert.equal(partOf(d.health(), 'webhooks').healthy, true);
    await d.guardian.ban({ target: '203.0.113.41', durationSec: 600, source: 'manual' });
    await waitFor('the subscriber failing', () => d.webhooks!.health()[0]!.failingSince !== null, 10_000);
    const snap = d.webhooks!.health();
    assert.equal(snap[0]!.lastError, 'answered HTTP 503');
    assert.equal(snap[0]!.depth, 1);
    assert.ok(snap[0]!.oldestUndeliveredAt !== null);
    assert.match(partOf(d.health(), 'webhooks').summary, /crm FAILING since \d+s ago \(1 waiting\)/);
    const later = judgeWebhooks(snap, Date.now() + 6 * MIN);
    assert.equal(later.healthy, false);
    assert.match(later.problems[0]!, /webhook crm fails since 6m ago \(answered HTTP 503\): 1 events wait/);

    status = 200;
    await waitFor('delivered', () => d.webhooks!.health()[0]!.depth === 0, 10_000);
    assert.equal(d.webhooks!.health()[0]!.failingSince, null);
    assert.match(partOf(d.health(), 'webhooks').summary, /crm delivering \(0 waiting\)/);
  } finally {
    await td.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('store: writes refused by SQLite (read-only) → unhealthy with the error; recovered writes stay reported for 5 minutes', async () => {
  const td = await startTestDaemon({ ami: false });
  try {
    const d = td.daemon;
    assert.equal(partOf(d.health(), 'store').healthy, true);
    assert.equal(partOf(d.health(), 'store').detail.onDisk, true);
    d.store.db.pragma('query_only = ON');
    await d.guardian.ban({ target: '203.0.113.42', durationSec: 600, source: 'manual' });
    await waitFor('a failed write', () => d.store.lastWriteError !== null);
    const failing = partOf(d.health(), 'store');
    assert.equal(failing.healthy, false);
    assert.match(failing.problems[0]!, /1 state writes failed \d+s ago \(.*readonly.*\): those bans are in the kernel but may not survive a restart/i);
    d.store.db.pragma('query_only = OFF');
    await d.guardian.ban({ target: '203.0.113.43', durationSec: 600, source: 'manual' });
    await waitFor('a good write', () => (d.store.lastWriteOkAt ?? 0) > d.store.lastWriteError!.at);
    const recovered = partOf(d.health(), 'store');
    assert.equal(recovered.healthy, false, 'still reported right after');
    assert.match(recovered.problems[0]!, /writes succeed again since/);
    const snapshot = {
      onDisk: d.store.onDisk,
      path: d.store.path,
      stateDir: td.config.stateDir,
      openError: null,
      lastWriteError: d.store.lastWriteError,
      lastWriteOkAt: d.store.lastWriteOkAt,
    };
    assert.equal(judgeStore(snapshot, Date.now() + 6 * MIN).healthy, true, 'healthy once the error is 5 minutes old');
  } finally {
    await td.close();
  }
});
