/**
 * Authentication as a property of each route, for every HTTP listener (Odoo agent endpoint, REST,
 * admin socket, metrics). A route declares its policy in `config.auth`; fastify matches the
 * request to a route first (after decoding the path), and the matched route's policy runs in the
 * first onRequest hook, before the body is read. So a path spelled differently (%61gent) either
 * matches the route, and its policy runs, or matches nothing and gets a 404 that runs nothing.
 * A route registered without a policy fails at registration (onRoute): no route is open by default.
 */
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthFailures, FailureReason, ListenerName } from './auth-failures.js';
import { StartupError } from '../common/errors.js';

export type RoutePolicy =
  /** anyone who reaches the listener (OpenAPI document, metrics) */
  | { kind: 'public' }
  /** header x-token equal to odoo.agentToken (the Asterisk Plus agent contract) */
  | { kind: 'agent-token' }
  /** Authorization: Bearer <token> from rest.tokens, holding `scope` (or "admin") */
  | { kind: 'bearer'; scope: string }
  /** a unix socket: its file mode and owner are the credential; refused on any TCP listener */
  | { kind: 'local-socket' };

export const PUBLIC: RoutePolicy = { kind: 'public' };
export const AGENT_TOKEN: RoutePolicy = { kind: 'agent-token' };
export const LOCAL_SOCKET: RoutePolicy = { kind: 'local-socket' };
export const bearer = (scope: string): RoutePolicy => ({ kind: 'bearer', scope });

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RoutePolicy;
  }
  interface FastifyRequest {
    /** the name of the credential that authenticated the request (REST token name, "odoo") */
    authClient?: string;
  }
}

export type { ListenerName } from './auth-failures.js';

export interface TokenEntry {
  name: string;
  scopes: readonly string[];
}

function digest(s: string): Buffer {
  return crypto.createHash('sha256').update(s, 'utf8').digest();
}

/**
 * The secrets a listener accepts, replaceable at reload (a removed secret stops working at once).
 * Every entry is compared in constant time over equal-length digests, with no early exit.
 */
export class TokenSet<E extends TokenEntry = TokenEntry> {
  private entries: Array<{ digest: Buffer; entry: E }> = [];

  constructor(tokens: ReadonlyArray<{ token: string; entry: E }> = []) {
    this.replace(tokens);
  }

  /** empty tokens are never accepted */
  replace(tokens: ReadonlyArray<{ token: string; entry: E }>): void {
    this.entries = tokens.filter((t) => t.token.length > 0).map((t) => ({ digest: digest(t.token), entry: t.entry }));
  }

  get size(): number {
    return this.entries.length;
  }

  match(given: unknown): E | null {
    if (typeof given !== 'string' || given.length === 0 || given.length > 512) return null;
    const d = digest(given);
    let found: E | null = null;
    for (const t of this.entries) if (crypto.timingSafeEqual(t.digest, d) && found === null) found = t.entry;
    return found;
  }
}

export interface RouteAuthOptions {
  listener: ListenerName;
  /** accepted for agent-token routes */
  agentTokens?: TokenSet;
  /** accepted for bearer routes */
  bearerTokens?: TokenSet;
  /** rate limit, aggregate log, metric and guard feed of failed authentication */
  failures?: AuthFailures | null;
}

export interface RegisteredRoute {
  listener: ListenerName;
  method: string;
  url: string;
  policy: RoutePolicy;
}

/** A route registered without an auth policy, or with one its listener cannot check: a defect, found at start. */
export class RoutePolicyError extends StartupError {
  constructor(message: string) {
    super(message, 'ROUTE_POLICY_MISSING');
  }
}

const registered = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** The routes of an app with route auth installed (undefined: the app has none: a defect). */
export function routesOf(app: FastifyInstance): readonly RegisteredRoute[] | undefined {
  return registered.get(app);
}

function isPolicy(p: unknown): p is RoutePolicy {
  if (typeof p !== 'object' || p === null) return false;
  const k = (p as { kind?: unknown }).kind;
  if (k === 'bearer') return typeof (p as { scope?: unknown }).scope === 'string' && (p as { scope: string }).scope.length > 0;
  return k === 'public' || k === 'agent-token' || k === 'local-socket';
}

/** Where a policy can be checked at all: a route that could never pass is a wiring mistake. */
function checkUsable(policy: RoutePolicy, opts: RouteAuthOptions, where: string): void {
  if (policy.kind === 'agent-token' && !opts.agentTokens) throw new RoutePolicyError(`${where}: agent-token policy on a listener without an agent token`);
  if (policy.kind === 'bearer' && !opts.bearerTokens) throw new RoutePolicyError(`${where}: bearer policy on a listener without bearer tokens`);
}

/** Listening on a unix socket, or not listening at all (fastify inject in tests): never TCP. */
function onLocalSocket(app: FastifyInstance): boolean {
  return !app.server.listening || typeof app.server.address() === 'string';
}

type Verdict = { ok: true; client?: string } | { ok: false; status: 401 | 403; reason: FailureReason; body: { error: string; code: string } };

function verify(app: FastifyInstance, policy: RoutePolicy, req: FastifyRequest, opts: RouteAuthOptions): Verdict {
  switch (policy.kind) {
    case 'public':
      return { ok: true };
    case 'local-socket':
      return onLocalSocket(app)
        ? { ok: true }
        : {
            ok: false,
            status: 403,
            reason: 'not-local',
            body: { error: 'this route answers only on the admin unix socket (admin.socket)', code: 'LOCAL_ONLY' },
          };
    case 'agent-token': {
      const given = req.headers['x-token'];
      if (opts.agentTokens!.match(given)) return { ok: true, client: 'odoo' };
      return {
        ok: false,
        status: 401,
        reason: given === undefined ? 'missing' : 'invalid',
        body: { error: 'invalid token (x-token must equal odoo.agentToken)', code: 'UNAUTHORIZED' },
      };
    }
    case 'bearer': {
      const h = req.headers.authorization;
      const m = typeof h === 'string' ? /^Bearer\s+(\S{1,512})$/i.exec(h) : null;
      const who = m ? opts.bearerTokens!.match(m[1]) : null;
      if (!who) {
        return {
          ok: false,
          status: 401,
          reason: h === undefined ? 'missing' : 'invalid',
          body: { error: 'missing or invalid bearer token (Authorization: Bearer <token> from rest.tokens)', code: 'UNAUTHORIZED' },
        };
      }
      req.authClient = who.name;
      if (!who.scopes.includes(policy.scope) && !who.scopes.includes('admin')) {
        // a valid token without the scope: not an authentication failure, not counted
        return {
          ok: false,
          status: 403,
          reason: 'scope',
          body: { error: `token "${who.name}" lacks the "${policy.scope}" scope this route requires`, code: 'FORBIDDEN' },
        };
      }
      return { ok: true, client: who.name };
    }
  }
}

/**
 * Installs route auth on a fresh app: call it before any route is registered. From then on every
 * route must carry `config.auth`, and every matched request runs its route's policy first.
 */
export function installRouteAuth(app: FastifyInstance, opts: RouteAuthOptions): void {
  const routes: RegisteredRoute[] = [];
  registered.set(app, routes);
  app.addHook('onRoute', (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    const where = `${opts.listener} listener, ${methods.join(',')} ${r.url}`;
    const policy = (r.config as { auth?: unknown } | undefined)?.auth;
    if (!isPolicy(policy)) {
      throw new RoutePolicyError(
        `${where}: no auth policy (config.auth: public, agent-token, bearer + scope, or local-socket); a route without one is refused`,
      );
    }
    checkUsable(policy, opts, where);
    for (const method of methods) routes.push({ listener: opts.listener, method, url: r.url, policy });
  });
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (req.is404) return; // no route matched: the 404 handler answers and runs nothing
    const policy = req.routeOptions.config?.auth;
    if (!isPolicy(policy)) return reply.code(403).send({ error: 'route without an auth policy: refused', code: 'NO_POLICY' });
    if (policy.kind === 'public') return;
    const failures = opts.failures;
    if (failures?.throttled(opts.listener, req.ip)) {
      reply.header('retry-after', String(failures.retryAfterSec(req.ip)));
      return reply.code(429).send({ error: 'too many failed authentications from this address; try again later', code: 'TOO_MANY_FAILURES' });
    }
    const v = verify(app, policy, req, opts);
    if (v.ok) {
      if (v.client) req.authClient = v.client;
      return;
    }
    if (v.reason !== 'scope') failures?.record(opts.listener, req.ip, v.reason);
    if (v.status === 401 && policy.kind === 'bearer') reply.header('www-authenticate', 'Bearer realm="pbx-guardian"');
    return reply.code(v.status).send(v.body);
  });
}
