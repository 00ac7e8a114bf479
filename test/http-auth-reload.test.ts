/**
 * Issue 12, finding 8: a reload applies credentials at once. After removing a REST token, rotating
 * odoo.agentToken and a webhook's url and secret, and POST /reload on the admin socket (the same
 * reload SIGHUP and the Odoo job agent.reload_config run), the removed token and the old agent
 * token are refused (and do nothing), the new ones work, events go to the new url signed with the
 * new secret, and the answer names what was applied and what needs a restart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { stringify } from 'yaml';
import { loadConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { startDaemon } from '../src/main.js';
import { signature } from '../src/webhooks/index.js';
import { FakeOdoo } from './helpers/fake-odoo.js';
import { send } from './helpers/http-listeners.js';
import { waitFor } from './helpers/daemon.js';

const KEEP = 'rest-kept-token-0123456789';
const REMOVED = 'rest-removed-token-0123456789';
const OLD_AGENT = 'agent-old-token-0123456789';
const NEW_AGENT = 'agent-new-token-0123456789';

interface Hook {
  secret: string;
  url: string;
  got: Array<{ headers: IncomingMessage['headers']; body: string }>;
  close(): Promise<void>;
}

async function receiver(secret: string): Promise<Hook> {
  const got: Hook['got'] = [];
  const srv = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/hook`;
  return { secret, url, got, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

function postJob(port: number, token: string): Promise<number> {
  const body = JSON.stringify({ fun: 'test.ping' });
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/app/asterisk_plus/agent',
        rejectUnauthorized: false,
        agent: false,
        headers: { 'content-type': 'application/json', 'x-token': token, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('reload applies REST tokens, the agent token and webhook url/secret at once, and names what needs a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-reload-'));
  const odoo = new FakeOdoo();
  const odooUrl = await odoo.start();
  const hook1 = await receiver('webhook-secret-one-0123456789');
  const hook2 = await receiver('webhook-secret-two-0123456789');
  const configPath = join(dir, 'guardian.yaml');
  const doc = (agentToken: string, tokens: Array<{ name: string; token: string; scopes: string[] }>, hook: Hook, restPort: number) => ({
    stateDir: join(dir, 'state'),
    logLevel: 'silent',
    ami: { enabled: false },
    firewall: { backend: 'memory' },
    admin: { socket: join(dir, 'admin.sock') },
    metrics: { enabled: false },
    odoo: {
      enabled: true,
      url: odooUrl,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      agentToken,
      listen: { host: '127.0.0.1', port: 0 },
      rpcRetries: 0,
    },
    rest: { enabled: true, port: restPort, tokens },
    webhooks: [{ name: 'crm', url: hook.url, events: ['GuardianBan'], secret: hook.secret }],
  });
  writeFileSync(
    configPath,
    stringify(
      doc(
        OLD_AGENT,
        [
          { name: 'kept', token: KEEP, scopes: ['admin'] },
          { name: 'removed', token: REMOVED, scopes: ['admin'] },
        ],
        hook1,
        0,
      ),
    ),
  );
  const daemon = await startDaemon({ config: loadConfig(configPath, {}), configPath, backend: new MemoryBackend(), logger: pino({ level: 'silent' }) });
  try {
    const rest = { port: daemon.rest!.address.port };
    const agentPort = daemon.odoo!.agentAddress!.port;
    const bearer = (t: string) => ({ authorization: `Bearer ${t}`, 'content-type': 'application/json' });
    assert.equal((await send(rest, 'GET', '/v1/bans', bearer(REMOVED))).status, 200, 'before the reload the token works');
    assert.equal(await postJob(agentPort, OLD_AGENT), 200);

    writeFileSync(configPath, stringify(doc(NEW_AGENT, [{ name: 'kept', token: KEEP, scopes: ['admin'] }], hook2, 48999)));
    const answer = await send({ socketPath: join(dir, 'admin.sock') }, 'POST', '/reload');
    assert.equal(answer.status, 200, answer.body);

    // the removed REST token and the old agent token: refused, and nothing done
    const refused = await send(rest, 'POST', '/v1/bans', bearer(REMOVED), JSON.stringify({ target: '203.0.113.31' }));
    assert.equal(refused.status, 401, refused.body);
    assert.equal(await postJob(agentPort, OLD_AGENT), 401);
    assert.deepEqual(daemon.guardian.listBans(), []);
    // the kept REST token and the new agent token work
    assert.equal(await postJob(agentPort, NEW_AGENT), 200);
    const banned = await send(rest, 'POST', '/v1/bans', bearer(KEEP), JSON.stringify({ target: '203.0.113.32', duration: '1h' }));
    assert.equal(banned.status, 201, banned.body);
    // the ban event goes to the new url, signed with the new secret
    await waitFor('the webhook delivery', () => hook2.got.length > 0);
    const [delivery] = hook2.got;
    const ts = String(delivery!.headers['x-pbx-guardian-timestamp']);
    assert.equal(delivery!.headers['x-pbx-guardian-signature'], signature(hook2.secret, ts, delivery!.body));
    assert.equal(hook1.got.length, 0, 'nothing to the old url');

    const r = JSON.parse(answer.body) as { applied: string[]; restartNeeded: string[] };
    assert.ok(r.applied.includes('rest.tokens') && r.applied.includes('odoo.agentToken'), answer.body);
    assert.ok(
      r.applied.some((a) => /^webhooks crm: url, secret$/.test(a)),
      answer.body,
    );
    assert.deepEqual(r.restartNeeded, ['rest.port'], answer.body);
    assert.ok(!answer.body.includes(NEW_AGENT) && !answer.body.includes(hook2.secret), 'the answer names keys, never secrets');
  } finally {
    await daemon.stop();
    await odoo.stop();
    await hook1.close();
    await hook2.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
