import type { Logger } from 'pino';
import type { FirewallBackend, FirewallBatch, FirewallEntry, FirewallTarget } from './types.js';
import { confirmed, driftBetween, safeKey } from './drift.js';
import { checkTarget } from './target.js';
import { applyIsolating, type Refusal } from './isolate.js';

export type { Refusal } from './isolate.js';

export interface FirewallConfig {
  backend: 'auto' | 'nftables' | 'ipset' | 'memory';
  /** nftables table name (family inet) */
  table: string;
  verdict: 'drop' | 'reject';
  /** ports the ban applies to (TCP and UDP); empty = all ports */
  ports: number[];
  nftMode: 'auto' | 'addon' | 'command';
  /** ipset maxelem, and the size of the nftables address sets */
  ipsetMaxElem: number;
  ipsetPrefix: string;
  batchWindowMs: number;
  batchMaxSize: number;
  reconcileIntervalMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
}

export const defaultFirewallConfig: FirewallConfig = {
  backend: 'auto',
  table: 'pbx_guardian',
  verdict: 'drop',
  ports: [],
  nftMode: 'auto',
  ipsetMaxElem: 1048576,
  ipsetPrefix: 'pbxg',
  batchWindowMs: 2,
  batchMaxSize: 10000,
  reconcileIntervalMs: 300000,
  retryInitialMs: 1000,
  retryMaxMs: 60000,
};

export interface EnforcerHooks {
  onApplied?(adds: number, removes: number, ms: number): void;
  onDrift?(added: number, removed: number): void;
  onFailure?(err: Error, attempt: number): void;
  onRecovered?(): void;
  /** the kernel refused one element; the rest of its transaction was applied */
  onRefused?(refusal: Refusal): void;
}

export interface EnforcerOptions {
  /** bound on queued, not yet applied operations (oldest dropped beyond it); default 1,000,000 */
  maxPending?: number;
  /** clock, for tests */
  now?: () => number;
}


/** The kernel refused this element (see Refusal); the ban stays in the store and reconcile
 *  tries it again. */
export class FirewallRefusedError extends Error {
  constructor(readonly refusal: Refusal) {
    super(`the kernel refused ${refusal.op === 'add' ? 'to add' : 'to remove'} ${refusal.target}: ${refusal.error.message}`);
    this.name = 'FirewallRefusedError';
  }
}

export class EnforcerStoppedError extends Error {
  constructor() {
    super('firewall enforcer stopped before this change was applied');
    this.name = 'EnforcerStoppedError';
  }
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

type Op = { kind: 'add'; entry: FirewallEntry; waiters: Waiter[] } | { kind: 'remove'; target: FirewallTarget; waiters: Waiter[] };

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Sits between the guard's decisions and a FirewallBackend:
 * - batches ban/unban calls arriving within batchWindowMs (or up to batchMaxSize) into one
 *   backend transaction; the last operation on a target wins;
 * - restores everything the store says is active in one transaction at start and after recovery;
 * - reconciles periodically (re-adds missing elements with their remaining timeout, re-asserts
 *   drifted timeouts, removes elements the store does not know);
 * - on failure keeps a bounded queue, reports, and retries with exponential backoff; it never
 *   throws at detection.
 * All backend calls are serialised.
 */
export class Enforcer {
  private readonly pending = new Map<string, Op>();
  private readonly maxPending: number;
  private readonly now: () => number;
  private windowTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private reconcileTimer: NodeJS.Timeout | null = null;
  private draining = false;
  private failing = false;
  private attempt = 0;
  private stopped = false;
  private droppedSinceLog = 0;
  /** targets refused before (bounded): a repeat refusal is logged at debug level only */
  private readonly refusedBefore = new Set<string>();
  private allow: FirewallTarget[] | null = null;
  private lock: Promise<unknown> = Promise.resolve();
  private drainDone: Promise<void> = Promise.resolve();

  constructor(
    private readonly backend: FirewallBackend,
    private readonly activeEntries: () => FirewallEntry[],
    private readonly config: FirewallConfig,
    private readonly logger: Logger,
    private readonly hooks: EnforcerHooks = {},
    options: EnforcerOptions = {},
  ) {
    this.maxPending = Math.max(1, options.maxPending ?? 1_000_000);
    this.now = options.now ?? Date.now;
  }

  get healthy(): boolean {
    return !this.failing;
  }

  /** number of queued operations not yet applied */
  get queued(): number {
    return this.pending.size;
  }

  get backendName(): string {
    return this.backend.name;
  }

  async start(): Promise<void> {
    try {
      await this.serial(() => this.setupAndRestore());
      this.logger.info({ backend: this.backend.name }, 'firewall enforcement ready');
    } catch (err) {
      this.fail(toError(err), 'start');
    }
    if (this.config.reconcileIntervalMs > 0 && !this.stopped) {
      this.reconcileTimer = setInterval(() => {
        if (!this.healthy || this.stopped) return;
        this.reconcile().catch((err: unknown) => this.logger.warn({ err: toError(err) }, 'firewall reconcile failed'));
      }, this.config.reconcileIntervalMs);
      this.reconcileTimer.unref();
    }
  }

  ban(entry: FirewallEntry): Promise<void> {
    let key: string;
    try {
      key = checkTarget(entry).target;
    } catch (err) {
      return Promise.reject(err);
    }
    return this.enqueue(key, (waiters) => ({ kind: 'add', entry: { ...entry, target: key }, waiters }));
  }

  unban(target: FirewallTarget): Promise<void> {
    let key: string;
    try {
      key = checkTarget(target).target;
    } catch (err) {
      return Promise.reject(err);
    }
    return this.enqueue(key, (waiters) => ({
      kind: 'remove',
      target: { target: key, family: target.family, isNetwork: target.isNetwork },
      waiters,
    }));
  }

  async setAllow(targets: FirewallTarget[]): Promise<void> {
    const clean = targets.map((t) => {
      const c = checkTarget(t);
      return { target: c.target, family: c.family, isNetwork: c.isNetwork };
    });
    this.allow = clean;
    if (this.stopped) throw new EnforcerStoppedError();
    if (this.failing) return; // re-applied on recovery
    try {
      await this.serial(() => this.backend.setAllow(clean));
    } catch (err) {
      this.fail(toError(err), 'setAllow');
    }
  }

  async reconcile(): Promise<{ added: number; removed: number }> {
    if (this.stopped) throw new EnforcerStoppedError();
    return this.serial(async () => {
      const drift = async () => {
        const inKernel = await this.backend.list();
        return driftBetween(this.activeEntries(), inKernel, this.now(), this.backend.maxTimeoutMs);
      };
      let batch = await drift();
      // A dump of a large kernel hash set can repeat some elements and leave out others while the
      // kernel resizes the set (seen with 60k elements just after they were added): repair only
      // what a second listing confirms.
      if (batch.add.length || batch.remove.length) batch = confirmed(batch, await drift());
      if (batch.add.length || batch.remove.length) {
        const t0 = performance.now();
        const refused = await this.applyBatch(batch, 'reconcile');
        const added = batch.add.length - refused.filter((r) => r.op === 'add').length;
        const removed = batch.remove.length - refused.filter((r) => r.op === 'remove').length;
        this.hooks.onApplied?.(added, removed, performance.now() - t0);
        this.logger.warn({ added, removed }, 'firewall drift repaired: the kernel sets differed from the active bans');
        this.hooks.onDrift?.(added, removed);
        return { added, removed };
      }
      return { added: 0, removed: 0 };
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of [this.windowTimer, this.retryTimer]) if (t) clearTimeout(t);
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.windowTimer = this.retryTimer = this.reconcileTimer = null;
    await this.drainDone;
    if (!this.failing && this.pending.size > 0) {
      try {
        await this.drainOnce(Number.MAX_SAFE_INTEGER);
      } catch (err) {
        this.logger.error({ err: toError(err) }, 'firewall: queued bans could not be applied at stop');
      }
    }
    const err = new EnforcerStoppedError();
    for (const op of this.pending.values()) for (const w of op.waiters) w.reject(err);
    this.pending.clear();
    await this.lock.catch(() => undefined);
    try {
      await this.backend.close();
    } catch (e) {
      this.logger.warn({ err: toError(e) }, 'firewall backend close failed');
    }
  }

  // ---------------------------------------------------------------- internals

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async setupAndRestore(): Promise<void> {
    const t0 = performance.now();
    await this.backend.setup();
    const now = this.now();
    const add: FirewallEntry[] = [];
    for (const e of this.activeEntries()) {
      if (e.expiresAt !== null && e.expiresAt <= now) continue;
      const key = safeKey(e);
      if (!key) {
        this.logger.warn({ target: String(e.target).slice(0, 80) }, 'firewall restore: skipping an invalid stored target');
        continue;
      }
      add.push({ ...e, target: key });
    }
    const refused = await this.applyBatch({ add, remove: [] }, 'restore');
    this.dropRefused(refused);
    if (this.allow) await this.backend.setAllow(this.allow);
    const ms = performance.now() - t0;
    const restored = add.length - refused.length;
    this.hooks.onApplied?.(restored, 0, ms);
    this.logger.info({ backend: this.backend.name, restored, refused: refused.length, ms: Math.round(ms) }, 'firewall: active bans restored');
  }

  private enqueue(key: string, make: (waiters: Waiter[]) => Op): Promise<void> {
    if (this.stopped) return Promise.reject(new EnforcerStoppedError());
    return new Promise<void>((resolve, reject) => {
      const prev = this.pending.get(key);
      const waiters = prev ? prev.waiters : [];
      waiters.push({ resolve, reject });
      if (prev) this.pending.delete(key);
      else if (this.pending.size >= this.maxPending) this.dropOldest();
      this.pending.set(key, make(waiters));
      this.schedule();
    });
  }

  private dropOldest(): void {
    const first = this.pending.keys().next();
    if (first.done) return;
    const op = this.pending.get(first.value)!;
    this.pending.delete(first.value);
    // The store keeps the truth: the restore run on recovery re-asserts every active ban.
    for (const w of op.waiters) w.resolve();
    if (this.droppedSinceLog++ === 0 || this.droppedSinceLog % 100000 === 0) {
      this.logger.error(
        { maxPending: this.maxPending, dropped: this.droppedSinceLog },
        'firewall queue full while enforcement is failing: dropping the oldest queued change (the restore on recovery re-applies all active bans)',
      );
    }
  }

  private schedule(): void {
    if (this.failing || this.stopped || this.draining) return;
    if (this.pending.size >= this.config.batchMaxSize) {
      if (this.windowTimer) clearTimeout(this.windowTimer);
      this.windowTimer = null;
      this.startDrain();
      return;
    }
    if (!this.windowTimer) {
      this.windowTimer = setTimeout(() => {
        this.windowTimer = null;
        this.startDrain();
      }, Math.max(0, this.config.batchWindowMs));
    }
  }

  private startDrain(): void {
    if (this.draining || this.failing || this.stopped) return;
    this.draining = true;
    this.drainDone = (async () => {
      try {
        while (this.pending.size > 0 && !this.failing && !this.stopped) {
          await this.drainOnce(this.config.batchMaxSize);
        }
      } catch {
        // fail() already handled it
      } finally {
        this.draining = false;
      }
      // work that arrived while the last batch ran (within its window) goes next
      if (this.pending.size > 0) this.schedule();
    })();
  }

  /** Applies up to `max` queued operations in one transaction. On failure puts them back and
   *  enters the failing state (then rethrows). */
  private async drainOnce(max: number): Promise<void> {
    const ops: [string, Op][] = [];
    for (const [key, op] of this.pending) {
      ops.push([key, op]);
      if (ops.length >= max) break;
    }
    for (const [key] of ops) this.pending.delete(key);
    const batch: FirewallBatch = { add: [], remove: [] };
    for (const [, op] of ops) {
      if (op.kind === 'add') batch.add.push(op.entry);
      else batch.remove.push(op.target);
    }
    try {
      const t0 = performance.now();
      await this.serial(() => this.backend.apply(batch));
      this.hooks.onApplied?.(batch.add.length, batch.remove.length, performance.now() - t0);
      for (const [, op] of ops) for (const w of op.waiters) w.resolve();
    } catch (err) {
      // put back what was not superseded meanwhile (a newer op on the same key wins)
      for (const [key, op] of ops) {
        const newer = this.pending.get(key);
        if (newer) newer.waiters.unshift(...op.waiters);
        else this.pending.set(key, op);
      }
      this.fail(toError(err), 'apply');
      throw err;
    }
  }

  /** Queued adds of elements the restore found refused: they would fail every batch again. */
  private dropRefused(refused: Refusal[]): void {
    for (const r of refused) {
      const op = this.pending.get(r.target);
      if (op?.kind !== 'add') continue;
      this.pending.delete(r.target);
      for (const w of op.waiters) w.reject(new FirewallRefusedError(r));
    }
  }

  /** One transaction; when the kernel refuses it, the elements it refuses are set aside (logged,
   *  reported) and the rest applied (see isolate.ts). Throws when the backend itself fails. */
  private async applyBatch(batch: FirewallBatch, during: string): Promise<Refusal[]> {
    const refused = await applyIsolating(this.backend, batch);
    for (const r of refused) {
      const first = !this.refusedBefore.has(r.target);
      if (first && this.refusedBefore.size < 10_000) this.refusedBefore.add(r.target);
      const msg = `firewall (${during}): the kernel refused ${r.op === 'add' ? 'to add' : 'to remove'} ${r.target}: ${r.error.message}. It is set aside and the rest of the transaction applied; the ban stays in the store and reconcile tries it again`;
      if (first) this.logger.error({ target: r.target, op: r.op, err: r.error }, msg);
      else this.logger.debug({ target: r.target, op: r.op }, msg);
      try {
        this.hooks.onRefused?.(r);
      } catch {
        /* a hook never breaks enforcement */
      }
    }
    return refused;
  }

  private fail(err: Error, during: string): void {
    this.attempt++;
    const wasHealthy = !this.failing;
    this.failing = true;
    const delay = Math.min(this.config.retryMaxMs, this.config.retryInitialMs * 2 ** Math.min(this.attempt - 1, 30));
    const msg = `firewall enforcement failed (${during}, backend ${this.backend.name}): ${err.message}. New bans are queued (${this.pending.size} pending) and detection goes on; retrying in ${delay} ms`;
    if (wasHealthy || this.attempt <= 3 || this.attempt % 10 === 0) this.logger.error({ err, attempt: this.attempt }, msg);
    try {
      this.hooks.onFailure?.(err, this.attempt);
    } catch {
      /* a hook never breaks enforcement */
    }
    if (this.stopped) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.retry();
    }, delay);
  }

  private async retry(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.drainDone;
      await this.serial(() => this.setupAndRestore());
    } catch (err) {
      this.fail(toError(err), 'recovery');
      return;
    }
    const attempts = this.attempt;
    this.failing = false;
    this.attempt = 0;
    if (this.droppedSinceLog > 0) {
      this.logger.warn({ dropped: this.droppedSinceLog }, 'firewall: queued changes were dropped during the outage; the restore re-applied the active bans');
      this.droppedSinceLog = 0;
    }
    this.logger.info({ backend: this.backend.name, attempts }, 'firewall enforcement recovered');
    try {
      this.hooks.onRecovered?.();
    } catch {
      /* ignore */
    }
    if (this.pending.size > 0) this.schedule();
  }
}
