/**
 * REST API for any CRM (the salara module's HTTP API, generalised), under /v1/ on its own
 * listener. Bearer tokens (compared in constant time) carry scopes: read, call, admin (admin
 * implies the others). Every route is declared once in ROUTES; fastify validates with those
 * schemas and GET /v1/openapi.json is generated from the very same objects.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { requestedBanDuration } from '../guard/ban-duration.js';
import type { BanControl } from '../guard/types.js';
import { AppError, toHttp } from '../common/errors.js';
import { callerAction, messageToDict, type ActionPolicy } from '../ami/index.js';
import { buildOpenApi, type RouteDoc } from './openapi.js';
import { bearer, installRouteAuth, PUBLIC, TokenSet } from '../net/auth.js';
import type { AuthFailures } from '../net/auth-failures.js';
import { defaultsOf } from '../common/config-schema.js';
import { CONTEXT_PATTERN, RestConfigSchema, type RestConfig, type Scope } from './config-schema.js';
import { Telephony, TelephonyError, type AmiPort, type TelephonyOptions } from './telephony.js';

export { Telephony, TelephonyError, type AmiPort, type SalaraStatus, type TelephonyOptions } from './telephony.js';
export { buildOpenApi } from './openapi.js';

export { RestConfigSchema, SCOPES, validateRestConfig, type RestConfig, type Scope } from './config-schema.js';

export interface RestToken {
  token: string;
  scopes: Scope[];
  name: string;
}

/** The `rest:` config section with its defaults (from RestConfigSchema). */
export function defaultRestConfig(): RestConfig {
  return defaultsOf(RestConfigSchema);
}

// ------------------------------------------------------------------ schemas (validation and OpenAPI)

/** Dialplan names: extensions may hold + * # (dialled digits), contexts and peers may not. */
export const EXTEN_PATTERN = '^[A-Za-z0-9_.+*#-]{1,80}$';
export { CONTEXT_PATTERN };
export const PEER_PATTERN = '^[A-Za-z0-9_.@-]{1,80}$';
/** TECH/resource, e.g. SIP/8003-00000020, PJSIP/100-0000001a, Local/610@default-00000001;1 */
export const CHANNEL_PATTERN = '^[A-Za-z0-9_]{1,20}/[A-Za-z0-9_.@:;+*#/-]{1,160}$';

const salaraStatus = {
  type: 'object',
  properties: { result: { type: 'integer', description: 'salara status code (ExtensionState code for extensions)' }, text: { type: 'string' } },
} as const;
const errorBody = { type: 'object', properties: { error: { type: 'string' }, code: { type: 'string' } } } as const;

const callBody = {
  type: 'object',
  required: ['operator', 'phone'],
  additionalProperties: false,
  properties: {
    operator: { type: 'string', pattern: PEER_PATTERN, description: 'the calling party (rung first), e.g. 8003' },
    phone: { type: 'string', pattern: EXTEN_PATTERN, description: 'the called party, dialled in context when the operator answers' },
    context: { type: 'string', pattern: CONTEXT_PATTERN, description: 'dialplan context for the phone (default rest.defaultContext)' },
  },
} as const;
const messageBody = {
  type: 'object',
  required: ['operator', 'phone', 'msg'],
  additionalProperties: false,
  properties: {
    operator: { type: 'string', pattern: PEER_PATTERN, description: 'the recipient (internal subscriber)' },
    phone: { type: 'string', pattern: EXTEN_PATTERN, description: 'the sender' },
    msg: { type: 'string', minLength: 1, maxLength: 4096, description: 'message text (line breaks are sent base64-encoded)' },
    context: { type: 'string', pattern: CONTEXT_PATTERN },
  },
} as const;
const actionBody = {
  type: 'object',
  required: ['Action'],
  maxProperties: 128,
  properties: { Action: { type: 'string', pattern: '^[A-Za-z0-9_]{1,64}$' } },
  additionalProperties: {
    anyOf: [
      { type: 'string', maxLength: 8192 },
      { type: 'number' },
      { type: 'boolean' },
      { type: 'array', maxItems: 256, items: { anyOf: [{ type: 'string', maxLength: 8192 }, { type: 'number' }] } },
      { type: 'object', maxProperties: 64, additionalProperties: { anyOf: [{ type: 'string', maxLength: 1024 }, { type: 'number' }] } },
    ],
  },
  description: 'one AMI action: {"Action": "...", header: value, ...}; ActionID is the daemon\'s own',
} as const;
const banBody = {
  type: 'object',
  required: ['target'],
  additionalProperties: false,
  properties: {
    target: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9A-Fa-f.:/]+$', description: 'IPv4/IPv6 address or CIDR' },
    duration: {
      anyOf: [{ type: 'string', maxLength: 32 }, { type: 'integer', minimum: 1 }, { type: 'null' }],
      description: '10m, 1h, 7d, seconds, or null/"permanent"',
    },
    reason: { type: 'string', maxLength: 200 },
  },
} as const;
const addrParam = {
  type: 'object',
  required: ['*'],
  properties: { '*': { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9A-Fa-f.:/]+$' } },
} as const;
const consoleBody = {
  type: 'object',
  required: ['command'],
  additionalProperties: false,
  properties: {
    command: { type: 'string', minLength: 1, maxLength: 1024, pattern: '^[^\\r\\n\\u0000]*$', description: 'an Asterisk CLI command, e.g. core show channels' },
  },
} as const;
const CONFIG_NAME_PATTERN = '^[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,127}(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,127}){0,3}$';
const configNameParam = { type: 'object', required: ['*'], properties: { '*': { type: 'string', pattern: CONFIG_NAME_PATTERN } } } as const;
const configBody = {
  type: 'object',
  required: ['content'],
  additionalProperties: false,
  properties: {
    content: { type: 'string', maxLength: 4 * 1024 * 1024 },
    reload: { type: 'string', pattern: '^[A-Za-z0-9_.]{1,64}$', description: 'module to reload after writing, e.g. pbx_config' },
  },
} as const;
const reloadBody = {
  type: 'object',
  additionalProperties: false,
  properties: { module: { type: 'string', pattern: '^[A-Za-z0-9_.]{1,64}$', description: 'e.g. pbx_config, res_pjsip.so; omitted: reload everything' } },
} as const;

// ------------------------------------------------------------------ the app

/** Asterisk CLI over AMI (src/console), when wired. */
export interface ConsolePort {
  run(command: string): Promise<{ command: string; response: string; output: string[] }>;
}

/** Asterisk config files (src/asterisk-config), when wired. */
export interface ConfigFilesPort {
  list(): Promise<unknown>;
  read(name: string): Promise<{ name: string; content: string }>;
  write(name: string, content: string): Promise<unknown>;
  remove(name: string): Promise<unknown>;
  reload(module?: string): Promise<unknown>;
}

export interface RestDeps {
  config: RestConfig;
  ami: AmiPort;
  bans: BanControl;
  /** the SAME action policy as the Odoo jobs (src/ami/policy.ts: odoo.denied*, actionPolicy.allow, the console for Command) */
  actionPolicy: ActionPolicy;
  console?: ConsolePort | null;
  configFiles?: ConfigFilesPort | null;
  logger?: Logger;
  registry?: Registry;
  version?: string;
  /** the accepted tokens, replaceable at reload (default: built from config.tokens) */
  tokens?: TokenSet<RestToken>;
  /** failed authentication: rate limit, aggregate log, metric, guard */
  authFailures?: AuthFailures | null;
}

/** rest.tokens as a token set; `replace(restTokenEntries(list))` applies a new list at once. */
export function restTokenEntries(list: readonly RestToken[]): Array<{ token: string; entry: RestToken }> {
  return list.map((entry) => ({ token: entry.token, entry }));
}

class HttpError extends AppError {
  constructor(statusCode: number, message: string, code: string) {
    super(message, code, statusCode);
  }
}

/** Codes the REST API has always answered with for a refusal by policy (its clients match on them). */
const REST_CODE: Readonly<Record<string, string>> = { JOB_ERROR: 'DENIED', ACTION_REFUSED: 'DENIED' };

/** Builds the fastify app (not listening). */
export function createRestApp(deps: RestDeps): FastifyInstance {
  const cfg = deps.config;
  const log = deps.logger;
  const tokens = deps.tokens ?? new TokenSet(restTokenEntries(cfg.tokens));
  const telephony = new Telephony(deps.ami, cfg as TelephonyOptions);
  const requests = deps.registry
    ? ((deps.registry.getSingleMetric('pbx_guardian_rest_requests_total') as Counter<string> | undefined) ??
      new Counter({
        name: 'pbx_guardian_rest_requests_total',
        help: 'REST API requests, by route and status',
        labelNames: ['route', 'status'],
        registers: [deps.registry],
      }))
    : null;

  const app = Fastify({
    logger: false,
    bodyLimit: cfg.bodyLimitBytes,
    requestTimeout: 30_000,
    keepAliveTimeout: 65_000,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  }) as unknown as FastifyInstance;

  installRouteAuth(app, { listener: 'rest', bearerTokens: tokens, failures: deps.authFailures });
  app.addHook('onResponse', async (req, reply) => {
    requests?.inc({ route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) });
    // 401 and 429 are logged in aggregate (net/auth-failures.ts): one line per source and minute
    if (reply.statusCode >= 400 && ![401, 404, 429].includes(reply.statusCode))
      log?.info({ client: req.authClient, route: req.routeOptions.url, status: reply.statusCode }, 'REST request refused');
  });

  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    if (!(err instanceof AppError) && err.statusCode === 413)
      return reply.code(413).send({ error: `body larger than ${cfg.bodyLimitBytes} bytes (rest.bodyLimitBytes)`, code: 'TOO_LARGE' });
    const { status, body } = toHttp(err, { foreignCode: 'own' });
    if (status === 500) log?.error({ err: err.message, route: req.routeOptions.url }, 'REST request failed');
    // a refused call also says what state the operator was in (salara's contract)
    const state = err instanceof TelephonyError ? (err.status ?? {}) : {};
    return reply.code(status).send({ ...state, error: body.error, code: REST_CODE[body.code] ?? body.code });
  });

  const docs: RouteDoc[] = [];
  const route = <B = unknown, P = Record<string, string>>(
    d: RouteDoc,
    handler: (req: FastifyRequest<{ Body: B; Params: P }>, reply: FastifyReply) => Promise<unknown>,
  ): void => {
    docs.push(d);
    app.route({ method: d.method, url: d.url, config: { auth: d.scope === 'public' ? PUBLIC : bearer(d.scope) }, schema: d.schema, handler: handler as never });
  };

  route<{ operator: string; phone: string; context?: string }>(
    {
      method: 'POST',
      url: '/v1/calls',
      scope: 'call',
      summary: 'Operator-then-phone call (salara 1.1)',
      description:
        "Checks the operator's state, rings the operator, and when the operator answers dials the phone in the context. Answers with the operator's state and the call id (the Originate ChannelId).",
      schema: { body: callBody },
      responses: {
        200: {
          ...salaraStatus,
          properties: { ...salaraStatus.properties, callId: { type: 'string' }, originated: { type: 'boolean' }, channel: { type: 'string' } },
        },
        409: errorBody,
      },
    },
    async (req) => telephony.call(req.body),
  );

  route<{ operator: string; phone: string; msg: string; context?: string }>(
    {
      method: 'POST',
      url: '/v1/messages',
      scope: 'call',
      summary: 'Text message to an internal subscriber (salara 1.2)',
      schema: { body: messageBody },
      responses: { 200: salaraStatus, 409: errorBody },
    },
    async (req) => telephony.message(req.body),
  );

  route<unknown, { exten: string }>(
    {
      method: 'GET',
      url: '/v1/status/extension/:exten',
      scope: 'read',
      summary: 'Extension state (salara 1.3): 0 Idle, 4 Unavailable, -1 Unknown...',
      schema: {
        params: { type: 'object', required: ['exten'], properties: { exten: { type: 'string', pattern: EXTEN_PATTERN } } },
        querystring: { type: 'object', additionalProperties: false, properties: { context: { type: 'string', pattern: CONTEXT_PATTERN } } },
      },
      responses: { 200: salaraStatus },
    },
    async (req) => telephony.extensionStatus(req.params.exten, (req.query as { context?: string }).context),
  );

  route<unknown, { peer: string }>(
    {
      method: 'GET',
      url: '/v1/status/peer/:peer',
      scope: 'read',
      summary: 'Peer status (salara 1.4): {0, Reachable}, {0, Unknown}, {-1, Error}',
      schema: { params: { type: 'object', required: ['peer'], properties: { peer: { type: 'string', pattern: PEER_PATTERN } } } },
      responses: { 200: salaraStatus, 404: salaraStatus },
    },
    async (req, reply) => {
      const st = await telephony.peerStatus(req.params.peer);
      return reply.code(st.result === -1 ? 404 : 200).send(st);
    },
  );

  route<unknown, { '*': string }>(
    {
      method: 'GET',
      url: '/v1/status/channel/*',
      openapiUrl: '/v1/status/channel/{channel}',
      scope: 'read',
      summary: 'Channel status (salara 1.5): {0, "Up (6)"} or {-1, "Channel not present"}; the slash may be sent as is or as %2F',
      schema: { params: { type: 'object', required: ['*'], properties: { '*': { type: 'string', pattern: CHANNEL_PATTERN } } } },
      responses: { 200: salaraStatus, 404: salaraStatus },
    },
    async (req, reply) => {
      const st = await telephony.channelStatus(req.params['*']);
      return reply.code(st.result === -1 ? 404 : 200).send(st);
    },
  );

  route<Record<string, unknown>>(
    {
      method: 'POST',
      url: '/v1/actions',
      scope: 'admin',
      summary: 'One AMI action, run synchronously (the same action policy as the Odoo jobs)',
      description: 'Answers {response, events, complete?, output?}; event lists are collected until their ...Complete event.',
      schema: { body: actionBody },
      responses: { 200: { type: 'object' }, 403: errorBody },
    },
    async (req) => {
      const fields = callerAction(req.body, deps.actionPolicy);
      const r = await deps.ami.action(fields, { timeoutMs: cfg.actionTimeoutMs });
      return {
        response: messageToDict(r.response),
        events: r.events.map(messageToDict),
        ...(r.complete ? { complete: messageToDict(r.complete) } : {}),
        ...(r.output ? { output: r.output } : {}),
      };
    },
  );

  route({ method: 'GET', url: '/v1/bans', scope: 'read', summary: 'Active bans', responses: { 200: { type: 'object' } } }, async () => ({
    bans: deps.bans.listBans(),
  }));

  route<{ target: string; duration?: string | number | null; reason?: string }>(
    {
      method: 'POST',
      url: '/v1/bans',
      scope: 'admin',
      summary: 'Ban an address or CIDR (409 when allow-listed)',
      schema: { body: banBody },
      responses: { 201: { type: 'object' }, 409: errorBody },
    },
    async (req, reply) => {
      const { target, duration, reason } = req.body;
      const ban = await deps.bans.ban({
        target,
        durationSec: requestedBanDuration(duration),
        reason: reason ?? `banned through the REST API by ${req.authClient ?? '?'}`,
        source: 'api',
      });
      return reply.code(201).send({ ban });
    },
  );

  route<unknown, { '*': string }>(
    {
      method: 'DELETE',
      url: '/v1/bans/*',
      openapiUrl: '/v1/bans/{addr}',
      scope: 'admin',
      summary: 'End a ban (a CIDR may be sent as 10.0.0.0/8 or 10.0.0.0%2F8)',
      schema: { params: addrParam },
      responses: { 200: { type: 'object' }, 404: errorBody },
    },
    async (req, reply) => {
      const t = req.params['*'];
      if (!(await deps.bans.unban(t))) return reply.code(404).send({ error: `${t} is not banned`, code: 'NOT_BANNED' });
      return { unbanned: 1 };
    },
  );

  if (deps.console) {
    const con = deps.console;
    route<{ command: string }>(
      {
        method: 'POST',
        url: '/v1/console',
        scope: 'admin',
        summary: 'One Asterisk CLI command through AMI Command (console allow/deny lists apply)',
        schema: { body: consoleBody },
        responses: { 200: { type: 'object' }, 403: errorBody },
      },
      async (req) => con.run(req.body.command),
    );
  }

  if (deps.configFiles) {
    const files = deps.configFiles;
    route({ method: 'GET', url: '/v1/configs', scope: 'admin', summary: 'List Asterisk config files', responses: { 200: { type: 'object' } } }, async () => ({
      files: await files.list(),
    }));
    route<unknown, { '*': string }>(
      {
        method: 'GET',
        url: '/v1/configs/*',
        openapiUrl: '/v1/configs/{name}',
        scope: 'admin',
        summary: 'Read one Asterisk config file',
        schema: { params: configNameParam },
        responses: { 200: { type: 'object' }, 404: errorBody },
      },
      async (req) => files.read(req.params['*']),
    );
    route<{ content: string; reload?: string }, { '*': string }>(
      {
        method: 'PUT',
        url: '/v1/configs/*',
        openapiUrl: '/v1/configs/{name}',
        scope: 'admin',
        summary: 'Write a config file whose name holds the marker (atomic, .bak kept; the base file gets one #include line)',
        schema: { params: configNameParam, body: configBody },
        responses: { 200: { type: 'object' }, 403: errorBody },
      },
      async (req) => {
        const w = await files.write(req.params['*'], req.body.content);
        return req.body.reload ? { ...(w as object), reload: await files.reload(req.body.reload) } : w;
      },
    );
    route<unknown, { '*': string }>(
      {
        method: 'DELETE',
        url: '/v1/configs/*',
        openapiUrl: '/v1/configs/{name}',
        scope: 'admin',
        summary: 'Delete a config file whose name holds the marker (and its #include line)',
        schema: { params: configNameParam },
        responses: { 200: { type: 'object' }, 403: errorBody },
      },
      async (req) => files.remove(req.params['*']),
    );
    route<{ module?: string }>(
      {
        method: 'POST',
        url: '/v1/reload',
        scope: 'admin',
        summary: 'AMI Reload of one module (or everything)',
        schema: { body: reloadBody },
        responses: { 200: { type: 'object' } },
      },
      async (req) => files.reload(req.body?.module),
    );
  }

  const openapi = buildOpenApi(docs, deps.version ?? '0.0.0');
  app.get('/v1/openapi.json', { config: { auth: PUBLIC } }, async () => openapi);
  return app;
}

export interface RestServer {
  app: FastifyInstance;
  address: { host: string; port: number };
  close(): Promise<void>;
}

export async function startRestApi(deps: RestDeps): Promise<RestServer> {
  const app = createRestApp(deps);
  await app.listen({ host: deps.config.host, port: deps.config.port });
  const a = app.server.address();
  const address = a && typeof a === 'object' ? { host: a.address, port: a.port } : { host: deps.config.host, port: deps.config.port };
  return { app, address, close: () => app.close() };
}

export { HttpError };
