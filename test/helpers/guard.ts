import pino from 'pino';
import { Guardian, loadRulesDir, type GuardOptions } from '../../src/guard/index.js';
import { MemoryBackend } from '../../src/firewall/memory.js';
import { MemoryBanStore } from '../../src/store/memory.js';
import type { BanStorePort } from '../../src/guard/index.js';
import type { FirewallEntry, FirewallTarget } from '../../src/firewall/types.js';
import { decodeAmiEvent } from '../../src/sources/index.js';
import { repoPath } from './fixtures.js';

export const shippedRules = () => loadRulesDir(repoPath('rules'));

export function guardOptions(over: Partial<GuardOptions> = {}): GuardOptions {
  return {
    rules: shippedRules(),
    allow: [],
    automaticAllow: [],
    ipv6Prefix: 64,
    maxTracked: 100_000,
    trackTtlSec: 3600,
    escalation: { factor: 2, maxSec: 86400, lookbackSec: 30 * 86400 },
    recidive: null,
    // the fixtures were captured over loopback (127.0.0.2, ::1): no host addresses here, so they
    // count as attackers (test/ban-scope.test.ts gives its own)
    host: { addresses: () => [] },
    // handleEvent reads the fixtures' AMI frames as the AMI source does
    decodeEvent: decodeAmiEvent,
    ...over,
  };
}

/** Enforcement that applies straight to a memory backend (no batching), recording calls. */
export class DirectEnforcement {
  readonly backend = new MemoryBackend(() => this.now());
  readonly calls: Array<{ op: 'ban' | 'unban'; target: string }> = [];
  constructor(private readonly now: () => number = Date.now) {}
  async ban(entry: FirewallEntry): Promise<void> {
    this.calls.push({ op: 'ban', target: entry.target });
    await this.backend.apply({ add: [entry], remove: [] });
  }
  async unban(target: FirewallTarget): Promise<void> {
    this.calls.push({ op: 'unban', target: target.target });
    await this.backend.apply({ add: [], remove: [target] });
  }
  async setAllow(targets: FirewallTarget[]): Promise<void> {
    await this.backend.setAllow(targets);
  }
}

/** A guardian on a settable clock, an in-memory store (or the one given) and a memory backend. */
export function makeGuardian(over: Partial<GuardOptions> = {}, store: BanStorePort = new MemoryBanStore()) {
  const clock = { now: Date.parse('2026-11-22T10:00:00Z') };
  const enforcement = new DirectEnforcement(() => clock.now);
  const guardian = new Guardian(guardOptions(over), store, enforcement, pino({ level: 'silent' }), () => clock.now);
  return { guardian, enforcement, clock, store };
}
