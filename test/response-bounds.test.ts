/**
 * Peers that answer with an endless body (issue 12, finding 6): a webhook receiver, Odoo's
 * JSON-RPC endpoint, and `odoo init`'s GET, each a real HTTP server that streams until the
 * client goes away. The daemon reads a small bound, aborts, and reports a clear error; the
 * server counts what it could write before the client closed the connection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { Registry } from 'prom-client';
import { OdooRpc, OdooUnavailableError, odooInit, OdooInitError, resolveOdooConfig } from '../src/odoo/index.js';
import { WebhookDispatcher, resolveWebhooks } from '../src/webhooks/index.js';
import type { BanNotice } from '../src/guard/types.js';
import { LogCapture } from './helpers/daemon.js';

const MB = 1024 * 1024;
/** the server stops writing here (and keeps the connection open): the old code buffered it all */
const SERVER_CAP = 512 * MB;

interface Endless {
  url: string;
  /** bytes written on each connection when the client closed it */
  closedAfter: number[];
  /** answer normally from now on */
  heal(): void;
  requests: number;
  stop(): Promise<void>;
}

async function endlessServer(status = 200): Promise<Endless> {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let healed = false;
  const state = { closedAfter: [] as number[], requests: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    req.resume();
    if (healed) {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":true}');
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    let sent = 0;
    res.on('close', () => state.closedAfter.push(sent));
    const pump = () => {
      while (sent < SERVER_CAP && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get closedAfter() {
      return state.closedAfter;
    },
    get requests() {
      return state.requests;
    },
    heal: () => {
      healed = true;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** heap and RSS growth while `fn` runs, sampled every 5 ms */
async function growth<T>(fn: () => Promise<T>): Promise<{ value: T; heapMB: number; rssMB: number }> {
  global.gc?.();
  const m0 = process.memoryUsage();
  let heap = m0.heapUsed;
  let rss = m0.rss;
  const t = setInterval(() => {
    const m = process.memoryUsage();
    heap = Math.max(heap, m.heapUsed + m.arrayBuffers);
    rss = Math.max(rss, m.rss);
  }, 5);
  try {
    const value = await fn();
    return { value, heapMB: Math.round((heap - m0.heapUsed) / MB), rssMB: Math.round((rss - m0.rss) / MB) };
  } finally {
    clearInterval(t);
  }
}

async function closed(s: Endless, n: number): Promise<void> {
  for (let i = 0; i < 1000 && s.closedAfter.length < n; i++) await new Promise((r) => setTimeout(r, 10));
}

test('a webhook receiver answering with an endless body: aborted after a few KiB, the delivery retried, then delivered', async () => {
  const s = await endlessServer(200);
  const logs = new LogCapture('info');
  const registry = new Registry();
  const { webhooks, errors } = resolveWebhooks([
    { name: 'crm', url: s.url, events: ['GuardianBan'], secret: 'a-secret-of-16-chars', timeoutMs: 20_000, maxBackoffMs: 50 },
  ]);
  assert.deepEqual(errors, []);
  const d = new WebhookDispatcher({ webhooks, db: new Database(':memory:'), logger: logs.logger, registry });
  try {
    const g = await growth(async () => {
      d.handleBanNotice({
        action: 'ban',
        record: {
          target: '203.0.113.7',
          family: 4,
          isNetwork: false,
          createdAt: Date.now(),
          expiresAt: Date.now() + 600_000,
          rule: 'sip',
          source: 'rule',
          reason: 'x',
          count: 5,
        },
      } as BanNotice);
      await closed(s, 1);
    });
    console.log(
      `webhook endless body: client closed after ${s.closedAfter[0]} bytes written by the server; heap+arrayBuffers +${g.heapMB} MB, RSS +${g.rssMB} MB`,
    );
    assert.equal(s.closedAfter.length, 1, 'the client closed the connection (before its 20 s timeout)');
    assert.ok(s.closedAfter[0]! < 32 * MB, `the server wrote ${s.closedAfter[0]} bytes before the client went away`);
    const warn = logs.lines.find((l) => /webhook crm unreachable/.test(String(l.msg)));
    assert.match(String(warn?.err), /answered HTTP 200 with a body longer than 4096 bytes: aborted/);
    // the event was not lost: it stays in the outbox, and goes out once the receiver answers properly
    s.heal();
    assert.equal(await d.whenIdle(10_000), true);
    const m = await registry.getSingleMetric('pbx_guardian_webhook_deliveries_total')!.get();
    const by = (o: string) => m.values.find((v) => v.labels.outcome === o)?.value ?? 0;
    assert.ok(by('retry') >= 1);
    assert.equal(by('ok'), 1);
    assert.equal(d.stats()[0]!.delivered, 1);
  } finally {
    await d.close();
    await s.stop();
  }
});

test('Odoo answering JSON-RPC with an endless body: aborted at odoo.responseMaxBytes with a clear error', async () => {
  const s = await endlessServer(200);
  const cfg = resolveOdooConfig({ url: s.url, db: 'db', user: 'u', password: 'p', responseMaxBytes: 1 * MB, rpcTimeoutMs: 20_000 });
  const rpc = new OdooRpc(cfg, new LogCapture().logger);
  try {
    const g = await growth(async () => {
      const err = await rpc.executeKw('asterisk_plus.event', 'search_read', [[]], {}, { retries: 0 }).catch((e: Error) => e);
      await closed(s, 1);
      return err;
    });
    console.log(
      `Odoo endless body: client closed after ${s.closedAfter[0]} bytes written by the server; heap+arrayBuffers +${g.heapMB} MB, RSS +${g.rssMB} MB`,
    );
    assert.ok(g.value instanceof OdooUnavailableError, String(g.value));
    assert.match(g.value.message, /Odoo's answer on \/jsonrpc is larger than odoo\.responseMaxBytes \(1048576 bytes\): aborted/);
    assert.ok(s.closedAfter[0]! < 1 * MB + 32 * MB, `the server wrote ${s.closedAfter[0]} bytes before the client went away`);
  } finally {
    rpc.close();
    await s.stop();
  }
});

test('odoo init against an endless answer: a clear error, not a download', async () => {
  const s = await endlessServer(200);
  try {
    const err = await odooInit({ url: s.url, db: 'db', timeoutMs: 20_000 }).catch((e: Error) => e);
    await closed(s, 1);
    assert.ok(err instanceof OdooInitError, String(err));
    assert.match(err.message, /answer to the initialization \(HTTP 200\) is longer than 65536 bytes: aborted/);
    assert.ok(s.closedAfter[0]! < 32 * MB, `the server wrote ${s.closedAfter[0]} bytes before the client went away`);
  } finally {
    await s.stop();
  }
});
