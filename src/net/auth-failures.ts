/**
 * Failed authentication on the HTTP listeners, contained: per source address, at most
 * `maxPerMinute` failures are checked in a minute, later requests get a cheap 429 (no credential
 * compared, no body read) until the minute is over; failures are logged in aggregate (one line per
 * source per minute, with the counts), counted in metrics, and handed to `onFailure` (the guard,
 * which bans with the http-auth-failure rule unless the address is allow-listed).
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';

const FAILURE_REASONS = ['missing', 'invalid', 'not-local', 'scope'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

const LISTENERS = ['agent', 'rest', 'admin', 'metrics'] as const;
export type ListenerName = (typeof LISTENERS)[number];

export interface AuthFailureOptions {
  /** failed authentications per source and minute before it is answered 429 */
  maxPerMinute: number;
  /** sources tracked at most (least recently seen forgotten first) */
  maxSources: number;
  logger?: Logger;
  registry?: Registry;
  /** every counted failure (not the 429s) */
  onFailure?: (listener: ListenerName, address: string) => void;
  /** source lines per aggregate log flush; the rest are summed in one line */
  maxLogLines?: number;
  clock?: () => number;
}

const WINDOW_MS = 60_000;

interface SourceState {
  windowStart: number;
  failures: number;
  throttled: number;
  /** failures and 429s not yet logged */
  unloggedFailures: number;
  unloggedThrottled: number;
  listeners: Set<ListenerName>;
}

function counterOf(registry: Registry | undefined, name: string, help: string): Counter<'listener' | 'reason'> | null {
  if (!registry) return null;
  return (
    (registry.getSingleMetric(name) as Counter<'listener' | 'reason'> | undefined) ??
    new Counter({ name, help, labelNames: ['listener', 'reason'], registers: [registry] })
  );
}

export class AuthFailures {
  private readonly sources: LRUCache<string, SourceState>;
  private readonly clock: () => number;
  private readonly failed;
  private readonly refused;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: AuthFailureOptions) {
    this.clock = opts.clock ?? Date.now;
    this.sources = new LRUCache({ max: opts.maxSources });
    this.failed = counterOf(
      opts.registry,
      'pbx_guardian_auth_failures_total',
      'failed authentications on the HTTP listeners, by listener and reason (missing, invalid, not-local)',
    );
    this.refused = counterOf(
      opts.registry,
      'pbx_guardian_auth_throttled_total',
      'requests answered 429 because their source failed authentication too often, by listener',
    );
    // the known series at 0 from the first scrape
    for (const listener of LISTENERS) {
      for (const reason of FAILURE_REASONS) this.failed?.inc({ listener, reason }, 0);
      this.refused?.inc({ listener, reason: 'throttled' }, 0);
    }
  }

  private state(address: string, now: number): SourceState {
    let s = this.sources.get(address);
    if (!s) {
      s = { windowStart: now, failures: 0, throttled: 0, unloggedFailures: 0, unloggedThrottled: 0, listeners: new Set() };
      this.sources.set(address, s);
    } else if (now - s.windowStart >= WINDOW_MS) {
      s.windowStart = now;
      s.failures = 0;
      s.throttled = 0;
    }
    return s;
  }

  /** true: answer 429 without checking the credential (counted) */
  throttled(listener: ListenerName, address: string): boolean {
    const s = this.sources.get(address);
    if (!s || s.failures < this.opts.maxPerMinute || this.clock() - s.windowStart >= WINDOW_MS) return false;
    s.throttled++;
    s.unloggedThrottled++;
    s.listeners.add(listener);
    this.refused?.inc({ listener, reason: 'throttled' });
    return true;
  }

  retryAfterSec(address: string): number {
    const s = this.sources.get(address);
    return s ? Math.max(1, Math.ceil((s.windowStart + WINDOW_MS - this.clock()) / 1000)) : 1;
  }

  record(listener: ListenerName, address: string, reason: FailureReason): void {
    const s = this.state(address, this.clock());
    s.failures++;
    s.unloggedFailures++;
    s.listeners.add(listener);
    this.failed?.inc({ listener, reason });
    this.opts.onFailure?.(listener, address);
  }

  /** Writes the aggregate lines for what happened since the last flush (the timer calls it each minute). */
  flush(): number {
    const log = this.opts.logger;
    const maxLines = this.opts.maxLogLines ?? 100;
    let lines = 0;
    let moreSources = 0;
    let moreFailures = 0;
    for (const [address, s] of this.sources.entries()) {
      if (s.unloggedFailures === 0 && s.unloggedThrottled === 0) continue;
      if (lines < maxLines) {
        log?.warn(
          { event: 'auth-failures', remote: address, listeners: [...s.listeners], failures: s.unloggedFailures, throttled: s.unloggedThrottled },
          `${s.unloggedFailures} failed authentications from ${address} on ${[...s.listeners].join(', ')} in the last minute` +
            (s.unloggedThrottled > 0 ? `; ${s.unloggedThrottled} more requests answered 429` : '') +
            ' (a misconfigured client? check odoo.agentToken / rest.tokens; repeated failures are banned by the http-auth-failure rule)',
        );
        lines++;
      } else {
        moreSources++;
        moreFailures += s.unloggedFailures + s.unloggedThrottled;
      }
      s.unloggedFailures = 0;
      s.unloggedThrottled = 0;
      s.listeners.clear();
    }
    if (moreSources > 0) {
      log?.warn(
        { event: 'auth-failures', sources: moreSources, requests: moreFailures },
        `${moreFailures} more refused requests from ${moreSources} other sources in the last minute`,
      );
      lines++;
    }
    return lines;
  }

  start(): void {
    this.timer ??= setInterval(() => this.flush(), WINDOW_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }
}
