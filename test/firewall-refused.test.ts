/**
 * Issue 12, finding 4, against real kernel sets in a private network namespace (the test re-runs
 * this file under `unshare -n` with PBXG_SCENARIO set, for the nft addon, the nft command and
 * ipset): a ban longer than the kernel's element timeout limit goes in capped; an element the
 * kernel refuses never keeps the rest of its batch, or of a restore after a restart, out.
 */
import { isCanary } from '../src/firewall/canary.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { assertPrivateNetns, netnsSkipReason, runInNetns, reportScenario } from './helpers/netns.js';
import { entryFactory } from './helpers/entries.js';
import { buildConfig } from '../src/config/index.js';
import { Enforcer, defaultFirewallConfig, type FirewallBackend, type FirewallEntry } from '../src/firewall/index.js';
import { NftablesBackend } from '../src/firewall/nftables.js';
import { NftCommandRunner } from '../src/firewall/nft-command.js';
import { createAddonRunner } from '../src/firewall/nft-addon.js';
import { IpsetBackend } from '../src/firewall/ipset.js';
import { startDaemon } from '../src/main.js';
import { Store } from '../src/store/index.js';
import type { BanRecord } from '../src/guard/index.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const IPSET = '/usr/sbin/ipset';
const TABLE = 'pbx_guardian';
const YEARS_1000 = 1000 * 365 * 86400_000;
const log = pino({ level: 'silent' });
const cfg = { ...defaultFirewallConfig, batchWindowMs: 5, retryInitialMs: 20, retryMaxMs: 100, reconcileIntervalMs: 0 };

type Kind = 'addon' | 'command' | 'ipset';

interface Report {
  /** kernel elements (address or CIDR) with their timeout in seconds (null: none) */
  capped: Record<string, number | null>;
  batch: { kernel: string[]; refused: string[]; rejected: string[]; healthy: boolean };
  restart: { kernel: string[]; refusedMetric: string; healthy: boolean };
  restartCapped: Record<string, number | null>;
}

/** The kernel's own view: nft -j list / ipset save, not our parser. */
function kernel(kind: Kind): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  if (kind === 'ipset') {
    for (const line of execFileSync(IPSET, ['save'], { encoding: 'utf8' }).split('\n')) {
      const m = /^add pbxg-(?:v4|v6|net4|net6) (\S+)(?: timeout (\d+))?/.exec(line);
      if (m && !isCanary(m[1]!)) out[m[1]!] = m[2] ? Number(m[2]) || null : null;
    }
    return out;
  }
  for (const item of JSON.parse(execFileSync(NFT, ['-j', 'list', 'table', 'inet', TABLE], { encoding: 'utf8' })).nftables) {
    if (!item.set || !['ban4', 'ban6', 'net4', 'net6'].includes(item.set.name)) continue;
    for (const e of item.set.elem ?? []) {
      const v = e.elem ? e.elem.val : e;
      const t = typeof v === 'string' ? v : `${v.prefix.addr}/${v.prefix.len}`;
      if (!isCanary(t)) out[t] = e.elem?.timeout ?? null;
    }
  }
  return out;
}

/** A backend whose kernel refuses `bad`: nft without the timeout cap (the code before the fix
 *  sent every timeout as is), ipset with a /0 network (hash:net cannot hold one). */
function backendFor(kind: Kind, capped: boolean, maxElem = 1000): FirewallBackend {
  if (kind === 'ipset') return new IpsetBackend({ prefix: 'pbxg', maxElem, verdict: 'drop', ports: [] }, log);
  const runner = kind === 'addon' ? createAddonRunner(log) : new NftCommandRunner(NFT);
  if (!runner) throw new Error('nftables addon not built');
  return new NftablesBackend(
    runner,
    { table: TABLE, verdict: 'drop', ports: [], size: maxElem, ...(capped ? {} : { maxTimeoutMs: Number.MAX_SAFE_INTEGER }) },
    log,
  );
}

/** Stops the enforcer, then removes our table / sets through a fresh backend (the stop closed
 *  the first one's runner). */
async function cleanup(kind: Kind, enf: Enforcer): Promise<void> {
  await enf.stop();
  const be = backendFor(kind, true);
  await be.flush();
  await be.close();
}

const race = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms).unref())]);

async function scenario(kind: Kind): Promise<Report> {
  assertPrivateNetns();
  const now = Date.now();
  const e = entryFactory(now);

  // 1. a 1000-year ban (the store of the finding) and others: all go in, the long one capped
  let be = backendFor(kind, true);
  let active: FirewallEntry[] = [e('192.0.2.1', 600_000), e('192.0.2.2', YEARS_1000), e('198.51.100.0/24', YEARS_1000), e('2001:db8::1', 600_000)];
  let enf = new Enforcer(be, () => active, cfg, log);
  await enf.start();
  const capped = kernel(kind);
  await cleanup(kind, enf);

  // 2. one live batch holding an element the kernel refuses, and others
  be = backendFor(kind, false);
  active = [];
  const refused: string[] = [];
  enf = new Enforcer(be, () => active, cfg, log, { onRefused: (r) => refused.push(r.target) });
  await enf.start();
  const bad = kind === 'ipset' ? e('0.0.0.0/0', 600_000) : e('192.0.2.66', YEARS_1000);
  const batch = [e('192.0.2.10', 600_000), bad, e('192.0.2.11', 600_000), e('198.51.100.0/24', 600_000), e('2001:db8::10', 600_000)];
  active.push(...batch);
  const results = await race(Promise.allSettled(batch.map((x) => enf.ban(x))), 5000);
  const rejected = results === 'pending' ? ['pending'] : batch.filter((_, i) => results[i]!.status === 'rejected').map((x) => x.target);
  const batchReport = { kernel: Object.keys(kernel(kind)).sort(), refused, rejected, healthy: enf.healthy };
  await cleanup(kind, enf);

  // 3. a restart with such a row in the store: every other row is restored
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-refused-'));
  const row = (target: string, ms: number): BanRecord => ({
    target,
    family: target.includes(':') ? 6 : 4,
    isNetwork: target.includes('/'),
    createdAt: now,
    expiresAt: now + ms,
    rule: 'manual',
    source: 'manual',
    reason: 'test',
    count: 0,
  });
  const store = Store.open(join(dir, 'state'));
  // ipset: 6 single IPv4 bans into a set of 5 (the kernel refuses the one that does not fit)
  const rows =
    kind === 'ipset'
      ? ['192.0.2.20', '192.0.2.21', '192.0.2.22', '192.0.2.23', '192.0.2.24', '192.0.2.25'].map((t) => row(t, 600_000))
      : [row('192.0.2.20', 600_000), row('192.0.2.21', YEARS_1000), row('198.51.100.0/24', 600_000), row('2001:db8::20', 600_000)];
  for (const r of rows) store.saveBan(r);
  store.close();
  const config = buildConfig({
    stateDir: join(dir, 'state'),
    logLevel: 'silent',
    ami: { enabled: false },
    metrics: { enabled: false },
    firewall: { reconcileIntervalMs: 0 },
  });
  const restartBackend = backendFor(kind, false, 6); // room for 5 bans and the watchdog's canary element
  const daemon = await startDaemon({ config, backend: restartBackend, logger: log, adminSocket: false, hostAddresses: { addresses: () => [] } });
  const restart = {
    kernel: Object.keys(kernel(kind)).sort(),
    refusedMetric: (await daemon.metrics.registry.metrics())
      .split('\n')
      .filter((l) => l.startsWith('pbx_guardian_firewall_refused_total'))
      .join(' '),
    healthy: daemon.enforcer.healthy,
  };
  await daemon.stop();
  await backendFor(kind, true).flush();
  // and the same store on the real (capped) backend: the long row goes in too
  let restartCapped: Record<string, number | null> = {};
  if (kind !== 'ipset') {
    const again = await startDaemon({ config, backend: backendFor(kind, true), logger: log, adminSocket: false, hostAddresses: { addresses: () => [] } });
    restartCapped = kernel(kind);
    await again.stop();
  }
  rmSync(dir, { recursive: true, force: true });
  return { capped, batch: batchReport, restart, restartCapped };
}

if (process.env.PBXG_SCENARIO) {
  reportScenario(() => scenario(process.env.PBXG_SCENARIO as Kind));
} else {
  const DAYS = 86400;
  for (const kind of ['addon', 'command', 'ipset'] as const) {
    const skip = netnsSkipReason(kind === 'ipset' ? [IPSET, '/usr/sbin/iptables', '/usr/sbin/ip6tables'] : [NFT]);
    test(
      `refused elements (${kind}, private netns): a 1000-year ban goes in capped; a refused element never keeps the rest of a batch or a restore out`,
      { skip: skip ?? false },
      async () => {
        const r = await runInNetns<Report>(SELF, { PBXG_SCENARIO: kind });
        // 1. capped at the kernel's limit (nft: ~584 years; ipset: 2147483 s), everything in
        assert.deepEqual(Object.keys(r.capped).sort(), ['192.0.2.1', '192.0.2.2', '198.51.100.0/24', '2001:db8::1']);
        const longest = kind === 'ipset' ? 2147483 : 213503 * DAYS;
        assert.ok(r.capped['192.0.2.2']! >= longest - 5 && r.capped['192.0.2.2']! <= longest + DAYS, `capped timeout ${r.capped['192.0.2.2']}`);
        assert.ok(r.capped['198.51.100.0/24']! >= longest - 5, `capped CIDR timeout ${r.capped['198.51.100.0/24']}`);
        // 2. the batch: every other element is in the kernel set; the refused one is set aside
        const bad = kind === 'ipset' ? '0.0.0.0/0' : '192.0.2.66';
        assert.deepEqual(r.batch.kernel, ['192.0.2.10', '192.0.2.11', '198.51.100.0/24', '2001:db8::10']);
        assert.deepEqual(r.batch.refused, [bad]);
        assert.deepEqual(r.batch.rejected, [bad], 'only the refused ban is reported as not applied');
        assert.ok(r.batch.healthy);
        // 3. the restart: all other rows restored; the metric counts the refused one
        if (kind === 'ipset') assert.equal(r.restart.kernel.length, 5, r.restart.kernel.join());
        else assert.deepEqual(r.restart.kernel, ['192.0.2.20', '198.51.100.0/24', '2001:db8::20']);
        assert.match(r.restart.refusedMetric, /pbx_guardian_firewall_refused_total\{op="add"\} 1/);
        assert.ok(r.restart.healthy);
        if (kind !== 'ipset') assert.deepEqual(Object.keys(r.restartCapped).sort(), ['192.0.2.20', '192.0.2.21', '198.51.100.0/24', '2001:db8::20']);
      },
    );
  }
}
