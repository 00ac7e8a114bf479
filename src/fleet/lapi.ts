/**
 * The HTTP side of CrowdSec's Local API 1.4 (pkg/apiserver): a machine logs in with
 * POST /v1/watchers/login {machine_id, password} and gets a JWT ({code, expire, token}) that
 * POST /v1/alerts takes as a Bearer token; a bouncer reads GET /v1/decisions/stream with its
 * X-Api-Key. Every answer is read up to a bound; the credentials never reach a log line.
 */
import { AppError } from '../common/errors.js';
import { redactUrl } from '../common/redact.js';
import { readLimited } from '../net/http-body.js';
import { VERSION } from '../version.js';

/** LAPI 1.4 refuses a login whose User-Agent is not exactly name/version ("bad user agent") */
const USER_AGENT = `pbx-guardian/${VERSION}`;

/** a login or alerts answer is read up to this (a JWT, a list of alert ids) */
const SMALL_ANSWER_MAX_BYTES = 256 * 1024;
/** log in again this long before the JWT's own expiry */
const TOKEN_MARGIN_MS = 60_000;
/** when the login answer has no readable expiry */
const TOKEN_DEFAULT_MS = 30 * 60_000;

/** A request to the LAPI that failed. `retry`: worth trying again later (network, 5xx, 401 at login, 429). */
export class LapiError extends AppError {
  constructor(
    message: string,
    readonly retry: boolean,
    readonly status: number | null = null,
  ) {
    super(message, retry ? 'LAPI_UNAVAILABLE' : 'LAPI_REFUSED', 502);
  }
}

export interface LapiClientOptions {
  /** base URL, checked by the config (no user, password or query) */
  url: string;
  timeoutMs: number;
  login?: string;
  password?: string;
  apiKey?: string;
  fetch?: typeof fetch;
}

export class LapiClient {
  private token: { value: string; until: number } | null = null;
  private readonly fetch: typeof fetch;
  private readonly base: string;

  constructor(private readonly opts: LapiClientOptions) {
    this.fetch = opts.fetch ?? fetch;
    this.base = opts.url.replace(/\/+$/, '');
  }

  private async request(path: string, init: RequestInit, maxBytes: number): Promise<{ status: number; text: string }> {
    let res: Response;
    try {
      res = await this.fetch(this.base + path, { ...init, redirect: 'manual', signal: AbortSignal.timeout(this.opts.timeoutMs) });
    } catch (e) {
      const why =
        (e as Error).name === 'TimeoutError' ? `no answer within ${this.opts.timeoutMs} ms` : ((e as { cause?: Error }).cause?.message ?? (e as Error).message);
      throw new LapiError(`the Local API at ${redactUrl(this.base)} is unreachable (${why.slice(0, 200)})`, true);
    }
    const body = await readLimited(res, maxBytes).catch((e: Error) => {
      throw new LapiError(`reading the Local API's answer failed (${e.message.slice(0, 200)})`, true, res.status);
    });
    if (body.truncated) throw new LapiError(`the Local API answered ${path.split('?')[0]} with more than ${maxBytes} bytes: refused`, true, res.status);
    return { status: res.status, text: body.bytes.toString('utf8') };
  }

  private failure(what: string, status: number, text: string, retry: boolean): LapiError {
    let msg = '';
    try {
      const m = (JSON.parse(text) as { message?: unknown }).message;
      if (typeof m === 'string') msg = `: ${m.slice(0, 200)}`;
    } catch {
      /* not JSON: the status says enough */
    }
    return new LapiError(`${what} answered HTTP ${status}${msg}`, retry, status);
  }

  /** POST /v1/watchers/login: the machine's JWT (cached until shortly before it expires). */
  private async jwt(now: number): Promise<string> {
    if (this.token && this.token.until > now) return this.token.value;
    const { status, text } = await this.request(
      '/v1/watchers/login',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT },
        body: JSON.stringify({ machine_id: this.opts.login, password: this.opts.password }),
      },
      SMALL_ANSWER_MAX_BYTES,
    );
    // a refused login stays worth retrying: the admin registers or validates the machine, the queue waits
    if (status !== 200)
      throw this.failure(`login of machine ${JSON.stringify(this.opts.login)} (check cscli machines list and crowdsec.machine.password)`, status, text, true);
    let token: unknown;
    let expire: unknown;
    try {
      ({ token, expire } = JSON.parse(text) as { token?: unknown; expire?: unknown });
    } catch {
      token = undefined;
    }
    if (typeof token !== 'string' || token.length === 0 || token.length > 8192 || /[\r\n]/.test(token))
      throw new LapiError('the login answer holds no token', true, status);
    const exp = typeof expire === 'string' ? Date.parse(expire) : NaN;
    this.token = { value: token, until: Number.isFinite(exp) ? exp - TOKEN_MARGIN_MS : now + TOKEN_DEFAULT_MS };
    return token;
  }

  /** POST /v1/alerts. A 401 (the JWT expired early) logs in once more. */
  async pushAlerts(alerts: unknown[], now = Date.now()): Promise<void> {
    const body = JSON.stringify(alerts);
    for (let attempt = 0; ; attempt++) {
      const token = await this.jwt(now);
      const { status, text } = await this.request(
        '/v1/alerts',
        { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT, authorization: `Bearer ${token}` }, body },
        SMALL_ANSWER_MAX_BYTES,
      );
      if (status === 200 || status === 201) return;
      if (status === 401 && attempt === 0) {
        this.token = null;
        continue;
      }
      const retry = status === 401 || status === 403 || status === 408 || status === 429 || status >= 500;
      throw this.failure('POST /v1/alerts', status, text, retry);
    }
  }

  /** GET /v1/decisions/stream: the raw answer (parsed by decision.ts parseStream). */
  async stream(startup: boolean, maxBytes: number): Promise<string> {
    const { status, text } = await this.request(
      `/v1/decisions/stream?startup=${startup ? 'true' : 'false'}`,
      { method: 'GET', headers: { 'x-api-key': this.opts.apiKey ?? '', 'user-agent': USER_AGENT } },
      maxBytes,
    );
    if (status !== 200) throw this.failure('GET /v1/decisions/stream (check crowdsec.bouncer.apiKey against cscli bouncers list)', status, text, true);
    return text;
  }
}
