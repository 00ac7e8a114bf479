/**
 * Webhooks: salara's event POSTs, generalised. Each subscriber names the AMI events it wants
 * (plus the guardian's own GuardianBan / GuardianUnban), optional field matches, and a secret.
 * Matching events are written to the subscriber's own durable outbox (src/store/outbox.ts, one
 * table per subscriber: its own row cap, its own order) and POSTed one at a time, in order, with
 * retries and capped exponential backoff while the receiver is down. At-least-once: a receiver
 * dedupes on x-pbx-guardian-delivery.
 *
 * Signature: x-pbx-guardian-signature: sha256=HEX(HMAC-SHA256(secret, "<timestamp>.<raw body>"))
 * with x-pbx-guardian-timestamp: <unix seconds> (reject old timestamps to stop replays).
 */
import { createHash, createHmac } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AmiMessage } from '../ami/index.js';
import { parseDuration } from '../common/duration.js';
import type { WebhookConfig } from './config-schema.js';
import { redactUrl } from '../common/redact.js';
import { readLimited } from '../net/http-body.js';
import { banNoticeEvent, type BanNotice, type GuardianEvent, type Subscriber } from '../guard/index.js';
import { Outbox, type OutboxItem } from '../store/outbox.js';
import { backoffMs } from '../net/backoff.js';
import { BoundedQueue } from '../common/bounded-queue.js';

export { defaultWebhookConfig, resolveWebhooks, WebhooksConfigSchema, type WebhookConfig } from './config-schema.js';

export function signature(secret: string, timestamp: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export interface WebhookDeps {
  webhooks: WebhookConfig[];
  db: Database;
  logger: Logger;
  registry?: Registry;
  /** added to every event as SystemName when set */
  systemName?: string;
  fetch?: typeof fetch;
}

type Outcome = 'ok' | 'retry' | 'rejected';

interface Sub {
  cfg: WebhookConfig;
  outbox: Outbox;
  ttlMs: number;
  seq: number;
  /** events of this tick, written to the outbox in one transaction on the next (MAX_PENDING) */
  pending: BoundedQueue<OutboxItem>;
  match: Array<[string, Set<string>]>;
  wake: (() => void) | null;
  draining: boolean;
  failures: number;
  delivered: number;
  /** epoch ms of the first failed POST of the current outage; null while delivering */
  failingSince: number | null;
  lastError: string | null;
}

/** One subscriber's delivery, for the health model. */
export interface WebhookHealth {
  name: string;
  /** events waiting: outbox rows and not yet written ones */
  depth: number;
  maxRows: number;
  /** epoch ms the oldest undelivered event was queued; null when none waits */
  oldestUndeliveredAt: number | null;
  failingSince: number | null;
  lastError: string | null;
  delivered: number;
}

const MAX_PENDING = 50_000;
/** a receiver's answer is read up to this; only its status counts, a longer body fails the delivery */
export const WEBHOOK_RESPONSE_MAX_BYTES = 4096;

function metricsFor(registry: Registry | undefined) {
  if (!registry) return null;
  const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    deliveries: get(
      'pbx_guardian_webhook_deliveries_total',
      () =>
        new Counter({
          name: 'pbx_guardian_webhook_deliveries_total',
          help: 'webhook POST attempts, by subscriber and outcome (ok, retry, rejected)',
          labelNames: ['subscriber', 'outcome'],
          registers: [registry],
        }),
    ),
    dropped: get(
      'pbx_guardian_webhook_dropped_total',
      () =>
        new Counter({
          name: 'pbx_guardian_webhook_dropped_total',
          help: 'webhook events dropped, by subscriber and reason (cap, expired, too_large, rejected, overflow)',
          labelNames: ['subscriber', 'reason'],
          registers: [registry],
        }),
    ),
    queued: get(
      'pbx_guardian_webhook_queued_total',
      () =>
        new Counter({
          name: 'pbx_guardian_webhook_queued_total',
          help: 'events queued for webhook delivery, by subscriber',
          labelNames: ['subscriber'],
          registers: [registry],
        }),
    ),
    depth: get(
      'pbx_guardian_webhook_outbox_depth',
      () =>
        new Gauge({
          name: 'pbx_guardian_webhook_outbox_depth',
          help: 'events waiting for delivery, by subscriber',
          labelNames: ['subscriber'],
          registers: [registry],
        }),
    ),
    age: get(
      'pbx_guardian_webhook_oldest_age_seconds',
      () =>
        new Gauge({
          name: 'pbx_guardian_webhook_oldest_age_seconds',
          help: 'age of the oldest undelivered event, by subscriber',
          labelNames: ['subscriber'],
          registers: [registry],
        }),
    ),
  };
}

function tableFor(name: string): string {
  const safe = name
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 24);
  return `webhook_outbox_${safe}_${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
}

export class WebhookDispatcher implements Subscriber<WebhookHealth[]> {
  readonly name = 'webhooks';
  private readonly subs: Sub[];
  private readonly byEvent = new Map<string, Sub[]>();
  private readonly all: Sub[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly metrics;
  private readonly fetch: typeof fetch;
  private readonly gaugeTimer: NodeJS.Timeout;

  constructor(private readonly deps: WebhookDeps) {
    this.metrics = metricsFor(deps.registry);
    this.fetch = deps.fetch ?? fetch;
    this.subs = deps.webhooks.map((cfg) => {
      const outbox = new Outbox(deps.db, {
        table: tableFor(cfg.name),
        maxRows: cfg.maxRows,
        maxPayloadBytes: 256 * 1024,
        onDrop: (reason, n) => {
          this.metrics?.dropped.inc({ subscriber: cfg.name, reason }, n);
          if (reason !== 'expired')
            deps.logger.warn({ subscriber: cfg.name, reason, rows: n }, `webhook ${cfg.name}: dropped ${n} undelivered events (${reason}; raise maxRows?)`);
        },
      });
      const sub: Sub = {
        cfg,
        outbox,
        ttlMs: parseDuration(cfg.ttl)! * 1000,
        seq: outbox.maxSeq(),
        pending: new BoundedQueue<OutboxItem>(MAX_PENDING),
        match: Object.entries(cfg.match).map(([k, v]) => [k, new Set(Array.isArray(v) ? v : [v])]),
        wake: null,
        draining: false,
        failures: 0,
        delivered: 0,
        failingSince: null,
        lastError: null,
      };
      for (const e of cfg.events) {
        if (e === '*') {
          this.all.push(sub);
          continue;
        }
        const l = this.byEvent.get(e);
        if (l) l.push(sub);
        else this.byEvent.set(e, [sub]);
      }
      return sub;
    });
    this.zeroSeries();
    this.gaugeTimer = setInterval(() => this.updateGauges(), 5000);
    this.gaugeTimer.unref();
    for (const s of this.subs) if (s.outbox.count() > 0) void this.drain(s);
  }

  /** every subscriber's series from the first scrape, at 0 (an alert on a rate needs the series) */
  private zeroSeries(): void {
    const m = this.metrics;
    if (!m) return;
    for (const { cfg } of this.subs) {
      const subscriber = cfg.name;
      for (const outcome of ['ok', 'retry', 'rejected']) m.deliveries.inc({ subscriber, outcome }, 0);
      for (const reason of ['cap', 'expired', 'too_large', 'rejected', 'overflow', 'outbox_error']) m.dropped.inc({ subscriber, reason }, 0);
      m.queued.inc({ subscriber }, 0);
    }
    this.updateGauges();
  }

  private updateGauges(): void {
    if (!this.metrics) return;
    const now = Date.now();
    for (const s of this.subs) {
      this.metrics.depth.set({ subscriber: s.cfg.name }, s.outbox.count() + s.pending.length);
      const t = s.outbox.oldestCreatedAt();
      this.metrics.age.set({ subscriber: s.cfg.name }, t ? (now - t) / 1000 : 0);
    }
  }

  /** Every AMI event (one Map lookup for events no subscriber wants). Never throws. */
  handleAmiEvent(msg: AmiMessage): void {
    const name = msg.get('Event');
    if (name === undefined) return;
    const subs = this.byEvent.get(name);
    if (subs === undefined && this.all.length === 0) return;
    this.dispatch(
      name,
      subs ?? [],
      (k) => msg.get(k),
      () => msg.toObject(),
    );
  }

  handleBanNotice(notice: BanNotice): void {
    this.handleGuardianEvent(banNoticeEvent(notice) as GuardianEvent);
  }

  /** GuardianFraud, GuardianAccountBlocked, ... : delivered like a ban notice, to the subscribers that list the name. */
  handleGuardianEvent(ev: GuardianEvent): void {
    const subs = this.byEvent.get(ev.Event);
    if (subs === undefined) return;
    const lower = new Map(Object.entries(ev).map(([k, v]) => [k.toLowerCase(), v]));
    this.dispatch(
      ev.Event,
      subs,
      (k) => lower.get(k.toLowerCase()),
      () => ({ ...ev }),
    );
  }

  private dispatch(name: string, subs: Sub[], get: (k: string) => string | undefined, obj: () => Record<string, string>): void {
    try {
      let data: Record<string, string> | null = null;
      const now = Date.now();
      for (const s of subs.length && this.all.length ? [...subs, ...this.all.filter((a) => !subs.includes(a))] : subs.length ? subs : this.all) {
        if (
          !s.match.every(([k, want]) => {
            const v = get(k);
            return v !== undefined && want.has(v);
          })
        )
          continue;
        // checked before the event is copied: a refused one costs nothing
        if (s.pending.isFull) {
          this.metrics?.dropped.inc({ subscriber: s.cfg.name, reason: 'overflow' });
          continue;
        }
        if (data === null) {
          data = { ...obj() };
          if (this.deps.systemName) data.SystemName = this.deps.systemName;
        }
        s.pending.push({
          seq: ++s.seq,
          lane: s.cfg.name,
          kind: name,
          model: s.cfg.name,
          method: 'POST',
          args: [data],
          kwargs: {},
          priority: 1,
          createdAt: now,
          expiresAt: now + s.ttlMs,
        });
        this.metrics?.queued.inc({ subscriber: s.cfg.name });
      }
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    } catch (e) {
      this.deps.logger.error({ err: (e as Error).message, event: name }, 'webhook queuing failed for one event');
    }
  }

  /** Pending events → each subscriber's outbox (one transaction each), then wake its sender. */
  private flush(): void {
    this.flushScheduled = false;
    for (const s of this.subs) {
      if (s.pending.length === 0) continue;
      const items = s.pending.drainAll();
      try {
        s.outbox.append(items);
      } catch (e) {
        this.deps.logger.error(
          { subscriber: s.cfg.name, err: (e as Error).message, lost: items.length },
          'cannot write the webhook outbox: these events are lost',
        );
        this.metrics?.dropped.inc({ subscriber: s.cfg.name, reason: 'outbox_error' }, items.length);
      }
      if (s.wake) s.wake();
      else if (!s.draining && !this.closed) void this.drain(s);
    }
  }

  private readonly running = new Set<Promise<void>>();

  private drain(s: Sub): Promise<void> {
    if (s.draining) return Promise.resolve();
    const p = this.drainLoop(s).finally(() => this.running.delete(p));
    this.running.add(p);
    return p;
  }

  private async drainLoop(s: Sub): Promise<void> {
    if (s.draining) return;
    s.draining = true;
    try {
      while (!this.closed) {
        const rows = s.outbox.peek(64);
        if (rows.length === 0) break;
        for (const row of rows) {
          if (this.closed) return;
          let out: Outcome;
          // a POST already sent when close() is called is awaited, and its row removed if delivered
          for (;;) {
            out = await this.post(s, row);
            if (out !== 'retry' || this.closed) break;
            s.outbox.noteAttempt(row.seq);
            const backoff = backoffMs(s.failures++, 250, s.cfg.maxBackoffMs);
            await this.sleepUninterrupted(backoff);
            if (row.expiresAt <= Date.now()) {
              out = 'rejected';
              this.metrics?.dropped.inc({ subscriber: s.cfg.name, reason: 'expired' });
              break;
            }
          }
          if (out === 'retry') return; // closed while retrying: the row stays for the next start
          if (s.failures > 0) this.deps.logger.info({ subscriber: s.cfg.name }, `webhook ${s.cfg.name} answers again: delivering the queued events in order`);
          s.failures = 0;
          s.failingSince = null;
          s.outbox.remove([row.seq]);
          if (out === 'ok') s.delivered++;
        }
      }
    } catch (e) {
      this.deps.logger.error({ subscriber: s.cfg.name, err: (e as Error).message }, 'webhook delivery loop failed; retrying in 5 s');
      if (!this.closed) setTimeout(() => void this.drain(s), 5000).unref();
    } finally {
      s.draining = false;
    }
    if (!this.closed && s.outbox.count() > 0) void this.drain(s);
  }

  private closeWaiters = new Set<() => void>();
  private sleepUninterrupted(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.closeWaiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.closeWaiters.add(done);
    });
  }

  private async post(s: Sub, row: OutboxItem): Promise<Outcome> {
    const body = JSON.stringify({ event: row.kind, delivery: `${s.cfg.name}:${row.seq}`, createdAt: new Date(row.createdAt).toISOString(), data: row.args[0] });
    const ts = String(Math.floor(Date.now() / 1000));
    let status = 0;
    try {
      const res = await this.fetch(s.cfg.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'pbx-guardian-webhooks',
          'x-pbx-guardian-event': row.kind,
          'x-pbx-guardian-delivery': `${s.cfg.name}:${row.seq}`,
          'x-pbx-guardian-timestamp': ts,
          'x-pbx-guardian-signature': signature(s.cfg.secret, ts, body),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(s.cfg.timeoutMs),
      });
      status = res.status;
      if ((await readLimited(res, WEBHOOK_RESPONSE_MAX_BYTES)).truncated) {
        throw new Error(
          `answered HTTP ${status} with a body longer than ${WEBHOOK_RESPONSE_MAX_BYTES} bytes: aborted (only the status counts: answer with a short or empty body)`,
        );
      }
    } catch (e) {
      if (s.failures === 0)
        this.deps.logger.warn(
          { subscriber: s.cfg.name, url: redactUrl(s.cfg.url), err: (e as Error).message.split(s.cfg.url).join(redactUrl(s.cfg.url)) },
          `webhook ${s.cfg.name} unreachable: events wait in its outbox and are retried in order`,
        );
      this.metrics?.deliveries.inc({ subscriber: s.cfg.name, outcome: 'retry' });
      s.failingSince ??= Date.now();
      s.lastError = (e as Error).message.split(s.cfg.url).join(redactUrl(s.cfg.url)).slice(0, 300);
      return 'retry';
    }
    if (status >= 200 && status < 300) {
      this.metrics?.deliveries.inc({ subscriber: s.cfg.name, outcome: 'ok' });
      return 'ok';
    }
    if (status === 408 || status === 429 || status >= 500) {
      if (s.failures === 0) this.deps.logger.warn({ subscriber: s.cfg.name, status }, `webhook ${s.cfg.name} answered ${status}: retrying with backoff`);
      this.metrics?.deliveries.inc({ subscriber: s.cfg.name, outcome: 'retry' });
      s.failingSince ??= Date.now();
      s.lastError = `answered HTTP ${status}`;
      return 'retry';
    }
    this.metrics?.deliveries.inc({ subscriber: s.cfg.name, outcome: 'rejected' });
    this.metrics?.dropped.inc({ subscriber: s.cfg.name, reason: 'rejected' });
    this.deps.logger.warn(
      { subscriber: s.cfg.name, status, event: row.kind },
      `webhook ${s.cfg.name} refused an event with HTTP ${status}: dropped (not retried)`,
    );
    return 'rejected';
  }

  /**
   * A reloaded `webhooks:` list. A subscriber's url, secret, timeoutMs and maxBackoffMs apply at
   * once (queued events go to the new url, signed with the new secret); a removed subscriber gets
   * no new events. What only a restart applies (new subscribers, other keys, the queue of a
   * removed one) comes back in restartNeeded.
   */
  update(webhooks: WebhookConfig[]): { applied: string[]; restartNeeded: string[] } {
    const applied: string[] = [];
    const restartNeeded: string[] = [];
    const next = new Map(webhooks.map((w) => [w.name, w]));
    const live = ['url', 'secret', 'timeoutMs', 'maxBackoffMs'] as const;
    for (const s of this.subs) {
      const w = next.get(s.cfg.name);
      if (!w) {
        for (const list of [this.all, ...this.byEvent.values()]) {
          const i = list.indexOf(s);
          if (i >= 0) list.splice(i, 1);
        }
        restartNeeded.push(`webhooks ${s.cfg.name}: removed; it gets no new events, its ${s.outbox.count()} queued ones are delivered until a restart`);
        continue;
      }
      if (live.some((k) => w[k] !== s.cfg[k])) applied.push(`webhooks ${s.cfg.name}: ${live.filter((k) => w[k] !== s.cfg[k]).join(', ')}`);
      const other = (Object.keys(w) as Array<keyof WebhookConfig>).filter(
        (k) => !(live as readonly string[]).includes(k) && JSON.stringify(w[k]) !== JSON.stringify(s.cfg[k]),
      );
      if (other.length > 0) restartNeeded.push(`webhooks ${s.cfg.name}: ${other.join(', ')}`);
      s.cfg = { ...s.cfg, url: w.url, secret: w.secret, timeoutMs: w.timeoutMs, maxBackoffMs: w.maxBackoffMs };
    }
    for (const name of next.keys()) if (!this.subs.some((s) => s.cfg.name === name)) restartNeeded.push(`webhooks ${name}: new subscriber`);
    return { applied, restartNeeded };
  }

  stats(): Array<{ name: string; outbox: number; pending: number; delivered: number; failing: boolean }> {
    return this.subs.map((s) => ({ name: s.cfg.name, outbox: s.outbox.count(), pending: s.pending.length, delivered: s.delivered, failing: s.failures > 0 }));
  }

  /** Read-only snapshot per subscriber (health model). */
  health(): WebhookHealth[] {
    return this.subs.map((s) => {
      const oldest = s.outbox.oldestCreatedAt();
      const firstPending = s.pending.peek()?.createdAt ?? null;
      return {
        name: s.cfg.name,
        depth: s.outbox.count() + s.pending.length,
        maxRows: s.cfg.maxRows,
        oldestUndeliveredAt: oldest ?? firstPending,
        failingSince: s.failingSince,
        lastError: s.lastError,
        delivered: s.delivered,
      };
    });
  }

  /** Resolves true when every subscriber's outbox is empty (tests). */
  async whenIdle(timeoutMs = 10_000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.subs.every((s) => s.pending.length === 0 && s.outbox.count() === 0 && !s.draining)) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  /**
   * Stop: pending events are written to the outboxes (sent on the next start); a POST in flight
   * is awaited up to graceMs so a delivered event is not sent again after a restart.
   */
  async close(graceMs = 2000): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    clearInterval(this.gaugeTimer);
    for (const s of this.subs) s.wake?.();
    for (const w of [...this.closeWaiters]) w();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.running]),
      new Promise((r) => {
        timer = setTimeout(r, graceMs);
      }),
    ]);
    clearTimeout(timer);
  }
}
