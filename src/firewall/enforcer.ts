import type { Logger } from 'pino';
import type { FirewallBackend, FirewallBatch, FirewallEntry, FirewallHealth, FirewallTarget, RepairReport } from './types.js';
import { confirmedDrift, restoreEntries, safeKey } from './drift.js';
import { checkTarget } from './target.js';
import { applyReporting, type Refusal, type RefusalLog } from './isolate.js';
import { DEFAULT_WATCHDOG_INTERVAL_MS, EnforcerStoppedError, type EnforcerHooks, type EnforcerOptions, type FirewallConfig } from './enforcer-config.js';
import { Watchdog } from './watchdog.js';
import { PendingOps, type NewOp } from './pending.js';
import { backoffMs } from '../net/backoff.js';
import { RESTORE_CHUNK, RestoreProgress } from './restore.js';

/** live operations during one reconcile past which it repairs nothing (the next one does) */
const RECONCILE_TOUCHED_MAX = 1_000_000;

export type { Refusal } from './isolate.js';
export * from './enforcer-config.js';

function cleanTargets(targets: FirewallTarget[]): FirewallTarget[] {
  return targets.map((t) => {
    const c = checkTarget(t);
    return { target: c.target, family: c.family, isNetwork: c.isNetwork };
  });
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Sits between the guard's decisions and a FirewallBackend:
 * - batches ban/unban calls arriving within batchWindowMs (or up to batchMaxSize) into one
 *   backend transaction; the last operation on a target wins;
 * - restores everything the store says is active at start, after recovery and after a watchdog
 *   repair (in transactions of RESTORE_CHUNK elements, yielding to the event loop between them);
 * - reconciles periodically (re-adds missing elements with their remaining timeout, re-asserts
 *   drifted timeouts, removes elements the store does not know);
 * - on failure keeps a bounded queue, reports, and retries with exponential backoff; it never
 *   throws at detection;
 * - runs the watchdog (watchdog.ts), which repairs our table when someone else removes it;
 * - pauses on purpose (pbx-guardian flush): the table is removed, bans are still decided and
 *   stored, nothing is repaired until resume() (or a restart) re-creates and re-fills it.
 * All backend calls are serialised.
 */
export class Enforcer {
  private readonly pending: PendingOps;
  private readonly now: () => number;
  private readonly activeCount: () => number;
  private windowTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private reconcileTimer: NodeJS.Timeout | null = null;
  private draining = false;
  private failing = false;
  private attempt = 0;
  private stopped = false;
  private readonly refusals: RefusalLog;
  private started = false;
  private paused: string | null = null;
  private lastSuccessAt: number | null = null;
  private lastError: { message: string; at: number } | null = null;
  private kernelCount: { n: number; at: number } | null = null;
  private readonly watchdog: Watchdog | null;
  private readonly watchdogIntervalMs: number;
  private allow: FirewallTarget[] | null = null;
  private lock: Promise<unknown> = Promise.resolve();
  private reconciling: Promise<{ added: number; removed: number }> | null = null;
  /** targets a live ban or unban was queued for while a reconcile runs (left out of its repair) */
  private reconcileTouched: Set<string> | null = null;
  private drainDone: Promise<void> = Promise.resolve();
  /** the start's restore while it runs (begin()) */
  private restoring: RestoreProgress | null = null;
  private restoreDone: Promise<void> = Promise.resolve();
  private begun = false;

  constructor(
    private readonly backend: FirewallBackend,
    private readonly activeEntries: () => FirewallEntry[],
    private readonly config: FirewallConfig,
    private readonly logger: Logger,
    private readonly hooks: EnforcerHooks = {},
    options: EnforcerOptions = {},
  ) {
    this.pending = new PendingOps(Math.max(1, options.maxPending ?? 1_000_000), logger);
    this.now = options.now ?? Date.now;
    this.activeCount = options.activeCount ?? (() => this.activeEntries().length);
    this.refusals = { logger, seen: new Set(), onRefused: (r) => hooks.onRefused?.(r) };
    this.watchdogIntervalMs = options.watchdogIntervalMs ?? DEFAULT_WATCHDOG_INTERVAL_MS;
    this.watchdog = backend.inspect
      ? new Watchdog({
          backend,
          logger,
          whileEnforcing: (fn) => this.serial(async () => (this.enforcing ? fn() : null)),
          restore: () => this.setupAndRestore(),
          repairFailed: (err) => this.fail(err, 'watchdog repair'),
          counted: (n) => (this.kernelCount = { n, at: this.now() }),
          onRepaired: (r) => hooks.onRepaired?.(r),
        })
      : null;
  }

  private get enforcing(): boolean {
    return this.started && !this.failing && !this.stopped && this.paused === null;
  }

  /** The firewall part of the health report. */
  health(): FirewallHealth {
    const state = this.stopped ? 'stopped' : this.paused !== null ? 'paused' : !this.started ? 'starting' : this.failing ? 'failing' : 'enforcing';
    return {
      backend: this.backend.name,
      dryRun: this.backend.name === 'memory',
      state,
      pausedReason: this.paused,
      tablePresent: this.paused !== null ? false : (this.watchdog?.tablePresent ?? null),
      kernelElements: this.kernelCount?.n ?? null,
      kernelCountedAt: this.kernelCount?.at ?? null,
      storeActive: this.activeCount(),
      queued: this.pending.size,
      lastSuccessAt: this.lastSuccessAt,
      lastError: this.lastError,
      repairs: this.watchdog?.repairs ?? 0,
      restoring: this.restoring ? { done: this.restoring.done, total: this.restoring.total } : null,
    };
  }

  /** One watchdog check now (tests, benchmarks): the repair's report, or null when all was in place. */
  checkNow(): Promise<RepairReport | null> {
    return this.watchdog ? this.watchdog.tick() : Promise.resolve(null);
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

  /** the firewall path in use: nftables-addon, nftables-command, ipset, memory-dry-run (or unavailable) */
  get backendPath(): string {
    const b = this.backend;
    return b.path ?? (b.name === 'memory' ? 'memory-dry-run' : b.name);
  }

  /** Sets the kernel up and restores every active ban; resolves once all are in (begin(), then restored()). */
  async start(allow?: FirewallTarget[]): Promise<void> {
    await this.begin(allow);
    await this.restored();
  }

  /**
   * Sets the kernel up (table, sets, the allow set: `allow`, or the last setAllow()) and starts restoring the active bans in
   * transactions of RESTORE_CHUNK elements, each under the lock on its own: a ban or unban that
   * arrives meanwhile reaches the kernel between two chunks (milliseconds), not after a million
   * (restore.ts says how the chunks stay right). Resolves once the kernel is set up; restored()
   * once the restore has ended. The watchdog and reconcile start after it: they would take the
   * elements not yet restored for drift.
   */
  async begin(allow?: FirewallTarget[]): Promise<void> {
    if (this.begun) return;
    this.begun = true;
    try {
      if (allow) this.allow = cleanTargets(allow);
    } catch (err) {
      this.logger.error({ err: toError(err) }, 'allow set not applied');
    }
    const progress = new RestoreProgress(performance.now(), (target) => this.invalidStored(target));
    let setUp = false;
    try {
      await this.serial(async () => {
        await this.backend.setup();
        // the allow set before any ban: an allowed address is never dropped by a restored one
        if (this.allow) await this.backend.setAllow(this.allow);
        if (this.watchdog) this.watchdog.tablePresent = true; // our own setup just made it
        // from here on a live ban or unban is newer than the snapshot
        this.restoring = progress;
        progress.snapshot = this.activeEntries();
      });
      setUp = true;
    } catch (err) {
      if (this.restoring === progress) this.restoring = null;
      this.fail(toError(err), 'start');
    }
    this.restoreDone = (setUp ? this.restoreInChunks(progress) : Promise.resolve()).then(() => this.running());
  }

  /** Resolves once the start's restore has ended: all in, or cut short (a failure, a pause, stop()). */
  restored(): Promise<void> {
    return this.restoreDone;
  }

  private running(): void {
    this.started = true;
    if (this.stopped) return;
    if (!this.failing) this.logger.info({ backend: this.backend.name }, 'firewall enforcement ready');
    this.watchdog?.start(this.watchdogIntervalMs);
    if (this.config.reconcileIntervalMs > 0) {
      this.reconcileTimer = setInterval(() => {
        if (!this.enforcing) return;
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
    const { seenAt, ...rest } = entry;
    return this.enqueue(key, { kind: 'add', entry: { ...rest, target: key }, seenAt });
  }

  unban(target: FirewallTarget): Promise<void> {
    let key: string;
    try {
      key = checkTarget(target).target;
    } catch (err) {
      return Promise.reject(err);
    }
    return this.enqueue(key, { kind: 'remove', target: { target: key, family: target.family, isNetwork: target.isNetwork } });
  }

  async setAllow(targets: FirewallTarget[]): Promise<void> {
    const clean = cleanTargets(targets);
    this.allow = clean;
    if (this.stopped) throw new EnforcerStoppedError();
    if (this.failing || this.paused !== null) return; // re-applied on recovery / resume
    try {
      await this.serial(async () => {
        // a reload after our table was removed repairs it (the repair applies the allow set too)
        if (await this.watchdog?.checkLocked('setAllow')) return;
        await this.backend.setAllow(clean);
        this.lastSuccessAt = this.now();
      });
    } catch (err) {
      this.fail(toError(err), 'setAllow');
    }
  }

  /**
   * Stops enforcing on purpose (pbx-guardian flush): removes our table / sets / rules; the watchdog
   * does not repair it, reconcile does not run, new bans are stored by the guard only. resume()
   * or a restart enforces again.
   */
  async pause(reason: string): Promise<void> {
    if (this.stopped) throw new EnforcerStoppedError();
    const before = this.paused;
    this.paused = reason;
    try {
      await this.serial(() => this.backend.flush());
    } catch (err) {
      this.paused = before;
      throw err;
    }
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.failing = false;
    this.attempt = 0;
    this.pending.settleAll();
    this.kernelCount = { n: 0, at: this.now() };
    this.logger.warn(
      { reason, backend: this.backend.name },
      `firewall enforcement paused (${reason}): pbx-guardian's table / sets are removed and nothing is banned in the kernel; detection goes on and new bans are stored. pbx-guardian resume (or a restart) enforces again`,
    );
  }

  /** Ends a pause: re-creates the table and re-fills it from the store. `resumed` is false when
   *  it was not paused. Rejects (and retries with backoff) when the backend fails. */
  async resume(): Promise<{ resumed: boolean; restored: number }> {
    if (this.stopped) throw new EnforcerStoppedError();
    if (this.paused === null) return { resumed: false, restored: 0 };
    this.paused = null;
    try {
      const restored = await this.serial(() => this.setupAndRestore());
      this.logger.info({ restored }, `firewall enforcement resumed: ${restored} bans back in the kernel`);
      return { resumed: true, restored };
    } catch (err) {
      this.fail(toError(err), 'resume');
      throw err;
    }
  }

  /**
   * Lists the kernel sets and works out the drift (drift.ts) outside the lock: a large set takes
   * seconds to dump and to compare, and bans and unbans go on meanwhile. Under the lock, the
   * repair leaves out every target a live ban or unban was queued for since the reconcile began:
   * that operation is newer than the listing and the snapshot of the active bans, and it puts
   * the target right itself (an address banned again is never removed, an unbanned one never
   * re-added). One reconcile at a time: a second call while one runs gets its result.
   */
  reconcile(): Promise<{ added: number; removed: number }> {
    if (this.stopped) return Promise.reject(new EnforcerStoppedError());
    if (this.paused !== null) return Promise.resolve({ added: 0, removed: 0 });
    this.reconciling ??= this.reconcileOnce().finally(() => (this.reconciling = null));
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<{ added: number; removed: number }> {
    const none = { added: 0, removed: 0 };
    const touched = new Set<string>();
    this.reconcileTouched = touched;
    try {
      const { batch: found, after } = await confirmedDrift(
        () => this.backend.list(),
        () => this.activeEntries(),
        this.now,
        this.backend.maxTimeoutMs,
      );
      return await this.serial(async () => {
        this.reconcileTouched = null;
        // paused or stopped meanwhile: the kernel is not to be filled again
        if (this.paused !== null || this.stopped) return none;
        if (touched.size > RECONCILE_TOUCHED_MAX) return none; // a storm meanwhile: the next one repairs
        const untouched = (t: FirewallTarget) => !touched.has(safeKey(t) ?? t.target);
        const batch = touched.size ? { add: found.add.filter(untouched), remove: found.remove.filter(untouched) } : found;
        this.kernelCount = { n: after, at: this.now() };
        this.lastSuccessAt = this.now();
        if (!batch.add.length && !batch.remove.length) return none;
        const t0 = performance.now();
        const refused = await this.applyBatch(batch, 'reconcile');
        const added = batch.add.length - refused.filter((r) => r.op === 'add').length;
        const removed = batch.remove.length - refused.filter((r) => r.op === 'remove').length;
        this.hooks.onApplied?.(added, removed, performance.now() - t0);
        this.logger.warn({ added, removed }, 'firewall drift repaired: the kernel sets differed from the active bans');
        this.hooks.onDrift?.(added, removed);
        return { added, removed };
      });
    } finally {
      if (this.reconcileTouched === touched) this.reconcileTouched = null;
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of [this.windowTimer, this.retryTimer]) if (t) clearTimeout(t);
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.windowTimer = this.retryTimer = this.reconcileTimer = null;
    this.watchdog?.stop();
    await this.drainDone;
    if (!this.failing && this.pending.size > 0) {
      try {
        await this.drainOnce(Number.MAX_SAFE_INTEGER);
      } catch (err) {
        this.logger.error({ err: toError(err) }, 'firewall: queued bans could not be applied at stop');
      }
    }
    this.pending.settleAll(new EnforcerStoppedError());
    await this.reconciling?.catch(() => undefined); // its listings run outside the lock
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

  private invalidStored(target: string): void {
    this.logger.warn({ target: target.slice(0, 80) }, 'firewall restore: skipping an invalid stored target');
  }

  /** The start's restore, one chunk per turn of the lock (begin()). */
  private async restoreInChunks(p: RestoreProgress): Promise<void> {
    const goesOn = () => this.restoring === p && !this.stopped && !this.failing && this.paused === null;
    try {
      do {
        await this.serial(async () => {
          if (!goesOn()) return;
          const chunk = p.next(this.now());
          const refused = await this.applyBatch({ add: chunk, remove: [] }, 'restore');
          this.pending.dropRefused(refused);
          p.restored += chunk.length - refused.length;
          p.refused += refused.length;
        });
      } while (goesOn() && !p.finished);
    } catch (err) {
      this.fail(toError(err), 'start');
    }
    if (!goesOn()) return; // a repair or recovery restored everything meanwhile, or it stopped
    this.restoring = null;
    const ms = performance.now() - p.startedAt;
    this.hooks.onApplied?.(p.restored, 0, ms);
    this.lastSuccessAt = this.now();
    this.kernelCount = { n: p.restored, at: this.lastSuccessAt };
    this.logger.info({ backend: this.backend.name, restored: p.restored, refused: p.refused, ms: Math.round(ms) }, 'firewall: active bans restored');
  }

  /** resolves the number of elements restored (under the lock: a repair, a recovery, a resume) */
  private async setupAndRestore(): Promise<number> {
    const t0 = performance.now();
    await this.backend.setup();
    // a start's restore in chunks ends here: this one holds everything
    this.restoring = null;
    const add = await restoreEntries(this.activeEntries(), this.now(), (target) => this.invalidStored(target));
    // in transactions of RESTORE_CHUNK elements, the event loop running between them: a repair runs
    // while the AMI socket must be read. Measured at 100k on a loaded 2-core host: one transaction
    // stalled the loop 0.8-3 s (building its script), 5,000-element ones 20-40 ms at most (GC included)
    const refused: Refusal[] = [];
    for (let i = 0; i === 0 || i < add.length; i += RESTORE_CHUNK)
      refused.push(...(await this.applyBatch({ add: add.slice(i, i + RESTORE_CHUNK), remove: [] }, 'restore')));
    this.pending.dropRefused(refused);
    if (this.allow) await this.backend.setAllow(this.allow);
    const ms = performance.now() - t0;
    const restored = add.length - refused.length;
    this.hooks.onApplied?.(restored, 0, ms);
    this.lastSuccessAt = this.now();
    this.kernelCount = { n: restored, at: this.lastSuccessAt };
    if (this.watchdog) this.watchdog.tablePresent = true; // our own setup just made it
    this.logger.info({ backend: this.backend.name, restored, refused: refused.length, ms: Math.round(ms) }, 'firewall: active bans restored');
    return restored;
  }

  private enqueue(key: string, op: NewOp): Promise<void> {
    if (this.stopped) return Promise.reject(new EnforcerStoppedError());
    if (this.paused !== null) return Promise.resolve(); // stored by the guard; resume() restores it
    this.restoring?.touch(key);
    if (this.reconcileTouched && this.reconcileTouched.size <= RECONCILE_TOUCHED_MAX) this.reconcileTouched.add(key);
    const done = this.pending.put(key, op);
    this.schedule();
    return done;
  }

  private schedule(): void {
    if (this.failing || this.stopped || this.draining || this.paused !== null) return;
    if (this.pending.size >= this.config.batchMaxSize) {
      if (this.windowTimer) clearTimeout(this.windowTimer);
      this.windowTimer = null;
      this.startDrain();
      return;
    }
    if (!this.windowTimer) {
      this.windowTimer = setTimeout(
        () => {
          this.windowTimer = null;
          this.startDrain();
        },
        Math.max(0, this.config.batchWindowMs),
      );
    }
  }

  private startDrain(): void {
    if (this.draining || this.failing || this.stopped) return;
    this.draining = true;
    this.drainDone = (async () => {
      try {
        while (this.pending.size > 0 && !this.failing && !this.stopped && this.paused === null) {
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
    const { ops, batch } = this.pending.take(max);
    try {
      const t0 = performance.now();
      await this.serial(() => this.backend.apply(batch));
      this.lastSuccessAt = this.now();
      const t1 = performance.now();
      this.hooks.onApplied?.(batch.add.length, batch.remove.length, t1 - t0);
      const latency = this.hooks.onBanLatency;
      for (const [, op] of ops) {
        if (latency && op.kind === 'add' && op.seenAt !== undefined) latency((t1 - op.seenAt) / 1000);
        for (const w of op.waiters) w.resolve();
      }
    } catch (err) {
      this.pending.putBack(ops);
      if (this.paused !== null) return this.pending.settleAll(); // flushed on purpose meanwhile: the store keeps them
      // our table was removed under us: repair it, and these go again (the loop drains them)
      if (await this.repairedAfterFailure()) return;
      this.fail(toError(err), 'apply');
      throw err;
    }
  }

  private async repairedAfterFailure(): Promise<boolean> {
    if (!this.watchdog || !this.enforcing) return false;
    try {
      return (await this.serial(() => this.watchdog!.checkLocked('apply'))) !== null;
    } catch {
      return false;
    }
  }

  /** One transaction; the elements the kernel refuses are set aside (see isolate.ts). */
  private applyBatch(batch: FirewallBatch, during: string): Promise<Refusal[]> {
    return applyReporting(this.backend, batch, during, this.refusals);
  }

  private fail(err: Error, during: string): void {
    if (this.paused !== null) return; // nothing is enforced on purpose: no retry
    this.lastError = { message: err.message, at: this.now() };
    this.attempt++;
    const wasHealthy = !this.failing;
    this.failing = true;
    const delay = backoffMs(this.attempt - 1, this.config.retryInitialMs, this.config.retryMaxMs);
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
    if (this.pending.dropped > 0) {
      this.logger.warn({ dropped: this.pending.dropped }, 'firewall: queued changes were dropped during the outage; the restore re-applied the active bans');
      this.pending.dropped = 0;
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
