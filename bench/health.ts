/**
 * What a health report costs with many bans: `pbx-guardian status` (GET /health) and every
 * Prometheus scrape judge every part now, on the event loop. Figures: daemon.health() and a full
 * registry scrape with 100k active bans (memory backend, AMI off), median and max of N runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { startDaemon } from '../src/main.js';
import { Store } from '../src/store/index.js';
import type { BenchResult } from './types.js';

const TARGET_MS = 20;

function stats(xs: number[]): { median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! };
}

export async function run(opts: { bans?: number; runs?: number } = {}): Promise<BenchResult[]> {
  const bans = opts.bans ?? 100_000;
  const runs = opts.runs ?? 30;
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-bench-health-'));
  try {
    const stateDir = join(dir, 'state');
    const seed = Store.open(stateDir);
    const now = Date.now();
    for (let i = 0; i < bans; i++) {
      const target = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      seed.saveBan(
        { target, family: 4, isNetwork: false, createdAt: now, expiresAt: now + 3600_000, rule: 'bench', source: 'manual', reason: 'bench', count: 1 },
        false,
      );
    }
    seed.close();
    const config = buildConfig({
      stateDir,
      logLevel: 'silent',
      ami: { enabled: false },
      firewall: { backend: 'memory' },
      admin: { socket: join(dir, 'admin.sock') },
      metrics: { enabled: false },
    });
    const d = await startDaemon({ config, backend: new MemoryBackend(), logger: pino({ level: 'silent' }), adminSocket: false });
    try {
      const healthMs: number[] = [];
      const scrapeMs: number[] = [];
      const enforcerMs: number[] = [];
      let report = d.health();
      for (let i = 0; i < runs; i++) {
        let t0 = performance.now();
        report = d.health();
        healthMs.push(performance.now() - t0);
        await new Promise((r) => setImmediate(r));
        t0 = performance.now();
        await d.metrics.registry.metrics();
        scrapeMs.push(performance.now() - t0);
        await new Promise((r) => setImmediate(r));
        t0 = performance.now();
        d.enforcer.health();
        enforcerMs.push(performance.now() - t0);
        await new Promise((r) => setImmediate(r));
      }
      const active = report.parts.find((p) => p.part === 'firewall')!.detail.storeActive;
      const h = stats(healthMs);
      const s = stats(scrapeMs);
      const e = stats(enforcerMs);
      const round = (x: number) => Math.round(x * 100) / 100;
      return [
        {
          name: `daemon.health() with ${bans.toLocaleString('en-US')} active bans, median`,
          value: round(h.median),
          unit: 'ms',
          target: `<= ${TARGET_MS}`,
          ok: h.median <= TARGET_MS,
          note: `max ${round(h.max)} ms over ${runs} runs; ${String(active)} bans seen by the firewall part`,
        },
        {
          name: `of which Enforcer.health() (the firewall snapshot), median`,
          value: round(e.median),
          unit: 'ms',
          note: `max ${round(e.max)} ms; storeActive is a count (Guardian.activeCounts), no entry is built`,
        },
        {
          name: `full metrics scrape (health gauges included) with ${bans.toLocaleString('en-US')} active bans, median`,
          value: round(s.median),
          unit: 'ms',
          note: `max ${round(s.max)} ms over ${runs} runs (prom-client default metrics included)`,
        },
      ];
    } finally {
      await d.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
