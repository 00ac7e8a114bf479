/**
 * The guardian as a CrowdSec LAPI machine (watcher): a Subscriber that pushes each ban whose
 * source is in crowdsec.machine.push as an alert with its decision (alert.ts). Bans go to the
 * durable queue (outbox.ts) on the next event-loop turn, before any push is tried; a batch of up
 * to batchMaxSize leaves batchWindowMs after the first ban of it. A failed push (LAPI down, 5xx,
 * login refused) is retried with the project's one backoff (net/backoff.ts) capped at
 * crowdsec.maxBackoffMs, the rows waiting in SQLite meanwhile (a restart pushes them); a refusal
 * that can never succeed (422, 1.4.6's 500 "validation failure") is retried one ban at a time, so
 * only the bans refused are dropped. Rows whose ban has ended are dropped unsent. The LAPI cannot
 * make us do anything: we only push.
 */
import type { Database } from 'better-sqlite3';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { parseDuration } from '../common/duration.js';
import { BoundedQueue } from '../common/bounded-queue.js';
import type { BanNotice, BanRecord, Subscriber } from '../guard/index.js';
import { backoffMs } from '../net/backoff.js';
import { alertOf } from './alert.js';
import type { CrowdsecConfig } from './config-schema.js';
import { LapiClient, LapiError } from './lapi.js';
import { FleetOutbox } from './outbox.js';
import type { MachineHealth } from './types.js';

/** the first retry after a failed push; then doubled up to crowdsec.maxBackoffMs */
export const FIRST_RETRY_MS = 500;
/** a ban ending within this is not worth a decision: dropped as expired */
export const EXPIRY_MARGIN_MS = 1000;
/** a refusal or a long outage is logged at most this often */
const LOG_EVERY_MS = 60_000;
/** bans of one event-loop turn held in memory before they are written (a burst beyond is counted as cap) */
const PENDING_MAX = 50_000;
/** how long stop() waits for a push already sent, so a pushed row is not pushed again after a restart */
const STOP_GRACE_MS = 2000;

/** answers that say this body will never be taken; a 404 or 405 is a wrong url: retried */
const FOR_GOOD = new Set([400, 413, 422]);
/**
 * LAPI 1.4.6 answers HTTP 500, not 422, to a body that fails its model's validation (a missing
 * field) and to a value it cannot parse ("unable to create alerts: invalid addr/range x"); other
 * 500s (its database) are outages
 */
const REFUSED_500 = /answered HTTP 500: (validation failure|unable to create alerts: invalid addr\/range)/;

/** Whether a failed push can never succeed with this body: its bans are dropped instead of retried. */
export function refusedForGood(e: unknown): boolean {
  if (!(e instanceof LapiError) || e.status === null) return false;
  return FOR_GOOD.has(e.status) || (e.status === 500 && REFUSED_500.test(e.message));
}

export type DropReason = 'expired' | 'refused' | 'cap';
const DROP_REASONS: readonly DropReason[] = ['expired', 'refused', 'cap'];

/** what health() says (src/fleet/types.ts MachineHealth: the fleet's health part and `status` read it) */
export type FleetMachineHealth = MachineHealth;

export interface FleetMachineDeps {
  config: CrowdsecConfig;
  /** the store's database (Store.db): its migrations made fleet_outbox */
  db: Database;
  logger: Logger;
  registry?: Registry;
  now?: () => number;
  fetch?: typeof fetch;
  /** the first retry delay (FIRST_RETRY_MS; tests shorten it) */
  firstRetryMs?: number;
}

export interface FleetMachine {
  subscriber: Subscriber<FleetMachineHealth>;
  health(): FleetMachineHealth;
  /** writes what is pending to the queue, waits briefly for a push in flight; the rest is pushed at the next start */
  stop(): Promise<void>;
}

function metricsFor(registry: Registry | undefined) {
  if (!registry) return null;
  const get = <T>(name: string, make: (registers: Registry[]) => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make([registry]);
  const m = {
    pushed: get(
      'pbx_guardian_fleet_pushed_total',
      (registers) => new Counter({ name: 'pbx_guardian_fleet_pushed_total', help: 'alerts (bans) the CrowdSec LAPI accepted', registers }),
    ),
    failures: get(
      'pbx_guardian_fleet_push_failures_total',
      (registers) =>
        new Counter({
          name: 'pbx_guardian_fleet_push_failures_total',
          help: 'POST /v1/alerts attempts that failed (retried) or were refused (dropped)',
          registers,
        }),
    ),
    queue: get(
      'pbx_guardian_fleet_queue',
      (registers) => new Gauge({ name: 'pbx_guardian_fleet_queue', help: 'bans waiting to be pushed to the CrowdSec LAPI', registers }),
    ),
    dropped: get(
      'pbx_guardian_fleet_dropped_total',
      (registers) =>
        new Counter({
          name: 'pbx_guardian_fleet_dropped_total',
          help: 'bans never pushed, by reason (expired: ended first; refused: the LAPI refused them; cap: queue full)',
          labelNames: ['reason'],
          registers,
        }),
    ),
  };
  for (const reason of DROP_REASONS) m.dropped.inc({ reason }, 0);
  return m;
}

export function startFleetMachine(deps: FleetMachineDeps): FleetMachine {
  const cfg = deps.config.machine;
  if (!cfg.enabled) {
    const off = (): FleetMachineHealth => ({
      enabled: false,
      state: 'off',
      queued: 0,
      maxRows: cfg.maxRows,
      lastPushAt: null,
      failingSince: null,
      lastError: null,
      pushed: 0,
      dropped: { expired: 0, refused: 0, cap: 0 },
    });
    return { subscriber: { name: 'crowdsec-machine', health: off, close: async () => {} }, health: off, stop: async () => {} };
  }
  const m = new Machine(deps);
  return { subscriber: m, health: () => m.health(), stop: () => m.close() };
}

class Machine implements Subscriber<FleetMachineHealth> {
  readonly name = 'crowdsec-machine';
  private readonly cfg: CrowdsecConfig['machine'];
  private readonly push: ReadonlySet<string>;
  private readonly outbox: FleetOutbox;
  private readonly client: LapiClient;
  private readonly metrics;
  private readonly now: () => number;
  private readonly permanentMs: number;
  private readonly pending = new BoundedQueue<BanRecord>(PENDING_MAX);
  private flushScheduled = false;
  private windowTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private wake: (() => void) | null = null;
  private failures = 0;
  private failingSince: number | null = null;
  private lastError: string | null = null;
  private lastPushAt: number | null = null;
  private pushed = 0;
  private readonly dropped: Record<DropReason, number> = { expired: 0, refused: 0, cap: 0 };
  private lastFailureLogAt = 0;
  private lastRefusedLogAt = 0;
  private refusedSinceLog = 0;
  private lastQueueErrorLogAt = 0;
  private lastCapLogAt = 0;
  /** rows at the head of the queue pushed one at a time: a refused batch, to find the ban(s) refused */
  private isolate = 0;

  constructor(private readonly deps: FleetMachineDeps) {
    this.cfg = deps.config.machine;
    this.push = new Set(this.cfg.push);
    this.now = deps.now ?? Date.now;
    this.permanentMs = (parseDuration(this.cfg.permanentDuration) ?? 365 * 86400) * 1000;
    this.metrics = metricsFor(deps.registry);
    this.outbox = new FleetOutbox(deps.db, this.cfg.maxRows);
    this.client = new LapiClient({
      url: deps.config.url,
      timeoutMs: deps.config.timeoutMs,
      login: this.cfg.login,
      password: this.cfg.password,
      fetch: deps.fetch,
    });
    this.gauge();
    const left = this.outbox.count();
    if (left > 0) {
      deps.logger.info({ queued: left }, `crowdsec machine: ${left} bans left from before the restart, pushing them`);
      this.start();
    }
  }

  /** The guard's ban decisions: those of a configured source are queued. Never throws. */
  handleBanNotice(notice: BanNotice): void {
    if (this.closed || notice.action !== 'ban' || !this.push.has(notice.record.source)) return;
    if (this.pending.push(notice.record) === 'rejected') this.drop('cap', 1);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const bans = this.pending.drainAll();
    try {
      const capped = this.outbox.append(bans);
      if (capped > 0) {
        this.drop('cap', capped);
        const t = Date.now();
        if (t - this.lastCapLogAt >= LOG_EVERY_MS) {
          this.lastCapLogAt = t;
          this.deps.logger.warn(
            { dropped: this.dropped.cap },
            `crowdsec machine: the queue is full (crowdsec.machine.maxRows ${this.cfg.maxRows}): the oldest bans are dropped unsent (${this.dropped.cap} so far)`,
          );
        }
      }
    } catch (e) {
      this.drop('cap', bans.length);
      this.queueError(e as Error, 'crowdsec machine: cannot write the push queue; bans are lost to the fleet (counted as cap)');
    }
    this.gauge();
    if (!this.closed && !this.running && !this.windowTimer) this.flushWindow();
  }

  private start(): void {
    if (this.running || this.closed) return;
    let failed = false;
    this.running = this.loop()
      .catch((e: Error) => {
        // the queue itself failed (the database): once a minute in the log, again in 5 s
        failed = true;
        this.queueError(e, 'crowdsec machine: the push queue failed; trying again every 5 s');
        if (!this.closed) setTimeout(() => this.start(), 5000).unref();
      })
      .finally(() => {
        this.running = null;
        // bans decided while the last batch was on its way: their window began at the first of them
        // (a whole window after the POST: p99 180-184 ms; this: 110-144 ms; bench/fleet-machine.ts, load 4)
        if (failed || this.closed || this.outbox.count() === 0 || this.windowTimer) return;
        const oldest = this.outbox.oldestBannedAt() ?? this.now();
        this.flushWindow(Math.min(this.cfg.batchWindowMs, Math.max(0, oldest + this.cfg.batchWindowMs - this.now())));
      });
  }

  private flushWindow(delayMs = this.cfg.batchWindowMs): void {
    this.windowTimer = setTimeout(() => {
      this.windowTimer = null;
      this.start();
    }, delayMs);
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      const expired = this.outbox.purgeExpired(this.now() + EXPIRY_MARGIN_MS);
      if (expired > 0) this.drop('expired', expired);
      const single = this.isolate > 0;
      const batch = this.outbox.peek(single ? 1 : this.cfg.batchMaxSize);
      this.gauge();
      if (batch.length === 0) return;
      const t = this.now();
      const alerts = batch.map((b) => alertOf(b, t, { permanentMs: this.permanentMs, machineId: this.cfg.login }));
      try {
        await this.client.pushAlerts(alerts, t);
      } catch (e) {
        this.metrics?.failures.inc();
        const err = e instanceof Error ? e : new Error(String(e));
        this.lastError = err.message.slice(0, 300);
        if (refusedForGood(e)) {
          // one bad ban refuses the whole POST (1.4.6 then stores none of it): the others must not go with it
          if (batch.length > 1) this.isolate = batch.length;
          else {
            this.refused(batch[0]!.id, err.message);
            if (single) this.isolate--;
          }
          continue;
        }
        this.failingSince ??= t;
        const wait = backoffMs(this.failures++, this.deps.firstRetryMs ?? FIRST_RETRY_MS, this.deps.config.maxBackoffMs);
        this.logFailure(`crowdsec machine: push failed (${this.lastError}); ${this.outbox.count()} bans wait in the queue, next try in ${wait} ms`);
        await this.sleep(wait);
        continue;
      }
      this.outbox.remove(batch.map((b) => b.id));
      if (single) this.isolate--;
      this.pushed += batch.length;
      this.metrics?.pushed.inc(batch.length);
      this.lastPushAt = t;
      if (this.failingSince !== null)
        this.deps.logger.info({ failedFor: t - this.failingSince }, 'crowdsec machine: the LAPI takes pushes again; pushing the queued bans in order');
      this.failures = 0;
      this.failingSince = null;
      this.lastFailureLogAt = 0;
      this.gauge();
      // a full batch behind this one goes at once; fewer wait for their own window (start's finally)
      if (this.isolate === 0 && this.outbox.count() < this.cfg.batchMaxSize) return;
    }
  }

  private refused(id: number, message: string): void {
    this.outbox.remove([id]);
    this.drop('refused', 1);
    this.refusedSinceLog += 1;
    const t = Date.now();
    if (t - this.lastRefusedLogAt < LOG_EVERY_MS) return;
    this.deps.logger.warn(
      { dropped: this.refusedSinceLog, err: message.slice(0, 300) },
      `crowdsec machine: the LAPI refused ${this.refusedSinceLog} bans for good (${message.slice(0, 200)}): dropped, not retried`,
    );
    this.lastRefusedLogAt = t;
    this.refusedSinceLog = 0;
  }

  /** the queue's database failing: once a minute in the log, whichever path met it */
  private queueError(e: Error, msg: string): void {
    const t = Date.now();
    if (t - this.lastQueueErrorLogAt < LOG_EVERY_MS) return;
    this.lastQueueErrorLogAt = t;
    this.deps.logger.error({ err: e.message }, msg);
  }

  private logFailure(msg: string): void {
    const t = Date.now();
    if (t - this.lastFailureLogAt < LOG_EVERY_MS) return;
    this.lastFailureLogAt = t;
    this.deps.logger.warn({ queued: this.outbox.count() }, msg);
  }

  private drop(reason: DropReason, n: number): void {
    this.dropped[reason] += n;
    this.metrics?.dropped.inc({ reason }, n);
  }

  private gauge(): void {
    this.metrics?.queue.set(this.outbox.count() + this.pending.length);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake = done;
    });
  }

  health(): FleetMachineHealth {
    return {
      enabled: true,
      state: this.failingSince === null ? 'ok' : 'failing',
      queued: this.outbox.count() + this.pending.length,
      maxRows: this.cfg.maxRows,
      lastPushAt: this.lastPushAt,
      failingSince: this.failingSince,
      lastError: this.lastError,
      pushed: this.pushed,
      dropped: { ...this.dropped },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.windowTimer = null;
    this.wake?.();
    if (!this.running) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise((r) => (timer = setTimeout(r, STOP_GRACE_MS)))]);
    clearTimeout(timer);
  }
}
