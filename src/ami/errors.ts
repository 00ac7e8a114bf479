import { AppError } from '../common/errors.js';

export type AmiConnectionState = 'disconnected' | 'connecting' | 'authenticating' | 'connected';

export type AmiLoginErrorKind = 'auth' | 'unreachable' | 'not-ami' | 'timeout';

/** Login did not succeed. `message` says what happened and what to check. */
export class AmiLoginError extends Error {
  override readonly name = 'AmiLoginError';
  readonly kind: AmiLoginErrorKind;
  /** delay before the next attempt, ms (undefined when the client is stopped) */
  readonly retryInMs: number | undefined;
  constructor(kind: AmiLoginErrorKind, message: string, retryInMs?: number) {
    super(message);
    this.kind = kind;
    this.retryInMs = retryInMs;
  }
}

export type AmiActionErrorCode = 'invalid' | 'not-connected' | 'timeout' | 'disconnected' | 'write-buffer-full';

/** An action was not sent, or its response did not arrive. */
export class AmiActionError extends Error {
  override readonly name = 'AmiActionError';
  readonly code: AmiActionErrorCode;
  /** the ActionID used, when the action was sent */
  readonly actionId: string | undefined;
  constructor(code: AmiActionErrorCode, message: string, actionId?: string) {
    super(message);
    this.code = code;
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

/** The HTTP status and UPPER_SNAKE code an AmiActionError answers with (`timeout` -> 504 AMI_TIMEOUT). */
export function amiActionAppError(err: AmiActionError): AppError {
  const status = err.code === 'invalid' ? 400 : err.code === 'timeout' ? 504 : 503;
  return new AppError(err.message, `AMI_${err.code.toUpperCase().replace(/-/g, '_')}`, status);
}
