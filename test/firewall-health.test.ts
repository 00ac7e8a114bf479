/** Enforcer.health() through the states, pause / resume on the memory backend, and the config key. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Enforcer, MemoryBackend, defaultFirewallConfig, type FirewallEntry, type Inspection } from '../src/firewall/index.js';
import { buildConfig, ConfigError } from '../src/config/index.js';

const log = pino({ level: 'silent' });
const cfg = { ...defaultFirewallConfig, batchWindowMs: 1, reconcileIntervalMs: 0 };
const entry = (target: string): FirewallEntry => ({ target, family: 4, isNetwork: false, expiresAt: Date.now() + 3_600_000 });

test('health: starting → enforcing → paused (nothing applied, bans still accepted) → enforcing with the stored bans → stopped; memory is a dry run', async () => {
  const be = new MemoryBackend();
  const store = [entry('192.0.2.1'), entry('192.0.2.2')];
  const enf = new Enforcer(be, () => store, cfg, log);
  assert.equal(enf.health().state, 'starting');
  await enf.start();
  let h = enf.health();
  assert.equal(h.state, 'enforcing');
  assert.equal(h.dryRun, true);
  assert.equal(h.backend, 'memory');
  assert.equal(h.tablePresent, null, 'nothing to watch in memory');
  assert.equal(h.kernelElements, 2);
  assert.equal(h.storeActive, 2);
  assert.ok(h.lastSuccessAt !== null);

  await enf.pause('pbx-guardian flush at 2026-12-02T13:05:00Z');
  assert.deepEqual(await be.list(), [], 'flushed');
  store.push(entry('192.0.2.3'));
  await enf.ban(store[2]!); // resolves: stored by the guard, not applied
  assert.deepEqual(await be.list(), [], 'nothing reaches the backend while paused');
  h = enf.health();
  assert.equal(h.state, 'paused');
  assert.equal(h.pausedReason, 'pbx-guardian flush at 2026-12-02T13:05:00Z');
  assert.equal(h.tablePresent, false);
  assert.equal(h.kernelElements, 0);
  assert.equal(h.storeActive, 3);
  assert.equal(h.queued, 0);
  assert.deepEqual(await enf.reconcile(), { added: 0, removed: 0 }, 'reconcile does not re-fill a paused firewall');
  assert.deepEqual(await be.list(), []);

  assert.deepEqual(await enf.resume(), { resumed: true, restored: 3 });
  assert.deepEqual((await be.list()).map((e) => e.target).sort(), ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  assert.deepEqual(await enf.resume(), { resumed: false, restored: 0 });
  h = enf.health();
  assert.equal(h.state, 'enforcing');
  assert.equal(h.pausedReason, null);
  assert.equal(h.kernelElements, 3);
  await enf.stop();
  assert.equal(enf.health().state, 'stopped');
});

test('health: failing with the last error; a watchdog check that finds the table gone repairs and counts it', async () => {
  class Watched extends MemoryBackend {
    gone = false;
    fail = false;
    override async setup(): Promise<void> {
      if (this.fail) throw new Error('nft: Operation not permitted');
      this.gone = false;
    }
    async inspect(): Promise<Inspection> {
      return this.gone ? { tablePresent: false, problems: ['table inet pbx_guardian missing'] } : { tablePresent: true, problems: [] };
    }
  }
  const be = new Watched();
  const store = [entry('198.51.100.1')];
  const repairs: string[][] = [];
  const enf = new Enforcer(
    be,
    () => store,
    { ...cfg, retryInitialMs: 60_000 },
    log,
    { onRepaired: (r) => repairs.push(r.problems) },
    { watchdogIntervalMs: 0 },
  );
  await enf.start();
  assert.equal(await enf.checkNow(), null, 'intact: no repair');
  assert.equal(enf.health().tablePresent, true);
  be.gone = true;
  await be.flush();
  const r = await enf.checkNow();
  assert.deepEqual(r?.problems, ['table inet pbx_guardian missing']);
  assert.equal(r?.restored, 1);
  assert.deepEqual(repairs, [['table inet pbx_guardian missing']]);
  assert.equal(enf.health().repairs, 1);
  assert.equal((await be.list()).length, 1);
  be.gone = true;
  be.fail = true; // the repair itself fails: the enforcer's retry takes over
  assert.equal(await enf.checkNow(), null);
  const h = enf.health();
  assert.equal(h.state, 'failing');
  assert.match(h.lastError?.message ?? '', /Operation not permitted/);
  assert.equal(h.repairs, 1);
  await enf.stop();
});

test('config: firewall.watchdogInterval is a duration, 0 turns it off, beyond 1h is refused', () => {
  assert.equal(buildConfig({}).firewall.watchdogInterval, '2s');
  assert.equal(buildConfig({ firewall: { watchdogInterval: 0 } }).firewall.watchdogInterval, '0');
  assert.equal(buildConfig({ firewall: { watchdogInterval: '500ms' } }).firewall.watchdogInterval, '500ms');
  assert.throws(
    () => buildConfig({ firewall: { watchdogInterval: '2h' } }),
    (e: Error) => e instanceof ConfigError && /firewall\.watchdogInterval: 0 \(off\) or from 100ms to 1h/.test(e.message),
  );
  assert.throws(() => buildConfig({ firewall: { watchdogInterval: 'often' } }), /firewall\.watchdogInterval: "often" is not a duration/);
});
