/**
 * A restart with 100,000 stored bans into real nftables sets (private network namespace): the
 * store is read, the kernel set up, and while the restore runs in chunks a failure burst from a
 * new address is banned, a stored ban of the last chunk is lifted and another target of it is
 * allow-listed. The test re-runs this file under `unshare -n` (PBXG_SCENARIO set) and asserts on
 * the JSON it reports.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { assertPrivateNetns, netnsSkipReason, reportScenario, runInNetns } from './helpers/netns.js';
import { guardOptions } from './helpers/guard.js';
import { Enforcer, defaultFirewallConfig } from '../src/firewall/index.js';
import { NftablesBackend } from '../src/firewall/nftables.js';
import { NftCommandRunner } from '../src/firewall/nft-command.js';
import { createAddonRunner } from '../src/firewall/nft-addon.js';
import { Guardian, type EnforcementPort } from '../src/guard/index.js';
import { Store } from '../src/store/index.js';

const SELF = fileURLToPath(import.meta.url);
const TABLE = 'pbxg_restore';
const N = 100_000;
const LIVE = '198.51.100.7';
const addr = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

interface Report {
  runner: string;
  restoredByGuard: number;
  liveApplied: boolean;
  restoringAtLive: { done: number; total: number } | null;
  changedDuring: { done: number; total: number } | null;
  kernel: number;
  has: Record<'live' | 'unbanned' | 'allowed' | 'first', boolean>;
  allowSet: string[];
  kernelElements: number | null;
  stateAfter: string;
}

async function scenario(): Promise<Report> {
  assertPrivateNetns();
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-restore-'));
  const log = pino({ level: 'silent' });
  try {
    const file = join(dir, 'guardian.sqlite');
    const now = Date.now();
    const seed = new Store(file);
    const ins = seed.db.prepare(
      `INSERT INTO bans (target, family, is_network, created_at, expires_at, rule, source, reason, count) VALUES (?, 4, 0, ?, ?, 'sip-auth', 'rule', 'stored', 5)`,
    );
    seed.db.transaction(() => {
      for (let i = 0; i < N; i++) ins.run(addr(i), now - 1000, now + 3_600_000);
    })();
    seed.close();

    const addon = createAddonRunner();
    const runner = addon ?? new NftCommandRunner('/usr/sbin/nft');
    const backend = new NftablesBackend(runner, { table: TABLE, verdict: 'drop', ports: [], size: 262_144 }, log);
    let g: Guardian | null = null;
    const en = new Enforcer(backend, () => g?.activeEntries() ?? [], { ...defaultFirewallConfig, table: TABLE, reconcileIntervalMs: 0 }, log);
    let restoringAtLive: Report['restoringAtLive'] = null;
    let liveApplied = false;
    const port: EnforcementPort = {
      ban: (e) => {
        const applied = en.ban(e);
        if (e.target === LIVE)
          void applied.then(() => {
            liveApplied = true;
            restoringAtLive = en.health().restoring ?? null;
          });
        return applied;
      },
      unban: (t) => en.unban(t),
      setAllow: (t) => en.setAllow(t),
    };
    const store = new Store(file);
    const gd = (g = new Guardian(guardOptions({ allow: ['192.0.2.0/24'] }), store, port, log));
    const restoredByGuard = gd.restore().length;
    await en.begin(gd.allowTargets());
    // detection is live now (main.ts starts the AMI client and sources here)
    for (let i = 0; i < 10; i++) gd.observeExternal('HttpAuthFailure', LIVE, 'rest');
    const unbanned = addr(N - 1);
    const allowed = addr(N - 2);
    await gd.unbanTarget(unbanned);
    await gd.setAllowSource('hosts', [allowed]);
    const changedDuring = en.health().restoring ?? null;
    await en.restored();
    // a dump of a large hash set just filled can leave some elements out (drift.ts,
    // confirmedDrift; seen here: a first listing of 84,796-96,862, the next ones 99,999): what
    // any of three listings holds is in the kernel
    const inKernel = new Set<string>();
    for (let i = 0; i < 3; i++) {
      for (const e of await backend.list()) inKernel.add(e.target);
      await new Promise((res) => setTimeout(res, 200));
    }
    const report: Report = {
      runner: addon ? 'addon' : 'command',
      restoredByGuard,
      liveApplied,
      restoringAtLive,
      changedDuring,
      kernel: inKernel.size,
      has: { live: inKernel.has(LIVE), unbanned: inKernel.has(unbanned), allowed: inKernel.has(allowed), first: inKernel.has(addr(0)) },
      allowSet: await backend.listAllow(),
      kernelElements: en.health().kernelElements,
      stateAfter: en.health().state,
    };
    await backend.flush();
    await en.stop();
    store.close();
    return report;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env.PBXG_SCENARIO) {
  reportScenario(scenario);
} else {
  const skip = netnsSkipReason();
  test(
    'restart with 100k stored bans into nftables: a live ban, an unban and an allow entry during the chunked restore (private netns)',
    { skip: skip ?? false },
    async () => {
      const r = await runInNetns<Report>(SELF, { PBXG_SCENARIO: 'restore' });
      assert.equal(r.restoredByGuard, N);
      assert.ok(r.liveApplied, 'the live ban was applied');
      assert.ok(
        r.restoringAtLive !== null && r.restoringAtLive.done < r.restoringAtLive.total,
        `the restore still ran when the live ban was in: ${JSON.stringify(r.restoringAtLive)}`,
      );
      assert.ok(
        r.changedDuring !== null && r.changedDuring.done < N - 2,
        `the unban and the allow entry came before their chunk: ${JSON.stringify(r.changedDuring)}`,
      );
      assert.deepEqual(r.has, { live: true, unbanned: false, allowed: false, first: true }, r.runner);
      assert.equal(r.kernel, N - 2 + 1);
      assert.ok(r.allowSet.includes(addr(N - 2)) && r.allowSet.includes('192.0.2.0/24'), r.allowSet.join(' '));
      assert.equal(r.kernelElements, N - 2);
      assert.equal(r.stateAfter, 'enforcing');
    },
  );
}
