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
import { FraudRulesError } from '../src/fraud/destinations.js';
import { LapiAnswerError } from '../src/fleet/decision.js';
import { LapiError } from '../src/fleet/lapi.js';
import { FeedRefusedError } from '../src/feeds/parse.js';
import { FeedFetchError } from '../src/feeds/source.js';
import { AlreadyRunningError, SchemaVersionError, StateDirError } from '../src/store/index.js';
import { ListenError } from '../src/admin/listen.js';
import { DaemonError, DaemonUnreachableError } from '../src/admin/client.js';
import { RoutePolicyError } from '../src/net/auth.js';
import { EXIT, exitCodeOf } from '../src/cli/exit.js';
import { AllowListedError, InvalidTargetError, type BanControl, type BanRecord } from '../src/guard/index.js';
import { ActionRefusedError, AmiActionError, resolveActionPolicy, type AmiPort } from '../src/ami/index.js';
import { AsteriskConsole, ConsoleRefusedError, defaultConsoleConfig, registerConsoleRoute } from '../src/console/index.js';
import { JobError } from '../src/odoo/index.js';
import { ConfigFileError } from '../src/asterisk-config/index.js';
import { TelephonyError } from '../src/rest/telephony.js';
import { createRestApp, defaultRestConfig, type ConfigFilesPort } from '../src/rest/index.js';
import { createAdminApp } from '../src/admin/admin.js';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { PACKAGE_ROOT } from '../src/paths.js';
import { toJobFailure } from '../src/common/errors.js';
import { OwnershipError } from '../src/common/atomic-write.js';
import { ConditionError, OdooInitError, JobRegistry, JobRunner, resolveOdooConfig } from '../src/odoo/index.js';
import { OdooAuthError, OdooServerError, OdooUnavailableError } from '../src/odoo/rpc.js';
import { AmiLoginError } from '../src/ami/index.js';
import { NftError } from '../src/firewall/nft-runner.js';
import { EnforcerStoppedError, FirewallRefusedError } from '../src/firewall/enforcer-config.js';
import { InvalidFirewallTargetError } from '../src/firewall/target.js';
import { BanDurationError, BanScopeError, CoveredByBanError, OwnAddressError } from '../src/guard/index.js';
import { asJobFunction } from '../src/listeners.js';

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
  { err: new AmiActionError('timeout', 'no response to Ping within 5000 ms'), status: 504, code: 'AMI_TIMEOUT' },
  { err: new AmiActionError('write-buffer-full', 'AMI action "Ping" not sent'), status: 503, code: 'AMI_WRITE_BUFFER_FULL' },
  { err: new AmiActionError('invalid', 'bad field'), status: 400, code: 'AMI_INVALID' },
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

/** The REST API and the admin socket, each with the console route on `ami`. */
function consoleApps(ami: AmiPort): { rest: FastifyInstance; admin: FastifyInstance } {
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
  return { rest, admin };
}

test('a console refusal is 403 CONSOLE_REFUSED on the REST API and on the admin socket (the admin socket said BAD_REQUEST)', async () => {
  const ami: AmiPort = {
    action: async () => {
      throw new Error('must not be sent');
    },
  };
  const { rest, admin } = consoleApps(ami);
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
    [new FraudRulesError('fraud-destinations.yaml classes.premium.prefixes[3]: not a prefix'), 'RULES_INVALID', EXIT.usage],
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

// ------------------------------------------------------------------ the catalogue

const refusal = { target: '192.0.2.7', op: 'add' as const, error: new Error('Could not process rule: File exists') };
const listenerSpec = { name: 'metrics', keys: 'metrics.host / metrics.port', address: '127.0.0.1:9470', disable: 'metrics.enabled: false' };

/**
 * One or more instances of every exported error class, as its stage raises it: the scan below
 * fails when a class under src/ has none here (add it, and its code to docs/errors.md).
 */
const SAMPLES: Error[] = [
  ...CASES.map((c) => c.err),
  new OwnAddressError('10.0.0.1 is this host'),
  new BanScopeError('0.0.0.0/1 is wider than allowed', 'TOO_WIDE'),
  new BanScopeError('127.0.0.1 is never banned', 'RESERVED_RANGE'),
  new BanDurationError('longer than guard.maxBanDuration'),
  new CoveredByBanError('198.51.100.23 is not banned itself: it is covered by the ban of 198.51.100.0/24', ['198.51.100.0/24']),
  new ConfigFileError('x.conf: no such file in /etc/asterisk', 404, 'NOT_FOUND'),
  new ConfigFileError('refused: x.conf is a symlink or not a regular file', 403, 'NOT_REGULAR'),
  new ConfigFileError('x.conf is not a regular file', 400, 'NOT_REGULAR'),
  new TelephonyError('context "x" is not allowed here', 403),
  new TelephonyError('Asterisk refused the call: Originate failed', 502),
  new OwnershipError('cannot give the new /etc/asterisk/x.conf its owner and group'),
  new AmiActionError('not-connected', 'AMI action "Ping" not sent: not connected'),
  new AmiActionError('disconnected', 'AMI action "Ping" lost: the connection closed'),
  new AmiLoginError('auth', 'Asterisk refused the AMI login', 5000),
  new AmiLoginError('unreachable', 'cannot connect to 127.0.0.1:5038'),
  new AmiLoginError('not-ami', 'not an AMI banner'),
  new AmiLoginError('timeout', 'no login answer'),
  new OdooUnavailableError('cannot reach Odoo at https://odoo.example.com'),
  new OdooAuthError('Odoo refused the login of agent@example.com'),
  new OdooServerError('Odoo raised in x.y', 'odoo.exceptions.ValidationError'),
  new ConditionError('name "os" is not supported'),
  new NftError('nft (addon): Operation not permitted', 'Operation not permitted', true),
  new NftError('nft (command) failed (rc 1): syntax error', 'syntax error', false),
  new FirewallRefusedError(refusal),
  new EnforcerStoppedError(),
  new InvalidFirewallTargetError('10.0.0.1; flush ruleset'),
  new LapiAnswerError('LAPI decisions stream: not JSON'),
  new LapiError('LAPI unreachable', true),
  new LapiError('LAPI refused the login (401)', false, 401),
  new FeedRefusedError('the list is not text: refused whole', 'not_text'),
  new FeedFetchError('https://lists.example/a.txt answered HTTP 503', 503),
  new DaemonError('not found', 404, 'NOT_FOUND'),
  new DaemonError('HTTP 502', 502, 'not-a-code'),
  new ConfigError('ami.port: not a port'),
  new RuleError('r.yaml rules[0]: no name'),
  new FraudRulesError('fraud-destinations.yaml classes.premium.prefixes[3]: not a prefix'),
  new StateDirError('/nope', 'cannot create it'),
  new AlreadyRunningError({ pid: 4242, startTicks: null, at: 0, token: 't', argv: [] }, '/s/lock', '/s'),
  new ListenError(listenerSpec, Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' })),
  new DaemonUnreachableError('cannot reach the pbx-guardian daemon'),
  new SchemaVersionError('/s/guardian.sqlite', 9, 3),
  new RoutePolicyError('GET /x: no auth policy'),
  new OdooInitError('the Odoo URL is required'),
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** Every exported class under src/ that is an Error, by name (from the compiled modules). */
async function exportedErrorClasses(): Promise<Map<string, ErrorClass>> {
  const out = new Map<string, ErrorClass>();
  const src = join(PACKAGE_ROOT, 'src');
  for (const file of sourceFiles(src)) {
    const names = [...readFileSync(file, 'utf8').matchAll(/^export (?:abstract )?class (\w+)/gm)].map((m) => m[1]!);
    if (names.length === 0) continue;
    const rel = relative(src, file).replace(/\.ts$/, '.js');
    const mod = (await import(pathToFileURL(join(PACKAGE_ROOT, 'dist', 'src', rel)).href)) as Record<string, unknown>;
    for (const n of names) {
      const c = mod[n];
      if (typeof c === 'function' && c.prototype instanceof Error) out.set(`${rel}:${n}`, c as ErrorClass);
    }
  }
  return out;
}

interface DocRow {
  code: string;
  /** HTTP statuses (client table) or the exit status (startup table) */
  status: string;
  table: 'client' | 'startup';
}

/** The two tables of docs/errors.md. */
function documentedCodes(): Map<string, DocRow[]> {
  const text = readFileSync(join(PACKAGE_ROOT, 'docs', 'errors.md'), 'utf8');
  const rows = new Map<string, DocRow[]>();
  let table: DocRow['table'] | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('## ')) table = /stop a start/.test(line) ? 'startup' : 'client';
    const m = /^\| `([^`]+)` \| ([^|]+) \|/.exec(line);
    if (!m || !table) continue;
    const list = rows.get(m[1]!) ?? [];
    list.push({ code: m[1]!, status: m[2]!.trim(), table });
    rows.set(m[1]!, list);
  }
  return rows;
}

test('every exported error class under src/ is an AppError or a StartupError, with a sample here', async () => {
  const classes = await exportedErrorClasses();
  // the scan sees the classes (a broken scan would pass everything)
  for (const known of ['ami/errors.js:AmiActionError', 'firewall/nft-runner.js:NftError', 'odoo/rpc.js:OdooServerError', 'store/lock.js:AlreadyRunningError'])
    assert.ok(classes.has(known), known);
  for (const [where, cls] of classes) {
    if (cls === AppError || cls === StartupError) continue;
    assert.ok(cls.prototype instanceof AppError || cls.prototype instanceof StartupError, `${where} extends neither AppError nor StartupError`);
    assert.ok(
      SAMPLES.some((e) => e.constructor === cls),
      `${where} has no sample in SAMPLES (test/error-model.test.ts): add one, and its code to docs/errors.md`,
    );
  }
});

test('every code a class raises is UPPER_SNAKE and documented once in docs/errors.md with its status (or exit status)', () => {
  const docs = documentedCodes();
  for (const [code, rows] of docs) {
    assert.match(code, CODE_PATTERN, code);
    assert.equal(rows.length, 1, `${code} is documented ${rows.length} times: one code, one meaning`);
  }
  for (const err of SAMPLES) {
    const what = `${err.constructor.name}: ${err.message}`;
    assert.ok(err instanceof AppError || err instanceof StartupError, what);
    assert.match(err.code, CODE_PATTERN, what);
    const row = docs.get(err.code)?.[0];
    assert.ok(row, `${what}: code ${err.code} is not in docs/errors.md`);
    if (err instanceof StartupError) {
      assert.equal(row.table, 'startup', `${err.code} belongs in the startup table`);
      assert.equal(row.status, String(exitCodeOf(err)), `${err.code}: the exit status documented is not the CLI's`);
      assert.ok((STARTUP_CODES as readonly string[]).includes(err.code), err.code);
    } else {
      assert.equal(row.table, 'client', `${err.code} belongs in the client table`);
      // a relay of the daemon's own answer carries the daemon's status
      if (row.status !== "the daemon's")
        assert.ok(row.status.split(/,\s*/).includes(String(err.statusCode)), `${what}: ${err.statusCode} is not the documented ${row.status}`);
    }
  }
  // every startup code is documented; and the daemon's code, when it has one, is kept by the CLI
  for (const code of STARTUP_CODES) assert.equal(docs.get(code)?.[0]?.table, 'startup', code);
  assert.equal(new DaemonError('HTTP 502', 502, 'not-a-code').code, 'DAEMON_ERROR');
  assert.equal(new DaemonError('not found', 404, 'NOT_FOUND').status, 404);
});

test('AMI errors carry AMI_<KIND> codes and keep their kind; the admin socket answers an AMI timeout like the REST API (was 500 INTERNAL)', async () => {
  const e = new AmiActionError('timeout', 'no response to Command within 5000 ms', 'pbxg-7');
  assert.deepEqual([e.kind, e.code, e.statusCode, e.actionId, e.name], ['timeout', 'AMI_TIMEOUT', 504, 'pbxg-7', 'AmiActionError']);
  assert.deepEqual([new AmiLoginError('not-ami', 'x').code, new AmiLoginError('not-ami', 'x').kind], ['AMI_LOGIN_NOT_AMI', 'not-ami']);
  const ami: AmiPort = {
    action: async () => {
      throw new AmiActionError('timeout', 'no response to Command within 5000 ms');
    },
  };
  const { rest, admin } = consoleApps(ami);
  const r = await rest.inject({ method: 'POST', url: '/v1/console', headers: auth, payload: { command: 'core show uptime' } });
  const a = await admin.inject({ method: 'POST', url: '/console', payload: { command: 'core show uptime' } });
  assert.deepEqual([r.statusCode, r.json()], [504, { error: 'no response to Command within 5000 ms', code: 'AMI_TIMEOUT' }]);
  assert.deepEqual([a.statusCode, a.json()], [504, { error: 'no response to Command within 5000 ms', code: 'AMI_TIMEOUT' }]);
  await rest.close();
  await admin.close();
});

test('job failures: the text as before and the code (a refusal wrapped in a JOB_ERROR keeps its own code)', () => {
  const wrapped = new JobError('refused: the command contains CR, LF or NUL', {
    cause: new ConsoleRefusedError('refused: the command contains CR, LF or NUL'),
  });
  assert.deepEqual(toJobFailure(wrapped, 'asterisk.console'), { error: 'refused: the command contains CR, LF or NUL', code: 'CONSOLE_REFUSED' });
  assert.deepEqual(toJobFailure(new JobError('job x timed out'), 'x'), { error: 'job x timed out', code: 'JOB_ERROR' });
  assert.deepEqual(toJobFailure(new AmiActionError('timeout', 'no response'), 'asterisk.ping'), {
    error: 'asterisk.ping failed: no response',
    code: 'AMI_TIMEOUT',
  });
  assert.deepEqual(toJobFailure(new OdooInitError('no URL'), 'f'), { error: 'f failed: no URL', code: 'ODOO_INIT' });
  assert.deepEqual(toJobFailure(new TypeError('x is undefined'), 'f'), { error: 'f failed: x is undefined', code: 'INTERNAL' });
  assert.equal(toJobResult(wrapped, 'asterisk.console'), toJobFailure(wrapped, 'asterisk.console').error);
});

test('Odoo job results carry the code next to the text, through the job runner', async () => {
  const config = resolveOdooConfig({ jobTimeoutMs: 2000 });
  const functions = new JobRegistry();
  const con = new AsteriskConsole(
    {
      action: async () => {
        throw new Error('must not be sent');
      },
    },
    defaultConsoleConfig(),
    resolveActionPolicy(),
  );
  functions.register(
    'test.console',
    asJobFunction((args) => con.run(String(args))),
  );
  functions.register('test.ami', async () => {
    throw new AmiActionError('not-connected', 'AMI action "Ping" not sent: not connected');
  });
  functions.register('test.boom', async () => {
    throw new TypeError('x is undefined');
  });
  const results = new Map<string, unknown>();
  const runner = new JobRunner({
    ctx: {
      rpc: { executeKw: () => Promise.reject(new Error('no Odoo in this test')) },
      configSync: null,
      ami: { action: async () => Promise.reject(new Error('unused')) },
      bans: throwing(() => new Error('unused')).bans,
      config,
      log: pino({ level: 'silent' }),
      reloadConfig: () => undefined,
      reloadEvents: async () => undefined,
      actionPolicy: resolveActionPolicy(),
    },
    sink: { result: (job, _m, _me, result) => void results.set(String(job.fun), result), notify: () => undefined },
    functions,
  });
  const submit = (fun: string, args: unknown = []) =>
    assert.ok(runner.submit({ fun, args, kwargs: {}, res_model: 'r.m', res_method: 'done', res_notify_uid: null, res_notify_title: null, pass_back: null }).ok);
  submit('test.console', 'core stop now');
  submit('test.ami');
  submit('test.boom');
  submit('no.such.function');
  await new Promise((r) => setTimeout(r, 20));
  await runner.whenIdle();
  const consoleResult = results.get('test.console') as { error: string; code: string };
  assert.equal(consoleResult.code, 'CONSOLE_REFUSED');
  assert.match(consoleResult.error, /^refused: .*console\.deny/);
  assert.deepEqual(results.get('test.ami'), { error: 'test.ami failed: AMI action "Ping" not sent: not connected', code: 'AMI_NOT_CONNECTED' });
  assert.deepEqual(results.get('test.boom'), { error: 'test.boom failed: x is undefined', code: 'INTERNAL' });
  assert.equal((results.get('no.such.function') as { code: string }).code, 'UNKNOWN_FUNCTION');
  await runner.close();
});
