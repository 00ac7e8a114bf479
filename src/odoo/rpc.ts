/**
 * Odoo RPC client: classic /jsonrpc (common.login + object.execute_kw) or Odoo 19 JSON-2.
 * Keep-alive connections with a cap (http(s).Agent maxSockets), retries with backoff on
 * transport errors, re-login when the uid / session is rejected, clear auth failure logs.
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import type { OdooConfig } from './config.js';
import { jsonBody, type JsonBody } from './json-body.js';
import { backoffMs } from '../net/backoff.js';
import { AppError } from '../common/errors.js';

/** Odoo could not be reached or answered 5xx / not JSON: worth retrying later. */
export class OdooUnavailableError extends AppError {
  constructor(message: string) {
    super(message, 'ODOO_UNAVAILABLE', 503);
  }
}
/** Odoo refused our credentials. Retrying will not help until the config is fixed. */
export class OdooAuthError extends AppError {
  constructor(message: string) {
    super(message, 'ODOO_AUTH', 502);
  }
}
/** Odoo ran the call and raised (bad method, handler error, validation error). Not retryable. */
export class OdooServerError extends AppError {
  constructor(
    message: string,
    readonly errorName: string,
    readonly data?: unknown,
  ) {
    super(message, 'ODOO_SERVER_ERROR', 502);
  }
}

export interface CallOptions {
  /** retries on OdooUnavailableError; defaults to config.rpcRetries */
  retries?: number;
  /** JSON-2: names of the positional args (default from config.json2ParamNames / a table) */
  paramNames?: string[];
  timeoutMs?: number;
}

/** The part of the client the forwarder, the job runner and FAGI use (fakes in tests). */
export interface OdooCaller {
  executeKw(model: string, method: string, args: unknown[], kwargs?: Record<string, unknown>, opts?: CallOptions): Promise<unknown>;
}

/** What the client knows about its link to Odoo (health model). */
export interface RpcHealth {
  transport: 'jsonrpc' | 'json2';
  /** jsonrpc: holding a uid; json2: the last call was accepted */
  loggedIn: boolean;
  /** Odoo refused our credentials (until a call is accepted again) */
  authError: string | null;
  /** epoch ms since calls fail (unreachable or refused); null while they succeed */
  failingSince: number | null;
  lastError: { message: string; at: number } | null;
  lastOkAt: number | null;
}

export interface RpcStats {
  onCall?(outcome: 'ok' | 'unavailable' | 'auth' | 'server_error', seconds: number): void;
}

/** First-parameter names of the Asterisk Plus methods the agent calls (JSON-2 needs names). */
const JSON2_DEFAULT_NAMES: Record<string, string[]> = {
  search_read: ['domain'],
  search: ['domain'],
  asterisk_plus_notify: ['message'],
  fagi_request: ['request'],
  originate_call_response: ['data'],
  upload_recording: ['data'],
  upload_voicemail: ['data'],
  file_delete_result: ['result'],
};

const SESSION_ERRORS = new Set(['odoo.exceptions.AccessDenied', 'odoo.http.SessionExpiredException', 'AccessDenied']);

export class OdooRpc implements OdooCaller {
  private uid: number | null = null;
  private loginPromise: Promise<number> | null = null;
  private authFailedUntil = 0;
  private authError: OdooAuthError | null = null;
  private idSeq = 0;
  private readonly agent: http.Agent;
  private readonly base: URL;
  private closed = false;
  private lastOkAt: number | null = null;
  private failingSince: number | null = null;
  private lastError: { message: string; at: number } | null = null;
  private json2AuthError: string | null = null;

  constructor(
    private readonly cfg: Pick<
      OdooConfig,
      'url' | 'db' | 'user' | 'password' | 'apiKey' | 'transport' | 'rpcConcurrency' | 'rpcTimeoutMs' | 'rpcRetries' | 'json2ParamNames' | 'responseMaxBytes'
    >,
    private readonly log: Logger,
    private readonly stats: RpcStats = {},
  ) {
    if (!cfg.url) throw new Error('odoo.url is empty: set it to the Odoo base URL, e.g. https://odoo.example.com');
    this.base = new URL(cfg.url.endsWith('/') ? cfg.url : cfg.url + '/');
    const opts = { keepAlive: true, maxSockets: cfg.rpcConcurrency, maxFreeSockets: Math.min(cfg.rpcConcurrency, 32), scheduling: 'lifo' as const };
    this.agent = this.base.protocol === 'https:' ? new https.Agent(opts) : new http.Agent(opts);
  }

  health(): RpcHealth {
    const json2 = this.cfg.transport === 'json2';
    return {
      transport: json2 ? 'json2' : 'jsonrpc',
      loggedIn: json2 ? this.lastOkAt !== null && this.json2AuthError === null : this.uid !== null && this.authError === null,
      authError: json2 ? this.json2AuthError : (this.authError?.message ?? null),
      failingSince: this.failingSince,
      lastError: this.lastError,
      lastOkAt: this.lastOkAt,
    };
  }

  private noteOutcome(err: Error | null): void {
    const now = Date.now();
    if (err === null) {
      this.lastOkAt = now;
      this.failingSince = null;
      this.json2AuthError = null;
      return;
    }
    this.lastError = { message: err.message, at: now };
    // Odoo ran the call and raised: the link works
    if (err instanceof OdooServerError) return;
    this.failingSince ??= now;
    if (err instanceof OdooAuthError && this.cfg.transport === 'json2') this.json2AuthError = err.message;
  }

  close(): void {
    this.closed = true;
    this.agent.destroy();
  }

  /** uid of the agent user (classic transport); logs in when needed. */
  async login(force = false): Promise<number> {
    if (this.cfg.transport === 'json2') return 0;
    if (!force && this.uid !== null) return this.uid;
    if (this.authError && Date.now() < this.authFailedUntil) throw this.authError;
    if (this.loginPromise) return this.loginPromise;
    this.loginPromise = (async () => {
      try {
        const uid = await this.jsonrpc('common', 'login', [this.cfg.db, this.cfg.user, this.cfg.password], this.cfg.rpcTimeoutMs);
        if (typeof uid !== 'number' || uid <= 0) {
          const err = new OdooAuthError(
            `Odoo rejected login for user ${this.cfg.user} on db ${this.cfg.db}: check odoo.user/odoo.password ` +
              `(a password or an API key of that user; run "pbx-guardian odoo init" to get fresh credentials)`,
          );
          this.authError = err;
          this.authFailedUntil = Date.now() + 15_000;
          this.log.error({ odooUrl: this.cfg.url, db: this.cfg.db, user: this.cfg.user }, err.message);
          throw err;
        }
        if (this.authError) this.log.info({ user: this.cfg.user, db: this.cfg.db, uid }, 'Odoo login accepted again');
        this.authError = null;
        this.uid = uid;
        return uid;
      } catch (e) {
        if (e instanceof OdooServerError) {
          // e.g. the database does not exist
          const err = new OdooAuthError(
            `Odoo refused login for user ${this.cfg.user} on db ${this.cfg.db}: ${e.message}: check odoo.db/odoo.user/odoo.password`,
          );
          this.authError = err;
          this.authFailedUntil = Date.now() + 15_000;
          this.log.error({ db: this.cfg.db, user: this.cfg.user }, err.message);
          throw err;
        }
        throw e;
      } finally {
        this.loginPromise = null;
      }
    })();
    return this.loginPromise;
  }

  /** execute_kw(model, method, args, kwargs), with retries on transport errors. */
  async executeKw(model: string, method: string, args: unknown[], kwargs: Record<string, unknown> = {}, opts: CallOptions = {}): Promise<unknown> {
    const retries = opts.retries ?? this.cfg.rpcRetries;
    let attempt = 0;
    for (;;) {
      const t0 = performance.now();
      try {
        const r = await this.callOnce(model, method, args, kwargs, opts);
        this.stats.onCall?.('ok', (performance.now() - t0) / 1000);
        this.noteOutcome(null);
        return r;
      } catch (e) {
        const secs = (performance.now() - t0) / 1000;
        if (e instanceof OdooUnavailableError) {
          this.stats.onCall?.('unavailable', secs);
          if (attempt >= retries || this.closed) {
            this.noteOutcome(e);
            throw e;
          }
          // +-25% jitter: the calls that failed together (Odoo down) should not all retry in the same ms.
          const delay = backoffMs(attempt, 200, 5000) * (0.75 + Math.random() * 0.5);
          attempt++;
          await sleep(delay);
          continue;
        }
        this.stats.onCall?.(e instanceof OdooAuthError ? 'auth' : 'server_error', secs);
        this.noteOutcome(e as Error);
        throw e;
      }
    }
  }

  private async callOnce(model: string, method: string, args: unknown[], kwargs: Record<string, unknown>, opts: CallOptions): Promise<unknown> {
    const timeout = opts.timeoutMs ?? this.cfg.rpcTimeoutMs;
    if (this.cfg.transport === 'json2') return this.json2(model, method, args, kwargs, opts.paramNames, timeout);
    let uid = await this.login();
    try {
      return await this.jsonrpc('object', 'execute_kw', [this.cfg.db, uid, this.cfg.password, model, method, args, kwargs], timeout);
    } catch (e) {
      if (e instanceof OdooServerError && (SESSION_ERRORS.has(e.errorName) || /access denied|session expired/i.test(e.message))) {
        // the uid/password was rejected (password changed, user archived): log in again once
        this.uid = null;
        uid = await this.login(true);
        return this.jsonrpc('object', 'execute_kw', [this.cfg.db, uid, this.cfg.password, model, method, args, kwargs], timeout);
      }
      throw e;
    }
  }

  private async jsonrpc(service: string, method: string, args: unknown[], timeoutMs: number): Promise<unknown> {
    const id = ++this.idSeq;
    const body = jsonBody({ jsonrpc: '2.0', method: 'call', params: { service, method, args }, id });
    const res = await this.post('jsonrpc', body, {}, timeoutMs);
    if (res.status >= 500 || res.status === 429 || res.status === 404 || res.status === 408) {
      throw new OdooUnavailableError(`Odoo answered HTTP ${res.status} on /jsonrpc`);
    }
    if (res.status !== 200) throw new OdooUnavailableError(`Odoo answered HTTP ${res.status} on /jsonrpc`);
    let msg: { result?: unknown; error?: { code?: number; message?: string; data?: { name?: string; message?: string } } };
    try {
      msg = JSON.parse(res.body) as typeof msg;
    } catch {
      throw new OdooUnavailableError('Odoo answered /jsonrpc with something that is not JSON (a proxy error page?)');
    }
    if (msg.error) {
      const name = msg.error.data?.name ?? '';
      const text = msg.error.data?.message || msg.error.message || 'Odoo error';
      if (msg.error.code === 100) throw new OdooServerError(`session expired: ${text}`, 'odoo.http.SessionExpiredException', msg.error.data);
      throw new OdooServerError(text, name, msg.error.data);
    }
    return msg.result;
  }

  private async json2(
    model: string,
    method: string,
    args: unknown[],
    kwargs: Record<string, unknown>,
    names: string[] | undefined,
    timeoutMs: number,
  ): Promise<unknown> {
    const key = this.cfg.apiKey || this.cfg.password;
    const paramNames = this.paramNamesFor(model, method, names);
    const body: Record<string, unknown> = { ...kwargs };
    args.forEach((a, i) => {
      const n = paramNames[i];
      if (!n)
        throw new OdooServerError(
          `JSON-2 needs a parameter name for argument ${i + 1} of ${model}.${method}: set odoo.json2ParamNames["${model}.${method}"]`,
          'config',
        );
      body[n] = a;
    });
    const path = `json/2/${encodeURIComponent(model)}/${encodeURIComponent(method)}`;
    const res = await this.post(path, jsonBody(body), { authorization: `bearer ${key}`, 'x-odoo-database': this.cfg.db }, timeoutMs);
    if (res.status === 200) {
      try {
        return JSON.parse(res.body) as unknown;
      } catch {
        throw new OdooUnavailableError(`Odoo answered /${path} with something that is not JSON`);
      }
    }
    if (res.status === 401 || res.status === 403) {
      const err = new OdooAuthError(
        `Odoo rejected the API key for user ${this.cfg.user || '(api key)'} on db ${this.cfg.db}: check odoo.apiKey (HTTP ${res.status})`,
      );
      this.log.error({ db: this.cfg.db }, err.message);
      throw err;
    }
    if (res.status >= 500 || res.status === 429 || res.status === 408 || res.status === 502 || res.status === 503) {
      throw new OdooUnavailableError(`Odoo answered HTTP ${res.status} on /${path}`);
    }
    let msg = '';
    let name = '';
    try {
      const e = JSON.parse(res.body) as { name?: string; message?: string };
      msg = e.message ?? '';
      name = e.name ?? '';
    } catch {
      msg = res.body.slice(0, 200);
    }
    throw new OdooServerError(`HTTP ${res.status}: ${msg}`, name);
  }

  private paramNamesFor(model: string, method: string, given: string[] | undefined): string[] {
    const over = this.cfg.json2ParamNames[`${model}.${method}`] ?? this.cfg.json2ParamNames[method];
    if (over) return [over];
    return given ?? JSON2_DEFAULT_NAMES[method] ?? ['data'];
  }

  /** POSTs `body` (streamed when it holds file data); the answer is read up to odoo.responseMaxBytes. */
  private post(path: string, body: JsonBody, headers: Record<string, string>, timeoutMs: number): Promise<{ status: number; body: string }> {
    const url = new URL(path, this.base);
    const mod = url.protocol === 'https:' ? https : http;
    const max = this.cfg.responseMaxBytes;
    const tooLarge = () =>
      new OdooUnavailableError(
        `Odoo's answer on ${url.pathname} is larger than odoo.responseMaxBytes (${max} bytes): aborted. A proxy error page? If the events map is that large, raise odoo.responseMaxBytes`,
      );
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new OdooUnavailableError('Odoo client closed'));
        return;
      }
      const req = mod.request(
        url,
        {
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': body.length, 'user-agent': 'pbx-guardian', ...headers },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = Number(res.headers['content-length'] ?? 0);
          if (size > max) {
            req.destroy(tooLarge());
            return;
          }
          size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > max) {
              chunks.length = 0;
              req.destroy(tooLarge());
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', (e) => reject(new OdooUnavailableError(`Odoo response aborted: ${e.message}`)));
        },
      );
      req.on('timeout', () => req.destroy(new OdooUnavailableError(`Odoo did not answer within ${timeoutMs} ms (${url.pathname})`)));
      req.on('error', (e) =>
        reject(e instanceof OdooUnavailableError ? e : new OdooUnavailableError(`cannot reach Odoo at ${this.base.origin}: ${e.message}`)),
      );
      if (body.text !== null) req.end(body.text);
      else body.writeTo(req).catch((e: Error) => req.destroy(new OdooUnavailableError(`cannot send the request to Odoo: ${e.message}`)));
    });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
