import type { FirewallBackend, FirewallBatch, FirewallEntry, FirewallTarget } from './types.js';

/** Dry-run and test backend: holds the set in memory and honours timeouts like the kernel does. */
export class MemoryBackend implements FirewallBackend {
  readonly name = 'memory';
  private readonly entries = new Map<string, FirewallEntry>();
  private allow: FirewallTarget[] = [];
  /** number of apply() calls, for tests that check batching */
  applyCount = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async setup(): Promise<void> {}

  async apply(batch: FirewallBatch): Promise<void> {
    this.applyCount++;
    for (const target of batch.remove) this.entries.delete(target.target);
    for (const entry of batch.add) this.entries.set(entry.target, { ...entry });
  }

  async list(): Promise<FirewallEntry[]> {
    const now = this.now();
    const live: FirewallEntry[] = [];
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt !== null && entry.expiresAt <= now) this.entries.delete(key);
      else live.push({ ...entry });
    }
    return live;
  }

  async setAllow(targets: FirewallTarget[]): Promise<void> {
    this.allow = [...targets];
  }

  allowList(): FirewallTarget[] {
    return [...this.allow];
  }

  async flush(): Promise<void> {
    this.entries.clear();
  }

  async close(): Promise<void> {}
}
