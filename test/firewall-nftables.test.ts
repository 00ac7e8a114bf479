/**
 * nftables backend against real kernel sets, in a private network namespace: the test re-runs
 * this file under `unshare -n` (PBXG_SCENARIO set) and asserts on the JSON it reports.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { assertPrivateNetns, netnsSkipReason, runInNetns, reportScenario } from './helpers/netns.js';
import { entryFactory } from './helpers/entries.js';
import { Enforcer, defaultFirewallConfig, type FirewallEntry } from '../src/firewall/index.js';
import { NftablesBackend } from '../src/firewall/nftables.js';
import { NftCommandRunner } from '../src/firewall/nft-command.js';
import { createAddonRunner } from '../src/firewall/nft-addon.js';
import type { NftRunner } from '../src/firewall/nft-runner.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const TABLE = 'pbx_guardian';

interface Report {
  runner: string;
  restored: string[];
  elems: Record<string, { val: string; timeout: number | null }[]>;
  allow: string[];
  chain: string;
  afterExpiry: string[];
  reconcile: { added: number; removed: number };
  afterReconcile: string[];
  afterRestart: string[];
  bulk: { applies: number; count: number; ms: number };
  refreshedTimeout: number | null;
  unbanAbsentOk: boolean;
  afterUnban: string[];
  overlap: string[];
  healthy: boolean;
  scoped: string;
  tablesAfterFlush: string;
}

// nft's JSON, read loosely: a wrong shape fails the assertions that use it
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function nftJson(...args: string[]): any {
  return JSON.parse(execFileSync(NFT, ['-j', ...args], { encoding: 'utf8' }));
}

function elems(): Record<string, { val: string; timeout: number | null }[]> {
  const out: Record<string, { val: string; timeout: number | null }[]> = {};
  for (const item of nftJson('list', 'table', 'inet', TABLE).nftables) {
    if (!item.set) continue;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    out[item.set.name] = (item.set.elem ?? []).map((e: any) => {
      const v = e.elem ? e.elem.val : e;
      const val = typeof v === 'string' ? v : `${v.prefix.addr}/${v.prefix.len}`;
      return { val, timeout: e.elem?.timeout ?? null };
    });
  }
  return out;
}

const targets = (list: FirewallEntry[]): string[] => list.map((e) => e.target).sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function makeRunner(kind: string): NftRunner {
  if (kind === 'addon') {
    const r = createAddonRunner();
    if (!r) throw new Error('addon not loadable');
    return r;
  }
  return new NftCommandRunner(NFT);
}

async function scenario(kind: string): Promise<Report> {
  assertPrivateNetns();
  const log = pino({ level: 'silent' });
  const cfg = { ...defaultFirewallConfig, batchWindowMs: 2, reconcileIntervalMs: 0 };
  const now = Date.now();
  const e = entryFactory(now);
  const active: FirewallEntry[] = [e('192.0.2.1', 3_600_000), e('2001:db8::1', 3_600_000)];
  const mk = () => new NftablesBackend(makeRunner(kind), { table: TABLE, verdict: 'drop', ports: [], size: 1048576 });
  let backend = mk();
  let enf = new Enforcer(backend, () => active, cfg, log);
  await enf.start();
  const restored = targets(await backend.list());

  const bans = [
    e('192.0.2.10', 60_000),
    e('2001:db8::10', 60_000),
    e('198.51.100.0/24', 60_000),
    e('2001:db8:1::/48', null),
    e('192.0.2.11', null),
    e('192.0.2.12', 2_000),
  ];
  active.push(...bans);
  await Promise.all(bans.map((b) => enf.ban(b)));
  await enf.setAllow([
    { target: '203.0.113.0/24', family: 4, isNetwork: true },
    { target: '203.0.113.5', family: 4, isNetwork: false },
    { target: '2001:db8:ffff::1', family: 6, isNetwork: false },
  ]);
  const el = elems();
  const allow = await backend.listAllow();
  const chain = execFileSync(NFT, ['list', 'chain', 'inet', TABLE, 'input'], { encoding: 'utf8' });

  await sleep(2600);
  active.splice(
    active.findIndex((x) => x.target === '192.0.2.12'),
    1,
  );
  const afterExpiry = targets(await backend.list());

  execFileSync(NFT, ['delete', 'element', 'inet', TABLE, 'ban4', '{ 192.0.2.10 }']);
  execFileSync(NFT, ['add', 'element', 'inet', TABLE, 'ban4', '{ 192.0.2.99 timeout 60s }']);
  const reconcile = await enf.reconcile();
  const afterReconcile = targets(await backend.list());

  // restart after a reboot: kernel state gone, the store still has the bans
  await enf.stop();
  execFileSync(NFT, ['delete', 'table', 'inet', TABLE]);
  backend = mk();
  enf = new Enforcer(backend, () => active, cfg, log);
  await enf.start();
  const afterRestart = targets(await backend.list());

  // 10k bans arriving together: one transaction
  let applies = 0;
  const orig = backend.apply.bind(backend);
  backend.apply = (b) => {
    applies++;
    return orig(b);
  };
  const many: FirewallEntry[] = [];
  for (let i = 0; i < 10_000; i++) many.push(e(`10.1.${i >> 8}.${i & 255}`, 600_000));
  active.push(...many);
  const t0 = performance.now();
  await Promise.all(many.map((m) => enf.ban(m)));
  const ms = performance.now() - t0;
  const bulkApplies = applies;
  const count = (await backend.list()).length;

  await enf.ban(e('192.0.2.10', 900_000));
  const refreshedTimeout = elems().ban4!.find((x) => x.val === '192.0.2.10')?.timeout ?? null;

  let unbanAbsentOk = true;
  try {
    await enf.unban({ target: '198.18.0.1', family: 4, isNetwork: false });
    await enf.unban({ target: '198.18.0.0/16', family: 4, isNetwork: true });
    await enf.unban({ target: '2001:db8::10', family: 6, isNetwork: false });
  } catch {
    unbanAbsentOk = false;
  }
  const afterUnban = targets(await backend.list()).filter((t) => !t.startsWith('10.1.'));

  await enf.ban(e('198.51.100.128/25', 60_000)); // inside the present /24: skipped, no error
  await enf.ban(e('198.51.0.0/16', 60_000)); // covers the /24: replaces it
  const overlap = targets(await backend.list()).filter((t) => t.startsWith('198.51.'));
  const healthy = enf.healthy;
  await backend.flush();
  await enf.stop();

  const scopedBe = new NftablesBackend(makeRunner(kind), { table: 'pbxg_scoped', verdict: 'reject', ports: [5061, 5060, 5038], size: 65536 });
  await scopedBe.setup();
  await scopedBe.setup(); // idempotent: no duplicate rules
  const scoped = execFileSync(NFT, ['list', 'chain', 'inet', 'pbxg_scoped', 'input'], { encoding: 'utf8' });
  await scopedBe.flush();
  await scopedBe.flush(); // absent table: no error
  await scopedBe.close();
  const tablesAfterFlush = execFileSync(NFT, ['list', 'tables'], { encoding: 'utf8' });
  return {
    runner: backend.runner.kind,
    restored,
    elems: el,
    allow,
    chain,
    afterExpiry,
    reconcile,
    afterReconcile,
    afterRestart,
    bulk: { applies: bulkApplies, count, ms },
    refreshedTimeout,
    unbanAbsentOk,
    afterUnban,
    overlap,
    healthy,
    scoped,
    tablesAfterFlush,
  };
}

function check(r: Report, kind: string): void {
  assert.equal(r.runner, kind);
  assert.deepEqual(r.restored, ['192.0.2.1', '2001:db8::1']);
  const t = (set: string, val: string) => r.elems[set]?.find((x) => x.val === val);
  assert.ok(t('ban4', '192.0.2.10')!.timeout! >= 59 && t('ban4', '192.0.2.10')!.timeout! <= 60);
  assert.equal(t('ban4', '192.0.2.11')!.timeout, null);
  assert.ok(t('ban6', '2001:db8::10')!.timeout! >= 59);
  assert.ok(t('net4', '198.51.100.0/24')!.timeout! >= 59);
  assert.equal(t('net6', '2001:db8:1::/48')!.timeout, null);
  assert.deepEqual(r.allow.sort(), ['2001:db8:ffff::1', '203.0.113.0/24']);
  const lines = r.chain.split('\n').map((l) => l.trim());
  const firstBan = lines.findIndex((l) => l.includes('@ban4'));
  assert.ok(lines.findIndex((l) => l.includes('@allow4 accept')) < firstBan);
  assert.ok(lines.findIndex((l) => l.includes('@allow6 accept')) < firstBan);
  assert.match(r.chain, /priority -200/);
  assert.match(r.chain, /ip saddr @ban4 drop/);
  assert.ok(!r.afterExpiry.includes('192.0.2.12'), 'a 2 s ban expires in the kernel');
  assert.ok(r.afterExpiry.includes('192.0.2.10'));
  assert.deepEqual(r.reconcile, { added: 1, removed: 1 });
  assert.ok(r.afterReconcile.includes('192.0.2.10') && !r.afterReconcile.includes('192.0.2.99'));
  assert.deepEqual(r.afterRestart, ['192.0.2.1', '192.0.2.10', '192.0.2.11', '198.51.100.0/24', '2001:db8:1::/48', '2001:db8::1', '2001:db8::10']);
  assert.equal(r.bulk.applies, 1, '10k bans in one transaction');
  assert.equal(r.bulk.count, 10_007);
  assert.ok(r.refreshedTimeout! >= 880 && r.refreshedTimeout! <= 900, `timeout refreshed to ~900 s, got ${r.refreshedTimeout}`);
  assert.ok(r.unbanAbsentOk);
  assert.ok(!r.afterUnban.includes('2001:db8::10'));
  assert.deepEqual(r.overlap, ['198.51.0.0/16']);
  assert.ok(r.healthy);
  assert.match(r.scoped, /meta l4proto \{ tcp, udp \} th dport \{ 5038, 5060, 5061 \} reject/);
  assert.equal((r.scoped.match(/@ban4/g) ?? []).length, 1);
  assert.equal(r.tablesAfterFlush.trim(), '');
}

if (process.env.PBXG_SCENARIO) {
  reportScenario(() => scenario(process.env.PBXG_SCENARIO!));
} else {
  const skip = netnsSkipReason();
  test('nftables backend via the nft command (private netns)', { skip: skip ?? false }, async () => {
    check(await runInNetns<Report>(SELF, { PBXG_SCENARIO: 'command' }), 'command');
  });
  test('nftables backend via the libnftables addon (private netns, in-process)', async (t) => {
    if (skip) return t.skip(skip);
    if (!createAddonRunner()) return t.skip('build/Release/nftables.node not built (node-gyp rebuild with libnftables-dev)');
    check(await runInNetns<Report>(SELF, { PBXG_SCENARIO: 'addon' }), 'addon');
  });
}
