import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNetwork, plainObservation } from '../src/guard/index.js';
import { adminDaemon } from './helpers/admin-daemon.js';
import { cliOnSocket } from './helpers/cli.js';

const loopback = [{ entry: '127.0.0.0/8', from: 'loopback' }];

test('unban of an address inside a banned network names the covering ban and exits 1; --covering ends it', async () => {
  const d = await adminDaemon({ automaticAllow: loopback });
  try {
    const banned = await cliOnSocket(d.socket, 'ban', '198.51.100.0/24', '--for', '1h');
    assert.equal(banned.status, 0, banned.stderr);
    assert.equal(banned.stdout.trim(), 'banned 198.51.100.0/24 for 1h');

    const refused = await cliOnSocket(d.socket, 'unban', '198.51.100.23');
    assert.equal(refused.status, 1, refused.stdout);
    assert.match(refused.stderr, /198\.51\.100\.23 is not banned itself: it is covered by the ban of 198\.51\.100\.0\/24 \(rule manual, (59m\d+s|1h) left\)/);
    assert.match(refused.stderr, /--covering/);
    assert.deepEqual(
      d.guardian.listBans().map((b) => b.target),
      ['198.51.100.0/24'],
      'nothing was unbanned',
    );

    const covering = await cliOnSocket(d.socket, 'unban', '198.51.100.23', '--covering');
    assert.equal(covering.status, 0, covering.stderr);
    assert.equal(covering.stdout.trim(), 'unbanned 198.51.100.0/24 (it covered 198.51.100.23)');
    assert.deepEqual(d.guardian.listBans(), []);
    assert.deepEqual(d.enforcement.calls.at(-1), { op: 'unban', target: '198.51.100.0/24' });

    const none = await cliOnSocket(d.socket, 'unban', '198.51.100.23');
    assert.equal(none.status, 1);
    assert.match(none.stderr, /198\.51\.100\.23: 198\.51\.100\.23 is not banned/);
  } finally {
    await d.close();
  }
});

test('unban of an IPv6 address finds the /64 the guard banned it by (guard.ipv6Prefix)', async () => {
  const d = await adminDaemon();
  try {
    const now = Date.now();
    for (let i = 0; i < 5; i++) d.guardian.observe(plainObservation('ami', 'InvalidAccountID', 'AMI', parseNetwork(`2001:db8:bad:1::${17 + i}`), now + i));
    assert.deepEqual(
      d.guardian.listBans().map((b) => [b.target, b.rule]),
      [['2001:db8:bad:1::/64', 'auth-failure']],
    );
    const r = await cliOnSocket(d.socket, 'unban', '2001:db8:bad:1::17');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'unbanned 2001:db8:bad:1::/64 (it covered 2001:db8:bad:1::17)');
    assert.deepEqual(d.guardian.listBans(), []);
  } finally {
    await d.close();
  }
});

test('ban and unban take several addresses: one line each, exit 1 when one is refused; the default manual duration applies', async () => {
  const d = await adminDaemon({ automaticAllow: loopback, manualBanSec: 86400 });
  try {
    const r = await cliOnSocket(d.socket, 'ban', '203.0.113.7', '127.0.0.1', '203.0.113.8');
    assert.equal(r.status, 1);
    assert.deepEqual(r.stdout.trim().split('\n'), ['banned 203.0.113.7 for 1d', 'banned 203.0.113.8 for 1d']);
    assert.match(r.stderr, /^127\.0\.0\.1: 127\.0\.0\.1 overlaps the allow-listed 127\.0\.0\.0\/8 \(loopback\) and is never banned\n$/);

    const perm = await cliOnSocket(d.socket, 'ban', '203.0.113.9', '--for', 'permanent', '-o', 'json');
    assert.equal(perm.status, 0, perm.stderr);
    const [one] = JSON.parse(perm.stdout) as Array<{ target: string; ok: boolean; result: { expiresAt: number | null } }>;
    assert.equal(one!.ok, true);
    assert.equal(one!.result.expiresAt, null);

    const un = await cliOnSocket(d.socket, 'unban', '203.0.113.7', '203.0.113.8', '192.0.2.200');
    assert.equal(un.status, 1);
    assert.deepEqual(un.stdout.trim().split('\n'), ['unbanned 203.0.113.7', 'unbanned 203.0.113.8']);
    assert.match(un.stderr, /192\.0\.2\.200 is not banned/);
    assert.deepEqual(
      d.guardian.listBans().map((b) => b.target),
      ['203.0.113.9'],
    );
  } finally {
    await d.close();
  }
});

test('banned: a table with a header; banned ADDRESS shows the bans that drop it, exit 1 when none; -o json', async () => {
  const d = await adminDaemon();
  try {
    await d.guardian.ban({ target: '198.51.100.0/24', durationSec: 3600, reason: 'scanner \u001b[31mred', source: 'manual' });
    await d.guardian.ban({ target: '203.0.113.50', durationSec: null, source: 'manual' });
    const all = await cliOnSocket(d.socket, 'banned');
    assert.equal(all.status, 0, all.stderr);
    const lines = all.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^TARGET +LEFT +RULE +SOURCE +REASON$/);
    // every column starts where its header does
    const at = ['LEFT', 'RULE', 'SOURCE', 'REASON'].map((h) => lines[0]!.indexOf(h));
    assert.match(lines[1]!, /^198\.51\.100\.0\/24 +(59m\d+s|1h) +manual +manual +scanner {2}\[31mred$/, 'no escape sequence reaches the terminal');
    assert.match(lines[2]!, /^203\.0\.113\.50 +permanent +manual +manual +manual ban \(manual\)$/);
    for (const l of lines.slice(1))
      assert.deepEqual(
        at.map((i) => l[i - 1] === ' ' && l[i] !== ' '),
        [true, true, true, true],
        l,
      );

    const [one, none, json, old, bad] = await Promise.all([
      cliOnSocket(d.socket, 'banned', '198.51.100.23'),
      cliOnSocket(d.socket, 'banned', '192.0.2.1'),
      cliOnSocket(d.socket, 'banned', '-o', 'json'),
      cliOnSocket(d.socket, 'banned', '--json'),
      cliOnSocket(d.socket, 'banned', '-o', 'yaml'),
    ]);
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stdout, /MATCH/);
    assert.match(one.stdout, /198\.51\.100\.0\/24 .* covering /);
    assert.doesNotMatch(one.stdout, /203\.0\.113\.50/);

    assert.equal(none.status, 1);
    assert.equal(none.stdout.trim(), '192.0.2.1 is not banned');

    assert.deepEqual(
      (JSON.parse(json.stdout) as Array<{ target: string }>).map((b) => b.target),
      ['198.51.100.0/24', '203.0.113.50'],
    );
    assert.deepEqual(JSON.parse(old.stdout), JSON.parse(json.stdout));
    assert.equal(bad.status, 2);
  } finally {
    await d.close();
  }
});
