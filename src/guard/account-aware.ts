/**
 * Account-aware bans: an address that also authenticates successfully for other accounts (an
 * office behind NAT) is not banned for one account's failures (a phone with a stale password);
 * those are reported and counted per account, and the address is banned only once its failures
 * spread over many accounts (enumeration). docs/accounts.md.
 *
 * The guard asks a small port (AccountEvidence, implemented by src/accounts) and keeps the
 * per-address failure counts itself. The common case, an attacker with no successful
 * authentication, costs one lookup in the evidence's map per counted failure.
 */
import { LRUCache } from 'lru-cache';
import type { IpNetwork } from '../net/ip.js';

/** What the guard needs to know about successful authentications (src/accounts implements it). */
export interface AccountEvidence {
  /** how many accounts authenticated successfully from this single address (canonical text)
   *  recently; 0 for an address never seen succeed (one Map lookup: the guard's hot path) */
  successfulAccounts(address: string, now: number): number;
  /** true when some address inside `net` registered or authenticated successfully recently
   *  (asked only before a prefix ban) */
  hasRecentSuccess(net: IpNetwork, now: number): boolean;
}

export interface AccountAwareOptions {
  /** distinct failing accounts from one address with successes that make it enumeration (a ban) */
  enumerationAccounts: number;
  /** failures of one account from such an address before it is reported */
  reportAfter: number;
  /** at most one report per account and address within this (ms) */
  reportEveryMs: number;
  /** failures older than this are forgotten (ms) */
  windowMs: number;
  /** addresses with successes whose failures are tracked at most (least recently failing forgotten first) */
  maxAddresses: number;
}

export const defaultAccountAware: AccountAwareOptions = {
  enumerationAccounts: 5,
  reportAfter: 5,
  reportEveryMs: 10 * 60_000,
  windowMs: 12 * 3600_000,
  maxAddresses: 4096,
};

/** One account failing from an address where others succeed ("stale password?"). */
export interface AccountFailureReport {
  account: string;
  address: string;
  /** failures of this account from this address within the window */
  failures: number;
  /** distinct accounts failing from this address within the window */
  accounts: number;
  /** accounts that authenticated successfully from it recently */
  succeeding: number;
}

/** What the guard does with one counted failure from an address with successes. */
export interface SharedVerdict {
  /** the failures spread over enough accounts: ban as usual */
  enumeration: boolean;
  /** distinct failing accounts in the window */
  accounts: number;
  /** set when this failure is to be reported (first at reportAfter, then at most every reportEveryMs) */
  report?: AccountFailureReport;
}

interface AccountCount {
  failures: number;
  first: number;
  last: number;
  reportedAt: number;
}

/** names an account for counting: an unknown-user ChallengeResponseFailed says `<unknown>`, the
 *  InvalidAccountID of the same attempt names the account tried */
const NOT_AN_ACCOUNT = new Set(['', '<unknown>']);
const MAX_ACCOUNT_CHARS = 80;

/** Per address with successes: the accounts failing from it (bounded: a few past the threshold). */
export class AccountFailures {
  private readonly byAddress: LRUCache<string, Map<string, AccountCount>>;

  constructor(
    readonly options: AccountAwareOptions,
    readonly evidence: AccountEvidence,
  ) {
    this.byAddress = new LRUCache({ max: options.maxAddresses });
  }

  /**
   * A counted failure of `event.account` from `address` (canonical text). null when the address
   * has no recent success (the guard goes on as before); otherwise whether it is enumeration yet.
   * The account is read only after the lookup: reading a header costs more than the lookup.
   */
  failure(address: string, event: { readonly account: string | undefined }, now: number): SharedVerdict | null {
    const succeeding = this.evidence.successfulAccounts(address, now);
    if (succeeding === 0) return null;
    const account = event.account;
    let accounts = this.byAddress.get(address);
    if (!accounts) this.byAddress.set(address, (accounts = new Map()));
    for (const [name, c] of accounts) if (now - c.last > this.options.windowMs) accounts.delete(name);
    const name = account === undefined || NOT_AN_ACCOUNT.has(account) ? null : account.slice(0, MAX_ACCOUNT_CHARS);
    if (name === null) return { enumeration: accounts.size >= this.options.enumerationAccounts, accounts: accounts.size };
    let c = accounts.get(name);
    // past the threshold the address is banned anyway: more names would only cost memory
    if (!c && accounts.size >= this.options.enumerationAccounts) return { enumeration: true, accounts: accounts.size };
    if (!c) accounts.set(name, (c = { failures: 0, first: now, last: now, reportedAt: -Infinity }));
    c.failures++;
    c.last = now;
    const verdict: SharedVerdict = { enumeration: accounts.size >= this.options.enumerationAccounts, accounts: accounts.size };
    if (!verdict.enumeration && c.failures >= this.options.reportAfter && now - c.reportedAt >= this.options.reportEveryMs) {
      c.reportedAt = now;
      verdict.report = { account: name, address, failures: c.failures, accounts: accounts.size, succeeding };
    }
    return verdict;
  }

  /** The verdict for a detection that counted no failure (a ChallengeSent flood), without counting. */
  peek(address: string, now: number): SharedVerdict | null {
    if (this.evidence.successfulAccounts(address, now) === 0) return null;
    let accounts = 0;
    for (const c of this.byAddress.peek(address)?.values() ?? []) if (now - c.last <= this.options.windowMs) accounts++;
    return { enumeration: accounts >= this.options.enumerationAccounts, accounts };
  }

  /** The failing accounts of an address (status, tests). */
  accountsOf(address: string): Array<{ account: string; failures: number; last: number }> {
    return [...(this.byAddress.peek(address) ?? new Map<string, AccountCount>())].map(([account, c]) => ({ account, failures: c.failures, last: c.last }));
  }

  /** after a ban or an unban of the address: start again */
  forget(address: string): void {
    this.byAddress.delete(address);
  }

  get trackedCount(): number {
    return this.byAddress.size;
  }
}
