/**
 * The bounded, sliding memory of accounts: per account the networks (IPv4 /24, IPv6 /48) and
 * User-Agents it used and when last, and which addresses authenticated successfully for which
 * accounts (the guard's AccountEvidence). Maps keep insertion order, so a touch is delete + set
 * and the first key is the least recently used: every bound evicts from the front.
 */
import type { AccountEvidence } from '../guard/index.js';
import { formatNetwork, networkContains, type IpNetwork } from '../net/ip.js';

export interface Seen {
  first: number;
  last: number;
  count: number;
}

export interface AccountState {
  account: string;
  /** network text (198.51.100.0/24, 2001:db8:77::/48) → when */
  networks: Map<string, Seen>;
  /** User-Agent family (product, versions aside) → when, and the last full string */
  agents: Map<string, Seen & { full: string }>;
  lastSeen: number;
}

export interface MemoryLimits {
  maxAccounts: number;
  maxNetworks: number;
  maxAgents: number;
  forgetAfterMs: number;
  /** how long a success makes an address shared (nat.recentSuccess) */
  recentSuccessMs: number;
  /** addresses with successes remembered at most */
  maxAddresses: number;
}

/** accounts remembered per address with successes (an office's phones; more is a PBX-wide NAT) */
const MAX_ACCOUNTS_PER_ADDRESS = 256;

/** What happens to the persisted rows when the memory changes (src/accounts/persist.ts). */
export interface MemoryWrites {
  network(account: string, network: string, seen: Seen): void;
  agent(account: string, agent: string, seen: Seen & { full: string }): void;
  success(address: string, account: string, at: number): void;
  forgetAccount(account: string): void;
  forgetNetwork(account: string, network: string): void;
  forgetAgent(account: string, agent: string): void;
  forgetAddress(address: string): void;
}

const noWrites: MemoryWrites = {
  network() {},
  agent() {},
  success() {},
  forgetAccount() {},
  forgetNetwork() {},
  forgetAgent() {},
  forgetAddress() {},
};

/** The network an account is remembered by: /24 for IPv4, /48 for IPv6. */
export function learnedNetwork(address: IpNetwork): string {
  return formatNetwork(masked(address, address.family === 4 ? 24 : 48));
}

/** The wider network two live places of one account are compared by: /16 and /32. */
export function distantNetwork(address: IpNetwork): string {
  return formatNetwork(masked(address, address.family === 4 ? 16 : 32));
}

function masked(a: IpNetwork, prefix: number): IpNetwork {
  const bytes = new Uint8Array(a.bytes);
  for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { family: a.family, bytes, prefix };
}

/** A User-Agent without its version tokens: a firmware upgrade is not a new device. */
export function agentFamily(ua: string): string {
  const words = ua
    .split(/\s+/)
    .map((w) => w.replace(/\/.*$/, ''))
    .filter((w) => w !== '' && !/^v?\d[\w.-]*$/i.test(w) && !/^\(.*\)$/.test(w));
  return (words.join(' ') || ua).toLowerCase();
}

function touch<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
}

/** an IPv6 address's /64, as a Map key */
const key64 = (a: IpNetwork): string => String.fromCharCode(...a.bytes.subarray(0, 8));

export class AccountMemory implements AccountEvidence {
  private readonly accounts = new Map<string, AccountState>();
  /** address text → { parsed, account → last success } */
  private readonly successes = new Map<string, { net: IpNetwork; accounts: Map<string, number> }>();
  /** the IPv6 ones by their /64, and how many are IPv4: a prefix ban asks without a walk of every
   *  address (one per IPv6 ban, with thousands of phones) */
  private readonly v6By64 = new Map<string, Set<string>>();
  private v4Successes = 0;
  writes: MemoryWrites = noWrites;

  constructor(readonly limits: MemoryLimits) {}

  get(account: string): AccountState | undefined {
    return this.accounts.get(account);
  }

  all(): IterableIterator<AccountState> {
    return this.accounts.values();
  }

  get size(): number {
    return this.accounts.size;
  }

  /** The account's state, made (and the least recently seen one evicted) when new. */
  private state(account: string, now: number): AccountState {
    let st = this.accounts.get(account);
    if (st) {
      touch(this.accounts, account, st);
    } else {
      st = { account, networks: new Map(), agents: new Map(), lastSeen: now };
      this.accounts.set(account, st);
      while (this.accounts.size > this.limits.maxAccounts) {
        const oldest = this.accounts.keys().next().value as string;
        this.accounts.delete(oldest);
        this.writes.forgetAccount(oldest);
      }
    }
    st.lastSeen = now;
    return st;
  }

  /** Records the account at a network; returns whether the network was new to it (null: a new account). */
  seeNetwork(account: string, network: string, now: number): 'known' | 'new' | 'first' {
    const st = this.state(account, now);
    this.expire(st, now);
    const seen = st.networks.get(network);
    const had = st.networks.size;
    const next = seen ? { ...seen, last: now, count: seen.count + 1 } : { first: now, last: now, count: 1 };
    touch(st.networks, network, next);
    while (st.networks.size > this.limits.maxNetworks) {
      const oldest = st.networks.keys().next().value as string;
      st.networks.delete(oldest);
      this.writes.forgetNetwork(account, oldest);
    }
    // a refresh every minute need not be a write each time: the day is what the memory keeps
    if (!seen || now - seen.last > 60_000) this.writes.network(account, network, next);
    return seen ? 'known' : had === 0 ? 'first' : 'new';
  }

  /** Records a User-Agent; returns whether its family was new to the account. */
  seeAgent(account: string, full: string, now: number): 'known' | 'new' | 'first' {
    const st = this.state(account, now);
    this.expire(st, now);
    const family = agentFamily(full);
    const seen = st.agents.get(family);
    const had = st.agents.size;
    const next = seen ? { ...seen, last: now, count: seen.count + 1, full } : { first: now, last: now, count: 1, full };
    touch(st.agents, family, next);
    while (st.agents.size > this.limits.maxAgents) {
      const oldest = st.agents.keys().next().value as string;
      st.agents.delete(oldest);
      this.writes.forgetAgent(account, oldest);
    }
    if (!seen || now - seen.last > 60_000 || seen.full !== full) this.writes.agent(account, family, next);
    return seen ? 'known' : had === 0 ? 'first' : 'new';
  }

  /** A successful authentication of `account` from `address` (the guard's evidence). */
  success(address: IpNetwork, account: string, now: number): void {
    const text = formatNetwork(address);
    let entry = this.successes.get(text);
    if (entry) touch(this.successes, text, entry);
    else {
      entry = { net: address, accounts: new Map() };
      this.successes.set(text, entry);
      this.index(text, address, true);
      while (this.successes.size > this.limits.maxAddresses) {
        const oldest = this.successes.keys().next().value as string;
        this.index(oldest, this.successes.get(oldest)!.net, false);
        this.successes.delete(oldest);
        this.writes.forgetAddress(oldest);
      }
    }
    const last = entry.accounts.get(account);
    touch(entry.accounts, account, now);
    if (entry.accounts.size > MAX_ACCOUNTS_PER_ADDRESS) entry.accounts.delete(entry.accounts.keys().next().value as string);
    if (last === undefined || now - last > 60_000) this.writes.success(text, account, now);
  }

  successfulAccounts(address: string, now: number): number {
    const entry = this.successes.get(address);
    if (entry === undefined) return 0;
    let n = 0;
    for (const at of entry.accounts.values()) if (now - at <= this.limits.recentSuccessMs) n++;
    return n;
  }

  hasRecentSuccess(net: IpNetwork, now: number): boolean {
    if (net.family === 4 ? this.v4Successes === 0 : this.v6By64.size === 0) return false;
    if (net.family === 6 && net.prefix >= 64) {
      for (const text of this.v6By64.get(key64(net)) ?? []) if (this.recentIn(net, this.successes.get(text)!, now)) return true;
      return false;
    }
    for (const entry of this.successes.values()) if (this.recentIn(net, entry, now)) return true;
    return false;
  }

  private recentIn(net: IpNetwork, { net: a, accounts }: { net: IpNetwork; accounts: Map<string, number> }, now: number): boolean {
    if (a.family !== net.family || !networkContains(net, a)) return false;
    for (const at of accounts.values()) if (now - at <= this.limits.recentSuccessMs) return true;
    return false;
  }

  private index(text: string, address: IpNetwork, add: boolean): void {
    if (address.family === 4) {
      this.v4Successes += add ? 1 : -1;
      return;
    }
    const k = key64(address);
    let texts = this.v6By64.get(k);
    if (add) {
      if (!texts) this.v6By64.set(k, (texts = new Set()));
      texts.add(text);
    } else if (texts?.delete(text) && texts.size === 0) this.v6By64.delete(k);
  }

  /** Restores persisted rows (oldest first, so the LRU order is right). */
  restoreNetwork(account: string, network: string, seen: Seen): void {
    const st = this.state(account, seen.last);
    st.lastSeen = Math.max(st.lastSeen, seen.last);
    touch(st.networks, network, seen);
  }

  restoreAgent(account: string, family: string, seen: Seen & { full: string }): void {
    const st = this.state(account, seen.last);
    touch(st.agents, family, seen);
  }

  restoreSuccess(address: IpNetwork, account: string, at: number): void {
    const saved = this.writes;
    this.writes = noWrites;
    this.success(address, account, at);
    this.writes = saved;
  }

  /** Drops what the account has not used within forgetAfter (sliding). */
  private expire(st: AccountState, now: number): void {
    const cut = now - this.limits.forgetAfterMs;
    for (const [net, s] of st.networks)
      if (s.last < cut) {
        st.networks.delete(net);
        this.writes.forgetNetwork(st.account, net);
      }
    for (const [ua, s] of st.agents)
      if (s.last < cut) {
        st.agents.delete(ua);
        this.writes.forgetAgent(st.account, ua);
      }
  }
}
