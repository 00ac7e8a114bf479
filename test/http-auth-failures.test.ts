/**
 * Issue 12, finding 13: failed authentication on the listeners is contained. Many bad-token
 * requests give few log lines (one per source and minute, with the count), a 429 past the bound
 * (auth.maxFailuresPerMinute), a metric, and a ban in the firewall through the shipped
 * http-auth-failure rule — but never a ban of an allow-listed source.
 */
import { resolveActionPolicy } from '../src/ami/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { Registry } from 'prom-client';
import { createAgentApp } from '../src/odoo/agent.js';
import { AuthFailures } from '../src/net/auth-failures.js';
import { createRestApp, defaultRestConfig } from '../src/rest/index.js';
import { FakeAmi, FakeBans } from './helpers/fake-odoo.js';
import { makeGuardian } from './helpers/guard.js';
import { LogCapture, startTestDaemon } from './helpers/daemon.js';

const TOKEN = 'agent-token-0123456789abcdef';
const REST = 'rest-token-0123456789abcdef';
const ATTACKER = '203.0.113.7';
const ODOO_HOST = '198.51.100.9';

function setup() {
  const { guardian, enforcement, clock } = makeGuardian({ allow: [ODOO_HOST] });
  const log = new LogCapture('info');
  const registry = new Registry();
  const failures = new AuthFailures({
    maxPerMinute: 20,
    maxSources: 1000,
    logger: log.logger,
    registry,
    clock: () => clock.now,
    onFailure: (listener, address) => guardian.observeExternal('HttpAuthFailure', address, listener),
  });
  const submitted: unknown[] = [];
  const agent = createAgentApp({
    token: TOKEN,
    bodyLimitBytes: 65536,
    submit: (r) => {
      submitted.push(r);
      return { ok: true, id: String(submitted.length) };
    },
    failures,
  });
  const rest = createRestApp({
    config: { ...defaultRestConfig(), enabled: true, tokens: [{ name: 'crm', token: REST, scopes: ['admin'] }] },
    ami: new FakeAmi(),
    bans: new FakeBans(),
    actionPolicy: resolveActionPolicy(),
    authFailures: failures,
  });
  return { guardian, enforcement, clock, log, registry, failures, agent, rest, submitted };
}

const job = (token: string, remoteAddress: string) => ({
  method: 'POST' as const,
  url: '/app/asterisk_plus/agent',
  remoteAddress,
  headers: { 'content-type': 'application/json', 'x-token': token },
  payload: JSON.stringify({ fun: 'test.ping' }),
});

const authLines = (log: LogCapture) => log.lines.filter((l) => l.event === 'auth-failures');

test('many bad-token requests: one log line per source, 429 past the bound, counted, banned in the firewall', async () => {
  const s = setup();
  try {
    const statuses: Record<number, number> = {};
    for (let i = 0; i < 2000; i++) {
      const r = await s.agent.inject(job(`wrong-${i}`, ATTACKER));
      statuses[r.statusCode] = (statuses[r.statusCode] ?? 0) + 1;
    }
    for (let i = 0; i < 100; i++) {
      const r = await s.rest.inject({ method: 'GET', url: '/v1/bans', remoteAddress: ATTACKER, headers: { authorization: 'Bearer nope-0123456789' } });
      statuses[r.statusCode] = (statuses[r.statusCode] ?? 0) + 1;
    }
    assert.deepEqual(statuses, { 401: 20, 429: 2080 }, 'the credential is checked 20 times in the minute, then 429');
    assert.equal(s.submitted.length, 0);
    assert.equal(authLines(s.log).length, 0, 'nothing logged per request');
    assert.equal(s.failures.flush(), 1, 'one aggregate line for the source');
    const [line] = authLines(s.log);
    assert.equal(line!.remote, ATTACKER);
    assert.equal(line!.failures, 20);
    assert.equal(line!.throttled, 2080);
    assert.deepEqual(line!.listeners, ['agent', 'rest']);
    assert.equal(s.log.lines.length, 1, `the aggregate line only: ${JSON.stringify(s.log.messages())}`);
    // the guard banned it with the shipped rule; the ban is in the (memory) firewall
    const ban = s.guardian.listBans().find((b) => b.target === ATTACKER);
    assert.equal(ban?.rule, 'http-auth-failure');
    assert.ok(
      (await s.enforcement.backend.list()).some((e) => e.target === ATTACKER),
      'banned in the firewall',
    );
    const metrics = await s.registry.metrics();
    assert.match(metrics, /pbx_guardian_auth_failures_total\{listener="agent",reason="invalid"\} 20\n/);
    assert.match(metrics, /pbx_guardian_auth_throttled_total\{listener="agent",reason="throttled"\} 1980\n/);
    // the right token from the throttled source: 429 until the minute is over, then accepted
    assert.equal((await s.agent.inject(job(TOKEN, ATTACKER))).statusCode, 429);
    s.clock.now += 61_000;
    assert.equal((await s.agent.inject(job(TOKEN, ATTACKER))).statusCode, 200);
    assert.equal(s.submitted.length, 1);
    assert.equal(s.failures.flush(), 1, 'the 429 since the last line is summed in the next one');
    assert.equal(s.failures.flush(), 0, 'nothing new: no line');
  } finally {
    await s.agent.close();
    await s.rest.close();
  }
});

test('an allow-listed source (the Odoo host) with a wrong token is slowed down but never banned', async () => {
  const s = setup();
  try {
    let throttled = 0;
    for (let i = 0; i < 500; i++) if ((await s.agent.inject(job('stale-token', ODOO_HOST))).statusCode === 429) throttled++;
    assert.equal(throttled, 480);
    assert.deepEqual(s.guardian.listBans(), []);
    assert.deepEqual(await s.enforcement.backend.list(), []);
    assert.deepEqual(s.enforcement.calls, []);
  } finally {
    await s.agent.close();
    await s.rest.close();
  }
});

function postJob(port: number, token: string): Promise<number> {
  const body = JSON.stringify({ fun: 'test.ping' });
  return new Promise((resolve, reject) => {
    const req = request(
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

test('through the daemon over HTTPS: 300 rejected job requests write no line each, get 429 past the bound, and loopback is not banned', async () => {
  const d = await startTestDaemon({ odoo: true, ami: false, config: { odoo: { listen: { enabled: true, host: '127.0.0.1', port: 0 } } } });
  try {
    const port = d.daemon.odoo!.agentAddress!.port;
    const statuses: Record<number, number> = {};
    for (let i = 0; i < 300; i++) {
      const st = await postJob(port, 'wrong');
      statuses[st] = (statuses[st] ?? 0) + 1;
    }
    const warnLines = d.log.lines.filter((l) => typeof l.level === 'number' && l.level >= 40);
    assert.ok(warnLines.length <= 2, `${warnLines.length} warn lines for 300 rejected requests: ${JSON.stringify(warnLines.slice(0, 3))}`);
    assert.deepEqual(statuses, { 401: 20, 429: 280 });
    assert.deepEqual(d.daemon.guardian.listBans(), [], 'loopback is always allow-listed');
  } finally {
    await d.close();
  }
});
