/**
 * Issue 13, "firewall gone, status unchanged": the watchdog repairs our nftables table when
 * someone else removes or empties it, never takes our own transactions for tampering, and leaves
 * it alone while paused on purpose (pbx-guardian flush). Real kernel sets in a private network
 * namespace (this file re-runs itself under `unshare -n`). PBXG_WATCHDOG_MS=0 runs the same
 * scenarios with the watchdog off: they must fail then.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Enforcer, defaultFirewallConfig, type FirewallEntry } from '../src/firewall/index.js';
import { NftablesBackend } from '../src/firewall/nftables.js';
import { createAddonRunner } from '../src/firewall/nft-addon.js';
import { NftCommandRunner } from '../src/firewall/nft-command.js';
import { isCanary } from '../src/firewall/canary.js';
import { buildConfig } from '../src/config/index.js';
import { startDaemon, type Daemon } from '../src/main.js';
import { callDaemon } from '../src/admin/client.js';
import { assertPrivateNetns, netnsSkipReason, runInNetns, reportScenario } from './helpers/netns.js';
import { LogCapture, sleep, waitFor } from './helpers/daemon.js';
import { cli, cliOnSocket } from './helpers/cli.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const TABLE = 'pbx_guardian';
const WATCHDOG_MS = Number(process.env.PBXG_WATCHDOG_MS ?? 300);

const nft = (...args: string[]) => execFileSync(NFT, args, { encoding: 'utf8' });

/** our ban elements in the kernel (canaries left out); null when the table is absent */
function kernelTargets(): string[] | null {
  let text: string;
  try {
    text = execFileSync(NFT, ['-j', 'list', 'table', 'inet', TABLE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 * 1024 * 1024 });
  } catch {
    return null;
  }
  const out: string[] = [];
  for (const it of (JSON.parse(text) as { nftables: Array<{ set?: { name: string; elem?: unknown[] } }> }).nftables) {
    if (!it.set || !['ban4', 'ban6', 'net4', 'net6'].includes(it.set.name)) continue;
    for (const e of it.set.elem ?? []) {
      const v = (typeof e === 'object' && e && 'elem' in e ? (e as { elem: { val: unknown } }).elem.val : e) as
        string | { prefix: { addr: string; len: number } };
      const t = typeof v === 'string' ? v : `${v.prefix.addr}/${v.prefix.len}`;
      if (!isCanary(t)) out.push(t);
    }
  }
  return out.sort();
}

const entry = (target: string, ttlMs: number | null = 3_600_000): FirewallEntry => ({
  target,
  family: target.includes(':') ? 6 : 4,
  isNetwork: target.includes('/'),
  expiresAt: ttlMs === null ? null : Date.now() + ttlMs,
});

function addresses(n: number, base: number): FirewallEntry[] {
  return Array.from({ length: n }, (_, i) => entry(`10.${base}.${(i >> 8) & 255}.${i & 255}`));
}

// ------------------------------------------------------------------ enforcer scenario

interface Incident {
  what: string;
  repairs: number;
  restoredMs: number;
  complete: boolean;
}

interface EnforcerReport {
  runner: string;
  expected: number;
  repairsAfterOwnStorm: number;
  kernelAfterStorm: number;
  incidents: Incident[];
  chainRules: number;
  health: ReturnType<Enforcer['health']>;
  repairLogs: number;
}

async function enforcerScenario(mode: 'addon' | 'command'): Promise<EnforcerReport> {
  assertPrivateNetns();
  const log = new LogCapture();
  const runner = mode === 'addon' ? createAddonRunner() : new NftCommandRunner(NFT);
  if (!runner) throw new Error('the nftables addon is not built');
  const backend = new NftablesBackend(runner, { table: TABLE, verdict: 'drop', ports: [], size: 1 << 20 }, log.logger);
  const store: FirewallEntry[] = [...addresses(3000, 1), entry('2001:db8::1'), entry('2001:db8::2', null), entry('198.51.100.0/24'), entry('2001:db8:1::/48')];
  let repairs = 0;
  const cfg = { ...defaultFirewallConfig, batchWindowMs: 2, reconcileIntervalMs: 0 };
  const enf = new Enforcer(backend, () => store, cfg, log.logger, { onRepaired: () => repairs++ }, { watchdogIntervalMs: WATCHDOG_MS });
  await enf.start();
  // our own storm: 20k bans through the batcher, unbans, an allow-set update and a reconcile,
  // while the watchdog runs: none of it may look like tampering
  const storm = addresses(20_000, 2);
  store.push(...storm);
  const done = storm.map((e) => enf.ban(e));
  await enf.setAllow([{ target: '192.0.2.0/24', family: 4, isNetwork: true }]);
  await Promise.all(done);
  const gone = store.splice(100, 500);
  await Promise.all(gone.map((e) => enf.unban(e)));
  await enf.reconcile();
  await sleep(WATCHDOG_MS * 4);
  const repairsAfterOwnStorm = repairs;
  const expected = store.map((e) => e.target).sort();
  const kernelAfterStorm = kernelTargets()?.length ?? -1;

  const incidents: Incident[] = [];
  const tamper = async (what: string, act: () => void) => {
    const before = repairs;
    act();
    const t0 = Date.now();
    let complete = false;
    try {
      await waitFor(
        `the watchdog to repair after ${what}`,
        () => repairs > before && JSON.stringify(kernelTargets()) === JSON.stringify(expected),
        WATCHDOG_MS * 10 + 5000,
      );
      complete = true;
    } catch {
      /* reported */
    }
    incidents.push({ what, repairs: repairs - before, restoredMs: Date.now() - t0, complete });
  };
  await tamper('nft flush ruleset', () => nft('flush', 'ruleset'));
  await tamper('nft flush set ban4', () => nft('flush', 'set', 'inet', TABLE, 'ban4'));
  await tamper('our input chain deleted', () =>
    execFileSync(NFT, ['-f', '-'], { input: `flush chain inet ${TABLE} input\ndelete chain inet ${TABLE} input\n` }),
  );
  await tamper('nft delete table', () => nft('delete', 'table', 'inet', TABLE));
  const chain = JSON.parse(nft('-j', 'list', 'chain', 'inet', TABLE, 'input')) as { nftables: Array<{ rule?: unknown }> };
  const report = {
    runner: runner.kind,
    expected: expected.length,
    repairsAfterOwnStorm,
    kernelAfterStorm,
    incidents,
    chainRules: chain.nftables.filter((x) => x.rule).length,
    health: enf.health(),
    repairLogs: log.messages().filter((m) => m.startsWith('firewall watchdog:')).length,
  };
  await enf.stop();
  return report;
}

// ------------------------------------------------------------------ daemon scenario

interface DaemonReport {
  reload: { exit: number | null; stdout: string; stderr: string; kernel: string[] | null; repairs: number; errors: string[] };
  flush: {
    exit: number | null;
    stdout: string;
    tableAfter: string[] | null;
    tableLater: string[] | null;
    repairs: number;
    banExit: number | null;
    stored: string[];
    health: Record<string, unknown>;
  };
  resume: { exit: number | null; stdout: string; kernel: string[] | null; state: string };
  restart: { warned: boolean; kernel: string[] | null; state: string };
  noDaemon: { exit: number | null; stdout: string; tableAfter: string[] | null };
}

async function daemonScenario(): Promise<DaemonReport> {
  assertPrivateNetns();
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-watchdog-'));
  const socket = join(dir, 'admin.sock');
  const doc = (watchdogInterval: string) => ({
    stateDir: join(dir, 'state'),
    logLevel: 'silent',
    ami: { enabled: false },
    metrics: { enabled: false },
    admin: { socket },
    firewall: { backend: 'nftables', nftMode: 'addon', watchdogInterval },
  });
  const start = async (watchdogInterval: string): Promise<{ d: Daemon; log: LogCapture }> => {
    const log = new LogCapture();
    const d = await startDaemon({ config: buildConfig(doc(watchdogInterval)), logger: log.logger });
    return { d, log };
  };
  try {
    // 1. reload with the table gone; the watchdog is off here, so only the reload repairs it
    let { d, log } = await start('0');
    for (const t of ['203.0.113.1', '203.0.113.2', '2001:db8::7']) await callDaemon(socket, 'POST', '/bans', { target: t, duration: '1h' });
    nft('delete', 'table', 'inet', TABLE);
    const r = await cliOnSocket(socket, 'reload');
    // the reload answers before the allow-set update (and so the repair) has finished
    await waitFor('the reload to repair the table', () => (kernelTargets()?.length ?? 0) === 3, 5000).catch(() => undefined);
    const reload = {
      exit: r.status,
      stdout: r.stdout,
      stderr: r.stderr,
      kernel: kernelTargets(),
      repairs: (await d.metrics.firewallRepairs.get()).values[0]?.value ?? 0,
      errors: log.errors().map((e) => String(e.msg)),
    };
    await d.stop();

    // 2. flush through the running daemon, with the watchdog on
    ({ d, log } = await start(`${WATCHDOG_MS}ms`));
    await waitFor('the restore', () => (kernelTargets()?.length ?? 0) === 3);
    const f = await cliOnSocket(socket, 'flush');
    const tableAfter = kernelTargets();
    await sleep(WATCHDOG_MS * 6);
    const tableLater = kernelTargets();
    const ban = await cliOnSocket(socket, 'ban', '203.0.113.9', '--for', '1h');
    const stored = (await callDaemon<{ bans: Array<{ target: string }> }>(socket, 'GET', '/bans')).bans.map((b) => b.target).sort();
    const flush = {
      exit: f.status,
      stdout: f.stdout,
      tableAfter,
      tableLater: kernelTargets() ?? tableLater,
      repairs: d.enforcer.health().repairs,
      banExit: ban.status,
      stored,
      health: d.enforcer.health() as unknown as Record<string, unknown>,
    };
    // 3. resume
    const res = await cliOnSocket(socket, 'resume');
    const resume = { exit: res.status, stdout: res.stdout, kernel: kernelTargets(), state: d.enforcer.health().state };

    // 4. a restart while paused enforces again, and says so
    await cliOnSocket(socket, 'flush');
    await d.stop();
    ({ d, log } = await start(`${WATCHDOG_MS}ms`));
    const restart = {
      warned: log.messages().some((m) => /was paused .* a start enforces again/.test(m)),
      kernel: kernelTargets(),
      state: d.enforcer.health().state,
    };
    await d.stop();

    // 5. no daemon on the socket: flush removes the table directly, as before
    const cfgFile = join(dir, 'guardian.yaml');
    writeFileSync(cfgFile, JSON.stringify(doc('2s')));
    const n = await cli('flush', '--config', cfgFile, '--socket', join(dir, 'nobody.sock'));
    const noDaemon = { exit: n.status, stdout: n.stdout, tableAfter: kernelTargets() };
    return { reload, flush, resume, restart, noDaemon };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ tests

const scenario = process.env.PBXG_SCENARIO;
if (scenario === 'enforcer-addon' || scenario === 'enforcer-command')
  reportScenario(() => enforcerScenario(scenario === 'enforcer-addon' ? 'addon' : 'command'));
else if (scenario === 'daemon') reportScenario(() => daemonScenario());
else {
  const skip = netnsSkipReason();
  for (const mode of ['addon', 'command'] as const) {
    test(
      `watchdog (${mode}): nft flush ruleset / flush set / chain deleted / table deleted are repaired within the interval; our own storm never counts`,
      { skip: skip ?? false },
      async (t) => {
        const r = await runInNetns<EnforcerReport>(SELF, { PBXG_SCENARIO: `enforcer-${mode}`, PBXG_WATCHDOG_MS: String(WATCHDOG_MS) }, [], 180_000);
        for (const i of r.incidents) t.diagnostic(`${i.what}: ${i.repairs} repair(s), all ${r.expected} elements back after ${i.restoredMs} ms`);
        assert.equal(r.runner, mode);
        assert.equal(r.repairsAfterOwnStorm, 0, 'our own 20k-ban storm, unbans, allow update and reconcile are not tampering');
        assert.equal(r.kernelAfterStorm, r.expected);
        // the command runner checks canaries with `nft get element` only every 15th check when the
        // addon is missing; it is built here, so both runners look canaries up over netlink
        for (const i of r.incidents) {
          assert.ok(i.complete, `${i.what}: every stored ban back in the kernel`);
          assert.equal(i.repairs, 1, `${i.what}: one repair, counted once`);
        }
        assert.equal(r.chainRules, 7, 'the input chain has its 7 rules again');
        assert.equal(r.health.repairs, 4);
        assert.equal(r.health.state, 'enforcing');
        assert.equal(r.health.tablePresent, true);
        assert.equal(r.health.kernelElements, r.expected);
        assert.equal(r.repairLogs, 4, 'one log line per incident');
      },
    );
  }

  test(
    'daemon: reload with the table gone repairs it; flush pauses (stays gone, bans stored, health paused); resume restores; a restart enforces again; flush without a daemon removes the table',
    { skip: skip ?? false },
    async (t) => {
      const r = await runInNetns<DaemonReport>(SELF, { PBXG_SCENARIO: 'daemon', PBXG_WATCHDOG_MS: String(WATCHDOG_MS) }, [], 180_000);
      t.diagnostic(`reload: ${r.reload.stdout.trim()} | flush: ${r.flush.stdout.trim().split('\n')[0]} | resume: ${r.resume.stdout.trim()}`);
      assert.equal(r.reload.exit, 0, r.reload.stderr);
      assert.deepEqual(r.reload.kernel, ['2001:db8::7', '203.0.113.1', '203.0.113.2'], 'the reload re-created the table and re-filled it');
      assert.equal(r.reload.repairs, 1, 'pbx_guardian_firewall_repairs_total counted it');
      assert.deepEqual(r.reload.errors, [], 'no error on the missing set');

      assert.equal(r.flush.exit, 0);
      assert.match(r.flush.stdout, /stopped enforcing .*pbx-guardian flush at/);
      assert.equal(r.flush.tableAfter, null, 'the table is gone');
      assert.equal(r.flush.tableLater, null, 'and stays gone past several watchdog intervals');
      assert.equal(r.flush.repairs, 0);
      assert.equal(r.flush.banExit, 0, 'a ban while paused is accepted');
      assert.deepEqual(r.flush.stored, ['2001:db8::7', '203.0.113.1', '203.0.113.2', '203.0.113.9'], 'and stored');
      assert.equal(r.flush.health.state, 'paused');
      assert.match(String(r.flush.health.pausedReason), /^pbx-guardian flush at \d{4}-\d\d-\d\dT/);
      assert.equal(r.flush.health.tablePresent, false);
      assert.equal(r.flush.health.kernelElements, 0);
      assert.equal(r.flush.health.storeActive, 4);

      assert.equal(r.resume.exit, 0);
      assert.match(r.resume.stdout, /enforcing again: 4 stored bans/);
      assert.deepEqual(r.resume.kernel, ['2001:db8::7', '203.0.113.1', '203.0.113.2', '203.0.113.9']);
      assert.equal(r.resume.state, 'enforcing');

      assert.ok(r.restart.warned, 'the start after a paused stop says it enforces again');
      assert.equal(r.restart.kernel?.length, 4);
      assert.equal(r.restart.state, 'enforcing');

      assert.equal(r.noDaemon.exit, 0);
      assert.match(r.noDaemon.stdout, /no daemon answered/);
      assert.equal(r.noDaemon.tableAfter, null);
    },
  );
}
