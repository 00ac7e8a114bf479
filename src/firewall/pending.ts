import type { Logger } from 'pino';
import { FirewallRefusedError } from './enforcer-config.js';
import type { Refusal } from './isolate.js';
import type { FirewallBatch, FirewallEntry, FirewallTarget } from './types.js';

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** seenAt: FirewallEntry.seenAt, kept beside the entry so backends never see it */
export type Op = { kind: 'add'; entry: FirewallEntry; seenAt?: number; waiters: Waiter[] } | { kind: 'remove'; target: FirewallTarget; waiters: Waiter[] };
export type NewOp = { kind: 'add'; entry: FirewallEntry; seenAt?: number } | { kind: 'remove'; target: FirewallTarget };

/**
 * The enforcer's queue of changes not yet applied, one per target (the last operation on a
 * target wins and inherits the earlier callers), bounded: beyond `max` the oldest is dropped.
 * Not a BoundedQueue (src/common/bounded-queue.ts): it is keyed by target, coalesces, takes an
 * entry out of the middle (dropRefused) and puts a batch back in front of newer ones (putBack);
 * a Map in insertion order does all of that in O(1) per change.
 */
export class PendingOps {
  private readonly ops = new Map<string, Op>();
  /** dropped since the last recovery (the caller logs and resets it) */
  dropped = 0;

  constructor(
    private readonly max: number,
    private readonly logger: Logger,
  ) {}

  get size(): number {
    return this.ops.size;
  }

  /** Queues `op` on `key`; resolves once it is applied (or superseded and that one applied). */
  put(key: string, op: NewOp): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const prev = this.ops.get(key);
      const waiters = prev ? prev.waiters : [];
      waiters.push({ resolve, reject });
      if (prev) this.ops.delete(key);
      else if (this.ops.size >= this.max) this.dropOldest();
      this.ops.set(key, { ...op, waiters } as Op);
    });
  }

  private dropOldest(): void {
    const first = this.ops.keys().next();
    if (first.done) return;
    const op = this.ops.get(first.value)!;
    this.ops.delete(first.value);
    // The store keeps the truth: the restore run on recovery re-asserts every active ban.
    for (const w of op.waiters) w.resolve();
    if (this.dropped++ === 0 || this.dropped % 100000 === 0) {
      this.logger.error(
        { maxPending: this.max, dropped: this.dropped },
        'firewall queue full while enforcement is failing: dropping the oldest queued change (the restore on recovery re-applies all active bans)',
      );
    }
  }

  /** Takes up to `max` operations, oldest first, and their batch. */
  take(max: number): { ops: [string, Op][]; batch: FirewallBatch } {
    const ops: [string, Op][] = [];
    for (const entry of this.ops) {
      ops.push(entry);
      if (ops.length >= max) break;
    }
    for (const [key] of ops) this.ops.delete(key);
    const batch: FirewallBatch = { add: [], remove: [] };
    for (const [, op] of ops) {
      if (op.kind === 'add') batch.add.push(op.entry);
      else batch.remove.push(op.target);
    }
    return { ops, batch };
  }

  /** Puts back what was taken and not superseded meanwhile (a newer op on the same key wins). */
  putBack(ops: [string, Op][]): void {
    for (const [key, op] of ops) {
      const newer = this.ops.get(key);
      if (newer) newer.waiters.unshift(...op.waiters);
      else this.ops.set(key, op);
    }
  }

  /** Queued adds of elements the restore found refused: they would fail every batch again. */
  dropRefused(refused: Refusal[]): void {
    for (const r of refused) {
      const op = this.ops.get(r.target);
      if (op?.kind !== 'add') continue;
      this.ops.delete(r.target);
      for (const w of op.waiters) w.reject(new FirewallRefusedError(r));
    }
  }

  /** Ends every queued operation: resolved (the store keeps the truth) or rejected with `err`. */
  settleAll(err?: Error): void {
    for (const op of this.ops.values())
      for (const w of op.waiters) {
        if (err) w.reject(err);
        else w.resolve();
      }
    this.ops.clear();
  }
}
