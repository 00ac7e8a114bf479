/**
 * The error model (src/common/errors.ts): every error class a stage shows to a client carries a
 * stable UPPER_SNAKE code and one HTTP status, the REST API and the admin socket answer with that
 * same status, and Odoo jobs get the message as written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { AppError, CODE_PATTERN, isClientError, STARTUP_CODES, StartupError, toHttp, toJobResult } from '../src/common/errors.js';
import { ConfigError } from '../src/config/index.js';
import { RuleError } from '../src/guard/index.js';
import { AlreadyRunningError, SchemaVersionError, StateDirError } from '../src/store/index.js';
import { ListenError } from '../src/admin/listen.js';
import { DaemonError, DaemonUnreachableError } from '../src/admin/client.js';
import { RoutePolicyError } from '../src/net/auth.js';
import { EXIT, exitCodeOf } from '../src/cli/exit.js';
import { AllowListedError, InvalidTargetError, type BanControl, type BanRecord } from '../src/guard/index.js';
import { ActionRefusedError, AmiActionError, amiActionAppError, resolveActionPolicy, type AmiPort } from '../src/ami/index.js';
import { AsteriskConsole, ConsoleRefusedError, defaultConsoleConfig, registerConsoleRoute } from '../src/console/index.js';
import { JobError } from '../src/odoo/index.js';
import { ConfigFileError } from '../src/asterisk-config/index.js';
import { TelephonyError } from '../src/rest/telephony.js';
import { createRestApp, defaultRestConfig, type ConfigFilesPort } from '../src/rest/index.js';
import { createAdminApp } from '../src/admin/admin.js';

const ADMIN = 'admin-token-0123456789abcdef';

/** One of each class, as the stages raise them, with the status and code clients see today. */
const CASES: Array<{ err: AppError; status: number; code: string }> = [
  { err: new AllowListedError('10.0.0.1 is allow-listed'), status: 409, code: 'ALLOW_LISTED' },
  { err: new InvalidTargetError('not an IP address or CIDR: x'), status: 400, code: 'INVALID_TARGET' },
  { err: new ActionRefusedError('refused: Shutdown'), status: 403, code: 'ACTION_REFUSED' },
  { err: new ConsoleRefusedError('refused: the command contains CR, LF or NUL'), status: 403, code: 'CONSOLE_REFUSED' },
  { err: new JobError('no recording directory exists on this agent'), status: 403, code: 'JOB_ERROR' },
  { err: new TelephonyError('operator 100 is busy', 409), status: 409, code: 'REFUSED' },
  { err: new ConfigFileError('a.conf is 9 bytes, more than asteriskConfig.maxFileBytes (1)', 413, 'TOO_LARGE'), status: 413, code: 'TOO_LARGE' },
  { err: new ConfigFileError('AMI is disabled (ami.enabled: false): cannot reload', 502, 'NO_AMI'), status: 502, code: 'NO_AMI' },
  { err: amiActionAppError(new AmiActionError('timeout', 'no response to Ping within 5000 ms')), status: 504, code: 'AMI_TIMEOUT' },
  { err: amiActionAppError(new AmiActionError('write-buffer-full', 'AMI action "Ping" not sent')), status: 503, code: 'AMI_WRITE_BUFFER_FULL' },
  { err: amiActionAppError(new AmiActionError('invalid', 'bad field')), status: 400, code: 'AMI_INVALID' },
];

test('every error class has a stable UPPER_SNAKE code and one status, and toHttp answers with both and the message', () => {
  for (const { err, status, code } of CASES) {
    assert.ok(err instanceof AppError && err instanceof Error, err.constructor.name);
    assert.match(err.code, CODE_PATTERN, err.constructor.name);
    assert.equal(err.code, code, err.constructor.name);
    assert.equal(err.statusCode, status, err.constructor.name);
    assert.deepEqual(toHttp(err), { status, body: { error: err.message, code } }, err.constructor.name);
  }
  assert.doesNotMatch('Allow_Listed', CODE_PATTERN);
  assert.doesNotMatch('write-buffer-full', CODE_PATTERN);
});

test('an unknown error, or a thrown non-Error, is 500 INTERNAL', () => {
  const boom = toHttp(new TypeError('cannot read properties of undefined'));
  assert.equal(boom.status, 500);
  assert.equal(boom.body.code, 'INTERNAL');
  assert.equal(toHttp('a string').status, 500);
  assert.equal(toHttp(undefined).body.code, 'INTERNAL');
  // a foreign error with a 5xx status of its own is still INTERNAL
  assert.deepEqual(toHttp(Object.assign(new Error('db gone'), { statusCode: 503, code: 'DB_GONE' })).body.code, 'INTERNAL');
});

test('a foreign 4xx keeps its status; its own UPPER code only where the listener says so', () => {
  const fst = Object.assign(new Error('Unsupported Media Type'), { statusCode: 415, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' });
  assert.deepEqual(toHttp(fst, { foreignCode: 'own' }), { status: 415, body: { error: fst.message, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' } });
  assert.deepEqual(toHttp(fst), { status: 415, body: { error: fst.message, code: 'BAD_REQUEST' } });
  const lower = Object.assign(new Error('x'), { statusCode: 400, code: 'lower' });
  assert.equal(toHttp(lower, { foreignCode: 'own' }).body.code, 'BAD_REQUEST');
  const schema = Object.assign(new Error('body must have required property target'), { statusCode: 400, validation: [{}] });
  assert.deepEqual(toHttp(schema), { status: 400, body: { error: schema.message, code: 'BAD_REQUEST' } });
});

test('job results: a JobError as written, anything else says which function failed; 4xx errors are client errors', () => {
  assert.equal(
    toJobResult(new JobError('update_access_rules expects a list of rules'), 'security.update_access_rules'),
    'update_access_rules expects a list of rules',
  );
  assert.equal(toJobResult(new Error('ENOSPC'), 'get_file'), 'get_file failed: ENOSPC');
  assert.equal(toJobResult(new ConsoleRefusedError('refused'), 'asterisk.console'), 'asterisk.console failed: refused');
  assert.equal(toJobResult('text', 'f'), 'f failed: text');
  for (const { err, status } of CASES) assert.equal(isClientError(err), status < 500, err.constructor.name);
  assert.equal(isClientError(new Error('x')), false);
  assert.equal(isClientError({ statusCode: 403, message: 'not an Error' }), false);
});

/** Ban control and config-file port that throw the error they are given. */
function throwing(err: () => unknown): { bans: BanControl; files: ConfigFilesPort } {
  const fail = async (): Promise<never> => {
    throw err();
  };
  const bans: BanControl = { ban: fail, unban: fail, unbanAll: fail, listBans: () => [] as BanRecord[], replaceAccessRules: fail, isAllowListed: () => false };
  return { bans, files: { list: fail, read: fail, write: fail, remove: fail, reload: fail } };
}

async function apps(err: () => unknown, ami?: AmiPort): Promise<{ rest: FastifyInstance; admin: FastifyInstance }> {
  const { bans, files } = throwing(err);
  const rest = createRestApp({
    config: { ...defaultRestConfig(), enabled: true, tokens: [{ name: 'ops', token: ADMIN, scopes: ['admin', 'read'] }] },
    ami: ami ?? {
      action: async () => {
        throw err();
      },
    },
    bans,
    configFiles: files,
    actionPolicy: resolveActionPolicy(),
  });
  const admin = createAdminApp({
    control: bans,
    status: () => {
      throw err();
    },
    reload: async () => {
      throw err();
    },
    version: 'test',
  });
  await rest.ready();
  await admin.ready();
  return { rest, admin };
}

const auth = { authorization: `Bearer ${ADMIN}` };

test('REST and admin socket answer a ban refusal with the same status and code', async () => {
  for (const make of [() => new AllowListedError('10.0.0.1 is allow-listed'), () => new InvalidTargetError('not an IP address or CIDR: x')]) {
    const e = make();
    const { rest, admin } = await apps(make);
    const r = await rest.inject({ method: 'POST', url: '/v1/bans', headers: auth, payload: { target: '10.0.0.1' } });
    const a = await admin.inject({ method: 'POST', url: '/bans', payload: { target: '10.0.0.1' } });
    assert.equal(r.statusCode, e.statusCode);
    assert.equal(a.statusCode, e.statusCode);
    assert.deepEqual(r.json(), { error: e.message, code: e.code });
    assert.deepEqual(a.json(), { error: e.message, code: e.code });
    await rest.close();
    await admin.close();
  }
});

test('REST: an AMI action error is mapped by its code (504 AMI_TIMEOUT), a refusal by policy stays DENIED', async () => {
  const timeout = () => new AmiActionError('timeout', 'no response to ExtensionState within 5000 ms');
  const { rest, admin } = await apps(timeout);
  const r = await rest.inject({ method: 'GET', url: '/v1/status/extension/100', headers: auth });
  assert.equal(r.statusCode, 504);
  assert.deepEqual(r.json(), { error: 'no response to ExtensionState within 5000 ms', code: 'AMI_TIMEOUT' });
  await rest.close();
  await admin.close();
  const refused = await apps(() => new JobError('job refused'));
  const j = await refused.rest.inject({ method: 'GET', url: '/v1/status/extension/100', headers: auth });
  assert.deepEqual([j.statusCode, j.json()], [403, { error: 'job refused', code: 'DENIED' }]);
  await refused.rest.close();
  await refused.admin.close();
});

test('REST: a config file error answers with its own status, code and message (was 500, or the body-limit text)', async () => {
  for (const make of [
    () => new ConfigFileError('AMI is disabled (ami.enabled: false): cannot reload', 502, 'NO_AMI'),
    () => new ConfigFileError('a_odoo.conf: 9 bytes is more than asteriskConfig.maxFileBytes (1)', 413, 'TOO_LARGE'),
  ]) {
    const e = make();
    const { rest, admin } = await apps(make);
    const r = await rest.inject({ method: 'POST', url: '/v1/reload', headers: auth, payload: {} });
    assert.equal(r.statusCode, e.statusCode);
    assert.deepEqual(r.json(), { error: e.message, code: e.code });
    await rest.close();
    await admin.close();
  }
});

test('REST and admin socket: an unknown error is 500 INTERNAL', async () => {
  const { rest, admin } = await apps(() => new TypeError('x is undefined'));
  const r = await rest.inject({ method: 'POST', url: '/v1/bans', headers: auth, payload: { target: '10.0.0.1' } });
  const a = await admin.inject({ method: 'POST', url: '/bans', payload: { target: '10.0.0.1' } });
  assert.deepEqual([r.statusCode, r.json().code], [500, 'INTERNAL']);
  assert.deepEqual([a.statusCode, a.json().code], [500, 'INTERNAL']);
  await rest.close();
  await admin.close();
});

test('a console refusal is 403 CONSOLE_REFUSED on the REST API and on the admin socket (the admin socket said BAD_REQUEST)', async () => {
  const ami: AmiPort = {
    action: async () => {
      throw new Error('must not be sent');
    },
  };
  const con = new AsteriskConsole(ami, defaultConsoleConfig(), resolveActionPolicy());
  const { bans } = throwing(() => new Error('unused'));
  const rest = createRestApp({
    config: { ...defaultRestConfig(), enabled: true, tokens: [{ name: 'ops', token: ADMIN, scopes: ['admin'] }] },
    ami,
    bans,
    console: con,
    actionPolicy: resolveActionPolicy(),
  });
  const admin = createAdminApp({
    control: bans,
    status: () => {
      throw new Error('unused');
    },
    reload: async () => ({ rules: 0 }),
    version: 'test',
  });
  registerConsoleRoute(admin, con);
  const r = await rest.inject({ method: 'POST', url: '/v1/console', headers: auth, payload: { command: 'core stop now' } });
  const a = await admin.inject({ method: 'POST', url: '/console', payload: { command: 'core stop now' } });
  assert.equal(r.statusCode, 403);
  assert.equal(a.statusCode, 403);
  assert.equal(r.json().code, 'CONSOLE_REFUSED');
  assert.deepEqual(a.json(), r.json());
  assert.match(a.json().error, /console\.deny/);
  await rest.close();
  await admin.close();
});

test('startup errors: each class has its stable code, and the CLI exit status goes by that code', () => {
  const lock = { pid: 4242, startTicks: null, at: 0, token: 't', argv: [] };
  const listener = { name: 'metrics', keys: 'metrics.host / metrics.port', address: '127.0.0.1:9470', disable: 'metrics.enabled: false' };
  const cases: Array<[Error & { code: string }, string, number]> = [
    [new ConfigError('ami.port: not a port'), 'CONFIG_INVALID', EXIT.usage],
    [new RuleError('r.yaml rules[0]: no name'), 'RULES_INVALID', EXIT.usage],
    [new StateDirError('/nope', 'cannot create it'), 'STATE_DIR_UNUSABLE', EXIT.stateDir],
    [new AlreadyRunningError(lock, '/s/lock', '/s'), 'ALREADY_RUNNING', EXIT.alreadyRunning],
    [new ListenError(listener, Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' })), 'LISTEN_FAILED', EXIT.listen],
    [new DaemonUnreachableError('cannot reach the pbx-guardian daemon'), 'DAEMON_UNREACHABLE', EXIT.unreachable],
    [new SchemaVersionError('/s/guardian.sqlite', 9, 3), 'SCHEMA_TOO_NEW', EXIT.failed],
  ];
  for (const [err, code, exit] of cases) {
    assert.ok(err instanceof StartupError, err.constructor.name);
    assert.equal(err.code, code, err.constructor.name);
    assert.ok((STARTUP_CODES as readonly string[]).includes(code), code);
    assert.equal(exitCodeOf(err), exit, err.constructor.name);
  }
  assert.equal(new RoutePolicyError('GET /x: no auth policy').code, 'ROUTE_POLICY_MISSING');
  for (const code of STARTUP_CODES) assert.match(code, CODE_PATTERN);
  // the listener's own reason stays readable next to the stable code
  assert.equal((cases[4]![0] as ListenError).errno, 'EADDRINUSE');
  // by code, not by class: a foreign error that merely has a code is a failure; parseArgs' is usage
  assert.equal(exitCodeOf(Object.assign(new Error('x'), { code: 'CONFIG_INVALID' })), EXIT.failed);
  assert.equal(exitCodeOf(Object.assign(new Error('Unknown option'), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' })), EXIT.usage);
  assert.equal(exitCodeOf(new DaemonError('not found', 404, 'NOT_FOUND')), EXIT.refused);
  assert.equal(exitCodeOf(new DaemonError('boom', 500, 'INTERNAL')), EXIT.failed);
  assert.equal(exitCodeOf(new TypeError('x is undefined')), EXIT.failed);
});
