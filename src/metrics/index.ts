import type { Server } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { installRouteAuth, PUBLIC } from '../net/auth.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type CounterConfiguration } from 'prom-client';
import { VERSION } from '../version.js';
import { AMI_LOGIN_KINDS, AMI_STATES, FIREWALL_OPS, FRAME_DROP_REASONS, IGNORED_REASONS, UNBAN_WHY } from './labels.js';

/** Every metric of the guardian's core. Other stages (odoo/) register theirs on `registry`. */
export function createMetrics() {
  const registry = new Registry();
  /** counted when Prometheus scrapes (see bansActiveSource), never on a timer */
  let activeBans: (() => { v4: number; v6: number }) | null = null;
  /** the firewall path in use, read at scrape (see backendSource) */
  let backend: () => string = () => 'starting';
  // no prefix: stock Node.js dashboards query process_* and nodejs_* by these names
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  const m = {
    registry,
    buildInfo: new Gauge({
      name: 'pbx_guardian_build_info',
      help: 'always 1; version, Node.js version, native module ABI and the firewall path in use (nftables-addon, nftables-command, ipset, memory-dry-run)',
      labelNames: ['version', 'node', 'modules', 'backend'],
      registers: [registry],
      collect() {
        this.reset();
        this.set({ version: VERSION, node: process.versions.node, modules: process.versions.modules, backend: backend() }, 1);
      },
    }),
    /** where pbx_guardian_build_info reads the firewall path */
    set backendSource(source: () => string) {
      backend = source;
    },
    banLatency: new Histogram({
      name: 'pbx_guardian_ban_latency_seconds',
      help: 'from the source receiving the failure that completed a ban to the end of the kernel transaction holding it',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    amiConnected: new Gauge({ name: 'pbx_guardian_ami_connected', help: '1 while logged in to AMI, else 0', registers: [registry] }),
    amiState: new Gauge({
      name: 'pbx_guardian_ami_state',
      help: 'AMI connection state (1 for the current state)',
      labelNames: ['state'],
      registers: [registry],
    }),
    amiReconnects: new Counter({ name: 'pbx_guardian_ami_reconnects_total', help: 'AMI reconnect attempts', registers: [registry] }),
    amiLoginFailures: new Counter({
      name: 'pbx_guardian_ami_login_failures_total',
      help: 'failed AMI logins, by kind',
      labelNames: ['kind'],
      registers: [registry],
    }),
    amiEvents: new TalliedCounter({
      name: 'pbx_guardian_ami_events_total',
      help: 'AMI events received, by event name',
      labelNames: ['event'],
      registers: [registry],
    }),
    amiFramesDropped: new Counter({
      name: 'pbx_guardian_ami_frames_dropped_total',
      help: 'AMI frames dropped, by reason (oversized, too-many-headers)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    securityEvents: new TalliedCounter({
      name: 'pbx_guardian_security_events_total',
      help: 'security events watched by the rules, by event and service',
      labelNames: ['event', 'service'],
      registers: [registry],
    }),
    failures: new TalliedCounter({
      name: 'pbx_guardian_failures_total',
      help: 'failures counted toward bans, by event',
      labelNames: ['event'],
      registers: [registry],
    }),
    ignored: new TalliedCounter({
      name: 'pbx_guardian_events_ignored_total',
      help: 'security events not counted, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    bansActive: new Gauge({
      name: 'pbx_guardian_bans_active',
      help: 'bans in force, by family',
      labelNames: ['family'],
      registers: [registry],
      collect() {
        const n = activeBans?.();
        if (!n) return;
        this.set({ family: 'ipv4' }, n.v4);
        this.set({ family: 'ipv6' }, n.v6);
      },
    }),
    /** where pbx_guardian_bans_active reads its counts */
    set bansActiveSource(source: () => { v4: number; v6: number }) {
      activeBans = source;
    },
    bans: new Counter({ name: 'pbx_guardian_bans_total', help: 'bans applied, by rule and source', labelNames: ['rule', 'source'], registers: [registry] }),
    unbans: new Counter({ name: 'pbx_guardian_unbans_total', help: 'bans ended, by why (expired, unbanned)', labelNames: ['why'], registers: [registry] }),
    logLinesDropped: new Counter({
      name: 'pbx_guardian_log_lines_dropped_total',
      help: 'log lines dropped because stdout (journald) did not take them fast enough (8 MiB waiting)',
      registers: [registry],
    }),
    storeErrors: new Counter({ name: 'pbx_guardian_store_errors_total', help: 'state store reads/writes that failed', registers: [registry] }),
    firewallBatches: new Counter({ name: 'pbx_guardian_firewall_batches_total', help: 'transactions applied to the firewall backend', registers: [registry] }),
    firewallElements: new Counter({
      name: 'pbx_guardian_firewall_elements_total',
      help: 'elements added/removed in the firewall backend',
      labelNames: ['op'],
      registers: [registry],
    }),
    firewallHealthy: new Gauge({
      name: 'pbx_guardian_firewall_healthy',
      help: '1 while enforcement works, 0 while it is failing (retrying)',
      registers: [registry],
    }),
    firewallFailures: new Counter({ name: 'pbx_guardian_firewall_failures_total', help: 'failed firewall transactions', registers: [registry] }),
    firewallRefused: new Counter({
      name: 'pbx_guardian_firewall_refused_total',
      help: 'elements the kernel refused (set aside; the rest of their transaction applied), by op',
      labelNames: ['op'],
      registers: [registry],
    }),
    firewallRepairs: new Counter({
      name: 'pbx_guardian_firewall_repairs_total',
      help: 'times the watchdog found our table / sets / hook rules removed or changed by someone else and re-created them',
      registers: [registry],
    }),
    firewallDrift: new Counter({
      name: 'pbx_guardian_firewall_drift_repaired_total',
      help: 'elements re-added or removed by reconcile',
      labelNames: ['op'],
      registers: [registry],
    }),
    fraudCallsWatched: new TalliedCounter({
      name: 'pbx_guardian_fraud_calls_watched_total',
      help: 'calls followed by the fraud guard (DialBegin), by kind (outbound, internal)',
      labelNames: ['kind'],
      registers: [registry],
    }),
    fraudDecisions: new Counter({
      name: 'pbx_guardian_fraud_decisions_total',
      help: 'fraud policy decisions, by policy and action (alert, hangup, block, ban); repeats within the window included',
      labelNames: ['policy', 'action'],
      registers: [registry],
    }),
    fraudCallsExpired: new Counter({
      name: 'pbx_guardian_fraud_calls_expired_total',
      help: 'calls forgotten because their Hangup never arrived within fraud.callTimeout',
      registers: [registry],
    }),
    fraudActionFailures: new Counter({
      name: 'pbx_guardian_fraud_action_failures_total',
      help: 'fraud actions given up after their attempts (hangup, block, unblock) or refused (ban)',
      labelNames: ['action'],
      registers: [registry],
    }),
    fraudBlockedAccounts: new Gauge({
      name: 'pbx_guardian_fraud_blocked_accounts',
      help: 'accounts blocked by the fraud guard (AstDB guardian-blocked)',
      registers: [registry],
    }),
    fraudDialstringsUnparsed: new Counter({
      name: 'pbx_guardian_fraud_dialstrings_unparsed_total',
      help: "DialBegin DialStrings without a readable number, by fallback (exten: the caller's Exten; unknown: followed as international via a trunk; none: not followed)",
      labelNames: ['fallback'],
      registers: [registry],
    }),
  };
  zeroFixedSeries(m);
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The series whose label values do not depend on the config. */
function zeroFixedSeries(m: Metrics): void {
  for (const state of AMI_STATES) m.amiState.set({ state }, state === 'disconnected' ? 1 : 0);
  for (const kind of AMI_LOGIN_KINDS) m.amiLoginFailures.inc({ kind }, 0);
  for (const reason of FRAME_DROP_REASONS) m.amiFramesDropped.inc({ reason }, 0);
  for (const reason of IGNORED_REASONS) m.ignored.counter.inc({ reason }, 0);
  for (const why of UNBAN_WHY) m.unbans.inc({ why }, 0);
  for (const op of FIREWALL_OPS) {
    m.firewallElements.inc({ op }, 0);
    m.firewallDrift.inc({ op }, 0);
    m.firewallRefused.inc({ op }, 0);
  }
  m.amiConnected.set(0);
  m.fraudBlockedAccounts.set(0);
}

/** GET /metrics (public: the listener's bind address is its bound, default 127.0.0.1:9470). */
export function createMetricsApp(registry: Registry): FastifyInstance {
  const app = Fastify({ logger: false, requestTimeout: 10_000, bodyLimit: 1024 }) as unknown as FastifyInstance;
  installRouteAuth(app, { listener: 'metrics' });
  app.get('/metrics', { config: { auth: PUBLIC } }, async (_req, reply) => {
    try {
      const body = await registry.metrics();
      return reply.header('content-type', registry.contentType).send(body);
    } catch (err) {
      return reply
        .code(500)
        .header('content-type', 'text/plain')
        .send(`metrics collection failed: ${(err as Error).message}\n`);
    }
  });
  return app;
}

/** Serves GET /metrics on its own listener (default 127.0.0.1:9470). */
export async function startMetricsServer(registry: Registry, host: string, port: number): Promise<{ app: FastifyInstance; server: Server; url: string }> {
  const app = createMetricsApp(registry);
  await app.listen({ host, port });
  const addr = app.server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return { app, server: app.server, url: `http://${shownHost}:${actualPort}/metrics` };
}

/**
 * A labelled counter for the AMI hot path. prom-client hashes the labels on every inc() (about a
 * microsecond); here an increment is a Map lookup and an addition, and the totals are handed to
 * prom-client when it collects (each scrape, or `get()`). Label values come from Asterisk (event
 * names, services), a bounded set; past `maxKeys` distinct values, increments go straight through.
 */
export class TalliedCounter<L extends string> {
  readonly counter: Counter<L>;
  /** first label value → second label value ('' for one-label counters) → count since last drain */
  private readonly pending = new Map<string, Map<string, { values: string[]; n: number }>>();
  private keys = 0;

  constructor(
    config: Omit<CounterConfiguration<L>, 'collect'>,
    private readonly maxKeys = 1000,
  ) {
    const drain = () => this.drain();
    this.counter = new Counter<L>({ ...config, collect: drain });
  }

  /** label values in the order of labelNames (one or two labels) */
  inc(first: string, second?: string, by = 1): void {
    let inner = this.pending.get(first);
    const entry = inner?.get(second ?? '');
    if (entry) {
      entry.n += by;
      return;
    }
    const values = second === undefined ? [first] : [first, second];
    if (this.keys >= this.maxKeys) {
      this.counter.labels(...values).inc(by);
      return;
    }
    if (!inner) this.pending.set(first, (inner = new Map()));
    inner.set(second ?? '', { values, n: by });
    this.keys++;
  }

  private drain(): void {
    for (const inner of this.pending.values()) {
      for (const entry of inner.values()) {
        if (entry.n === 0) continue;
        this.counter.labels(...entry.values).inc(entry.n);
        entry.n = 0;
      }
    }
  }
}
