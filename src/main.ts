import pino, { type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { AmiClient, resolveActionPolicy, type AmiMessage } from './ami/index.js';
import { createAdminApp, listenAdminSocket } from './api/admin.js';
import { AuthFailures } from './api/auth-failures.js';
import { TokenSet } from './api/auth.js';
import { changedKeys } from './config/changes.js';
import { loadConfig, loginEventMask, odooBridgeConfig, seconds, type GuardianConfig } from './config/index.js';
import { startOdooBridge, type OdooBridge } from './odoo/index.js';
import { createBackend, DeferredBackend, Enforcer, type FirewallBackend } from './firewall/index.js';
import { Guardian, HOST_REFRESH_MS, HostAllowFeed, HostWatch, interfaceAddresses, loadRulesDir, systemResolver, type AllowEntry, type GuardOptions, type HostAddressPort, type HostFilesPort, type HostPaths, type HostResolver } from './guard/index.js';
import { createMetrics, startMetricsServer, type Metrics } from './metrics/index.js';
import { Store } from './store/index.js';
import { VERSION } from './version.js';
import { registerJobFunction, JobError, type AmiPort } from './odoo/index.js';
import { restTokenEntries, startRestApi, type RestServer, type RestToken } from './rest/index.js';
import { AsteriskConsole, consoleJobFunctions, registerConsoleRoute } from './console/index.js';
import { AsteriskConfigFiles, configJobFunctions } from './asterisk-config/index.js';
import { WebhookDispatcher } from './webhooks/index.js';

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
  stop(): Promise<void>;
}

/** What a reload applied (config key names, never values) and what waits for a restart. */
export interface ReloadResult {
  rules: number;
  applied: string[];
  restartNeeded: string[];
}

/**
 * Guard options from the validated config: the AMI and Odoo hosts and loopback are always allowed;
 * `resolved`: the addresses their host names resolve to (HostAllowFeed); `host`: the host's own addresses, never banned.
 */
export function guardOptions(cfg: GuardianConfig, resolved: AllowEntry[] = [], host: HostAddressPort = interfaceAddresses): GuardOptions {
  return {
    rules: loadRulesDir(cfg.guard.rulesDir),
    allow: cfg.guard.allow,
    automaticAllow: [...literalAllow(cfg), ...resolved],
    ipv6Prefix: cfg.guard.ipv6Prefix,
    scope: { widestV4: cfg.guard.widestBanIPv4, widestV6: cfg.guard.widestBanIPv6 },
    maxBanSec: seconds(cfg.guard.maxBanDuration),
    host,
    maxTracked: cfg.guard.maxTracked,
    trackTtlSec: seconds(cfg.guard.trackTtl),
    escalation: { factor: cfg.guard.escalation.factor, maxSec: seconds(cfg.guard.escalation.max), lookbackSec: seconds(cfg.guard.escalation.lookback) },
    recidive: cfg.guard.recidive.enabled
      ? { bans: cfg.guard.recidive.bans, withinSec: seconds(cfg.guard.recidive.within), banSec: seconds(cfg.guard.recidive.ban) }
      : null,
  };
}

/** The AMI and Odoo hosts, as written in the config, with their role. */
function configuredHosts(cfg: GuardianConfig): Array<{ host: string; role: string }> {
  const hosts: Array<{ host: string; role: string }> = [];
  if (cfg.ami.enabled && cfg.ami.host) hosts.push({ host: cfg.ami.host, role: 'AMI host' });
  if (cfg.odoo.enabled && cfg.odoo.url) {
    try {
      hosts.push({ host: new URL(cfg.odoo.url).hostname.replace(/^\[|\]$/g, ''), role: 'Odoo host' });
    } catch {
      // validated elsewhere
    }
  }
  return hosts;
}

const isLiteral = (host: string): boolean => /^[0-9.]+$|:/.test(host);

/** Loopback and the hosts written as addresses, with where each came from. */
function literalAllow(cfg: GuardianConfig): AllowEntry[] {
  return [
    { entry: '127.0.0.0/8', from: 'loopback' },
    { entry: '::1', from: 'loopback' },
    ...configuredHosts(cfg).filter((h) => isLiteral(h.host)).map((h) => ({ entry: h.host, from: `${h.role} ${h.host}` })),
  ];
}

/** The hosts written as names: resolved by the HostAllowFeed. */
export function hostNames(cfg: GuardianConfig): string[] {
  return configuredHosts(cfg).filter((h) => !isLiteral(h.host)).map((h) => h.host);
}

/** What the host names resolve to now, as allow entries ('AMI host pbx.example.com'). */
function resolvedAllow(cfg: GuardianConfig, feed: HostAllowFeed): AllowEntry[] {
  const roles = configuredHosts(cfg);
  return feed.byName().flatMap(({ name, addresses }) => {
    const role = roles.filter((h) => h.host === name).map((h) => h.role).join(' and ') || 'host';
    return addresses.map((entry) => ({ entry, from: `${role} ${name}` }));
  });
}

/** after a failed lookup of the AMI or Odoo host name */
const HOST_LOOKUP_RETRY_MS = 30_000;
const HOST_LOOKUP_TIMEOUT_MS = 5_000;

/**
 * The state database. When it cannot be opened (read-only mount, disk full, permissions), the
 * guard still runs on an in-memory database: bans reach the kernel but do not survive a restart.
 */
function openStore(stateDir: string, logger: Logger, metrics: Metrics): Store {
  try {
    return Store.open(stateDir);
  } catch (err) {
    metrics.storeErrors.inc();
    logger.error(
      { err, stateDir },
      `cannot open the state database in ${stateDir}: ${(err as Error).message}. Check that the directory is writable ` +
        '(mount, free space, permissions). Running on in-memory state: bans are enforced but will not survive a restart',
    );
    return new Store(':memory:');
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

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  let config = opts.config;
  const metrics = createMetrics();
  const logger = opts.logger ?? stdoutLogger(config.logLevel, metrics);
  const store = openStore(config.stateDir, logger, metrics);
  store.onWriteError = (err, lostWrites) => {
    metrics.storeErrors.inc(lostWrites);
    logger.error({ err }, 'state store write/read failed; bans still go to the kernel but may not survive a restart');
  };
  const backend = opts.backend ?? (await openBackend(config, logger));
  logger.info({ backend: backend.name }, `firewall backend: ${backend.name}`);

  let guardian: Guardian | undefined;
  const enforcer = new Enforcer(backend, () => guardian?.activeEntries() ?? [], config.firewall, logger, {
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
  });
  guardian = new Guardian(guardOptions(config, [], opts.hostAddresses), store, enforcer, logger);
  const g = guardian;
  g.on({
    securityEvent: (event, service) => metrics.securityEvents.inc(event, service),
    failure: (event, weight) => metrics.failures.inc(event, undefined, weight),
    ignored: (reason) => metrics.ignored.inc(reason),
    banned: ({ record }) => metrics.bans.inc({ rule: record.rule, source: record.source }),
    unbanned: (_n, why) => metrics.unbans.inc({ why }),
    storeError: () => metrics.storeErrors.inc(),
  });
  metrics.bansActiveSource = () => g.activeCounts();

  const restored = g.restore();
  metrics.firewallHealthy.set(1);
  await enforcer.start();
  await enforcer.setAllow(g.allowTargets()).catch((err: Error) => logger.error({ err }, 'allow set not applied'));
  g.startExpirySweep();
  const hostFeed = new HostAllowFeed({
    resolve: opts.resolveHost ?? systemResolver,
    intervalMs: seconds(config.guard.hostLookupInterval) * 1000,
    retryMs: HOST_LOOKUP_RETRY_MS,
    timeoutMs: HOST_LOOKUP_TIMEOUT_MS,
    logger,
    onChange: () => g.setAllowSource('hosts', resolvedAllow(config, hostFeed)),
  });
  await hostFeed.setHosts(hostNames(config));
  // the resolver and default gateways, followed as they change (both in the kernel allow set too)
  const hostWatch = new HostWatch({ ...opts.hostFiles, intervalMs: HOST_REFRESH_MS, logger, onChange: (source, entries) => g.setAllowSource(source, entries) });
  await hostWatch.start();
  logger.info({ restored: restored.length, rules: g.rules.length }, `restored ${restored.length} active bans; ${g.rules.length} rules loaded`);

  let ami: AmiClient | null = null;
  if (config.ami.enabled) {
    ami = new AmiClient({ ...config.ami, events: loginEventMask(config), logger });
    const a = ami;
    a.on('event', (msg: AmiMessage) => {
      g.handleEvent(msg);
      metrics.amiEvents.inc(msg.get('Event') ?? '');
    });
    a.on('state', (state: string) => {
      metrics.amiConnected.set(state === 'connected' ? 1 : 0);
      for (const s of ['disconnected', 'connecting', 'authenticating', 'connected']) metrics.amiState.set({ state: s }, s === state ? 1 : 0);
    });
    a.on('disconnected', () => metrics.amiReconnects.inc());
    a.on('loginError', (err: Error & { kind?: string }) => metrics.amiLoginFailures.inc({ kind: err.kind ?? 'unknown' }));
    a.on('frameDropped', (info: { reason: string }) => metrics.amiFramesDropped.inc({ reason: info.reason }));
  }

  // failed authentication on every HTTP listener: 429 past the bound, one log line per source and
  // minute, metrics, and a security event for the guard (rules/listeners.yaml)
  const authFailures = new AuthFailures({
    maxPerMinute: config.auth.maxFailuresPerMinute,
    maxSources: config.auth.trackedSources,
    logger,
    registry: metrics.registry,
    onFailure: (listener, address) => g.observeExternal('HttpAuthFailure', address, listener),
  });
  authFailures.start();
  const restTokens = new TokenSet<RestToken>(restTokenEntries(config.rest.tokens));
  let rest: RestServer | null = null;
  let odoo: OdooBridge | null = null;
  let webhooks: WebhookDispatcher | null = null;

  const reload = async (): Promise<ReloadResult> => {
    const next = opts.configPath !== undefined ? loadConfig(opts.configPath) : config;
    const options = guardOptions(next, [], opts.hostAddresses);
    g.reload(options);
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
    await hostFeed.setHosts(hostNames(next));
    g.setAllowSource('hosts', resolvedAllow(next, hostFeed));
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

  if (config.odoo.enabled) {
    // console and config-sync jobs; their refusals reach Odoo as job errors with their own message
    const extra = new Map([...consoleJobFunctions(asteriskConsole), ...(configFiles ? configJobFunctions(configFiles) : [])]);
    for (const [name, fn] of extra) {
      registerJobFunction(name, async (args, kwargs) => {
        try {
          return await fn(args, kwargs);
        } catch (e) {
          const err = e as Error & { statusCode?: number };
          if (typeof err.statusCode === 'number' && err.statusCode < 500) throw new JobError(err.message);
          throw e;
        }
      });
    }
    odoo = await startOdooBridge({
      config: odooBridgeConfig(config),
      ami: amiPort,
      bans: g,
      db: store.db,
      logger,
      registry: metrics.registry,
      reloadConfig: reload,
      stateDir: config.stateDir,
      authFailures,
      actionPolicy,
    });
    const bridge = odoo;
    ami?.on('event', (msg: AmiMessage) => bridge.handleAmiEvent(msg));
    g.on({ banned: (notice) => bridge.handleBanNotice(notice), unbanned: (notice) => bridge.handleBanNotice(notice) });
  }
  if (config.webhooks.length > 0) {
    const wh = new WebhookDispatcher({ webhooks: config.webhooks, db: store.db, logger: logger.child({ stage: 'webhooks' }), registry: metrics.registry, systemName: config.odoo.systemName || undefined });
    webhooks = wh;
    ami?.on('event', (msg: AmiMessage) => wh.handleAmiEvent(msg));
    g.on({ banned: (notice) => wh.handleBanNotice(notice), unbanned: (notice) => wh.handleBanNotice(notice) });
    logger.info({ subscribers: config.webhooks.map((w) => w.name) }, `webhooks: ${config.webhooks.length} subscribers`);
  }
  ami?.start();

  if (config.rest.enabled) {
    rest = await startRestApi({
      config: config.rest,
      ami: amiPort,
      bans: g,
      actionPolicy,
      console: config.console.enabled ? asteriskConsole : null,
      configFiles,
      logger: logger.child({ stage: 'rest' }),
      registry: metrics.registry,
      version: VERSION,
      tokens: restTokens,
      authFailures,
    });
    logger.info({ ...rest.address }, `REST API listening on http://${rest.address.host}:${rest.address.port}/v1/ (OpenAPI at /v1/openapi.json)`);
  }


  let admin: FastifyInstance | null = null;
  if (opts.adminSocket !== false) {
    admin = createAdminApp({ control: g, status: () => g.status(), reload, version: VERSION }, authFailures);
    registerConsoleRoute(admin, asteriskConsole);
    await listenAdminSocket(admin, config.admin.socket, parseInt(config.admin.socketMode, 8));
    logger.info({ socket: config.admin.socket }, 'admin socket listening');
  }

  let metricsApp: FastifyInstance | null = null;
  let metricsUrl: string | null = null;
  if (config.metrics.enabled) {
    const started = await startMetricsServer(metrics.registry, config.metrics.host, config.metrics.port);
    metricsApp = started.app;
    metricsUrl = started.url;
    logger.info({ url: metricsUrl }, `metrics at ${metricsUrl}`);
  }

  return {
    get config() {
      return config;
    },
    guardian: g,
    store,
    enforcer,
    ami,
    odoo,
    rest,
    webhooks,
    metrics,
    metricsUrl,
    logger,
    listeners: { agent: odoo?.app ?? null, rest: rest?.app ?? null, admin, metrics: metricsApp },
    reload,
    async stop() {
      g.stop();
      hostFeed.stop();
      hostWatch.stop();
      await ami?.stop();
      await odoo?.close();
      await rest?.close();
      await webhooks?.close();
      await admin?.close();
      await metricsApp?.close();
      authFailures.stop();
      await enforcer.stop();
      store.close();
      logger.info('stopped; kernel bans stay in place with their own timeouts');
    },
  };
}
