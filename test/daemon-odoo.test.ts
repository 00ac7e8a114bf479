import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { startDaemon, type Daemon } from '../src/main.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';
import { loadTemplate, replayBytes } from '../src/demo/attack.js';
import { FakeOdoo } from './helpers/fake-odoo.js';
import { fixturePath } from './helpers/fixtures.js';
import { postJob as postAgentJob } from './helpers/agent-job.js';

const TOKEN = 'agent-token-0123456789';

const postJob = (port: number, body: unknown, token = TOKEN) => postAgentJob(port, body, token);

test('through the daemon: Odoo bans and unbans reach the store and the firewall; guard bans are forwarded to Odoo', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-odoo-e2e-'));
  const odoo = new FakeOdoo({
    eventsMap: [
      { id: 1, name: 'GuardianBan', source: 'AMI', model: 'asterisk_plus.security', method: 'on_guardian_ban', delay: 0, is_enabled: true, condition: false },
    ],
  });
  const odooUrl = await odoo.start();
  const sim = new AmiSimulator({ fixturesDir: fixturePath('ami'), username: 'guardian', secret: 's', loginFailDelayMs: 10 });
  await sim.listen();
  const backend = new MemoryBackend();
  let daemon: Daemon | undefined;
  try {
    const config = buildConfig({
      stateDir: dir,
      logLevel: 'silent',
      ami: { port: sim.port, secret: 's' },
      firewall: { backend: 'memory' },
      metrics: { enabled: false },
      odoo: { enabled: true, url: odooUrl, db: odoo.db, user: odoo.user, password: odoo.password, agentToken: TOKEN, listen: { host: '127.0.0.1', port: 0 } },
    });
    daemon = await startDaemon({ config, backend, logger: pino({ level: 'silent' }), adminSocket: false });
    const d = daemon;
    const port = (d.odoo!.agentAddress as { port: number }).port;
    await odoo.waitFor(() => d.ami?.state === 'connected', 5000, 'AMI login');
    // Odoo's events map may ask for any class: the login asks for everything the user may read
    assert.equal(sim.requests.find((r) => r.action.toLowerCase() === 'login')?.headers.find(([k]) => k === 'Events')?.[1], 'on');

    const wrong = await postJob(port, { fun: 'security.ban', args: ['203.0.113.80'] }, 'wrong-token');
    assert.equal(wrong.status, 401);

    const ban = await postJob(port, {
      fun: 'security.ban',
      args: ['203.0.113.80'],
      kwargs: { duration: 600, reason: 'from Odoo' },
      res_model: 'asterisk_plus.server',
      res_method: 'ban_result',
      pass_back: { n: 1 },
    });
    assert.ok(ban.status >= 200 && ban.status < 300, ban.body);
    await odoo.waitFor(() => d.store.activeBans(Date.now()).some((b) => b.target === '203.0.113.80' && b.source === 'odoo'), 5000, 'ban in the store');
    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.server', 'ban_result').length === 1, 5000, 'ban result posted back');
    // the result is posted when the ban is decided; the kernel write follows within the enforcer's batch window
    let inKernel = false;
    for (let i = 0; i < 200 && !inKernel; i++) {
      inKernel = (await backend.list()).some((e) => e.target === '203.0.113.80');
      if (!inKernel) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(inKernel, 'ban in the firewall backend');

    const refused = await postJob(port, { fun: 'security.ban', args: ['127.0.0.1'], res_model: 'asterisk_plus.server', res_method: 'ban_result' });
    assert.ok(refused.status < 300);
    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.server', 'ban_result').length === 2, 5000, 'refusal posted back');
    assert.match(JSON.stringify(odoo.callsTo('asterisk_plus.server', 'ban_result')[1]), /allow-listed/);

    await postJob(port, { fun: 'security.unban', args: ['203.0.113.80'] });
    await odoo.waitFor(() => d.store.activeBans(Date.now()).length === 0, 5000, 'unban in the store');
    for (let i = 0; i < 100 && (await backend.list()).some((e) => e.target === '203.0.113.80'); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(
      (await backend.list()).some((e) => e.target === '203.0.113.80'),
      false,
      'unban in the firewall backend',
    );

    const attack = replayBytes(loadTemplate(fixturePath('ami'), 'security-sip-register-wrong-password.raw'), '198.51.100.9');
    for (let i = 0; i < 5; i++) sim.broadcast(attack);
    await odoo.waitFor(() => JSON.stringify(odoo.callsTo('asterisk_plus.security', 'on_guardian_ban')).includes('198.51.100.9'), 5000, 'GuardianBan forwarded');
    const forwarded = JSON.stringify(odoo.callsTo('asterisk_plus.security', 'on_guardian_ban'));
    assert.match(forwarded, /198\.51\.100\.9/);
    assert.match(forwarded, /auth-failure/);
    assert.deepEqual(odoo.violations, [], 'every JSON-RPC payload matched the contract');
  } finally {
    await daemon?.stop();
    await sim.close();
    await odoo.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
