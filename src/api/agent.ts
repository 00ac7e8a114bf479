/**
 * The Odoo job endpoint (Asterisk Plus 4.x agent contract):
 * POST /app/asterisk_plus/agent, header x-token, body {fun, args, kwargs, res_model, res_method,
 * res_notify_uid, res_notify_title, pass_back}. Answers 200 {job_id} at once; the job runs later.
 * 401 wrong token (checked before the body is read), 413 body too large, 400 bad body,
 * 503 job queue full.
 */
import crypto from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { JobRequest, SubmitResult } from '../odoo/jobs.js';

export interface AgentAppOptions {
  /** the agent token Odoo sends in x-token; empty = every request is refused */
  token: string;
  bodyLimitBytes: number;
  submit: (req: JobRequest) => SubmitResult;
  /** PEM pair for HTTPS; omitted = plain HTTP (tests, or behind a TLS proxy) */
  https?: { cert: string; key: string };
  logger?: Logger;
  onAuthFailure?: (remote: string) => void;
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

function digest(s: string): Buffer {
  return crypto.createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time token check over equal-length digests. */
export function tokenMatches(expected: Buffer | null, given: unknown): boolean {
  if (expected === null || typeof given !== 'string' || given.length === 0) return false;
  return crypto.timingSafeEqual(expected, digest(given));
}

const strOrNull = (v: unknown): string | null => (typeof v === 'string' && v ? v : null);

/** Build the fastify app (not listening). `app.listen({host, port})` starts it. */
export function createAgentApp(opts: AgentAppOptions): FastifyInstance {
  const expected = opts.token ? digest(opts.token) : null;
  const app = Fastify({
    ...(opts.https ? { https: { cert: opts.https.cert, key: opts.https.key } } : {}),
    bodyLimit: opts.bodyLimitBytes,
    logger: false,
    keepAliveTimeout: 65_000,
    requestTimeout: 30_000,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  }) as unknown as FastifyInstance;
  const log = opts.logger;

  app.addHook('onRequest', async (req, reply) => {
    if (req.url.split('?')[0] !== '/app/asterisk_plus/agent') return;
    if (!tokenMatches(expected, req.headers['x-token'])) {
      opts.onAuthFailure?.(req.ip);
      log?.warn({ remote: req.ip }, expected === null
        ? 'Odoo job refused: no agent token configured (set odoo.agentToken or run "pbx-guardian odoo init")'
        : 'Odoo job refused: wrong or missing x-token (does the agent token in Odoo match odoo.agentToken?)');
      return reply.code(401).send({ error: 'invalid token' });
    }
  });

  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string; validation?: unknown }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status === 413) return reply.code(413).send({ error: `body larger than ${opts.bodyLimitBytes} bytes` });
    if (status >= 500) log?.error({ err: err.message }, 'agent endpoint error');
    return reply.code(status).send({ error: err.validation ? `bad job body: ${err.message}` : err.message });
  });

  app.post('/app/asterisk_plus/agent', { schema: { body: bodySchema } }, async (req, reply) => {
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
