/**
 * The Odoo bridge (job endpoint, job runner, RPC client: startOdooBridge) alone in a child
 * process, so a test can run it under a small --max-old-space-size and see whether it survives.
 * Run with fork(): the config comes as JSON in PBXG_BRIDGE_CONFIG; the child sends
 * { port } once listening, and answers 'report' with its peak memory:
 * maxRssBytes (the kernel's peak RSS, getrusage) and peakHeapUsedBytes (sampled every 5 ms).
 */
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startOdooBridge } from '../../src/odoo/index.js';
import { FakeAmi, FakeBans } from './fake-odoo.js';

export interface BridgeChildReport {
  maxRssBytes: number;
  peakHeapUsedBytes: number;
  peakExternalBytes: number;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env.PBXG_BRIDGE_CONFIG ?? '{}') as Record<string, unknown>;
  let peakHeap = 0;
  let peakExternal = 0;
  const sample = () => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakExternal = Math.max(peakExternal, m.external + m.arrayBuffers);
  };
  setInterval(sample, 5).unref();
  const bridge = await startOdooBridge({
    config,
    ami: new FakeAmi(),
    bans: new FakeBans(),
    db: new Database(':memory:'),
    logger: pino({ level: 'warn' }, pino.destination(2)),
    registry: new Registry(),
    stateDir: path.join(os.tmpdir(), `pbxg-bridge-child-${process.pid}`),
    reloadConfig: () => undefined,
  });
  process.on('message', (m) => {
    if (m !== 'report') return;
    sample();
    const r: BridgeChildReport = { maxRssBytes: process.resourceUsage().maxRSS * 1024, peakHeapUsedBytes: peakHeap, peakExternalBytes: peakExternal };
    process.send!(r);
  });
  process.on('disconnect', () => {
    void bridge.close().then(() => process.exit(0));
  });
  process.send!({ port: bridge.agentAddress!.port });
}

// only as a forked child (the test runner also loads every file under dist/test)
if (process.send) void main();
