/**
 * The start's restore in chunks (Enforcer.begin): detection is live while it runs. A slow memory
 * backend (each transaction takes APPLY_MS) holds the restore long enough to act in the middle of
 * it: a live ban reaches the "kernel" before the restore ends, an unban or an allow entry for a
 * target whose chunk is not applied yet is not undone by that chunk, stop() ends it, and reconcile
 * does not run until it has ended.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Enforcer, MemoryBackend, defaultFirewallConfig, type FirewallBatch, type FirewallEntry, type FirewallTarget } from '../src/firewall/index.js';
import { RESTORE_CHUNK } from '../src/firewall/restore.js';
import { Guardian, type BanRecord } from '../src/guard/index.js';
import { MemoryBanStore } from '../src/store/memory.js';
import { guardOptions } from './helpers/guard.js';

const log = pino({ level: 'silent' });
const cfg = { ...defaultFirewallConfig, batchWindowMs: 2, reconcileIntervalMs: 0 };
const APPLY_MS = 15;
const CHUNKS = 8;
const N = CHUNKS * RESTORE_CHUNK;
const addr = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A memory backend whose transactions take APPLY_MS, logging what it was asked in order. */
class SlowBackend extends MemoryBackend {
  readonly events: string[] = [];
  lists = 0;
  private readonly present = new Set<string>();
  override async apply(batch: FirewallBatch): Promise<void> {
    this.events.push(`apply +${batch.add.length} -${batch.remove.length}`);
    await sleep(APPLY_MS);
    await super.apply(batch);
    for (const t of batch.remove) this.present.delete(t.target);
    for (const e of batch.add) this.present.add(e.target);
  }
  override async setAllow(targets: FirewallTarget[]): Promise<void> {
    this.events.push(`allow ${targets.map((t) => t.target).join(',')}`);
    await super.setAllow(targets);
  }
  override async list(): Promise<FirewallEntry[]> {
    this.lists++;
    return super.list();
  }
  has(target: string): boolean {
    return this.present.has(target);
  }
}

function storedBans(n: number, now: number): MemoryBanStore {
  const store = new MemoryBanStore();
  for (let i = 0; i < n; i++) {
    const rec: BanRecord = {
      target: addr(i),
      family: 4,
      isNetwork: false,
      createdAt: now - 1000,
      expiresAt: now + 3_600_000,
      rule: 'sip-auth',
      source: 'rule',
      reason: 'stored',
      count: 5,
    };
    store.saveBan(rec);
  }
  return store;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

function daemonParts(config = cfg, n = N) {
  const backend = new SlowBackend();
  let g: Guardian | null = null;
  const en = new Enforcer(backend, () => g?.activeEntries() ?? [], config, log);
  const store = storedBans(n, Date.now());
  const guard = (g = new Guardian(guardOptions({ allow: ['192.0.2.0/24'] }), store, en, log));
  return { backend, en, guard, store };
}

test('restore in chunks: a live ban reaches the kernel before the restore ends; unban and allow during it stay right', async () => {
  const { backend, en, guard, store } = daemonParts();
  assert.equal(guard.restore().length, N);
  await en.begin(guard.allowTargets());
  // the allow set went in before any ban
  assert.equal(backend.events[0], 'allow 192.0.2.0/24');
  const h = en.health();
  assert.equal(h.state, 'starting');
  assert.ok(h.restoring && h.restoring.total === N && h.restoring.done < N, `restoring ${JSON.stringify(h.restoring)}`);

  // a failure burst from a new address (rules/listeners.yaml: 10 within a minute) while it runs
  for (let i = 0; i < 10; i++) guard.observeExternal('HttpAuthFailure', '198.51.100.7', 'rest');
  await until('the live ban in the kernel', () => backend.has('198.51.100.7'));
  const during = en.health().restoring;
  assert.ok(during !== null && during !== undefined && during.done < N, `the restore still runs when the live ban is in (${JSON.stringify(during)})`);

  // the last chunk's targets: one unbanned, one now allow-listed (its ban ends), one banned anew
  const unbanned = addr(N - 1);
  const allowed = addr(N - 2);
  const rebanned = addr(N - 3);
  assert.equal((await guard.unbanTarget(unbanned)).removed.length, 1);
  await guard.setAllowSource('hosts', [allowed]);
  const manual = await guard.ban({ target: rebanned, durationSec: 60, source: 'manual' });
  assert.notEqual(en.health().restoring, null, 'these came before the last chunk');

  await en.restored();
  const kernel = new Map((await backend.list()).map((e) => [e.target, e]));
  assert.equal(kernel.has(unbanned), false, 'an unban during the restore is not undone by its chunk');
  assert.equal(kernel.has(allowed), false, 'a ban that ends for an allow entry during the restore is not restored');
  assert.equal(kernel.get(rebanned)?.expiresAt, manual.expiresAt, 'a new ban during the restore keeps its own timeout');
  assert.ok(kernel.has('198.51.100.7'));
  assert.equal(kernel.size, N - 2 + 1);
  assert.ok(
    backend.allowList().some((t) => t.target === allowed),
    'the allow entry is in the kernel allow set',
  );
  assert.deepEqual(
    store.activeBans(Date.now()).filter((r) => r.target === unbanned || r.target === allowed),
    [],
  );
  const after = en.health();
  assert.equal(after.state, 'enforcing');
  assert.equal(after.restoring, null);
  assert.equal(after.kernelElements, N - 3, 'the restore counts what it put in (the three changed targets were left to their own operations)');
  await en.stop();
});

test('restore in chunks: stop() during the restore ends it (no transaction after stop)', async () => {
  const { backend, en, guard } = daemonParts();
  guard.restore();
  await en.begin(guard.allowTargets());
  await until('a first chunk', () => backend.applyCount >= 1);
  await en.stop();
  const applied = backend.applyCount;
  await en.restored();
  await sleep(3 * APPLY_MS);
  assert.equal(backend.applyCount, applied);
  assert.ok(applied < CHUNKS, `${applied} of ${CHUNKS} chunks applied`);
  assert.equal(en.health().state, 'stopped');
});

test('restore in chunks: reconcile waits for the restore to end, then finds no drift', async () => {
  const { backend, en, guard } = daemonParts({ ...cfg, reconcileIntervalMs: 5 }, 3 * RESTORE_CHUNK);
  guard.restore();
  await en.begin(guard.allowTargets());
  await sleep(2 * APPLY_MS);
  assert.notEqual(en.health().restoring, null);
  assert.equal(backend.lists, 0, 'no listing while the restore runs (the elements not yet restored are no drift)');
  await en.restored();
  assert.deepEqual(await en.reconcile(), { added: 0, removed: 0 });
  await until('the reconcile timer', () => backend.lists > 2);
  await en.stop();
});
