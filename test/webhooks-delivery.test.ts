import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHmac } from 'node:crypto';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { WebhookDispatcher, resolveWebhooks, type WebhookConfig } from '../src/webhooks/index.js';
import { amiMessage, parseFrames } from './helpers/fake-odoo.js';
import { readFixtureText } from './helpers/fixtures.js';

const log = pino({ level: 'silent' });
const SECRET = 'whsec-0123456789abcdef';

interface Got {
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: { event: string; delivery: string; data: Record<string, string> };
}

class Receiver {
  got: Got[] = [];
  status = 200;
  private server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      if (this.status === 200) this.got.push({ headers: req.headers, raw, body: JSON.parse(raw) as Got['body'] });
      res.writeHead(this.status).end('{}');
    });
  });
  constructor(public port = 0) {}
  async start(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(this.port, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

async function freePort(): Promise<number> {
  const r = new Receiver();
  const p = await r.start();
  await r.stop();
  return p;
}

function hook(over: Partial<WebhookConfig> & { url: string }): WebhookConfig {
  const { webhooks, errors } = resolveWebhooks([{ name: 'crm', events: ['Newchannel', 'Hangup', 'GuardianBan'], secret: SECRET, maxBackoffMs: 40, ...over }]);
  assert.deepEqual(errors, []);
  return webhooks[0]!;
}

const ev = (name: string, i: number, extra: Array<[string, string]> = []) =>
  amiMessage([['Event', name], ['Channel', `SIP/100-${String(i).padStart(8, '0')}`], ['Uniqueid', `1795342688.${i}`], ...extra]);

test('a receiver that is down, then back, gets every event in order, signed', async () => {
  const port = await freePort();
  const db = new Database(':memory:');
  const registry = new Registry();
  const d = new WebhookDispatcher({ webhooks: [hook({ url: `http://127.0.0.1:${port}/hook` })], db, logger: log, registry });
  for (let i = 0; i < 30; i++) d.handleAmiEvent(ev(i % 3 === 2 ? 'Hangup' : 'Newchannel', i));
  d.handleAmiEvent(ev('Cdr', 99)); // not subscribed
  await new Promise((r) => setTimeout(r, 300)); // several refused attempts while down
  assert.equal(d.stats()[0]!.outbox, 30);
  const rx = new Receiver(port);
  await rx.start();
  try {
    for (let i = 30; i < 40; i++) d.handleAmiEvent(ev('Newchannel', i)); // more while it recovers
    assert.equal(await d.whenIdle(10_000), true);
    assert.deepEqual(
      rx.got.map((g) => g.body.data.Uniqueid),
      Array.from({ length: 40 }, (_, i) => `1795342688.${i}`),
    );
    assert.deepEqual(
      rx.got.map((g) => Number(g.body.delivery.split(':')[1])),
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    for (const g of rx.got) {
      const ts = String(g.headers['x-pbx-guardian-timestamp']);
      assert.match(ts, /^\d{10}$/);
      assert.equal(g.headers['x-pbx-guardian-signature'], 'sha256=' + createHmac('sha256', SECRET).update(`${ts}.${g.raw}`).digest('hex'));
      assert.equal(g.headers['x-pbx-guardian-event'], g.body.event);
    }
    const m = await registry.metrics();
    assert.match(m, /pbx_guardian_webhook_deliveries_total\{subscriber="crm",outcome="ok"\} 40/);
    assert.match(m, /pbx_guardian_webhook_deliveries_total\{subscriber="crm",outcome="retry"\} [1-9]/);
  } finally {
    await d.close();
    await rx.stop();
  }
});

test('undelivered events survive a restart (durable outbox) and a 5xx is retried, a 4xx dropped', async () => {
  const rx = new Receiver();
  await rx.start();
  const db = new Database(':memory:');
  rx.status = 503;
  let d = new WebhookDispatcher({ webhooks: [hook({ url: `http://127.0.0.1:${rx.port}/` })], db, logger: log });
  try {
    for (let i = 0; i < 5; i++) d.handleAmiEvent(ev('Newchannel', i));
    await new Promise((r) => setTimeout(r, 150));
    await d.close();
    assert.equal(rx.got.length, 0);
    rx.status = 200;
    d = new WebhookDispatcher({ webhooks: [hook({ url: `http://127.0.0.1:${rx.port}/` })], db, logger: log });
    d.handleAmiEvent(ev('Newchannel', 5));
    assert.equal(await d.whenIdle(), true);
    assert.deepEqual(
      rx.got.map((g) => g.body.data.Uniqueid),
      [0, 1, 2, 3, 4, 5].map((i) => `1795342688.${i}`),
    );
    rx.status = 400;
    d.handleAmiEvent(ev('Newchannel', 6));
    assert.equal(await d.whenIdle(), true);
    rx.status = 200;
    d.handleAmiEvent(ev('Newchannel', 7));
    assert.equal(await d.whenIdle(), true);
    assert.deepEqual(
      rx.got.slice(6).map((g) => g.body.data.Uniqueid),
      ['1795342688.7'],
    );
  } finally {
    await d.close();
    await rx.stop();
  }
});

test('events and match filters per subscriber; guardian ban notices; one subscriber down does not hold back another', async () => {
  const up = new Receiver();
  await up.start();
  const downPort = await freePort();
  const db = new Database(':memory:');
  const d = new WebhookDispatcher({
    webhooks: resolveWebhooks([
      {
        name: 'sec',
        url: `http://127.0.0.1:${up.port}/sec`,
        events: ['InvalidPassword'],
        match: { Service: ['SIP', 'AMI'] },
        secret: SECRET,
        maxBackoffMs: 40,
      },
      { name: 'bans', url: `http://127.0.0.1:${up.port}/bans`, events: ['GuardianBan'], secret: SECRET, maxBackoffMs: 40 },
      { name: 'dead', url: `http://127.0.0.1:${downPort}/`, events: ['*'], secret: SECRET, maxBackoffMs: 40 },
    ]).webhooks,
    db,
    logger: log,
    systemName: 'pbx1',
  });
  try {
    for (const m of parseFrames(readFixtureText('ami/security-ami-invalid-password.raw'))) d.handleAmiEvent(m);
    d.handleAmiEvent(
      amiMessage([
        ['Event', 'InvalidPassword'],
        ['Service', 'IAX2'],
      ]),
    );
    const now = Date.now();
    d.handleBanNotice({
      action: 'ban',
      record: {
        target: '203.0.113.7',
        family: 4,
        isNetwork: false,
        createdAt: now,
        expiresAt: now + 3600_000,
        rule: 'sip-auth',
        source: 'rule',
        reason: 'r',
        count: 5,
      },
    });
    d.handleBanNotice({
      action: 'unban',
      record: { target: '203.0.113.7', family: 4, isNetwork: false, createdAt: now, expiresAt: null, rule: 'sip-auth', source: 'rule', reason: 'r', count: 5 },
    });
    const deadline = Date.now() + 5000;
    while (up.got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100)); // nothing else arrives
    up.got.sort((a, b) => a.body.event.localeCompare(b.body.event)).reverse();
    assert.deepEqual(
      up.got.map((g) => g.body.event),
      ['InvalidPassword', 'GuardianBan'],
    );
    assert.equal(up.got[0]!.body.data.Service, 'AMI');
    assert.equal(up.got[0]!.body.data.SystemName, 'pbx1');
    assert.equal(up.got[1]!.body.data.Address, '203.0.113.7');
    assert.equal(up.got[1]!.body.data.Duration, '3600');
    const dead = d.stats().find((s) => s.name === 'dead')!;
    assert.ok(dead.outbox >= 2 && dead.failing, JSON.stringify(dead));
  } finally {
    await d.close();
    await up.stop();
  }
});

test('config: each error names its key', () => {
  const { errors } = resolveWebhooks([
    { name: 'a b', url: 'ftp://x', events: [], secret: 'short', match: { F: 1 }, ttl: 'soon', bogus: 1 },
    { name: 'ok', url: 'http://x', events: ['Hangup'], secret: SECRET },
    { name: 'ok', url: 'http://x', events: ['Hangup'], secret: SECRET },
  ]);
  for (const k of [
    'webhooks[0].bogus',
    'webhooks[0].name',
    'webhooks[0].url',
    'webhooks[0].events',
    'webhooks[0].match',
    'webhooks[0].secret',
    'webhooks[0].ttl',
    'webhooks[2].name',
  ]) {
    assert.ok(
      errors.some((e) => e.startsWith(k + ':')),
      k + ' in ' + errors.join('\n'),
    );
  }
});
