/**
 * Event forwarding: the events map (asterisk_plus.event), conditions, delays, and delivery to
 * Odoo through per-call lanes, with a durable SQLite outbox when Odoo is down or too slow.
 *
 * handleAmiEvent is on the AMI hot path: one Map lookup for unmapped events; for mapped ones a
 * condition check and a push into memory. All network I/O happens later, off the caller's stack.
 * Order: calls of one lane (Linkedid / Uniqueid / Channel) are delivered one after another, in
 * the order they were queued; the outbox drains in that same order (seq).
 */
import type { Logger } from 'pino';
import type { AmiMessage } from '../ami/types.js';
import { banNoticeEvent, type BanNotice } from '../guard/index.js';
import type { Outbox, OutboxItem } from '../store/outbox.js';
import type { OdooConfig } from './config.js';
import { compileEventsMap, EVENTS_MAP_DOMAIN, EVENTS_MAP_FIELDS, type EventHandler } from './events-map.js';
import type { OdooMetrics } from './metrics.js';
import { OdooServerError, type OdooCaller } from './rpc.js';
import { backoffMs } from '../net/backoff.js';
import { BoundedQueue } from '../common/bounded-queue.js';

export type { EventHandler, EventSource } from './events-map.js';

const EVENTS_MAP_STATE_KEY = 'events_map';

export interface ForwarderDeps {
  rpc: OdooCaller;
  outbox: Outbox;
  config: OdooConfig;
  log: Logger;
  metrics?: OdooMetrics | null;
}

type SendOutcome = 'ok' | 'unavailable' | 'rejected';

interface Lane {
  /** bounded by odoo.eventMemoryMax over all lanes (memCount); a lane alone never holds more */
  q: BoundedQueue<OutboxItem>;
  busy: boolean;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class Forwarder {
  private ami = new Map<string, EventHandler[]>();
  private fagi = new Map<string, EventHandler[]>();
  private readonly lanes: Lane[];
  private readonly startQueue = new Set<number>();
  private startScheduled = false;
  private mode: 'direct' | 'outbox' = 'direct';
  private memCount = 0;
  private readonly inflight = new Set<OutboxItem>();
  private pendingWrites: OutboxItem[] = [];
  private flushScheduled = false;
  private draining = false;
  private wake: (() => void) | null = null;
  private wakeTimer: NodeJS.Timeout | null = null;
  private readonly delayed = new Map<number, { timer: NodeJS.Timeout; item: OutboxItem }>();
  private delayedSeq = 0;
  private seq: number;
  private closed = false;
  private refreshTimer: NodeJS.Timeout | null = null;
  private readonly warnedConditions = new Set<string>();
  private lastDelayWarn = 0;
  private mapLoaded = false;
  /** counters for tests / status */
  readonly counters = { matched: 0, forwarded: 0, rejected: 0, outboxed: 0, delayOverflow: 0 };

  constructor(private readonly deps: ForwarderDeps) {
    this.lanes = Array.from({ length: deps.config.eventConcurrency }, () => ({ q: new BoundedQueue<OutboxItem>(deps.config.eventMemoryMax), busy: false }));
    this.seq = Math.max(deps.outbox.maxSeq(), 0);
    if (deps.outbox.count() > 0) {
      this.mode = 'outbox';
      deps.log.info({ rows: deps.outbox.count() }, 'Odoo outbox holds undelivered calls from a previous run: draining them first');
      setImmediate(() => this.kickDrain());
    }
    const cached = deps.outbox.getState(EVENTS_MAP_STATE_KEY);
    if (cached) {
      try {
        const n = this.setEventsMap(JSON.parse(cached) as unknown[]);
        deps.log.info({ handlers: n.loaded }, 'events map loaded from the local cache (refreshing from Odoo)');
      } catch (e) {
        deps.log.warn({ err: (e as Error).message }, 'cached events map unreadable; waiting for Odoo');
      }
    }
  }

  // ---------------------------------------------------------------- hot path

  /** Called by main.ts for every AMI event. Never blocks, never throws. */
  handleAmiEvent(msg: AmiMessage): void {
    const name = msg.get('Event');
    if (name === undefined) return;
    const hs = this.ami.get(name);
    if (hs === undefined) return;
    this.dispatch(name, hs, msg.toObject());
  }

  /** A ban/unban the guardian made, as an event Odoo can map (GuardianBan / GuardianUnban). */
  handleBanNotice(notice: BanNotice): void {
    const name = notice.action === 'ban' ? 'GuardianBan' : 'GuardianUnban';
    const hs = this.ami.get(name);
    if (hs === undefined) return;
    this.dispatch(name, hs, banNoticeEvent(notice));
  }

  /**
   * The guardian's own events (GuardianFraud, GuardianAccountBlocked, GuardianAccountUnblocked):
   * through the events map like an AMI event, as ban notices go (Odoo maps them by name in
   * asterisk_plus.event, source AMI).
   */
  handleGuardianEvent(ev: Readonly<Record<string, string>>): void {
    this.handleEventObject({ ...ev });
  }

  /** Forward an event object (used for FAGI-sourced or synthetic events). */
  handleEventObject(ev: Record<string, string>): void {
    const name = ev.Event;
    if (!name) return;
    const hs = this.ami.get(name);
    if (hs === undefined) return;
    this.dispatch(name, hs, ev);
  }

  private dispatch(name: string, hs: EventHandler[], obj: Record<string, string>): void {
    try {
      const now = Date.now();
      // null prototype: a header named __proto__ stays a plain key
      const ev: Record<string, string | number> = Object.assign(Object.create(null) as Record<string, string | number>, obj);
      if (this.deps.config.systemName) ev.SystemName = this.deps.config.systemName;
      // The module stamps channel and call times with EventTime and falls back to "now" (the
      // delivery time): without it a call replayed from the outbox would last 0 s.
      ev.EventTime = eventTime(obj.Timestamp, now);
      const lane = obj.Linkedid || obj.Uniqueid || obj.Channel || obj.Address || name;
      for (const h of hs) {
        if (h.condition !== null && !h.condition.test(ev)) continue;
        this.counters.matched++;
        this.deps.metrics?.eventsMatched.inc({ event: name });
        const pol = this.deps.config.outboxPolicy[name] ?? this.deps.config.outboxPolicy.default ?? { ttlSec: 3600, priority: 1 };
        const item: OutboxItem = {
          seq: 0,
          lane,
          kind: name,
          model: h.model,
          method: h.method,
          args: [ev],
          kwargs: {},
          priority: pol.priority,
          createdAt: now,
          expiresAt: now + h.delayMs + pol.ttlSec * 1000,
        };
        if (h.delayMs > 0) this.delay(item, h.delayMs);
        else this.enqueue(item);
      }
    } catch (e) {
      this.deps.log.error({ err: (e as Error).message, event: name }, 'event forwarding failed for one event');
    }
  }

  private delay(item: OutboxItem, ms: number): void {
    if (this.delayed.size >= this.deps.config.delayedMax || this.closed) {
      this.counters.delayOverflow++;
      this.deps.metrics?.eventsDropped.inc({ reason: 'delay_overflow' });
      const now = Date.now();
      if (now - this.lastDelayWarn > 10_000) {
        this.lastDelayWarn = now;
        this.deps.log.warn(
          { delayedMax: this.deps.config.delayedMax },
          'too many events waiting for their handler delay: sending this one without its delay (raise odoo.delayedMax?)',
        );
      }
      this.enqueue(item);
      return;
    }
    // keep the order of arrival for the seq: it is assigned when the delay ends
    const id = ++this.delayedSeq;
    const timer = setTimeout(() => {
      this.delayed.delete(id);
      this.enqueue(item);
    }, ms);
    this.delayed.set(id, { timer, item });
  }

  /** Queue one Odoo call (events and job results). Never blocks. */
  enqueue(item: OutboxItem): void {
    item.seq = ++this.seq;
    if (this.closed) {
      this.toOutbox(item);
      this.flushWrites();
      return;
    }
    if (this.mode === 'direct') {
      const idx = fnv1a(item.lane) % this.lanes.length;
      const lane = this.lanes[idx]!;
      if (this.memCount < this.deps.config.eventMemoryMax && lane.q.push(item) === 'queued') {
        this.memCount++;
        if (!lane.busy) this.scheduleLane(idx);
        return;
      }
      this.enterOutbox('backlog');
    }
    this.toOutbox(item);
  }

  // ---------------------------------------------------------------- delivery

  private scheduleLane(idx: number): void {
    this.startQueue.add(idx);
    if (this.startScheduled) return;
    this.startScheduled = true;
    setImmediate(() => {
      this.startScheduled = false;
      const ids = [...this.startQueue];
      this.startQueue.clear();
      for (const i of ids) void this.runLane(i);
    });
  }

  private async runLane(idx: number): Promise<void> {
    const lane = this.lanes[idx]!;
    if (lane.busy) return;
    lane.busy = true;
    try {
      while (this.mode === 'direct' && !this.closed) {
        const item = lane.q.shift();
        if (item === undefined) break;
        this.memCount--;
        this.inflight.add(item);
        const r = await this.send(item, this.deps.config.rpcRetries);
        this.inflight.delete(item);
        if (r === 'unavailable') {
          this.toOutbox(item);
          this.enterOutbox('odoo_unavailable');
        }
      }
    } finally {
      lane.busy = false;
    }
    if (this.mode === 'outbox') this.kickDrain();
  }

  private async send(item: OutboxItem, retries: number): Promise<SendOutcome> {
    try {
      await this.deps.rpc.executeKw(item.model, item.method, item.args, item.kwargs, {
        retries,
        ...(item.kind === 'JobResult' ? {} : { paramNames: ['event'] }),
      });
      this.counters.forwarded++;
      this.deps.metrics?.eventsForwarded.inc();
      return 'ok';
    } catch (e) {
      if (e instanceof OdooServerError) {
        this.counters.rejected++;
        this.deps.metrics?.eventsDropped.inc({ reason: 'rejected' });
        this.deps.log.warn(
          { model: item.model, method: item.method, kind: item.kind, err: e.message, errorName: e.errorName },
          `Odoo raised an error in ${item.model}.${item.method} for ${item.kind}: the call is dropped (not retried)`,
        );
        return 'rejected';
      }
      return 'unavailable';
    }
  }

  private enterOutbox(reason: 'odoo_unavailable' | 'backlog'): void {
    if (this.mode === 'outbox') return;
    this.mode = 'outbox';
    const moved: OutboxItem[] = [];
    for (const l of this.lanes) moved.push(...l.q.drainAll());
    this.memCount = 0;
    for (const it of moved) this.toOutbox(it);
    this.deps.log.warn(
      { reason, moved: moved.length, outboxRows: this.deps.outbox.count() },
      reason === 'backlog'
        ? 'Odoo is not keeping up with events: queuing them in the durable outbox until it catches up'
        : 'Odoo is unreachable: events are kept in the durable outbox and sent in order when it answers again',
    );
    this.kickDrain();
  }

  private toOutbox(item: OutboxItem): void {
    this.pendingWrites.push(item);
    if (!this.flushScheduled && !this.closed) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flushWrites();
      });
    }
  }

  private flushWrites(): void {
    if (this.pendingWrites.length === 0) return;
    const items = this.pendingWrites.sort((a, b) => a.seq - b.seq);
    this.pendingWrites = [];
    try {
      const n = this.deps.outbox.append(items);
      this.counters.outboxed += n;
      this.deps.metrics?.outboxWritten.inc(n);
      if (this.mode === 'outbox' && !this.draining && !this.closed) this.kickDrain();
    } catch (e) {
      this.deps.log.error({ err: (e as Error).message, lost: items.length }, 'cannot write the Odoo outbox: these events are lost');
      this.deps.metrics?.eventsDropped.inc({ reason: 'outbox_error' }, items.length);
    }
  }

  private kickDrain(): void {
    if (this.wake) this.wake();
    if (!this.draining && !this.closed) void this.drainLoop();
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeTimer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        if (this.wakeTimer) clearTimeout(this.wakeTimer);
        this.wake = null;
        resolve();
      };
    });
  }

  private async drainLoop(): Promise<void> {
    this.draining = true;
    let failures = 0;
    let lastFailed = false;
    try {
      while (!this.closed && this.mode === 'outbox') {
        if (this.inflight.size > 0 || this.lanes.some((l) => l.busy)) {
          await this.pause(10);
          continue;
        }
        this.flushWrites();
        const rows = this.deps.outbox.peek(512);
        if (rows.length === 0) {
          this.mode = 'direct';
          this.deps.log.info('Odoo outbox drained: events go straight to Odoo again');
          break;
        }
        if (lastFailed) {
          // probe with the oldest row alone
          const r = await this.send(rows[0]!, 0);
          if (r === 'unavailable') {
            await this.pause(backoffMs(failures++, 250, 10_000));
            continue;
          }
          this.deps.outbox.remove([rows[0]!.seq]);
          rows.shift();
          lastFailed = false;
          failures = 0;
        }
        const done: number[] = [];
        let failed = false;
        const groups = new Map<number, OutboxItem[]>();
        for (const r of rows) {
          const idx = fnv1a(r.lane) % this.lanes.length;
          let g = groups.get(idx);
          if (!g) {
            g = [];
            groups.set(idx, g);
          }
          g.push(r);
        }
        await Promise.all(
          [...groups.values()].map(async (g) => {
            for (const r of g) {
              if (failed || this.closed) return;
              const out = await this.send(r, 0);
              if (out === 'unavailable') {
                failed = true;
                return;
              }
              done.push(r.seq);
            }
          }),
        );
        this.deps.outbox.remove(done);
        if (failed) {
          lastFailed = true;
          await this.pause(backoffMs(failures++, 250, 10_000));
        }
      }
    } catch (e) {
      this.deps.log.error({ err: (e as Error).message }, 'Odoo outbox drain failed; retrying in 5 s');
      if (!this.closed) setTimeout(() => this.kickDrain(), 5000).unref();
    } finally {
      this.draining = false;
    }
  }

  // ---------------------------------------------------------------- events map

  /** Replace the events map with rows as returned by search_read. Bad rows are skipped (warned once). */
  setEventsMap(rows: unknown[]): { loaded: number; skipped: number } {
    const map = compileEventsMap(rows, (row) => {
      if (row.badCondition) this.deps.metrics?.conditionsRejected.inc();
      this.warnOnce(row.key, row.fields, row.message);
    });
    this.ami = map.ami;
    this.fagi = map.fagi;
    return { loaded: map.loaded, skipped: map.skipped };
  }

  private warnOnce(key: string, obj: object, msg: string): void {
    if (this.warnedConditions.has(key)) return;
    if (this.warnedConditions.size > 10_000) this.warnedConditions.clear();
    this.warnedConditions.add(key);
    this.deps.log.warn(obj, msg);
  }

  /** Download the events map from Odoo now (and cache it locally). */
  async reloadEvents(): Promise<{ loaded: number; skipped: number }> {
    const rows = await this.deps.rpc.executeKw('asterisk_plus.event', 'search_read', [EVENTS_MAP_DOMAIN], { fields: EVENTS_MAP_FIELDS });
    if (!Array.isArray(rows)) throw new Error('asterisk_plus.event search_read did not return a list');
    const r = this.setEventsMap(rows);
    this.mapLoaded = true;
    try {
      this.deps.outbox.setState(EVENTS_MAP_STATE_KEY, JSON.stringify(rows));
    } catch {
      /* cache only */
    }
    this.deps.log.info({ handlers: r.loaded, skipped: r.skipped }, 'events map downloaded from Odoo');
    return r;
  }

  /** Load the map now (retrying with backoff until it works), then refresh periodically. */
  startRefresh(): void {
    let failures = 0;
    const attempt = async (): Promise<void> => {
      if (this.closed) return;
      try {
        await this.reloadEvents();
        failures = 0;
        this.refreshTimer = setTimeout(() => void attempt(), this.deps.config.eventsRefreshMs);
      } catch (e) {
        const backoff = backoffMs(failures++, 1000, 60_000);
        this.deps.log.warn({ err: (e as Error).message, retryInMs: backoff }, 'cannot download the events map from Odoo; retrying');
        this.refreshTimer = setTimeout(() => void attempt(), backoff);
      }
      this.refreshTimer?.unref();
    };
    void attempt();
  }

  fagiHandlers(script: string): EventHandler[] {
    return this.fagi.get(script) ?? [];
  }

  hasMap(): boolean {
    return this.mapLoaded || this.ami.size > 0 || this.fagi.size > 0;
  }

  stats(): { mode: string; memory: number; delayed: number; inflight: number; outbox: number } {
    return { mode: this.mode, memory: this.memCount, delayed: this.delayed.size, inflight: this.inflight.size, outbox: this.deps.outbox.count() };
  }

  /** Resolves when nothing is waiting in memory, in flight, delayed, or in the outbox. For tests and benchmarks. */
  async whenIdle(timeoutMs = 30_000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (
        this.memCount === 0 &&
        this.inflight.size === 0 &&
        this.delayed.size === 0 &&
        this.pendingWrites.length === 0 &&
        this.deps.outbox.count() === 0 &&
        this.mode === 'direct' &&
        !this.lanes.some((l) => l.busy)
      )
        return true;
      await new Promise((r) => setTimeout(r, 5));
    }
    return false;
  }

  /** Stop: delayed, queued and in-flight calls are written to the outbox (sent on next start). */
  async close(graceMs = 2000): Promise<void> {
    if (this.closed) return;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    // give in-flight calls a moment to finish
    const end = Date.now() + graceMs;
    while (this.inflight.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    this.closed = true;
    if (this.wake) this.wake();
    for (const { timer, item } of this.delayed.values()) {
      clearTimeout(timer);
      item.seq = ++this.seq;
      this.pendingWrites.push(item);
    }
    this.delayed.clear();
    for (const l of this.lanes) this.pendingWrites.push(...l.q.drainAll());
    this.memCount = 0;
    // still in flight after the grace period: keep them (at-least-once; Odoo may see a duplicate)
    this.pendingWrites.push(...this.inflight);
    this.flushWrites();
  }
}

/**
 * When the event happened, in unix seconds as the module's `convert_unixtime` takes them (a JSON
 * number: `utcfromtimestamp` refuses a string): Asterisk's own `Timestamp` header when
 * manager.conf has `timestampevents = yes`, else the moment the frame reached the bridge (the AMI
 * fan-out is synchronous, so that is its arrival), to the millisecond.
 */
export function eventTime(timestamp: string | undefined, nowMs: number): number {
  if (timestamp !== undefined) {
    const t = Number(timestamp);
    // a value before 2000 or more than a day ahead is a broken header or clock: use our own
    if (Number.isFinite(t) && t >= 946_684_800 && t * 1000 <= nowMs + 86_400_000) return t;
  }
  return Math.round(nowMs) / 1000;
}
