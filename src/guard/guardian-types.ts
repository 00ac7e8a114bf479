/** The guard's ports and options (guardian.ts implements the guard over them). */
import type { FirewallEntry, FirewallTarget } from '../firewall/types.js';
import type { AccountFailureReport } from './account-aware.js';
import type { AllowEntry } from './allow.js';
import type { EventDecoder } from './observation.js';
import type { Rule } from './rules.js';
import type { HostAddressPort, ScopeLimits } from './scope.js';
import type { BanNotice, BanRecord } from './types.js';

/** What the guard needs from the store (src/store implements it). */
export interface BanStorePort {
  /** `replaces`: false when the target has no active ban (the store can skip closing one) */
  saveBan(rec: BanRecord, replaces?: boolean): void;
  endBan(target: string, now: number, why: 'expired' | 'unbanned' | 'replaced'): void;
  activeBans(now: number): BanRecord[];
  /** targets whose ban ran out (while the daemon was down) but are still recorded active */
  expiredTargets(now: number): string[];
  banTimesSince(target: string, since: number): number[];
  totalBans(): number;
}

/** What the guard needs from enforcement (src/firewall's Enforcer implements it). */
export interface EnforcementPort {
  ban(entry: FirewallEntry): Promise<void>;
  unban(target: FirewallTarget): Promise<void>;
  setAllow(targets: FirewallTarget[]): Promise<void>;
}

export interface GuardOptions {
  rules: Rule[];
  /** allow-list from the config (CIDRs or addresses) */
  allow: string[];
  /** always allowed and not editable from Odoo: loopback, the AMI and Odoo hosts written as
   *  addresses (a plain string's origin is 'automatic') */
  automaticAllow: Array<string | AllowEntry>;
  ipv6Prefix: number;
  maxTracked: number;
  trackTtlSec: number;
  escalation: { factor: number; maxSec: number; lookbackSec: number };
  /** recidive: `bans` automatic bans within `withinSec` → a ban of `banSec` */
  recidive: { bans: number; withinSec: number; banSec: number } | null;
  /** widest prefix one ban may cover (guard.widestBanIPv4/IPv6); default /16 and /32 */
  scope?: ScopeLimits;
  /** longest ban in seconds (guard.maxBanDuration): longer manual bans are refused, rule bans
   *  capped; default 365 days */
  maxBanSec?: number;
  /** a manual ban given no duration lasts this long (guard.manualBanDuration); null or absent: permanent */
  manualBanSec?: number | null;
  /** the host's own addresses, never banned (default: every address of every local interface) */
  host?: HostAddressPort;
  /** how handleEvent reads an Asterisk security event in field form (src/sources: decodeAmiEvent) */
  decodeEvent?: EventDecoder;
}

/** Why a security event was not counted. */
export type IgnoredReason = 'allow-listed' | 'already-banned' | 'bad-address' | 'ambiguous' | 'link-local' | 'reserved' | 'own-address' | 'out-of-scope';

export const DEFAULT_MAX_BAN_SEC = 365 * 86400;
/** how often the host's own addresses are re-read (an address added by DHCP / SLAAC shows within
 *  this): os.networkInterfaces() costs ~75 µs here, so a 2 s poll is ~0.004 % of one core */
export const HOST_REFRESH_MS = 2_000;

export interface GuardListener {
  securityEvent?(event: string, service: string, source: string): void;
  failure?(event: string, weight: number, key: string): void;
  ignored?(reason: IgnoredReason, address?: string): void;
  banned?(notice: BanNotice): void;
  unbanned?(notice: BanNotice, why: 'expired' | 'unbanned'): void;
  storeError?(err: Error): void;
  /** one account keeps failing from an address where other accounts succeed (account-aware.ts) */
  accountFailing?(report: AccountFailureReport): void;
}

export interface GuardStatus {
  currentlyFailed: number;
  totalFailed: number;
  currentlyBanned: number;
  totalBanned: number;
  banned: BanRecord[];
  /** the effective automatic allow-list and where each entry came from (at most MAX_LISTED) */
  automaticAllow: AllowEntry[];
  /** automatic entries in all (more than listed when the list is cut) */
  automaticAllowTotal: number;
}
