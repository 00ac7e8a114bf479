/**
 * A small real HTTP server that plays Odoo for the bridge's tests. It CHECKS the exact payloads
 * of the contract (JSON-RPC envelope, common.login args, execute_kw's 7 args, JSON-2 headers) and
 * records every call. Contract violations are answered with an error AND recorded in `violations`.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedCall {
  transport: 'jsonrpc' | 'json2';
  model: string;
  method: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  at: number;
}

export interface FakeOdooOptions {
  db?: string;
  user?: string;
  password?: string;
  apiKey?: string;
  uid?: number;
  eventsMap?: unknown[];
  /** init answer, or a 400 text */
  init?: { status: 200; body: unknown } | { status: 400; text: string };
}

type Responder = (c: RecordedCall) => unknown;

export class FakeOdoo {
  readonly db: string;
  readonly user: string;
  password: string;
  readonly apiKey: string;
  uid: number;
  eventsMap: unknown[];
  init: FakeOdooOptions['init'];
  /** ms before each answer */
  latencyMs = 0;
  /** 'ok' | 'http503' (answers 503) | 'reset' (destroys the socket) */
  mode: 'ok' | 'http503' | 'reset' = 'ok';
  readonly calls: RecordedCall[] = [];
  readonly logins: Array<{ args: unknown[] }> = [];
  readonly violations: string[] = [];
  readonly responders = new Map<string, Responder>();
  /** GET /asterisk_plus/sip_peers as the module's controller answers it (null: generate_sip_peers off) */
  sipPeers: { securityToken: string; text: string } | null = null;
  readonly sipPeersRequests: Array<{ token: string | undefined }> = [];
  /** requests currently being answered */
  pending = 0;
  private server: http.Server;
  private readonly waiters: Array<() => void> = [];
  url = '';

  constructor(opts: FakeOdooOptions = {}) {
    this.db = opts.db ?? 'testdb';
    this.user = opts.user ?? 'asterisk1';
    this.password = opts.password ?? 'secret-pass';
    this.apiKey = opts.apiKey ?? 'api-key-1';
    this.uid = opts.uid ?? 7;
    this.eventsMap = opts.eventsMap ?? [];
    this.init = opts.init;
    // a client that dies mid-request (the test's point, sometimes) is not an error of the fake
    this.server = http.createServer((req, res) => void this.handle(req, res).catch(() => res.destroy()));
    this.server.keepAliveTimeout = 30_000;
  }

  async start(port = 0): Promise<string> {
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  callsTo(model: string, method: string): RecordedCall[] {
    return this.calls.filter((c) => c.model === model && c.method === method);
  }

  /** resolves when pred() holds (checked after every call), or rejects after timeoutMs */
  async waitFor(pred: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`fake Odoo: timed out waiting for ${what}; calls: ${this.calls.map((c) => `${c.model}.${c.method}`).join(', ')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 20);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  private violation(msg: string): void {
    this.violations.push(msg);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    if (this.mode === 'reset') {
      req.socket.destroy();
      return;
    }
    if (this.mode === 'http503') {
      res.writeHead(503).end('Service Unavailable');
      return;
    }
    this.pending++;
    try {
      if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.method === 'GET' && url.pathname === '/asterisk_plus/agent') return this.handleInit(url, res);
      if (req.method === 'GET' && url.pathname === '/asterisk_plus/sip_peers') {
        const token = req.headers['x-security-token'] as string | undefined;
        this.sipPeersRequests.push({ token });
        const plain = (status: number, text: string): void =>
          void res.writeHead(status, { 'content-type': status === 200 ? 'text/html; charset=utf-8' : 'text/plain' }).end(text);
        if (!token) return plain(400, '; No token!\n');
        if (!this.sipPeers || token !== this.sipPeers.securityToken)
          return plain(400, this.sipPeers ? '; Bad token!\n' : '; Server has generate_sip_peers setting disabled!\n');
        return plain(200, this.sipPeers.text);
      }
      if (req.method === 'POST' && url.pathname === '/jsonrpc') return this.handleJsonRpc(req, body, res);
      const m = /^\/json\/2\/([^/]+)\/([^/]+)$/.exec(url.pathname);
      if (req.method === 'POST' && m) return this.handleJson2(req, decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), body, res);
      this.violation(`unexpected request ${req.method} ${req.url}`);
      res.writeHead(404).end('not found');
    } finally {
      this.pending--;
      for (const w of this.waiters.splice(0)) w();
    }
  }

  private handleInit(url: URL, res: http.ServerResponse): void {
    const db = url.searchParams.get('db');
    if (!db) {
      res.writeHead(400, { 'content-type': 'text/html' }).end('You must specify db paramater!');
      return;
    }
    const i = this.init ?? { status: 200, body: { agent_token: 'tok-123', odoo_user: this.user, odoo_password: this.password, odoo_db: db } };
    if (i.status === 400) {
      res.writeHead(400, { 'content-type': 'text/html' }).end(i.text);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(i.body));
  }

  private send(res: http.ServerResponse, id: unknown, result: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id, result }));
  }

  private sendError(res: http.ServerResponse, id: unknown, name: string, message: string): void {
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        jsonrpc: '2.0',
        id,
        error: { code: 200, message: 'Odoo Server Error', data: { name, message, arguments: [message], context: {}, debug: '' } },
      }),
    );
  }

  private handleJsonRpc(req: http.IncomingMessage, body: string, res: http.ServerResponse): void {
    if (!/application\/json/.test(req.headers['content-type'] ?? '')) this.violation('jsonrpc: content-type is not application/json');
    let msg: { jsonrpc?: unknown; method?: unknown; params?: { service?: unknown; method?: unknown; args?: unknown }; id?: unknown };
    try {
      msg = JSON.parse(body) as typeof msg;
    } catch {
      this.violation('jsonrpc: body is not JSON');
      res.writeHead(400).end();
      return;
    }
    const keys = Object.keys(msg).sort().join(',');
    if (keys !== 'id,jsonrpc,method,params') this.violation(`jsonrpc: envelope keys ${keys}`);
    if (msg.jsonrpc !== '2.0' || msg.method !== 'call' || typeof msg.id !== 'number') this.violation(`jsonrpc: bad envelope ${body.slice(0, 120)}`);
    const p = msg.params ?? {};
    if (!Array.isArray(p.args)) {
      this.violation('jsonrpc: params.args is not a list');
      return this.sendError(res, msg.id, 'TypeError', 'args');
    }
    const args = p.args as unknown[];
    if (p.service === 'common' && p.method === 'login') {
      this.logins.push({ args });
      if (args.length !== 3) this.violation(`common.login: ${args.length} args`);
      const ok = args[0] === this.db && args[1] === this.user && (args[2] === this.password || args[2] === this.apiKey);
      return this.send(res, msg.id, ok ? this.uid : false);
    }
    if (p.service === 'object' && p.method === 'execute_kw') {
      if (args.length !== 7) {
        this.violation(`execute_kw: ${args.length} args (expected db, uid, password, model, method, args, kwargs)`);
        return this.sendError(res, msg.id, 'TypeError', 'execute_kw arity');
      }
      const [db, uid, pwd, model, method, a, kw] = args as [unknown, unknown, unknown, unknown, unknown, unknown, unknown];
      if (db !== this.db) this.violation(`execute_kw: db ${String(db)}`);
      if (typeof model !== 'string' || typeof method !== 'string') this.violation('execute_kw: model/method not strings');
      if (!Array.isArray(a)) this.violation(`execute_kw: args of ${String(model)}.${String(method)} is not a list`);
      if (kw === null || typeof kw !== 'object' || Array.isArray(kw)) this.violation(`execute_kw: kwargs of ${String(model)}.${String(method)} is not a dict`);
      if (uid !== this.uid || (pwd !== this.password && pwd !== this.apiKey)) {
        return this.sendError(res, msg.id, 'odoo.exceptions.AccessDenied', 'Access Denied');
      }
      return this.dispatch(res, msg.id, {
        transport: 'jsonrpc',
        model: model as string,
        method: method as string,
        args: a as unknown[],
        kwargs: kw as Record<string, unknown>,
        at: Date.now(),
      });
    }
    this.violation(`jsonrpc: unknown ${String(p.service)}.${String(p.method)}`);
    this.sendError(res, msg.id, 'Exception', 'unknown service');
  }

  private handleJson2(req: http.IncomingMessage, model: string, method: string, body: string, res: http.ServerResponse): void {
    if (req.headers.authorization !== `bearer ${this.apiKey}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'werkzeug.exceptions.Unauthorized', message: 'Invalid apikey' }));
      return;
    }
    if (req.headers['x-odoo-database'] !== this.db) this.violation(`json2: X-Odoo-Database ${String(req.headers['x-odoo-database'])}`);
    let params: Record<string, unknown>;
    try {
      params = JSON.parse(body) as Record<string, unknown>;
    } catch {
      this.violation('json2: body not JSON');
      res.writeHead(400).end();
      return;
    }
    if (params === null || typeof params !== 'object' || Array.isArray(params)) {
      this.violation('json2: body is not an object of named params');
      res.writeHead(422).end('{}');
      return;
    }
    const c: RecordedCall = { transport: 'json2', model, method, args: [], kwargs: params, at: Date.now() };
    if (model === 'asterisk_plus.event' && method === 'search_read') {
      this.calls.push(c);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.eventsMap));
      return;
    }
    this.calls.push(c);
    const r = this.responders.get(`${model}.${method}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r ? r(c) : true));
  }

  private dispatch(res: http.ServerResponse, id: unknown, c: RecordedCall): void {
    if (c.model === 'asterisk_plus.event' && c.method === 'search_read') {
      const domain = c.args[0];
      if (
        JSON.stringify(c.args) !==
        JSON.stringify([
          [
            ['is_enabled', '=', true],
            ['source', 'in', ['AMI', 'FAGI']],
          ],
        ])
      )
        this.violation(`events map: domain ${JSON.stringify(domain)}`);
      const fields = c.kwargs.fields;
      if (!Array.isArray(fields) || !['name', 'model', 'method', 'delay', 'condition'].every((f) => fields.includes(f)))
        this.violation(`events map: fields ${JSON.stringify(fields)}`);
      this.calls.push(c);
      return this.send(res, id, this.eventsMap);
    }
    this.calls.push(c);
    const r = this.responders.get(`${c.model}.${c.method}`);
    if (r) {
      try {
        return this.send(res, id, r(c));
      } catch (e) {
        return this.sendError(res, id, 'odoo.exceptions.UserError', (e as Error).message);
      }
    }
    this.send(res, id, true);
  }
}

// ------------------------------------------------------------------ small fakes for the bridge

import type { AmiActionFields, AmiMessage, AmiResponse } from '../../src/ami/types.js';
import type { BanControl, BanRecord, ManualBanRequest } from '../../src/guard/types.js';
import { AllowListedError, InvalidTargetError } from '../../src/guard/types.js';

/** Build an AmiMessage from header pairs (or "Key: value" lines). */
export function amiMessage(headers: Array<[string, string]> | string): AmiMessage {
  const pairs: Array<[string, string]> =
    typeof headers === 'string'
      ? headers
          .split(/\r?\n/)
          .filter(Boolean)
          .map((l) => {
            const i = l.indexOf(':');
            return [l.slice(0, i), l.slice(i + 1).trim()] as [string, string];
          })
      : headers;
  return {
    headers: pairs,
    get(key: string) {
      const k = key.toLowerCase();
      return pairs.find(([h]) => h.toLowerCase() === k)?.[1];
    },
    getAll(key: string) {
      const k = key.toLowerCase();
      return pairs.filter(([h]) => h.toLowerCase() === k).map(([, v]) => v);
    },
    toObject() {
      const o = Object.create(null) as Record<string, string>;
      for (const [k, v] of pairs) if (!(k in o)) o[k] = v;
      return o;
    },
  };
}

/** Parse a raw AMI transcript (frames separated by blank lines) into messages. */
export function parseFrames(raw: string): AmiMessage[] {
  return raw
    .split(/\r?\n\r?\n/)
    .map((f) => f.trim())
    .filter(Boolean)
    .map((f) => amiMessage(f));
}

export class FakeAmi {
  readonly actions: AmiActionFields[] = [];
  handler: (f: AmiActionFields) => AmiResponse | Promise<AmiResponse> = () => ({ response: amiMessage([['Response', 'Success']]), events: [] });
  async action(fields: AmiActionFields, _opts?: { timeoutMs?: number }): Promise<AmiResponse> {
    this.actions.push(fields);
    return this.handler(fields);
  }
}

export class FakeBans implements BanControl {
  readonly bans = new Map<string, BanRecord>();
  readonly calls: string[] = [];
  allow: string[] = ['127.0.0.1'];
  deny: string[] = [];
  async ban(r: ManualBanRequest): Promise<BanRecord> {
    this.calls.push(`ban ${r.target}`);
    if (!/^[0-9a-f.:/]+$/i.test(r.target)) throw new InvalidTargetError(`not an IP address or CIDR: ${r.target}`);
    if (this.allow.includes(r.target)) throw new AllowListedError(`${r.target} is allow-listed`);
    const now = Date.now();
    const rec: BanRecord = {
      target: r.target,
      family: r.target.includes(':') ? 6 : 4,
      isNetwork: r.target.includes('/'),
      createdAt: now,
      expiresAt: r.durationSec ? now + r.durationSec * 1000 : null,
      rule: 'manual',
      source: r.source,
      reason: r.reason ?? '',
      count: 0,
    };
    this.bans.set(r.target, rec);
    return rec;
  }
  async unban(t: string): Promise<boolean> {
    this.calls.push(`unban ${t}`);
    return this.bans.delete(t);
  }
  async unbanAll(): Promise<number> {
    const n = this.bans.size;
    this.bans.clear();
    return n;
  }
  listBans(): BanRecord[] {
    return [...this.bans.values()];
  }
  async replaceAccessRules(rules: { allow: string[]; deny: string[] }): Promise<void> {
    this.calls.push(`rules ${JSON.stringify(rules)}`);
    this.allow = rules.allow;
    this.deny = rules.deny;
  }
  isAllowListed(a: string): boolean {
    return this.allow.includes(a);
  }
}

/** One exchange of the run between a real Odoo 17 with Asterisk Plus 4.2 and the agent (test/fixtures/odoo17-asterisk-plus/). */
export interface RecordedExchange {
  method: string;
  path: string;
  req_body?: string;
  status: number;
  resp_body?: string;
}

/** The exchanges of one direction: 'odoo-to-agent' (jobs) or 'agent-to-odoo' (RPC calls). */
export function recordedExchanges(direction: 'odoo-to-agent' | 'agent-to-odoo'): RecordedExchange[] {
  const file = new URL(`../../../test/fixtures/odoo17-asterisk-plus/${direction}.jsonl`, import.meta.url);
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RecordedExchange);
}
