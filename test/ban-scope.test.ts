/**
 * Issue 12, findings 3, 7 and 15: what one ban may cover, judged once for every path (rules, CLI,
 * REST, Odoo incl. update_access_rules), link-local attackers, and events with two RemoteAddress
 * headers. Checks the ban list, the store rows and the backend's elements, not only the answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import pino from 'pino';
import { parseFrame, splitTranscript, type AmiMessage } from '../src/ami/index.js';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { interfaceAddresses, type HostAddressPort } from '../src/guard/index.js';
import { startDaemon, type Daemon } from '../src/main.js';
import { JOB_FUNCTIONS } from '../src/odoo/index.js';
import type { JobContext } from '../src/odoo/job-function.js';
import { Store } from '../src/store/index.js';
import { runCheck } from '../src/cli/check.js';
import { cliOnSocket } from './helpers/cli.js';
import { readFixture } from './helpers/fixtures.js';
import { makeGuardian, shippedRules } from './helpers/guard.js';

/** This "host" has 203.0.113.50 on a /24 (broadcast 203.0.113.255) and 2001:db8:5::1. */
const host: HostAddressPort = {
  addresses: () => [
    { address: '203.0.113.50', why: 'an address of this host (eth0)' },
    { address: '203.0.113.255', why: "the broadcast address of eth0's subnet 203.0.113.50/24" },
    { address: '2001:db8:5::1', why: 'an address of this host (eth0)' },
    { address: 'fe80::1', why: 'an address of this host (eth0)' },
  ],
};

/** Everything that must be refused, with the code each path reports. */
const REFUSED: Array<[string, string]> = [
  ...['1.0.0.0/8', '2.0.0.0/7', '4.0.0.0/6', '8.0.0.0/5', '16.0.0.0/4', '32.0.0.0/3', '64.0.0.0/2', '128.0.0.0/1', '0.0.0.0/0', '10.0.0.0/15'].map(
    (t) => [t, 'TOO_WIDE'] as [string, string],
  ),
  ['2000::/3', 'TOO_WIDE'],
  ['2001:db8::/31', 'TOO_WIDE'],
  ['fe80::/64', 'RESERVED_RANGE'],
  ['fe80::1234', 'RESERVED_RANGE'],
  ['169.254.10.20', 'RESERVED_RANGE'],
  ['224.0.0.1', 'RESERVED_RANGE'],
  ['ff02::1', 'RESERVED_RANGE'],
  ['0.0.0.0', 'RESERVED_RANGE'],
  ['::', 'RESERVED_RANGE'],
  ['255.255.255.255', 'RESERVED_RANGE'],
  ['203.0.113.50', 'OWN_ADDRESS'],
  ['203.0.113.0/24', 'OWN_ADDRESS'],
  ['203.0.113.255', 'OWN_ADDRESS'],
  ['2001:db8:5::/48', 'OWN_ADDRESS'],
];

const events = (file: string, name: string): AmiMessage[] =>
  splitTranscript(readFixture(`ami/${file}`))
    .map((f) => f.message)
    .filter((m) => m.get('Event') === name);

/** A real InvalidPassword frame with its RemoteAddress replaced by `remote` (or by two lines). */
function frameFrom(...remotes: string[]): AmiMessage {
  const raw = (events('security-sip-register-wrong-password.raw', 'InvalidPassword')[0] as unknown as { raw: string }).raw;
  const lines = raw.split('\r\n');
  const at = lines.findIndex((l) => l.startsWith('RemoteAddress:'));
  lines.splice(at, 1, ...remotes.map((r) => `RemoteAddress: ${r}`));
  return parseFrame(lines.join('\r\n'));
}

test('scope: every path through the guard refuses too wide, reserved and own targets, and changes nothing', async () => {
  const { guardian, enforcement, store } = makeGuardian({ host });
  for (const [target, code] of REFUSED) {
    await assert.rejects(guardian.ban({ target, source: 'manual' }), (err: Error & { code?: string }) => {
      assert.equal(err.code, code, `${target}: ${err.message}`);
      return true;
    });
  }
  assert.deepEqual(guardian.listBans(), []);
  assert.equal(store.activeBans(Date.now() + 1).length, 0);
  assert.deepEqual(enforcement.calls, []);
  assert.deepEqual(await enforcement.backend.list(), []);
  // the widest allowed still goes in
  for (const t of ['198.51.0.0/16', '3fff:1::/32', '198.51.100.7', '3fff:1::7']) await guardian.ban({ target: t, source: 'manual' });
  assert.deepEqual((await enforcement.backend.list()).map((e) => e.target).sort(), ['198.51.0.0/16', '198.51.100.7', '3fff:1::/32', '3fff:1::7']);
});

test('scope: the widest prefix is configurable (an operator may allow a /8)', async () => {
  const { guardian } = makeGuardian({ host, scope: { widestV4: 8, widestV6: 24 } });
  await guardian.ban({ target: '10.0.0.0/8', source: 'manual' });
  await guardian.ban({ target: '3fff:100::/24', source: 'manual' });
  await assert.rejects(guardian.ban({ target: '8.0.0.0/7', source: 'manual' }), /widest ban allowed \(\/8/);
  assert.deepEqual(
    guardian.listBans().map((b) => b.target),
    ['10.0.0.0/8', '3fff:100::/24'],
  );
});

test('scope: an update_access_rules deny list with one refused entry changes nothing (allow list, bans, kernel)', async () => {
  const { guardian, enforcement } = makeGuardian({ host });
  const ctx = { bans: guardian } as unknown as JobContext;
  const fn = JOB_FUNCTIONS.get('security.update_access_rules')!;
  await fn({ allow: ['198.51.100.0/24'], deny: ['192.0.2.66'] }, {}, ctx);
  assert.deepEqual(
    guardian.listBans().map((b) => b.target),
    ['192.0.2.66'],
  );
  await assert.rejects(fn({ allow: ['10.1.0.0/24'], deny: ['192.0.2.67', '128.0.0.0/1'] }, {}, ctx), /128\.0\.0\.0\/1 is wider/);
  assert.deepEqual(guardian.allowList, ['198.51.100.0/24'], 'allow list unchanged');
  assert.deepEqual(
    guardian.listBans().map((b) => b.target),
    ['192.0.2.66'],
    'bans unchanged',
  );
  assert.deepEqual(
    (await enforcement.backend.list()).map((e) => e.target),
    ['192.0.2.66'],
  );
});

test('scope: a link-local attacker is never counted nor banned (no fe80::/64, not even the address); 169.254/16 alike', () => {
  const seen: string[] = [];
  const { guardian, clock } = makeGuardian({ host });
  guardian.on({ ignored: (why) => seen.push(why) });
  for (const remote of ['IPV6/UDP/fe80::1234:5678/5060', 'IPV6/UDP/fe80::1%eth0/5060', 'IPV4/UDP/169.254.7.7/5060']) {
    for (let i = 0; i < 20; i++) {
      clock.now += 100;
      guardian.handleEvent(frameFrom(remote));
    }
  }
  assert.deepEqual(guardian.listBans(), []);
  assert.equal(guardian.status().totalFailed, 0);
  assert.equal(seen.length, 60);
  assert.ok(
    seen.every((w) => w === 'link-local'),
    seen.join(),
  );
});

test("scope: an IPv6 /64 that would cover one of the host's addresses bans the attacker's address alone; the host itself is never banned", () => {
  const { guardian, clock } = makeGuardian({ host });
  const ignored: string[] = [];
  guardian.on({ ignored: (why) => ignored.push(why) });
  for (let i = 0; i < 5; i++) {
    clock.now += 100;
    guardian.handleEvent(frameFrom('IPV6/UDP/2001:db8:5::99/5060'));
    guardian.handleEvent(frameFrom('IPV6/UDP/2001:db8:77::99/5060'));
    guardian.handleEvent(frameFrom('IPV4/UDP/203.0.113.50/5060')); // spoofed: the host's own
    guardian.handleEvent(frameFrom('IPV4/UDP/224.0.0.5/5060'));
  }
  assert.deepEqual(
    guardian
      .listBans()
      .map((b) => b.target)
      .sort(),
    ['2001:db8:5::99', '2001:db8:77::/64'],
  );
  assert.equal(ignored.filter((w) => w === 'own-address').length, 5);
  assert.equal(ignored.filter((w) => w === 'reserved').length, 5);
});

test("scope: stored bans out of scope (from before the fix) are ended at start; the host's new address ends a ban covering it", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-scope-'));
  try {
    const store = Store.open(dir);
    const now = Date.now();
    const row = (target: string, family: 4 | 6) => ({
      target,
      family,
      isNetwork: target.includes('/'),
      createdAt: now,
      expiresAt: now + 3600_000,
      rule: 'manual',
      source: 'odoo' as const,
      reason: 'old',
      count: 0,
    });
    for (const r of [row('128.0.0.0/1', 4), row('2000::/3', 6), row('fe80::/64', 6), row('198.51.100.9', 4), row('198.51.0.0/16', 4)]) store.saveBan(r);
    const addresses = [...host.addresses()];
    const { guardian, enforcement } = makeGuardian({ host: { addresses: () => addresses } }, store);
    guardian.restore();
    assert.deepEqual(
      guardian
        .listBans()
        .map((b) => b.target)
        .sort(),
      ['198.51.0.0/16', '198.51.100.9'],
    );
    assert.deepEqual(
      store
        .activeBans(now)
        .map((b) => b.target)
        .sort(),
      ['198.51.0.0/16', '198.51.100.9'],
      'store rows ended',
    );
    assert.deepEqual(
      enforcement.calls
        .filter((c) => c.op === 'unban')
        .map((c) => c.target)
        .sort(),
      ['128.0.0.0/1', '2000::/3', 'fe80::/64'],
    );
    addresses.push({ address: '198.51.7.1', why: 'an address of this host (eth1)' });
    guardian.refreshHostAddresses();
    assert.deepEqual(
      guardian.listBans().map((b) => b.target),
      ['198.51.100.9'],
    );
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('scope: the interface port lists every address of every interface (and IPv4 subnet broadcasts)', async () => {
  const { networkInterfaces } = await import('node:os');
  const listed = new Set(interfaceAddresses.addresses().map((a) => a.address));
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) assert.ok(listed.has(a.address), a.address);
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && a.cidr === '127.0.0.1/8') assert.ok(listed.has('127.255.255.255'));
  }
});

test('ambiguous: an AMI event with two different RemoteAddress headers is ignored and counted as ambiguous; the same one twice counts', () => {
  const { guardian, clock } = makeGuardian();
  const seen: string[] = [];
  guardian.on({ ignored: (why) => seen.push(why) });
  for (let i = 0; i < 10; i++) {
    clock.now += 100;
    guardian.handleEvent(frameFrom('IPV4/UDP/198.51.100.1/5060', 'IPV4/UDP/198.51.100.2/5060'));
  }
  assert.deepEqual(guardian.listBans(), []);
  assert.equal(guardian.status().totalFailed, 0);
  assert.deepEqual(seen, new Array(10).fill('ambiguous'));
  for (let i = 0; i < 5; i++) guardian.handleEvent(frameFrom('IPV4/UDP/198.51.100.3/5060', 'IPV4/UDP/198.51.100.3/5060'));
  assert.deepEqual(
    guardian.listBans().map((b) => b.target),
    ['198.51.100.3'],
  );
  // an already indexed frame answers the same
  const f = frameFrom('IPV4/UDP/198.51.100.1/5060', 'IPV4/UDP/198.51.100.2/5060');
  void f.headers;
  assert.equal(f.getSingle?.('RemoteAddress'), null);
});

test('ambiguous: `check` on an AMI transcript reports such an event as ambiguous, through the same judgement', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-amb-'));
  try {
    const frame = (frameFrom('IPV4/UDP/198.51.100.1/5060', 'IPV4/UDP/198.51.100.2/5060') as unknown as { raw: string }).raw;
    const file = join(dir, 'dup.raw');
    writeFileSync(file, `Asterisk Call Manager/9.0.0\r\n${`${frame}\r\n\r\n`.repeat(6)}`);
    const report = runCheck(file, shippedRules(), []);
    assert.equal(report.skipped.filter((s) => s.outcome === 'ambiguous').length, 6);
    assert.deepEqual(report.bans, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- the daemon's own paths: REST, the CLI on the admin socket, Odoo's job ----

const TOKEN = 'ban-scope-admin-token-0123456789';

function rest(port: number, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      { host: '127.0.0.1', port, method, path, headers: { authorization: `Bearer ${TOKEN}`, ...(data ? { 'content-type': 'application/json' } : {}) } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

test('daemon: REST, CLI and Odoo refuse out-of-scope targets and overlong durations with a clear error and change nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-scope-d-'));
  const config = buildConfig({
    stateDir: join(dir, 'state'),
    logLevel: 'silent',
    ami: { enabled: false },
    firewall: { backend: 'memory' },
    admin: { socket: join(dir, 'admin.sock') },
    metrics: { enabled: false },
    rest: { enabled: true, port: 0, tokens: [{ token: TOKEN, scopes: ['read', 'admin'], name: 'test' }] },
  });
  const backend = new MemoryBackend();
  let daemon: Daemon | undefined;
  try {
    daemon = await startDaemon({ config, backend, logger: pino({ level: 'silent' }), hostAddresses: host });
    const port = daemon.rest!.address.port;
    const socket = config.admin.socket;
    const ctx = { bans: daemon.guardian } as unknown as JobContext;
    const odooBan = JOB_FUNCTIONS.get('security.ban')!;
    for (const [target, code] of [
      ['128.0.0.0/1', 'TOO_WIDE'],
      ['2000::/3', 'TOO_WIDE'],
      ['fe80::/64', 'RESERVED_RANGE'],
      ['203.0.113.50', 'OWN_ADDRESS'],
    ] as const) {
      const r = await rest(port, 'POST', '/v1/bans', { target });
      assert.equal(r.status, code === 'OWN_ADDRESS' ? 409 : 400, `REST ${target}`);
      assert.equal(r.json.code, code);
      const c = await cliOnSocket(socket, 'ban', target);
      assert.notEqual(c.status, 0, `CLI ${target}`);
      assert.match(c.stderr, code === 'TOO_WIDE' ? /wider than the widest ban allowed/ : /never banned/);
      const [o] = (await odooBan({ address: target }, {}, ctx)) as Array<{ banned: boolean; error: string }>;
      assert.equal(o!.banned, false);
      assert.match(o!.error, /never banned|wider than/);
    }
    // finding 4 at the input: 52200 weeks from the CLI, 1000 years over REST and from Odoo
    const cliLong = await cliOnSocket(socket, 'ban', '198.51.100.4', '--for', '52200w');
    assert.notEqual(cliLong.status, 0);
    assert.match(cliLong.stderr, /longer than the longest allowed \(365d, guard\.maxBanDuration\)/);
    const restLong = await rest(port, 'POST', '/v1/bans', { target: '198.51.100.4', duration: `${1000 * 365}d` });
    assert.equal(restLong.status, 400);
    assert.equal(restLong.json.code, 'DURATION_TOO_LONG');
    const [odooLong] = (await odooBan({ address: '198.51.100.4', timeout: 1000 * 365 * 86400 }, {}, ctx)) as Array<{ banned: boolean; error: string }>;
    assert.equal(odooLong!.banned, false);
    assert.match(odooLong!.error, /guard\.maxBanDuration/);
    const [odooBad] = (await odooBan({ address: '198.51.100.4', timeout: 'forever' }, {}, ctx)) as Array<{ banned: boolean; error: string }>;
    assert.match(odooBad!.error, /is not a duration/);
    assert.deepEqual(daemon.guardian.listBans(), []);
    assert.equal(daemon.store.activeBans(Date.now()).length, 0);
    await daemon.enforcer.reconcile();
    assert.deepEqual(await backend.list(), []);
    // within bounds all three still work
    assert.equal((await rest(port, 'POST', '/v1/bans', { target: '198.51.0.0/16', duration: '365d' })).status, 201);
    assert.equal((await cliOnSocket(socket, 'ban', '3fff:1::/32', '--for', '1h')).status, 0);
    assert.equal(((await odooBan({ address: '192.0.2.99', timeout: '2h' }, {}, ctx)) as Array<{ banned: boolean }>)[0]!.banned, true);
    assert.deepEqual(
      daemon.store
        .activeBans(Date.now())
        .map((b) => b.target)
        .sort(),
      ['192.0.2.99', '198.51.0.0/16', '3fff:1::/32'],
    );
  } finally {
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ambiguous: getSingle agrees with getAll on frames with repeated keys in any case, indexed or not (property, 2,000 frames)', () => {
  let seed = 12;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
  const spellings = ['RemoteAddress', 'remoteaddress', 'REMOTEADDRESS', 'RemoteAddressX', 'XRemoteAddress'];
  for (let i = 0; i < 2000; i++) {
    const lines = ['Event: InvalidPassword'];
    for (let j = rnd(5); j >= 0; j--) lines.push(rnd(3) === 0 ? `${spellings[rnd(5)]}: IPV4/UDP/198.51.100.${rnd(3)}/5060` : `Other${rnd(9)}: ${rnd(99)}`);
    if (rnd(4) === 0) lines.unshift(`RemoteAddress: IPV4/UDP/198.51.100.${rnd(3)}/5060`);
    const text = lines.join('\r\n');
    const all = parseFrame(text).getAll('RemoteAddress');
    const want = all.length === 0 ? undefined : all.every((v) => v === all[0]) ? all[0] : null;
    assert.equal(parseFrame(text).getSingle?.('RemoteAddress'), want, text);
    const indexed = parseFrame(text);
    void indexed.headers;
    assert.equal(indexed.getSingle?.('RemoteAddress'), want, text);
  }
});
