/**
 * The accounts stage: learns where each account (PJSIP endpoint) authenticates from, and raises
 * GuardianAccountAnomaly when it changes (docs/accounts.md). Fed AMI events on the read path
 * (Subscriber.handleAmiEvent: one Map lookup for the events it does not take):
 *   SuccessfulAuth  AccountID + RemoteAddress (the packet source): the network memory and the
 *                   guard's evidence of shared addresses
 *   ContactStatus   a contact appears (NonQualified, Reachable) or goes (Removed): live places
 *   ContactList     the User-Agent (no event carries it; asked by PJSIPShowContacts on a new contact)
 */
import type { Logger } from 'pino';
import type { AmiMessage, AmiPort } from '../ami/types.js';
import { AppError } from '../common/errors.js';
import type { GuardianEvent, Subscriber } from '../guard/index.js';
import { formatNetwork, type IpNetwork } from '../net/ip.js';
import { parseAsteriskAddress } from '../sources/address.js';
import type { AnomalyPolicy } from './config-schema.js';
import { AccountMemory, distantNetwork, learnedNetwork, type MemoryLimits } from './memory.js';
import type { AccountStore, AnomalyRow } from './persist.js';
import { contactAddress, cleanAgent, isAccountName, type Signal } from './names.js';

/** Restricts an account to internal calls, and lifts it (the integrator wires it to the fraud
 *  stage's AstDB block, value `internal`). */
export interface AccountRestrictPort {
  restrict(account: string, reason: string): Promise<void>;
  lift(account: string): Promise<void>;
}

export interface AccountWatchOptions {
  limits: MemoryLimits;
  learningPeriodMs: number;
  distantWindowMs: number;
  policy: Record<Signal, AnomalyPolicy>;
  userAgentLookup: boolean;
  /** the events of the stage (GuardianAccountAnomaly), to webhooks and Odoo */
  emit: (ev: GuardianEvent) => void;
  restrict?: AccountRestrictPort | null;
  ami?: AmiPort | null;
  store?: AccountStore | null;
  logger: Logger;
  clock?: () => number;
  /** counters (metrics); each called with bounded labels */
  onAnomaly?: (signal: Signal, action: AnomalyPolicy) => void;
}

/** a contact announced within this of the account's SuccessfulAuth came from that auth's address */
const CONTACT_AUTH_MS = 2_000;
/** a second network is judged this long after it shows, so a move (the old contact Removed) is no "at once" */
const DISTANT_GRACE_MS = 5_000;
const UA_LOOKUP_EVERY_MS = 30_000;
const MAX_LIVE_PER_ACCOUNT = 16;
const MAX_PENDING = 10_000;
const MAX_OPEN_LISTED = 1_000;

interface Live {
  /** distant network (/16, /32) → the address and when it was last used */
  places: Map<string, { address: string; family: 4 | 6; last: number; contact: string | null }>;
  lastAuth: { address: IpNetwork; at: number } | null;
  /** distant pairs already reported (until acknowledged) */
  reported: Set<string>;
}

export interface AccountView {
  account: string;
  lastSeen: number;
  networks: Array<{ network: string; first: number; last: number; count: number }>;
  userAgents: Array<{ userAgent: string; first: number; last: number }>;
  restricted: boolean;
  anomalies: AnomalyRow[];
}

export class AccountWatch implements Subscriber {
  readonly name = 'accounts';
  readonly memory: AccountMemory;
  private readonly clock: () => number;
  private readonly learningUntil: number;
  private readonly live = new Map<string, Live>();
  /** accounts whose distant check is due (account → due time) */
  private readonly pending = new Map<string, number>();
  private readonly open: AnomalyRow[] = [];
  private nextId = 1;
  private timer: NodeJS.Timeout | undefined;
  private uaLookupAt = -Infinity;
  private uaLookupQueued = false;
  private closed = false;
  private readonly handlers: Map<string, (msg: AmiMessage, now: number) => void>;

  constructor(private readonly o: AccountWatchOptions) {
    this.clock = o.clock ?? Date.now;
    const now = this.clock();
    this.memory = new AccountMemory(o.limits);
    if (o.store) {
      o.store.onError = (err) => o.logger.error({ err }, 'accounts: memory writes failed (kept in memory; a restart may forget them)');
      o.store.load(this.memory, now);
      this.memory.writes = o.store;
      this.open.push(...o.store.openAnomalies());
    }
    this.learningUntil = (o.store ? o.store.learningStartedAt(now) : now) + o.learningPeriodMs;
    this.handlers = new Map([
      ['SuccessfulAuth', (m, t) => this.onAuth(m, t)],
      ['ContactStatus', (m, t) => this.onContactStatus(m, t)],
      ['ContactList', (m, t) => this.onContactList(m, t)],
    ]);
  }

  /** the sweep of the distant-networks checks (once a second) */
  start(): void {
    this.timer = setInterval(() => this.sweep(), 1000);
    this.timer.unref();
  }

  handleAmiEvent(msg: AmiMessage): void {
    const name = msg.get('Event');
    const handler = name === undefined ? undefined : this.handlers.get(name);
    if (handler === undefined) return;
    try {
      handler(msg, this.clock());
    } catch (err) {
      this.o.logger.error({ err, event: name }, 'accounts: an event could not be handled');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    try {
      this.o.store?.flush();
    } catch (err) {
      this.o.logger.error({ err }, 'accounts: the last memory writes failed');
    }
  }

  get learning(): boolean {
    return this.clock() < this.learningUntil;
  }

  private onAuth(msg: AmiMessage, now: number): void {
    const account = msg.get('AccountID');
    const service = msg.get('Service');
    if (service === 'AMI' || account === undefined || !isAccountName(account)) return;
    const remote = msg.getSingle ? msg.getSingle('RemoteAddress') : msg.get('RemoteAddress');
    const address = typeof remote === 'string' ? parseAsteriskAddress(remote) : null;
    if (address === null) return;
    this.authenticated(account, address, now);
  }

  /** A successful authentication of `account` from `address` (AMI SuccessfulAuth; tests). */
  authenticated(account: string, address: IpNetwork, now = this.clock()): void {
    this.memory.success(address, account, now);
    const net = learnedNetwork(address);
    const seen = this.memory.seeNetwork(account, net, now);
    const text = fmt(address);
    if (seen === 'new' && !this.learning) this.anomaly(account, 'new-network', text, `from ${net}, a network it has never used`, now);
    const live = this.liveOf(account);
    live.lastAuth = { address, at: now };
    this.place(account, live, address, null, now);
  }

  private onContactStatus(msg: AmiMessage, now: number): void {
    const account = msg.get('EndpointName') ?? msg.get('AOR');
    const uri = msg.get('URI');
    const status = msg.get('ContactStatus');
    if (account === undefined || uri === undefined || !isAccountName(account)) return;
    const live = this.live.get(account);
    if (status === 'Removed') {
      if (!live) return;
      for (const [key, p] of live.places) if (p.contact === uri) live.places.delete(key);
      return;
    }
    if (status !== 'NonQualified' && status !== 'Reachable' && status !== 'Created') return;
    const l = live ?? this.liveOf(account);
    // the contact URI is what the phone claims (a private address behind NAT): the source of the
    // REGISTER's SuccessfulAuth just before is what it is
    const address = l.lastAuth && now - l.lastAuth.at <= CONTACT_AUTH_MS ? l.lastAuth.address : contactAddress(uri);
    if (address === null) return;
    this.place(account, l, address, uri, now);
    if (status === 'NonQualified' && this.o.userAgentLookup) this.lookupAgents(now);
  }

  private onContactList(msg: AmiMessage, now: number): void {
    const account = msg.get('Endpoint');
    const ua = msg.get('UserAgent');
    if (account === undefined || ua === undefined || !isAccountName(account)) return;
    const agent = cleanAgent(ua);
    if (agent === '') return;
    const seen = this.memory.seeAgent(account, agent, now);
    if (seen === 'new' && !this.learning) {
      const uri = msg.get('Uri') ?? '';
      this.anomaly(
        account,
        'new-user-agent',
        contactAddress(uri) ? fmt(contactAddress(uri)!) : '',
        `with User-Agent "${agent}", which it has never used`,
        now,
        agent,
      );
    }
  }

  /** PJSIPShowContacts, at most once per UA_LOOKUP_EVERY_MS (a registration storm asks once). */
  private lookupAgents(now: number): void {
    const ami = this.o.ami;
    if (!ami || this.uaLookupQueued) return;
    this.uaLookupQueued = true;
    const wait = Math.max(0, this.uaLookupAt + UA_LOOKUP_EVERY_MS - now);
    setTimeout(() => {
      if (this.closed) return;
      this.uaLookupAt = this.clock();
      ami
        .action({ Action: 'PJSIPShowContacts' }, { timeoutMs: 10_000 })
        .then((res) => {
          const t = this.clock();
          for (const ev of res.events) if (ev.get('Event') === 'ContactList') this.onContactList(ev, t);
        })
        .catch((err: Error) => this.o.logger.warn({ err }, 'accounts: PJSIPShowContacts failed; User-Agents are read at the next new contact'))
        .finally(() => (this.uaLookupQueued = false));
    }, wait).unref();
  }

  private liveOf(account: string): Live {
    let l = this.live.get(account);
    if (!l) {
      l = { places: new Map(), lastAuth: null, reported: new Set() };
      this.live.set(account, l);
      if (this.live.size > this.o.limits.maxAccounts) this.live.delete(this.live.keys().next().value as string);
    }
    return l;
  }

  private place(account: string, live: Live, address: IpNetwork, contact: string | null, now: number): void {
    const key = distantNetwork(address);
    const before = live.places.get(key);
    live.places.delete(key);
    live.places.set(key, { address: fmt(address), family: address.family, last: now, contact: contact ?? before?.contact ?? null });
    if (live.places.size > MAX_LIVE_PER_ACCOUNT) live.places.delete(live.places.keys().next().value as string);
    if (live.places.size > 1 && !this.pending.has(account) && this.pending.size < MAX_PENDING) this.pending.set(account, now + DISTANT_GRACE_MS);
  }

  /** Judges the due distant-network checks: two distant places, each a live contact or used within the window. */
  sweep(now = this.clock()): void {
    for (const [account, due] of this.pending) {
      if (due > now) continue;
      this.pending.delete(account);
      const live = this.live.get(account);
      if (!live || this.learning) continue;
      const places = [...live.places.entries()].filter(([, p]) => p.contact !== null || now - p.last <= this.o.distantWindowMs);
      for (const family of [4, 6] as const) {
        const same = places.filter(([, p]) => p.family === family);
        if (same.length < 2) continue;
        const pair = same
          .map(([k]) => k)
          .sort()
          .join(' ');
        if (live.reported.has(pair)) continue;
        live.reported.add(pair);
        const addresses = same.map(([, p]) => p.address);
        this.anomaly(account, 'distant-networks', addresses.at(-1)!, `from distant networks at once: ${addresses.join(', ')}`, now);
      }
    }
  }

  private anomaly(account: string, signal: Signal, address: string, what: string, now: number, agent?: string): void {
    const action = this.o.policy[signal];
    const st = this.memory.get(account);
    const networks = st ? [...st.networks.keys()].join(' ') : '';
    const agents = st ? [...st.agents.values()].map((a) => a.full).join(' | ') : '';
    const reason = `account ${account} ${what}`;
    const row = { account, at: now, signal, address, detail: reason, action };
    const id = this.o.store ? this.o.store.addAnomaly(row) : this.nextId++;
    this.open.push({ id, ...row, acknowledgedAt: null });
    if (this.open.length > MAX_OPEN_LISTED) this.open.shift();
    this.o.logger.warn(
      { event: 'account-anomaly', account, address, signal, action, networks, userAgent: agent },
      `${reason}${action === 'restrict' ? ': restricted to internal calls until pbx-guardian acknowledge ' + account : ''} (known networks: ${networks || 'none'})`,
    );
    this.o.onAnomaly?.(signal, action);
    this.o.emit({
      Event: 'GuardianAccountAnomaly',
      Account: account,
      Address: address,
      Signal: signal,
      Policy: action,
      Action: action,
      Reason: reason,
      Networks: networks,
      UserAgent: agent ?? '',
      UserAgents: agents,
      Time: new Date(now).toISOString(),
    });
    if (action === 'restrict') {
      const port = this.o.restrict;
      if (!port) this.o.logger.error({ account }, `accounts: policy restrict for ${account}, but no restrict port is wired: alert only`);
      else port.restrict(account, reason).catch((err: Error) => this.o.logger.error({ err, account }, `accounts: restricting ${account} failed`));
    }
  }

  /** Learns the account's current networks and agents as its own and lifts a restriction. */
  async acknowledge(account: string): Promise<{ account: string; acknowledged: number; lifted: boolean }> {
    if (!isAccountName(account)) throw new AppError(`"${account.slice(0, 80)}" is not an account name ([A-Za-z0-9_.-], at most 80)`, 'INVALID_ACCOUNT', 400);
    const mine = this.open.filter((a) => a.account === account);
    if (mine.length === 0 && !this.memory.get(account)) throw new AppError(`account ${account} is not known`, 'ACCOUNT_UNKNOWN', 404);
    const restricted = mine.some((a) => a.action === 'restrict');
    const now = this.clock();
    const acknowledged = this.o.store ? this.o.store.acknowledge(account, now) : mine.length;
    for (let i = this.open.length - 1; i >= 0; i--) if (this.open[i]!.account === account) this.open.splice(i, 1);
    this.live.get(account)?.reported.clear();
    if (restricted && this.o.restrict) await this.o.restrict.lift(account);
    this.o.logger.info(
      { event: 'account-acknowledged', account, acknowledged, lifted: restricted },
      `account ${account}: ${acknowledged} anomalies acknowledged`,
    );
    return { account, acknowledged, lifted: restricted };
  }

  /** Accounts with their networks, User-Agents and open anomalies (CLI `accounts`). */
  list(): { learning: boolean; learningUntil: number; accounts: AccountView[] } {
    const byAccount = new Map<string, AnomalyRow[]>();
    for (const a of this.open) byAccount.set(a.account, [...(byAccount.get(a.account) ?? []), a]);
    const views: AccountView[] = [];
    for (const st of this.memory.all()) {
      const anomalies = byAccount.get(st.account) ?? [];
      views.push({
        account: st.account,
        lastSeen: st.lastSeen,
        networks: [...st.networks].map(([network, s]) => ({ network, ...s })),
        userAgents: [...st.agents.values()].map((a) => ({ userAgent: a.full, first: a.first, last: a.last })),
        restricted: anomalies.some((a) => a.action === 'restrict'),
        anomalies,
      });
    }
    views.sort((a, b) => a.account.localeCompare(b.account));
    return { learning: this.learning, learningUntil: this.learningUntil, accounts: views };
  }

  get openAnomalies(): readonly AnomalyRow[] {
    return this.open;
  }
}

const fmt = (a: IpNetwork): string => formatNetwork(a);
