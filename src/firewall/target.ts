import { isIP } from 'node:net';
import type { Family, FirewallTarget } from './types.js';

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

export class InvalidFirewallTargetError extends Error {
  constructor(text: unknown) {
    super(`refusing firewall target ${JSON.stringify(String(text)).slice(0, 80)}: not an IP address or CIDR`);
    this.name = 'InvalidFirewallTargetError';
  }
}

function v4Bytes(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

function v6Bytes(text: string): number[] | null {
  let head = text;
  let tail: number[] | null = null;
  const lastColon = head.lastIndexOf(':');
  if (head.includes('.', lastColon)) {
    tail = v4Bytes(head.slice(lastColon + 1));
    if (!tail) return null;
    head = head.slice(0, lastColon + 1) + '0:0';
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const groups = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  if (!left || !right) return null;
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...left, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...right];
  const out: number[] = [];
  for (const g of all) out.push(g >> 8, g & 0xff);
  if (tail) out.splice(12, 4, ...tail);
  return out;
}

function formatV6(b: number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parses and canonicalises an address or CIDR; null when it is not one. Never throws. */
export function canonicalTarget(text: unknown): CanonicalTarget | null {
  if (typeof text !== 'string' || text.length === 0 || text.length > 64) return null;
  let addr = text;
  let prefix: number | null = null;
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    addr = text.slice(0, slash);
  }
  const kind = isIP(addr);
  let bytes: number[] | null = null;
  let family: Family;
  if (kind === 4) {
    bytes = v4Bytes(addr);
    family = 4;
  } else if (kind === 6 && !addr.includes('%')) {
    bytes = v6Bytes(addr);
    family = 6;
  } else return null;
  if (!bytes) return null;
  const bits = bytes.length * 8;
  const pfx = prefix ?? bits;
  if (pfx > bits) return null;
  for (let bit = pfx; bit < bits; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  const address = family === 4 ? bytes.join('.') : formatV6(bytes);
  const isNetwork = pfx !== bits;
  return { target: isNetwork ? `${address}/${pfx}` : address, family, isNetwork, address, prefix: pfx };
}

/** Like canonicalTarget, but checks it against the declared family/isNetwork and throws. */
export function checkTarget(t: FirewallTarget): CanonicalTarget {
  const c = canonicalTarget(t?.target);
  if (!c || c.family !== t.family || c.isNetwork !== t.isNetwork) throw new InvalidFirewallTargetError(t?.target);
  return c;
}
