/**
 * The guardian as a LAPI bouncer: it follows GET /v1/decisions/stream (a full answer at start and
 * after any failure, then deltas every `interval`) and keeps the fleet's set in step. Each remote
 * decision is judged first (decision.ts: the allow-list and the scope limits always win, our own
 * bans coming back are not enforced twice); a target held by several decisions stays until the
 * last one is deleted or expires.
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { backoffMs } from '../net/backoff.js';
import type { FirewallEntry } from '../firewall/index.js';
import { rawStreamSplit, SPLIT_MIN_BYTES } from './stream-split.js';
import { decisionsOf, judge, rawStream, shown, targetOf, type FleetJudge, type FleetTarget, type LapiDecision, type RawStream } from './decision.js';

/** the set port the bouncer fills (RemoteSet) */
export interface FleetSetPort {
  put(entry: FirewallEntry): void;
  delete(target: string): void;
  replace(list: Iterable<FirewallEntry>): void;
}

export type SkipReason = 'type' | 'scope' | 'value' | 'allowed' | 'refused' | 'own' | 'cap' | 'malformed';
const SKIP_REASONS: readonly SkipReason[] = ['type', 'scope', 'value', 'allowed', 'refused', 'own', 'cap', 'malformed'];

export interface BouncerOptions {
  stream(startup: boolean): Promise<string>;
  set: FleetSetPort;
  judge: FleetJudge;
  intervalMs: number;
  maxDecisions: number;
  maxBackoffMs: number;
  logger: Logger;
  registry?: Registry;
  now?: () => number;
  /** called once after the first full answer was applied (the set's kernel start) */
  onFirstSync?: () => Promise<void>;
}

export interface BouncerHealth {
  enabled: true;
  state: 'starting' | 'ok' | 'failing' | 'stopped';
  /** remote decisions enforced now (targets in the fleet's set) */
  decisions: number;
  lastPollAt: number | null;
  lastSuccessAt: number | null;
  failingSince: number | null;
  lastError: string | null;
  skipped: Record<SkipReason, number>;
}

/** one target: its decisions' ids and ends, and whether it is in the set */
interface Held {
  ids: Map<number, number>;
  enforced: boolean;
  /** allow-listed or refused by the scope limits (judged when its first decision came) */
  refused: boolean;
  t: FleetTarget;
}

/** decisions checked between two turns of the event loop (a 100k startup answer is 20 turns) */
const CHUNK = 5000;
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

/** skip counts are logged at most this often */
const SKIP_LOG_MS = 60_000;

export class FleetBouncer {
  private readonly held = new Map<string, Held>();
  private enforced = 0;
  private needFull = true;
  private synced = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private running: Promise<void> = Promise.resolve();
  private failures = 0;
  private lastPollAt: number | null = null;
  private lastSuccessAt: number | null = null;
  private failingSince: number | null = null;
  private lastError: string | null = null;
  private readonly skipped = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
  private skippedSinceLog = 0;
  private lastSkipMessage = '';
  private lastSkipLog = 0;
  private readonly now: () => number;
  private readonly m: ReturnType<typeof metricsOf>;

  constructor(private readonly opts: BouncerOptions) {
    this.now = opts.now ?? Date.now;
    this.m = metricsOf(opts.registry);
  }

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One poll now (tests, the bench); resolves when its answer is applied or has failed. */
  poll(): Promise<void> {
    const run = this.running.then(() => this.tick());
    this.running = run.catch(() => undefined);
    return run;
  }

  /** The allow-list or the guard's bans changed: judge every held decision again. */
  rejudge(): void {
    for (const [target, h] of this.held) {
      h.refused = this.refusedNow(h);
      this.settle(target, h);
    }
    this.m.decisions.set(this.enforced);
  }

  health(): BouncerHealth {
    const state = this.stopped ? 'stopped' : this.failingSince !== null ? 'failing' : this.synced ? 'ok' : 'starting';
    return {
      enabled: true,
      state,
      decisions: this.enforced,
      lastPollAt: this.lastPollAt,
      lastSuccessAt: this.lastSuccessAt,
      failingSince: this.failingSince,
      lastError: this.lastError,
      skipped: { ...this.skipped },
    };
  }

  /** the decisions held for one target (the `why` command, tests) */
  decisionsOf(target: string): Array<{ id: number; expiresAt: number }> | undefined {
    const h = this.held.get(target);
    return h && [...h.ids].map(([id, expiresAt]) => ({ id, expiresAt }));
  }

  // ---------------------------------------------------------------- internals

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.poll().then(
        () => this.schedule(this.opts.intervalMs),
        () => this.schedule(backoffMs(this.failures, this.opts.intervalMs, Math.max(this.opts.intervalMs, this.opts.maxBackoffMs))),
      );
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const full = this.needFull;
    this.lastPollAt = this.now();
    try {
      // a large answer is parsed in slices (stream-split.ts), its decisions checked in chunks: no long stall
      const text = await this.opts.stream(full);
      const raw = text.length < SPLIT_MIN_BYTES ? rawStream(text) : await rawStreamSplit(text, nextTurn);
      if (full) await this.applyFull(raw);
      else await this.applyDelta(raw);
      this.needFull = false;
      this.failures = 0;
      this.lastSuccessAt = this.now();
      if (this.failingSince !== null) this.opts.logger.info('fleet: the decisions stream answers again');
      this.failingSince = null;
      this.lastError = null;
      this.m.polls.inc({ result: full ? 'full' : 'delta' });
      this.m.up.set(1);
      this.m.lastSuccess.set(this.lastSuccessAt / 1000);
      if (!this.synced) {
        this.synced = true;
        await this.opts.onFirstSync?.();
      }
    } catch (err) {
      // what this poll carried is unknown now: the next one asks for the whole list again
      this.needFull = true;
      this.failures++;
      const message = (err as Error).message.slice(0, 300);
      if (this.failingSince === null) {
        this.failingSince = this.now();
        this.opts.logger.warn({ err }, `fleet: the decisions stream failed (${message}); retrying with backoff, the fleet's set is kept as it is`);
      }
      this.lastError = message;
      this.m.polls.inc({ result: 'failed' });
      this.m.up.set(0);
      throw err;
    } finally {
      this.logSkips();
    }
  }

  /** The whole list: what it holds, judged, replaces the set. */
  private async applyFull(raw: RawStream): Promise<void> {
    const now = this.now();
    this.held.clear();
    await this.each(raw.new, (d) => void this.hold(d, now));
    const list: FirewallEntry[] = [];
    for (const [target, h] of this.held) {
      h.enforced = !h.refused && h.ids.size > 0;
      if (h.enforced) list.push(entryOf(target, h));
    }
    this.enforced = list.length;
    this.opts.set.replace(list);
    this.m.decisions.set(this.enforced);
  }

  private async applyDelta(raw: RawStream): Promise<void> {
    const now = this.now();
    const touched = new Set<string>();
    await this.each(raw.deleted, (d) => {
      const t = targetOf(d);
      if ('skip' in t) return;
      if (this.held.get(t.target)?.ids.delete(d.id)) touched.add(t.target);
    });
    await this.each(raw.new, (d) => {
      const target = this.hold(d, now);
      if (target) touched.add(target);
    });
    for (const target of touched) {
      const h = this.held.get(target);
      if (!h) continue;
      if (h.ids.size === 0) this.held.delete(target);
      this.settle(target, h);
    }
    this.m.decisions.set(this.enforced);
  }

  /** Every decision of a raw list, CHUNK at a time, yielding between chunks. */
  private async each(raw: unknown[], fn: (d: LapiDecision) => void): Promise<void> {
    for (let i = 0; i < raw.length; i += CHUNK) {
      if (i > 0) await nextTurn();
      const ds: LapiDecision[] = [];
      this.skip('malformed', decisionsOf(raw, i, i + CHUNK, ds));
      for (const d of ds) fn(d);
    }
  }

  /** Puts the target in the set or takes it out, as its decisions and judgement say now. */
  private settle(target: string, h: Held): void {
    const want = !h.refused && h.ids.size > 0;
    if (want) {
      if (!h.enforced) this.enforced++;
      h.enforced = true;
      this.opts.set.put(entryOf(target, h));
    } else if (h.enforced) {
      h.enforced = false;
      this.enforced--;
      this.opts.set.delete(target);
    }
  }

  /** Keeps decision `d` under its target; the target, or null when it is not a ban we can hold. */
  private hold(d: LapiDecision, now: number): string | null {
    const t = targetOf(d);
    if ('skip' in t) {
      this.skip(t.skip, 1);
      return null;
    }
    if (d.durationMs <= 0) return null;
    let h = this.held.get(t.target);
    if (!h) {
      if (this.held.size >= this.opts.maxDecisions) {
        this.skip('cap', 1);
        return null;
      }
      h = { ids: new Map(), enforced: false, refused: false, t };
      this.held.set(t.target, h);
    }
    // judged per decision for the own-ban check (it needs the decision's scenario and end)
    const v = judge(d, t, this.opts.judge, now);
    if (!v.enforce) {
      this.skip(v.why === 'scope' ? 'refused' : v.why, 1);
      this.lastSkipMessage = `${shown(d.value)}: ${v.message}`;
      if (v.why === 'own') {
        if (h.ids.size === 0 && !h.enforced) this.held.delete(t.target);
        return null;
      }
      h.refused = true;
    }
    h.ids.set(d.id, now + d.durationMs);
    return t.target;
  }

  /** allow-list and scope only (our own bans were dropped per decision in hold) */
  private refusedNow(h: Held): boolean {
    const j = this.opts.judge;
    return j.allowed(h.t.net) !== null || j.scopeRefusal(h.t.net) !== null;
  }

  private skip(reason: SkipReason, n: number): void {
    if (n <= 0) return;
    this.skipped[reason] += n;
    this.skippedSinceLog += n;
    this.m.skipped.inc({ reason }, n);
  }

  private logSkips(): void {
    const now = this.now();
    if (this.skippedSinceLog === 0 || now - this.lastSkipLog < SKIP_LOG_MS) return;
    this.opts.logger.info(
      { skipped: this.skipped, last: this.lastSkipMessage },
      `fleet: ${this.skippedSinceLog} remote decisions not enforced since the last report (by reason: see skipped; the last: ${this.lastSkipMessage})`,
    );
    this.skippedSinceLog = 0;
    this.lastSkipLog = now;
  }
}

function entryOf(target: string, h: Held): FirewallEntry {
  let end = 0;
  for (const e of h.ids.values()) end = Math.max(end, e);
  return { target, family: h.t.family, isNetwork: h.t.isNetwork, expiresAt: end };
}

function metricsOf(registry: Registry | undefined) {
  const registers = registry ? [registry] : [];
  const polls = new Counter({
    name: 'pbx_guardian_fleet_stream_polls_total',
    help: 'decisions stream polls, by result (full, delta, failed)',
    labelNames: ['result'],
    registers,
  });
  for (const result of ['full', 'delta', 'failed']) polls.inc({ result }, 0);
  const skipped = new Counter({
    name: 'pbx_guardian_fleet_decisions_skipped_total',
    help: 'remote decisions not enforced, by reason (allowed, refused by the scope limits, own, cap, type, scope, value, malformed)',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of SKIP_REASONS) skipped.inc({ reason }, 0);
  return {
    polls,
    skipped,
    decisions: new Gauge({ name: 'pbx_guardian_fleet_decisions', help: "remote decisions enforced in the fleet's set", registers }),
    up: new Gauge({ name: 'pbx_guardian_fleet_bouncer_up', help: 'the last decisions stream poll succeeded (1) or failed (0)', registers }),
    lastSuccess: new Gauge({
      name: 'pbx_guardian_fleet_stream_last_success_timestamp_seconds',
      help: 'when the decisions stream last answered (unix seconds)',
      registers,
    }),
  };
}
