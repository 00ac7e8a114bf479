/**
 * Ban latency as pbx_guardian_ban_latency_seconds reports it (failure received → kernel
 * transaction done), through the whole daemon: an AMI simulator replays the recorded SIP brute
 * force from one new address at a time (5 failures: one ban each), the daemon bans through
 * nftables (the addon, then the nft command), and the figures are read from the daemon's own
 * histogram. Cross-check: the wall time from writing an attacker's last failure to the socket to
 * its element being listed in the kernel set, measured outside the daemon.
 * Needs root; runs in a private network namespace (the host's ruleset is never touched).
 *   node dist/bench/ban-latency.js
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { BenchResult } from './types.js';
import { childRowsInNetns, skipReason } from './firewall.js';
import { buildConfig } from '../src/config/index.js';
import { NftablesBackend } from '../src/firewall/nftables.js';
import { NftCommandRunner } from '../src/firewall/nft-command.js';
import { createAddonRunner } from '../src/firewall/nft-addon.js';
import { startDaemon } from '../src/main.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';
import { loadTemplate, replayBytes } from '../src/demo/attack.js';
import { PACKAGE_ROOT } from '../src/paths.js';

const SELF = fileURLToPath(import.meta.url);
const ATTACKERS = 200;
const GAP_MS = 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** the smallest bucket bound holding fraction q of the samples (what histogram_quantile rounds up to) */
function bucketQuantile(buckets: Array<{ le: number; n: number }>, count: number, q: number): number {
  for (const b of buckets) if (b.n >= q * count) return b.le;
  return Infinity;
}

async function one(kind: 'addon' | 'command', out: BenchResult[]): Promise<void> {
  const runner = kind === 'addon' ? createAddonRunner() : new NftCommandRunner('/usr/sbin/nft');
  if (!runner) {
    out.push({ name: `ban latency (nft ${kind}): skipped`, value: 0, unit: '-', note: 'addon not built' });
    return;
  }
  const table = `pbxg_banlat_${kind}`;
  const backend = new NftablesBackend(runner, { table, verdict: 'drop', ports: [], size: 65536 });
  const fixtures = join(PACKAGE_ROOT, 'test', 'fixtures', 'ami');
  const template = loadTemplate(fixtures, 'security-sip-register-wrong-password.raw');
  const sim = new AmiSimulator({ fixturesDir: fixtures, username: 'guardian', secret: 's' });
  await sim.listen();
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-banlat-'));
  const config = buildConfig({
    stateDir: dir,
    logLevel: 'silent',
    ami: { port: sim.port, secret: 's' },
    firewall: { backend: 'nftables', table },
    metrics: { enabled: false },
  });
  const daemon = await startDaemon({ config, backend, logger: pino({ level: 'silent' }), adminSocket: false });
  const wall: number[] = [];
  try {
    const t0 = Date.now();
    while (daemon.ami?.state !== 'connected') {
      if (Date.now() - t0 > 10_000) throw new Error('AMI login timed out');
      await sleep(10);
    }
    for (let i = 0; i < ATTACKERS; i++) {
      const address = `198.18.${i >> 8}.${(i & 255) + 1}`;
      for (let k = 0; k < 4; k++) sim.broadcast(replayBytes(template, address));
      await sleep(2);
      const sent = performance.now();
      sim.broadcast(replayBytes(template, address));
      // the cross-check, outside the daemon: until the element is in the kernel set
      for (;;) {
        const present = (await backend.list()).some((e) => e.target === address);
        if (present) break;
        if (performance.now() - sent > 5000) throw new Error(`${address} not banned within 5 s`);
      }
      wall.push(performance.now() - sent);
      await sleep(GAP_MS);
    }
    const info = /^pbx_guardian_build_info\{[^}]*backend="([^"]+)"\} 1$/m.exec(await daemon.metrics.registry.metrics())?.[1] ?? 'none';
    out.push({
      name: `ban latency (nft ${kind}): build_info backend is nftables-${kind}`,
      value: info === `nftables-${kind}` ? 1 : 0,
      unit: 'bool',
      target: '= 1',
      ok: info === `nftables-${kind}`,
      note: `backend="${info}"`,
    });
    const h = await (daemon.metrics.banLatency.get() as Promise<{
      values: Array<{ metricName?: string; value: number; labels: Record<string, string | number> }>;
    }>);
    const count = h.values.find((v) => v.metricName === 'pbx_guardian_ban_latency_seconds_count')!.value;
    const sum = h.values.find((v) => v.metricName === 'pbx_guardian_ban_latency_seconds_sum')!.value;
    const buckets = h.values
      .filter((v) => v.metricName === 'pbx_guardian_ban_latency_seconds_bucket')
      .map((v) => ({ le: v.labels.le === '+Inf' ? Infinity : Number(v.labels.le), n: v.value }));
    wall.sort((a, b) => a - b);
    const ms = (s: number) => Math.round(s * 1000 * 100) / 100;
    const note = `${count} bans through the daemon (AMI simulator on loopback, batch window ${config.firewall.batchWindowMs} ms), one attacker every ~${GAP_MS} ms`;
    out.push({ name: `ban latency (nft ${kind}): bans measured`, value: count, unit: 'bans', target: `= ${ATTACKERS}`, ok: count === ATTACKERS, note });
    out.push({ name: `ban latency (nft ${kind}): mean (histogram sum/count)`, value: ms(sum / count), unit: 'ms' });
    out.push({ name: `ban latency (nft ${kind}): p50 bucket`, value: ms(bucketQuantile(buckets, count, 0.5)), unit: 'ms ≤' });
    const p99 = bucketQuantile(buckets, count, 0.99);
    // a target for the default path only: the nft command forks a process per transaction, and its tail follows the machine's load
    const target = kind === 'addon' ? { target: '<= 50', ok: p99 <= 0.05 } : {};
    out.push({ name: `ban latency (nft ${kind}): p99 bucket`, value: ms(p99), unit: 'ms ≤', ...target });
    out.push({
      name: `ban latency (nft ${kind}): cross-check p50 (socket write → listed in the set)`,
      value: Math.round(wall[Math.floor(wall.length / 2)]! * 100) / 100,
      unit: 'ms',
      note: `outside the daemon; includes the polling list() of the set; p99 ${Math.round(wall[Math.floor(wall.length * 0.99)]! * 100) / 100} ms`,
    });
  } finally {
    await daemon.stop();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function child(): Promise<BenchResult[]> {
  // a new network namespace has loopback down: the AMI simulator listens on 127.0.0.1
  const lo = spawnSync('ip', ['link', 'set', 'lo', 'up'], { encoding: 'utf8' });
  if (lo.status !== 0) throw new Error(`ip link set lo up: ${lo.stderr}`);
  const out: BenchResult[] = [];
  await one('addon', out);
  await one('command', out);
  return out;
}

export async function run(): Promise<BenchResult[]> {
  const skip = skipReason();
  if (skip) return [{ name: 'ban latency benchmark skipped', value: 0, unit: '-', note: skip }];
  return childRowsInNetns(SELF, ['--child'], 'ban latency benchmark');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const main = process.argv.includes('--child') ? child().then((rows) => console.log(JSON.stringify(rows))) : run().then((rows) => console.table(rows));
  main.catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
