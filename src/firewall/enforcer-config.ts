/** The enforcer's configuration, hooks and errors. */
import type { Refusal } from './isolate.js';
import type { RepairReport } from './types.js';
import { defaultsOf } from '../common/config-schema.js';
import { AppError } from '../common/errors.js';
import { FirewallConfigSchema, type FirewallConfig } from './config-schema.js';

/** The `firewall:` config section (FirewallConfigSchema). watchdogInterval is a duration ("2s"; "0"
 *  disables it), parsed by the config stage and handed over as EnforcerOptions.watchdogIntervalMs. */
export type { FirewallConfig } from './config-schema.js';

export const defaultFirewallConfig: FirewallConfig = defaultsOf(FirewallConfigSchema);

/** the watchdog's default period: a removal is seen within 2 s and repaired well inside 5 s */
export const DEFAULT_WATCHDOG_INTERVAL_MS = 2000;

export interface EnforcerHooks {
  onApplied?(adds: number, removes: number, ms: number): void;
  /** seconds from a ban's failure received (FirewallEntry.seenAt) to its transaction applied */
  onBanLatency?(seconds: number): void;
  onDrift?(added: number, removed: number): void;
  onFailure?(err: Error, attempt: number): void;
  onRecovered?(): void;
  /** the kernel refused one element; the rest of its transaction was applied */
  onRefused?(refusal: Refusal): void;
  /** the watchdog found our table / sets / rules removed or changed and re-created them */
  onRepaired?(report: RepairReport): void;
}

export interface EnforcerOptions {
  /** bound on queued, not yet applied operations (oldest dropped beyond it); default 1,000,000 */
  maxPending?: number;
  /** clock, for tests */
  now?: () => number;
  /** watchdog period (ms); 0 = off. Default DEFAULT_WATCHDOG_INTERVAL_MS */
  watchdogIntervalMs?: number;
  /** how many bans are active, without building their entries (health is asked on every scrape;
   *  activeEntries() at 100k bans costs tens of ms); default activeEntries().length */
  activeCount?: () => number;
}

/** The kernel refused this element (see Refusal); the ban stays in the store and reconcile
 *  tries it again. */
export class FirewallRefusedError extends AppError {
  constructor(readonly refusal: Refusal) {
    super(`the kernel refused ${refusal.op === 'add' ? 'to add' : 'to remove'} ${refusal.target}: ${refusal.error.message}`, 'FIREWALL_REFUSED', 500);
    this.name = 'FirewallRefusedError';
  }
}

/** The enforcer stopped (the daemon is stopping) before this change reached the kernel. */
export class EnforcerStoppedError extends AppError {
  constructor() {
    super('firewall enforcer stopped before this change was applied', 'ENFORCER_STOPPED', 503);
    this.name = 'EnforcerStoppedError';
  }
}
