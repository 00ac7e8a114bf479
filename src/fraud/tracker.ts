/**
 * Follows calls from AMI call events, on the AMI read path: one Set lookup for the events it does
 * not want, a few Map operations for the ones it does. What the real Asterisk 22 transcripts show
 * (test/fixtures/ami-asterisk22-calls/README.md):
 *  - DialBegin carries everything a call needs: the caller's Channel (PJSIP/<endpoint>-<8 hex>,
 *    the account), DestChannel (PJSIP/trunk-..., the trunk), DialString (<number>@trunk, or a SIP/tel URI: dialstring.ts) and Exten (the fallback);
 *    Newchannel does not know yet where the call goes, so it is not read;
 *  - DialEnd gives the DialStatus (ANSWER, NOANSWER, BUSY, CONGESTION, CANCEL): anything but ANSWER
 *    ends the attempt;
 *  - Hangup ends a channel (either side ends the call);
 *  - Cdr may come before the Hangup; its BillableSeconds is the cost basis;
 *  - SuccessfulAuth (AccountID + RemoteAddress) and ContactStatus (URI) say where an account
 *    registers and calls from: no call event carries an address.
 * Bounded: at most maxCalls calls (the oldest forgotten first, counted as evicted); a call whose
 * Hangup never arrives expires after callTimeoutMs (counted). Malformed or partial events are
 * ignored (counted), never thrown.
 */
import type { AmiMessage } from '../ami/index.js';
import { parseRemoteAddress } from '../ami/index.js';
import type { DestinationPlan, DialingPlan } from './destinations.js';
import { parseDialString } from './dialstring.js';
import type { TrackedCall } from './types.js';

/**
 * When the DialString holds no number: `exten`, the caller's Exten (what was dialled, as the
 * dialplan matched it); `unknown`, no number either but the call goes to a configured trunk: it is
 * followed as an international call of unknown number (it leaves the PBX, so it counts for the
 * windows and the concurrency limits); `none`, not followed.
 */
export type DialFallback = 'exten' | 'unknown' | 'none';

/** what an unreadable number through a trunk is taken for */
const UNKNOWN_DESTINATION = { kind: 'international', e164: null, classes: ['international'], prefix: null } as const;

export interface TrackerListener {
  /** a call was dialled (DialBegin) */
  started(call: TrackedCall, now: number): void;
  /** the dialled side answered (DialEnd ANSWER) */
  answered(call: TrackedCall, now: number): void;
  /** it is over: hung up, failed (DialEnd not ANSWER), expired (no Hangup) or evicted (bound) */
  ended(call: TrackedCall, why: 'hangup' | 'failed' | 'expired' | 'evicted', now: number): void;
  /** a channel's Hangup event (tracked or not): what the hangup action waits for */
  channelGone(channel: string): void;
  /** an account authenticated or registered from this address */
  address(account: string, address: string): void;
  /** the Cdr of a call from this account */
  billed(channel: string, billableSec: number): void;
  /** a DialBegin whose DialString gave no number: how the call was followed instead (dialstring.ts) */
  unparsed?(fallback: DialFallback, dialString: string): void;
  /** handling an event threw (a defect, or a config the destination module refuses): counted as ignored */
  failed?(event: string, err: unknown): void;
}

export interface TrackerOptions {
  plan: DestinationPlan;
  dialingPlan: DialingPlan;
  trunks: readonly string[];
  maxCalls: number;
  callTimeoutMs: number;
}

const WANTED = new Set(['DialBegin', 'DialEnd', 'Hangup', 'Cdr', 'SuccessfulAuth', 'ContactStatus']);
/** PJSIP/<endpoint>-<8 hex>; an endpoint may itself contain '-' (the greedy part keeps it) */
const CHANNEL_RE = /^(?:PJSIP|SIP|IAX2)\/([A-Za-z0-9_.-]{1,80})-[0-9a-f]{8}$/;
const NUMBER_RE = /^\+?[0-9*#]{1,32}$/;
const ACCOUNT_RE = /^[A-Za-z0-9_.-]{1,80}$/;
const MAX_CHANNEL = 200;

/** The endpoint that owns a channel name, or null (Local/..., malformed, too long). */
export function channelEndpoint(channel: string | undefined): string | null {
  if (channel === undefined || channel.length > MAX_CHANNEL) return null;
  const m = CHANNEL_RE.exec(channel);
  return m ? m[1]! : null;
}

/** sip:102@198.51.100.77:5060, sip:102@[2001:db8:77::77]:5060 → the address */
export function contactAddress(uri: string): string | null {
  if (uri.length > 300) return null;
  const m = /^sips?:[^@]*@(\[[0-9a-fA-F:.]+\]|[0-9.]+)(?::\d+)?(?:[;>].*)?$/.exec(uri);
  if (!m) return null;
  const host = m[1]!.replace(/^\[|\]$/g, '');
  return parseRemoteAddress(`IPV${host.includes(':') ? 6 : 4}/UDP/${host}/5060`)?.address ?? null;
}

export class CallTracker {
  private readonly calls = new Map<string, TrackedCall>();
  /** the dialled channel → the caller's channel */
  private readonly legs = new Map<string, string>();
  private readonly trunks: ReadonlySet<string>;
  readonly counts = { events: 0, ignored: 0, failed: 0, started: 0, expired: 0, evicted: 0 };

  constructor(
    private readonly opts: TrackerOptions,
    private readonly listener: TrackerListener,
  ) {
    this.trunks = new Set(opts.trunks);
  }

  get size(): number {
    return this.calls.size;
  }

  live(): IterableIterator<TrackedCall> {
    return this.calls.values();
  }

  has(channel: string): boolean {
    return this.calls.has(channel) || this.legs.has(channel);
  }

  /** Every AMI event. Never throws. */
  handle(msg: AmiMessage, now: number): void {
    const name = msg.get('Event');
    if (name === undefined || !WANTED.has(name)) return;
    this.counts.events++;
    try {
      if (name === 'DialBegin') this.dialBegin(msg, now);
      else if (name === 'DialEnd') this.dialEnd(msg, now);
      else if (name === 'Hangup') this.hangup(msg, now);
      else if (name === 'Cdr') this.cdr(msg);
      else if (name === 'SuccessfulAuth') this.auth(msg);
      else this.contact(msg);
    } catch (err) {
      // a listener's bug must not stop the AMI read path; the event is counted as ignored and said
      this.counts.ignored++;
      this.counts.failed++;
      this.listener.failed?.(name, err);
    }
  }

  /** Forget calls older than callTimeoutMs (their Hangup was lost). Insertion order is start order. */
  sweep(now: number): number {
    let n = 0;
    for (const call of this.calls.values()) {
      if (now - call.startedAt < this.opts.callTimeoutMs) break;
      this.drop(call, 'expired', now);
      this.counts.expired++;
      n++;
    }
    return n;
  }

  private dialBegin(msg: AmiMessage, now: number): void {
    const channel = msg.get('Channel');
    const account = channelEndpoint(channel);
    if (account === null || this.trunks.has(account)) return void this.counts.ignored++;
    if (this.calls.has(channel!)) return; // a second Dial of the same call (failover, forked dial)
    const dest = msg.get('DestChannel');
    const destEndpoint = channelEndpoint(dest);
    const dialString = msg.get('DialString') ?? '';
    const parsed = parseDialString(dialString);
    let number = parsed?.number ?? '';
    if (parsed === null) {
      const exten = msg.get('Exten') ?? '';
      const fallback: DialFallback = NUMBER_RE.test(exten) ? 'exten' : destEndpoint !== null && this.trunks.has(destEndpoint) ? 'unknown' : 'none';
      this.listener.unparsed?.(fallback, dialString);
      if (fallback === 'none') return void this.counts.ignored++;
      number = fallback === 'exten' ? exten : '?';
    }
    const viaTrunk = destEndpoint !== null && (this.trunks.has(destEndpoint) || parsed?.endpoint === destEndpoint);
    const destination =
      number === '?' ? { ...UNKNOWN_DESTINATION, classes: [...UNKNOWN_DESTINATION.classes] } : this.opts.plan.classify(number, this.opts.dialingPlan);
    const call: TrackedCall = {
      channel: channel!,
      account,
      trunk: viaTrunk ? destEndpoint : null,
      destChannel: dest && dest.length <= MAX_CHANNEL ? dest : null,
      number,
      destination,
      outbound: viaTrunk || destination.kind !== 'internal',
      startedAt: now,
      answeredAt: null,
      billableSec: null,
    };
    if (this.calls.size >= this.opts.maxCalls) {
      const oldest = this.calls.values().next().value as TrackedCall;
      this.drop(oldest, 'evicted', now);
      this.counts.evicted++;
    }
    this.calls.set(call.channel, call);
    if (call.destChannel) this.legs.set(call.destChannel, call.channel);
    this.counts.started++;
    this.listener.started(call, now);
  }

  private dialEnd(msg: AmiMessage, now: number): void {
    const call = this.calls.get(msg.get('Channel') ?? '');
    if (!call) return;
    const status = msg.get('DialStatus');
    if (status === 'ANSWER') {
      call.answeredAt = now;
      this.listener.answered(call, now);
    } else if (status !== undefined) this.drop(call, 'failed', now);
  }

  private hangup(msg: AmiMessage, now: number): void {
    const channel = msg.get('Channel');
    if (channel === undefined) return void this.counts.ignored++;
    this.listener.channelGone(channel);
    const call = this.calls.get(channel) ?? this.calls.get(this.legs.get(channel) ?? '');
    if (call) this.drop(call, 'hangup', now);
    else this.legs.delete(channel);
  }

  private cdr(msg: AmiMessage): void {
    const channel = msg.get('Channel');
    const sec = Number(msg.get('BillableSeconds'));
    if (channel === undefined || !Number.isFinite(sec) || sec < 0) return void this.counts.ignored++;
    const call = this.calls.get(channel);
    if (call) call.billableSec = sec;
    this.listener.billed(channel, sec);
  }

  private auth(msg: AmiMessage): void {
    const service = msg.get('Service');
    if (service !== 'PJSIP' && service !== 'SIP') return;
    const account = msg.get('AccountID');
    const ra = parseRemoteAddress(msg.get('RemoteAddress') ?? '');
    if (account === undefined || !ACCOUNT_RE.test(account) || ra === null) return void this.counts.ignored++;
    this.listener.address(account, ra.address);
  }

  private contact(msg: AmiMessage): void {
    const status = msg.get('ContactStatus');
    if (status !== 'NonQualified' && status !== 'Reachable' && status !== 'Created') return;
    const account = msg.get('EndpointName') ?? msg.get('AOR');
    const address = contactAddress(msg.get('URI') ?? '');
    if (account === undefined || !ACCOUNT_RE.test(account) || address === null) return void this.counts.ignored++;
    this.listener.address(account, address);
  }

  private drop(call: TrackedCall, why: 'hangup' | 'failed' | 'expired' | 'evicted', now: number): void {
    this.calls.delete(call.channel);
    if (call.destChannel) this.legs.delete(call.destChannel);
    this.listener.ended(call, why, now);
  }
}
