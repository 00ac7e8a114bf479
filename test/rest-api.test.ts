import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { Registry } from 'prom-client';
import { AmiClient, resolveActionPolicy } from '../src/ami/index.js';
import { checkCommand, defaultConsoleConfig } from '../src/console/index.js';
import { AmiSimulator, type SimulatedRequest } from '../src/demo/ami-simulator.js';
import { createRestApp, defaultRestConfig, validateRestConfig, EXTEN_PATTERN, type RestConfig } from '../src/rest/index.js';
import type { FastifyInstance } from 'fastify';
import { FakeBans } from './helpers/fake-odoo.js';
import { fixturePath } from './helpers/fixtures.js';

const READ = 'read-token-0123456789abcdef';
const CALL = 'call-token-0123456789abcdef';
const ADMIN = 'admin-token-0123456789abcdef';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-rest-'));
const crlf = (lines: string[]): string => lines.map((l) => l + '\r\n').join('') + '\r\n';

/**
 * The recorded fixtures plus a few answers the capture does not hold. Captured: ExtensionState
 * (100 with hint = Idle, 9999 = -1), SIPshowpeer 100, Originate (the Response frame of
 * originate-local-success.raw), Status of a live channel (cut from action-status-active-call.raw),
 * Command. Synthesized (marked in the file names): an Unavailable extension, MessageSend's
 * success, "No such channel", "Peer not found".
 */
function fixturesDir(): string {
  const dir = path.join(tmp, 'ami');
  fs.cpSync(fixturePath('ami'), dir, { recursive: true });
  const w = (name: string, req: string[], resp: string) => {
    fs.writeFileSync(path.join(dir, `${name}.request.raw`), crlf(req));
    fs.writeFileSync(path.join(dir, `${name}.raw`), resp);
  };
  const orig = fs.readFileSync(fixturePath('ami/originate-local-success.raw'), 'latin1');
  w('action-originate-op', ['Action: Originate', 'ActionID: o-1'], orig.slice(0, orig.indexOf('\r\n\r\n') + 4));
  const active = fs
    .readFileSync(fixturePath('ami/action-status-active-call.raw'), 'latin1')
    .split('\r\n\r\n')
    .map((f) => f + '\r\n\r\n');
  const start = active.findIndex((f) => f.startsWith('Response: Success\r\nActionID: st-19'));
  const list = [
    active[start]!,
    active.find((f) => f.startsWith('Event: Status\r\n') && f.includes('Channel: Local/610@default-00000001;1\r\n'))!,
    active
      .find((f) => f.startsWith('Event: StatusComplete'))!
      .replace('ListItems: 2', 'ListItems: 1')
      .replace('Items: 2', 'Items: 1'),
  ];
  w('action-status-live', ['Action: Status', 'ActionID: st-1', 'Channel: Local/610@default-00000001;1'], list.join(''));
  w(
    'action-status-synth-nochan',
    ['Action: Status', 'ActionID: st-2', 'Channel: SIP/8003-00000020'],
    crlf(['Response: Error', 'ActionID: st-2', 'Message: No such channel']),
  );
  w(
    'action-extensionstate-synth-unavail',
    ['Action: ExtensionState', 'ActionID: es-1', 'Exten: 8004', 'Context: default'],
    crlf([
      'Response: Success',
      'ActionID: es-1',
      'Message: Extension Status',
      'Exten: 8004',
      'Context: default',
      'Hint: SIP/8004',
      'Status: 4',
      'StatusText: Unavailable',
    ]),
  );
  w('action-messagesend-synth', ['Action: MessageSend', 'ActionID: m-1'], crlf(['Response: Success', 'ActionID: m-1', 'Message: Message successfully sent']));
  w(
    'action-sipshowpeer-synth-missing',
    ['Action: SIPshowpeer', 'ActionID: p-1', 'Peer: nobody'],
    crlf(['Response: Error', 'ActionID: p-1', 'Message: Peer nobody not found.']),
  );
  return dir;
}

const basePolicy = resolveActionPolicy({ deniedActions: ['Shutdown'], deniedApplications: ['System', 'TrySystem'] });
/** as main.ts wires it: Command actions pass the console policy */
const restActionPolicy = { ...basePolicy, checkCommand: (c: string) => checkCommand(c, { ...defaultConsoleConfig(), dialplan: basePolicy }) };

let sim: AmiSimulator;
let ami: AmiClient;
let app: FastifyInstance;
let bans: FakeBans;
let registry: Registry;

function restConfig(over: Partial<RestConfig> = {}): RestConfig {
  return {
    ...defaultRestConfig(),
    enabled: true,
    port: 0,
    operatorChannel: 'SIP/{operator}',
    messageTo: 'sip:{operator}',
    tokens: [
      { token: READ, scopes: ['read'], name: 'crm-read' },
      { token: CALL, scopes: ['call'], name: 'crm-call' },
      { token: ADMIN, scopes: ['admin'], name: 'ops' },
    ],
    ...over,
  };
}

before(async () => {
  sim = new AmiSimulator({ fixturesDir: fixturesDir(), loginFailDelayMs: 10 });
  await sim.listen();
  ami = new AmiClient({ host: '127.0.0.1', port: sim.port, username: 'guardian', secret: 'guardian-secret', events: 'off', reconnectInitialMs: 20 });
  ami.start();
  await once(ami, 'connected');
  bans = new FakeBans();
  registry = new Registry();
  app = createRestApp({ config: restConfig(), ami, bans, registry, actionPolicy: restActionPolicy, version: '9.9.9' });
  await app.ready();
});
after(async () => {
  await app.close();
  await ami.stop();
  await sim.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function req(method: string, url: string, token: string | null, body?: unknown) {
  const r = await app.inject({
    method: method as 'GET',
    url,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    ...(body !== undefined ? { payload: body as object } : {}),
  });
  return { status: r.statusCode, body: r.body ? (JSON.parse(r.body) as Record<string, unknown>) : {}, headers: r.headers };
}

function sentSince(n: number): SimulatedRequest[] {
  return sim.requests.slice(n).filter((r) => r.action.toLowerCase() !== 'ping');
}
const field = (r: SimulatedRequest, k: string) => r.headers.find(([h]) => h.toLowerCase() === k.toLowerCase())?.[1];

test('tokens: missing or wrong → 401 with WWW-Authenticate; a token without the scope → 403; admin implies every scope', async () => {
  let r = await req('GET', '/v1/status/extension/100', null);
  assert.equal(r.status, 401);
  assert.match(String(r.headers['www-authenticate']), /^Bearer/);
  r = await req('GET', '/v1/status/extension/100', 'wrong-token-0123456789abcdef');
  assert.equal(r.status, 401);
  r = await req('POST', '/v1/calls', READ, { operator: '100', phone: '0000' });
  assert.equal(r.status, 403);
  assert.match(String(r.body.error), /"call" scope/);
  r = await req('POST', '/v1/actions', CALL, { Action: 'Ping' });
  assert.equal(r.status, 403);
  r = await req('GET', '/v1/bans', CALL);
  assert.equal(r.status, 403);
  r = await req('GET', '/v1/status/extension/100', ADMIN);
  assert.equal(r.status, 200);
});

test('POST /v1/calls: operator state first, then Originate of the operator channel into context/phone (frames checked)', async () => {
  const n = sim.requests.length;
  const r = await req('POST', '/v1/calls', CALL, { operator: '100', phone: '0000', context: 'default' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.result, 0);
  assert.equal(r.body.text, 'Idle');
  assert.match(String(r.body.callId), /^[0-9a-f-]{36}$/);
  const sent = sentSince(n);
  assert.deepEqual(
    sent.map((s) => s.action),
    ['ExtensionState', 'Originate'],
  );
  assert.deepEqual(
    sent[0]!.headers.filter(([k]) => k !== 'ActionID'),
    [
      ['Action', 'ExtensionState'],
      ['Exten', '100'],
      ['Context', 'default'],
    ],
  );
  assert.deepEqual(
    sent[1]!.headers.filter(([k]) => k !== 'ActionID'),
    [
      ['Action', 'Originate'],
      ['Channel', 'SIP/100'],
      ['Context', 'default'],
      ['Exten', '0000'],
      ['Priority', '1'],
      ['CallerID', '"0000" <0000>'],
      ['Timeout', '30000'],
      ['ChannelId', String(r.body.callId)],
      ['Variable', `PBXG_CALL_ID=${String(r.body.callId)}`],
      ['Async', 'true'],
    ],
  );
});

test('POST /v1/calls: an unavailable operator is not called (409 with salara status), context defaults', async () => {
  const n = sim.requests.length;
  const r = await req('POST', '/v1/calls', CALL, { operator: '8004', phone: '0000' });
  assert.equal(r.status, 409);
  assert.equal(r.body.result, 4);
  assert.equal(r.body.text, 'Unavailable');
  const sent = sentSince(n);
  assert.deepEqual(
    sent.map((s) => s.action),
    ['ExtensionState'],
  );
  assert.equal(field(sent[0]!, 'Context'), 'default');
});

test('call parameters are validated: CR/LF, spaces, unknown keys and bad contexts never reach AMI', async () => {
  const n = sim.requests.length;
  for (const body of [
    { operator: '100\r\nAction: Command', phone: '0000' },
    { operator: '100', phone: '00 00' },
    { operator: '100', phone: '0000', context: 'a;b' },
    { operator: '100', phone: '0000', extra: 1 },
    { operator: '100' },
    { operator: 100, phone: '0000' },
  ]) {
    const r = await req('POST', '/v1/calls', CALL, body);
    assert.equal(r.status, 400, JSON.stringify(body));
  }
  assert.equal(sentSince(n).length, 0);
  const r = await req('GET', '/v1/status/extension/1%0d%0aAction:%20Command', READ);
  assert.equal(r.status, 400);
  assert.equal(sentSince(n).length, 0);
});

test('rest.callContexts limits the contexts a request may name', async () => {
  const limited = createRestApp({
    config: restConfig({ callContexts: ['from-crm'], defaultContext: 'from-crm' }),
    ami,
    bans,
    actionPolicy: resolveActionPolicy(),
  });
  const r = await limited.inject({
    method: 'POST',
    url: '/v1/calls',
    headers: { authorization: `Bearer ${CALL}` },
    payload: { operator: '100', phone: '0000', context: 'default' },
  });
  assert.equal(r.statusCode, 403);
  assert.match(r.body, /rest\.callContexts/);
  await limited.close();
});

test('POST /v1/messages: MessageSend to the operator; a multi-line text goes as Base64Body', async () => {
  let n = sim.requests.length;
  let r = await req('POST', '/v1/messages', CALL, { operator: '100', phone: '8002', msg: 'hello' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual({ result: r.body.result, text: r.body.text }, { result: 0, text: 'Idle' });
  let sent = sentSince(n);
  assert.deepEqual(
    sent.map((s) => s.action),
    ['ExtensionState', 'MessageSend'],
  );
  assert.deepEqual(
    sent[1]!.headers.filter(([k]) => k !== 'ActionID'),
    [
      ['Action', 'MessageSend'],
      ['To', 'sip:100'],
      ['From', '"8002" <sip:8002>'],
      ['Body', 'hello'],
    ],
  );
  n = sim.requests.length;
  r = await req('POST', '/v1/messages', CALL, { operator: '100', phone: '8002', msg: 'line 1\r\nAction: Command' });
  assert.equal(r.status, 200);
  sent = sentSince(n);
  assert.equal(field(sent[1]!, 'Body'), undefined);
  assert.equal(Buffer.from(field(sent[1]!, 'Base64Body')!, 'base64').toString(), 'line 1\r\nAction: Command');
});

test('status routes answer with salara result codes and texts', async () => {
  assert.deepEqual((await req('GET', '/v1/status/extension/100', READ)).body, { result: 0, text: 'Idle' });
  assert.deepEqual((await req('GET', '/v1/status/extension/9999?context=default', READ)).body, { result: -1, text: 'Unknown' });
  const peer = await req('GET', '/v1/status/peer/100', READ);
  assert.equal(peer.status, 200);
  assert.deepEqual({ result: peer.body.result, text: peer.body.text }, { result: 0, text: 'Reachable' });
  const missing = await req('GET', '/v1/status/peer/nobody', READ);
  assert.equal(missing.status, 404);
  assert.deepEqual({ result: missing.body.result, text: missing.body.text }, { result: -1, text: 'Error' });
  const live = await req('GET', '/v1/status/channel/Local/610@default-00000001;1', READ);
  assert.deepEqual([live.status, live.body], [200, { result: 0, text: 'Up (6)' }]);
  const encoded = await req('GET', '/v1/status/channel/Local%2F610@default-00000001;1', READ);
  assert.deepEqual([encoded.status, encoded.body], [200, { result: 0, text: 'Up (6)' }]);
  const gone = await req('GET', '/v1/status/channel/SIP/8003-00000020', READ);
  assert.deepEqual([gone.status, gone.body], [404, { result: -1, text: 'Channel not present' }]);
  assert.equal((await req('GET', '/v1/status/channel/not-a-channel', READ)).status, 400);
});

test('POST /v1/actions: one action with its event list; the Odoo deny-list applies (nothing sent)', async () => {
  let r = await req('POST', '/v1/actions', ADMIN, { Action: 'Command', Command: 'core show channels' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.output, [
    'Channel                                                          Location                         State   Application(Data)             ',
    '0 active channels',
    '0 active calls',
    '0 calls processed',
  ]);
  r = await req('POST', '/v1/actions', ADMIN, { Action: 'Status' });
  assert.equal(r.status, 200);
  assert.equal((r.body.response as Record<string, string>).EventList, 'start');
  assert.equal((r.body.complete as Record<string, string>).Event, 'StatusComplete');
  assert.deepEqual(r.body.events, []);
  const n = sim.requests.length;
  r = await req('POST', '/v1/actions', ADMIN, { Action: 'Originate', Channel: 'Local/1@default', Application: 'System', Data: 'touch /tmp/x' });
  assert.equal(r.status, 403);
  assert.match(String(r.body.error), /System/);
  r = await req('POST', '/v1/actions', ADMIN, { Action: 'Shutdown' });
  assert.equal(r.status, 403);
  assert.match(String(r.body.error), /deniedActions/);
  r = await req('POST', '/v1/actions', ADMIN, { Action: 'Ping', Foo: 'a\r\nAction: Shutdown' });
  assert.equal(r.status, 403);
  assert.equal(sentSince(n).length, 0);
});

test('bans: list (read), ban and unban (admin); allow-listed → 409 with the message; CIDR in the path', async () => {
  let r = await req('POST', '/v1/bans', ADMIN, { target: '203.0.113.7', duration: '1h', reason: 'crm' });
  assert.equal(r.status, 201);
  assert.equal((r.body.ban as { source: string }).source, 'api');
  r = await req('POST', '/v1/bans', ADMIN, { target: '10.0.0.0/8' });
  assert.equal(r.status, 201);
  r = await req('POST', '/v1/bans', ADMIN, { target: '127.0.0.1' });
  assert.equal(r.status, 409);
  assert.match(String(r.body.error), /allow-listed/);
  r = await req('POST', '/v1/bans', ADMIN, { target: '1.2.3.4', duration: 'soon' });
  assert.equal(r.status, 400);
  r = await req('GET', '/v1/bans', READ);
  assert.deepEqual((r.body.bans as Array<{ target: string }>).map((b) => b.target).sort(), ['10.0.0.0/8', '203.0.113.7']);
  assert.equal((await req('DELETE', '/v1/bans/10.0.0.0/8', ADMIN)).status, 200);
  assert.equal((await req('DELETE', '/v1/bans/203.0.113.7', READ)).status, 403);
  assert.equal((await req('DELETE', '/v1/bans/203.0.113.7', ADMIN)).status, 200);
  assert.equal((await req('DELETE', '/v1/bans/203.0.113.7', ADMIN)).status, 404);
});

test('bounded body: more than rest.bodyLimitBytes → 413', async () => {
  const r = await req('POST', '/v1/messages', CALL, { operator: '100', phone: '1', msg: 'x'.repeat(70_000) });
  assert.equal(r.status, 413);
});

test('GET /v1/openapi.json: public, generated from the schemas fastify validates with', async () => {
  const r = await req('GET', '/v1/openapi.json', null);
  assert.equal(r.status, 200);
  const doc = r.body as {
    openapi: string;
    info: { version: string };
    paths: Record<
      string,
      Record<
        string,
        {
          'x-scope': string;
          requestBody?: { content: Record<string, { schema: { properties: Record<string, { pattern?: string }> } }> };
          parameters: Array<{ name: string }>;
        }
      >
    >;
  };
  assert.equal(doc.openapi, '3.0.3');
  assert.equal(doc.info.version, '9.9.9');
  assert.deepEqual(Object.keys(doc.paths).sort(), [
    '/v1/actions',
    '/v1/bans',
    '/v1/bans/{addr}',
    '/v1/calls',
    '/v1/messages',
    '/v1/status/channel/{channel}',
    '/v1/status/extension/{exten}',
    '/v1/status/peer/{peer}',
  ]);
  const call = doc.paths['/v1/calls']!.post!;
  assert.equal(call['x-scope'], 'call');
  assert.equal(call.requestBody!.content['application/json']!.schema.properties.phone!.pattern, EXTEN_PATTERN);
  assert.deepEqual(
    doc.paths['/v1/status/channel/{channel}']!.get!.parameters.map((p) => p.name),
    ['channel'],
  );
  assert.equal(doc.paths['/v1/bans/{addr}']!.delete!['x-scope'], 'admin');
});

test('metrics: pbx_guardian_rest_requests_total counts by route and status', async () => {
  const text = await registry.metrics();
  assert.match(text, /pbx_guardian_rest_requests_total\{route="\/v1\/calls",status="200"\} \d+/);
});

test('config validation names the key', () => {
  const errs = validateRestConfig({ ...defaultRestConfig(), enabled: true, tokens: [{ token: 'short', scopes: ['root' as 'read'], name: 'a b' }] });
  assert.ok(errs.some((e) => e.startsWith('rest.tokens[0].token:')));
  assert.ok(errs.some((e) => e.startsWith('rest.tokens[0].scopes:')));
  assert.ok(errs.some((e) => e.startsWith('rest.tokens[0].name:')));
  assert.deepEqual(validateRestConfig({ ...defaultRestConfig(), enabled: true }), [
    'rest.tokens: rest.enabled is true but no token is configured: every request would be refused',
  ]);
});
