/**
 * Detection sources: each turns its input into observations for the guard (src/guard/observation.ts).
 *   ami           every AMI event some rule watches (ami-source.ts)
 *   security-log  Asterisk's security log, followed like `tail -F` (security-log.ts, tail.ts)
 *   http          refused credentials on our own listeners (Guardian.observeExternal)
 */
import type { Logger } from 'pino';
import { parseDuration } from '../common/duration.js';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AmiClient } from '../ami/index.js';
import { SOURCE_NAMES, type GuardListener, type ObservationSink } from '../guard/index.js';
import { amiObserver } from './ami-source.js';
import { SecurityLogSource, type SecurityLogCounts, type SecurityLogMode } from './security-log.js';
import type { SourcesConfig } from './config-schema.js';
import { FileTail, type TailStats } from './tail.js';

export { amiObserver, decodeAmiEvent } from './ami-source.js';
export { asteriskObservation } from './asterisk-event.js';
export { parseAsteriskAddress, remoteAddressOf, resolveAttacker, type Attacker } from './address.js';
export { FieldView, logObservation, logTime, parseSecurityLogLine, SecurityLogSource, type SecurityLogMode } from './security-log.js';
export { FileTail, type TailOptions, type TailStats } from './tail.js';
export { messagesObservation, messagesTime, parseMessagesLine, splitHost, type MessagesLine } from './messages-log.js';

export { SourcesConfigSchema, type SourcesConfig } from './config-schema.js';

/** What `status` shows of the security-log source. */
export interface SecurityLogHealth extends TailStats {
  path: string;
  mode: SecurityLogMode;
  /** AMI delivers security events now (mode fallback: the log's events are not counted) */
  amiCovers: boolean;
  counts: SecurityLogCounts;
}

export interface Sources {
  /** starts following the security log (once the guard and the firewall are ready) */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** null: the security log is not followed (sources.securityLog.enabled: false) */
  securityLog(): SecurityLogHealth | null;
}

export interface AttachOptions {
  sink: ObservationSink & { on(listener: GuardListener): void };
  /** null: ami.enabled is false */
  ami: AmiClient | null;
  config: SourcesConfig;
  logger: Logger;
  /** where the sources' metrics go */
  registry?: Registry;
  clock?: () => number;
}

/** Connects every configured source to the guard; main.ts calls it once. */
export function attachSources(o: AttachOptions): Sources {
  const clock = o.clock ?? Date.now;
  const observed: Record<string, number> = Object.fromEntries(SOURCE_NAMES.map((s) => [s, 0]));
  o.sink.on({ securityEvent: (_event, _service, source) => void (observed[source] = (observed[source] ?? 0) + 1) });
  o.ami?.on('event', amiObserver(o.sink, clock));

  // AMI counts as delivering once this session is proven to read the security class: before that
  // (just logged in, or blind) the log's events count, at worst twice for a few seconds
  const amiCovers = (): boolean => {
    if (!o.ami) return false;
    const h = o.ami.health();
    return h.state === 'connected' && h.security === 'verified';
  };
  const cfg = o.config.securityLog;
  let log: { source: SecurityLogSource; tail: FileTail } | null = null;
  if (cfg.enabled) {
    const source = new SecurityLogSource(o.sink, cfg.mode, amiCovers, clock);
    const tail = new FileTail({
      path: cfg.path,
      pollMs: (parseDuration(cfg.pollInterval) ?? 1) * 1000,
      onLines: (lines) => source.handleLines(lines),
      onError: (err) => o.logger.error({ err, path: cfg.path }, `security log ${cfg.path} cannot be read: ${err.message} (sources.securityLog.path); retrying`),
    });
    log = { source, tail };
  }
  if (o.registry) registerSourceMetrics(o.registry, observed, log);

  return {
    async start() {
      if (!log) return;
      await log.tail.start();
      const t = log.tail.stats;
      if (t.following) o.logger.info({ path: cfg.path, mode: cfg.mode }, `following the security log ${cfg.path} (mode ${cfg.mode})`);
      else o.logger.warn({ path: cfg.path }, `security log: ${t.lastError ?? 'not open'}; it is opened when it appears (sources.securityLog.path)`);
    },
    async stop() {
      await log?.tail.stop();
    },
    securityLog() {
      if (!log) return null;
      return { ...log.tail.stats, path: cfg.path, mode: cfg.mode, amiCovers: amiCovers(), counts: { ...log.source.counts } };
    },
  };
}

/** Counted in plain numbers on the hot path, read when Prometheus scrapes. */
function registerSourceMetrics(registry: Registry, observed: Record<string, number>, log: { source: SecurityLogSource; tail: FileTail } | null): void {
  new Counter({
    name: 'pbx_guardian_observations_total',
    help: 'security events a source delivered to the guard (those some rule watches), by source (ami, security-log, http)',
    labelNames: ['source'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [source, n] of Object.entries(observed)) this.inc({ source }, n);
    },
  });
  if (!log) return;
  const { source, tail } = log;
  new Counter({
    name: 'pbx_guardian_security_log_lines_total',
    help: 'security log lines read, by outcome (observed; covered: dropped while AMI delivers, mode fallback; unwatched; other: no security event; too_long: dropped)',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      this.reset();
      const c = source.counts;
      for (const [outcome, n] of [
        ['observed', c.observed],
        ['covered', c.covered],
        ['unwatched', c.unwatched],
        ['other', c.other],
        ['too_long', tail.stats.longLines],
      ] as const)
        this.inc({ outcome }, n);
    },
  });
  new Counter({
    name: 'pbx_guardian_security_log_reopened_total',
    help: 'times the security log was read again from its start, by why (rotated, truncated)',
    labelNames: ['why'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ why: 'rotated' }, tail.stats.rotations);
      this.inc({ why: 'truncated' }, tail.stats.truncations);
    },
  });
  new Gauge({
    name: 'pbx_guardian_security_log_following',
    help: '1 while the security log is open and followed, 0 while it is absent or unreadable',
    registers: [registry],
    collect() {
      this.set(tail.stats.following ? 1 : 0);
    },
  });
}
