import type { FirewallEntry } from '../../src/firewall/index.js';

/** Firewall entries relative to `now`: entry('192.0.2.1', 3_600_000), entry('2001:db8::/64', null). */
export function entryFactory(now: number) {
  return (target: string, ttlMs: number | null): FirewallEntry => ({
    target,
    family: target.includes(':') ? 6 : 4,
    isNetwork: target.includes('/'),
    expiresAt: ttlMs === null ? null : now + ttlMs,
  });
}
