import { formatNetwork, isSingleAddress, parseNetwork } from '../net/ip.js';
import type { FirewallTarget } from './types.js';
import { AppError } from '../common/errors.js';

/**
 * Defence in depth for everything that goes into an nft script or an ipset restore file:
 * a target is re-parsed here and re-serialised from bytes. Nothing that fails to parse is ever
 * interpolated into a command. Canonical text is the same as guard/ip.ts produces: dotted quad,
 * RFC 5952 IPv6, "/prefix" only for networks (host bits cleared).
 */
export interface CanonicalTarget extends FirewallTarget {
  /** the address part (network address for a CIDR) */
  address: string;
  prefix: number;
}

/** The firewall's own check of a target (the guard checks it first and answers INVALID_TARGET). */
export class InvalidFirewallTargetError extends AppError {
  constructor(text: unknown) {
    super(`refusing firewall target ${JSON.stringify(String(text)).slice(0, 80)}: not an IP address or CIDR`, 'INVALID_FIREWALL_TARGET', 400);
    this.name = 'InvalidFirewallTargetError';
  }
}

/** Parses and canonicalises an address or CIDR; null when it is not one. Never throws. */
export function canonicalTarget(text: unknown): CanonicalTarget | null {
  if (typeof text !== 'string' || text.includes('%')) return null;
  const net = parseNetwork(text);
  if (!net) return null;
  const isNetwork = !isSingleAddress(net);
  const address = formatNetwork({ ...net, prefix: net.bytes.length * 8 });
  return { target: formatNetwork(net), family: net.family, isNetwork, address, prefix: net.prefix };
}

/** Like canonicalTarget, but checks it against the declared family/isNetwork and throws. */
export function checkTarget(t: FirewallTarget): CanonicalTarget {
  const c = canonicalTarget(t?.target);
  if (!c || c.family !== t.family || c.isNetwork !== t.isNetwork) throw new InvalidFirewallTargetError(t?.target);
  return c;
}
