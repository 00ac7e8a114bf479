/**
 * Fault: the firewall fails (nft binary missing, permission denied). The Enforcer must report a
 * clear error that says what to do, go unhealthy, keep queuing, retry, recover, and then every
 * queued ban must reach the backend.
 * - EPERM: a wrapper backend (memory underneath) that throws nft's real "Operation not permitted"
 *   error N times (in process, no kernel).
 * - missing binary: the real nftables backend through the nft command, with the command path
 *   pointed at a file that does not exist, then made to exist (a symlink to /usr/sbin/nft) —
 *   run in a private network namespace (this file re-runs itself under `unshare -n`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Enforcer, MemoryBackend, defaultFirewallConfig, type FirewallBackend, type FirewallBatch, type FirewallEntry } from '../src/firewall/index.js';
import { nftError } from '../src/firewall/nft-runner.js';
import { NftablesBackend } from '../src/firewall/nftables.js';
import { NftCommandRunner } from '../src/firewall/nft-command.js';
import { isCanary } from '../src/firewall/canary.js';
import { assertPrivateNetns, netnsSkipReason, runInNetns, reportScenario } from './helpers/netns.js';
import { LogCapture, waitFor } from './helpers/daemon.js';

const SELF = fileURLToPath(import.meta.url);

const entry = (target: string, ttlMs: number | null = 3600_000): FirewallEntry => ({
  target,
  family: target.includes(':') ? 6 : 4,
  isNetwork: target.includes('/'),
  expiresAt: ttlMs === null ? null : Date.now() + ttlMs,
});

/** Memory backend whose setup/apply throw nft's permission error the first `failures` times. */
class FlakyBackend implements FirewallBackend {
  readonly name = 'flaky-nft';
  readonly inner = new MemoryBackend();
  calls = 0;
  failed = 0;
  constructor(public failures: number) {}
  private maybeFail(): void {
    this.calls++;
    if (this.failed < this.failures) {
      this.failed++;
      const e = nftError(
        'command',
        'Error: Could not process rule: Operation not permitted\nadd table inet pbx_guardian\n^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^',
        1,
      ) as Error & { code?: string };
      e.code = 'EPERM';
      throw e;
    }
  }
  async setup(): Promise<void> {
    this.maybeFail();
  }
  async apply(b: FirewallBatch): Promise<void> {
    this.maybeFail();
    await this.inner.apply(b);
  }
  list() {
    return this.inner.list();
  }
  setAllow(t: Parameters<FirewallBackend['setAllow']>[0]) {
    return this.inner.setAllow(t);
  }
  flush() {
    return this.inner.flush();
  }
  close() {
    return this.inner.close();
  }
}

const cfg = { ...defaultFirewallConfig, batchWindowMs: 2, reconcileIntervalMs: 0, retryInitialMs: 50, retryMaxMs: 200 };

if (!process.env.PBXG_SCENARIO)
  test('nft permission denied N times: clear error (what to do), unhealthy, retries, recovers; every queued ban reaches the backend', async (t) => {
    const be = new FlakyBackend(0);
    const log = new LogCapture();
    const store: FirewallEntry[] = [];
    const health: string[] = [];
    const enf = new Enforcer(be, () => store, cfg, log.logger, {
      onFailure: () => health.push('fail'),
      onRecovered: () => health.push('recovered'),
    });
    await enf.start();
    assert.ok(enf.healthy);
    // permission goes away (e.g. CAP_NET_ADMIN dropped) for the next 4 attempts
    be.failures = 4;
    const targets = Array.from({ length: 50 }, (_, i) => `203.0.113.${i + 1}`).concat(['2001:db8::bad', '198.51.100.0/24']);
    const done: Array<Promise<void>> = [];
    for (const target of targets.slice(0, 20)) {
      const e = entry(target);
      store.push(e);
      done.push(enf.ban(e));
    }
    await waitFor('the enforcer to report the failure', () => !enf.healthy, 2000);
    // more bans arrive while it is failing: queued, not lost
    for (const target of targets.slice(20)) {
      const e = entry(target);
      store.push(e);
      done.push(enf.ban(e));
    }
    assert.equal(enf.healthy, false);
    const err = log.errors()[0]!;
    t.diagnostic(`first error: ${String(err.msg)}`);
    assert.match(String(err.msg), /Operation not permitted/);
    assert.match(String(err.msg), /CAP_NET_ADMIN|run it as root/, 'says what to do');
    assert.match(String(err.msg), /queued .* detection goes on; retrying in \d+ ms/, 'says what it affects and that it retries');
    const ms = await waitFor('recovery', () => enf.healthy, 5000);
    await Promise.all(done);
    t.diagnostic(`recovered after ${be.failed} failed attempts (${ms} ms); health transitions: ${health.join(' → ')}`);
    assert.equal(be.failed, 4);
    assert.deepEqual(health, ['fail', 'fail', 'fail', 'fail', 'recovered']);
    assert.ok(log.messages().includes('firewall enforcement recovered'));
    const inBackend = (await be.inner.list()).map((e) => e.target).sort();
    assert.deepEqual(inBackend, [...targets].sort(), 'every queued ban reached the backend');
    await enf.stop();
  });

// ------------------------------------------------------------------ nft binary missing (netns)

interface MissingReport {
  firstError: string;
  healthyAfterFailure: boolean;
  healthyAfterFix: boolean;
  failures: number;
  kernel: string[];
  expected: string[];
}

async function missingBinaryScenario(): Promise<MissingReport> {
  assertPrivateNetns();
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-nftbin-'));
  const nftPath = join(dir, 'nft'); // does not exist yet
  try {
    const log = new LogCapture();
    const backend = new NftablesBackend(new NftCommandRunner(nftPath), { table: 'pbx_guardian', verdict: 'drop', ports: [], size: 65536 }, log.logger);
    const store: FirewallEntry[] = [entry('192.0.2.1'), entry('2001:db8::1', null)];
    let failures = 0;
    const enf = new Enforcer(backend, () => store, { ...cfg, retryInitialMs: 100, retryMaxMs: 300 }, log.logger, { onFailure: () => failures++ });
    await enf.start(); // setup fails: binary missing
    const done: Array<Promise<void>> = [];
    for (let i = 1; i <= 30; i++) {
      const e = entry(`198.51.100.${i}`);
      store.push(e);
      done.push(enf.ban(e));
    }
    const healthyAfterFailure = enf.healthy;
    await new Promise((r) => setTimeout(r, 350)); // a few retries fail too
    symlinkSync('/usr/sbin/nft', nftPath); // the package is (re)installed
    await waitFor('recovery', () => enf.healthy, 10_000);
    await Promise.all(done);
    const out = JSON.parse(execFileSync('/usr/sbin/nft', ['-j', 'list', 'table', 'inet', 'pbx_guardian'], { encoding: 'utf8' })) as {
      nftables: Array<{ set?: { name: string; elem?: Array<string | { elem: { val: string } }> } }>;
    };
    const kernel: string[] = [];
    for (const it of out.nftables) {
      if (!it.set || !['ban4', 'ban6'].includes(it.set.name)) continue;
      for (const e of it.set.elem ?? []) kernel.push(typeof e === 'string' ? e : e.elem.val);
    }
    for (let i = kernel.length - 1; i >= 0; i--) if (isCanary(kernel[i]!)) kernel.splice(i, 1); // the watchdog's canaries
    const firstError = String(log.errors()[0]?.msg ?? '');
    const report = {
      firstError,
      healthyAfterFailure,
      healthyAfterFix: enf.healthy,
      failures,
      kernel: kernel.sort(),
      expected: store.map((e) => e.target).sort(),
    };
    await enf.stop();
    return report;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env.PBXG_SCENARIO === 'nft-missing') {
  reportScenario(() => missingBinaryScenario());
} else {
  const skip = netnsSkipReason();
  test(
    'nft binary missing (private netns): unhealthy with a clear error, retries, recovers once nft exists; kernel gets every queued ban',
    { skip: skip ?? false },
    async (t) => {
      const r = await runInNetns<MissingReport>(SELF, { PBXG_SCENARIO: 'nft-missing' }, [], 60_000);
      t.diagnostic(`first error: ${r.firstError}`);
      t.diagnostic(`${r.failures} failed attempts before recovery`);
      assert.equal(r.healthyAfterFailure, false);
      assert.ok(r.failures >= 2, 'retried');
      assert.equal(r.healthyAfterFix, true);
      assert.deepEqual(r.kernel, r.expected, 'kernel sets hold every stored/queued ban after recovery');
      assert.match(r.firstError, /ENOENT|not found|missing/i, 'says what happened');
      assert.match(r.firstError, /install|nftables package|firewall\.nftMode|PATH/i, 'says what to do (install nftables / fix the path)');
    },
  );
}
