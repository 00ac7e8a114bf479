import { AppError } from '../common/errors.js';
import type { Family } from '../firewall/types.js';
import type { IpNetwork } from '../net/ip.js';

/** Where a ban came from. */
export type BanSource = 'rule' | 'recidive' | 'manual' | 'odoo' | 'api' | 'fraud';

/** One ban, as the store keeps it and the CLI / API / Odoo show it. */
export interface BanRecord {
  /** canonical address or CIDR (IPv6 attackers are banned by their configured prefix) */
  target: string;
  family: Family;
  isNetwork: boolean;
  /** epoch ms */
  createdAt: number;
  /** epoch ms; null = permanent */
  expiresAt: number | null;
  rule: string;
  source: BanSource;
  reason: string;
  /** failures counted in the window that triggered it (0 for manual bans) */
  count: number;
}

export interface ManualBanRequest {
  /** address or CIDR as typed by a person or sent by Odoo: validated and canonicalised */
  target: string;
  /** seconds; null = permanent; undefined = the configured default (guard.manualBanDuration) */
  durationSec?: number | null;
  reason?: string;
  source: Exclude<BanSource, 'rule' | 'recidive'>;
}

/** Raised when a ban targets an allow-listed address; message is shown to the person asking. */
export class AllowListedError extends AppError {
  constructor(message: string) {
    super(message, 'ALLOW_LISTED', 409);
  }
}

/** Raised for an address or CIDR that does not parse. */
export class InvalidTargetError extends AppError {
  constructor(message: string) {
    super(message, 'INVALID_TARGET', 400);
  }
}

/** Raised for a ban wider than allowed or in a range that is never banned (src/guard/scope.ts):
 *  code TOO_WIDE or RESERVED_RANGE. */
export class BanScopeError extends InvalidTargetError {
  constructor(
    message: string,
    override readonly code: 'TOO_WIDE' | 'RESERVED_RANGE',
  ) {
    super(message);
  }
}

/** Raised for a ban that covers one of the host's own addresses (code OWN_ADDRESS): like an
 *  allow-listed address, it is never banned. */
export class OwnAddressError extends AllowListedError {
  override readonly code = 'OWN_ADDRESS';
}

/** Raised for a ban duration longer than guard.maxBanDuration (code DURATION_TOO_LONG). */
export class BanDurationError extends InvalidTargetError {
  override readonly code = 'DURATION_TOO_LONG';
}

/** The ban operations other stages (api, odoo, cli) may call. Implemented in src/guard/. */
export interface BanControl {
  ban(request: ManualBanRequest): Promise<BanRecord>;
  /** true when something was unbanned */
  unban(target: string): Promise<boolean>;
  unbanAll(): Promise<number>;
  listBans(): BanRecord[];
  /** replace the configured allow list and the manual deny list (Odoo's update_access_rules) */
  replaceAccessRules(rules: { allow: string[]; deny: string[] }): Promise<void>;
  isAllowListed(address: string): boolean;
}

/** A ban or unban the guardian made, forwarded to Odoo / webhooks as an event. */
export interface BanNotice {
  action: 'ban' | 'unban';
  record: BanRecord;
}

/** What a ban decided elsewhere (the fleet, a feed) is judged by: the guard's own allow-list and
 *  scope limits, and its own bans (Guardian.remoteJudge). */
export interface RemoteBanJudge {
  /** the allow-list entry the network is, covers or lies in (the host's own addresses included), or null */
  allowed(net: IpNetwork): string | null;
  /** why a ban of this network is refused (too wide, reserved range, own address), or null */
  scopeRefusal(net: IpNetwork): string | null;
  /** the guard's own active ban of exactly this target, if any */
  localBan(target: string): { rule: string; expiresAt: number | null } | undefined;
}
