/**
 * The machine against a real CrowdSec 1.4.6 Local API (test/helpers/crowdsec-lapi.ts): what it
 * pushes is what `cscli decisions list -o json` shows, and an outage of the LAPI loses no push.
 * The "LAPI down for a minute" is 10 s here (20 bans decided during it, the backoff capped
 * at 2 s): the queue and the retry are the same code whatever the length; the unit lane
 * (fleet-machine.test.ts) covers restarts, the cap and the expiry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { defaultsOf } from '../src/common/config-schema.js';
import { parseGoDuration } from '../src/fleet/decision.js';
import { CrowdsecConfigSchema, type CrowdsecConfig } from '../src/fleet/config-schema.js';
import { startFleetMachine } from '../src/fleet/machine.js';
import type { BanRecord } from '../src/guard/types.js';
import { Store } from '../src/store/index.js';
import { skipReason, startLapi, type Lapi } from './helpers/crowdsec-lapi.js';

const skip = skipReason();
const OUTAGE_MS = 10_000;

function ban(target: string, o: Partial<BanRecord> = {}): BanRecord {
  const now = Date.now();
  return {
    target,
    family: target.includes(':') ? 6 : 4,
    isNetwork: target.includes('/'),
    createdAt: now,
    expiresAt: now + 2 * 3600_000,
    rule: 'sip-auth',
    source: 'rule',
    reason: 'sip-auth: 5 failures in 60 s',
    count: 5,
    ...o,
  };
}

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function listed(lapi: Lapi) {
  return lapi.decisions().flatMap((a) => a.decisions);
}

test(
  'a real LAPI 1.4.6: pushed bans are in cscli decisions list; stopped for 10 s and started again, it loses no push',
  { skip, timeout: 60_000 },
  async (t) => {
    const lapi = await startLapi(18181);
    const dir = mkdtempSync(join(tmpdir(), 'pbxg-fleet-machine-lapi-'));
    const store = new Store(join(dir, 'guardian.sqlite'));
    const base = defaultsOf(CrowdsecConfigSchema);
    const config: CrowdsecConfig = {
      ...base,
      url: lapi.url,
      maxBackoffMs: 2000,
      machine: { ...base.machine, enabled: true, ...lapi.machine, push: ['rule', 'recidive', 'manual'] },
    };
    const m = startFleetMachine({ config, db: store.db, logger: pino({ level: 'silent' }) });
    try {
      m.subscriber.handleBanNotice!({ action: 'ban', record: ban('203.0.113.70') });
      m.subscriber.handleBanNotice!({ action: 'ban', record: ban('2001:db8:70::/48', { rule: 'recidive', source: 'recidive' }) });
      m.subscriber.handleBanNotice!({
        action: 'ban',
        record: ban('198.51.100.0/24', { rule: 'manual', source: 'manual', reason: 'manual ban (cli)', count: 0, expiresAt: null }),
      });
      await until('3 pushes', () => m.health().pushed === 3, 10_000);
      const got = listed(lapi);
      const ip = got.find((d) => d.value === '203.0.113.70');
      assert.ok(ip, 'the Ip ban is in cscli decisions list');
      assert.deepEqual({ scope: ip.scope, scenario: ip.scenario, origin: ip.origin }, { scope: 'Ip', scenario: 'pbx-guardian/sip-auth', origin: 'crowdsec' });
      const left = parseGoDuration(ip.duration)!;
      assert.ok(left > 2 * 3600_000 - 60_000 && left <= 2 * 3600_000, `the remaining duration ${ip.duration}`);
      const v6 = got.find((d) => d.value === '2001:db8:70::/48');
      assert.deepEqual([v6?.scope, v6?.scenario], ['Range', 'pbx-guardian/recidive']);
      const manual = got.find((d) => d.value === '198.51.100.0/24');
      assert.deepEqual([manual?.scope, manual?.scenario], ['Range', 'pbx-guardian/manual']);
      assert.ok(parseGoDuration(manual!.duration)! > 8759 * 3600_000, `a permanent ban is pushed for permanentDuration (8760h): ${manual!.duration}`);

      await lapi.stop();
      const outageStart = Date.now();
      const during: string[] = [];
      for (let i = 0; i < 20; i++) {
        const t = `192.0.2.${100 + i}`;
        during.push(t);
        m.subscriber.handleBanNotice!({ action: 'ban', record: ban(t) });
        await new Promise((r) => setTimeout(r, OUTAGE_MS / 20));
      }
      const h = m.health();
      assert.equal(h.state, 'failing');
      assert.equal(h.queued, 20, 'the 20 bans of the outage wait in the queue');
      assert.match(h.lastError!, /unreachable/);
      await lapi.start();
      const restartedAt = Date.now();
      await until('the queued pushes', () => m.health().pushed === 23, 15_000);
      const catchUpMs = Date.now() - restartedAt;
      t.diagnostic(`outage ${restartedAt - outageStart} ms, 20 bans queued; all pushed ${catchUpMs} ms after the LAPI listened again`);
      const values = new Set(listed(lapi).map((d) => d.value));
      for (const target of during) assert.ok(values.has(target), `${target}, banned while the LAPI was down, reached it`);
      assert.equal(m.health().state, 'ok');
      assert.deepEqual(m.health().dropped, { expired: 0, refused: 0, cap: 0 });
      assert.equal((store.db.prepare('SELECT COUNT(*) AS n FROM fleet_outbox').get() as { n: number }).n, 0);
      // the backoff is capped at 2 s: the queue drains within a cap (+ a login and a POST) of the LAPI's return
      assert.ok(catchUpMs < 2000 + 2500, `pushed ${catchUpMs} ms after the LAPI listened again (outage ${restartedAt - outageStart} ms)`);
    } finally {
      await m.stop();
      store.close();
      rmSync(dir, { recursive: true, force: true });
      await lapi.close();
    }
  },
);

test('a real LAPI 1.4.6 refuses a value it cannot parse: that row alone is dropped, the rest of its batch is pushed', { skip, timeout: 30_000 }, async () => {
  const lapi = await startLapi(18182);
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-fleet-machine-lapi-'));
  const store = new Store(join(dir, 'guardian.sqlite'));
  try {
    // rows left by an earlier run; one holds a value the guard never makes (the LAPI's answer is what is tested)
    const put = store.db.prepare(
      `INSERT INTO fleet_outbox (target, is_network, rule, source, reason, count, banned_at, expires_at) VALUES (?, ?, 'sip-auth', 'rule', 'r', 5, ?, ?)`,
    );
    const now = Date.now();
    for (const [target, net] of [
      ['203.0.113.80', 0],
      ['not-an-address', 0],
      ['2001:db8:80::/48', 1],
    ] as const)
      put.run(target, net, now, now + 3600_000);
    const base = defaultsOf(CrowdsecConfigSchema);
    const config: CrowdsecConfig = { ...base, url: lapi.url, machine: { ...base.machine, enabled: true, ...lapi.machine } };
    const m = startFleetMachine({ config, db: store.db, logger: pino({ level: 'silent' }) });
    try {
      await until('the batch sorted out', () => m.health().pushed === 2 && m.health().dropped.refused === 1, 10_000);
      assert.match(m.health().lastError!, /HTTP 500: unable to create alerts: invalid addr\/range not-an-address/);
      assert.deepEqual(
        listed(lapi)
          .map((d) => d.value)
          .sort(),
        ['2001:db8:80::/48', '203.0.113.80'],
      );
      assert.equal(m.health().queued, 0);
    } finally {
      await m.stop();
    }
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
    await lapi.close();
  }
});
