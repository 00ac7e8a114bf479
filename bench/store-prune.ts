/**
 * The ban history prune on a big history: N ended rows older than the retention (default 1M) and
 * N/10 recent ones between them in a real SQLite file (WAL, as the daemon opens it), then one HistoryPruner
 * run. Reports the longest single chunk (what the event loop waits at most) and the whole run;
 * an interval timer meanwhile measures the event loop's worst delay. Target: a chunk p50 ≤ 5 ms.
 * Run: node dist/bench/store-prune.js [rows] [chunkRows]   (NO_CHECKPOINT=1: no WAL autocheckpoint,
 * to tell the chunk's own work from the checkpoint SQLite adds to a commit every ~4 MB of changes)
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { HistoryPruner, PRUNE_CHUNK_ROWS, Store } from '../src/store/index.js';
import type { BenchResult } from './types.js';

const DAY = 86_400_000;

export async function run(opts: { rows?: number; chunkRows?: number } = {}): Promise<BenchResult[]> {
  const rows = opts.rows ?? 1_000_000;
  const chunkRows = opts.chunkRows ?? PRUNE_CHUNK_ROWS;
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-prune-'));
  try {
    const store = Store.open(dir);
    const now = Date.now();
    const ins = store.db.prepare(`INSERT INTO ban_history (target, created_at, expires_at, rule, source, reason, count, ended_at, end_reason)
      VALUES (?, ?, ?, 'auth-failure', 'rule', 'auth-failure: 5 failures in 10m', 5, ?, 'expired')`);
    // one recent row after every 10 old ones, as a history of addresses banned again and again is
    // (a prune then frees scattered pages, not one run of them)
    const total = rows + Math.floor(rows / 10);
    const fill = store.db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const at = (i % 11 === 10 ? now - 10 * DAY : now - 200 * DAY) + i;
        ins.run(`10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`, at, at + 3_600_000, at + 3_600_000);
      }
    });
    for (let i = 0; i < total; i += 100_000) fill(i, Math.min(total, i + 100_000));
    store.db.pragma('wal_checkpoint(TRUNCATE)');
    const sizeMb = statSync(join(dir, 'guardian.sqlite')).size / 1e6;

    const times: number[] = [];
    if (process.env.NO_CHECKPOINT) store.db.pragma('wal_autocheckpoint = 0');
    const pruner = new HistoryPruner(store.db, { retentionMs: 90 * DAY, chunkRows });
    const chunk = pruner.pruneChunk.bind(pruner);
    pruner.pruneChunk = (cutoff) => {
      const t = performance.now();
      const n = chunk(cutoff);
      times.push(performance.now() - t);
      return n;
    };
    let worstLag = 0;
    let last = performance.now();
    const lag = setInterval(() => {
      const t = performance.now();
      worstLag = Math.max(worstLag, t - last - 1);
      last = t;
    }, 1);
    const t0 = performance.now();
    const deleted = await pruner.run();
    const ms = performance.now() - t0;
    clearInterval(lag);
    const kept = store.totalBans();
    store.close();
    if (deleted !== rows || kept !== Math.floor(rows / 10)) throw new Error(`deleted ${deleted} of ${rows}, kept ${kept}`);
    times.sort((a, b) => a - b);
    const at = (q: number) => +times[Math.min(times.length - 1, Math.floor(q * times.length))]!.toFixed(2);
    const worstChunk = times.at(-1)!;
    const chunks = times.length;
    const note = `${rows} old + ${rows / 10} recent rows, ${sizeMb.toFixed(0)} MB file, chunks of ${chunkRows}`;
    return [
      { name: 'history prune: chunk p50', value: at(0.5), unit: 'ms', target: '<= 5', ok: at(0.5) <= 5, note: `${chunks} chunks; ${note}` },
      {
        name: 'history prune: chunk p99',
        value: at(0.99),
        unit: 'ms',
        note: 'the top 1% are the chunks that carry a WAL checkpoint (NO_CHECKPOINT=1 shows it without)',
      },
      {
        name: 'history prune: longest chunk',
        value: +worstChunk.toFixed(2),
        unit: 'ms',
        note: 'includes the WAL checkpoints every ~4 MB of changes (an fsync), as any write does',
      },
      { name: 'history prune: event loop worst delay', value: +worstLag.toFixed(2), unit: 'ms', note: 'a 1 ms interval timer during the run' },
      { name: 'history prune: whole run', value: +(ms / 1000).toFixed(2), unit: 's', note },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [rows, chunkRows] = process.argv.slice(2).map(Number);
  for (const r of await run({ rows: rows || undefined, chunkRows: chunkRows || undefined }))
    console.log(`${r.name}: ${r.value} ${r.unit}${r.target ? ` (target ${r.target}: ${r.ok ? 'ok' : 'NOT MET'})` : ''} — ${r.note ?? ''}`);
}
