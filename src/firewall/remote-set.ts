/**
 * The kernel sets of bans decided elsewhere (the fleet's decisions, a feed): a table (nftables
 * `inet <table>_<group>`) or ipset names (`<prefix>-<group>-*`, chain `<PREFIX>-<GROUP>-INPUT`) of
 * their own, filled through an Enforcer of their own (batching, restore, reconcile, the watchdog's
 * repair). The local bans' table is never touched from here, so a remote deletion can never end a
 * local ban. (Moved down from src/fleet/sets.ts so that the fleet and the feeds share it.)
 */
import type { Logger } from 'pino';
import { createBackend } from './create.js';
import { DeferredBackend } from './deferred.js';
import { Enforcer, type FirewallConfig } from './enforcer.js';
import { groupFirewallConfig } from './group.js';
import { MemoryBackend } from './memory.js';
import type { FirewallBackend, FirewallEntry, FirewallHealth, FirewallTarget } from './types.js';

export interface RemoteSetOptions {
  /** the group name, part of the table / set names */
  group: string;
  /** the local firewall config the group's is derived from */
  firewall: FirewallConfig;
  watchdogIntervalMs: number;
  logger: Logger;
  /** use this backend (tests); default: the local backend's kind with the group's names */
  backend?: FirewallBackend;
  now?: () => number;
}

export interface RemoteSetHealth {
  group: string;
  /** the nftables table or the ipset prefix */
  names: string;
  entries: number;
  firewall: FirewallHealth | null;
}

/** How often entries past their end leave the map (the kernel's own timeout already dropped them). */
const SWEEP_MS = 10_000;
/** two ends this close are the same decision's */
const SAME_END_MS = 10_000;

export class RemoteSet {
  private readonly entries = new Map<string, FirewallEntry>();
  private enforcer: Enforcer | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly config: FirewallConfig;
  private readonly now: () => number;
  private paused: string | null = null;
  private started = false;

  constructor(private readonly opts: RemoteSetOptions) {
    this.config = groupFirewallConfig(opts.firewall, opts.group);
    this.now = opts.now ?? Date.now;
  }

  /** The backend of the same kind as the local one (`localBackend`: its name), with the group's names. */
  async open(localBackend: string): Promise<void> {
    const { logger } = this.opts;
    let backend = this.opts.backend;
    if (!backend) {
      const kind = localBackend === 'nftables' || localBackend === 'ipset' || localBackend === 'memory' ? localBackend : this.config.backend;
      const config: FirewallConfig = { ...this.config, backend: kind };
      const make = () => (kind === 'memory' ? Promise.resolve(new MemoryBackend()) : createBackend(config, logger));
      backend = await make().catch((err: Error) => {
        logger.error({ err }, `the ${this.opts.group} sets cannot be set up yet (${err.message}); retrying with backoff`);
        return new DeferredBackend(make);
      });
    }
    this.enforcer = new Enforcer(
      backend,
      () => this.live(),
      this.config,
      logger,
      {},
      {
        watchdogIntervalMs: this.opts.watchdogIntervalMs,
        activeCount: () => this.entries.size,
        now: this.now,
      },
    );
  }

  /** Fills the kernel with what the map holds now (the first full answer) and applies the allow set. */
  async start(allow: FirewallTarget[]): Promise<void> {
    if (!this.enforcer) throw new Error('RemoteSet.start before open');
    // the allow set goes in right after setup (the bouncer enforces no allow-listed decision anyway)
    await this.enforcer.start();
    this.started = true;
    await this.enforcer.setAllow(allow);
    if (this.paused !== null) await this.enforcer.pause(this.paused);
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
  }

  get size(): number {
    return this.entries.size;
  }

  has(target: string): boolean {
    return this.entries.has(target);
  }

  get(target: string): FirewallEntry | undefined {
    return this.entries.get(target);
  }

  put(entry: FirewallEntry): void {
    const before = this.entries.get(entry.target);
    // the same decision seen again (a whole list after a failure) ends a little later each time: not worth a kernel write
    if (before && (before.expiresAt === entry.expiresAt || Math.abs((before.expiresAt ?? 0) - (entry.expiresAt ?? 0)) < SAME_END_MS)) return;
    this.entries.set(entry.target, entry);
    // before start() the map is all: start() restores it in chunks (one pass, not 100k queued operations)
    if (this.started) this.enforcer!.ban(entry).catch((err: Error) => this.failed(err, entry.target));
  }

  delete(target: string): void {
    const e = this.entries.get(target);
    if (!e) return;
    this.entries.delete(target);
    if (this.started) this.enforcer!.unban(e).catch((err: Error) => this.failed(err, target));
  }

  /** A full answer: exactly `list` from now on (what is not in it leaves the kernel). */
  replace(list: Iterable<FirewallEntry>): void {
    const keep = new Set<string>();
    for (const e of list) {
      keep.add(e.target);
      this.put(e);
    }
    for (const t of [...this.entries.keys()]) if (!keep.has(t)) this.delete(t);
  }

  /** before start() nothing: start() applies the allow-list of that moment */
  setAllow(targets: FirewallTarget[]): Promise<void> {
    return this.enforcer && this.started ? this.enforcer.setAllow(targets) : Promise.resolve();
  }

  async pause(reason: string): Promise<void> {
    this.paused = reason;
    const h = this.enforcer?.health();
    if (h && h.state !== 'starting') await this.enforcer!.pause(reason);
  }

  async resume(): Promise<void> {
    this.paused = null;
    if (this.enforcer?.health().state === 'paused') await this.enforcer.resume();
  }

  health(): RemoteSetHealth {
    const names = this.config.backend === 'ipset' || this.enforcer?.backendName === 'ipset' ? `${this.config.ipsetPrefix}-*` : `inet ${this.config.table}`;
    return { group: this.opts.group, names, entries: this.entries.size, firewall: this.enforcer?.health() ?? null };
  }

  /** Every entry, for listings (bounded by the caller). */
  list(): FirewallEntry[] {
    return [...this.entries.values()];
  }

  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    await this.enforcer?.stop();
  }

  /** entries past their end leave the map; the kernel dropped them on its own timeout */
  sweep(now = this.now()): number {
    let n = 0;
    for (const [t, e] of this.entries)
      if (e.expiresAt !== null && e.expiresAt <= now) {
        this.entries.delete(t);
        n++;
      }
    return n;
  }

  private live(): FirewallEntry[] {
    const now = this.now();
    const out: FirewallEntry[] = [];
    for (const e of this.entries.values()) if (e.expiresAt === null || e.expiresAt > now) out.push(e);
    return out;
  }

  private failed(err: Error, target: string): void {
    // the enforcer logs and retries failures itself; a refusal of one element is logged once there
    this.opts.logger.debug({ err, target, group: this.opts.group }, 'remote set change not applied yet');
  }
}
