/**
 * Feeds benchmark (issue 17), in a private network namespace (run() re-executes this file under
 * `unshare -n`; the host's ruleset is never touched): a plain-text list of N addresses served on
 * loopback, one feed with the real nftables backend.
 *  - first fill: from the refresh to every element in `inet pbx_guardian_bench`;
 *  - refresh of the same list (every entry's timeout renewed);
 *  - the longest event-loop stall during both.
 *   node dist/bench/feeds.js [--quick]
 */
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { BenchResult } from './types.js';
import { childRowsInNetns, skipReason } from './firewall.js';
import { resolveFeeds } from '../src/feeds/config-schema.js';
import { createFeeds } from '../src/feeds/index.js';
import { defaultFirewallConfig } from '../src/firewall/index.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const r1 = (x: number) => Math.round(x * 10) / 10;
/** public-looking IPv4 addresses (the scope limits refuse private and reserved ranges) */
const address = (i: number) => `${20 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.7`;

function kernelCount(): number {
  const out = execFileSync(NFT, ['-j', 'list', 'set', 'inet', 'pbx_guardian_bench', 'ban4'], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  const j = JSON.parse(out) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
  return j.nftables.find((x) => x.set)?.set?.elem?.length ?? 0;
}

async function child(quick: boolean): Promise<BenchResult[]> {
  execFileSync('/usr/sbin/ip', ['link', 'set', 'lo', 'up']);
  const n = quick ? 20_000 : 200_000;
  const body = Array.from({ length: n }, (_, i) => address(i)).join('\n');
  const srv = createServer((_req, res) => res.end(body));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/list.txt`;
  const { feeds: config } = resolveFeeds([{ name: 'bench', kind: 'list', url, interval: '1h', maxEntries: n, maxBytes: 64 * 1024 * 1024 }]);
  // the second refresh comes an interval later, as it would: every entry's end moves by 1 h
  let offset = 0;
  const now = () => Date.now() + offset;
  const judge = { allowed: () => null, scopeRefusal: () => null, localBan: () => undefined };
  const feeds = createFeeds({
    feeds: config,
    firewall: { ...defaultFirewallConfig, backend: 'nftables', reconcileIntervalMs: 0 },
    watchdogIntervalMs: 0,
    judge,
    allow: () => [],
    stateDir: null,
    logger: pino({ level: 'warn' }),
    now,
  })!;
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const t0 = performance.now();
  await feeds.start('nftables');
  await feeds.feed('bench')!.refresh();
  const drained = async () => {
    for (let i = 0; i < 6000 && (feeds.health()[0]!.set.firewall?.queued ?? 0) > 0; i++) await new Promise((r) => setTimeout(r, 10));
  };
  await drained();
  const fillMs = performance.now() - t0;
  // kernelCount blocks (execFileSync of a 200k-element listing): not the feed's stall
  const fillStall = lag.max;
  const inKernel = kernelCount();
  lag.reset();
  offset = 3_600_000;
  const t1 = performance.now();
  await feeds.feed('bench')!.refresh();
  await drained();
  const refreshMs = performance.now() - t1;
  const refreshStall = lag.max;
  lag.disable();
  await feeds.stop();
  srv.close();
  return [
    {
      name: `feed first fill, ${n} entries (fetch, parse, judge, kernel)`,
      value: r1(fillMs),
      unit: 'ms',
      note: `${inKernel} elements in inet pbx_guardian_bench ban4 (with the watchdog canary)`,
    },
    { name: `feed refresh of the same ${n} entries (an interval later: every timeout renewed)`, value: r1(refreshMs), unit: 'ms' },
    { name: 'feed: longest event-loop stall during the first fill', value: r1(fillStall / 1e6), unit: 'ms' },
    { name: 'feed: longest event-loop stall during the refresh', value: r1(refreshStall / 1e6), unit: 'ms' },
  ];
}

export async function run(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const skip = skipReason();
  if (skip) return [{ name: 'feeds benchmark skipped', value: 0, unit: '-', note: skip }];
  return childRowsInNetns(SELF, ['--child', ...(opts.quick ? ['--quick'] : [])], 'feeds benchmark');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--child')) {
    child(process.argv.includes('--quick')).then(
      (rows) => console.log(JSON.stringify(rows)),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  } else {
    run({ quick: process.argv.includes('--quick') }).then(
      (rows) => {
        for (const r of rows) console.log(`${r.name}: ${r.value} ${r.unit} ${r.note ?? ''}`);
        process.exit(0);
      },
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  }
}
