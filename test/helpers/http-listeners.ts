/**
 * The daemon's HTTP listeners built as main.ts builds them (agent endpoint, REST with console and
 * config files, admin app with the console route), on real sockets, over real parts: a Guardian on
 * a real SQLite store and a memory firewall, a real JobRunner, real config files in a temp dir, and
 * a FakeAmi that records every action written. `state()` is everything a request could change;
 * `touched` counts every call into a port a handler uses (so a GET that changes nothing is seen too).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolveActionPolicy } from '../../src/ami/index.js';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { createAgentApp } from '../../src/odoo/agent.js';
import { createAdminApp } from '../../src/admin/admin.js';
import { createRestApp, defaultRestConfig } from '../../src/rest/index.js';
import { AsteriskConsole, defaultConsoleConfig, registerConsoleRoute } from '../../src/console/index.js';
import { AsteriskConfigFiles, defaultAsteriskConfigConfig } from '../../src/asterisk-config/index.js';
import { defaultOdooConfig, JobRunner, resolveOdooConfig, type JobRequest } from '../../src/odoo/index.js';
import { Store } from '../../src/store/index.js';
import { FakeAmi } from './fake-odoo.js';
import { makeGuardian } from './guard.js';

export const AGENT = 'agent-token-0123456789abcdef';
export const REST_ADMIN = 'rest-admin-token-0123456789';
export const REST_READ = 'rest-read-token-0123456789ab';

const log = pino({ level: 'silent' });

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One raw HTTP request: the path goes on the wire exactly as given (no normalisation). */
export function send(
  target: { port: number } | { socketPath: string },
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string | number> = { ...headers };
    if (body !== undefined) h['content-length'] = Buffer.byteLength(body);
    const req = request(
      { ...('port' in target ? { host: '127.0.0.1', port: target.port } : { socketPath: target.socketPath }), method, path, headers: h, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', (err: Error & { code?: string }) => {
      // node's HTTP server refuses a request line it cannot parse with a bare 400 before any route
      if (err.code?.startsWith('HPE_')) resolve({ status: 400, headers: {}, body: `refused by the HTTP parser: ${err.message}` });
      else reject(err);
    });
    req.end(body);
  });
}

function spy<T extends object>(target: T, touched: { n: number }): T {
  return new Proxy(target, {
    get(t, key, receiver) {
      const v = Reflect.get(t, key, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        touched.n++;
        return (v as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  });
}

export interface Listeners {
  agent: FastifyInstance;
  rest: FastifyInstance;
  admin: FastifyInstance;
  ports: { agent: number; rest: number; admin: number };
  submitted: JobRequest[];
  ami: FakeAmi;
  touched: { n: number };
  /** everything a request could change, as one comparable text */
  state(): Promise<string>;
  close(): Promise<void>;
}

/** The admin app listens on TCP here: the wiring mistake its local-socket policy must refuse. */
export async function startListeners(): Promise<Listeners> {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-http-auth-'));
  const confDir = join(dir, 'asterisk');
  mkdirSync(confDir);
  writeFileSync(join(confDir, 'extensions.conf'), '[default]\n');
  writeFileSync(join(confDir, 'extensions_odoo.conf'), '[odoo]\n');
  const store = new Store(join(dir, 'state.db'));
  const { guardian, enforcement } = makeGuardian({ allow: ['192.0.2.0/24'] }, store);
  const ami = new FakeAmi();
  const touched = { n: 0 };
  const submitted: JobRequest[] = [];
  const odooConfig = resolveOdooConfig({ ...defaultOdooConfig(), jobTimeoutMs: 2000, recordingDirs: [dir] });
  const policy = resolveActionPolicy({ deniedActions: odooConfig.deniedActions, deniedApplications: odooConfig.deniedApplications });
  const runner = new JobRunner({
    ctx: {
      rpc: { executeKw: () => Promise.reject(new Error('no Odoo in this test')) },
      configSync: null,
      actionPolicy: policy,
      ami,
      bans: guardian,
      config: odooConfig,
      log,
      reloadConfig: () => {
        touched.n++;
      },
      reloadEvents: async () => {
        touched.n++;
        return { loaded: 0, skipped: 0 };
      },
    },
    sink: { result: () => undefined, notify: () => undefined },
  });
  const agent = createAgentApp({
    token: AGENT,
    bodyLimitBytes: 64 * 1024,
    submit: (r) => {
      submitted.push(r);
      return runner.submit(r);
    },
    logger: log,
  });
  const con = new AsteriskConsole(ami, defaultConsoleConfig(), policy);
  const files = new AsteriskConfigFiles({ ...defaultAsteriskConfigConfig(), dir: confDir }, ami);
  const rest = createRestApp({
    config: {
      ...defaultRestConfig(),
      enabled: true,
      tokens: [
        { name: 'admin', token: REST_ADMIN, scopes: ['admin'] },
        { name: 'reader', token: REST_READ, scopes: ['read'] },
      ],
    },
    ami: spy(ami, touched),
    bans: spy(guardian, touched),
    actionPolicy: policy,
    console: spy(con, touched),
    configFiles: spy(files, touched),
    logger: log,
  });
  const admin = createAdminApp({
    control: spy(guardian, touched),
    status: () => {
      touched.n++;
      return guardian.status();
    },
    reload: async () => {
      touched.n++;
      return { rules: 0 };
    },
    version: 'test',
  });
  registerConsoleRoute(admin, spy(con, touched));
  const ports = { agent: 0, rest: 0, admin: 0 };
  for (const [name, app] of [
    ['agent', agent],
    ['rest', rest],
    ['admin', admin],
  ] as const) {
    await app.listen({ host: '127.0.0.1', port: 0 });
    ports[name] = (app.server.address() as { port: number }).port;
  }
  const count = (sql: string) => (store.db.prepare(sql).get() as { n: number }).n;
  return {
    agent,
    rest,
    admin,
    ports,
    submitted,
    ami,
    touched,
    async state() {
      await new Promise((r) => setImmediate(r));
      await Promise.race([runner.whenIdle(), new Promise((r) => setTimeout(r, 2000).unref())]);
      store.flush();
      const files = readdirSync(confDir)
        .sort()
        .map((f) => `${f}:${readFileSync(join(confDir, f), 'utf8').length}`);
      return JSON.stringify({
        touched: touched.n,
        submitted: submitted.length,
        amiWrites: ami.actions.length,
        bans: guardian.listBans().map((b) => b.target),
        allow: guardian.allowList,
        rows: [count('SELECT COUNT(*) AS n FROM bans'), count('SELECT COUNT(*) AS n FROM ban_history')],
        firewall: [enforcement.calls.length, JSON.stringify(await enforcement.backend.list()), JSON.stringify(enforcement.backend.allowList())],
        files,
      });
    },
    async close() {
      for (const app of [agent, rest, admin]) await app.close();
      await runner.close(2000);
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
