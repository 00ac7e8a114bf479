/**
 * startDaemon's components, in process with a real daemon: started in the order docs/startup.md
 * gives (lock, store, listeners, then the kernel, then AMI), stopped in reverse, and a stop that
 * fails does not keep the rest (the lock last) from stopping.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../src/config/index.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { startDaemon } from '../src/main.js';
import { LOCK_FILE } from '../src/store/index.js';
import { FakeOdoo } from './helpers/fake-odoo.js';
import { fixturePath } from './helpers/fixtures.js';
import { LogCapture } from './helpers/daemon.js';

test('every part on: components start in order and stop in reverse; a failing stop is logged, the rest and the lock still stopped, and stop() rejects (exit 4)', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'pbxg-life-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const odoo = new FakeOdoo();
  const url = await odoo.start();
  t.after(() => odoo.stop());
  const sim = new AmiSimulator({ fixturesDir: fixturePath('ami'), username: 'guardian', secret: 's' });
  await sim.listen();
  t.after(() => sim.close());
  const config = buildConfig({
    stateDir: join(base, 'state'),
    ami: { port: sim.port, secret: 's' },
    firewall: { backend: 'memory' },
    metrics: { enabled: true, host: '127.0.0.1', port: 0 },
    admin: { socket: join(base, 'admin.sock') },
    rest: { enabled: true, host: '127.0.0.1', port: 0, tokens: [{ token: 'x'.repeat(24), scopes: ['read'], name: 'crm' }] },
    odoo: {
      enabled: true,
      url,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      agentToken: 'agent-token-0123456789',
      listen: { host: '127.0.0.1', port: 0 },
    },
    webhooks: [{ name: 'crm', url: 'http://127.0.0.1:9/hook', events: ['GuardianBan'], secret: 'webhook-secret-0123456789' }],
  });
  const logs = new LogCapture('warn');
  const d = await startDaemon({ config, backend: new MemoryBackend(), logger: logs.logger });
  assert.deepEqual(d.components(), [
    'state lock',
    'state store',
    'enforcer',
    'auth-failure tracker',
    'admin socket',
    'metrics endpoint',
    'REST API',
    'Odoo bridge',
    'webhooks',
    'accounts',
    'guard timers',
    'fraud guard',
    'host name lookups',
    'host watch',
    'AMI client',
    'detection sources',
  ]);
  const stopped: string[] = [];
  const wh = d.webhooks!;
  const whClose = wh.close.bind(wh);
  wh.close = async () => {
    stopped.push('webhooks');
    await whClose();
    throw new Error('webhooks would not close');
  };
  const odooClose = d.odoo!.close;
  d.odoo!.close = async () => {
    stopped.push('Odoo bridge');
    await odooClose();
  };
  await assert.rejects(d.stop(), /stopping failed for: webhooks \(logged above\); everything else stopped, the lock released/);
  assert.deepEqual(stopped, ['webhooks', 'Odoo bridge'], 'the webhooks stop first (started after the Odoo bridge), the bridge stops after the failure');
  assert.equal(existsSync(join(base, 'state', LOCK_FILE)), false, 'the lock was released');
  assert.equal(existsSync(join(base, 'admin.sock')), false, 'the admin socket was closed');
  assert.deepEqual(d.components(), []);
  const failure = logs.lines.find((l) => l.component === 'webhooks');
  assert.match(String(failure?.msg), /stopping the webhooks failed; stopping the rest/);
  assert.match(JSON.stringify(failure?.err), /webhooks would not close/);
});
