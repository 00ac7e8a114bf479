/**
 * The memory that running jobs may hold at once (odoo.jobMemoryMaxBytes): a job reserves what it
 * is about to buffer, waits in turn when the budget is used up, and fails with a clear error when
 * its wait ends or when it alone needs more than the whole budget. Never more than the budget is
 * granted, so concurrent jobs fail one by one instead of taking the daemon down.
 */
import { JobError } from './job-error.js';

export interface Reservation {
  readonly bytes: number;
  /** gives back what was reserved beyond `bytes` (a conversion turned out smaller) */
  shrink(bytes: number): void;
  /** idempotent */
  release(): void;
}

interface Waiter {
  bytes: number;
  grant: (r: Reservation) => void;
}

export class ByteBudget {
  private used = 0;
  private readonly waiters: Waiter[] = [];

  /** `key` names the setting in error messages */
  constructor(
    readonly capacity: number,
    private readonly key = 'odoo.jobMemoryMaxBytes',
  ) {}

  inUse(): number {
    return this.used;
  }

  /** Resolves with a reservation of `bytes`, or rejects with a JobError after `timeoutMs`. */
  acquire(bytes: number, timeoutMs: number, what: string): Promise<Reservation> {
    if (bytes > this.capacity) {
      return Promise.reject(
        new JobError(`${what} needs ${bytes} bytes of memory, more than ${this.key} (${this.capacity}): raise ${this.key} or lower the file size limit`),
      );
    }
    if (this.waiters.length === 0 && this.used + bytes <= this.capacity) return Promise.resolve(this.grant(bytes));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        bytes,
        grant: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(
          new JobError(
            `${what}: no memory for it within ${timeoutMs} ms (${bytes} bytes needed, ${this.used} of ${this.key}=${this.capacity} held by other jobs); try again later`,
          ),
        );
        this.wake();
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  private grant(bytes: number): Reservation {
    this.used += bytes;
    let held = bytes;
    const r: Reservation = {
      get bytes() {
        return held;
      },
      shrink: (to) => {
        if (to < held) {
          this.used -= held - Math.max(0, to);
          held = Math.max(0, to);
          this.wake();
        }
      },
      release: () => {
        if (held > 0) {
          this.used -= held;
          held = 0;
          this.wake();
        }
      },
    };
    return r;
  }

  /** first come, first served: a large request is not starved by small ones behind it */
  private wake(): void {
    while (this.waiters.length > 0 && this.used + this.waiters[0]!.bytes <= this.capacity) {
      const w = this.waiters.shift()!;
      w.grant(this.grant(w.bytes));
    }
  }
}
