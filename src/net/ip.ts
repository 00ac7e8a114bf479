/**
 * IP address and network parsing shared by the stages: bytes in, canonical text out (dotted quad,
 * RFC 5952 IPv6, "/prefix" only for networks, host bits cleared). Never throws on bad input.
 */
import { isIP } from 'node:net';
/** 4 or 6 */
export type Family = 4 | 6;

/** A parsed IP address or network, as bytes. Canonical text is derived from the bytes, so two
 *  spellings of one address ("::1", "0:0::1") compare and store equal. */
export interface IpNetwork {
  family: Family;
  /** 4 or 16 bytes, host bits cleared */
  bytes: Uint8Array;
  prefix: number;
}

const MAX_TEXT = 64;

/** A dotted quad, exactly as node:net's isIPv4 accepts it (no leading zeros, each part <= 255),
 *  scanned without allocating anything but the result: this is on the AMI hot path. */
export function parseIPv4(text: string): Uint8Array | null {
  const len = text.length;
  if (len < 7 || len > 15) return null;
  const out = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= len; i++) {
    const c = i < len ? text.charCodeAt(i) : 46; // a final '.' closes the last part
    if (c === 46) {
      if (digits === 0 || part > 3) return null;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return null; // leading zero
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return null;
    } else {
      return null;
    }
  }
  return part === 4 ? out : null;
}

function parseV6(text: string): Uint8Array | null {
  let head = text;
  let tailV4: Uint8Array | null = null;
  const lastColon = head.lastIndexOf(':');
  if (head.includes('.', lastColon)) {
    tailV4 = parseIPv4(head.slice(lastColon + 1));
    if (!tailV4) return null;
    head = head.slice(0, lastColon + 1) + '0:0';
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const toGroups = (s: string): number[] | null => {
    if (s === '') return [];
    const groups = s.split(':');
    const out: number[] = [];
    for (const g of groups) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = toGroups(halves[0]!);
  const right = halves.length === 2 ? toGroups(halves[1]!) : [];
  if (!left || !right) return null;
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const groups = [...left, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...right];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (tailV4) out.set(tailV4, 12);
  return out;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

function clearHostBits(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let bit = prefix; bit < out.length * 8; bit++) out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return out;
}

/** Parses an address ("192.0.2.1", "2001:db8::1", "fe80::1%eth0", "::ffff:192.0.2.1") or a CIDR
 *  ("198.51.100.0/24"). IPv4-mapped IPv6 becomes IPv4. Host bits of a CIDR are cleared.
 *  Returns null for anything else, never throws. */
export function parseNetwork(input: string): IpNetwork | null {
  if (typeof input !== 'string' || input.length === 0 || input.length > MAX_TEXT) return null;
  let text = input.trim();
  let prefix: number | null = null;
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    text = text.slice(0, slash);
  }
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const pct = text.indexOf('%');
  if (pct >= 0) text = text.slice(0, pct);
  if (!text.includes(':')) {
    const bytes = parseIPv4(text);
    if (!bytes) return null;
    const pfx = prefix ?? 32;
    if (pfx > 32) return null;
    return { family: 4, bytes: pfx === 32 ? bytes : clearHostBits(bytes, pfx), prefix: pfx };
  }
  if (isIP(text) === 6) {
    const bytes = parseV6(text);
    if (!bytes) return null;
    const pfx = prefix ?? 128;
    if (pfx > 128) return null;
    if (isV4Mapped(bytes) && pfx >= 96) {
      return { family: 4, bytes: clearHostBits(bytes.slice(12), pfx - 96), prefix: pfx - 96 };
    }
    return { family: 6, bytes: clearHostBits(bytes, pfx), prefix: pfx };
  }
  return null;
}

export function isSingleAddress(net: IpNetwork): boolean {
  return net.prefix === net.bytes.length * 8;
}

/** Canonical text: "192.0.2.1", "2001:db8::1", or with "/prefix" for a network. */
export function formatNetwork(net: IpNetwork): string {
  const b = net.bytes;
  const addr = net.family === 4 ? `${b[0]}.${b[1]}.${b[2]}.${b[3]}` : formatV6(b);
  return isSingleAddress(net) ? addr : `${addr}/${net.prefix}`;
}

function formatV6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
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
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}

/** true when `inner` (address or network) lies wholly inside `outer`. */
export function networkContains(outer: IpNetwork, inner: IpNetwork): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  const full = outer.prefix >> 3;
  for (let i = 0; i < full; i++) if (outer.bytes[i] !== inner.bytes[i]) return false;
  const rest = outer.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (outer.bytes[full]! & mask) === (inner.bytes[full]! & mask);
}

/** true when two networks share any address. */
export function networksOverlap(a: IpNetwork, b: IpNetwork): boolean {
  return networkContains(a, b) || networkContains(b, a);
}

/** The network an attacker is counted and banned by: the address itself for IPv4, its
 *  configured prefix (default /64) for IPv6. */
export function attackerKey(address: IpNetwork, ipv6Prefix: number): IpNetwork {
  if (address.family === 4 || ipv6Prefix >= 128) return address;
  return { family: 6, bytes: clearHostBits(address.bytes, ipv6Prefix), prefix: ipv6Prefix };
}

/** A small list of networks with a containment test (allow-lists are tens of entries). */
export class NetworkList {
  private readonly v4: IpNetwork[] = [];
  private readonly v6: IpNetwork[] = [];

  constructor(networks: Iterable<IpNetwork> = []) {
    for (const n of networks) this.add(n);
  }

  add(net: IpNetwork): void {
    (net.family === 4 ? this.v4 : this.v6).push(net);
  }

  /** the first entry that overlaps `net` (contains it, or lies inside it) */
  findOverlap(net: IpNetwork): IpNetwork | undefined {
    const list = net.family === 4 ? this.v4 : this.v6;
    return list.find((entry) => networksOverlap(entry, net));
  }

  contains(net: IpNetwork): boolean {
    const list = net.family === 4 ? this.v4 : this.v6;
    for (const entry of list) if (networkContains(entry, net)) return true;
    return false;
  }

  entries(): IpNetwork[] {
    return [...this.v4, ...this.v6];
  }
}
