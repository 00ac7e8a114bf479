/**
 * startDaemon's start order, in process with a real daemon: every listener binds before the
 * firewall backend is set up, a bind failure closes what was opened (lock included) and names the
 * listener, two daemons never share a state directory or an admin socket, and requests that could
 * change something are held off (503) until the firewall is ready.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import pino from 'pino';
import { ListenError, StartingGate } from '../src/admin/listen.js';
import { callDaemon } from '../src/admin/client.js';
import { buildConfig } from '../src/config/index.js';
import { DeferredBackend, MemoryBackend } from '../src/firewall/index.js';
import { startDaemon } from '../src/main.js';
import { AlreadyRunningError, LOCK_FILE, StateDirError } from '../src/store/index.js';
import { FakeOdoo } from './helpers/fake-odoo.js';
import { postJob } from './helpers/agent-job.js';

const silent = pino({ level: 'silent' });

/** A memory backend that counts setup() calls: 0 means the firewall was never touched. */
class CountingBackend extends MemoryBackend {
  setups = 0;
  override async setup(): Promise<void> {
    this.setups++;
  }
}

function tempBase(t: { after(fn: () => void | Promise<void>): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-start-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function config(base: string, extra: Record<string, unknown> = {}) {
  return buildConfig({
    stateDir: join(base, 'state'),
    logLevel: 'silent',
    ami: { enabled: false },
    firewall: { backend: 'memory' },
    metrics: { enabled: false },
    admin: { socket: join(base, 'admin.sock') },
    ...extra,
  });
}

async function holdPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

for (const [listener, keys, extra] of [
  ['metrics endpoint', 'metrics.host / metrics.port', (port: number) => ({ metrics: { enabled: true, host: '127.0.0.1', port } })],
  [
    'REST API',
    'rest.host / rest.port',
    (port: number) => ({ rest: { enabled: true, host: '127.0.0.1', port, tokens: [{ token: 'x'.repeat(24), scopes: ['read'], name: 'crm' }] } }),
  ],
] as const) {
  test(`${listener} port taken: ListenError naming it, the backend never set up, the admin socket and lock released`, async (t) => {
    const base = tempBase(t);
    const { server, port } = await holdPort();
    t.after(() => void server.close());
    const backend = new CountingBackend();
    await assert.rejects(
      startDaemon({ config: config(base, extra(port)), backend, logger: silent }),
      (err: Error) =>
        err instanceof ListenError &&
        err.code === 'LISTEN_FAILED' &&
        err.errno === 'EADDRINUSE' &&
        err.message.includes(`127.0.0.1:${port} for the ${listener} (${keys})`),
    );
    assert.equal(backend.setups, 0, 'the firewall was never set up');
    assert.equal(existsSync(join(base, 'admin.sock')), false, 'the admin socket bound first was closed');
    assert.equal(existsSync(join(base, 'state', LOCK_FILE)), false, 'the lock was released');
    // and the directory is free for the next start
    const d = await startDaemon({ config: config(base), backend, logger: silent });
    assert.equal(backend.setups, 1);
    await d.stop();
  });
}

test('Odoo job endpoint port taken: ListenError naming odoo.listen, nothing set up', async (t) => {
  const base = tempBase(t);
  const { server, port } = await holdPort();
  t.after(() => void server.close());
  const odoo = new FakeOdoo();
  const url = await odoo.start();
  t.after(() => odoo.stop());
  const backend = new CountingBackend();
  const cfg = config(base, {
    odoo: { enabled: true, url, db: odoo.db, user: odoo.user, password: odoo.password, agentToken: 'tok', listen: { host: '127.0.0.1', port } },
  });
  await assert.rejects(
    startDaemon({ config: cfg, backend, logger: silent }),
    (err: Error) => err instanceof ListenError && err.message.includes(`127.0.0.1:${port} for the Odoo job endpoint (odoo.listen.host / odoo.listen.port)`),
  );
  assert.equal(backend.setups, 0);
  assert.equal(existsSync(join(base, 'state', LOCK_FILE)), false);
});

test('a second daemon on the same state dir (same process) is refused before it binds anything', async (t) => {
  const base = tempBase(t);
  const first = await startDaemon({ config: config(base), backend: new MemoryBackend(), logger: silent });
  t.after(() => first.stop());
  const other = tempBase(t);
  const backend = new CountingBackend();
  // same state dir, another admin socket: refused on the lock, so the other socket is never made
  const cfg = { ...config(base), admin: { socket: join(other, 'admin.sock'), socketMode: '0600' } };
  await assert.rejects(startDaemon({ config: cfg, backend, logger: silent }), AlreadyRunningError);
  assert.equal(backend.setups, 0);
  assert.equal(existsSync(join(other, 'admin.sock')), false);
  assert.ok(existsSync(join(base, 'state', LOCK_FILE)), 'the first daemon keeps its lock');
  await callDaemon(join(base, 'admin.sock'), 'GET', '/status');
});

test("a daemon with another state dir but the same admin socket never takes the running one's socket", async (t) => {
  const base = tempBase(t);
  const first = await startDaemon({ config: config(base), backend: new MemoryBackend(), logger: silent });
  t.after(() => first.stop());
  const other = tempBase(t);
  const backend = new CountingBackend();
  const cfg = { ...config(other), admin: { socket: join(base, 'admin.sock'), socketMode: '0600' } };
  await assert.rejects(
    startDaemon({ config: cfg, backend, logger: silent }),
    (err: Error) => err instanceof ListenError && /admin socket \(admin\.socket\).*running process/.test(err.message),
  );
  assert.equal(backend.setups, 0);
  const s = await callDaemon<{ currentlyBanned: number }>(join(base, 'admin.sock'), 'GET', '/status');
  assert.equal(typeof s.currentlyBanned, 'number', 'the first daemon still answers on its socket');
});

test('the starting gate: 503 STARTING for requests that change something until open(); reads pass', async (t) => {
  const app = Fastify();
  app.get('/status', async () => ({ ok: true }));
  app.post('/bans', async () => ({ banned: true }));
  const gate = new StartingGate();
  gate.hold(app.server);
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const before = await fetch(`${url}/bans`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  assert.equal(before.status, 503);
  assert.equal(before.headers.get('retry-after'), '1');
  assert.equal(((await before.json()) as { code: string }).code, 'STARTING');
  assert.equal((await fetch(`${url}/status`)).status, 200);
  gate.open();
  const after = await fetch(`${url}/bans`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  assert.equal(after.status, 200);
  assert.deepEqual(await after.json(), { banned: true });
});

test('between bind and firewall ready, the admin socket answers status but refuses a ban with 503; after, the ban goes through', async (t) => {
  const base = tempBase(t);
  let release!: () => void;
  const ready = new Promise<void>((r) => (release = r));
  const backend = new CountingBackend();
  backend.setup = async () => {
    backend.setups++;
    await ready; // the firewall takes its time (e.g. restoring 100k bans)
  };
  const starting = startDaemon({ config: config(base), backend, logger: silent });
  t.after(async () => {
    release();
    await (await starting.catch(() => null))?.stop();
  });
  const socket = join(base, 'admin.sock');
  for (let i = 0; backend.setups === 0; i++) {
    assert.ok(i < 200, 'the firewall setup began');
    await new Promise((r) => setTimeout(r, 25));
  }
  const status = await callDaemon<{ currentlyBanned: number }>(socket, 'GET', '/status');
  assert.equal(status.currentlyBanned, 0, 'reads are answered while starting');
  await assert.rejects(
    callDaemon(socket, 'POST', '/bans', { target: '203.0.113.9' }),
    (err: Error & { status?: number }) => err.status === 503 && /starting/.test(err.message),
  );
  assert.equal((await backend.list()).length, 0, 'nothing reached the enforcer');
  release();
  await starting;
  await callDaemon(socket, 'POST', '/bans', { target: '203.0.113.9' });
  for (let i = 0; (await backend.list()).length === 0; i++) {
    assert.ok(i < 200, 'the ban reached the backend');
    await new Promise((r) => setTimeout(r, 25));
  }
});

test("the late-bound backend the enforcer starts with passes on the real one's name and kernel timeout cap", async () => {
  // startDaemon builds the enforcer before the backend exists (DeferredBackend); reconcile reads
  // maxTimeoutMs (ipset caps element timeouts at ~24.8 days) through it
  const inner = Object.assign(new MemoryBackend(), { maxTimeoutMs: 60_000 });
  const late = new DeferredBackend(async () => inner);
  assert.equal(late.maxTimeoutMs, undefined);
  await late.setup();
  assert.equal(late.maxTimeoutMs, 60_000);
  assert.equal(late.name, 'memory');
});

test('a state database that cannot be opened stops the start (it used to run on an in-memory one): nothing bound, lock released', async (t) => {
  const base = tempBase(t);
  mkdirSync(join(base, 'state'));
  writeFileSync(join(base, 'state', 'guardian.sqlite'), 'this is not an SQLite file, but long enough to be read as one '.repeat(100));
  const backend = new CountingBackend();
  await assert.rejects(
    startDaemon({ config: config(base), backend, logger: silent }),
    (err: Error) => err instanceof StateDirError && /guardian\.sqlite cannot be opened \(file is not a database\)/.test(err.message),
  );
  assert.equal(backend.setups, 0);
  assert.equal(existsSync(join(base, 'admin.sock')), false);
  assert.equal(existsSync(join(base, 'state', LOCK_FILE)), false);
});

test('between bind and firewall ready, an Odoo ban job is answered 503 (Odoo sees a failed post), not run', async (t) => {
  const base = tempBase(t);
  const odoo = new FakeOdoo();
  const url = await odoo.start();
  t.after(() => odoo.stop());
  const { server, port } = await holdPort(); // a free port for the job endpoint
  await new Promise((r) => server.close(r));
  let release!: () => void;
  const ready = new Promise<void>((r) => (release = r));
  const backend = new CountingBackend();
  backend.setup = async () => {
    backend.setups++;
    await ready;
  };
  const token = 'agent-token-0123456789';
  const cfg = config(base, {
    odoo: { enabled: true, url, db: odoo.db, user: odoo.user, password: odoo.password, agentToken: token, listen: { host: '127.0.0.1', port } },
  });
  const starting = startDaemon({ config: cfg, backend, logger: silent });
  t.after(async () => {
    release();
    await (await starting.catch(() => null))?.stop();
  });
  for (let i = 0; backend.setups === 0; i++) {
    assert.ok(i < 400, 'the firewall setup began');
    await new Promise((r) => setTimeout(r, 25));
  }
  const during = await postJob(port, { fun: 'security.ban', args: ['203.0.113.80'] }, token);
  assert.equal(during.status, 503);
  assert.match(during.body, /STARTING/);
  release();
  const d = await starting;
  assert.equal(d.guardian.listBans().length, 0, 'the job was not run');
  const after = await postJob(port, { fun: 'security.ban', args: ['203.0.113.80'] }, token);
  assert.equal(after.status, 200);
});
