import { AppError } from '../common/errors.js';

export type AmiConnectionState = 'disconnected' | 'connecting' | 'authenticating' | 'connected';

export type AmiLoginErrorKind = 'auth' | 'unreachable' | 'not-ami' | 'timeout';

/** `not-ami` -> NOT_AMI: the kind as the tail of an UPPER_SNAKE code. */
const upperSnake = (kind: string): string => kind.toUpperCase().replace(/-/g, '_');

/** Login did not succeed. `message` says what happened and what to check; code AMI_LOGIN_<KIND>. */
export class AmiLoginError extends AppError {
  override readonly name = 'AmiLoginError';
  readonly kind: AmiLoginErrorKind;
  /** delay before the next attempt, ms (undefined when the client is stopped) */
  readonly retryInMs: number | undefined;
  constructor(kind: AmiLoginErrorKind, message: string, retryInMs?: number) {
    super(message, `AMI_LOGIN_${upperSnake(kind)}`, 503);
    this.kind = kind;
    this.retryInMs = retryInMs;
  }
}

export type AmiActionErrorKind = 'invalid' | 'not-connected' | 'timeout' | 'disconnected' | 'write-buffer-full';

/** The HTTP status of each kind: a bad field is the caller's, a timeout the gateway's, the rest: AMI is not available now. */
const ACTION_STATUS: Readonly<Record<AmiActionErrorKind, number>> = {
  invalid: 400,
  timeout: 504,
  'not-connected': 503,
  disconnected: 503,
  'write-buffer-full': 503,
};

/** An action was not sent, or its response did not arrive; code AMI_<KIND> (`timeout` -> 504 AMI_TIMEOUT). */
export class AmiActionError extends AppError {
  override readonly name = 'AmiActionError';
  readonly kind: AmiActionErrorKind;
  /** the ActionID used, when the action was sent */
  readonly actionId: string | undefined;
  constructor(kind: AmiActionErrorKind, message: string, actionId?: string) {
    super(message, `AMI_${upperSnake(kind)}`, ACTION_STATUS[kind]);
    this.kind = kind;
    this.actionId = actionId;
  }
}

/** An action refused before it is written: not connected, or `waiting` bytes not yet written. */
export function notSentError(name: string, where: string, state: AmiConnectionState, waiting?: number): AmiActionError {
  if (waiting === undefined) {
    return new AmiActionError(
      'not-connected',
      `AMI action "${name}" not sent: not connected to Asterisk at ${where} (state: ${state}); nothing is queued, retry after the client emits "connected"`,
    );
  }
  return new AmiActionError(
    'write-buffer-full',
    `AMI action "${name}" not sent: ${waiting} bytes already wait to be written to ${where} (Asterisk is not reading); try again later`,
  );
}
