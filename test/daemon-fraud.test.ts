/**
 * The fraud guard through the whole daemon: the real Asterisk 22 burst is sent by the simulated
 * AMI peer over TCP; the Hangup and DBPut actions arrive on its wire with the exact channel names
 * and the account; the peer refuses them (Response: Error, as an AMI user without write=system
 * would), so they are retried, and the GuardianFraud alert reaches Odoo anyway; the block is in
 * the store and in `GET /fraud`; unblocking from Odoo's job sends DBDel and clears the row.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { startDaemon, type Daemon } from '../src/main.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';
import { FakeOdoo } from './helpers/fake-odoo.js';
import { fixturePath, readFixture } from './helpers/fixtures.js';
import { postJob } from './helpers/agent-job.js';
import { fixtureValues, SHIPPED_DESTINATIONS, securityEventRow } from './helpers/fraud.js';

const TOKEN = 'agent-token-0123456789';

test('through the daemon: the burst is hung up and blocked over AMI (retried while refused), alerted to Odoo, and unblocked by an Odoo job', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-fraud-e2e-'));
  const destinations = join(dir, 'destinations.yaml');
  writeFileSync(destinations, readFileSync(SHIPPED_DESTINATIONS));
  const ev = securityEventRow;
  const odoo = new FakeOdoo({
    eventsMap: [ev(1, 'GuardianFraud', 'on_fraud'), ev(2, 'GuardianAccountBlocked', 'on_blocked'), ev(3, 'GuardianAccountUnblocked', 'on_unblocked')],
  });
  const odooUrl = await odoo.start();
  const sim = new AmiSimulator({ fixturesDir: fixturePath('ami'), username: 'guardian', secret: 's', loginFailDelayMs: 10 });
  await sim.listen();
  let daemon: Daemon | undefined;
  try {
    const config = buildConfig({
      stateDir: dir,
      logLevel: 'silent',
      admin: { socket: join(dir, 'admin.sock') },
      ami: { port: sim.port, secret: 's' },
      firewall: { backend: 'memory' },
      metrics: { enabled: false },
      odoo: { enabled: true, url: odooUrl, db: odoo.db, user: odoo.user, password: odoo.password, agentToken: TOKEN, listen: { host: '127.0.0.1', port: 0 } },
      fraud: {
        destinations,
        dialingPlan: { country: '49' },
        hangup: { attempts: 3, retryMs: 10, maxRetryMs: 20 },
        block: { attempts: 3, retryMs: 10, maxRetryMs: 20 },
      },
    });
    daemon = await startDaemon({ config, backend: new MemoryBackend(), logger: pino({ level: 'silent' }) });
    const d = daemon;
    await odoo.waitFor(() => d.ami?.state === 'connected', 5000, 'AMI login');
    sim.broadcast(readFixture('ami-asterisk22-calls/call-pjsip-burst-international.raw'));

    const sent = (action: string) =>
      sim.requests.filter((r) => r.action === action).map((r) => Object.fromEntries(r.headers.filter(([k]) => k !== 'ActionID')));
    await odoo.waitFor(() => sent('DBPut').length >= 3 && sent('Hangup').length >= 30, 5000, 'Hangup and DBPut retried up to their attempts');
    const callers = fixtureValues('call-pjsip-burst-international.raw', 'DialBegin', 'Channel');
    assert.deepEqual([...new Set(sent('Hangup').map((h) => h.Channel))].sort(), [...callers].sort());
    assert.equal(sent('Hangup').length, 30, '3 attempts per channel, then given up');
    assert.deepEqual(sent('DBPut')[0], { Action: 'DBPut', Family: 'guardian-blocked', Key: '101', Val: sent('DBPut')[0]!.Val });
    assert.match(sent('DBPut')[0]!.Val!, /^all;\d{10}$/);

    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.security', 'on_fraud').length >= 1, 5000, 'GuardianFraud forwarded');
    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.security', 'on_blocked').length === 1, 5000, 'GuardianAccountBlocked forwarded');
    const alert = JSON.stringify(odoo.callsTo('asterisk_plus.security', 'on_fraud'));
    assert.match(alert, /"Policy":"burst"/);
    assert.match(alert, /"Account":"101"/);
    assert.deepEqual(
      d.store.blocks.activeBlocks().map((b) => b.account),
      ['101'],
    );

    await odoo.waitFor(() => d.fraud!.snapshot().blocked[0]?.astdb.state === 'failed', 5000, 'the third DBPut refused');
    const view = await d.listeners.admin!.inject({ method: 'GET', url: '/fraud' });
    assert.equal(view.statusCode, 200);
    const snap = view.json<{
      blocked: Array<{ account: string; astdb: { state: string; attempts: number } }>;
      live: Array<{ account: string; calls: number }>;
    }>();
    assert.deepEqual(
      snap.blocked.map((b) => [b.account, b.astdb.state, b.astdb.attempts]),
      [['101', 'failed', 3]],
      'the peer refused every DBPut: the view says the key is not written',
    );
    assert.deepEqual(
      snap.live.map((a) => [a.account, a.calls]),
      [['101', 10]],
      'the ten calls are still up: the peer refused every Hangup',
    );
    const metrics = await d.metrics.registry.getSingleMetricAsString('pbx_guardian_fraud_decisions_total');
    assert.match(metrics, /policy="burst",action="hangup"\} 1/);
    assert.match(await d.metrics.registry.getSingleMetricAsString('pbx_guardian_fraud_blocked_accounts'), / 1$/m);

    const port = (d.odoo!.agentAddress as { port: number }).port;
    const job = await postJob(port, { fun: 'security.unblock_account', args: ['101'], res_model: 'asterisk_plus.server', res_method: 'unblock_result' }, TOKEN);
    assert.ok(job.status < 300, job.body);
    await odoo.waitFor(() => sent('DBDel').length >= 1, 5000, 'DBDel sent');
    assert.deepEqual(sent('DBDel')[0], { Action: 'DBDel', Family: 'guardian-blocked', Key: '101' });
    assert.deepEqual(d.store.blocks.activeBlocks(), []);
    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.security', 'on_unblocked').length === 1, 5000, 'GuardianAccountUnblocked forwarded');
    const again = await d.listeners.admin!.inject({ method: 'DELETE', url: '/fraud/blocks/101' });
    assert.equal(again.statusCode, 404);
    assert.equal(again.json<{ code: string }>().code, 'NOT_BLOCKED');
    const bad = await d.listeners.admin!.inject({ method: 'DELETE', url: `/fraud/blocks/${encodeURIComponent('x\r\nAction: Originate')}` });
    assert.equal(bad.statusCode, 400);
    assert.deepEqual(odoo.violations, []);
  } finally {
    await daemon?.stop();
    await sim.close();
    await odoo.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
