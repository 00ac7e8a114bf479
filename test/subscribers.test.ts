import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { resolveActionPolicy } from '../src/ami/index.js';
import { AsteriskConfigFiles } from '../src/asterisk-config/index.js';
import { buildConfig } from '../src/config/index.js';
import { AsteriskConsole } from '../src/console/index.js';
import { connectSubscribers, type BanNotice, type GuardListener, type Subscriber } from '../src/guard/index.js';
import { startOdoo } from '../src/listeners.js';
import { JobRegistry, startOdooBridge, type OdooBridge } from '../src/odoo/index.js';
import { amiMessage, FakeAmi, FakeBans } from './helpers/fake-odoo.js';

const log = pino({ level: 'silent' });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-subscribers-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const notice = (action: 'ban' | 'unban'): BanNotice => ({
  action,
  record: { target: '203.0.113.7', family: 4, isNetwork: false, createdAt: 0, expiresAt: null, rule: 'r', source: 'rule', reason: '', count: 1 },
});

class FakeGuard {
  readonly listeners: GuardListener[] = [];
  on(l: GuardListener): void {
    this.listeners.push(l);
  }
}

test('connectSubscribers: one AMI listener and one guard listener for the list, called in list order; nothing for a kind no one takes', () => {
  const seen: string[] = [];
  const sub = (name: string, kinds: { ami?: boolean; ban?: boolean }): Subscriber => ({
    name,
    ...(kinds.ami ? { handleAmiEvent: (m) => void seen.push(`${name} ami ${m.get('Event')}`) } : {}),
    ...(kinds.ban ? { handleBanNotice: (n) => void seen.push(`${name} ${n.action}`) } : {}),
    close: async () => undefined,
  });
  const ami = new EventEmitter();
  const guard = new FakeGuard();
  connectSubscribers([sub('odoo', { ami: true, ban: true }), sub('bans-only', { ban: true }), sub('webhooks', { ami: true, ban: true })], ami, guard);
  assert.equal(ami.listenerCount('event'), 1);
  assert.equal(guard.listeners.length, 1);
  ami.emit('event', amiMessage([['Event', 'Newchannel']]));
  guard.listeners[0]!.banned!(notice('ban'));
  guard.listeners[0]!.unbanned!(notice('unban'), 'expired');
  assert.deepEqual(seen, [
    'odoo ami Newchannel',
    'webhooks ami Newchannel',
    'odoo ban',
    'bans-only ban',
    'webhooks ban',
    'odoo unban',
    'bans-only unban',
    'webhooks unban',
  ]);

  const quiet = new EventEmitter();
  const quietGuard = new FakeGuard();
  connectSubscribers([sub('bans-only', { ban: true })], quiet, quietGuard);
  assert.equal(quiet.listenerCount('event'), 0, 'no AMI listener when no subscriber takes AMI events');
  connectSubscribers([], quiet, quietGuard);
  assert.equal(quietGuard.listeners.length, 1, 'no guard listener for an empty list');
  connectSubscribers([sub('odoo', { ami: true })], null, new FakeGuard()); // AMI disabled
});

test("job registry: built-in names cannot be replaced, by a registry or through a bridge's jobFunctions", async () => {
  const r = new JobRegistry();
  assert.ok(r.get('test.ping'));
  assert.throws(() => r.register('security.ban', async () => 1), /job function security\.ban is built in and cannot be replaced/);
  r.register('x.hello', async () => 'hi');
  assert.equal(await r.get('x.hello')!(null, {}, undefined as never), 'hi');
  assert.equal(new JobRegistry().get('x.hello'), undefined, 'a new registry has only the built-in functions');
  await assert.rejects(
    startOdooBridge({
      config: { url: 'http://127.0.0.1:9', db: 'x', listen: { enabled: false } },
      ami: new FakeAmi(),
      bans: new FakeBans(),
      db: new Database(':memory:'),
      logger: log,
      registry: new Registry(),
      stateDir: tmp,
      reloadConfig: () => undefined,
      rpc: { executeKw: async () => [] },
      jobFunctions: [['test.ping', async () => false]],
    }),
    /test\.ping is built in/,
  );
});

interface Bridge {
  bridge: OdooBridge;
  ami: FakeAmi;
  results: Array<{ method: string; result: unknown }>;
}

/** startOdoo as the daemon calls it: the console's and (with a config dir) the config sync's job functions. */
async function daemonBridge(name: string, configDir: string | null): Promise<Bridge> {
  const config = buildConfig({
    stateDir: path.join(tmp, name),
    odoo: { enabled: true, url: 'http://127.0.0.1:9', db: 'x', listen: { enabled: false }, fagi: { enabled: false } },
    asteriskConfig: { enabled: configDir !== null, dir: configDir ?? '/nonexistent' },
  });
  const ami = new FakeAmi();
  const results: Bridge['results'] = [];
  const rpc = {
    executeKw: async (model: string, method: string, args: unknown[]) => {
      if (model === 'test.model') results.push({ method, result: args[0] });
      return [];
    },
  };
  const asteriskConsole = new AsteriskConsole(ami, config.console, resolveActionPolicy({ deniedActions: [], deniedApplications: [] }));
  const actionPolicy = resolveActionPolicy({ deniedActions: [], deniedApplications: [], checkCommand: (c) => asteriskConsole.check(c) });
  const configFiles = configDir !== null ? new AsteriskConfigFiles(config.asteriskConfig, ami) : null;
  const bridge = await startOdoo(config, {
    ami,
    bans: new FakeBans(),
    db: new Database(':memory:'),
    logger: log,
    registry: new Registry(),
    reloadConfig: () => undefined,
    rpc,
    actionPolicy,
    asteriskConsole,
    configFiles,
  });
  return { bridge, ami, results };
}

async function runJob(b: Bridge, fun: string, args: unknown): Promise<unknown> {
  const before = b.results.length;
  assert.equal(b.bridge.jobs.submit({ fun, args, res_model: 'test.model', res_method: fun }).ok, true);
  for (let i = 0; i < 500 && b.results.length === before; i++) await new Promise((r) => setTimeout(r, 5));
  return b.results[before]?.result;
}

test("two daemons' Odoo bridges in one process: each runs its own console and config-sync job functions, never the other's", async () => {
  const dir = path.join(tmp, 'asterisk');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'extensions_odoo.conf'), '[odoo]\n');
  const a = await daemonBridge('a', dir);
  const b = await daemonBridge('b', null);
  try {
    // b has no config sync: the job is unknown there, though a registered config.list before b started
    assert.equal(b.bridge.jobs.functions.get('config.list'), undefined);
    assert.match(JSON.stringify(await runJob(b, 'config.list', [])), /unknown function \\"config\.list\\"/);
    assert.match(JSON.stringify(await runJob(a, 'config.list', [])), /extensions_odoo\.conf/);
    // a's console job talks to a's AMI, though b registered its console job after it
    await runJob(a, 'asterisk.console', ['core show version']);
    assert.deepEqual(
      a.ami.actions.map((f) => f.Command),
      ['core show version'],
    );
    assert.deepEqual(b.ami.actions, []);
  } finally {
    await a.bridge.close();
    await b.bridge.close();
  }
});
