import type { FirewallEntry, FirewallTarget } from './types.js';

/** What the guard hands its bans and allow-list to (the guard's EnforcementPort). */
interface Enforcement {
  ban(entry: FirewallEntry): Promise<void>;
  unban(target: FirewallTarget): Promise<void>;
  setAllow(targets: FirewallTarget[]): Promise<void>;
}

/**
 * The local enforcer, and every other set group (the fleet's) following its allow-list: the
 * allow-list wins over remote decisions in the kernel too. Bans go to the local enforcer only.
 */
export class AllowFollowers implements Enforcement {
  private readonly followers: Array<(targets: FirewallTarget[]) => Promise<void>> = [];
  private last: FirewallTarget[] | null = null;

  constructor(private readonly local: Enforcement) {}

  ban(entry: FirewallEntry): Promise<void> {
    return this.local.ban(entry);
  }

  unban(target: FirewallTarget): Promise<void> {
    return this.local.unban(target);
  }

  async setAllow(targets: FirewallTarget[]): Promise<void> {
    this.last = targets;
    await this.local.setAllow(targets);
    await Promise.all(this.followers.map((f) => f(targets)));
  }

  /** `f` gets every allow-list from now on, and the current one at once */
  follow(f: (targets: FirewallTarget[]) => Promise<void>): Promise<void> {
    this.followers.push(f);
    return this.last ? f(this.last) : Promise.resolve();
  }
}
