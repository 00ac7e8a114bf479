/**
 * Firewall benchmark: bulk ban throughput, restoring 100k bans, ban() → kernel latency at
 * 5k bans/s, and the cost of one nft process per ban (what fail2ban does).
 * Needs root; every measurement runs in a private network namespace: run() re-executes this file
 * under `unshare -n` and reads the results back as JSON. The host's ruleset is never touched.
 *   node dist/bench/firewall.js
 */
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import type { BenchResult } from './types.js';
import { Enforcer, defaultFirewallConfig, type FirewallEntry } from '../src/firewall/index.js';
import { NftablesBackend } from '../src/firewall/nftables.js';
import { NftCommandRunner } from '../src/firewall/nft-command.js';
import { createAddonRunner } from '../src/firewall/nft-addon.js';
import { IpsetBackend } from '../src/firewall/ipset.js';
import type { NftRunner } from '../src/firewall/nft-runner.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const TABLE = 'pbxg_bench';
const pexec = promisify(execFile);
const log = pino({ level: 'silent' });

/** Why the kernel benchmarks cannot run here (root, unshare, nft), or null. */
export function skipReason(): string | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root (private network namespace)';
  for (const p of ['/usr/bin/unshare', NFT]) {
    try {
      accessSync(p, constants.X_OK);
    } catch {
      return `${p} missing`;
    }
  }
  return null;
}

function addr(i: number, base = 10): string {
  return `${base}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

function entries(n: number, ttlMs: number, base = 10): FirewallEntry[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({ target: addr(i, base), family: 4 as const, isNetwork: false, expiresAt: now + ttlMs }));
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;
/** lets the kernel finish freeing a deleted table's elements before the next phase */
const settle = () => new Promise((res) => setTimeout(res, 1000));
const cfg = { ...defaultFirewallConfig, table: TABLE, reconcileIntervalMs: 0 };

function runner(kind: 'addon' | 'command'): NftRunner | null {
  return kind === 'addon' ? createAddonRunner() : new NftCommandRunner(NFT);
}

async function nftBench(kind: 'addon' | 'command', out: BenchResult[]): Promise<number | null> {
  if (!runner(kind)) {
    out.push({ name: `nft ${kind}: skipped`, value: 0, unit: '-', note: 'addon not built' });
    return null;
  }
  const mk = () => new NftablesBackend(runner(kind)!, { table: TABLE, verdict: 'drop', ports: [], size: 1048576 });
  // 1. restore 100k at start (setup + one transaction)
  const active = entries(100_000, 3_600_000, 11);
  let be = mk();
  let enf = new Enforcer(be, () => active, cfg, log);
  let t0 = performance.now();
  await enf.start();
  const restoreS = (performance.now() - t0) / 1000;
  const listed = (await be.list()).length;
  out.push({
    name: `nft ${kind}: restore 100k bans`,
    value: r3(restoreS),
    unit: 's',
    target: '<= 1.5',
    ok: restoreS <= 1.5 && listed === 100_000,
    note: `${listed} in the kernel set`,
  });

  // 2. latency ban() → in the kernel set, 1k addresses at 5k bans/s, on top of the 100k set
  const lat: number[] = [];
  const probe = entries(1000, 600_000, 12);
  const pending: Promise<void>[] = [];
  t0 = performance.now();
  for (let i = 0; i < probe.length; i++) {
    const due = t0 + i * 0.2; // 5k/s
    while (performance.now() < due) await new Promise((res) => setImmediate(res));
    const start = performance.now();
    pending.push(enf.ban(probe[i]!).then(() => void lat.push(performance.now() - start)));
  }
  await Promise.all(pending);
  const present = new Set((await be.list()).map((e) => e.target));
  const allThere = probe.every((p) => present.has(p.target));
  lat.sort((a, b) => a - b);
  out.push({
    name: `nft ${kind}: ban→kernel latency p50 (1k @5k/s)`,
    value: r1(pct(lat, 50)),
    unit: 'ms',
    note: allThere ? 'all 1000 verified in the set' : 'MISSING elements',
  });
  out.push({
    name: `nft ${kind}: ban→kernel latency p99 (1k @5k/s)`,
    value: r1(pct(lat, 99)),
    unit: 'ms',
    target: '<= 20',
    ok: pct(lat, 99) <= 20 && allThere,
  });
  await be.flush();
  await enf.stop();
  await settle();
  // 3. bulk throughput: 50k ban() calls at once (batchMaxSize 10k → 5 transactions)
  be = mk();
  enf = new Enforcer(be, () => [], cfg, log);
  await enf.start();
  const bulk = entries(50_000, 600_000);
  t0 = performance.now();
  await Promise.all(bulk.map((e) => enf.ban(e)));
  const bulkS = (performance.now() - t0) / 1000;
  const perBanMs = (bulkS * 1000) / bulk.length;
  out.push({
    name: `nft ${kind}: bulk ban throughput (50k)`,
    value: Math.round(bulk.length / bulkS),
    unit: 'bans/s',
    target: '>= 50000',
    ok: bulk.length / bulkS >= 50_000,
  });
  await be.flush();
  await enf.stop();
  await settle();
  return perBanMs;
}

async function fail2banStyle(out: BenchResult[], ourPerBanMs: number | null): Promise<void> {
  const be = new NftablesBackend(new NftCommandRunner(NFT), { table: TABLE, verdict: 'drop', ports: [], size: 1048576 });
  await be.setup();
  const n = 300;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await pexec(NFT, ['add', 'element', 'inet', TABLE, 'ban4', `{ ${addr(i, 13)} timeout 600s }`]);
  const perMs = (performance.now() - t0) / n;
  out.push({ name: 'one nft process per ban (fail2ban style)', value: r3(perMs), unit: 'ms/ban', note: `${Math.round(1000 / perMs)} bans/s` });
  if (ourPerBanMs) out.push({ name: 'cost ratio: process per ban / batched', value: Math.round(perMs / ourPerBanMs), unit: 'x' });
  await be.flush();
  await be.close();
}

async function ipsetBench(out: BenchResult[]): Promise<void> {
  try {
    accessSync('/usr/sbin/ipset', constants.X_OK);
    accessSync('/usr/sbin/iptables', constants.X_OK);
  } catch {
    out.push({ name: 'ipset: skipped', value: 0, unit: '-', note: 'ipset/iptables missing' });
    return;
  }
  const active = entries(100_000, 3_600_000, 11);
  const be = new IpsetBackend({ prefix: 'pbxgb', maxElem: 1048576, verdict: 'drop', ports: [] });
  const enf = new Enforcer(be, () => active, cfg, log);
  const t0 = performance.now();
  await enf.start();
  const s = (performance.now() - t0) / 1000;
  out.push({ name: 'ipset: restore 100k bans', value: r3(s), unit: 's', target: '<= 1.5', ok: s <= 1.5 });
  const bulk = entries(50_000, 600_000);
  const t1 = performance.now();
  await Promise.all(bulk.map((e) => enf.ban(e)));
  const bs = (performance.now() - t1) / 1000;
  out.push({
    name: 'ipset: bulk ban throughput (50k)',
    value: Math.round(bulk.length / bs),
    unit: 'bans/s',
    target: '>= 50000',
    ok: bulk.length / bs >= 50_000,
  });
  await be.flush();
  await enf.stop();
}

/** Runs inside the private namespace. */
async function child(): Promise<BenchResult[]> {
  const parent = process.env.PBXG_PARENT_NETNS;
  if (!parent || parent === readlinkSync('/proc/self/ns/net')) throw new Error('refusing to benchmark outside a private network namespace');
  const out: BenchResult[] = [];
  const addonPerBan = await nftBench('addon', out);
  const cmdPerBan = await nftBench('command', out);
  await fail2banStyle(out, addonPerBan ?? cmdPerBan);
  await ipsetBench(out);
  return out;
}

export async function run(): Promise<BenchResult[]> {
  const skip = skipReason();
  if (skip) return [{ name: 'firewall benchmark skipped', value: 0, unit: '-', note: skip }];
  return childRowsInNetns(SELF, ['--child'], 'firewall benchmark');
}

/** Runs `node <script> ...args` in a private network namespace and returns the BenchResult rows
 *  it prints as JSON on its last stdout line (the kernel benchmarks' children). */
export function childRowsInNetns(script: string, args: string[], what: string): Promise<BenchResult[]> {
  return new Promise((resolve, reject) => {
    const c = spawn('/usr/bin/unshare', ['-n', process.execPath, script, ...args], {
      env: { ...process.env, PBXG_PARENT_NETNS: readlinkSync('/proc/self/ns/net') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    c.stdout.on('data', (b: Buffer) => (text += b.toString()));
    c.on('error', reject);
    c.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${what} child exited ${code}`));
      try {
        resolve(JSON.parse(text.trim().split('\n').pop() ?? '[]') as BenchResult[]);
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

function printTable(rows: BenchResult[]): void {
  const w = Math.max(...rows.map((r) => r.name.length));
  for (const r of rows) {
    const status = r.ok === undefined ? '' : r.ok ? 'ok' : 'MISS';
    console.log(`${r.name.padEnd(w)}  ${String(r.value).padStart(10)} ${r.unit.padEnd(7)} ${(r.target ?? '').padEnd(9)} ${status.padEnd(4)} ${r.note ?? ''}`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--child')) {
    child().then(
      (rows) => console.log(JSON.stringify(rows)),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  } else {
    run().then(printTable, (err) => {
      console.error(err);
      process.exit(1);
    });
  }
}
