import type { FirewallEntry } from './types.js';
import { safeKey } from './drift.js';

/** elements per restore transaction */
export const RESTORE_CHUNK = 5_000;

/**
 * The start's restore, run in chunks with the enforcer's lock released between them: what is
 * done, and the targets a live ban or unban changed meanwhile. Such a target's own operation is
 * newer than the snapshot the restore works from, so its chunk leaves it out: an unban or an
 * expiry that arrives before the target's chunk is applied is not undone by the chunk, and a new
 * ban of it keeps its own timeout.
 */
export class RestoreProgress {
  /** elements of the snapshot handled (applied, left out or refused) */
  done = 0;
  /** elements the kernel took */
  restored = 0;
  refused = 0;
  private readonly touched = new Set<string>();
  /** the active bans when the restore began (each chunk checks its own targets: the kernel is
   *  live sooner than after a check of a million); changes from then on are touched */
  snapshot: FirewallEntry[] = [];

  constructor(
    readonly startedAt: number,
    private readonly invalid: (target: string) => void,
  ) {}

  get total(): number {
    return this.snapshot.length;
  }

  get finished(): boolean {
    return this.done >= this.snapshot.length;
  }

  /** A live operation on this (canonical) target was queued. */
  touch(target: string): void {
    this.touched.add(target);
  }

  /** The next chunk, canonical, less the targets changed meanwhile, the bans that ran out since
   *  the snapshot and invalid stored targets (reported). */
  next(now: number): FirewallEntry[] {
    const end = Math.min(this.done + RESTORE_CHUNK, this.snapshot.length);
    const out: FirewallEntry[] = [];
    for (let i = this.done; i < end; i++) {
      const e = this.snapshot[i]!;
      if (e.expiresAt !== null && e.expiresAt <= now) continue;
      const key = safeKey(e);
      if (key === null) this.invalid(String(e.target));
      else if (!this.touched.has(key)) out.push(key === e.target ? e : { ...e, target: key });
    }
    this.done = end;
    return out;
  }
}
