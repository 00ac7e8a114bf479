/**
 * The allow-list: what is never counted nor banned. Two parts, one effective list:
 *  - configured: guard.allow, replaced by Odoo's update_access_rules;
 *  - automatic, by source, each entry with where it came from: loopback and the AMI / Odoo hosts
 *    written as addresses ('static'), the host names resolved ('hosts', HostAllowFeed), every
 *    address of every local interface ('interfaces'), the resolvers and default gateways
 *    ('resolver', 'gateway', HostWatch).
 * The same effective list is the guard's check and the kernel allow set (Guardian.allowTargets):
 * the kernel accepts these sources before any ban set is consulted, so a ban that reached the
 * kernel some other way still never cuts the host off from itself, its resolver or its gateway.
 */
import { formatNetwork, isSingleAddress, NetworkList, networkContains, networksOverlap, parseNetwork, type IpNetwork } from '../net/ip.js';
import type { FirewallTarget } from '../firewall/types.js';
import { InvalidTargetError } from './types.js';

/** One automatic entry and where it came from ('loopback', 'interface eth0', 'AMI host pbx.example.com',
 *  'resolver (/etc/resolv.conf)', 'default gateway (eth0)'). */
export interface AllowEntry {
  entry: string;
  from: string;
}

/** 'runtime': entries added with `pbx-guardian allow add` (kept in the state directory): not
 *  automatic, listed apart */
export type AllowSource = 'static' | 'hosts' | 'interfaces' | 'resolver' | 'gateway' | 'runtime';

/** at most this many automatic entries per source (a host with 1000 addresses on an interface
 *  still has a bounded allow-list, status and kernel set) */
export const MAX_ENTRIES_PER_SOURCE = 512;
/** status lists at most this many automatic entries (status --json stays small) */
export const MAX_LISTED = 256;

interface Parsed {
  net: IpNetwork;
  from: string;
}

export class AllowList {
  private configured: IpNetwork[] = [];
  private readonly automatic = new Map<AllowSource, Parsed[]>();
  private list = new NetworkList();
  private key = '';

  /** guard.allow / Odoo's allow entries: throws InvalidTargetError naming `where` on a bad one. */
  setConfigured(items: string[], where = 'guard.allow'): void {
    this.configured = items.map((item, i) => {
      const net = parseNetwork(item);
      if (!net) throw new InvalidTargetError(`${where}[${i}]: "${String(item).slice(0, 80)}" is not an IPv4/IPv6 address or CIDR`);
      return net;
    });
    this.rebuild();
  }

  /** A copy with other configured entries: lets a caller judge a change before making it. */
  withConfigured(items: string[], where?: string): AllowList {
    const next = new AllowList();
    for (const [s, list] of this.automatic) next.automatic.set(s, list);
    next.setConfigured(items, where);
    return next;
  }

  /** Replaces one source's entries (unparsable ones are skipped: they come from the host, not a
   *  person). Returns true when the effective list changed. */
  setSource(source: AllowSource, entries: Array<string | AllowEntry>): boolean {
    const parsed: Parsed[] = [];
    const seen = new Set<string>();
    for (const e of entries) {
      const { entry, from } = typeof e === 'string' ? { entry: e, from: 'automatic' } : e;
      const net = parseNetwork(entry);
      if (!net) continue;
      const text = formatNetwork(net);
      if (seen.has(text)) continue;
      seen.add(text);
      parsed.push({ net, from });
      if (parsed.length >= MAX_ENTRIES_PER_SOURCE) break;
    }
    this.automatic.set(source, parsed);
    const before = this.key;
    this.rebuild();
    return this.key !== before;
  }

  contains(address: IpNetwork): boolean {
    return this.list.contains(address);
  }

  findOverlap(net: IpNetwork): IpNetwork | undefined {
    return this.list.findOverlap(net);
  }

  /** Where an allowed network came from: 'guard.allow' or its automatic origin. */
  originOf(net: IpNetwork): string {
    const text = formatNetwork(net);
    for (const list of this.automatic.values()) for (const p of list) if (formatNetwork(p.net) === text) return p.from;
    return 'guard.allow';
  }

  /** The first allowed entry `net` overlaps (configured first, then by source), skipping the
   *  source `except`: a walk of the list, for manual bans (the hot path uses contains). */
  overlapOf(net: IpNetwork, except?: AllowSource): { by: IpNetwork; from: string } | undefined {
    for (const c of this.configured) if (networksOverlap(c, net)) return { by: c, from: 'guard.allow' };
    for (const [source, list] of this.automatic) {
      if (source === except) continue;
      for (const p of list) if (networksOverlap(p.net, net)) return { by: p.net, from: p.from };
    }
    return undefined;
  }

  /** Every entry that contains `address`, with its origin (configured first, then by source). */
  entriesContaining(address: IpNetwork): AllowEntry[] {
    const out: AllowEntry[] = [];
    for (const c of this.configured) if (networkContains(c, address)) out.push({ entry: formatNetwork(c), from: 'guard.allow' });
    for (const list of this.automatic.values())
      for (const p of list) if (networkContains(p.net, address)) out.push({ entry: formatNetwork(p.net), from: p.from });
    return out;
  }

  /** Why `net` may not be banned (it is, covers or lies in an allowed entry, named with its
   *  origin), or null; `except`: a source judged elsewhere (the interfaces: by the ban scope). */
  refusal(net: IpNetwork, except?: AllowSource): string | null {
    const hit = this.overlapOf(net, except);
    if (!hit) return null;
    const text = formatNetwork(net);
    const by = formatNetwork(hit.by);
    if (text === by) return `${text} is allow-listed (${hit.from}) and is never banned`;
    const hint = hit.by.prefix > net.prefix ? `: ban the single address, or a narrower network that leaves ${by} out` : '';
    return `${text} overlaps the allow-listed ${by} (${hit.from}) and is never banned${hint}`;
  }

  /** The effective list for the kernel allow set. */
  targets(): FirewallTarget[] {
    return this.list.entries().map((n) => ({ target: formatNetwork(n), family: n.family, isNetwork: !isSingleAddress(n) }));
  }

  configuredEntries(): string[] {
    return this.configured.map(formatNetwork);
  }

  /** The automatic entries with their origins, in source order (bounded by MAX_LISTED). */
  automaticEntries(limit = MAX_LISTED): AllowEntry[] {
    const out: AllowEntry[] = [];
    for (const [source, list] of this.automatic) {
      if (source === 'runtime') continue;
      for (const p of list) {
        if (out.length >= limit) return out;
        out.push({ entry: formatNetwork(p.net), from: p.from });
      }
    }
    return out;
  }

  get automaticCount(): number {
    let n = 0;
    for (const [source, list] of this.automatic) if (source !== 'runtime') n += list.length;
    return n;
  }

  /** The automatic source that holds exactly `net` (its origin), or undefined. */
  automaticOrigin(net: IpNetwork): string | undefined {
    const text = formatNetwork(net);
    for (const [source, list] of this.automatic) {
      if (source === 'runtime') continue;
      for (const p of list) if (formatNetwork(p.net) === text) return p.from;
    }
    return undefined;
  }

  private rebuild(): void {
    const list = new NetworkList(this.configured);
    for (const entries of this.automatic.values()) for (const p of entries) list.add(p.net);
    this.list = list;
    this.key = list.entries().map(formatNetwork).sort().join(' ');
  }
}

/** The host's interface addresses (what BanScope reads) as allow entries: 'interface eth0'. */
export function interfaceEntries(addresses: Array<{ address: string; why: string; iface?: string; broadcast?: boolean }>): AllowEntry[] {
  return addresses.filter((a) => !a.broadcast).map((a) => ({ entry: a.address, from: a.iface ? `interface ${a.iface}` : a.why }));
}
