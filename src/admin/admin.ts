import Fastify, { type FastifyInstance } from 'fastify';
import { chmodSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { AppError, toHttp } from '../common/errors.js';
import {
  enclosingNetworks,
  formatNetwork,
  InvalidTargetError,
  parseNetwork,
  remoteMatches,
  type BanControl,
  type BanLookup,
  type GuardStatus,
  type RemoteBanSet,
} from '../guard/index.js';
import type { HistoryQuery, HistoryRow } from '../store/index.js';
import type { Rule } from '../guard/index.js';
import type { RuntimeAllow } from './runtime-allow.js';
import { requestedBanDuration } from '../guard/index.js';
import type { HealthReport } from '../health/index.js';
import type { AccountWatch } from '../accounts/index.js';
import { installRouteAuth, LOCAL_SOCKET } from '../net/auth.js';
import type { AuthFailures } from '../net/auth-failures.js';
import { makeDirs } from '../store/dirs.js';
import type { FraudSnapshot } from '../fraud/index.js';

/** What the admin routes (used by the CLI over the unix socket) need from the daemon. */
export interface AdminPort {
  control: BanControl;
  /** covering bans (banned ADDRESS, unban --covering); absent: exact targets only */
  lookup?: BanLookup;
  /** the ban history (pbx-guardian history, why); absent: no store */
  history?(q: HistoryQuery): HistoryRow[];
  /** pbx-guardian allow list|add|remove */
  allow?: Pick<RuntimeAllow, 'list' | 'add' | 'remove'>;
  /** the rules loaded (pbx-guardian status RULE) */
  rules?(): readonly Rule[];
  /** sets of decisions this daemon did not make (the fleet's), read by `why` */
  remoteSets?(): RemoteBanSet[];
  /** the daemon's own Prometheus scrape (pbx-guardian metrics) */
  metrics?(): Promise<string>;
  status(): GuardStatus;
  /** re-read config and rules; bans stay */
  reload(): Promise<{ rules: number; applied?: string[]; restartNeeded?: string[] }>;
  version: string;
  /** one answer per part (GET /health; pbx-guardian status prints it on top) */
  health?(): HealthReport;
  /** pbx-guardian flush / resume of the running daemon */
  firewall?: FirewallControl;
  /** pbx-guardian accounts / acknowledge (null when accounts.enabled is false) */
  accounts?: () => Pick<AccountWatch, 'list' | 'acknowledge'> | null;
  /** pbx-guardian fraud / unblock (absent: fraud.enabled is false) */
  fraud?: FraudControl;
}

/** The fraud stage as the admin routes need it. */
export interface FraudControl {
  snapshot(): FraudSnapshot;
  /** false when the account was not blocked */
  unblock(account: string, by: string): boolean;
}

const ACCOUNT_RE = /^[A-Za-z0-9_.-]{1,80}$/;

/** Stopping enforcement on purpose, and starting it again. */
export interface FirewallControl {
  /** removes our table / sets; bans are still decided and stored */
  pause(): Promise<{ reason: string; storeActive: number }>;
  /** re-creates and re-fills them from the store */
  resume(): Promise<{ resumed: boolean; restored: number }>;
}

const banBody = {
  type: 'object',
  required: ['target'],
  additionalProperties: false,
  properties: {
    target: { type: 'string', minLength: 1, maxLength: 64 },
    duration: { anyOf: [{ type: 'string', maxLength: 32 }, { type: 'number' }, { type: 'null' }] },
    reason: { type: 'string', maxLength: 200 },
  },
} as const;

const allowBody = {
  type: 'object',
  required: ['entry'],
  additionalProperties: false,
  properties: { entry: { type: 'string', minLength: 1, maxLength: 64 }, note: { type: 'string', maxLength: 120 } },
} as const;

/** Policy of every admin route: the unix socket's mode and owner are the credential. */
const local = { config: { auth: LOCAL_SOCKET } };

/** The local admin API. Errors come back as { error, code } with a status a script can rely on. */
export function createAdminApp(port: AdminPort, failures?: AuthFailures | null): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
  installRouteAuth(app, { listener: 'admin', failures });

  app.setErrorHandler((err: Error, _req, reply) => {
    const { status, body } = toHttp(err, { foreignCode: 'BAD_REQUEST' });
    return reply.code(status).send(body);
  });

  app.get('/version', local, async () => ({ version: port.version }));
  app.get('/status', local, async () => port.status());
  app.get('/health', local, async (_req, reply) => {
    if (!port.health) return reply.code(404).send({ error: 'this daemon has no health report', code: 'NOT_FOUND' });
    return port.health();
  });
  app.get<{ Querystring: { address?: string } }>('/bans', local, async (req) => {
    const address = req.query.address;
    if (address === undefined) return { bans: port.control.listBans() };
    if (!port.lookup) return { bans: port.control.listBans().filter((b) => b.target === address) };
    const local = port.lookup.bansCovering(String(address));
    const net = parseNetwork(String(address))!;
    const key = local.find((m) => m.how === 'key')?.ban.target;
    // the fleet's decisions too, as rows of the same shape (rule '-', source: the set's kind)
    const remote = remoteMatches(port.remoteSets?.() ?? [], net, key ? parseNetwork(key)! : net, Date.now()).map((m) => ({
      target: m.target,
      family: net.family,
      isNetwork: m.target.includes('/'),
      createdAt: 0,
      expiresAt: m.expiresAt,
      rule: '-',
      source: m.kind,
      reason: `${m.kind} decision (set ${m.set})`,
      count: 0,
      match: m.kind,
      how: m.how,
    }));
    return { bans: [...local.map((m) => ({ ...m.ban, match: m.kind, how: m.how })), ...remote] };
  });

  app.post<{ Body: { target: string; duration?: string | number | null; reason?: string } }>(
    '/bans',
    { ...local, schema: { body: banBody } },
    async (req, reply) => {
      const { target, duration, reason } = req.body;
      const ban = await port.control.ban({ target, durationSec: requestedBanDuration(duration), reason, source: 'manual' });
      return reply.code(201).send({ ban });
    },
  );

  app.delete<{ Params: { target: string }; Querystring: { covering?: string } }>('/bans/:target', local, async (req, reply) => {
    const target = req.params.target; // fastify already decoded the param once
    if (port.lookup) {
      const out = await port.lookup.unbanTarget(target, { covering: req.query.covering === '1' || req.query.covering === 'true' });
      if (out.removed.length === 0) return reply.code(404).send({ error: `${out.target} is not banned`, code: 'NOT_BANNED' });
      return { unbanned: out.removed.length, target: out.target, removed: out.removed, stillCovered: out.stillCovered };
    }
    const removed = await port.control.unban(target);
    if (!removed) return reply.code(404).send({ error: `${target} is not banned`, code: 'NOT_BANNED' });
    return { unbanned: 1 };
  });

  // every network that contains the address: its own bans, its IPv6 prefix's, a covering /24's
  const historyOf = (address: string | undefined, since?: number, limit?: number): HistoryRow[] | null => {
    if (!port.history) return null;
    let targets: string[] | undefined;
    if (address !== undefined) {
      const net = parseNetwork(address);
      if (!net) throw new InvalidTargetError(`"${address.slice(0, 80)}" is not an IPv4/IPv6 address or CIDR`);
      targets = enclosingNetworks(net).map(formatNetwork);
    }
    return port.history({ targets, since, limit });
  };
  app.get<{ Params: { address: string } }>('/why/:address', local, async (req) => {
    if (!port.lookup) throw new AppError('this daemon cannot explain an address', 'NOT_FOUND', 404);
    const report = port.lookup.explain(req.params.address);
    // the fleet's (and feeds') decisions beside the local bans: { kind: 'local' | 'fleet' | 'feed', ... }
    const remote = remoteMatches(port.remoteSets?.() ?? [], parseNetwork(report.address)!, parseNetwork(report.key)!, Date.now());
    return { ...report, bans: [...report.bans, ...remote], history: historyOf(report.address, undefined, 50) };
  });
  app.get<{ Querystring: { address?: string; since?: string; limit?: string } }>('/history', local, async (req) => {
    const num = (v: string | undefined, what: string) => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new AppError(`${what}: "${String(v).slice(0, 20)}" is not a number`, 'BAD_REQUEST', 400);
      return n;
    };
    const rows = historyOf(req.query.address, num(req.query.since, 'since'), num(req.query.limit, 'limit'));
    if (rows === null) throw new AppError('this daemon keeps no ban history', 'NOT_FOUND', 404);
    return { history: rows };
  });

  const allow = () => {
    if (!port.allow) throw new AppError('this daemon has no runtime allow-list', 'NOT_FOUND', 404);
    return port.allow;
  };
  app.get('/allow', local, async () => allow().list());
  app.post<{ Body: { entry: string; note?: string } }>('/allow', { ...local, schema: { body: allowBody } }, async (req, reply) =>
    reply.code(201).send(await allow().add(req.body.entry, req.body.note)),
  );
  app.delete<{ Params: { entry: string } }>('/allow/:entry', local, async (req) => allow().remove(req.params.entry));
  app.get('/rules', local, async () => ({
    rules: (port.rules?.() ?? []).map((r) => ({
      name: r.name,
      description: r.description,
      events: r.events,
      windows: r.windows,
      banSec: r.banSec,
      weight: r.weight,
      resetOn: r.resetOn,
    })),
  }));
  app.get('/metrics', local, async (_req, reply) => {
    if (!port.metrics) throw new AppError('this daemon has no metrics registry', 'NOT_FOUND', 404);
    return reply.send({ metrics: await port.metrics() });
  });

  app.delete('/bans', local, async () => ({ unbanned: await port.control.unbanAll() }));
  const accounts = () => {
    const a = port.accounts?.();
    if (!a) throw new AppError('the account memory is off (accounts.enabled: false)', 'ACCOUNTS_DISABLED', 404);
    return a;
  };
  app.get('/accounts', local, async () => accounts().list());
  app.post<{ Params: { account: string } }>('/accounts/:account/acknowledge', local, async (req) => accounts().acknowledge(req.params.account));
  app.post('/reload', local, async () => port.reload());
  const fraud = port.fraud;
  app.get('/fraud', local, async () => fraud?.snapshot() ?? { enabled: false, live: [], blocked: [], decisions: [], tracked: null });
  app.delete<{ Params: { account: string } }>('/fraud/blocks/:account', local, async (req, reply) => {
    const { account } = req.params;
    if (!ACCOUNT_RE.test(account))
      return reply.code(400).send({ error: `"${account.slice(0, 80)}" is not an account name ([A-Za-z0-9_.-], at most 80)`, code: 'INVALID_TARGET' });
    if (!fraud) return reply.code(404).send({ error: 'the fraud guard is off (fraud.enabled: false)', code: 'NOT_FOUND' });
    if (!fraud.unblock(account, 'cli')) return reply.code(404).send({ error: `account ${account} is not blocked`, code: 'NOT_BLOCKED' });
    return { unblocked: account };
  });
  const fw = port.firewall;
  if (fw) {
    app.post('/firewall/flush', local, async () => ({ paused: true, ...(await fw.pause()) }));
    app.post('/firewall/resume', local, async () => fw.resume());
  }
  return app;
}

/** Whether something accepts connections on a unix socket path (a live daemon's admin socket). */
function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const sock = connect({ path });
    const done = (alive: boolean) => {
      sock.destroy();
      resolvePromise(alive);
    };
    sock.setTimeout(timeoutMs, () => done(true)); // accepted but slow: someone is there
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Listens on a unix socket with the given mode (0600 by default: root / the service user only).
 * A socket file left by a daemon that died is replaced; one that still answers is never taken
 * over (EADDRINUSE): call this only while holding the state directory's lock.
 */
export async function listenAdminSocket(app: FastifyInstance, socketPath: string, mode: number): Promise<void> {
  makeDirs(dirname(socketPath), 0o750);
  let stale = false;
  try {
    stale = statSync(socketPath).isSocket();
  } catch {
    // no socket file
  }
  if (stale) {
    if (await socketAnswers(socketPath)) {
      throw Object.assign(new Error(`${socketPath} is the admin socket of a running process`), { code: 'EADDRINUSE', syscall: 'listen' });
    }
    rmSync(socketPath);
  }
  // Create the socket with no group/other access from the start, then set the configured mode.
  const previous = process.umask(0o177);
  try {
    await app.listen({ path: socketPath });
  } finally {
    process.umask(previous);
  }
  chmodSync(socketPath, mode);
}
