/**
 * The resolver's and the default gateways' addresses, for the automatic allow-list: a PBX that
 * bans its own DNS server or router cuts itself off. Read from /etc/resolv.conf (`nameserver`
 * lines, re-read when the file changes: a cheap stat each poll) and /proc/net/route,
 * /proc/net/ipv6_route (default routes' gateways, re-read each poll: a few hundred bytes). Every
 * read is bounded, parsing is strict (a line that is not exactly the expected form is skipped),
 * and files are read through a port so that tests give temp files.
 */
import { open, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { formatNetwork, isSingleAddress, parseNetwork } from '../net/ip.js';
import type { AllowEntry } from './allow.js';

export interface HostFilesPort {
  /** at most `maxBytes` of the file's text (`truncated` when there was more), or null when it
   *  cannot be read (absent, permissions) */
  read(path: string, maxBytes: number): Promise<{ text: string; truncated: boolean } | null>;
  /** a token that changes when the file does (inode, size, mtime), or null when absent */
  version(path: string): Promise<string | null>;
}

export const systemFiles: HostFilesPort = {
  async read(path, maxBytes) {
    let fh;
    try {
      fh = await open(path, 'r');
      const buf = Buffer.alloc(maxBytes + 1);
      let n = 0;
      while (n < buf.length) {
        const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      return { text: buf.subarray(0, Math.min(n, maxBytes)).toString('utf8'), truncated: n > maxBytes };
    } catch {
      return null;
    } finally {
      await fh?.close().catch(() => {});
    }
  },
  async version(path) {
    try {
      const s = await stat(path);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return null;
    }
  },
};

export interface HostPaths {
  resolvConf: string;
  route4: string;
  route6: string;
}

export const defaultHostPaths: HostPaths = { resolvConf: '/etc/resolv.conf', route4: '/proc/net/route', route6: '/proc/net/ipv6_route' };

/** bounds on what is read and kept */
export const MAX_FILE_BYTES = 64 * 1024;
const MAX_RESOLVERS = 16;
const MAX_GATEWAYS = 16;

/** `nameserver ADDRESS` lines (comments with # or ;), single addresses only, at most 16. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver[ \t]+(\S+)$/.exec(line);
    if (!m) continue;
    const net = parseNetwork(m[1]!);
    if (!net || !isSingleAddress(net)) continue;
    const text = formatNetwork(net);
    if (!out.includes(text)) out.push(text);
    if (out.length >= MAX_RESOLVERS) break;
  }
  return out;
}

const HEX8 = /^[0-9A-Fa-f]{8}$/;
const HEX32 = /^[0-9A-Fa-f]{32}$/;
const IFACE = /^[A-Za-z0-9_.:@-]{1,15}$/;
const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

/** /proc/net/route: default routes (destination and mask 0) that are up and have a gateway.
 *  Addresses there are 32-bit hex in host (little-endian) byte order. */
export function parseIPv4Routes(text: string): Array<{ address: string; iface: string }> {
  const out: Array<{ address: string; iface: string }> = [];
  const lines = text.split('\n');
  for (let i = 1; i < lines.length && out.length < MAX_GATEWAYS; i++) {
    const f = lines[i]!.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, dest, gw, flags, , , , mask] = f as [string, string, string, string, string, string, string, string];
    if (!IFACE.test(iface) || !HEX8.test(dest) || !HEX8.test(gw) || !/^[0-9A-Fa-f]{4}$/.test(flags) || !HEX8.test(mask)) continue;
    const fl = parseInt(flags, 16);
    if (parseInt(dest, 16) !== 0 || parseInt(mask, 16) !== 0 || (fl & (RTF_UP | RTF_GATEWAY)) !== (RTF_UP | RTF_GATEWAY)) continue;
    const v = parseInt(gw, 16);
    if (v === 0) continue;
    const address = `${v & 255}.${(v >>> 8) & 255}.${(v >>> 16) & 255}.${v >>> 24}`;
    if (!out.some((o) => o.address === address && o.iface === iface)) out.push({ address, iface });
  }
  return out;
}

/** /proc/net/ipv6_route: default routes (::/0) that are up and have a gateway (the next hop). */
export function parseIPv6Routes(text: string): Array<{ address: string; iface: string }> {
  const out: Array<{ address: string; iface: string }> = [];
  for (const line of text.split('\n')) {
    if (out.length >= MAX_GATEWAYS) break;
    const f = line.trim().split(/\s+/);
    if (f.length !== 10) continue;
    const [dest, destLen, , , hop, , , , flags, iface] = f as [string, string, string, string, string, string, string, string, string, string];
    if (!HEX32.test(dest) || !/^[0-9A-Fa-f]{2}$/.test(destLen) || !HEX32.test(hop) || !HEX8.test(flags) || !IFACE.test(iface)) continue;
    const fl = parseInt(flags, 16);
    if (!/^0+$/.test(dest) || parseInt(destLen, 16) !== 0 || /^0+$/.test(hop) || (fl & (RTF_UP | RTF_GATEWAY)) !== (RTF_UP | RTF_GATEWAY)) continue;
    const net = parseNetwork(hop.match(/.{4}/g)!.join(':'));
    if (!net) continue;
    const address = formatNetwork(net);
    if (!out.some((o) => o.address === address && o.iface === iface)) out.push({ address, iface });
  }
  return out;
}

export interface HostWatchOptions {
  files?: HostFilesPort;
  paths?: HostPaths;
  intervalMs: number;
  logger: Logger;
  onChange(source: 'resolver' | 'gateway', entries: AllowEntry[]): void;
}

/** Polls the resolver and gateway files; calls onChange when either list changes. */
export class HostWatch {
  private readonly files: HostFilesPort;
  private readonly paths: HostPaths;
  private timer: NodeJS.Timeout | undefined;
  private resolvVersion: string | null | undefined;
  private last = { resolver: '', gateway: '' };
  private warned = new Set<string>();
  private running: Promise<void> | null = null;

  constructor(private readonly o: HostWatchOptions) {
    this.files = o.files ?? systemFiles;
    this.paths = o.paths ?? defaultHostPaths;
  }

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().catch((err: Error) =>
        this.o.logger.warn({ err }, 'reading the resolver / default gateways failed; the last known ones stay allow-listed'),
      );
    }, this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One poll (overlapping polls share the one running). */
  refresh(): Promise<void> {
    this.running ??= this.poll().finally(() => (this.running = null));
    return this.running;
  }

  private async poll(): Promise<void> {
    const version = await this.files.version(this.paths.resolvConf);
    if (version !== this.resolvVersion) {
      this.resolvVersion = version;
      const file = version === null ? null : await this.read(this.paths.resolvConf);
      const entries = parseResolvConf(file ?? '').map((entry) => ({ entry, from: `resolver (${this.paths.resolvConf})` }));
      this.emit('resolver', entries);
    }
    const v4 = parseIPv4Routes((await this.read(this.paths.route4)) ?? '');
    const v6 = parseIPv6Routes((await this.read(this.paths.route6)) ?? '');
    this.emit(
      'gateway',
      [...v4, ...v6].map((g) => ({ entry: g.address, from: `default gateway (${g.iface})` })),
    );
  }

  private async read(path: string): Promise<string | null> {
    const r = await this.files.read(path, MAX_FILE_BYTES);
    if (r?.truncated && !this.warned.has(path)) {
      this.warned.add(path);
      this.o.logger.warn(
        { path },
        `${path} is longer than ${MAX_FILE_BYTES} bytes: only its start is read for the automatic allow-list (resolver / default gateway); allow-list the rest in guard.allow if needed`,
      );
    }
    return r?.text ?? null;
  }

  private emit(source: 'resolver' | 'gateway', entries: AllowEntry[]): void {
    const key = entries.map((e) => `${e.entry} ${e.from}`).join(',');
    if (key === this.last[source]) return;
    this.last[source] = key;
    if (entries.length > 0) this.o.logger.info({ source, entries }, `always allow-listed: ${entries.map((e) => `${e.entry} (${e.from})`).join(', ')}`);
    this.o.onChange(source, entries);
  }
}
