/**
 * Which bans cover an address or network: the ban of the target itself, or of a wider network
 * that contains it (a manual /24, an IPv6 attacker's /64). Found by looking up every prefix of
 * the target in the active map (at most 33 or 129 lookups), never by walking every ban.
 */
import { AppError } from '../common/errors.js';
import { formatDuration } from '../common/duration.js';
import { formatNetwork, type IpNetwork } from '../net/ip.js';
import type { BanRecord } from './types.js';

/** How a ban relates to the target asked about. */
export type BanCover = 'itself' | 'key' | 'covering';

/** One ban that drops a target: this daemon's own, or a decision in a remote set. */
export type BanMatch = LocalBanMatch | RemoteBanMatch;

/** One of this daemon's bans that drops a target. */
export interface LocalBanMatch {
  kind: 'local';
  /** 'itself': the target's own ban; 'key': the IPv6 prefix the guard counts and bans the address
   *  by (guard.ipv6Prefix); 'covering': a wider network */
  how: BanCover;
  ban: BanRecord;
}

/** A decision in a set this daemon did not decide (the fleet's LAPI decisions, a feed). */
export interface RemoteBanMatch {
  kind: 'fleet' | 'feed';
  /** the set's group name */
  set: string;
  how: BanCover;
  target: string;
  /** epoch ms; null = no end */
  expiresAt: number | null;
}

/** A remote set as `why` reads it: an entry by its target text (src/fleet's RemoteSet.get). */
export interface RemoteBanSet {
  kind: 'fleet' | 'feed';
  name: string;
  get(target: string): { target: string; expiresAt: number | null } | undefined;
}

/** The entries of remote sets that cover `net` (the same prefix walk as coveringBans). */
export function remoteMatches(sets: RemoteBanSet[], net: IpNetwork, key: IpNetwork, now: number): RemoteBanMatch[] {
  const keyText = formatNetwork(key);
  const out: RemoteBanMatch[] = [];
  if (sets.length === 0) return out;
  for (const n of enclosingNetworks(net)) {
    const text = formatNetwork(n);
    for (const s of sets) {
      const e = s.get(text);
      if (!e || (e.expiresAt !== null && e.expiresAt <= now)) continue;
      out.push({
        kind: s.kind,
        set: s.name,
        how: n.prefix === net.prefix ? 'itself' : text === keyText ? 'key' : 'covering',
        target: text,
        expiresAt: e.expiresAt,
      });
    }
  }
  return out;
}

/** `net` with its host bits past `prefix` cleared. */
export function networkAt(net: IpNetwork, prefix: number): IpNetwork {
  const bytes = new Uint8Array(net.bytes);
  for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { family: net.family, bytes, prefix };
}

/** Every network that contains `net`, itself first, down to /0. */
export function enclosingNetworks(net: IpNetwork): IpNetwork[] {
  const out: IpNetwork[] = [];
  for (let p = net.prefix; p >= 0; p--) out.push(networkAt(net, p));
  return out;
}

/** The bans in force that cover `net`, narrowest first; `key`: the prefix the guard bans the
 *  address by (IPv6 /64), reported as 'key'. */
export function coveringBans(active: ReadonlyMap<string, BanRecord>, net: IpNetwork, key: IpNetwork, now: number): LocalBanMatch[] {
  const keyText = formatNetwork(key);
  const out: LocalBanMatch[] = [];
  for (const n of enclosingNetworks(net)) {
    const text = formatNetwork(n);
    const ban = active.get(text);
    if (!ban || (ban.expiresAt !== null && ban.expiresAt <= now)) continue;
    out.push({ kind: 'local', how: n.prefix === net.prefix ? 'itself' : text === keyText ? 'key' : 'covering', ban });
  }
  return out;
}

/** What an unban did. */
export interface UnbanOutcome {
  /** the target as asked, canonical */
  target: string;
  /** the bans ended */
  removed: BanRecord[];
  /** wider bans that still cover the target (not asked to remove them) */
  stillCovered: BanRecord[];
}

/** The target is not banned itself, but a wider ban covers it (code COVERED): the person must
 *  say so (--covering) before a wider ban ends. */
export class CoveredByBanError extends AppError {
  constructor(
    message: string,
    readonly covering: string[],
  ) {
    super(message, 'COVERED', 409);
  }
}

/** "198.51.100.0/24 (rule manual, 23h left)" */
export function describeBan(b: BanRecord, now: number): string {
  const left = b.expiresAt === null ? 'permanent' : `${formatDuration(Math.max(0, Math.round((b.expiresAt - now) / 1000)))} left`;
  return `${b.target} (rule ${b.rule}, ${left})`;
}

/**
 * Which bans an unban of `net` ends: its own ban, or the prefix it is banned by (IPv6 key); a
 * wider covering ban only with `covering`, else CoveredByBanError naming it.
 */
export function planUnban(matches: LocalBanMatch[], target: string, covering: boolean, now: number): { remove: BanRecord[]; still: BanRecord[] } {
  const own = matches.filter((m) => m.how !== 'covering').map((m) => m.ban);
  const wider = matches.filter((m) => m.how === 'covering').map((m) => m.ban);
  if (covering) return { remove: [...own, ...wider], still: [] };
  if (own.length === 0 && wider.length > 0) {
    const names = wider.map((b) => describeBan(b, now)).join(', ');
    throw new CoveredByBanError(
      `${target} is not banned itself: it is covered by the ban of ${names}. Unban ${wider[0]!.target}, or ask again with --covering to end the covering ban`,
      wider.map((b) => b.target),
    );
  }
  return { remove: own, still: wider };
}
