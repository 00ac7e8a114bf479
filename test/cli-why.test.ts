import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { RemoteSet } from '../src/firewall/index.js';
import { parseNetwork, plainObservation } from '../src/guard/index.js';
import { adminDaemon } from './helpers/admin-daemon.js';
import { cliOnSocket } from './helpers/cli.js';

const options = { automaticAllow: [{ entry: '127.0.0.0/8', from: 'loopback' }], allow: ['192.0.2.0/24'] };

interface Why {
  address: string;
  key: string;
  allowed: Array<{ entry: string; from: string }>;
  bans: Array<{ kind: string; how: string; ban: { target: string } }>;
  failures: Array<{ rule: string; windows: Array<{ count: number; hits: number }> }>;
  next: Array<{ rule: string; outcome: string; ban?: { target: string; durationSec: number; reason: string } }> | null;
  history: Array<{ target: string; rule: string; endReason: string | null }>;
}

test('why ADDRESS: allowed by which entry, banned by which ban, failures per window, what its next failure does, its history', async () => {
  const d = await adminDaemon(options);
  try {
    const fail = (addr: string, n: number) => {
      for (let i = 0; i < n; i++) d.guardian.observe(plainObservation('ami', 'InvalidPassword', 'SIP', parseNetwork(addr), Date.now()));
    };
    fail('203.0.113.7', 5); // banned once, by auth-failure
    assert.equal(d.guardian.listBans()[0]?.target, '203.0.113.7');
    await d.guardian.unbanTarget('203.0.113.7');
    fail('203.0.113.7', 4);
    await d.guardian.ban({ target: '198.51.100.0/24', durationSec: 3600, reason: 'scanner net', source: 'manual' });
    fail('2001:db8:bad:1::18', 2);

    const [text, jsonOut, coveredOut, coveredText, loop, confOut, v6Out, net] = await Promise.all([
      cliOnSocket(d.socket, 'why', '203.0.113.7'),
      cliOnSocket(d.socket, 'why', '203.0.113.7', '-o', 'json'),
      cliOnSocket(d.socket, 'why', '198.51.100.23', '--json'),
      cliOnSocket(d.socket, 'why', '198.51.100.23'),
      cliOnSocket(d.socket, 'why', '127.0.0.1'),
      cliOnSocket(d.socket, 'why', '192.0.2.5', '-o', 'json'),
      cliOnSocket(d.socket, 'why', '2001:db8:bad:1::17', '-o', 'json'),
      cliOnSocket(d.socket, 'why', '198.51.100.0/24'),
    ]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /allowed: {2}no/);
    assert.match(text.stdout, /banned: {3}no/);
    assert.match(text.stdout, /auth-failure +4 of 5 within 10m, 4 of 20 within 12h/);
    assert.match(text.stdout, /auth-failure +bans 203\.0\.113\.7 for 2h \(rule auth-failure: 5 × InvalidPassword within 10m \(repeat offender: ban 2\)\)/);
    assert.match(
      text.stdout,
      /history \(newest first, 1\):\n +CREATED +TARGET +DURATION +RULE +SOURCE +ENDED +REASON\n.* 203\.0\.113\.7 +1h +auth-failure +rule +\S+ \S+ unbanned +5 × InvalidPassword within 10m/,
    );

    const json = JSON.parse(jsonOut.stdout) as Why;
    assert.deepEqual(json.failures, [
      {
        rule: 'auth-failure',
        events: ['InvalidPassword', 'ChallengeResponseFailed', 'InvalidAccountID'],
        windows: [
          { count: 5, withinMs: 600_000, hits: 4 },
          { count: 20, withinMs: 43_200_000, hits: 4 },
        ],
      },
    ]);
    assert.equal(json.next?.find((n) => n.rule === 'auth-failure')?.ban?.durationSec, 7200);
    assert.equal(json.next?.find((n) => n.rule === 'acl-denied')?.outcome, 'count');

    const covered = JSON.parse(coveredOut.stdout) as Why;
    assert.deepEqual(
      covered.bans.map((b) => [b.kind, b.how, b.ban.target]),
      [['local', 'covering', '198.51.100.0/24']],
    );
    assert.equal(covered.next, null, 'a banned address is not counted');
    assert.match(coveredText.stdout, /banned: {3}yes, local: 198\.51\.100\.0\/24 \(rule manual, (59m\d+s|1h) left\), a covering ban: scanner net/);
    assert.deepEqual(
      covered.history.map((h) => h.target),
      ['198.51.100.0/24'],
      'the history of the covering network',
    );

    assert.match(loop.stdout, /allowed: {2}yes, by 127\.0\.0\.0\/8 \(loopback\): never counted nor banned/);
    assert.match(loop.stdout, /next failure: not counted \(never banned\)/);
    const conf = JSON.parse(confOut.stdout) as Why;
    assert.deepEqual(conf.allowed, [{ entry: '192.0.2.0/24', from: 'guard.allow' }]);

    const v6 = JSON.parse(v6Out.stdout) as Why;
    assert.equal(v6.key, '2001:db8:bad:1::/64');
    assert.equal(v6.failures[0]?.windows[0]?.hits, 2, 'the failures of ::18 count against ::17: same /64');

    assert.equal(net.status, 1);
    assert.match(net.stderr, /is a network: why takes one address/);
  } finally {
    await d.close();
  }
});

test('history [ADDRESS] [--since]: newest first, filtered by the address and every network containing it', async () => {
  const d = await adminDaemon();
  try {
    await d.guardian.ban({ target: '198.51.100.0/24', durationSec: 60, source: 'manual' });
    await d.guardian.ban({ target: '203.0.113.7', durationSec: 60, source: 'manual' });
    await d.guardian.ban({ target: '203.0.113.8', durationSec: 60, reason: 'second', source: 'manual' });
    const all = await cliOnSocket(d.socket, 'history', '-o', 'json');
    assert.equal(all.status, 0, all.stderr);
    assert.deepEqual(
      (JSON.parse(all.stdout) as Array<{ target: string }>).map((h) => h.target),
      ['203.0.113.8', '203.0.113.7', '198.51.100.0/24'],
    );
    const one = await cliOnSocket(d.socket, 'history', '198.51.100.9');
    assert.match(
      one.stdout,
      /^CREATED +TARGET +DURATION +RULE +SOURCE +ENDED +REASON\n\S+ \S+ +198\.51\.100\.0\/24 +1m +manual +manual +in force +manual ban \(manual\)\n?$/,
    );
    const since = await cliOnSocket(d.socket, 'history', '--since', '1h', '--limit', '1', '-o', 'json');
    assert.deepEqual(
      (JSON.parse(since.stdout) as Array<{ target: string }>).map((h) => h.target),
      ['203.0.113.8'],
    );
    const bad = await cliOnSocket(d.socket, 'history', '--since', 'yesterday');
    assert.equal(bad.status, 2);
  } finally {
    await d.close();
  }
});

test("why: a decision in the fleet's set is listed beside the local bans ({ kind: 'fleet' })", async () => {
  const set = new RemoteSet({
    group: 'fleet',
    firewall: buildConfig({}).firewall,
    watchdogIntervalMs: 60_000,
    logger: pino({ level: 'silent' }),
    backend: new MemoryBackend(),
  });
  // before start() a put only fills the set's map: what the bouncer does with the first full answer
  set.put({ target: '198.51.100.0/24', family: 4, isNetwork: true, expiresAt: Date.now() + 3_600_000 });
  const d = await adminDaemon({}, () => ({ remoteSets: () => [{ kind: 'fleet', name: 'fleet', get: (t) => set.get(t) }] }));
  try {
    await d.guardian.ban({ target: '198.51.100.23', durationSec: 600, source: 'manual' });
    const [json, text] = await Promise.all([cliOnSocket(d.socket, 'why', '198.51.100.23', '-o', 'json'), cliOnSocket(d.socket, 'why', '198.51.100.23')]);
    const r = JSON.parse(json.stdout) as { bans: Array<{ kind: string; how: string; set?: string; target?: string }> };
    assert.deepEqual(
      r.bans.map((b) => [b.kind, b.how, b.set ?? '', b.target ?? '']),
      [
        ['local', 'itself', '', ''],
        ['fleet', 'covering', 'fleet', '198.51.100.0/24'],
      ],
    );
    assert.match(text.stdout, /\n {12}yes, fleet \(set fleet\): 198\.51\.100\.0\/24 \((59m\d+s|1h) left\), a covering decision\n/);
    const banned = await cliOnSocket(d.socket, 'banned', '198.51.100.23');
    assert.match(banned.stdout, /\n198\.51\.100\.0\/24 +(59m\d+s|1h) +- +fleet +covering +fleet decision \(set fleet\)\n?$/);
  } finally {
    await d.close();
    await set.stop();
  }
});
