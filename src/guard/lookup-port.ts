import type { AddressReport } from './explain.js';
import type { LocalBanMatch, UnbanOutcome } from './lookup.js';

/** What the admin routes ask the guard about one target (the Guardian implements it). */
export interface BanLookup {
  /** the bans in force that cover `target`, narrowest first (throws InvalidTargetError) */
  bansCovering(target: string): LocalBanMatch[];
  /** ends the target's own ban (or its IPv6 key's); a covering ban only with `covering` */
  unbanTarget(target: string, opts?: { covering?: boolean }): Promise<UnbanOutcome>;
  /** everything the guard knows about one address (`pbx-guardian why`) */
  explain(address: string): AddressReport;
}
