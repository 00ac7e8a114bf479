/**
 * The label values known at start of the core metrics' labelled series: each series is created at
 * zero (createMetrics, bind.ts), because a rate() or an alert on a series that has never moved
 * needs the series to exist, and increase() misses the first increment of a series born at 1.
 */
import type { AmiConnectionState, AmiFrameDrop, AmiLoginErrorKind } from '../ami/index.js';
import type { IgnoredReason } from '../guard/index.js';
import type { DialFallback } from '../fraud/index.js';

/** a Record over a union type: the compiler fails when a value is added to the union and not here */
const keys = <K extends string>(r: Record<K, true>): K[] => Object.keys(r) as K[];

export const IGNORED_REASONS = keys<IgnoredReason>({
  'allow-listed': true,
  'already-banned': true,
  'bad-address': true,
  ambiguous: true,
  'link-local': true,
  reserved: true,
  'own-address': true,
  'out-of-scope': true,
});
export const AMI_STATES = keys<AmiConnectionState>({ disconnected: true, connecting: true, authenticating: true, connected: true });
export const AMI_LOGIN_KINDS = keys<AmiLoginErrorKind>({ auth: true, unreachable: true, 'not-ami': true, timeout: true });
export const FRAME_DROP_REASONS = keys<AmiFrameDrop['reason']>({ oversized: true, 'too-many-headers': true });
export const UNBAN_WHY = ['expired', 'unbanned'] as const;
export const FIREWALL_OPS = ['add', 'remove'] as const;
export const FRAUD_CALL_KINDS = ['outbound', 'internal'] as const;
export const FRAUD_FAILED_ACTIONS = ['hangup', 'block', 'unblock', 'ban'] as const;
export const DIAL_FALLBACKS = keys<DialFallback>({ exten: true, unknown: true, none: true });
