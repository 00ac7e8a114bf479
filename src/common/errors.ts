/**
 * The program's error model: an error a person or a client is meant to see is an AppError with a
 * stable UPPER_SNAKE `code` and the HTTP `statusCode` it answers with. Two mappers turn any thrown
 * value into what leaves the process: `toHttp` (REST, admin socket) and `toJobResult` (Odoo jobs).
 * The message is kept as written where it is raised: it says what happened and what to change.
 */

export const CODE_PATTERN = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$/;

export class AppError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly statusCode: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** An error a client caused (HTTP 4xx): its message is for the person who asked. */
export function isClientError(err: unknown): err is Error & { statusCode: number } {
  const s = (err as { statusCode?: unknown } | null)?.statusCode;
  return err instanceof Error && typeof s === 'number' && s >= 400 && s < 500;
}

export interface HttpError {
  status: number;
  body: { error: string; code: string };
}

export interface HttpMapOptions {
  /**
   * The code for a foreign 4xx error (fastify's, a plugin's) whose own code is not UPPER_SNAKE
   * alone; `'own'` keeps an UPPER_SNAKE-looking code of its own (the REST API's contract).
   */
  foreignCode?: 'own' | 'BAD_REQUEST';
}

/**
 * One error as an HTTP status and body. AppError: its status and code. Fastify's schema check:
 * 400 BAD_REQUEST. Another 4xx: that status. Anything else: 500 INTERNAL (the message is kept:
 * both listeners are for the operator's own tools, and the message says what failed).
 */
export function toHttp(err: unknown, opts: HttpMapOptions = {}): HttpError {
  const e = err instanceof Error ? err : new Error(String(err));
  if (e instanceof AppError) return { status: e.statusCode, body: { error: e.message, code: e.code } };
  if ((e as { validation?: unknown }).validation) return { status: 400, body: { error: e.message, code: 'BAD_REQUEST' } };
  if (isClientError(e)) {
    const own = (e as { code?: unknown }).code;
    const code = opts.foreignCode === 'own' && typeof own === 'string' && /^[A-Z_]+$/.test(own) ? own : 'BAD_REQUEST';
    return { status: e.statusCode, body: { error: e.message, code } };
  }
  return { status: 500, body: { error: e.message, code: 'INTERNAL' } };
}

/**
 * The stable codes of the errors that stop the program before or while it starts (and of the
 * CLI's own); the CLI's exit status goes by these (src/cli/exit.ts), never by class names.
 */
export const STARTUP_CODES = [
  'USAGE',
  'CONFIG_INVALID',
  'RULES_INVALID',
  'STATE_DIR_UNUSABLE',
  'SCHEMA_TOO_NEW',
  'ALREADY_RUNNING',
  'LISTEN_FAILED',
  'ROUTE_POLICY_MISSING',
  'DAEMON_UNREACHABLE',
  'ODOO_INIT',
  'NATIVE_MODULE_ABI',
] as const;
export type StartupCode = (typeof STARTUP_CODES)[number];

/** An error that stops a start or a CLI command: what it says is for the operator; `code` picks the exit status. */
export class StartupError extends Error {
  constructor(
    message: string,
    readonly code: StartupCode,
  ) {
    super(message);
  }
}

/** The code a job error carries: its message reaches Odoo as written. */
export const JOB_ERROR = 'JOB_ERROR';

/** A failed Odoo job as Odoo gets it: the text it shows and the error's stable code. */
export interface JobFailure {
  error: string;
  code: string;
}

/**
 * One failed Odoo job: a JOB_ERROR's text as written, anything else prefixed with the job's
 * function name (`fun failed: ...`), so an unexpected failure says where it came from. The code
 * is the AppError's (or StartupError's) own, INTERNAL for anything else.
 */
export function toJobFailure(err: unknown, fun: string): JobFailure {
  const code = err instanceof AppError || err instanceof StartupError ? err.code : 'INTERNAL';
  // a JOB_ERROR that wraps a refusal (src/listeners.ts) carries the refusal's own code
  if (err instanceof AppError && err.code === JOB_ERROR) return { error: err.message, code: err.cause instanceof AppError ? err.cause.code : code };
  return { error: `${fun} failed: ${(err as Error)?.message ?? String(err)}`, code };
}

/** The text of toJobFailure: what Odoo shows of a failed job. */
export function toJobResult(err: unknown, fun: string): string {
  return toJobFailure(err, fun).error;
}
