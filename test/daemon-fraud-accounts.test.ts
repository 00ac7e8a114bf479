/**
 * The fraud and accounts stages together through the whole daemon: the simulated AMI peer sends
 * the real Asterisk 22 registrations of account 102 (its usual network, then 198.51.100.77); the
 * new network raises GuardianAccountAnomaly; with `accounts.policy.newNetwork: restrict` the
 * account is restricted to internal calls: DBPut guardian-blocked/102 = internal;<epoch> on the
 * peer's wire (answered with the real Success frame), `pbx-guardian fraud --json` says the key is
 * written; 102's international call from the new network gets through the (simulated) dialplan
 * and is hung up by its exact channel name; `pbx-guardian acknowledge 102` sends DBDel. The
 * Guardian* events reach a webhook (the HMAC signature checked) and the fake Odoo.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { startDaemon, type Daemon } from '../src/main.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';
import type { FraudSnapshot } from '../src/fraud/index.js';
import { FakeOdoo } from './helpers/fake-odoo.js';
import { cliOnSocket } from './helpers/cli.js';
import { fixturePath, readFixture } from './helpers/fixtures.js';
import { CALLS, DBDEL_OK, DBPUT_OK, HANGUP_OK, SHIPPED_DESTINATIONS, fixtureValues, securityEventRow } from './helpers/fraud.js';

const SECRET = 'webhook-secret-0123456789';
const EVENTS = ['GuardianAccountAnomaly', 'GuardianAccountBlocked', 'GuardianAccountUnblocked', 'GuardianFraud'];

interface Delivery {
  headers: http.IncomingHttpHeaders;
  raw: string;
}

function receiver(): { server: http.Server; got: Delivery[] } {
  const got: Delivery[] = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      got.push({ headers: req.headers, raw });
      res.writeHead(204).end();
    });
  });
  return { server, got };
}

/** a recorded response frame with the request's ActionID */
const answer = (frame: string, id: string | undefined) => frame.replace(/ActionID: [^\r]*/, `ActionID: ${id ?? ''}`).trimEnd() + '\r\n\r\n';

test('fraud + accounts through the daemon: the new network restricts 102 in AstDB, its outbound call is hung up, acknowledge lifts it; webhook and Odoo get the events', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-fraud-acc-'));
  const destinations = join(dir, 'destinations.yaml');
  writeFileSync(destinations, readFileSync(SHIPPED_DESTINATIONS));
  const ev = securityEventRow;
  const odoo = new FakeOdoo({
    eventsMap: [
      ev(1, 'GuardianAccountAnomaly', 'on_anomaly'),
      ev(2, 'GuardianAccountBlocked', 'on_blocked'),
      ev(3, 'GuardianAccountUnblocked', 'on_unblocked'),
    ],
  });
  const odooUrl = await odoo.start();
  const hook = receiver();
  await new Promise<void>((r) => hook.server.listen(0, '127.0.0.1', r));
  const hookPort = (hook.server.address() as AddressInfo).port;
  const sim = new AmiSimulator({
    fixturesDir: fixturePath('ami'),
    username: 'guardian',
    secret: 's',
    loginFailDelayMs: 10,
    // an AMI user with write = system,call: DBPut, DBDel and Hangup answered as Asterisk 22 did
    onAction: (req, reply) => {
      const frame = { dbput: DBPUT_OK, dbdel: DBDEL_OK, hangup: HANGUP_OK }[req.action.toLowerCase()];
      if (frame === undefined) return false;
      reply(answer(frame, req.actionId));
      return true;
    },
  });
  await sim.listen();
  let daemon: Daemon | undefined;
  const socket = join(dir, 'admin.sock');
  try {
    const config = buildConfig({
      stateDir: dir,
      logLevel: 'silent',
      admin: { socket },
      ami: { port: sim.port, secret: 's' },
      firewall: { backend: 'memory' },
      metrics: { enabled: false },
      odoo: {
        enabled: true,
        url: odooUrl,
        db: odoo.db,
        user: odoo.user,
        password: odoo.password,
        agentToken: 'agent-token-0123456789',
        listen: { host: '127.0.0.1', port: 0 },
      },
      webhooks: [{ name: 'soc', url: `http://127.0.0.1:${hookPort}/hook`, events: EVENTS, secret: SECRET }],
      accounts: { learningPeriod: '0s', userAgentLookup: false, policy: { newNetwork: 'restrict' } },
      fraud: { destinations, dialingPlan: { country: '49' } },
    });
    daemon = await startDaemon({ config, backend: new MemoryBackend(), logger: pino({ level: 'silent' }) });
    const d = daemon;
    await odoo.waitFor(() => d.ami?.state === 'connected', 5000, 'AMI login');
    const sent = (action: string) =>
      sim.requests.filter((r) => r.action === action).map((r) => Object.fromEntries(r.headers.filter(([k]) => k !== 'ActionID')));

    // 102's usual phone (its first network, learned silently), then the same account from 198.51.100.77
    sim.broadcast(readFixture(`${CALLS}/account-pjsip-register-usual-address.raw`));
    await odoo.waitFor(() => d.accounts?.list().accounts.some((a) => a.account === '102') ?? false, 5000, '102 learned');
    assert.deepEqual(sent('DBPut'), [], 'the usual network raises nothing');
    sim.broadcast(readFixture(`${CALLS}/account-pjsip-register-new-network.raw`));
    await odoo.waitFor(() => sent('DBPut').length === 1, 5000, 'DBPut of the restriction');
    const put = sent('DBPut')[0]!;
    assert.deepEqual({ ...put, Val: put.Val!.replace(/\d{10}$/, 'EPOCH') }, { Action: 'DBPut', Family: 'guardian-blocked', Key: '102', Val: 'internal;EPOCH' });
    await odoo.waitFor(() => d.fraud!.snapshot().blocked[0]?.astdb.state === 'written', 5000, 'the Success read');

    // the operator's view, through the CLI on the admin socket
    const view = await cliOnSocket(socket, 'fraud', '--json');
    assert.equal(view.status, 0, view.stderr);
    const snap = JSON.parse(view.stdout) as FraudSnapshot;
    assert.deepEqual(
      snap.blocked.map((b) => [b.account, b.mode, b.policy, b.astdb.state]),
      [['102', 'internal', 'account-anomaly', 'written']],
    );
    const text = await cliOnSocket(socket, 'fraud');
    assert.match(text.stdout, /102 {2}internal {2}since .* {2}AstDB: written {2}account-anomaly: account 102 from 198\.51\.100\.0\/24/);
    const listed = await cliOnSocket(socket, 'accounts', '--json');
    const acc = (JSON.parse(listed.stdout) as { accounts: Array<{ account: string; restricted: boolean }> }).accounts.find((a) => a.account === '102');
    assert.equal(acc?.restricted, true);

    // 102 dials an international number from the new network: the dialplan (simulated) let it through; the guardian hangs it up
    sim.broadcast(readFixture(`${CALLS}/call-pjsip-new-network-international.raw`));
    const caller = fixtureValues('call-pjsip-new-network-international.raw', 'DialBegin', 'Channel')[0]!;
    await odoo.waitFor(() => sent('Hangup').length >= 1, 5000, 'Hangup of the call that got through');
    assert.deepEqual(sent('Hangup')[0], { Action: 'Hangup', Channel: caller });
    assert.ok(d.fraud!.snapshot().decisions.some((x) => x.policy === 'blocked' && x.account === '102'));

    // acknowledged: the anomaly is 102's own; the restriction goes (DBDel)
    const ack = await cliOnSocket(socket, 'acknowledge', '102');
    assert.equal(ack.status, 0, ack.stderr);
    assert.match(ack.stdout, /account 102: 1 anomalies acknowledged; restriction lifted/);
    await odoo.waitFor(() => sent('DBDel').length === 1, 5000, 'DBDel');
    assert.deepEqual(sent('DBDel')[0], { Action: 'DBDel', Family: 'guardian-blocked', Key: '102' });
    assert.deepEqual(d.fraud!.snapshot().blocked, []);
    assert.deepEqual(d.store.blocks.activeBlocks(), []);

    // the events: to the webhook, signed, and to Odoo
    await odoo.waitFor(() => hook.got.filter((g) => g.headers['x-pbx-guardian-event'] !== 'GuardianFraud').length >= 3, 5000, 'webhook deliveries');
    for (const g of hook.got) {
      const ts = String(g.headers['x-pbx-guardian-timestamp']);
      assert.equal(g.headers['x-pbx-guardian-signature'], 'sha256=' + createHmac('sha256', SECRET).update(`${ts}.${g.raw}`).digest('hex'));
    }
    const bodies = hook.got.map((g) => JSON.parse(g.raw) as { event: string; data: Record<string, string> });
    const byEvent = (name: string) => bodies.filter((b) => b.event === name).map((b) => b.data);
    const [anomaly] = byEvent('GuardianAccountAnomaly');
    assert.equal(anomaly?.Account, '102');
    assert.equal(anomaly?.Signal, 'new-network');
    assert.equal(anomaly?.Address, '198.51.100.77');
    assert.equal(anomaly?.Action, 'restrict');
    assert.deepEqual(
      byEvent('GuardianAccountBlocked').map((b) => [b.Account, b.Mode, b.Policy]),
      [['102', 'internal', 'account-anomaly']],
    );
    assert.deepEqual(
      byEvent('GuardianAccountUnblocked').map((b) => [b.Account, b.By]),
      [['102', 'acknowledged']],
    );
    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.security', 'on_unblocked').length === 1, 5000, 'Odoo: GuardianAccountUnblocked');
    assert.match(JSON.stringify(odoo.callsTo('asterisk_plus.security', 'on_anomaly')), /"Signal":"new-network"/);
    assert.match(JSON.stringify(odoo.callsTo('asterisk_plus.security', 'on_blocked')), /"Mode":"internal"/);
    assert.deepEqual(odoo.violations, []);
  } finally {
    await daemon?.stop();
    await sim.close();
    await odoo.stop();
    await new Promise((r) => hook.server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});
