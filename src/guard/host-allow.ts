/**
 * The AMI and Odoo hosts are always on the allow-list. When the config names them by DNS name,
 * this feed resolves the names (every address, both families) at start and every interval, and
 * hands the addresses to the guard's automatic allow-list. A failed lookup is never fatal: it is
 * logged once (until the name resolves again), retried sooner, and the name keeps its last good
 * addresses.
 */
import { lookup } from 'node:dns/promises';
import type { Logger } from 'pino';
import { formatNetwork, isSingleAddress, parseNetwork } from '../net/ip.js';

/** name → its addresses; injectable so a test gives a name → addresses without DNS. */
export type HostResolver = (name: string) => Promise<string[]>;

/** getaddrinfo (/etc/hosts, then DNS), both families. */
export const systemResolver: HostResolver = async (name) => (await lookup(name, { all: true, verbatim: true })).map((a) => a.address);

/** a name that resolves to more than this is cut (a bound on what one DNS answer allow-lists) */
export const MAX_ADDRESSES_PER_HOST = 32;

export interface HostAllowOptions {
  resolve: HostResolver;
  /** re-resolve every name this often */
  intervalMs: number;
  /** after a failed lookup, try again this soon (at most intervalMs) */
  retryMs: number;
  /** a lookup that takes longer counts as failed */
  timeoutMs: number;
  logger: Logger;
  /** every address the names resolve to now (sorted, deduplicated), called when that set changes */
  onChange(addresses: string[]): void;
}

export class HostAllowFeed {
  private names: string[] = [];
  private readonly good = new Map<string, string[]>();
  private readonly failing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private last = '';
  private stopped = false;

  constructor(private readonly o: HostAllowOptions) {}

  /** The names to follow (a reload may change them): resolved at once. */
  async setHosts(names: string[]): Promise<void> {
    this.names = [...new Set(names)];
    for (const n of [...this.good.keys()]) if (!this.names.includes(n)) this.good.delete(n);
    for (const n of [...this.failing]) if (!this.names.includes(n)) this.failing.delete(n);
    await this.refresh();
  }

  /** What the names resolve to now (the last good answer of a failing name). */
  addresses(): string[] {
    return [...new Set(this.names.flatMap((n) => this.good.get(n) ?? []))].sort();
  }

  /** Each name with what it resolves to now (for the allow-list's origins). */
  byName(): Array<{ name: string; addresses: string[] }> {
    return this.names.map((name) => ({ name, addresses: this.good.get(name) ?? [] }));
  }

  async refresh(): Promise<void> {
    clearTimeout(this.timer);
    await Promise.all(this.names.map((n) => this.resolveOne(n)));
    const now = this.addresses();
    if (now.join(',') !== this.last) {
      this.last = now.join(',');
      this.o.onChange(now);
    }
    if (this.stopped || this.names.length === 0) return;
    const delay = this.failing.size > 0 ? Math.min(this.o.retryMs, this.o.intervalMs) : this.o.intervalMs;
    this.timer = setTimeout(() => void this.refresh(), delay);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async resolveOne(name: string): Promise<void> {
    let timeout: NodeJS.Timeout | undefined;
    try {
      const answer = await Promise.race([
        this.o.resolve(name),
        new Promise<never>((_, reject) => {
          timeout = setTimeout(() => reject(new Error(`no answer within ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
        }),
      ]);
      const addresses = [...new Set(answer.map(singleAddress).filter((a): a is string => a !== null))].slice(0, MAX_ADDRESSES_PER_HOST);
      if (addresses.length === 0) throw new Error('no usable address in the answer');
      const before = (this.good.get(name) ?? []).join(',');
      this.good.set(name, addresses);
      if (this.failing.delete(name) || before !== addresses.join(',')) {
        this.o.logger.info({ host: name, addresses }, `${name} resolves to ${addresses.join(', ')}: always allow-listed (AMI / Odoo host)`);
      }
    } catch (err) {
      if (this.failing.has(name)) return;
      this.failing.add(name);
      const kept = this.good.get(name);
      this.o.logger.warn(
        { host: name, err: (err as Error).message },
        `cannot resolve ${name} (${(err as Error).message}): ` +
          (kept ? `keeping its last addresses ${kept.join(', ')} on the allow-list` : 'it is not allow-listed until it resolves') +
          `; retrying every ${Math.round(Math.min(this.o.retryMs, this.o.intervalMs) / 1000)} s (logged once until it resolves)`,
      );
    } finally {
      clearTimeout(timeout);
    }
  }
}

function singleAddress(text: unknown): string | null {
  if (typeof text !== 'string') return null;
  const net = parseNetwork(text);
  return net && isSingleAddress(net) ? formatNetwork(net) : null;
}
