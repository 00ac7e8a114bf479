/**
 * Property tests of the HTTP endpoints through fastify inject (no sockets): the Odoo job endpoint
 * (createAgentApp with a real JobRunner) and the admin API (createAdminApp over a real Guardian).
 * Random JSON, wrong types, wrong content types, odd URLs and huge bodies must give a 2xx or a
 * 4xx with a JSON error — never a 5xx, never a crash. Fixed seeds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { createAgentApp } from '../src/odoo/agent.js';
import { createAdminApp } from '../src/admin/admin.js';
import { JobRunner, resolveOdooConfig } from '../src/odoo/index.js';
import { FakeAmi } from './helpers/fake-odoo.js';
import { resolveActionPolicy } from '../src/ami/index.js';
import { makeGuardian } from './helpers/guard.js';
import { AGENT, REST_ADMIN, REST_READ, send, startListeners } from './helpers/http-listeners.js';
import { pathVariants, SAMPLES } from './helpers/http-routes.js';

const SEED = 9470;
const TOKEN = 'tok-fuzz';
const log = pino({ level: 'silent' });

interface Req {
  method: 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH' | 'OPTIONS';
  url: string;
  headers: Record<string, string>;
  payload?: string;
}

const anyJson = fc.jsonValue({ maxDepth: 4 });
const weird = fc.oneof(
  anyJson,
  fc.string({ maxLength: 80 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
);
const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  '',
  'application/json; charset=latin1',
);
const pathPiece = fc.oneof(
  fc.string({ maxLength: 30 }).map(encodeURIComponent),
  fc.constantFrom('%', '%zz', '%25zz', '%2525', '%E0%A4%A', '..%2F..%2Fetc', '203.0.113.5', '198.51.100.0%2F24', '2001%3Adb8%3A%3A1', '%00', 'a'.repeat(3000)),
);

function payloadOf(body: fc.Arbitrary<unknown>): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: 6, arbitrary: body.map((b) => JSON.stringify(b)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '{',
        '{"fun":',
        '[]',
        'null',
        '"x"',
        '{"__proto__":{"polluted":1},"fun":"test.ping"}',
        '{"constructor":{"prototype":{"polluted":1}},"target":"1.2.3.4"}',
      ),
    },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }).map((n) => JSON.stringify({ fun: 'test.ping', args: 'x'.repeat(n * 30_000) })) },
  );
}

function check(res: { statusCode: number; headers: Record<string, unknown>; body: string }, req: Req): void {
  const what = `${req.method} ${req.url.slice(0, 100)} [${req.headers['content-type']}] ${String(req.payload).slice(0, 150)}`;
  assert.ok(res.statusCode < 500, `${res.statusCode} for ${what}: ${res.body.slice(0, 300)}`);
  if (res.statusCode >= 400) {
    assert.match(String(res.headers['content-type']), /application\/json/, `non-JSON ${res.statusCode} for ${what}`);
    const j = JSON.parse(res.body) as { error?: unknown };
    assert.equal(typeof j.error, 'string', `${res.statusCode} without an error text for ${what}`);
  }
}

async function fuzz(app: FastifyInstance, reqs: fc.Arbitrary<Req>, seed: number, numRuns: number): Promise<{ runs: number; byStatus: Record<number, number> }> {
  let runs = 0;
  const byStatus: Record<number, number> = {};
  await fc.assert(
    fc.asyncProperty(reqs, async (req) => {
      runs++;
      const headers = { ...req.headers };
      if (headers['content-type'] === '') delete headers['content-type'];
      const res = await app.inject({
        method: req.method,
        url: req.url,
        headers,
        ...(req.payload !== undefined && req.method !== 'GET' ? { payload: req.payload } : {}),
      });
      byStatus[res.statusCode] = (byStatus[res.statusCode] ?? 0) + 1;
      check(res, req);
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
    }),
    { seed, numRuns },
  );
  return { runs, byStatus };
}

test('fuzz Odoo job endpoint: random bodies, wrong types, huge bodies → 2xx or 4xx JSON, never 5xx', async (t) => {
  const { guardian } = makeGuardian();
  const config = resolveOdooConfig({ jobQueueMax: 100_000, jobTimeoutMs: 2000, recordingDirs: ['/nonexistent-pbxg'] });
  const results: string[] = [];
  const runner = new JobRunner({
    ctx: {
      rpc: { executeKw: () => Promise.reject(new Error('no Odoo in this test')) },
      configSync: null,
      ami: new FakeAmi(),
      bans: guardian,
      config,
      actionPolicy: resolveActionPolicy(config),
      log,
      reloadConfig: () => undefined,
      reloadEvents: async () => ({ loaded: 0, skipped: 0 }),
    },
    sink: { result: (_j, m, me) => results.push(`${m}.${me}`), notify: () => undefined },
  });
  const app = createAgentApp({ token: TOKEN, bodyLimitBytes: 64 * 1024, submit: (r) => runner.submit(r), logger: log });
  const jobBody = fc.record(
    {
      fun: fc.oneof(
        {
          weight: 5,
          arbitrary: fc.constantFrom(
            'test.ping',
            'asterisk.manager_action',
            'sip.get_peers',
            'recording.get_file',
            'file.delete',
            'agent.reload_config',
            'get_banned',
            'remove_banned_addresses',
            'update_access_rules',
            'security.ban',
            'nope',
          ),
        },
        { weight: 1, arbitrary: weird },
      ),
      args: weird,
      kwargs: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), weird, { maxKeys: 3 }), weird),
      res_model: fc.oneof(fc.constantFrom('asterisk_plus.server', 'res.partner'), weird),
      res_method: weird,
      res_notify_uid: weird,
      res_notify_title: weird,
      pass_back: weird,
    },
    { requiredKeys: ['fun'] },
  );
  const reqs = fc.record({
    method: fc.constantFrom('POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE', 'OPTIONS') as fc.Arbitrary<Req['method']>,
    url: fc.oneof(
      { weight: 8, arbitrary: fc.constant('/app/asterisk_plus/agent') },
      { weight: 1, arbitrary: pathPiece.map((p) => `/app/asterisk_plus/agent?${p}`) },
      { weight: 1, arbitrary: pathPiece.map((p) => `/${p}`) },
    ),
    headers: fc.record({
      'content-type': fc.oneof({ weight: 4, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: contentType }),
      'x-token': fc.constantFrom(TOKEN, TOKEN, TOKEN, TOKEN, TOKEN, TOKEN, '', 'wrong', TOKEN + ' '),
    }),
    payload: payloadOf(jobBody),
  });
  try {
    const r = await fuzz(app, reqs, SEED, 3000);
    // huge bodies, once each
    for (const size of [64 * 1024 + 1, 2 * 1024 * 1024]) {
      const req: Req = {
        method: 'POST',
        url: '/app/asterisk_plus/agent',
        headers: { 'content-type': 'application/json', 'x-token': TOKEN },
        payload: JSON.stringify({ fun: 'test.ping', args: 'x'.repeat(size) }),
      };
      const res = await app.inject({ method: 'POST', url: req.url, headers: req.headers, payload: req.payload });
      check(res, req);
      assert.equal(res.statusCode, 413);
    }
    await runner.close(3000);
    t.diagnostic(`${r.runs} requests; statuses ${JSON.stringify(r.byStatus)}; ${results.length} job results produced`);
    assert.ok(
      (r.byStatus[200] ?? 0) > 0 && (r.byStatus[400] ?? 0) > 0 && (r.byStatus[401] ?? 0) > 0,
      'the generator reaches accepted, invalid and unauthorised requests',
    );
  } finally {
    await app.close();
  }
});

test('fuzz admin API: random bodies, targets, durations and URLs → 2xx or 4xx JSON, never 5xx', async (t) => {
  const { guardian } = makeGuardian({ allow: ['192.0.2.0/24'] });
  const app = createAdminApp({ control: guardian, status: () => guardian.status(), reload: async () => ({ rules: 4 }), version: 'fuzz' });
  const target = fc.oneof(
    fc.constantFrom(
      '203.0.113.5',
      '198.51.100.0/24',
      '2001:db8::1',
      '192.0.2.9',
      '0.0.0.0/0',
      '::/0',
      '1.2.3.4;reboot',
      '',
      ' 1.2.3.4',
      '::ffff:1.2.3.4',
      'fe80::1%eth0',
    ),
    fc.ipV4(),
    fc.ipV6(),
    weird,
  );
  const banBody = fc.record(
    {
      target,
      duration: fc.oneof(fc.constantFrom('10m', '1h', '7d', 'permanent', '', '0s', '-1h', '99999999d', 'NaN', '1e309s'), weird),
      reason: weird,
      extra: weird,
    },
    { requiredKeys: [] },
  );
  const reqs = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        method: fc.constant('POST' as const),
        url: fc.constant('/bans'),
        headers: fc.record({ 'content-type': contentType }),
        payload: payloadOf(banBody),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        method: fc.constant('DELETE' as const),
        url: pathPiece.map((p) => `/bans/${p}`),
        headers: fc.constant({}),
        payload: fc.constant(undefined),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        method: fc.constantFrom('GET', 'POST', 'DELETE', 'PATCH') as fc.Arbitrary<Req['method']>,
        url: fc.constantFrom('/status', '/bans', '/version', '/reload', '/', '/bans/', '/nope'),
        headers: fc.record({ 'content-type': contentType }),
        payload: payloadOf(weird),
      }),
    },
  );
  try {
    const r = await fuzz(app, reqs, SEED + 1, 3000);
    const big: Req = {
      method: 'POST',
      url: '/bans',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ target: '203.0.113.9', reason: 'x'.repeat(100_000) }),
    };
    const res = await app.inject({ method: 'POST', url: big.url, headers: big.headers, payload: big.payload });
    check(res, big);
    assert.equal(res.statusCode, 413);
    t.diagnostic(`${r.runs} requests; statuses ${JSON.stringify(r.byStatus)}; ${guardian.listBans().length} bans active at the end`);
  } finally {
    await app.close();
  }
});

/** Credentials that are never valid for the listener: none, random, near misses, the other listener's. */
function invalidCredential(listener: 'agent' | 'rest', nonGet: boolean): fc.Arbitrary<Record<string, string>> {
  const right = listener === 'agent' ? AGENT : REST_ADMIN;
  const near = fc
    .oneof(
      fc.string({ minLength: 1, maxLength: 3 }).map((x) => right + x),
      fc.integer({ min: 1, max: right.length }).map((n) => right.slice(0, right.length - n)),
      fc.integer({ min: 0, max: right.length - 1 }).map((i) => right.slice(0, i) + (right[i] === 'x' ? 'y' : 'x') + right.slice(i + 1)),
      fc.constant(right.toUpperCase()),
      fc.string({ maxLength: 64 }).filter((x) => x.trim() !== right && x.trim() !== AGENT && x.trim() !== REST_ADMIN && x.trim() !== REST_READ),
    )
    .filter((x) => /^[\x21-\x7e]*$/.test(x));
  const asOwn = (v: string): Record<string, string> => (listener === 'agent' ? { 'x-token': v } : { authorization: `Bearer ${v}` });
  const pick = (agent: Record<string, string>, rest: Record<string, string>) => fc.constant(listener === 'agent' ? agent : rest);
  return fc.oneof(
    fc.constant<Record<string, string>>({}),
    near.map(asOwn),
    // the right secret in the other listener's header, or without "Bearer"
    pick({ authorization: `Bearer ${AGENT}` }, { 'x-token': REST_ADMIN }),
    pick({ 'x-token': REST_ADMIN }, { authorization: REST_ADMIN }),
    pick({ 'x-token': REST_READ }, { authorization: `Bearer ${AGENT}` }),
    pick({ 'x-agent-token': AGENT }, { authorization: `Basic ${Buffer.from(`x:${REST_ADMIN}`).toString('base64')}` }),
    // a valid REST token without the scope a changing route needs
    ...(listener === 'rest' && nonGet ? [fc.constant<Record<string, string>>({ authorization: `Bearer ${REST_READ}` })] : []),
  );
}

test('fuzz job endpoint and REST: no request without a valid credential changes any state (store, firewall, files, AMI writes, jobs)', async (t) => {
  const l = await startListeners();
  const samples = SAMPLES.filter((s) => s.listener !== 'admin');
  const request = fc
    .integer({ min: 0, max: samples.length - 1 })
    .chain((i) => {
      const s = samples[i]!;
      return fc.record({
        sample: fc.constant(s),
        method: fc.oneof(
          { weight: 4, arbitrary: fc.constant(s.method) },
          { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS') },
        ),
        path: fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom(...pathVariants(s.path)) },
          { weight: 1, arbitrary: pathPiece.map((p) => `${s.path}/${p}`) },
          { weight: 1, arbitrary: pathPiece.map((p) => `${s.path}?${p}`) },
        ),
        creds: invalidCredential(s.listener as 'agent' | 'rest', s.method !== 'GET'),
        contentType: contentType,
        payload: fc.oneof(
          { weight: 3, arbitrary: fc.constant(JSON.stringify(s.body ?? {})) },
          { weight: 1, arbitrary: anyJson.map((j) => JSON.stringify(j)) },
          { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
        ),
      });
    })
    .filter((r) => !(r.creds.authorization === `Bearer ${REST_READ}` && ['GET', 'HEAD'].includes(r.method))); // the read token is valid for reads
  const initial = await l.state();
  let runs = 0;
  const byStatus: Record<number, number> = {};
  try {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        runs++;
        const headers: Record<string, string> = { ...r.creds };
        if (r.contentType) headers['content-type'] = r.contentType;
        const withBody = !['GET', 'HEAD', 'OPTIONS'].includes(r.method);
        const res = await send({ port: l.ports[r.sample.listener] }, r.method, r.path, headers, withBody ? r.payload : undefined);
        byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
        assert.ok([400, 401, 403, 404].includes(res.status), `${res.status} for ${r.method} ${r.path} ${JSON.stringify(r.creds)}: ${res.body.slice(0, 200)}`);
        assert.equal(await l.state(), initial, `state changed by ${r.method} ${r.path} ${JSON.stringify(r.creds)}`);
      }),
      { seed: SEED + 2, numRuns: 4000 },
    );
    t.diagnostic(`${runs} requests over HTTP, none with a valid credential; statuses ${JSON.stringify(byStatus)}; state unchanged: ${initial}`);
  } finally {
    await l.close();
  }
});
