/** ipset + iptables backend against real kernel sets, in a private network namespace. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { assertPrivateNetns, netnsSkipReason, runInNetns, reportScenario } from './helpers/netns.js';
import { entryFactory } from './helpers/entries.js';
import { Enforcer, defaultFirewallConfig, type FirewallEntry } from '../src/firewall/index.js';
import { IpsetBackend } from '../src/firewall/ipset.js';

const SELF = fileURLToPath(import.meta.url);
const IPSET = '/usr/sbin/ipset';
const IPT = '/usr/sbin/iptables';
const IP6T = '/usr/sbin/ip6tables';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
const targets = (list: FirewallEntry[]): string[] => list.map((e) => e.target).sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function scenario() {
  assertPrivateNetns();
  const log = pino({ level: 'silent' });
  const cfg = { ...defaultFirewallConfig, batchWindowMs: 2, reconcileIntervalMs: 0 };
  const now = Date.now();
  const e = entryFactory(now);
  const active: FirewallEntry[] = [e('192.0.2.1', 3_600_000), e('2001:db8::1', 3_600_000)];
  const mk = () => new IpsetBackend({ prefix: 'pbxg', maxElem: 1048576, verdict: 'drop', ports: [] });
  let backend = mk();
  let enf = new Enforcer(backend, () => active, cfg, log);
  await enf.start();
  await backend.setup(); // idempotent
  const restored = targets(await backend.list());
  const bans = [
    e('192.0.2.10', 60_000),
    e('2001:db8::10', 60_000),
    e('198.51.100.0/24', 60_000),
    e('2001:db8:1::/48', null),
    e('192.0.2.11', null),
    e('192.0.2.12', 2_000),
    e('192.0.2.13', 60 * 86_400_000),
  ];
  active.push(...bans);
  await Promise.all(bans.map((b) => enf.ban(b)));
  await enf.setAllow([
    { target: '203.0.113.0/24', family: 4, isNetwork: true },
    { target: '2001:db8:ffff::1', family: 6, isNetwork: false },
  ]);
  const saved = sh(IPSET, ['save']);
  const allow = (await backend.listAllow()).sort();
  const rules4 = sh(IPT, ['-S', 'PBXG-INPUT']);
  const rules6 = sh(IP6T, ['-S', 'PBXG-INPUT']);
  const input4 = sh(IPT, ['-S', 'INPUT']);
  await sleep(2600);
  active.splice(
    active.findIndex((x) => x.target === '192.0.2.12'),
    1,
  );
  const afterExpiry = targets(await backend.list());
  sh(IPSET, ['del', 'pbxg-v4', '192.0.2.10']);
  sh(IPSET, ['add', 'pbxg-v4', '192.0.2.99', 'timeout', '60']);
  const reconcile = await enf.reconcile();
  const reconcileAgain = await enf.reconcile();
  const afterReconcile = targets(await backend.list());
  await enf.stop();
  sh(IPSET, ['flush']); // a reboot loses the sets' contents
  backend = mk();
  enf = new Enforcer(backend, () => active, cfg, log);
  await enf.start();
  const afterRestart = targets(await backend.list());
  const many: FirewallEntry[] = [];
  for (let i = 0; i < 10_000; i++) many.push(e(`10.1.${i >> 8}.${i & 255}`, 600_000));
  active.push(...many);
  const t0 = performance.now();
  await Promise.all(many.map((m) => enf.ban(m)));
  const bulkMs = performance.now() - t0;
  const count = (await backend.list()).length;
  let unbanAbsentOk = true;
  try {
    await enf.unban({ target: '198.18.0.1', family: 4, isNetwork: false });
    await enf.unban({ target: '2001:db8::10', family: 6, isNetwork: false });
  } catch {
    unbanAbsentOk = false;
  }
  const afterUnban = targets(await backend.list()).filter((t) => !t.startsWith('10.1.'));
  const healthy = enf.healthy;
  await backend.flush();
  await enf.stop();
  const setsAfterFlush = sh(IPSET, ['list', '-n']);
  const input4AfterFlush = sh(IPT, ['-S', 'INPUT']);
  return {
    restored,
    saved,
    allow,
    rules4,
    rules6,
    input4,
    afterExpiry,
    reconcile,
    reconcileAgain,
    afterReconcile,
    afterRestart,
    bulkMs,
    count,
    unbanAbsentOk,
    afterUnban,
    healthy,
    setsAfterFlush,
    input4AfterFlush,
  };
}

if (process.env.PBXG_SCENARIO) {
  reportScenario(() => scenario());
} else {
  const skip = netnsSkipReason([IPSET, IPT, IP6T]);
  test('ipset + iptables backend (private netns)', { skip: skip ?? false }, async () => {
    const r = await runInNetns<Awaited<ReturnType<typeof scenario>>>(SELF, { PBXG_SCENARIO: 'ipset' });
    assert.deepEqual(r.restored, ['192.0.2.1', '2001:db8::1']);
    assert.match(r.saved, /create pbxg-v4 hash:ip family inet hashsize \d+ maxelem 1048576 timeout 0/);
    assert.match(r.saved, /create pbxg-net6 hash:net family inet6 hashsize \d+ maxelem 1048576 timeout 0/);
    assert.match(r.saved, /add pbxg-v4 192\.0\.2\.10 timeout (59|60)\b/);
    assert.match(r.saved, /add pbxg-v4 192\.0\.2\.11 timeout 0\b/);
    assert.match(r.saved, /add pbxg-v4 192\.0\.2\.13 timeout 214748[23]\b/); // 60 days capped at ipset's max
    assert.match(r.saved, /add pbxg-net4 198\.51\.100\.0\/24 timeout (59|60)\b/);
    assert.match(r.saved, /add pbxg-v6 2001:db8::10 timeout (59|60)\b/);
    assert.match(r.saved, /add pbxg-net6 2001:db8:1::\/48 timeout 0\b/);
    assert.deepEqual(r.allow, ['2001:db8:ffff::1', '203.0.113.0/24']);
    const lines = r.rules4.split('\n').filter((l) => l.startsWith('-A'));
    assert.deepEqual(lines, [
      '-A PBXG-INPUT -m set --match-set pbxg-allow4 src -j RETURN',
      '-A PBXG-INPUT -m set --match-set pbxg-v4 src -j DROP',
      '-A PBXG-INPUT -m set --match-set pbxg-net4 src -j DROP',
    ]);
    assert.match(r.rules6, /--match-set pbxg-allow6 src -j RETURN\n.*pbxg-v6/);
    assert.equal(r.input4.split('\n').filter((l) => l.startsWith('-A INPUT')).length, 1, 'one jump, setup is idempotent');
    assert.ok(!r.afterExpiry.includes('192.0.2.12'));
    assert.deepEqual(r.reconcile, { added: 1, removed: 1 });
    assert.deepEqual(r.reconcileAgain, { added: 0, removed: 0 }, 'capped long bans are not reported as drift');
    assert.ok(r.afterReconcile.includes('192.0.2.10') && !r.afterReconcile.includes('192.0.2.99'));
    assert.deepEqual(r.afterRestart, [
      '192.0.2.1',
      '192.0.2.10',
      '192.0.2.11',
      '192.0.2.13',
      '198.51.100.0/24',
      '2001:db8:1::/48',
      '2001:db8::1',
      '2001:db8::10',
    ]);
    assert.equal(r.count, 10_008);
    assert.ok(r.unbanAbsentOk);
    assert.ok(!r.afterUnban.includes('2001:db8::10'));
    assert.ok(r.healthy);
    assert.equal(r.setsAfterFlush.trim(), '');
    assert.ok(!r.input4AfterFlush.includes('PBXG'));
  });
}
