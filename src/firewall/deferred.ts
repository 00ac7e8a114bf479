import type { FirewallBackend, FirewallBatch, FirewallEntry, FirewallTarget, Inspection } from './types.js';

/**
 * A backend that could not be built at start (not root, no CAP_NET_ADMIN, nft missing). Every
 * call tries to build it again, so the Enforcer's retries with backoff bring enforcement up as
 * soon as the cause is fixed, while detection and the Odoo bridge go on.
 */
export class DeferredBackend implements FirewallBackend {
  private inner: FirewallBackend | null = null;

  constructor(private readonly create: () => Promise<FirewallBackend>) {}

  get name(): string {
    return this.inner?.name ?? 'unavailable';
  }

  get path(): string | undefined {
    return this.inner?.path;
  }

  get maxTimeoutMs(): number | undefined {
    return this.inner?.maxTimeoutMs;
  }

  private async backend(): Promise<FirewallBackend> {
    this.inner ??= await this.create();
    return this.inner;
  }

  async setup(): Promise<void> {
    await (await this.backend()).setup();
  }

  async apply(batch: FirewallBatch): Promise<void> {
    await (await this.backend()).apply(batch);
  }

  async list(): Promise<FirewallEntry[]> {
    return (await this.backend()).list();
  }

  async setAllow(targets: FirewallTarget[]): Promise<void> {
    await (await this.backend()).setAllow(targets);
  }

  async flush(): Promise<void> {
    await (await this.backend()).flush();
  }

  async close(): Promise<void> {
    await this.inner?.close();
  }

  /** the built backend's check; one that has nothing to watch (memory) is always intact */
  async inspect(): Promise<Inspection> {
    const inner = await this.backend();
    return inner.inspect ? inner.inspect() : { tablePresent: true, problems: [] };
  }
}
