/**
 * Issue 12, finding 1: authentication is a property of each route. The daemon is started as
 * main.ts starts it with every listener on (Odoo job endpoint, REST with console and config files,
 * admin socket with the console route, metrics); every route fastify registered on every listener
 * must carry a policy, and every non-public one must have a sample in test/helpers/http-routes.ts
 * (so http-auth-routes sends it). A route without a policy must fail at registration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { startDaemon } from '../src/main.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';
import { installRouteAuth, routesOf, RoutePolicyError, TokenSet, PUBLIC } from '../src/net/auth.js';
import { FakeOdoo } from './helpers/fake-odoo.js';
import { fixturePath } from './helpers/fixtures.js';
import { PUBLIC_SAMPLES, SAMPLES } from './helpers/http-routes.js';

/** How many method + route pairs fastify itself serves (its printed route tree, one "(GET, HEAD)" per node). */
function fastifyRouteCount(app: FastifyInstance): number {
  let n = 0;
  for (const m of app.printRoutes({ commonPrefix: false }).matchAll(/\(([A-Z, ]+)\)/g)) n += m[1]!.split(',').length;
  return n;
}

/** Every HTTP server listening in this process (fastify's and plain node:http ones alike). */
function listeningHttpServers(): net.Server[] {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter((h): h is net.Server => h instanceof net.Server && h.listening && h.listenerCount('request') > 0);
}

test('every route of every listener, built as main.ts builds them with everything on, declares an auth policy', async (t) => {
  // what listens already belongs to other tests sharing this process (the unit lane runs many files in one)
  const before = new Set(listeningHttpServers());
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-policy-'));
  mkdirSync(join(dir, 'asterisk'));
  writeFileSync(join(dir, 'asterisk', 'extensions.conf'), '[default]\n');
  const odoo = new FakeOdoo();
  const odooUrl = await odoo.start();
  const sim = new AmiSimulator({ fixturesDir: fixturePath('ami'), username: 'guardian', secret: 's', loginFailDelayMs: 10 });
  await sim.listen();
  const config = buildConfig({
    stateDir: join(dir, 'state'),
    logLevel: 'silent',
    ami: { port: sim.port, secret: 's' },
    firewall: { backend: 'memory' },
    admin: { socket: join(dir, 'admin.sock') },
    metrics: { enabled: true, host: '127.0.0.1', port: 0 },
    odoo: {
      enabled: true,
      url: odooUrl,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      agentToken: 'agent-token-0123456789',
      listen: { host: '127.0.0.1', port: 0 },
    },
    rest: { enabled: true, port: 0, tokens: [{ name: 'crm', token: 'rest-token-0123456789abcdef', scopes: ['admin'] }] },
    console: { enabled: true },
    asteriskConfig: { enabled: true, dir: join(dir, 'asterisk') },
    webhooks: [{ name: 'crm', url: 'http://127.0.0.1:9/hook', events: ['GuardianBan'], secret: 'webhook-secret-0123456789' }],
  });
  const daemon = await startDaemon({ config, backend: new MemoryBackend(), logger: pino({ level: 'silent' }) });
  try {
    const sampled = new Set([...SAMPLES, ...PUBLIC_SAMPLES].map((s) => `${s.listener} ${s.method} ${s.route}`));
    let total = 0;
    for (const [name, app] of Object.entries(daemon.listeners)) {
      assert.ok(app, `listener ${name} is running`);
      const declared = routesOf(app);
      assert.ok(declared, `listener ${name} has no route auth installed`);
      assert.equal(declared.length, fastifyRouteCount(app), `listener ${name}: every route fastify serves went through the policy check`);
      for (const r of declared) assert.ok(app.hasRoute({ method: r.method as 'GET', url: r.url }), `${name} ${r.method} ${r.url} is served`);
      for (const r of declared) {
        total++;
        assert.ok(
          ['public', 'agent-token', 'bearer', 'local-socket'].includes(r.policy.kind),
          `${name} ${r.method} ${r.url}: policy ${JSON.stringify(r.policy)}`,
        );
        if (name === 'admin') assert.equal(r.policy.kind, 'local-socket', `admin ${r.method} ${r.url}`);
        if (name === 'agent') assert.equal(r.policy.kind, 'agent-token', `agent ${r.method} ${r.url}`);
        if (name === 'rest' && r.url !== '/v1/openapi.json') assert.equal(r.policy.kind, 'bearer', `rest ${r.method} ${r.url}`);
        if (name !== 'metrics' && r.method !== 'HEAD')
          assert.ok(sampled.has(`${name} ${r.method} ${r.url}`), `no sample request for ${name} ${r.method} ${r.url} in test/helpers/http-routes.ts`);
      }
    }
    // no HTTP listener of the daemon is left out (the FakeOdoo playing Odoo is the test's own)
    const ours = new Set(Object.values(daemon.listeners).map((a) => a!.server as net.Server));
    const fakeOdoo = (odoo as unknown as { server: net.Server }).server;
    const servers = listeningHttpServers().filter((srv) => !before.has(srv));
    assert.ok(servers.length >= 5, `found ${servers.length} HTTP servers; expected the daemon's 4 and the FakeOdoo`);
    for (const srv of servers)
      if (srv !== fakeOdoo) assert.ok(ours.has(srv), `an HTTP server listening on ${JSON.stringify(srv.address())} is not one of the daemon's listeners`);
    t.diagnostic(`${total} routes on ${Object.keys(daemon.listeners).length} listeners, each with a policy`);
  } finally {
    await daemon.stop();
    await sim.close();
    await odoo.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a route without a policy, or with one its listener cannot check, fails at registration', () => {
  const app = Fastify();
  installRouteAuth(app as unknown as FastifyInstance, { listener: 'rest', bearerTokens: new TokenSet() });
  assert.throws(() => app.get('/open', async () => 'x'), RoutePolicyError);
  assert.throws(() => app.get('/typo', { config: { auth: { kind: 'publik' } as never } }, async () => 'x'), /no auth policy/);
  assert.throws(
    () => app.get('/agent', { config: { auth: { kind: 'agent-token' } } }, async () => 'x'),
    /agent-token policy on a listener without an agent token/,
  );
  assert.throws(() => app.get('/noscope', { config: { auth: { kind: 'bearer', scope: '' } } }, async () => 'x'), RoutePolicyError);
  app.get('/ok', { config: { auth: PUBLIC } }, async () => 'x');
  assert.deepEqual(
    routesOf(app as unknown as FastifyInstance)!.map((r) => `${r.method} ${r.url}`),
    ['GET /ok', 'HEAD /ok'],
  );
});
