/**
 * The enforcement interface between the guard's decisions and a kernel (or memory) backend.
 * Targets are canonical text: a single address ("203.0.113.7", "2001:db8::1") or a CIDR
 * ("198.51.100.0/24", "2001:db8:1:2::/64"). Backends never see attacker-controlled text other
 * than addresses that have already been parsed and re-serialised by guard/ip.ts.
 */
import type { Family } from '../net/ip.js';

export type { Family };

export interface FirewallEntry {
  /** canonical address or CIDR */
  target: string;
  family: Family;
  /** true for a CIDR (goes into an interval / hash:net set) */
  isNetwork: boolean;
  /** epoch milliseconds when the ban ends; null = permanent */
  expiresAt: number | null;
}

export interface FirewallTarget {
  target: string;
  family: Family;
  isNetwork: boolean;
}

export interface FirewallBatch {
  add: FirewallEntry[];
  remove: FirewallTarget[];
}

export interface FirewallBackend {
  /** "memory" | "nftables" | "ipset" */
  readonly name: string;
  /** Longest element timeout the kernel set accepts (ipset: ~24.8 days); longer bans are
   *  capped there and re-asserted by reconcile. Undefined = no limit. */
  readonly maxTimeoutMs?: number;
  /** Idempotent: create our own table / sets / hook rules. Never touches anything else. */
  setup(): Promise<void>;
  /** Apply bans and unbans as one transaction where the backend allows it. Removing an absent
   *  element and adding a present one are not errors (the timeout is refreshed). */
  apply(batch: FirewallBatch): Promise<void>;
  /** What the kernel holds now (expiresAt derived from the element's remaining timeout). */
  list(): Promise<FirewallEntry[]>;
  /** Replace the allow set (addresses/CIDRs that the kernel rule accepts before the ban sets). */
  setAllow(targets: FirewallTarget[]): Promise<void>;
  /** Remove every element of ours and our table / sets / rules. */
  flush(): Promise<void>;
  /** Release resources (native context, child processes). Leaves kernel state in place. */
  close(): Promise<void>;
}
