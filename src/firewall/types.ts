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
  /** performance.now() when the failure that made this ban was received: the enforcer reports
   *  the time to the end of the kernel transaction (EnforcerHooks.onBanLatency) */
  seenAt?: number;
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
  /** how it reaches the kernel when the name does not say it (nftables: addon or command) */
  readonly path?: string;
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
  /** The watchdog's check: are our table, chains, hook rules and sets (with their canary
   *  elements) as setup() left them? Cheap at any set size. Undefined: nothing to watch (memory). */
  inspect?(): Promise<Inspection>;
}

/** What a backend's inspect() found: cheap (never a listing of every element). */
export interface Inspection {
  /** our table (nftables) or our sets and chain (ipset) exist at all */
  tablePresent: boolean;
  /** what is missing or not as setup() left it, e.g. "set ban4", "elements of set ban4 (canary gone)";
   *  empty when intact */
  problems: string[];
  /** ban elements in the kernel, when the check can count them cheaply (ipset -t); else undefined */
  elements?: number;
}

/** One watchdog repair: what was missing, what the restore put back, how long it took. */
export interface RepairReport {
  problems: string[];
  restored: number;
  ms: number;
  /** what found it: the periodic check, a reload's allow-set update, or a failed transaction */
  during: 'watchdog' | 'setAllow' | 'apply';
}

/** The firewall part of the health report (Enforcer.health()). */
export interface FirewallHealth {
  backend: string; // nftables | ipset | memory | ... (backend.name)
  dryRun: boolean; // true for memory: nothing reaches the kernel
  state: 'starting' | 'enforcing' | 'failing' | 'paused' | 'stopped';
  pausedReason: string | null; // e.g. 'pbx-guardian flush at 2026-12-02T13:05:00Z'
  tablePresent: boolean | null; // last watchdog check; null = not checked / not applicable
  kernelElements: number | null; // ban elements in the kernel at the last count
  kernelCountedAt: number | null; // epoch ms
  storeActive: number; // active bans the enforcer was told about (activeEntries().length)
  queued: number;
  lastSuccessAt: number | null; // epoch ms of the last successful transaction
  lastError: { message: string; at: number } | null;
  repairs: number; // watchdog repairs since start
  restoring?: { done: number; total: number } | null; // the start's restore while it runs (stored bans handled of all)
}
