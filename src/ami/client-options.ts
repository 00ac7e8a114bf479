import type { Logger } from 'pino';
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_HEADERS } from './framer.js';
import type { AmiLoginErrorKind } from './types.js';
import { backoffMs } from '../net/backoff.js';

/** retry cap while the AMI port refuses connections (Asterisk restarting) */
const UNREACHABLE_RETRY_MAX_MS = 1500;

export interface AmiClientOptions {
  host: string;
  port: number;
  username: string;
  secret: string;
  /** login `Events:` mask, e.g. 'on', 'off' or 'security,system,call,cdr' (default 'on') */
  events?: string;
  /** TCP connect + greeting, ms (default 5000) */
  connectTimeoutMs?: number;
  /** default per-action timeout, also used for the login answer, ms (default 10000) */
  actionTimeoutMs?: number;
  /** Ping period once logged in, ms (default 15000; 0 disables keepalive) */
  pingIntervalMs?: number;
  /** no Pong within this many ms: drop the connection and reconnect (default 5000) */
  pongTimeoutMs?: number;
  /** default 1 MiB */
  maxFrameBytes?: number;
  /** default 4096 */
  maxHeaders?: number;
  /** first reconnect delay, ms (default 500); doubles per failed attempt, with jitter */
  reconnectInitialMs?: number;
  /** reconnect delay cap, ms (default 30000) */
  reconnectMaxMs?: number;
  /** actions are refused while this many bytes wait in the socket's write buffer (default 1 MiB) */
  maxWriteBufferBytes?: number;
  /** after each login, wait this long for a security-class event (the session's own
   *  SuccessfulAuth) before reporting the session blind, ms (default 5000) */
  securityCheckTimeoutMs?: number;
  /** while blind, re-check with a probe session this often, ms (default 10000; 0 disables) */
  securityRecheckIntervalMs?: number;
  logger?: Logger;
}

export interface AmiActionOptions {
  /** overrides actionTimeoutMs for this action */
  timeoutMs?: number;
}

export type ResolvedAmiClientOptions = Required<Omit<AmiClientOptions, 'logger'>>;

/** Fill in the defaults and check the options; throws TypeError. */
export function resolveClientOptions(opts: AmiClientOptions): ResolvedAmiClientOptions {
  const o = {
    events: 'on',
    connectTimeoutMs: 5000,
    actionTimeoutMs: 10000,
    pingIntervalMs: 15000,
    pongTimeoutMs: 5000,
    maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
    maxHeaders: DEFAULT_MAX_HEADERS,
    reconnectInitialMs: 500,
    reconnectMaxMs: 30000,
    maxWriteBufferBytes: 1048576,
    securityCheckTimeoutMs: 5000,
    securityRecheckIntervalMs: 10000,
    ...Object.fromEntries(Object.entries(opts).filter(([k, v]) => v !== undefined && k !== 'logger')),
  } as ResolvedAmiClientOptions;
  if (!o.host || !Number.isInteger(o.port) || o.port <= 0 || o.port > 65535) {
    throw new TypeError(`AMI client: host and a port in 1..65535 are required (got ${o.host}:${o.port})`);
  }
  if (!(o.securityCheckTimeoutMs > 0) || !(o.securityRecheckIntervalMs >= 0)) {
    throw new TypeError('AMI client: securityCheckTimeoutMs must be > 0 and securityRecheckIntervalMs >= 0');
  }
  // reject header injection through the credentials at once, not at every login attempt
  for (const [k, v] of [
    ['username', o.username],
    ['secret', o.secret],
    ['events', o.events],
  ] as const) {
    if (typeof v !== 'string' || /[\r\n\0]/.test(v)) throw new TypeError(`AMI client: option ${k} must be a string without CR, LF or NUL`);
  }
  return o;
}

/** The delay before the next attempt after `failures` failed ones, ms. */
export function reconnectDelay(o: ResolvedAmiClientOptions, failures: number, kind?: AmiLoginErrorKind): number {
  // A refused or unreachable connect costs Asterisk nothing: keep trying often, so that an
  // Asterisk restart is picked up within ~2 s. Refused logins and other peers back off fully.
  const cap = kind === 'unreachable' ? Math.min(o.reconnectMaxMs, UNREACHABLE_RETRY_MAX_MS) : o.reconnectMaxMs;
  const base = backoffMs(failures, o.reconnectInitialMs, cap);
  // equal jitter, [base/2, base): after an Asterisk restart every AMI client of the host (ours,
  // the Odoo agent's, a dialer's) reconnects at once; the spread keeps them from arriving together.
  return Math.floor(base / 2 + (Math.random() * base) / 2);
}
