/**
 * The watchdog on the ipset + iptables backend, against real sets and rules in a private network
 * namespace (this file re-runs itself under `unshare -n`): an emptied set, a deleted hook rule,
 * and a firewall reload that destroys our chain and sets are each repaired within the interval.
 * PBXG_WATCHDOG_MS=0 runs it with the watchdog off: it must fail then.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Enforcer, defaultFirewallConfig, type FirewallEntry } from '../src/firewall/index.js';
import { IpsetBackend } from '../src/firewall/ipset.js';
import { isCanary } from '../src/firewall/canary.js';
import { assertPrivateNetns, netnsSkipReason, runInNetns, reportScenario } from './helpers/netns.js';
import { LogCapture, sleep, waitFor } from './helpers/daemon.js';

const SELF = fileURLToPath(import.meta.url);
const IPSET = '/usr/sbin/ipset';
const IPT = '/usr/sbin/iptables';
const IP6T = '/usr/sbin/ip6tables';
const WATCHDOG_MS = Number(process.env.PBXG_WATCHDOG_MS ?? 300);

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });

/** our ban elements (ipset save, canaries left out) */
function kernel(): string[] {
  const out: string[] = [];
  for (const line of spawnSync(IPSET, ['save'], { encoding: 'utf8' }).stdout.split('\n')) {
    const m = /^add pbxg-(?:v4|v6|net4|net6) (\S+)/.exec(line);
    if (m && !isCanary(m[1]!)) out.push(m[1]!);
  }
  return out.sort();
}

const hooked = (bin: string) => spawnSync(bin, ['-w', '5', '-C', 'INPUT', '-j', 'PBXG-INPUT']).status === 0;
const chainRules = (bin: string) =>
  spawnSync(bin, ['-w', '5', '-S', 'PBXG-INPUT'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.startsWith('-A')).length;

interface Report {
  expected: number;
  repairsAfterOwnWork: number;
  incidents: Array<{ what: string; repairs: number; ms: number; complete: boolean }>;
  rules: [number, number];
  hooked: [boolean, boolean];
  health: ReturnType<Enforcer['health']>;
  repairsDuringOwnSetups: number;
}

async function scenario(): Promise<Report> {
  assertPrivateNetns();
  const log = new LogCapture();
  const backend = new IpsetBackend({ prefix: 'pbxg', maxElem: 65536, verdict: 'drop', ports: [] }, log.logger);
  const e = (target: string): FirewallEntry => ({
    target,
    family: target.includes(':') ? 6 : 4,
    isNetwork: target.includes('/'),
    expiresAt: Date.now() + 3_600_000,
  });
  const store: FirewallEntry[] = [
    ...Array.from({ length: 500 }, (_, i) => e(`10.9.${i >> 8}.${i & 255}`)),
    e('2001:db8::5'),
    e('198.51.100.0/24'),
    e('2001:db8:2::/48'),
  ];
  let repairs = 0;
  const enf = new Enforcer(
    backend,
    () => store,
    { ...defaultFirewallConfig, batchWindowMs: 2, reconcileIntervalMs: 0 },
    log.logger,
    { onRepaired: () => repairs++ },
    { watchdogIntervalMs: WATCHDOG_MS },
  );
  await enf.start();
  const more = Array.from({ length: 300 }, (_, i) => e(`10.8.${i >> 8}.${i & 255}`));
  store.push(...more);
  await Promise.all(more.map((x) => enf.ban(x)));
  await enf.setAllow([{ target: '192.0.2.0/24', family: 4, isNetwork: true }]);
  await enf.reconcile();
  await sleep(WATCHDOG_MS * 4);
  const repairsAfterOwnWork = repairs;
  const expected = store.map((x) => x.target).sort();
  const incidents: Report['incidents'] = [];
  const tamper = async (what: string, act: () => void) => {
    const before = repairs;
    act();
    const t0 = Date.now();
    let complete = false;
    try {
      await waitFor(
        what,
        () => repairs > before && JSON.stringify(kernel()) === JSON.stringify(expected) && hooked(IPT) && hooked(IP6T),
        WATCHDOG_MS * 10 + 5000,
      );
      complete = true;
    } catch {
      /* reported */
    }
    incidents.push({ what, repairs: repairs - before, ms: Date.now() - t0, complete });
  };
  await tamper('ipset flush pbxg-v4', () => sh(IPSET, 'flush', 'pbxg-v4'));
  await tamper('iptables -D INPUT -j PBXG-INPUT', () => sh(IPT, '-w', '5', '-D', 'INPUT', '-j', 'PBXG-INPUT'));
  await tamper('a ban rule deleted from PBXG-INPUT', () => sh(IP6T, '-w', '5', '-D', 'PBXG-INPUT', '2'));
  await tamper('firewall reload: chains flushed and deleted, ipset destroy', () => {
    for (const bin of [IPT, IP6T]) {
      sh(bin, '-w', '5', '-D', 'INPUT', '-j', 'PBXG-INPUT');
      sh(bin, '-w', '5', '-F', 'PBXG-INPUT');
      sh(bin, '-w', '5', '-X', 'PBXG-INPUT');
    }
    sh(IPSET, 'destroy');
  });
  const report: Report = {
    expected: expected.length,
    repairsAfterOwnWork,
    incidents,
    rules: [chainRules(IPT), chainRules(IP6T)],
    hooked: [hooked(IPT), hooked(IP6T)],
    health: enf.health(),
    repairsDuringOwnSetups: -1,
  };
  await enf.stop();
  // our own setup is several ipset / iptables commands (flush the chain, add each rule): a check
  // every 10 ms during three pause / resume cycles must never see it half done
  let own = 0;
  const fast = new Enforcer(
    backend,
    () => store,
    { ...defaultFirewallConfig, batchWindowMs: 2, reconcileIntervalMs: 0 },
    log.logger,
    { onRepaired: () => own++ },
    { watchdogIntervalMs: 10 },
  );
  await fast.start();
  for (let i = 0; i < 3; i++) {
    await fast.pause('test');
    await fast.resume();
  }
  await sleep(100);
  report.repairsDuringOwnSetups = own;
  await fast.stop();
  return report;
}

if (process.env.PBXG_SCENARIO === 'ipset-watchdog') reportScenario(() => scenario());
else {
  const skip = netnsSkipReason([IPSET, IPT, IP6T]);
  test(
    'watchdog (ipset): an emptied set, a deleted hook or ban rule, a destroyed chain and sets are repaired; our own changes never count',
    { skip: skip ?? false },
    async (t) => {
      const r = await runInNetns<Report>(SELF, { PBXG_SCENARIO: 'ipset-watchdog', PBXG_WATCHDOG_MS: String(WATCHDOG_MS) }, [], 180_000);
      for (const i of r.incidents) t.diagnostic(`${i.what}: ${i.repairs} repair(s), all ${r.expected} elements and both hooks back after ${i.ms} ms`);
      assert.equal(r.repairsAfterOwnWork, 0);
      for (const i of r.incidents) {
        assert.ok(i.complete, `${i.what}: every stored ban and both INPUT hooks back`);
        assert.equal(i.repairs, 1, `${i.what}: one repair`);
      }
      assert.deepEqual(r.rules, [3, 3], 'allow, single and network rules in both families');
      assert.deepEqual(r.hooked, [true, true]);
      assert.equal(r.health.repairs, 4);
      assert.equal(r.health.kernelElements, r.expected, 'counted from ipset list -t');
      assert.equal(r.health.tablePresent, true);
      assert.equal(r.repairsDuringOwnSetups, 0, 'the check never runs in the middle of our own setup (it holds the enforcer lock)');
    },
  );
}
