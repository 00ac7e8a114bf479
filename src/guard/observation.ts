import type { IpNetwork } from '../net/ip.js';

/** What the detector reads from an event: an Observation (below) satisfies it,
 *  so do an AMI frame and a parsed log line. */
export interface EventView {
  get(key: string): string | undefined;
  /** the source that saw it (a rule with `source:` counts only those it names; none: any source) */
  readonly source?: string;
  /** a key given once: undefined when absent, null when given twice with different values
   *  (AmiFrame has it; a view without it is read with get) */
  getSingle?(key: string): string | undefined | null;
}

/**
 * The detection sources the daemon has: a rule's `source:` names one or more. A new source
 * (call events, a SIP proxy's log) adds its name here.
 */
export const SOURCE_NAMES = ['ami', 'security-log', 'http'] as const;
export type SourceName = (typeof SOURCE_NAMES)[number];

/**
 * One security event as a source saw it, normalized: what the guard counts. A source (src/sources)
 * builds it from its own input (an AMI frame, a security-log line, a refused HTTP credential).
 * The fields a rule's `match:` may read stay behind get() (lazy: the AMI fast path reads only
 * what a rule asks for); the named properties are what every observation has.
 */
export interface Observation extends EventView {
  readonly source: SourceName;
  /** the Asterisk security event name the rules match (InvalidPassword, ChallengeResponseFailed, ...) */
  readonly event: string;
  /** SIP, PJSIP, AMI, IAX2, ... ('' when the source does not say) */
  readonly service: string;
  /** the attacker's address, parsed; null when the source gave none that parses (see ambiguous) */
  readonly address: IpNetwork | null;
  /** true when the source gave two different addresses (never counted: an attacker can forge one) */
  readonly ambiguous: boolean;
  /** the account named (AccountID), when present */
  readonly account: string | undefined;
  /** the session or call id (SessionID: the SIP Call-ID for PJSIP), when present */
  readonly session: string | undefined;
  /** epoch ms: when the source saw it */
  readonly time: number;
  /** performance.now() when the source built it: where pbx_guardian_ban_latency_seconds starts */
  readonly seenAt?: number;
}

/** Where sources deliver observations (the Guardian implements it). */
export interface ObservationSink {
  /** true when some rule counts or resets on this event name: a source builds nothing for the rest */
  watches(event: string): boolean;
  observe(o: Observation): void;
}

/**
 * Turns an Asterisk security event in field form (an AMI frame, a log line's fields) named `name`
 * into an observation seen at `now` (src/sources implements it; Guardian.handleEvent uses it).
 */
export type EventDecoder = (event: EventView, name: string, now: number) => Observation;

/** An observation with no further fields (a refused HTTP credential). */
export function plainObservation(source: SourceName, event: string, service: string, address: IpNetwork | null, time: number): Observation {
  return {
    source,
    event,
    service,
    address,
    ambiguous: false,
    account: undefined,
    session: undefined,
    time,
    seenAt: performance.now(),
    get: (k) => (k === 'Event' ? event : k === 'Service' ? service : undefined),
  };
}
