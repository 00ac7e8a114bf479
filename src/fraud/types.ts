/** The fraud stage's data and the ports it needs (the store and the AMI implement them). */
import type { FraudAction } from './config-schema.js';
import type { Destination } from './destinations.js';

/** One outbound (or internal) call as the tracker follows it, keyed by the caller's channel. */
export interface TrackedCall {
  /** the caller's channel (PJSIP/101-00000008): the exact name an AMI Hangup targets */
  readonly channel: string;
  /** the PJSIP endpoint that owns the calling channel */
  readonly account: string;
  /** the endpoint of the dialled channel, when it is a trunk */
  trunk: string | null;
  /** the dialled channel (PJSIP/trunk-00000009) */
  destChannel: string | null;
  number: string;
  destination: Destination;
  /** counts for the policies: it goes out through a trunk or to a non-internal number */
  outbound: boolean;
  readonly startedAt: number;
  answeredAt: number | null;
  /** Cdr BillableSeconds, once the Cdr arrived */
  billableSec: number | null;
}

/** A block as stored (SQLite table account_blocks) and written to AstDB. */
export interface AccountBlock {
  account: string;
  /** 'all': no outbound call (the contract also has 'internal', set by the accounts stage) */
  mode: 'all' | 'internal';
  /** epoch ms */
  createdAt: number;
  policy: string;
  reason: string;
  /** the address the account registered from, when known */
  address: string | null;
}

/** Where blocks persist (Store implements it; MemoryBlockStore for check and tests). */
export interface BlockStorePort {
  saveBlock(block: AccountBlock): void;
  /** true when a row was removed */
  deleteBlock(account: string): boolean;
  activeBlocks(): AccountBlock[];
}

/** One decision: which policy was crossed by what, and what was done. */
export interface FraudDecision {
  at: number;
  account: string;
  policy: string;
  actions: FraudAction[];
  /** what crossed it, in words (the log line and the event's Reason) */
  reason: string;
  /** the offending channels (hung up when the actions say so) */
  channels: string[];
  number: string;
  trunk: string | null;
  address: string | null;
  /** a repeat of a decision already made for this account and policy within its window: no new event */
  repeat: boolean;
}

/**
 * Whether a block's AstDB key is in Asterisk: only `written` means the dialplan stops the calls.
 * `pending`: DBPut sent or being retried; `failed`: given up after its attempts (written again at
 * the next AMI login). The guardian still hangs up the calls that get through (fraud.hangupBlocked).
 */
export interface AstDbStatus {
  state: 'pending' | 'written' | 'failed';
  /** epoch ms of the last change */
  since: number;
  /** DBPut attempts of the last round (0 while the first is in flight) */
  attempts: number;
  /** the last refusal or error, when failed */
  error: string | null;
}

/** What `pbx-guardian fraud` shows. */
export interface FraudSnapshot {
  enabled: boolean;
  live: Array<{ account: string; calls: number; channels: string[]; numbers: string[] }>;
  blocked: Array<AccountBlock & { astdb: AstDbStatus }>;
  decisions: FraudDecision[];
  tracked: { calls: number; maxCalls: number; expired: number; evicted: number };
}

/** What the ban action needs from the guardian (its BanControl). */
export interface FraudBanPort {
  ban(request: { target: string; durationSec: number | null; reason: string; source: 'fraud' }): Promise<unknown>;
  isAllowListed(address: string): boolean;
}
