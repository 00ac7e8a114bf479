import type { Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { AmiClient, resolveActionPolicy } from './ami/index.js';
import { createAdminApp } from './admin/admin.js';
import { StartingGate } from './admin/listen.js';
import { RuntimeAllow } from './admin/runtime-allow.js';
import { AuthFailures } from './net/auth-failures.js';
import { TokenSet } from './net/auth.js';
import { assertRunnable, loadConfig, loginEventMask, seconds, type GuardianConfig } from './config/index.js';
import type { OdooBridge, AmiPort } from './odoo/index.js';
import { Lifecycle } from './common/lifecycle.js';
import { AllowFollowers, DeferredBackend, Enforcer, pauseControl, takePausedNote, type FirewallBackend } from './firewall/index.js';
import {
  connectSubscribers,
  Guardian,
  HOST_REFRESH_MS,
  HostAllowFeed,
  HostWatch,
  systemResolver,
  guardianEventFanout,
  type GuardianEvent,
  type Subscriber,
  type HostAddressPort,
  type HostFilesPort,
  type HostPaths,
  type HostResolver,
} from './guard/index.js';
import { guardOptions, hostNames, resolvedAllow } from './guard-options.js';
import { createMetrics, type Metrics } from './metrics/index.js';
import { bindAmiMetrics, bindFraudMetrics, bindGuardMetrics, enforcerMetricHooks, zeroRuleSeries } from './metrics/bind.js';
import { acquireStateLock, prepareStateDir, StateOwnership, type Store } from './store/index.js';
import { bindListeners, logListeners, noListeners, startOdoo } from './listeners.js';
import { applyReload } from './reload.js';
import { healthInputsOf, historyPrune, openBackend, openStore, startAccounts, stdoutLogger } from './daemon-parts.js';
import { OdooSettings } from './config/settings-origin.js';
import { judgeHealth, registerHealthMetrics, type HealthInputs, type HealthReport } from './health/index.js';
import { VERSION } from './version.js';
import { createRestApp, restTokenEntries, type RestServer, type RestToken } from './rest/index.js';
import { AsteriskConsole, registerConsoleRoute } from './console/index.js';
import { AsteriskConfigFiles } from './asterisk-config/index.js';
import { WebhookDispatcher } from './webhooks/index.js';
import { attachSources } from './sources/index.js';
import { AccountStore, type AccountWatch } from './accounts/index.js';
import { createFraudEngine, type FraudEngine } from './fraud/index.js';
import { createFleet, FLEET_GROUP, type Fleet } from './fleet/index.js';
import { createFeeds, type Feeds } from './feeds/index.js';

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
  /** the account memory and its anomalies (null when accounts.enabled is false) */
  accounts: AccountWatch | null;
  /** the fraud guard (null: fraud.enabled false, or AMI off) */
  fraud: FraudEngine | null;
  /** the CrowdSec Local API link (null: crowdsec.machine and .bouncer off) */
  fleet: Fleet | null;
  feeds: Feeds | null;
  metrics: Metrics;
  metricsUrl: string | null;
  logger: Logger;
  /** every HTTP listener's app (null when off), for the route policy tests */
  listeners: Record<'agent' | 'rest' | 'admin' | 'metrics', FastifyInstance | null>;
  reload(): Promise<ReloadResult>;
  /** the started components, in start order (stop() stops them in reverse) */
  components(): string[];
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
 * Starts the daemon in an order that fails before any side effect that matters: the config is
 * checked, then the state directory is made and locked (one daemon per state dir), the store
 * opened, every listener bound — and only then is the firewall touched and AMI connected. Each
 * part is a component of `life`: a failure stops what was started, in reverse (the lock last),
 * and throws: ConfigError, StateDirError, AlreadyRunningError or ListenError (the CLI maps each to
 * its exit code). stop() stops them the same way.
 */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  let config = opts.config;
  const metrics = createMetrics();
  const logger = opts.logger ?? stdoutLogger(config.logLevel, metrics);
  // the server's AMI fields and agent options kept in Odoo fill what the file leaves unset (an AMI secret from Odoo makes the config runnable)
  const odooSettings = new OdooSettings(logger);
  config = await odooSettings.load(config);
  assertRunnable(config);
  prepareStateDir(config.stateDir);
  // root by hand in the service user's state directory: what it creates there is given back (store/ownership.ts)
  const owner = StateOwnership.of(config.stateDir, logger);
  const lock = acquireStateLock(config.stateDir);
  if (lock.tookOver) logger.warn({ lock: lock.path, stale: lock.tookOver.holder }, `took over a stale lock ${lock.path}: ${lock.tookOver.why}`);
  const life = new Lifecycle((name, err) => logger.warn({ err, component: name }, `stopping the ${name} failed; stopping the rest`));
  await life.start({
    name: 'state lock',
    stop: () => {
      lock.release();
      owner?.adopt();
    },
  });

  try {
    const st = openStore(config, metrics, logger);
    await life.start({ name: 'state store', stop: () => st.close() });
    const prune = historyPrune(st, metrics, logger);
    prune(config.store.historyRetention);
    // The enforcer is built now, its backend only once every listener is bound (see below).
    let kernel: FirewallBackend | null = null;
    let g: Guardian | null = null;
    const backend = new DeferredBackend(async () => {
      if (!kernel) throw new Error('the firewall backend is not set up yet (pbx-guardian is starting)');
      return kernel;
    });
    const en = new Enforcer(backend, () => g?.activeEntries() ?? [], config.firewall, logger, enforcerMetricHooks(metrics), {
      watchdogIntervalMs: seconds(config.firewall.watchdogInterval) * 1000,
      activeCount: () => (g ? (({ v4, v6 }) => v4 + v6)(g.activeCounts()) : 0),
    });
    await life.start({ name: 'enforcer', stop: () => en.stop() });
    // the fleet's sets follow the local allow-list (the allow-list wins over remote decisions in the kernel too)
    const followers = new AllowFollowers(en);
    const gd = (g = new Guardian(guardOptions(config, [], opts.hostAddresses), st, followers, logger));
    bindGuardMetrics(metrics, gd);
    metrics.backendSource = () => en.backendPath;
    const runtimeAllow = new RuntimeAllow(gd, config.stateDir, (message) => logger.warn({ event: 'runtime-allow' }, message));
    const feed = new HostAllowFeed({
      resolve: opts.resolveHost ?? systemResolver,
      intervalMs: seconds(config.guard.hostLookupInterval) * 1000,
      retryMs: HOST_LOOKUP_RETRY_MS,
      timeoutMs: HOST_LOOKUP_TIMEOUT_MS,
      logger,
      onChange: () => void gd.setAllowSource('hosts', resolvedAllow(config, feed)),
    });

    const ami = config.ami.enabled
      ? new AmiClient({
          ...config.ami,
          events: loginEventMask(config),
          securityCheckTimeoutMs: seconds(config.ami.securityCheckTimeout) * 1000,
          securityRecheckIntervalMs: seconds(config.ami.securityRecheckInterval) * 1000,
          logger,
        })
      : null;
    if (ami) {
      bindAmiMetrics(metrics, ami);
    }

    // the fraud guard follows calls on the same AMI connection; its events go to the subscribers (set below)
    let guardianEvent: (ev: GuardianEvent) => void = () => {};
    const fraud =
      ami && config.fraud.enabled
        ? createFraudEngine({
            config: config.fraud,
            ami,
            store: st.blocks,
            bans: gd,
            emit: (ev) => guardianEvent(ev),
            logger: logger.child({ stage: 'fraud' }),
          })
        : null;
    if (ami && fraud) {
      bindFraudMetrics(metrics, fraud);
      ami.on('event', (msg) => fraud.handleAmiEvent(msg));
      ami.on('connected', () => fraud.onConnected());
    }

    // AMI events and the security log become the guard's observations (src/sources)
    const srcs = attachSources({ sink: gd, ami, config: config.sources, logger, registry: metrics.registry });

    // failed authentication on every HTTP listener: 429 past the bound, one log line per source and
    // minute, metrics, and a security event for the guard (rules/listeners.yaml)
    const af = new AuthFailures({
      maxPerMinute: config.auth.maxFailuresPerMinute,
      maxSources: config.auth.trackedSources,
      logger,
      registry: metrics.registry,
      onFailure: (listener, address) => gd.observeExternal('HttpAuthFailure', address, listener),
    });
    await life.start({ name: 'auth-failure tracker', start: () => af.start(), stop: () => af.stop() });
    const restTokens = new TokenSet<RestToken>(restTokenEntries(config.rest.tokens));

    const reload = async (): Promise<ReloadResult> => {
      const next = await odooSettings.load(opts.configPath !== undefined ? loadConfig(opts.configPath) : opts.config);
      const options = guardOptions(next, [], opts.hostAddresses);
      gd.reload(options);
      zeroRuleSeries(metrics, gd.rules);
      // credentials apply at once: a removed or rotated secret stops working with this reload
      const { applied, restartNeeded } = await applyReload(config, next, { logger, restTokens, odoo, webhooks, historyRetention: prune });
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

    const healthInputs = (): HealthInputs => ({
      ...healthInputsOf({ config, ami, guard: gd, enforcer: en, securityLog: srcs.securityLog(), store: st, odoo: open.odoo, webhooks, fleet }),
      feeds: feeds?.health() ?? null,
    });
    const health = (): HealthReport => judgeHealth(healthInputs(), Date.now());
    registerHealthMetrics(metrics.registry, () => {
      const inputs = healthInputs();
      return { inputs, report: judgeHealth(inputs, Date.now()) };
    });

    // Every listener binds now, before the kernel is touched; until the firewall is ready the
    // gate answers requests that could change something with 503.
    const gate = new StartingGate();
    const open = noListeners();
    await bindListeners(
      config,
      gate,
      {
        admin:
          opts.adminSocket === false
            ? null
            : () => {
                const app = createAdminApp(
                  {
                    control: gd,
                    lookup: gd,
                    history: (q) => st.history(q),
                    allow: runtimeAllow,
                    rules: () => gd.rules,
                    metrics: () => metrics.registry.metrics(),
                    remoteSets: () => [
                      ...(fleet?.set ? [{ kind: 'fleet' as const, name: FLEET_GROUP, get: (t: string) => fleet.set?.get(t) }] : []),
                      ...(feeds?.lookups() ?? []),
                    ],
                    status: () => ({ ...gd.status(), settings: odooSettings.status() }),
                    reload,
                    version: VERSION,
                    health,
                    firewall: pauseControl(en, config.stateDir, () => [fleet, feeds].filter((p) => p !== null)),
                    accounts: () => accounts,
                    ...(fraud ? { fraud } : {}),
                  },
                  af,
                );
                registerConsoleRoute(app, asteriskConsole);
                return app;
              },
        metrics: metrics.registry,
        rest: () =>
          createRestApp({
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
        odoo: (beforeListen) =>
          startOdoo(config, {
            ami: amiPort,
            bans: gd,
            db: st.db,
            logger,
            registry: metrics.registry,
            reloadConfig: reload,
            authFailures: af,
            actionPolicy,
            asteriskConsole,
            configFiles,
            fraud,
            beforeListen,
          }),
      },
      open,
      life,
    );
    logListeners(logger, open, config);
    const { odoo, rest } = open;
    const webhooks =
      config.webhooks.length > 0
        ? new WebhookDispatcher({
            webhooks: config.webhooks,
            db: st.db,
            logger: logger.child({ stage: 'webhooks' }),
            registry: metrics.registry,
            systemName: config.odoo.systemName || undefined,
          })
        : null;
    if (webhooks) {
      await life.start({ name: 'webhooks', stop: () => webhooks.close() });
      logger.info({ subscribers: config.webhooks.map((w) => w.name) }, `webhooks: ${config.webhooks.length} subscribers`);
    }
    // the account memory (src/accounts): anomalies, and the evidence of shared addresses for the guard
    const accounts = config.accounts.enabled
      ? startAccounts(
          config,
          {
            logger: logger.child({ stage: 'accounts' }),
            emit: (ev) => guardianEvent(ev),
            store: new AccountStore(st.db),
            ami,
            restrict: fraud,
            registry: metrics.registry,
          },
          gd,
        )
      : null;
    if (accounts) await life.start({ name: 'accounts', start: () => accounts.start(), stop: () => accounts.close() });
    const fleet = createFleet({
      config: config.crowdsec,
      firewall: config.firewall,
      watchdogIntervalMs: seconds(config.firewall.watchdogInterval) * 1000,
      judge: gd.remoteJudge(),
      allow: () => gd.allowTargets(),
      db: st.db,
      logger: logger.child({ stage: 'fleet' }),
      registry: metrics.registry,
    });
    const feeds = createFeeds({
      feeds: config.feeds,
      firewall: config.firewall,
      watchdogIntervalMs: seconds(config.firewall.watchdogInterval) * 1000,
      judge: gd.remoteJudge(),
      allow: () => gd.allowTargets(),
      stateDir: config.stateDir,
      logger: logger.child({ stage: 'feeds' }),
      registry: metrics.registry,
    });
    // what consumes AMI events and ban decisions, called in this order (each one started above)
    const subscribers: Subscriber[] = [odoo, webhooks, accounts, fleet?.subscriber ?? null].filter((s) => s !== null);
    connectSubscribers(subscribers, ami, gd);
    guardianEvent = guardianEventFanout(subscribers);

    // the kernel, from here on
    kernel = opts.backend ?? (await openBackend(config, logger));
    logger.info({ backend: kernel.name }, `firewall backend: ${kernel.name}`);
    const restored = gd.restore();
    await runtimeAllow.load();
    metrics.firewallHealthy.set(1);
    const pausedBefore = takePausedNote(config.stateDir);
    if (pausedBefore)
      logger.warn(
        { pausedReason: pausedBefore },
        `firewall enforcement was paused (${pausedBefore}) when the daemon stopped; a start enforces again: the stored bans go back into the kernel (pbx-guardian flush pauses again)`,
      );
    // the kernel set up with the allow set; the stored bans follow in chunks while detection starts (en.restored() below)
    await en.begin(gd.allowTargets());
    if (fleet) {
      const local = kernel.name;
      await life.start({ name: 'fleet', start: () => fleet.start(local), stop: () => fleet.stop() });
      await followers.follow((targets) => fleet.setAllow(targets));
    }
    if (feeds) {
      const local = kernel.name;
      await life.start({ name: 'feeds', start: () => feeds.start(local), stop: () => feeds.stop() });
      await followers.follow((targets) => feeds.setAllow(targets));
    }
    await life.start({ name: 'guard timers', start: () => gd.startExpirySweep(), stop: () => gd.stop() });
    if (fraud) await life.start({ name: 'fraud guard', start: () => fraud.start(), stop: () => fraud.stop() });
    await life.start({ name: 'host name lookups', start: () => feed.setHosts(hostNames(config)), stop: () => feed.stop() });
    // the resolver and default gateways, followed as they change (both in the kernel allow set too)
    const watch = new HostWatch({
      ...opts.hostFiles,
      intervalMs: HOST_REFRESH_MS,
      logger,
      onChange: (source, entries) => void gd.setAllowSource(source, entries),
    });
    await life.start({ name: 'host watch', start: () => watch.start(), stop: () => watch.stop() });
    // started means the kernel allow set is the effective list (the updates made while starting are in)
    await gd.allowSettled();
    gate.open();
    if (ami) await life.start({ name: 'AMI client', start: () => ami.start(), stop: () => ami.stop() });
    await life.start({ name: 'detection sources', start: () => srcs.start(), stop: () => srcs.stop() });
    await en.restored();
    logger.info({ restored: restored.length, rules: gd.rules.length }, `restored ${restored.length} active bans; ${gd.rules.length} rules loaded`);

    owner?.adopt();
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
      accounts,
      fraud,
      fleet,
      feeds,
      metrics,
      metricsUrl: open.metricsUrl,
      logger,
      listeners: { agent: odoo?.app ?? null, rest: rest?.app ?? null, admin: open.admin, metrics: open.metrics },
      reload,
      components: () => life.names(),
      health,
      async stop() {
        const failed = await life.stop();
        // the CLI exits 4 on a failed stop (docs/startup.md), after everything else was stopped
        if (failed.length > 0) throw new Error(`stopping failed for: ${failed.join(', ')} (logged above); everything else stopped, the lock released`);
        logger.info('stopped; kernel bans stay in place with their own timeouts');
      },
    };
  } catch (err) {
    await life.stop();
    throw err;
  }
}
