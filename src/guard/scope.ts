/**
 * What one ban may cover, judged in one place for every path (rules, CLI, REST, Odoo, feeds):
 * no network wider than the configured widest prefix, nothing in the ranges a host needs to hear
 * from or that are never a real source (link-local, multicast, unspecified, loopback, broadcast,
 * reserved), and never an address of the host itself (its interfaces, read through a small port).
 */
import { networkInterfaces } from 'node:os';
import { formatNetwork, NetworkList, networksOverlap, parseNetwork, type IpNetwork } from '../net/ip.js';

export interface ScopeLimits {
  /** widest IPv4 prefix one ban may cover (16: at most a /16) */
  widestV4: number;
  /** widest IPv6 prefix one ban may cover (32: at most a /32) */
  widestV6: number;
}

export const defaultScopeLimits: ScopeLimits = { widestV4: 16, widestV6: 32 };

/** The host's own addresses, and the addresses reserved on its links (IPv4 subnet broadcasts). */
export interface HostAddressPort {
  /** address or CIDR texts; `why` says what each one is (shown in refusals); `iface` the
   *  interface it is on, `broadcast` true for a subnet broadcast (refused, but not allow-listed) */
  addresses(): HostAddress[];
}

export interface HostAddress {
  address: string;
  why: string;
  iface?: string;
  broadcast?: boolean;
}

export type ScopeCode = 'TOO_WIDE' | 'RESERVED_RANGE' | 'OWN_ADDRESS';

export interface ScopeRefusal {
  code: ScopeCode;
  message: string;
}

interface Named {
  net: IpNetwork;
  why: string;
}

/** Ranges no ban may touch (contain, or lie inside). Loopback is not here: the daemon always
 *  allow-lists 127.0.0.0/8 and ::1 (src/main.ts), and 127.0.0.1 and ::1 are the host's own. */
const RESERVED: Array<[string, string]> = [
  ['0.0.0.0/8', 'the unspecified / "this network" range'],
  ['169.254.0.0/16', 'IPv4 link-local'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved (includes the broadcast 255.255.255.255)'],
  ['::/128', 'the unspecified address'],
  ['fe80::/10', 'IPv6 link-local (router advertisements, neighbour discovery)'],
  ['ff00::/8', 'multicast'],
];
const reserved: Named[] = RESERVED.map(([text, why]) => ({ net: parseNetwork(text)!, why }));

/** true for 169.254.0.0/16 and fe80::/10: cheap, for the guard's hot path. */
export function isLinkLocal(a: IpNetwork): boolean {
  return a.family === 4 ? a.bytes[0] === 169 && a.bytes[1] === 254 : a.bytes[0] === 0xfe && (a.bytes[1]! & 0xc0) === 0x80;
}

/** true for a single address inside one of RESERVED other than link-local (byte tests: the
 *  hot path), e.g. 0.1.2.3, 224.0.0.1, 255.255.255.255, ::, ff02::1. */
function isReservedSource(a: IpNetwork): boolean {
  const b = a.bytes;
  if (a.family === 4) return b[0] === 0 || b[0]! >= 224;
  if (b[0] === 0xff) return true;
  for (let i = 0; i < 16; i++) if (b[i] !== 0) return false;
  return true;
}

/** Every address of every local interface (os.networkInterfaces()), plus each IPv4 subnet's
 *  broadcast address. */
export const interfaceAddresses: HostAddressPort = {
  addresses() {
    const out: HostAddress[] = [];
    for (const [name, list] of Object.entries(networkInterfaces())) {
      for (const a of list ?? []) {
        out.push({ address: a.address, why: `an address of this host (${name})`, iface: name });
        const net = a.family === 'IPv4' && a.cidr ? parseNetwork(a.cidr) : null;
        if (net && net.prefix < 31) {
          const b = new Uint8Array(net.bytes);
          for (let bit = net.prefix; bit < 32; bit++) b[bit >> 3]! |= 0x80 >> (bit & 7);
          out.push({
            address: formatNetwork({ family: 4, bytes: b, prefix: 32 }),
            why: `the broadcast address of ${name}'s subnet ${a.cidr}`,
            iface: name,
            broadcast: true,
          });
        }
      }
    }
    return out;
  },
};

/** The judge. `refresh()` re-reads the host's addresses (at start, on reload, periodically). */
export class BanScope {
  private own: Named[] = [];
  private ownList = new NetworkList();
  private ownKey = '';
  /** what the port gave at the last change (the allow-list's 'interfaces' source reads it) */
  private lastAddresses: HostAddress[] = [];

  constructor(
    private readonly limits: ScopeLimits,
    private readonly host: HostAddressPort,
  ) {
    this.refresh();
  }

  /** Re-reads the host's addresses; true when they changed. */
  refresh(): boolean {
    const own: Named[] = [];
    let list: HostAddress[] = [];
    try {
      list = this.host.addresses();
    } catch {
      return false; // keep the last known addresses
    }
    for (const { address, why } of list) {
      const net = parseNetwork(address);
      if (net) own.push({ net, why });
    }
    const key = own
      .map((o) => formatNetwork(o.net))
      .sort()
      .join(' ');
    if (key === this.ownKey) return false;
    this.ownKey = key;
    this.own = own;
    this.ownList = new NetworkList(own.map((o) => o.net));
    this.lastAddresses = list;
    return true;
  }

  /** The host's addresses as last read. */
  hostAddresses(): HostAddress[] {
    return this.lastAddresses;
  }

  /** The host's own address that `net` covers, if any. */
  ownOverlap(net: IpNetwork): IpNetwork | undefined {
    return this.ownList.findOverlap(net);
  }

  /** Why this single source address is never counted nor banned, or null: the guard's hot path
   *  asks this of every event, so it is two short list walks. */
  neverBanned(address: IpNetwork): 'link-local' | 'reserved' | 'own-address' | null {
    if (isLinkLocal(address)) return 'link-local';
    if (isReservedSource(address)) return 'reserved';
    return this.ownList.contains(address) ? 'own-address' : null;
  }

  /** Why `net` may not be banned, or null when it may. */
  refusal(net: IpNetwork): ScopeRefusal | null {
    const text = formatNetwork(net);
    const widest = net.family === 4 ? this.limits.widestV4 : this.limits.widestV6;
    if (net.prefix < widest) {
      const key = net.family === 4 ? 'guard.widestBanIPv4' : 'guard.widestBanIPv6';
      return {
        code: 'TOO_WIDE',
        message: `${text} is wider than the widest ban allowed (/${widest}, ${key}): ban narrower networks, or widen ${key} in the config`,
      };
    }
    for (const r of reserved) {
      if (networksOverlap(r.net, net))
        return { code: 'RESERVED_RANGE', message: `${text} is in or covers ${formatNetwork(r.net)} (${r.why}), which is never banned` };
    }
    for (const o of this.own) {
      if (networksOverlap(o.net, net)) return { code: 'OWN_ADDRESS', message: `${text} covers ${formatNetwork(o.net)}, ${o.why}, which is never banned` };
    }
    return null;
  }
}
