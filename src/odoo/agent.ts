/**
 * The Odoo job endpoint (Asterisk Plus 4.x agent contract):
 * POST /app/asterisk_plus/agent, header x-token, body {fun, args, kwargs, res_model, res_method,
 * res_notify_uid, res_notify_title, pass_back}. Answers 200 {job_id} at once; the job runs later.
 * 401 wrong token (the route's agent-token policy, checked before the body is read; see auth.ts),
 * 429 too many failures from the source, 413 body too large, 400 bad body, 503 job queue full.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { JobRequest, SubmitResult } from './jobs.js';
import { AGENT_TOKEN, installRouteAuth, TokenSet } from '../net/auth.js';
import type { AuthFailures } from '../net/auth-failures.js';
import { AppError, toHttp } from '../common/errors.js';

/** The agent token as a token set (replace() it at reload); an empty token accepts nothing. */
export function agentTokenSet(token: string): TokenSet {
  const set = new TokenSet();
  setAgentToken(set, token);
  return set;
}

export function setAgentToken(set: TokenSet, token: string): void {
  set.replace([{ token, entry: { name: 'odoo', scopes: [] } }]);
}

export interface AgentAppOptions {
  /** the agent token Odoo sends in x-token; empty = every request is refused */
  token: string | TokenSet;
  bodyLimitBytes: number;
  submit: (req: JobRequest) => SubmitResult;
  /** PEM pair for HTTPS; omitted = plain HTTP (tests, or behind a TLS proxy) */
  https?: { cert: string; key: string };
  logger?: Logger;
  /** failed authentication: rate limit, aggregate log, metric, guard */
  failures?: AuthFailures | null;
}

const bodySchema = {
  type: 'object',
  required: ['fun'],
  properties: {
    fun: { type: 'string', minLength: 1, maxLength: 128 },
    args: {},
    kwargs: { anyOf: [{ type: 'object' }, { type: 'null' }] },
    res_model: { anyOf: [{ type: 'string', maxLength: 128 }, { type: 'null' }, { type: 'boolean' }] },
    res_method: { anyOf: [{ type: 'string', maxLength: 128 }, { type: 'null' }, { type: 'boolean' }] },
    res_notify_uid: { anyOf: [{ type: 'integer' }, { type: 'null' }, { type: 'boolean' }] },
    res_notify_title: { anyOf: [{ type: 'string', maxLength: 256 }, { type: 'null' }, { type: 'boolean' }] },
    pass_back: { anyOf: [{ type: 'object' }, { type: 'null' }, { type: 'boolean' }] },
  },
} as const;

const strOrNull = (v: unknown): string | null => (typeof v === 'string' && v ? v : null);

/** Build the fastify app (not listening). `app.listen({host, port})` starts it. */
export function createAgentApp(opts: AgentAppOptions): FastifyInstance {
  const tokens = typeof opts.token === 'string' ? agentTokenSet(opts.token) : opts.token;
  const app = Fastify({
    ...(opts.https ? { https: { cert: opts.https.cert, key: opts.https.key } } : {}),
    bodyLimit: opts.bodyLimitBytes,
    logger: false,
    keepAliveTimeout: 65_000,
    requestTimeout: 30_000,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  }) as unknown as FastifyInstance;
  const log = opts.logger;
  installRouteAuth(app, { listener: 'agent', agentTokens: tokens, failures: opts.failures });

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, _req, reply) => {
    if (!(err instanceof AppError) && err.statusCode === 413)
      return reply.code(413).send({ error: `body larger than ${opts.bodyLimitBytes} bytes`, code: 'TOO_LARGE' });
    const { status, body } = toHttp(err);
    if (status >= 500) log?.error({ err: err.message }, 'agent endpoint error');
    return reply.code(status).send({ error: err.validation ? `bad job body: ${body.error}` : body.error, code: body.code });
  });

  app.post('/app/asterisk_plus/agent', { config: { auth: AGENT_TOKEN }, schema: { body: bodySchema } }, async (req, reply) => {
    const b = req.body as Record<string, unknown>;
    const r = opts.submit({
      fun: b.fun as string,
      args: b.args,
      kwargs: (b.kwargs as Record<string, unknown> | null | undefined) ?? {},
      res_model: strOrNull(b.res_model),
      res_method: strOrNull(b.res_method),
      res_notify_uid: typeof b.res_notify_uid === 'number' ? b.res_notify_uid : null,
      res_notify_title: strOrNull(b.res_notify_title),
      pass_back: b.pass_back && typeof b.pass_back === 'object' ? (b.pass_back as Record<string, unknown>) : null,
    });
    if (!r.ok) {
      reply.header('retry-after', '1');
      return reply.code(503).send({ error: r.reason === 'queue_full' ? 'job queue full, try again later' : 'agent is stopping' });
    }
    return reply.code(200).send({ job_id: r.id, jid: r.id });
  });

  return app;
}
