/**
 * Ban history retention: rows of bans that ended longer ago than the retention are deleted, a
 * chunk per event-loop turn, so a first prune of millions of rows never stalls the AMI socket.
 * Active bans (ended_at NULL) are never touched. Escalation and recidive look back over
 * created_at, and created_at <= ended_at, so as long as the retention is at least their lookback
 * (checked in the config) no row they count is deleted.
 */
import type { Database, Statement } from 'better-sqlite3';

/**
 * rows per DELETE. 1,000 rows take ~1 ms (p50; 3.7 ms when few addresses were banned again and
 * again) in a 166 MB file of 1.1M rows on a loaded 2-CPU VM (bench/store-prune.ts, docs/store.md);
 * the WAL checkpoint that SQLite adds to a commit every ~4 MB of changes (an fsync, as for any
 * write) makes its chunk 8-20 ms. 1M old rows go in ~1.2 s.
 */
export const PRUNE_CHUNK_ROWS = 1_000;
/** a prune runs this long after the start (not during the restore) and then every interval */
export const PRUNE_FIRST_DELAY_MS = 60_000;
export const PRUNE_INTERVAL_MS = 3_600_000;

export interface HistoryPruneOptions {
  /** ended rows older than this go; 0 keeps the history forever */
  retentionMs: number;
  chunkRows?: number;
  firstDelayMs?: number;
  intervalMs?: number;
  now?: () => number;
  /** after a run that deleted rows */
  onPruned?: (rows: number, chunks: number) => void;
  onError?: (err: Error) => void;
}

export class HistoryPruner {
  private readonly chunk: Statement;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  private stopped = false;

  constructor(
    db: Database,
    private readonly opts: HistoryPruneOptions,
  ) {
    this.chunk = db.prepare(`DELETE FROM ban_history WHERE id IN
      (SELECT id FROM ban_history WHERE ended_at IS NOT NULL AND ended_at < ? LIMIT ?)`);
  }

  /** Deletes at most one chunk of rows that ended before `cutoff`; returns how many. */
  pruneChunk(cutoff: number): number {
    return this.chunk.run(cutoff, this.opts.chunkRows ?? PRUNE_CHUNK_ROWS).changes;
  }

  /** One prune: chunks until none is left, yielding to the event loop between them. */
  run(): Promise<number> {
    this.running ??= this.runChunks().finally(() => (this.running = null));
    return this.running;
  }

  private async runChunks(): Promise<number> {
    if (this.opts.retentionMs <= 0) return 0;
    const cutoff = (this.opts.now ?? Date.now)() - this.opts.retentionMs;
    const size = this.opts.chunkRows ?? PRUNE_CHUNK_ROWS;
    let rows = 0;
    let chunks = 0;
    for (;;) {
      if (this.stopped) break;
      const n = this.pruneChunk(cutoff);
      rows += n;
      chunks++;
      if (n < size) break;
      await new Promise<void>((r) => setImmediate(r));
    }
    if (rows > 0) this.opts.onPruned?.(rows, chunks);
    return rows;
  }

  /** Runs after firstDelayMs, then every intervalMs (timers do not keep the process alive). */
  start(): void {
    if (this.opts.retentionMs <= 0 || this.timer) return;
    const tick = () => {
      this.run().catch((err: Error) => this.opts.onError?.(err));
    };
    this.timer = setTimeout(() => {
      tick();
      this.timer = setInterval(tick, this.opts.intervalMs ?? PRUNE_INTERVAL_MS);
      this.timer.unref();
    }, this.opts.firstDelayMs ?? PRUNE_FIRST_DELAY_MS);
    this.timer.unref();
  }

  /** Stops the timer; a run under way ends after its current chunk. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer); // clears an interval too
    this.timer = null;
  }
}
