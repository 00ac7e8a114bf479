import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import pino from 'pino';
import { Registry } from 'prom-client';
import { defaultFirewallConfig, MemoryBackend } from '../src/firewall/index.js';
import { FleetBouncer } from '../src/fleet/bouncer.js';
import { RemoteSet } from '../src/firewall/index.js';
import type { FleetJudge } from '../src/fleet/decision.js';
import { formatNetwork, networksOverlap, parseNetwork, type IpNetwork } from '../src/net/ip.js';

const logger = pino({ level: 'silent' });
const fixture = (name: string) => fs.readFileSync(new URL(`../../test/fixtures/crowdsec/${name}`, import.meta.url), 'utf8');

interface D {
  id: number;
  value: string;
  scope?: string;
  type?: string;
  duration?: string;
  scenario?: string;
}
const dec = (d: D) => ({
  id: d.id,
  origin: 'crowdsec',
  type: d.type ?? 'ban',
  scope: d.scope ?? (d.value.includes('/') ? 'Range' : 'Ip'),
  value: d.value,
  duration: d.duration ?? '3h59m58.5s',
  scenario: d.scenario ?? 'crowdsecurity/ssh-bf',
});
const answer = (n: D[] | null, deleted: D[] | null = null) => JSON.stringify({ new: n && n.map(dec), deleted: deleted && deleted.map(dec) });

/** the guard's judgement: `allow` allow-listed, nothing wider than /16 or /32, local bans as given */
function judgeOf(allow: string[], local = new Map<string, { rule: string; expiresAt: number | null }>()): FleetJudge & { allow: string[] } {
  const j = {
    allow,
    allowed(net: IpNetwork) {
      return j.allow.find((a) => networksOverlap(parseNetwork(a)!, net)) ?? null;
    },
    scopeRefusal: (net: IpNetwork) => (net.prefix < (net.family === 4 ? 16 : 32) ? `${formatNetwork(net)} is too wide` : null),
    localBan: (target: string) => local.get(target),
  };
  return j;
}

async function setup(opts: { answers: Array<string | Error>; judge?: FleetJudge; maxDecisions?: number; now?: () => number }) {
  const backend = new MemoryBackend();
  const set = new RemoteSet({ group: 'fleet', firewall: { ...defaultFirewallConfig, reconcileIntervalMs: 0 }, watchdogIntervalMs: 0, logger, backend });
  await set.open('memory');
  const asked: boolean[] = [];
  let started = 0;
  const registry = new Registry();
  const bouncer = new FleetBouncer({
    stream: async (startup) => {
      asked.push(startup);
      const a = opts.answers.shift();
      if (a === undefined) return answer(null);
      if (a instanceof Error) throw a;
      return a;
    },
    set,
    judge: opts.judge ?? judgeOf(['192.0.2.0/24', '2001:db8:a::/48']),
    intervalMs: 500,
    maxDecisions: opts.maxDecisions ?? 1000,
    maxBackoffMs: 1000,
    logger,
    registry,
    now: opts.now,
    onFirstSync: async () => {
      started++;
      await set.start([]);
    },
  });
  /** what the kernel (memory) holds, once the enforcer has drained */
  const kernel = async () => {
    for (let i = 0; i < 100 && (set.health().firewall?.queued ?? 0) > 0; i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 10));
    return (await backend.list()).map((e) => e.target).sort();
  };
  return { set, bouncer, asked, kernel, registry, started: () => started, close: () => bouncer.stop().then(() => set.stop()) };
}

test('a full answer fills the fleet set once, after it arrived; what the guard refuses is held but not enforced', async () => {
  const local = new Map([['203.0.113.7', { rule: 'sip-auth', expiresAt: Date.now() + 3_600_000 }]]);
  const s = await setup({
    judge: judgeOf(['192.0.2.0/24'], local),
    answers: [
      fixture('stream-startup.json'), // 203.0.113.7 is our own sip-auth ban coming back; 2001:db8:1::/48 is a Range
      answer([
        { id: 10, value: '198.51.100.23' },
        { id: 11, value: '192.0.2.10' },
        { id: 12, value: '10.0.0.0/8' },
        { id: 13, value: '198.51.100.0/24' },
      ]),
    ],
  });
  await s.bouncer.poll();
  assert.equal(s.started(), 1, 'the kernel sets start after the first full answer');
  // the recorded answer's 203.0.113.7 says scenario pbx-guardian/sip-auth, ending within 30 s of the local ban
  assert.deepEqual(await s.kernel(), ['2001:db8:1::/48']);
  assert.equal(s.bouncer.health().skipped.own, 1);
  await s.bouncer.poll();
  assert.deepEqual(s.asked, [true, false], 'startup once, then deltas');
  assert.deepEqual(await s.kernel(), ['198.51.100.0/24', '198.51.100.23', '2001:db8:1::/48']);
  const h = s.bouncer.health();
  assert.equal(h.state, 'ok');
  assert.equal(h.decisions, 3);
  assert.equal(h.skipped.allowed, 1, '192.0.2.10 is allow-listed');
  assert.equal(h.skipped.refused, 1, '10.0.0.0/8 is wider than the scope limit');
  assert.equal(s.started(), 1);
  const scrape = await s.registry.metrics();
  assert.match(scrape, /pbx_guardian_fleet_decisions 3/);
  assert.match(scrape, /pbx_guardian_fleet_decisions_skipped_total\{reason="allowed"\} 1/);
  assert.match(scrape, /pbx_guardian_fleet_decisions_skipped_total\{reason="cap"\} 0/);
  assert.match(scrape, /pbx_guardian_fleet_stream_polls_total\{result="delta"\} 1/);
  assert.match(scrape, /pbx_guardian_fleet_bouncer_up 1/);
  await s.close();
});

test('deltas: a target held by two decisions stays until the last one is deleted; deletes of unknown ids change nothing', async () => {
  const s = await setup({
    answers: [
      answer([
        { id: 1, value: '198.51.100.23' },
        { id: 2, value: '198.51.100.23', scenario: 'crowdsecurity/sip-bf' },
        { id: 3, value: '2001:db8:bad:1::17' },
      ]),
      answer(null, [
        { id: 1, value: '198.51.100.23' },
        { id: 99, value: '2001:db8:bad:1::17' },
      ]),
      answer(
        [{ id: 4, value: '203.0.113.0/24' }],
        [
          { id: 2, value: '198.51.100.23' },
          { id: 3, value: '2001:db8:bad:1::17' },
        ],
      ),
    ],
  });
  await s.bouncer.poll();
  assert.deepEqual(await s.kernel(), ['198.51.100.23', '2001:db8:bad:1::17']);
  await s.bouncer.poll();
  assert.deepEqual(await s.kernel(), ['198.51.100.23', '2001:db8:bad:1::17'], 'decision 2 still holds 198.51.100.23');
  assert.deepEqual(
    s.bouncer.decisionsOf('198.51.100.23')!.map((d) => d.id),
    [2],
  );
  await s.bouncer.poll();
  assert.deepEqual(await s.kernel(), ['203.0.113.0/24']);
  await s.close();
});

test('a failed or garbled poll keeps the set; the next poll asks for the whole list and it replaces the set', async () => {
  const t0 = Date.now();
  let now = t0;
  const s = await setup({
    now: () => now,
    answers: [
      answer([
        { id: 1, value: '198.51.100.23' },
        { id: 2, value: '198.51.100.24' },
      ]),
      new Error('the Local API at http://lapi:8080 is unreachable (ECONNREFUSED)'),
      '<html>502 Bad Gateway</html>',
      // the whole list again: 198.51.100.24 was deleted meanwhile, 198.51.100.25 is new
      answer([
        { id: 1, value: '198.51.100.23' },
        { id: 3, value: '198.51.100.25' },
      ]),
    ],
  });
  await s.bouncer.poll();
  await assert.rejects(s.bouncer.poll(), /unreachable/);
  now += 61_000;
  await assert.rejects(s.bouncer.poll(), /not JSON/);
  assert.deepEqual(await s.kernel(), ['198.51.100.23', '198.51.100.24'], 'kept while failing');
  const failing = s.bouncer.health();
  assert.equal(failing.state, 'failing');
  assert.equal(failing.failingSince, t0);
  assert.match(failing.lastError ?? '', /not JSON/);
  await s.bouncer.poll();
  assert.deepEqual(s.asked, [true, false, true, true]);
  assert.deepEqual(await s.kernel(), ['198.51.100.23', '198.51.100.25']);
  assert.equal(s.bouncer.health().state, 'ok');
  assert.equal(s.bouncer.health().failingSince, null);
  assert.match(await s.registry.metrics(), /pbx_guardian_fleet_stream_polls_total\{result="failed"\} 2/);
  await s.close();
});

test('maxDecisions bounds the targets held; the rest are counted as cap', async () => {
  const s = await setup({
    maxDecisions: 2,
    answers: [
      answer([
        { id: 1, value: '198.51.100.1' },
        { id: 2, value: '198.51.100.2' },
        { id: 3, value: '198.51.100.3' },
        { id: 4, value: '198.51.100.1' },
      ]),
    ],
  });
  await s.bouncer.poll();
  assert.deepEqual(await s.kernel(), ['198.51.100.1', '198.51.100.2']);
  assert.equal(s.bouncer.health().skipped.cap, 1, 'a second decision for a held target is not a new target');
  await s.close();
});

test('decisions that are no ban of an address are skipped and counted by reason', async () => {
  const s = await setup({
    answers: [
      answer([
        { id: 1, value: '198.51.100.1', type: 'captcha' },
        { id: 2, value: 'FR', scope: 'Country' },
        { id: 3, value: '198.51.100.0/24', scope: 'Ip' },
        { id: 4, value: 'not-an-ip' },
        { id: 5, value: '198.51.100.9' },
      ]).replace('"id":5', '"id":"5"'),
    ],
  });
  await s.bouncer.poll();
  assert.deepEqual(await s.kernel(), []);
  const k = s.bouncer.health().skipped;
  assert.deepEqual([k.type, k.scope, k.value, k.malformed], [1, 1, 2, 1]);
  await s.close();
});

test('an allow-list change takes a held remote decision out of the set (and puts it back when the entry goes)', async () => {
  const j = judgeOf([]);
  const s = await setup({
    judge: j,
    answers: [
      answer([
        { id: 1, value: '198.51.100.23' },
        { id: 2, value: '203.0.113.9' },
      ]),
    ],
  });
  await s.bouncer.poll();
  assert.deepEqual(await s.kernel(), ['198.51.100.23', '203.0.113.9']);
  j.allow = ['198.51.100.0/24'];
  s.bouncer.rejudge();
  assert.deepEqual(await s.kernel(), ['203.0.113.9']);
  j.allow = [];
  s.bouncer.rejudge();
  assert.deepEqual(await s.kernel(), ['198.51.100.23', '203.0.113.9']);
  await s.close();
});

test('the LAPI host is allow-listed automatically when the fleet is on: no decision can cut the guardian off from its Local API', async () => {
  const { buildConfig } = await import('../src/config/index.js');
  const { guardOptions, hostNames } = await import('../src/main.js');
  const crowdsec = { url: 'http://198.51.100.5:8080', bouncer: { enabled: true, apiKey: 'key-12345678' } };
  const on = guardOptions(buildConfig({ ami: { enabled: false }, crowdsec }), []);
  assert.ok(
    on.automaticAllow.some((e) => typeof e !== 'string' && e.entry === '198.51.100.5' && e.from === 'CrowdSec LAPI host 198.51.100.5'),
    JSON.stringify(on.automaticAllow),
  );
  const off = guardOptions(buildConfig({ ami: { enabled: false }, crowdsec: { ...crowdsec, bouncer: { enabled: false } } }), []);
  assert.ok(!JSON.stringify(off.automaticAllow).includes('198.51.100.5'));
  assert.deepEqual(hostNames(buildConfig({ ami: { enabled: false }, crowdsec: { ...crowdsec, url: 'http://lapi.example:8080' } })), ['lapi.example']);
});
