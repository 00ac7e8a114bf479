/**
 * The Odoo bridge (Asterisk Plus 4.x agent): job endpoint, job runner, RPC client, events map
 * forwarding with a durable outbox, FastAGI. main.ts wires it with startOdooBridge().
 */
import type { Database } from 'better-sqlite3';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import type { Server as HttpServer } from 'node:http';
import type { AmiMessage } from '../ami/types.js';
import { resolveActionPolicy, type ActionPolicy } from '../ami/policy.js';
import type { BanControl, BanNotice } from '../guard/types.js';
import type { GuardianEvent } from '../guard/subscriber.js';
import type { Subscriber } from '../guard/subscriber.js';
import { agentTokenSet, createAgentApp, setAgentToken } from './agent.js';
import type { AuthFailures } from '../net/auth-failures.js';
import { ensureTlsPair } from './tls.js';
import { Outbox } from '../store/outbox.js';
import { resolveOdooConfig, type OdooConfig, type OdooConfigInput } from './config.js';
import { FagiServer } from './fagi.js';
import { Forwarder } from './forwarder.js';
import { JobRegistry, JobRunner, type AmiPort, type JobFunction, type JobResultSink } from './jobs.js';
import { createOdooMetrics } from './metrics.js';
import { OdooRpc, type OdooCaller, type RpcHealth } from './rpc.js';
import { redactUrl } from '../common/redact.js';
import type { ConfigSyncPort } from './job-sip-peers.js';

export { resolveOdooConfig, defaultOdooConfig, type OdooConfig, type OdooConfigInput, type OutboxPolicy } from './config.js';
export { odooInit, OdooInitError, type OdooInitResult } from './init.js';
export { compileCondition, ConditionError, type CompiledCondition } from './condition.js';
export { OdooRpc, OdooAuthError, OdooServerError, OdooUnavailableError, type OdooCaller, type RpcHealth } from './rpc.js';
export { JobRunner, JobRegistry, JOB_FUNCTIONS, messageToDict, JobError, type AmiPort, type JobRequest, type JobFunction } from './jobs.js';
export { Forwarder, type EventHandler } from './forwarder.js';
export { FagiServer } from './fagi.js';
export type { ConfigSyncPort } from './job-sip-peers.js';
export { readOdooSettings, ODOO_SETTING_KEYS, type OdooSetting, type OdooSettingsRead } from './settings.js';

export interface OdooBridgeDeps {
  config: OdooConfig | OdooConfigInput;
  ami: AmiPort;
  bans: BanControl;
  db: Database;
  logger: Logger;
  registry: Registry;
  /** called for agent.reload_config jobs */
  reloadConfig: () => Promise<unknown> | unknown;
  /** where the self-signed pair is kept when no cert is configured */
  stateDir: string;
  /** replace the RPC client (tests) */
  rpc?: OdooCaller;
  /** failed job endpoint authentication: rate limit, aggregate log, metric, guard */
  authFailures?: AuthFailures | null;
  /** the AMI action policy for jobs and FastAGI answers; default: odoo.denied* with no widening and no console (Command refused) */
  actionPolicy?: ActionPolicy;
  /** called with the job endpoint's HTTP server before it listens (the daemon's StartingGate) */
  beforeListen?: (server: HttpServer) => void;
  /** job functions of other stages (console, config sync) added to this bridge's own registry */
  jobFunctions?: Iterable<[string, JobFunction]>;
  /** config sync, for sip.get_peers (null or absent: not available) */
  configSync?: ConfigSyncPort | null;
}

/** What the bridge knows about its delivery to Odoo (health model). */
export interface OdooHealthSnapshot {
  /** odoo.url without credentials or query */
  url: string;
  db: string;
  user: string;
  /** null when the RPC client was injected (tests) */
  rpc: RpcHealth | null;
  /** undelivered calls in the durable outbox */
  outboxDepth: number;
  outboxMaxRows: number;
  /** epoch ms the oldest undelivered call was queued; null when the outbox is empty */
  oldestUndeliveredAt: number | null;
  /** direct: delivering as events come; outbox: Odoo was slow or down, draining the outbox */
  mode: string;
  /** the HTTPS job endpoint: listening, off (odoo.listen.enabled false), or no-token (not started) */
  jobEndpoint: 'listening' | 'off' | 'no-token';
}

export interface OdooBridge extends Subscriber<OdooHealthSnapshot> {
  readonly name: 'odoo';
  /** read-only snapshot for the health model */
  health(): OdooHealthSnapshot;
  /** every AMI event (cheap: one Map lookup for events the map does not ask for) */
  handleAmiEvent(msg: AmiMessage): void;
  /** the guardian's own ban / unban decisions, forwarded as GuardianBan / GuardianUnban events */
  handleBanNotice(notice: BanNotice): void;
  /** GuardianFraud, GuardianAccountBlocked, GuardianAccountUnblocked: through the events map, like ban notices */
  handleGuardianEvent(ev: GuardianEvent): void;
  /** download the events map again */
  reloadEvents(): Promise<{ loaded: number; skipped: number }>;
  status(): { events: ReturnType<Forwarder['stats']>; jobsQueued: number; jobsRunning: number };
  /** the agent token from now on (reload); false when the job endpoint is not running (a restart starts it) */
  setAgentToken(token: string): boolean;
  /** FastAGI from now on (reload): stopped, started or moved; throws when the new address cannot be bound (FastAGI is then off) */
  setFagi(fagi: OdooConfig['fagi']): Promise<void>;
  /** the directories recording.get_file and file.delete are confined to, from the next job on (reload) */
  setRecordingDirs(dirs: string[]): void;
  close(): Promise<void>;
  /** where the job endpoint / FastAGI listen (null when off) */
  readonly agentAddress: { host: string; port: number } | null;
  readonly fagiAddress: { host: string; port: number } | null;
  readonly config: OdooConfig;
  /** internals, for tests and benchmarks */
  readonly forwarder: Forwarder;
  readonly jobs: JobRunner;
  readonly app: FastifyInstance | null;
}

export async function startOdooBridge(deps: OdooBridgeDeps): Promise<OdooBridge> {
  const config = resolveOdooConfig(deps.config as OdooConfigInput);
  const log = deps.logger.child({ stage: 'odoo' });
  const actionPolicy = deps.actionPolicy ?? resolveActionPolicy({ deniedActions: config.deniedActions, deniedApplications: config.deniedApplications });
  if (!config.url && !deps.rpc) throw new Error('odoo.url is empty: set the Odoo base URL (or run "pbx-guardian odoo init")');
  if (!config.db && !deps.rpc) throw new Error('odoo.db is empty: set the Odoo database name');
  const functions = new JobRegistry();
  for (const [name, fn] of deps.jobFunctions ?? []) functions.register(name, fn);

  let forwarder: Forwarder | null = null;
  let jobs: JobRunner | null = null;
  let outbox: Outbox | null = null;
  const metrics = createOdooMetrics(deps.registry, {
    outboxDepth: () => outbox?.count() ?? 0,
    outboxOldestAgeSec: () => {
      const t = outbox?.oldestCreatedAt();
      return t ? (Date.now() - t) / 1000 : 0;
    },
    delayed: () => forwarder?.stats().delayed ?? 0,
    queued: () => forwarder?.stats().memory ?? 0,
    jobsQueued: () => jobs?.queued() ?? 0,
    jobsRunning: () => jobs?.active() ?? 0,
  });
  const ownRpc = deps.rpc
    ? null
    : new OdooRpc(config, log, {
        onCall: (outcome, secs) => {
          metrics.rpcCalls.inc({ outcome });
          metrics.rpcSeconds.observe({ outcome }, secs);
        },
      });
  const rpc: OdooCaller = deps.rpc ?? ownRpc!;
  outbox = new Outbox(deps.db, {
    maxRows: config.outboxMaxRows,
    maxPayloadBytes: config.outboxMaxPayloadBytes,
    onDrop: (reason, n) => {
      metrics.outboxDropped.inc({ reason }, n);
      if (reason !== 'expired')
        log.warn(
          { reason, rows: n },
          reason === 'cap'
            ? `Odoo outbox full (odoo.outboxMaxRows=${config.outboxMaxRows}): dropped the oldest low-priority rows`
            : 'a call too large for the outbox was dropped (odoo.outboxMaxPayloadBytes)',
        );
    },
  });
  forwarder = new Forwarder({ rpc, outbox, config, log, metrics });
  const fw = forwarder;

  const sink: JobResultSink = {
    result(job, model, method, result, kwargs) {
      if (job.fun === 'recording.get_file') {
        // large payload, streamed from the open file: retried directly, never written to the outbox;
        // the runner closes the file and frees the job's memory when this settles
        return rpc.executeKw(model, method, [result], kwargs, { retries: 4, timeoutMs: Math.max(config.rpcTimeoutMs, 120_000) }).catch((e: Error) => {
          log.error({ jobId: job.id, model, method, err: e.message }, 'cannot deliver a recording to Odoo; Odoo will ask again');
        });
      }
      const pol = config.outboxPolicy.JobResult ?? { ttlSec: 3600, priority: 2 };
      const now = Date.now();
      fw.enqueue({
        seq: 0,
        lane: `job:${job.id}`,
        kind: 'JobResult',
        model,
        method,
        args: [result],
        kwargs,
        priority: pol.priority,
        createdAt: now,
        expiresAt: now + pol.ttlSec * 1000,
      });
    },
    notify(job, uid, title, message, warning) {
      rpc.executeKw(config.notifyModel, config.notifyMethod, [message], { title, notify_uid: uid, warning }, { retries: 2 }).catch((e: Error) => {
        log.warn({ jobId: job.id, err: e.message }, `cannot send a job ${warning ? 'error' : 'outcome'} notice to Odoo`);
      });
    },
  };
  jobs = new JobRunner({
    ctx: {
      ami: deps.ami,
      bans: deps.bans,
      config,
      actionPolicy,
      log,
      reloadConfig: deps.reloadConfig,
      reloadEvents: () => fw.reloadEvents(),
      rpc,
      configSync: deps.configSync ?? null,
    },
    sink,
    metrics,
    functions,
  });
  const jr = jobs;

  let app: FastifyInstance | null = null;
  const agentTokens = agentTokenSet(config.agentToken);
  let agentAddress: { host: string; port: number } | null = null;
  let fagi = null as FagiServer | null;
  let fagiAddress: { host: string; port: number } | null = null;
  const startFagi = async (): Promise<void> => {
    const f = new FagiServer({
      host: config.fagi.host,
      port: config.fagi.port,
      rpc,
      handlers: (s) => fw.fagiHandlers(s),
      actionPolicy,
      log,
      metrics,
      systemName: config.systemName,
    });
    fagiAddress = await f.start();
    fagi = f;
    log.info({ ...fagiAddress }, 'FastAGI server listening');
  };
  try {
    if (config.listen.enabled) {
      if (!config.agentToken) {
        log.error(
          'Odoo job endpoint NOT started: odoo.agentToken is empty (run "pbx-guardian odoo init" or copy the token from the Asterisk Plus server form)',
        );
      } else {
        const tls = ensureTlsPair({ certFile: config.listen.certFile, keyFile: config.listen.keyFile, stateDir: deps.stateDir });
        if (tls.generated) log.info({ certFile: tls.certFile }, 'generated a self-signed certificate for the Odoo job endpoint');
        app = createAgentApp({
          token: agentTokens,
          bodyLimitBytes: config.bodyLimitBytes,
          submit: (r) => jr.submit(r),
          https: { cert: tls.cert, key: tls.key },
          logger: log,
          failures: deps.authFailures,
        });
        deps.beforeListen?.(app.server as HttpServer);
        await app.listen({ host: config.listen.host, port: config.listen.port });
        const a = app.server.address();
        agentAddress = a && typeof a === 'object' ? { host: a.address, port: a.port } : null;
        log.info({ ...agentAddress }, 'Odoo job endpoint listening (HTTPS, POST /app/asterisk_plus/agent)');
      }
    }
    if (config.fagi.enabled) await startFagi();
  } catch (e) {
    await app?.close().catch(() => undefined);
    await fagi?.close().catch(() => undefined);
    await fw.close(0);
    ownRpc?.close();
    throw e;
  }
  fw.startRefresh();

  let closed = false;
  const jobEndpoint: OdooHealthSnapshot['jobEndpoint'] = app !== null ? 'listening' : config.listen.enabled ? 'no-token' : 'off';
  return {
    name: 'odoo',
    health: () => {
      const ob = outbox!;
      return {
        url: redactUrl(config.url),
        db: config.db,
        user: config.user,
        rpc: ownRpc?.health() ?? null,
        outboxDepth: ob.count(),
        outboxMaxRows: config.outboxMaxRows,
        oldestUndeliveredAt: ob.oldestCreatedAt(),
        mode: fw.stats().mode,
        jobEndpoint,
      };
    },
    handleAmiEvent: (msg) => fw.handleAmiEvent(msg),
    handleBanNotice: (n) => fw.handleBanNotice(n),
    handleGuardianEvent: (ev) => fw.handleGuardianEvent(ev),
    reloadEvents: () => fw.reloadEvents(),
    status: () => ({ events: fw.stats(), jobsQueued: jr.queued(), jobsRunning: jr.active() }),
    setAgentToken(token) {
      setAgentToken(agentTokens, token);
      return app !== null;
    },
    async setFagi(next) {
      const cur = config.fagi;
      if (cur.enabled === next.enabled && cur.host === next.host && cur.port === next.port) return;
      if (fagi) {
        await fagi.close();
        log.info({ ...fagiAddress }, 'FastAGI server stopped (reload)');
      }
      fagi = null;
      fagiAddress = null;
      config.fagi = { ...next };
      if (next.enabled && !closed) await startFagi();
    },
    setRecordingDirs(dirs) {
      config.recordingDirs = [...dirs];
    },
    async close() {
      if (closed) return;
      closed = true;
      await app?.close().catch(() => undefined);
      await fagi?.close().catch(() => undefined);
      await jr.close(2000);
      await fw.close(2000);
      ownRpc?.close();
    },
    agentAddress,
    get fagiAddress() {
      return fagiAddress;
    },
    config,
    forwarder: fw,
    jobs: jr,
    app,
  };
}
