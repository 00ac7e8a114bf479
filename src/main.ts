import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { AmiClient, resolveActionPolicy, type AmiMessage } from './ami/index.js';
import { createAdminApp } from './api/admin.js';
import { StartingGate } from './api/listen.js';
import { AuthFailures } from './net/auth-failures.js';
import { TokenSet } from './net/auth.js';
import { changedKeys } from './config/changes.js';
import { assertRunnable, loadConfig, loginEventMask, seconds, type GuardianConfig } from './config/index.js';
import type { OdooBridge, AmiPort } from './odoo/index.js';
import { createBackend, DeferredBackend, Enforcer, pauseControl, takePausedNote, type FirewallBackend } from './firewall/index.js';
import { Guardian, HOST_REFRESH_MS, HostAllowFeed, HostWatch, systemResolver, type HostAddressPort, type HostFilesPort, type HostPaths, type HostResolver } from './guard/index.js';
import { guardOptions, hostNames, resolvedAllow } from './guard-options.js';
import { createMetrics, type Metrics } from './metrics/index.js';
import { acquireStateLock, prepareStateDir, SchemaVersionError, StateDirError, Store } from './store/index.js';
import { bindListeners, logListeners, noListeners, startOdoo } from './listeners.js';
import { judgeHealth, registerHealthMetrics, type HealthInputs, type HealthReport } from './health/index.js';
import { VERSION } from './version.js';
import { createRestApp, restTokenEntries, type RestServer, type RestToken } from './rest/index.js';
import { AsteriskConsole, registerConsoleRoute } from './console/index.js';
import { AsteriskConfigFiles } from './asterisk-config/index.js';
import { WebhookDispatcher } from './webhooks/index.js';
import { attachSources, type Sources } from './sources/index.js';

export interface DaemonOptions {
  config: GuardianConfig;
  /** path the config came from, re-read on reload (undefined: keep `config`) */
  configPath?: string;
  logger?: Logger;
  /** use this backend instead of the configured one (demo, tests) */
  backend?: FirewallBackend;
  /** false: no admin socket (tests that call the guardian directly) */
  adminSocket?: boolean;
  /** resolves the AMI and Odoo host names for the allow-list (tests: a name → addresses without DNS) */
  resolveHost?: HostResolver;
  /** the host's own addresses, never banned (default: every local interface's) */
  hostAddresses?: HostAddressPort;
  /** where the resolver and default gateways are read (tests: temp files) */
  hostFiles?: { files?: HostFilesPort; paths?: HostPaths };
}

export interface Daemon {
  config: GuardianConfig;
  guardian: Guardian;
  store: Store;
  enforcer: Enforcer;
  ami: AmiClient | null;
  odoo: OdooBridge | null;
  rest: RestServer | null;
  webhooks: WebhookDispatcher | null;
  metrics: Metrics;
  metricsUrl: string | null;
  logger: Logger;
  /** every HTTP listener's app (null when off), for the route policy tests */
  listeners: Record<'agent' | 'rest' | 'admin' | 'metrics', FastifyInstance | null>;
  reload(): Promise<ReloadResult>;
  /** one answer per part, judged now */
  health(): HealthReport;
  stop(): Promise<void>;
}

/** What a reload applied (config key names, never values) and what waits for a restart. */
export interface ReloadResult {
  rules: number;
  applied: string[];
  restartNeeded: string[];
}

export { guardOptions, hostNames } from './guard-options.js';

/** after a failed lookup of the AMI or Odoo host name */
const HOST_LOOKUP_RETRY_MS = 30_000;
const HOST_LOOKUP_TIMEOUT_MS = 5_000;

/**
 * The state database, at start. It must open: a daemon whose bans would not survive a restart is
 * refused here (fail fast). Write failures at run time are survived instead (Store.onWriteError).
 */
function openStore(stateDir: string): Store {
  try {
    return Store.open(stateDir);
  } catch (err) {
    if (err instanceof SchemaVersionError) throw new StateDirError(stateDir, err.message);
    throw new StateDirError(stateDir, `the state database ${join(stateDir, 'guardian.sqlite')} cannot be opened (${(err as Error).message}); check the mount, free space and permissions, or move a damaged file aside`);
  }
}

/** The configured backend; when it cannot be built yet, one that keeps trying (see DeferredBackend). */
async function openBackend(config: GuardianConfig, logger: Logger): Promise<FirewallBackend> {
  try {
    return await createBackend(config.firewall, logger);
  } catch (err) {
    logger.error({ err }, `enforcement is failing: ${(err as Error).message}. Detection and the Odoo bridge go on; retrying with backoff`);
    return new DeferredBackend(() => createBackend(config.firewall, logger));
  }
}

/** bound on log lines waiting for stdout (journald) to take them: a ban storm with a slow reader
 *  drops lines (counted) instead of growing the daemon's memory */
const LOG_BUFFER_BYTES = 8 * 1024 * 1024;

/** JSON lines to stdout, written asynchronously: a slow reader never blocks the AMI socket. */
function stdoutLogger(level: string, metrics: Metrics): Logger {
  const dest = pino.destination({ dest: 1, sync: false, maxLength: LOG_BUFFER_BYTES });
  dest.on('drop', () => metrics.logLinesDropped.inc());
  return pino({ level, base: { app: 'pbx-guardian' } }, dest);
}

/**
 * Starts the daemon in an order that fails before any side effect that matters: the config is
 * checked, then the state directory is made and locked (one daemon per state dir), the store
 * opened, every listener bound — and only then is the firewall touched and AMI connected. Any
 * failure closes what was opened (the lock last) and throws: ConfigError, StateDirError,
 * AlreadyRunningError or ListenError (the CLI maps each to its exit code).
 */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  let config = opts.config;
  assertRunnable(config);
  const metrics = createMetrics();
  const logger = opts.logger ?? stdoutLogger(config.logLevel, metrics);
  prepareStateDir(config.stateDir);
  const lock = acquireStateLock(config.stateDir);
  if (lock.tookOver) logger.warn({ lock: lock.path, stale: lock.tookOver.holder }, `took over a stale lock ${lock.path}: ${lock.tookOver.why}`);

  // what is open so far, closed in reverse order by shutdown() (a failed start or stop())
  let store: Store | null = null;
  let g: Guardian | null = null;
  let enforcer: Enforcer | null = null;
  let hostFeed: HostAllowFeed | null = null;
  let hostWatch: HostWatch | null = null;
  let ami: AmiClient | null = null;
  let authFailures: AuthFailures | null = null;
  let webhooks: WebhookDispatcher | null = null;
  let sources: Sources | null = null;
  const open = noListeners();
  const shutdown = async () => {
    g?.stop();
    hostFeed?.stop();
    hostWatch?.stop();
    await sources?.stop();
    await ami?.stop();
    await open.odoo?.close();
    await open.rest?.close();
    await webhooks?.close();
    await open.admin?.close();
    await open.metrics?.close();
    authFailures?.stop();
    await enforcer?.stop();
    store?.close();
    lock.release();
  };

  try {
    store = openStore(config.stateDir);
    const st = store;
    st.onWriteError = (err, lostWrites) => {
      metrics.storeErrors.inc(lostWrites);
      logger.error({ err }, 'state store write/read failed; bans still go to the kernel but may not survive a restart');
    };
    if (st.schema.from !== st.schema.to && (st.schema.from > 0 || st.schema.adopted)) logger.info({ schema: st.schema }, `state database schema ${st.schema.adopted ? 'adopted as version 1 and ' : ''}migrated from version ${st.schema.from} to ${st.schema.to}`);
    st.startHistoryPrune({
      retentionMs: seconds(config.store.historyRetention) * 1000,
      onPruned: (rows, chunks) => logger.info({ rows, chunks }, `ban history: deleted ${rows} bans that ended more than ${config.store.historyRetention} ago (store.historyRetention)`),
      onError: (err) => {
        metrics.storeErrors.inc();
        logger.error({ err }, 'ban history prune failed; it is tried again in an hour');
      },
    });
    // The enforcer is built now, its backend only once every listener is bound (see below).
    let kernel: FirewallBackend | null = null;
    const backend = new DeferredBackend(async () => {
      if (!kernel) throw new Error('the firewall backend is not set up yet (pbx-guardian is starting)');
      return kernel;
    });
    enforcer = new Enforcer(backend, () => g?.activeEntries() ?? [], config.firewall, logger, {
      onApplied: (adds, removes) => {
        metrics.firewallBatches.inc();
        metrics.firewallElements.inc({ op: 'add' }, adds);
        metrics.firewallElements.inc({ op: 'remove' }, removes);
      },
      onDrift: (added, removed) => {
        metrics.firewallDrift.inc({ op: 'add' }, added);
        metrics.firewallDrift.inc({ op: 'remove' }, removed);
      },
      onFailure: () => {
        metrics.firewallFailures.inc();
        metrics.firewallHealthy.set(0);
      },
      onRecovered: () => metrics.firewallHealthy.set(1),
      onRefused: (r) => metrics.firewallRefused.inc({ op: r.op }),
      onRepaired: () => metrics.firewallRepairs.inc(),
    }, {
      watchdogIntervalMs: seconds(config.firewall.watchdogInterval) * 1000,
      activeCount: () => (g ? (({ v4, v6 }) => v4 + v6)(g.activeCounts()) : 0),
    });
    const gd = (g = new Guardian(guardOptions(config, [], opts.hostAddresses), st, enforcer, logger));
    gd.on({
      securityEvent: (event, service) => metrics.securityEvents.inc(event, service),
      failure: (event, weight) => metrics.failures.inc(event, undefined, weight),
      ignored: (reason) => metrics.ignored.inc(reason),
      banned: ({ record }) => metrics.bans.inc({ rule: record.rule, source: record.source }),
      unbanned: (_n, why) => metrics.unbans.inc({ why }),
      storeError: () => metrics.storeErrors.inc(),
    });
    metrics.bansActiveSource = () => gd.activeCounts();
    const feed = (hostFeed = new HostAllowFeed({
      resolve: opts.resolveHost ?? systemResolver,
      intervalMs: seconds(config.guard.hostLookupInterval) * 1000,
      retryMs: HOST_LOOKUP_RETRY_MS,
      timeoutMs: HOST_LOOKUP_TIMEOUT_MS,
      logger,
      onChange: () => void gd.setAllowSource('hosts', resolvedAllow(config, feed)),
    }));

    if (config.ami.enabled) {
      const a = (ami = new AmiClient({
        ...config.ami,
        events: loginEventMask(config),
        securityCheckTimeoutMs: seconds(config.ami.securityCheckTimeout) * 1000,
        securityRecheckIntervalMs: seconds(config.ami.securityRecheckInterval) * 1000,
        logger,
      }));
      a.on('event', (msg: AmiMessage) => metrics.amiEvents.inc(msg.get('Event') ?? ''));
      a.on('state', (state: string) => {
        metrics.amiConnected.set(state === 'connected' ? 1 : 0);
        for (const s of ['disconnected', 'connecting', 'authenticating', 'connected']) metrics.amiState.set({ state: s }, s === state ? 1 : 0);
      });
      a.on('disconnected', () => metrics.amiReconnects.inc());
      a.on('loginError', (err: Error & { kind?: string }) => metrics.amiLoginFailures.inc({ kind: err.kind ?? 'unknown' }));
      a.on('frameDropped', (info: { reason: string }) => metrics.amiFramesDropped.inc({ reason: info.reason }));
    }

    // AMI events and the security log become the guard's observations (src/sources)
    const srcs = (sources = attachSources({ sink: gd, ami, config: config.sources, logger, registry: metrics.registry }));

    // failed authentication on every HTTP listener: 429 past the bound, one log line per source and
    // minute, metrics, and a security event for the guard (rules/listeners.yaml)
    const af = (authFailures = new AuthFailures({
      maxPerMinute: config.auth.maxFailuresPerMinute,
      maxSources: config.auth.trackedSources,
      logger,
      registry: metrics.registry,
      onFailure: (listener, address) => gd.observeExternal('HttpAuthFailure', address, listener),
    }));
    af.start();
    const restTokens = new TokenSet<RestToken>(restTokenEntries(config.rest.tokens));

    const reload = async (): Promise<ReloadResult> => {
      const next = opts.configPath !== undefined ? loadConfig(opts.configPath) : config;
      const options = guardOptions(next, [], opts.hostAddresses);
      gd.reload(options);
      // credentials apply at once: a removed or rotated secret stops working with this reload
      const changed = changedKeys(config, next).filter((k) => !k.startsWith('guard.'));
      const applied: string[] = [];
      const restartNeeded: string[] = [];
      for (const key of changed) {
        if (key === 'rest.tokens') {
          restTokens.replace(restTokenEntries(next.rest.tokens));
          applied.push(key);
        } else if (key === 'odoo.agentToken' && odoo) {
          if (odoo.setAgentToken(next.odoo.agentToken)) applied.push(key);
          else restartNeeded.push(`${key} (the job endpoint is not running)`);
        } else if (key === 'webhooks' && webhooks) {
          const r = webhooks.update(next.webhooks);
          applied.push(...r.applied);
          restartNeeded.push(...r.restartNeeded);
        } else restartNeeded.push(key);
      }
      config = next;
      await feed.setHosts(hostNames(next));
      await gd.setAllowSource('hosts', resolvedAllow(next, feed));
      logger.info({ rules: options.rules.length, applied }, 'reloaded config and rules; active bans kept');
      if (restartNeeded.length > 0) logger.warn({ restartNeeded }, `these changed settings take effect only after a restart: ${restartNeeded.join('; ')}`);
      return { rules: options.rules.length, applied, restartNeeded };
    };

    const amiPort: AmiPort = ami ?? { action: () => Promise.reject(new Error('AMI is disabled in the config (ami.enabled: false)')) };
    // one action policy for Odoo jobs, FastAGI answers, REST actions and the console; Command actions pass the console's own policy
    const actionPolicy = resolveActionPolicy({
      deniedActions: config.odoo.deniedActions,
      deniedApplications: config.odoo.deniedApplications,
      allow: config.actionPolicy.allow,
      checkCommand: (command) => asteriskConsole.check(command),
    });
    const asteriskConsole = new AsteriskConsole(amiPort, config.console, actionPolicy);
    const configFiles = config.asteriskConfig.enabled ? new AsteriskConfigFiles(config.asteriskConfig, ami) : null;

    const en = enforcer;
    const healthInputs = (): HealthInputs => {
      // one walk of the active bans: the firewall snapshot counts them (activeCount above)
      const firewall = en.health();
      return {
        ami: ami?.health() ?? null,
        guard: { rules: gd.rules.length, tracked: gd.trackedCount, maxTracked: config.guard.maxTracked, activeBans: firewall.storeActive, securityLog: srcs.securityLog() },
        firewall: { configured: config.firewall.backend, health: firewall },
        store: { onDisk: st.onDisk, path: st.path, stateDir: config.stateDir, openError: st.fallbackReason, lastWriteError: st.lastWriteError, lastWriteOkAt: st.lastWriteOkAt },
        odoo: open.odoo?.health() ?? null,
        webhooks: webhooks?.health() ?? null,
      };
    };
    const health = (): HealthReport => judgeHealth(healthInputs(), Date.now());
    registerHealthMetrics(metrics.registry, () => {
      const inputs = healthInputs();
      return { inputs, report: judgeHealth(inputs, Date.now()) };
    });

    // Every listener binds now, before the kernel is touched; until the firewall is ready the
    // gate answers requests that could change something with 503.
    const gate = new StartingGate();
    await bindListeners(config, gate, {
      admin: opts.adminSocket === false ? null : () => {
        const app = createAdminApp({ control: gd, status: () => gd.status(), reload, version: VERSION, health, firewall: pauseControl(en, config.stateDir) }, af);
        registerConsoleRoute(app, asteriskConsole);
        return app;
      },
      metrics: metrics.registry,
      rest: () => createRestApp({
        config: config.rest,
        ami: amiPort,
        bans: gd,
        actionPolicy,
        console: config.console.enabled ? asteriskConsole : null,
        configFiles,
        logger: logger.child({ stage: 'rest' }),
        registry: metrics.registry,
        version: VERSION,
        tokens: restTokens,
        authFailures: af,
      }),
      odoo: (beforeListen) => startOdoo(config, { ami: amiPort, bans: gd, db: st.db, logger, registry: metrics.registry, reloadConfig: reload, authFailures: af, actionPolicy, asteriskConsole, configFiles, beforeListen }),
    }, open);
    logListeners(logger, open, config);
    const { odoo, rest } = open;
    if (odoo) {
      ami?.on('event', (msg: AmiMessage) => odoo.handleAmiEvent(msg));
      gd.on({ banned: (notice) => odoo.handleBanNotice(notice), unbanned: (notice) => odoo.handleBanNotice(notice) });
    }
    if (config.webhooks.length > 0) {
      const wh = (webhooks = new WebhookDispatcher({ webhooks: config.webhooks, db: st.db, logger: logger.child({ stage: 'webhooks' }), registry: metrics.registry, systemName: config.odoo.systemName || undefined }));
      ami?.on('event', (msg: AmiMessage) => wh.handleAmiEvent(msg));
      gd.on({ banned: (notice) => wh.handleBanNotice(notice), unbanned: (notice) => wh.handleBanNotice(notice) });
      logger.info({ subscribers: config.webhooks.map((w) => w.name) }, `webhooks: ${config.webhooks.length} subscribers`);
    }

    // the kernel, from here on
    kernel = opts.backend ?? (await openBackend(config, logger));
    logger.info({ backend: kernel.name }, `firewall backend: ${kernel.name}`);
    const restored = gd.restore();
    metrics.firewallHealthy.set(1);
    const pausedBefore = takePausedNote(config.stateDir);
    if (pausedBefore) logger.warn({ pausedReason: pausedBefore }, `firewall enforcement was paused (${pausedBefore}) when the daemon stopped; a start enforces again: the stored bans go back into the kernel (pbx-guardian flush pauses again)`);
    await enforcer.start();
    await enforcer.setAllow(gd.allowTargets()).catch((err: Error) => logger.error({ err }, 'allow set not applied'));
    gd.startExpirySweep();
    await feed.setHosts(hostNames(config));
    // the resolver and default gateways, followed as they change (both in the kernel allow set too)
    const watch = (hostWatch = new HostWatch({ ...opts.hostFiles, intervalMs: HOST_REFRESH_MS, logger, onChange: (source, entries) => void gd.setAllowSource(source, entries) }));
    await watch.start();
    logger.info({ restored: restored.length, rules: gd.rules.length }, `restored ${restored.length} active bans; ${gd.rules.length} rules loaded`);
    gate.open();
    ami?.start();
    await srcs.start();

    return {
      get config() {
        return config;
      },
      guardian: gd,
      store: st,
      enforcer: en,
      ami,
      odoo,
      rest,
      webhooks,
      metrics,
      metricsUrl: open.metricsUrl,
      logger,
      listeners: { agent: odoo?.app ?? null, rest: rest?.app ?? null, admin: open.admin, metrics: open.metrics },
      reload,
      health,
      async stop() {
        await shutdown();
        logger.info('stopped; kernel bans stay in place with their own timeouts');
      },
    };
  } catch (err) {
    await shutdown().catch((e: Error) => logger.warn({ err: e }, 'cleanup after a failed start was incomplete'));
    throw err;
  }
}
