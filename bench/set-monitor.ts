/**
 * When does an address reach a kernel set? The benchmarks' instrument, the same for every side.
 *
 * Preferred: bench/native/setelem-monitor.c, compiled here on first use with the system's cc (the
 * toolchain node-gyp needs anyway). It reads the kernel's nftables netlink notifications and
 * stamps each new element with CLOCK_MONOTONIC when recv() returns, which is the clock of
 * process.hrtime, so the reader's own lag does not move the figure.
 * Fallback (no cc): `nft monitor elements`, stamped when its text line is read. It formats every
 * element through its cache (~15 µs each), so it trails a burst of thousands by tens of ms.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../src/config/index.js';

const NFT = '/usr/sbin/nft';
const CC = '/usr/bin/cc';
const SOURCE = join(PACKAGE_ROOT, 'bench', 'native', 'setelem-monitor.c');
const pexec = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The compiled instrument (cached by source hash next to the compiled benchmarks, not in a
 *  shared temp dir: root runs it), or null without cc. */
export async function setElemMonitorBinary(): Promise<string | null> {
  if (!existsSync(CC)) return null;
  const src = readFileSync(SOURCE);
  const dir = join(PACKAGE_ROOT, 'dist', 'bench', 'native');
  const bin = join(dir, `setelem-monitor-${createHash('sha256').update(src).digest('hex').slice(0, 12)}`);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const part = `${bin}.${process.pid}`;
  await pexec(CC, ['-O2', '-Wall', '-std=gnu11', '-o', part, SOURCE]);
  renameSync(part, bin);
  return bin;
}

/** The first moment (performance.now() timeline) each IPv4 address was added to one set. */
export class SetMonitor {
  readonly seen = new Map<string, number>();
  /** notifications the kernel dropped (socket buffer overflow): the figures are then incomplete */
  overflows = 0;
  private readonly proc: ChildProcess;
  private buf = '';
  private readyResolve: (() => void) | null = null;
  private readonly readyPromise: Promise<void>;
  /** performance.now() = (hrtime ns − originNs) / 1e6 */
  private readonly originNs = process.hrtime.bigint() - BigInt(Math.round(performance.now() * 1e6));

  private constructor(
    readonly instrument: string,
    binary: string | null,
    setName: string,
  ) {
    this.readyPromise = new Promise((r) => (this.readyResolve = r));
    this.proc = binary
      ? spawn(binary, [setName], { stdio: ['ignore', 'pipe', 'ignore'] })
      : spawn(NFT, ['monitor', 'elements'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.proc.stdout!.on('data', (b: Buffer) => (binary ? this.onStamped(b) : this.onNftText(b, setName)));
    if (!binary) setTimeout(() => this.readyResolve?.(), 300); // nft monitor says nothing when subscribed
  }

  static async start(setName: string): Promise<SetMonitor> {
    const bin = await setElemMonitorBinary();
    const m = new SetMonitor(
      bin ? 'kernel netlink notification (bench/native/setelem-monitor.c)' : 'nft monitor (no cc for the netlink instrument)',
      bin,
      setName,
    );
    await Promise.race([m.readyPromise, sleep(5000)]);
    return m;
  }

  private lines(b: Buffer, each: (line: string) => void): void {
    this.buf += b.toString('latin1');
    let from = 0;
    let i: number;
    while ((i = this.buf.indexOf('\n', from)) >= 0) {
      each(this.buf.slice(from, i));
      from = i + 1;
    }
    this.buf = this.buf.slice(from);
  }

  private onStamped(b: Buffer): void {
    this.lines(b, (line) => {
      if (line === 'ready') return this.readyResolve?.();
      if (line.startsWith('!')) {
        this.overflows++;
        return;
      }
      const sp = line.indexOf(' ');
      const address = line.slice(sp + 1);
      if (!this.seen.has(address)) this.seen.set(address, Number(BigInt(line.slice(0, sp)) - this.originNs) / 1e6);
    });
  }

  private onNftText(b: Buffer, setName: string): void {
    const now = performance.now();
    this.lines(b, (line) => {
      if (!line.startsWith('add element') || !line.includes(` ${setName} `)) return;
      for (const m of line.matchAll(/(\d+\.\d+\.\d+\.\d+)/g)) if (!this.seen.has(m[1]!)) this.seen.set(m[1]!, now);
    });
  }

  async waitFor(addrs: string[], boundMs: number): Promise<boolean> {
    const end = performance.now() + boundMs;
    while (performance.now() < end) {
      if (addrs.every((a) => this.seen.has(a))) return true;
      await sleep(5);
    }
    return false;
  }

  stop(): void {
    this.proc.kill('SIGTERM');
  }
}

/** The IPv4 elements of a set, as `nft -j list set` shows them. */
export async function listSet(family: string, table: string, set: string): Promise<Set<string>> {
  const { stdout } = await pexec(NFT, ['-j', 'list', 'set', family, table, set], { maxBuffer: 256 * 1024 * 1024 });
  const out = new Set<string>();
  const doc = JSON.parse(stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
  for (const o of doc.nftables) {
    for (const e of o.set?.elem ?? []) {
      if (typeof e === 'string') out.add(e);
      else if (e && typeof e === 'object' && 'elem' in e) {
        const v = (e as { elem: { val?: unknown } }).elem.val;
        if (typeof v === 'string') out.add(v);
      }
    }
  }
  return out;
}
