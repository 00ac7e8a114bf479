import type { AmiConnectionState, AmiLoginError, AmiLoginErrorKind } from './errors.js';

export type { AmiConnectionState, AmiLoginErrorKind } from './errors.js';

/**
 * An AMI message (event or response) as received: the header pairs in wire order.
 * Duplicate keys (Output, ChanVariable, ...) are kept in order; values keep their colons.
 */
export interface AmiMessage {
  /** header pairs in wire order, keys as sent (case preserved) */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** first value for a key, case-insensitive; undefined when absent */
  get(key: string): string | undefined;
  /** every value for a key, in order, case-insensitive */
  getAll(key: string): string[];
  /** a key given once: undefined when absent, null when given twice with different values */
  getSingle?(key: string): string | undefined | null;
  /** first-value-wins plain object (null prototype), for forwarding to Odoo / webhooks */
  toObject(): Record<string, string>;
}

/** Fields of an action to send. Values are strings; arrays send the key once per value. */
export type AmiActionFields = Record<string, string | number | ReadonlyArray<string | number>>;

export interface AmiResponse {
  /** the Response frame itself */
  response: AmiMessage;
  /** event-list items (between EventList: start and the ...Complete event), in order */
  events: AmiMessage[];
  /** the ...Complete event that closed the list, when there was one */
  complete?: AmiMessage;
  /** Command action: the Output lines */
  output?: string[];
}

export interface RemoteAddress {
  family: 4 | 6;
  /** UDP | TCP | TLS | WS | WSS, when present */
  transport?: string;
  /** the address without brackets; IPv6 %scope removed */
  address: string;
  /** scope id of a link-local IPv6 address, when present */
  scope?: string;
  port?: number;
}

/** Why the framer dropped a frame. */
export interface AmiFrameDrop {
  reason: 'oversized' | 'too-many-headers';
  /** bytes of the dropped frame seen when it was dropped (an endless frame keeps being skipped after this) */
  bytes: number;
}

/** Counters for metrics; monotonically increasing for the client's lifetime. */
export interface AmiClientStats {
  bytesReceived: number;
  framesReceived: number;
  eventsReceived: number;
  framesDropped: number;
  /** connection attempts after the first one */
  reconnects: number;
  loginFailures: number;
  actionsTimedOut: number;
}

/** Whether the session receives the security class (see AmiHealth.security). */
export type AmiSecurityCheck = 'verified' | 'missing' | 'checking' | 'unknown';

/** What the AMI client knows about its session, for `status` and the health gauges. */
export interface AmiHealth {
  state: AmiConnectionState;
  host: string;
  port: number;
  username: string;
  /** epoch ms the current state began */
  since: number;
  /** the last failed login of the main session (cleared by a successful login) */
  lastLoginError: { kind: AmiLoginErrorKind; message: string; at: number } | null;
  /** verified: this session's own SuccessfulAuth (Service AMI) arrived after login, so it reads the
   *  security class; missing: it did not (the user lacks read=security, or the login Events mask
   *  excludes it); checking: logged in, waiting; unknown: not logged in */
  security: AmiSecurityCheck;
  /** event classes seen on this session (Privilege headers), sorted */
  classesSeen: string[];
  /** epoch ms */
  lastEventAt: number | null;
  /** epoch ms of the last security-class event */
  lastSecurityEventAt: number | null;
  /** what to change (manager.conf ...) when security is 'missing' or login fails */
  advice: string | null;
}

/** Events emitted by AmiClient (see its on()/once() overloads). */
export interface AmiClientEvents {
  event: [msg: AmiMessage];
  state: [state: AmiConnectionState];
  connected: [];
  loginError: [err: AmiLoginError];
  frameDropped: [info: AmiFrameDrop];
  disconnected: [reason: string];
}

/**
 * The AMI client as another stage needs it: one action at a time (implemented by AmiClient;
 * main.ts gives a refusing stand-in when AMI is disabled). The one definition, for REST, Odoo,
 * the console and asterisk-config.
 */
export interface AmiPort {
  action(fields: AmiActionFields, opts?: { timeoutMs?: number }): Promise<AmiResponse>;
}
