/**
 * The feeds against a fake APIBAN server and a plain-text list server on loopback (real HTTP),
 * each feed's sets a RemoteSet on a MemoryBackend: what reaches the kernel, what is refused whole
 * (the last good list kept), what the allow-list keeps out, and that the APIBAN key is never logged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { buildConfig } from '../src/config/index.js';
import { resolveFeeds, type FeedConfig } from '../src/feeds/config-schema.js';
import { createFeeds, type Feeds, type FeedsHealth } from '../src/feeds/index.js';
import { judgeFeeds } from '../src/health/feeds.js';
import { defaultFirewallConfig, MemoryBackend } from '../src/firewall/index.js';
import type { RemoteBanJudge } from '../src/guard/types.js';
import { formatNetwork, networksOverlap, parseNetwork, type IpNetwork } from '../src/net/ip.js';

const KEY = 'SeCrEtKeY0123456789';

/** the guard's judgement: `allow` allow-listed, nothing wider than /16 (v4) or /32 (v6) */
const judgeOf = (allow: string[]): RemoteBanJudge => ({
  allowed: (net: IpNetwork) => allow.find((a) => networksOverlap(parseNetwork(a)!, net)) ?? null,
  scopeRefusal: (net: IpNetwork) => (net.prefix < (net.family === 4 ? 16 : 32) ? `${formatNetwork(net)} is too wide` : null),
  localBan: () => undefined,
});

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function serve(handler: Handler): Promise<{ url: string; paths: string[]; close: () => Promise<void> }> {
  const paths: string[] = [];
  const srv = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  // a failed assertion skips close(): the process still ends
  srv.unref();
  const { port } = srv.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    paths,
    close: () =>
      new Promise((r) => {
        srv.close(() => r());
        srv.closeAllConnections();
      }),
  };
}

function feedsConfig(list: unknown[]): FeedConfig[] {
  const r = resolveFeeds(list);
  assert.deepEqual(r.errors, []);
  return r.feeds;
}

async function setup(feeds: FeedConfig[], opts: { allow?: string[]; stateDir?: string | null; fetch?: typeof fetch } = {}) {
  const backends = new Map<string, MemoryBackend>();
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const registry = new Registry();
  const allow = opts.allow ?? ['192.0.2.0/24'];
  const f = createFeeds({
    feeds,
    firewall: { ...defaultFirewallConfig, reconcileIntervalMs: 0 },
    watchdogIntervalMs: 0,
    judge: judgeOf(allow),
    allow: () => [],
    stateDir: opts.stateDir ?? null,
    logger: pino({ level: 'debug' }, sink),
    registry,
    fetch: opts.fetch,
    backend: (name) => {
      const b = new MemoryBackend();
      backends.set(name, b);
      return b;
    },
  }) as Feeds;
  await f.start('memory');
  /** what the kernel (memory) holds for a feed once its enforcer drained */
  const kernel = async (name: string) => {
    const h = () => f.health().find((x) => x.name === name)!;
    for (let i = 0; i < 200 && (h().set.firewall?.queued ?? 0) > 0; i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 10));
    return (await backends.get(name)!.list()).map((e) => e.target).sort();
  };
  return {
    f,
    kernel,
    lines,
    registry,
    allow,
    backend: (name: string) => backends.get(name)!,
    health: (name: string) => f.health().find((x) => x.name === name)!,
  };
}

test('a plain list: comments, blank lines and a little garbage; allow-listed and too wide entries are not enforced; a new list replaces the set', async () => {
  let body = ['# a block list', '', '198.51.100.7', '203.0.113.0/24 ; SBL1', '192.0.2.9   # allow-listed', '10.0.0.0/8', '2001:db8::1', 'not-an-address'];
  for (let i = 0; i < 10; i++) body.push(`198.51.100.${100 + i}`);
  const srv = await serve((_req, res) => res.end(body.join('\n')));
  const s = await setup(feedsConfig([{ name: 'voip', kind: 'list', url: `${srv.url}/list.txt`, interval: '4h' }]));
  const feed = s.f.feed('voip')!;
  assert.equal(await feed.refresh(), 'ok');
  const first = await s.kernel('voip');
  assert.ok(first.includes('198.51.100.7') && first.includes('203.0.113.0/24') && first.includes('2001:db8::1'));
  assert.ok(!first.includes('192.0.2.9'), 'the allow-list wins');
  assert.ok(!first.includes('10.0.0.0/8'), 'the scope limits win');
  assert.equal(first.length, 13);
  const h = s.health('voip');
  assert.deepEqual(h.refused, { allowed: 1, scope: 1, garbage: 1, cap: 0 });
  assert.equal(h.entries, 13);
  assert.equal(h.set.names, 'inet pbx_guardian_voip');
  // pbx-guardian why / bans read each feed's set through lookups()
  const [look] = s.f.lookups();
  assert.equal(look!.kind, 'feed');
  assert.equal(look!.name, 'voip');
  assert.equal(look!.get('198.51.100.7')?.target, '198.51.100.7');
  assert.equal(look!.get('192.0.2.9'), undefined);
  // the entries end 3 intervals after this refresh
  assert.equal(h.entryTimeoutMs, 3 * 4 * 3_600_000);
  const ends = (await s.backend('voip').list()).map((x) => x.expiresAt! - Date.now());
  assert.ok(
    ends.every((ms) => ms > 12 * 3_600_000 - 60_000 && ms <= 12 * 3_600_000),
    'every entry ends 12 h from now',
  );

  body = ['198.51.100.7', '198.51.100.8'];
  assert.equal(await feed.refresh(), 'ok');
  assert.deepEqual(await s.kernel('voip'), ['198.51.100.7', '198.51.100.8']);
  // the allow-list grows: what it now covers leaves the feed's set at once
  s.allow.push('198.51.100.8');
  await s.f.setAllow([]);
  assert.deepEqual(await s.kernel('voip'), ['198.51.100.7']);
  const scrape = await s.registry.metrics();
  assert.match(scrape, /pbx_guardian_feed_entries\{feed="voip"\} 1/, 'the gauge follows the allow-list too');
  assert.match(scrape, /pbx_guardian_feed_refresh_total\{feed="voip",result="ok"\} 2/);
  assert.match(scrape, /pbx_guardian_feed_entries_refused_total\{feed="voip",reason="allowed"\} 1/);
  assert.match(scrape, /pbx_guardian_feed_last_success_timestamp_seconds\{feed="voip"\} \d{10}/);
  await s.f.stop();
  await srv.close();
});

test('garbage, binary, an enormous list and a failing server are refused whole: the last good list stays', async () => {
  let answer: { status?: number; body: string | Buffer } = { body: '198.51.100.1\n198.51.100.2\n' };
  const srv = await serve((_req, res) => {
    res.statusCode = answer.status ?? 200;
    res.end(answer.body);
  });
  const s = await setup(feedsConfig([{ name: 'bl', kind: 'list', url: `${srv.url}/bl`, interval: '1h', maxEntries: 50, maxBytes: 4096 }]));
  const feed = s.f.feed('bl')!;
  assert.equal(await feed.refresh(), 'ok');
  const good = ['198.51.100.1', '198.51.100.2'];
  assert.deepEqual(await s.kernel('bl'), good);

  // 2 addresses and 1 garbage line of 3: 33 % garbage
  answer = { body: '198.51.100.3\n198.51.100.4\n<html>oops</html>\n' };
  assert.equal(await feed.refresh(), 'refused');
  assert.match(s.health('bl').lastError!, /refused whole/);
  answer = { body: Buffer.from([0x31, 0x2e, 0x32, 0x00, 0x0a]) };
  assert.equal(await feed.refresh(), 'refused');
  assert.match(s.health('bl').lastError!, /not text/);
  // more distinct entries than maxEntries
  answer = { body: Array.from({ length: 60 }, (_, i) => `203.0.113.${i}`).join('\n') };
  assert.equal(await feed.refresh(), 'refused');
  assert.match(s.health('bl').lastError!, /maxEntries 50/);
  // more bytes than maxBytes
  answer = { body: '198.51.100.9\n'.repeat(1000) };
  assert.equal(await feed.refresh(), 'refused');
  assert.match(s.health('bl').lastError!, /maxBytes 4096/);
  answer = { status: 503, body: 'down' };
  assert.equal(await feed.refresh(), 'failed');
  assert.deepEqual(await s.kernel('bl'), good, 'the last good list is what the kernel holds');
  const h = s.health('bl');
  assert.equal(h.refusedAnswers, 4);
  assert.ok(h.failingSince !== null);
  assert.match(await s.registry.metrics(), /pbx_guardian_feed_refresh_total\{feed="bl",result="refused"\} 4/);
  answer = { body: '198.51.100.5\n' };
  assert.equal(await feed.refresh(), 'ok');
  assert.deepEqual(await s.kernel('bl'), ['198.51.100.5']);
  assert.equal(s.health('bl').failingSince, null);
  await s.f.stop();
  await srv.close();
});

/** a fake APIBAN: `pages[id]` answers GET /api/KEY/banned/<id> ('' = no ID); no page = "no new bans" (HTTP 400) */
function apiban(pages: Map<string, { ipaddress: string[]; ID: string }>): Handler {
  return (req, res) => {
    const m = /^\/api\/([^/]+)\/banned(?:\/(\d+))?$/.exec(req.url ?? '');
    if (!m || m[1] !== KEY) {
      res.statusCode = 403;
      res.end(JSON.stringify({ ipaddress: 'none', ID: 'unauthorized' }));
      return;
    }
    const page = pages.get(m[2] ?? '');
    res.setHeader('content-type', 'application/json');
    if (!page) {
      res.statusCode = 400;
      res.end(JSON.stringify({ ipaddress: ['no new bans'], ID: 'none' }));
      return;
    }
    res.end(JSON.stringify(page));
  };
}

const many = (n: number, third: number) => Array.from({ length: n }, (_, i) => `198.51.${third}.${i % 250}`);

test('APIBAN: pages followed up to maxPages, then incremental from the last ID; allow-listed addresses not enforced', async () => {
  const pages = new Map([
    ['', { ipaddress: many(250, 100), ID: '1000' }],
    ['1000', { ipaddress: [...many(248, 101), '192.0.2.50', 'junk'], ID: '1001' }],
    ['1001', { ipaddress: ['203.0.113.1', '203.0.113.2'], ID: '1002' }],
  ]);
  const srv = await serve(apiban(pages));
  const s = await setup(feedsConfig([{ name: 'apiban', kind: 'apiban', url: `${srv.url}/api`, key: KEY, interval: '5m', maxPages: 2 }]));
  const feed = s.f.feed('apiban')!;
  assert.equal(await feed.refresh(), 'ok', 'the first refresh (started by start()) is joined');
  assert.deepEqual(srv.paths, [`/api/${KEY}/banned`, `/api/${KEY}/banned/1000`], 'maxPages 2 stops after two pages');
  assert.equal(s.health('apiban').entries, 250 + 248);
  assert.equal(s.health('apiban').cursor, '1001');
  assert.deepEqual(s.health('apiban').refused, { allowed: 1, scope: 0, garbage: 1, cap: 0 });
  // the next refresh goes on from 1001: a short page is the last one
  assert.equal(await feed.refresh(), 'ok');
  assert.equal(srv.paths.at(-1), `/api/${KEY}/banned/1001`);
  assert.equal(s.health('apiban').cursor, '1002');
  const k = await s.kernel('apiban');
  assert.equal(k.length, 500);
  assert.ok(k.includes('203.0.113.2') && k.includes('198.51.100.0') && !k.includes('192.0.2.50'));
  // nothing new: HTTP 400 "none" is no failure
  assert.equal(await feed.refresh(), 'unchanged');
  assert.equal(srv.paths.at(-1), `/api/${KEY}/banned/1002`);
  assert.equal(s.health('apiban').failingSince, null);
  assert.equal(s.health('apiban').entries, 500, 'incremental: nothing left');
  assert.equal(s.health('apiban').entryTimeoutMs, 7 * 86_400_000, "APIBAN's own 7 days");
  await s.f.stop();
  await srv.close();
});

test('the APIBAN key is never in a log line, an error or the health', async () => {
  const srv = await serve(apiban(new Map()));
  // a wrong key gets 403; then the server goes away (connection refused)
  const wrong = `${KEY}X`;
  const s = await setup(feedsConfig([{ name: 'apiban', kind: 'apiban', url: `${srv.url}/api`, key: wrong, interval: '5m' }]));
  const feed = s.f.feed('apiban')!;
  assert.equal(await feed.refresh(), 'failed');
  assert.match(s.health('apiban').lastError!, /HTTP 403: the key is refused/);
  await srv.close();
  assert.equal(await feed.refresh(), 'failed');
  assert.match(s.health('apiban').lastError!, /unreachable/);
  const all = s.lines.join('\n') + JSON.stringify(s.f.health());
  assert.ok(s.lines.length >= 2, 'the failures were logged');
  assert.ok(!all.includes(KEY), 'the key is in no log line and no health field');
  assert.match(all, /APIBAN http:\/\/127\.0\.0\.1:\d+\/api\/…\/banned/);
  await s.f.stop();
  // a client library whose error quotes the whole URL
  const quoting = (async (url: string | URL) => {
    throw new TypeError(`fetch failed for ${String(url)}`);
  }) as typeof fetch;
  const q = await setup(feedsConfig([{ name: 'apiban', kind: 'apiban', url: 'https://apiban.example/api', key: KEY, interval: '5m' }]), { fetch: quoting });
  assert.equal(await q.f.feed('apiban')!.refresh(), 'failed');
  assert.match(q.health('apiban').lastError!, /fetch failed for https:\/\/apiban\.example\/api\/…\/banned/);
  assert.ok(!(q.lines.join('\n') + JSON.stringify(q.f.health())).includes(KEY));
  await q.f.stop();
});

test('the last good list comes back after a restart (the state file), expired entries do not', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-feeds-'));
  let up = true;
  const srv = await serve((_req, res) => {
    if (!up) res.destroy();
    else res.end('198.51.100.1\n198.51.100.2\n');
  });
  const config = feedsConfig([{ name: 'bl', kind: 'list', url: `${srv.url}/bl`, interval: '1h' }]);
  const a = await setup(config, { stateDir: dir });
  assert.equal(await a.f.feed('bl')!.refresh(), 'ok');
  await a.f.stop();
  const saved = JSON.parse(fs.readFileSync(path.join(dir, 'feed-bl.json'), 'utf8')) as { entries: [string, number][] };
  assert.deepEqual(saved.entries.map((e) => e[0]).sort(), ['198.51.100.1', '198.51.100.2']);
  assert.equal((fs.statSync(path.join(dir, 'feed-bl.json')).mode & 0o777).toString(8), '600');
  // one saved entry has ended meanwhile
  saved.entries[0]![1] = Date.now() - 1;
  fs.writeFileSync(path.join(dir, 'feed-bl.json'), JSON.stringify({ ...saved, lastSuccessAt: Date.now() }));
  up = false;
  const b = await setup(config, { stateDir: dir });
  // a fresh state file: no fetch at start, the saved list is in the kernel
  assert.deepEqual(await b.kernel('bl'), [saved.entries[1]![0]]);
  assert.equal(b.health('bl').lastAttemptAt, null);
  await b.f.stop();
  await srv.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the config: names, kinds, URLs and keys', () => {
  const errs = (list: unknown[]) => resolveFeeds(list).errors.join('\n');
  assert.equal(errs([{ name: 'ok', kind: 'list', url: 'https://lists.example/a.txt' }]), '');
  assert.equal(errs([{ name: 'lan', kind: 'list', url: 'http://10.1.2.3/a.txt' }]), '', 'plain http to a private address');
  assert.match(errs([{ name: 'fleet', kind: 'list', url: 'https://x.example/a' }]), /fleet's set group/);
  assert.match(errs([{ name: 'Bad-Name', kind: 'list', url: 'https://x.example/a' }]), /name: 1-12 lower-case/);
  assert.match(
    errs([
      { name: 'a', kind: 'list', url: 'https://x.example/a' },
      { name: 'a', kind: 'list', url: 'https://x.example/b' },
    ]),
    /used twice/,
  );
  assert.match(errs([{ name: 'pub', kind: 'list', url: 'http://lists.example/a.txt' }]), /https:\/\/ URL is required/);
  assert.match(errs([{ name: 'pub', kind: 'list', url: 'http://198.51.100.1/a.txt' }]), /https:\/\/ URL is required/);
  assert.match(errs([{ name: 'ab', kind: 'apiban' }]), /key: the APIBAN key/);
  assert.equal(resolveFeeds([{ name: 'ab', kind: 'apiban', key: KEY }]).feeds[0]!.url, 'https://apiban.org/api');
  assert.match(errs([{ name: 'x', kind: 'rss', url: 'https://x.example/a' }]), /kind: one of list, apiban/);
  assert.match(errs([{ name: 'x', kind: 'list', url: 'https://x.example/a', interval: '10s' }]), /interval: a duration from 1m/);
  assert.match(errs([{ name: 'x', kind: 'list', url: 'https://x.example/a', bogus: 1 }]), /bogus: unknown key/);
  // the names must fit beside a long firewall.table
  assert.throws(
    () => buildConfig({ firewall: { table: 'a_rather_long_table_name_xx' }, feeds: [{ name: 'twelvecharsx', kind: 'list', url: 'https://x.example/a' }] }),
    /too long for the twelvecharsx sets' table/,
  );
  assert.equal(buildConfig({ feeds: [{ name: 'twelvecharsx', kind: 'list', url: 'https://x.example/a' }] }).feeds[0]!.name, 'twelvecharsx');
});

test('health: a feed failing for more than 3 intervals is a problem; fewer is not', () => {
  const now = Date.now();
  const f = (failingFor: number | null) =>
    ({
      name: 'bl',
      kind: 'list',
      url: 'https://x.example/a',
      intervalMs: 3_600_000,
      entryTimeoutMs: 3 * 3_600_000,
      entries: 5,
      lastSuccessAt: now - 4 * 3_600_000,
      lastAttemptAt: now,
      failingSince: failingFor === null ? null : now - failingFor,
      lastError: 'HTTP 503',
      refused: { allowed: 0, scope: 0, garbage: 0, cap: 0 },
      refusedAnswers: 0,
      cursor: null,
      set: { group: 'bl', names: 'inet pbx_guardian_bl', entries: 5, firewall: null },
    }) as FeedsHealth[number];
  assert.equal(judgeFeeds(null, now).enabled, false);
  assert.equal(judgeFeeds([f(null)], now).healthy, true);
  assert.equal(judgeFeeds([f(2.5 * 3_600_000)], now).healthy, true);
  const bad = judgeFeeds([f(3.5 * 3_600_000)], now);
  assert.equal(bad.healthy, false);
  assert.match(bad.problems[0]!, /feed bl fails since .*more than 3 intervals \(HTTP 503\)/);
  assert.match(bad.summary, /bl \(list\) FAILING since/);
});
