/**
 * Issue 12, finding 1: every route of the job endpoint, the REST API and the admin app, sent
 * without, with a wrong and with a right credential, under path variants (percent-encoded letters,
 * double slashes, trailing slash, case, ";" parameters, "?" query, dot segments, encoded slashes)
 * and methods (the route's, HEAD, OPTIONS), over real HTTP. Only the right credential may ever
 * reach a handler: checked on what handlers change (jobs submitted, AMI writes, bans, store rows,
 * firewall entries, config files), not only on the status.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAdminApp, listenAdminSocket } from '../src/admin/admin.js';
import { AGENT, REST_ADMIN, REST_READ, send, startListeners, type Listeners } from './helpers/http-listeners.js';
import { makeGuardian } from './helpers/guard.js';
import { PUBLIC_SAMPLES, SAMPLES, pathVariants, type ListenerName, type Sample } from './helpers/http-routes.js';

function wrongCredentials(listener: ListenerName): Array<Record<string, string>> {
  const none = {};
  if (listener === 'agent') {
    return [
      none,
      { 'x-token': 'wrong' },
      { 'x-token': AGENT + 'x' },
      { 'x-token': AGENT.slice(0, -1) },
      { authorization: `Bearer ${AGENT}` },
      { 'x-token': REST_ADMIN },
    ];
  }
  if (listener === 'rest') {
    return [
      none,
      { authorization: 'Bearer wrong-token-0123456789' },
      { authorization: `Bearer ${REST_ADMIN.slice(0, -1)}` },
      { authorization: REST_ADMIN },
      { 'x-token': REST_ADMIN },
      { authorization: `Bearer ${AGENT}` },
    ];
  }
  // admin on TCP: no credential is right; the unix socket is the credential
  return [none, { 'x-token': AGENT }, { authorization: `Bearer ${REST_ADMIN}` }];
}

const rightCredentials = (listener: ListenerName): Record<string, string> | null =>
  listener === 'agent' ? { 'x-token': AGENT } : listener === 'rest' ? { authorization: `Bearer ${REST_ADMIN}` } : null;

const cheap = (l: Listeners) => l.touched.n + l.submitted.length + l.ami.actions.length;

async function request(l: Listeners, s: Sample, method: string, path: string, creds: Record<string, string>) {
  const headers: Record<string, string> = { ...creds };
  let body: string | undefined;
  if (s.body !== undefined && method !== 'HEAD' && method !== 'OPTIONS' && method !== 'GET') {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(s.body);
  }
  return send({ port: l.ports[s.listener] }, method, path, headers, body);
}

test('finding 1: POST /app/asterisk_plus/%61gent without a token is refused and runs no job', async () => {
  const l = await startListeners();
  try {
    const before = await l.state();
    const r = await send(
      { port: l.ports.agent },
      'POST',
      '/app/asterisk_plus/%61gent',
      { 'content-type': 'application/json' },
      JSON.stringify({ fun: 'security.ban', args: ['203.0.113.66'] }),
    );
    assert.equal(r.status, 401, r.body);
    assert.equal(l.submitted.length, 0, 'no job submitted');
    assert.equal(await l.state(), before, 'nothing changed: no ban, no store row, no firewall entry');
  } finally {
    await l.close();
  }
});

test('every route × path variants × methods: no, wrong or cross-listener credentials never reach a handler; the right one does', async (t) => {
  const l = await startListeners();
  let sent = 0;
  try {
    for (const s of SAMPLES) {
      const before = await l.state();
      for (const creds of wrongCredentials(s.listener)) {
        for (const path of pathVariants(s.path)) {
          for (const method of [s.method, 'HEAD', 'OPTIONS', ...(s.method === 'GET' ? ['POST'] : ['GET'])]) {
            const c0 = cheap(l);
            const r = await request(l, s, method, path, creds);
            sent++;
            const what = `${s.listener} ${method} ${path} with ${JSON.stringify(creds)}: ${r.status} ${r.body.slice(0, 160)}`;
            assert.ok([400, 401, 403, 404].includes(r.status), what);
            assert.equal(cheap(l), c0, `reached a handler: ${what}`);
          }
        }
      }
      assert.equal(await l.state(), before, `state changed by unauthenticated requests to ${s.listener} ${s.method} ${s.route}`);
      if (s.listener === 'rest' && s.method !== 'GET') {
        // a valid token without the route's scope: 403, nothing done
        const r = await request(l, s, s.method, s.path, { authorization: `Bearer ${REST_READ}` });
        assert.equal(r.status, 403, `${s.method} ${s.path} with the read token: ${r.body}`);
        assert.equal(await l.state(), before);
      }
      const right = rightCredentials(s.listener);
      if (right) {
        const c0 = cheap(l);
        const r = await request(l, s, s.method, s.path, right);
        sent++;
        assert.ok(r.status !== 401 && r.status !== 403, `right credential refused: ${s.method} ${s.path}: ${r.status} ${r.body}`);
        assert.ok(cheap(l) > c0, `right credential did not reach the handler: ${s.method} ${s.path}`);
      }
    }
    for (const p of PUBLIC_SAMPLES) {
      const before = await l.state();
      const r = await send({ port: l.ports.rest }, p.method, p.path);
      assert.equal(r.status, 200);
      assert.equal(await l.state(), before, 'a public route changes nothing');
    }
    t.diagnostic(`${sent} requests over HTTP`);
  } finally {
    await l.close();
  }
});

test('the admin routes answer on the unix socket (its file mode is the credential)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-admin-sock-'));
  const { guardian } = makeGuardian();
  const app = createAdminApp({ control: guardian, status: () => guardian.status(), reload: async () => ({ rules: 0 }), version: 'sock' });
  try {
    const socketPath = join(dir, 'admin.sock');
    await listenAdminSocket(app, socketPath, 0o600);
    const r = await send({ socketPath }, 'POST', '/bans', { 'content-type': 'application/json' }, JSON.stringify({ target: '203.0.113.90', duration: '1h' }));
    assert.equal(r.status, 201, r.body);
    assert.deepEqual(
      guardian.listBans().map((b) => b.target),
      ['203.0.113.90'],
    );
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
