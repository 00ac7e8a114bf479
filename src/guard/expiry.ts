import type { BanRecord } from './types.js';

/** bans ended per turn of the event loop by the timer's sweep (the rest in the next turns): an
 *  end costs ~30 µs (store write, unban, log line, subscribers), so a turn stays under ~10 ms */
export const SWEEP_TURN_MAX = 250;

/**
 * The active bans' ends in time order (a binary min-heap), so the sweep each second costs the
 * bans that end, not a walk of every active ban (~9 ms a second at 1M, 29 ms at worst, bench/scale.ts).
 * Entries are never removed when a ban is replaced or lifted early: a popped entry counts only when
 * it is still the target's active record (`isCurrent`); the heap is rebuilt from the active bans
 * when such stale entries would make it more than twice their number.
 */
export class ExpiryQueue {
  private heap: BanRecord[] = [];

  constructor(private readonly isCurrent: (rec: BanRecord) => boolean) {}

  get size(): number {
    return this.heap.length;
  }

  /** Records a new active ban, once it is in `active` (a permanent one never ends: not queued). */
  add(rec: BanRecord, activeCount: number, active: () => Iterable<BanRecord>): void {
    if (rec.expiresAt === null) return;
    // the rebuild takes rec from `active`: pushing it again would end it twice
    if (this.heap.length >= 2 * activeCount + 4096) return this.rebuild(active());
    this.heap.push(rec);
    this.up(this.heap.length - 1);
  }

  /** Removes and returns up to `limit` current bans whose end is at or before `now`, soonest first. */
  due(now: number, limit: number): BanRecord[] {
    const out: BanRecord[] = [];
    const h = this.heap;
    while (h.length && out.length < limit && h[0]!.expiresAt! <= now) {
      const top = h[0]!;
      const last = h.pop()!;
      if (h.length) {
        h[0] = last;
        this.down(0);
      }
      if (this.isCurrent(top)) out.push(top);
    }
    return out;
  }

  /** true when a current ban ends at or before `now` (after due(), when the limit cut it short) */
  pending(now: number): boolean {
    return this.heap.length > 0 && this.heap[0]!.expiresAt! <= now;
  }

  rebuild(active: Iterable<BanRecord>): void {
    this.heap = [];
    for (const r of active) if (r.expiresAt !== null) this.heap.push(r);
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private up(i: number): void {
    const h = this.heap;
    const x = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.expiresAt! <= x.expiresAt!) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = x;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const x = h[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && h[c + 1]!.expiresAt! < h[c]!.expiresAt!) c++;
      if (h[c]!.expiresAt! >= x.expiresAt!) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = x;
  }
}

/**
 * Runs `sweep` every `intervalMs`; when it reports more ends due than one turn took
 * (SWEEP_TURN_MAX), the next turn follows at once (setImmediate), so 100k bans ending in the same
 * second cost many short turns, not one long stall. Returns the stop function.
 */
export function startSweep(sweep: () => boolean, intervalMs: number): () => void {
  let stopped = false;
  let running = false;
  const turn = (): void => {
    if (stopped) return;
    if (sweep()) setImmediate(turn);
    else running = false;
  };
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    turn();
  }, intervalMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** Bans in force at `now` by family, counted without copying (a gauge reads it). */
export function countInForce(active: Iterable<BanRecord>, now: number): { v4: number; v6: number } {
  let v4 = 0;
  let v6 = 0;
  for (const r of active) {
    if (r.expiresAt !== null && r.expiresAt <= now) continue;
    if (r.family === 4) v4++;
    else v6++;
  }
  return { v4, v6 };
}
