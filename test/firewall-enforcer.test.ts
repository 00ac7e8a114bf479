import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Enforcer, MemoryBackend, defaultFirewallConfig, type FirewallBatch, type FirewallEntry } from '../src/firewall/index.js';

const log = pino({ level: 'silent' });
const cfg = { ...defaultFirewallConfig, batchWindowMs: 5, retryInitialMs: 20, retryMaxMs: 100, reconcileIntervalMs: 0 };
const v4 = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const entry = (target: string, ttlMs: number | null = 60_000): FirewallEntry => ({
  target,
  family: target.includes(':') ? 6 : 4,
  isNetwork: target.includes('/'),
  expiresAt: ttlMs === null ? null : Date.now() + ttlMs,
});

test('enforcer: many ban() calls within the window become one apply()', async () => {
  const be = new MemoryBackend();
  const enf = new Enforcer(be, () => [], cfg, log);
  await enf.start();
  const before = be.applyCount;
  await Promise.all(Array.from({ length: 500 }, (_, i) => enf.ban(entry(v4(i)))));
  assert.equal(be.applyCount - before, 1);
  assert.equal((await be.list()).length, 500);
  await enf.stop();
});

test('enforcer: batches split at batchMaxSize; last op on a target wins', async () => {
  const be = new MemoryBackend();
  const batches: FirewallBatch[] = [];
  const orig = be.apply.bind(be);
  be.apply = async (b) => {
    batches.push(b);
    return orig(b);
  };
  const enf = new Enforcer(be, () => [], { ...cfg, batchMaxSize: 100 }, log);
  await enf.start();
  batches.length = 0;
  const p = Array.from({ length: 250 }, (_, i) => enf.ban(entry(v4(i))));
  p.push(enf.unban({ target: v4(249), family: 4, isNetwork: false }));
  await Promise.all(p);
  assert.deepEqual(
    batches.map((b) => b.add.length + b.remove.length),
    [100, 100, 50],
  );
  const listed = await be.list();
  assert.equal(listed.length, 249);
  assert.ok(!listed.some((e) => e.target === v4(249)));
  await enf.stop();
});

test('enforcer: invalid targets are refused before they reach a backend', async () => {
  const enf = new Enforcer(new MemoryBackend(), () => [], cfg, log);
  await enf.start();
  await assert.rejects(enf.ban({ target: '1.2.3.4; flush ruleset', family: 4, isNetwork: false, expiresAt: null }), /refusing firewall target/);
  await assert.rejects(enf.ban({ target: '1.2.3.0/24', family: 4, isNetwork: false, expiresAt: null }), /refusing/);
  await enf.stop();
});

test('enforcer: start restores all active entries in one apply, skipping expired', async () => {
  const be = new MemoryBackend();
  const active = [entry('192.0.2.1'), entry('2001:db8::1'), entry('198.51.100.0/24', null), { ...entry('192.0.2.9'), expiresAt: Date.now() - 1 }];
  const enf = new Enforcer(be, () => active, cfg, log);
  await enf.start();
  assert.equal(be.applyCount, 1);
  assert.deepEqual((await be.list()).map((e) => e.target).sort(), ['192.0.2.1', '198.51.100.0/24', '2001:db8::1']);
  await enf.stop();
});

test('enforcer: reconcile re-adds missing, removes unknown, re-asserts drifted timeouts', async () => {
  const be = new MemoryBackend();
  const active = [entry('192.0.2.1'), entry('192.0.2.2'), entry('192.0.2.3', 3_600_000)];
  const drift: number[][] = [];
  const enf = new Enforcer(be, () => active, cfg, log, { onDrift: (a, r) => drift.push([a, r]) });
  await enf.start();
  await be.apply({
    add: [entry('203.0.113.66'), { ...entry('192.0.2.3'), expiresAt: Date.now() + 1000 }],
    remove: [{ target: '192.0.2.2', family: 4, isNetwork: false }],
  });
  const r = await enf.reconcile();
  assert.deepEqual(r, { added: 2, removed: 1 });
  assert.deepEqual(drift, [[2, 1]]);
  const listed = await be.list();
  assert.deepEqual(listed.map((e) => e.target).sort(), ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  assert.deepEqual(await enf.reconcile(), { added: 0, removed: 0 });
  await enf.stop();
});

/** Lists like a kernel dump of a hash set being resized: once, an element shows twice and another not at all. */
class ResizingDumpBackend extends MemoryBackend {
  glitches = 1;
  listings = 0;
  override async list(): Promise<FirewallEntry[]> {
    this.listings++;
    const all = await super.list();
    if (this.glitches-- <= 0 || all.length < 2) return all;
    return [all[0]!, all[0]!, ...all.slice(2)];
  }
}

test('enforcer: reconcile repairs only what a second listing confirms (an inconsistent dump is not drift)', async () => {
  const be = new ResizingDumpBackend();
  const active = [entry('192.0.2.1'), entry('192.0.2.2'), entry('192.0.2.3')];
  const drift: number[][] = [];
  const enf = new Enforcer(be, () => active, cfg, log, { onDrift: (a, r) => drift.push([a, r]) });
  await enf.start();
  const applied = be.applyCount;
  assert.deepEqual(await enf.reconcile(), { added: 0, removed: 0 });
  assert.equal(be.listings, 2, 'the apparent drift was checked with a second listing');
  assert.equal(be.applyCount, applied, 'nothing re-applied');
  assert.deepEqual(drift, []);
  // a real loss shows in both listings and is repaired
  await be.apply({ add: [], remove: [{ target: '192.0.2.3', family: 4, isNetwork: false }] });
  be.glitches = 0;
  assert.deepEqual(await enf.reconcile(), { added: 1, removed: 0 });
  assert.ok((await be.list()).some((e) => e.target === '192.0.2.3'));
  await enf.stop();
});

/** Lists what it holds when asked, and returns it only once the test opens the gate. */
class GatedListBackend extends MemoryBackend {
  private gates: Array<() => void> = [];
  listings = 0;
  override async list(): Promise<FirewallEntry[]> {
    const held = await super.list();
    this.listings++;
    await new Promise<void>((open) => this.gates.push(open));
    return held;
  }
  held(): Promise<FirewallEntry[]> {
    return super.list();
  }
  async open(): Promise<void> {
    while (this.gates.length === 0) await new Promise((r) => setImmediate(r));
    this.gates.shift()!();
  }
}

test('enforcer: bans and unbans are applied while a reconcile lists the kernel; its repair follows the active bans as they are when it decides', async () => {
  const be = new GatedListBackend();
  const [A, B, X] = ['192.0.2.1', '192.0.2.2', '192.0.2.24'];
  let active = [entry(A), entry(B)];
  const enf = new Enforcer(be, () => active, cfg, log);
  await enf.start();
  const t = (target: string) => ({ target, family: 4 as const, isNetwork: false });
  await be.apply({ add: [entry('203.0.113.66')], remove: [t(B)] }); // drift: B lost, a stray element
  const within = (p: Promise<void>) =>
    Promise.race([p.then(() => 'applied'), new Promise((r) => setTimeout(() => r('held back by the reconcile'), 5000).unref())]);

  const r = enf.reconcile();
  assert.equal(enf.reconcile(), r, 'one reconcile at a time');
  // during the first listing: X banned, A unbanned
  active = [...active, entry(X)];
  assert.equal(await within(enf.ban(entry(X))), 'applied');
  active = active.filter((e) => e.target !== A);
  assert.equal(await within(enf.unban(t(A))), 'applied');
  await be.open(); // listed: A, the stray (B lost, X not yet) -> add B and X, remove A and the stray
  // during the second listing: A banned again, X unbanned
  active = [...active, entry(A)];
  assert.equal(await within(enf.ban(entry(A))), 'applied');
  active = active.filter((e) => e.target !== X);
  assert.equal(await within(enf.unban(t(X))), 'applied');
  await be.open();
  assert.deepEqual(await r, { added: 1, removed: 1 }, 'B re-added, the stray removed');
  assert.equal(be.listings, 2);
  assert.deepEqual((await be.held()).map((e) => e.target).sort(), [A, B], 'A banned again stays in; X unbanned stays out');
  await enf.stop();
});

test('enforcer: an unban queued after the reconcile took its snapshot, applied first, is not undone by the repair', async () => {
  const be = new MemoryBackend();
  const B = '192.0.2.2';
  // 50k bans: comparing them takes longer than the 5 ms batch window, so the unban below is
  // applied while the reconcile still compares, before its repair
  let active = [...Array.from({ length: 50_000 }, (_, i) => entry(v4(i))), entry(B)];
  let calls = 0;
  let unbanned: Promise<void> | null = null;
  const enf = new Enforcer(
    be,
    () => {
      const snapshot = active;
      if (++calls === 3) {
        // the second listing's snapshot still has B; then B is unbanned
        active = active.filter((e) => e.target !== B);
        unbanned = enf.unban({ target: B, family: 4, isNetwork: false });
      }
      return snapshot;
    },
    cfg,
    log,
  );
  await enf.start(); // call 1
  await be.apply({ add: [], remove: [{ target: B, family: 4, isNetwork: false }] }); // B lost: drift
  const r = await enf.reconcile(); // calls 2 and 3
  await unbanned;
  assert.equal(calls, 3);
  assert.ok(!(await be.list()).some((e) => e.target === B), 'B stays unbanned');
  assert.deepEqual(r, { added: 0, removed: 0 }, 'B was left to its own (newer) operation');
  await enf.stop();
});

class FlakyBackend extends MemoryBackend {
  failures: number;
  constructor(failures: number) {
    super();
    this.failures = failures;
  }
  override async setup(): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('nft: Operation not permitted');
    }
  }
  override async apply(b: FirewallBatch): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('nft: Operation not permitted');
    }
    return super.apply(b);
  }
}

test('enforcer: a backend that fails twice: start does not throw, retries, recovers, restores', async () => {
  const be = new FlakyBackend(2);
  const active = [entry('192.0.2.1')];
  const events: string[] = [];
  const enf = new Enforcer(be, () => active, cfg, log, {
    onFailure: (e, n) => events.push(`fail${n}`),
    onRecovered: () => events.push('recovered'),
  });
  await enf.start(); // must not throw
  assert.equal(enf.healthy, false);
  active.push(entry('192.0.2.2'));
  const banned = enf.ban(entry('192.0.2.2')); // queued during the outage
  await banned;
  assert.equal(enf.healthy, true);
  assert.deepEqual(events, ['fail1', 'fail2', 'recovered']);
  assert.deepEqual((await be.list()).map((e) => e.target).sort(), ['192.0.2.1', '192.0.2.2']);
  await enf.stop();
});

test('enforcer: failing apply keeps the queue bounded (oldest dropped) and recovery restores from the store', async () => {
  const be = new FlakyBackend(0);
  const active: FirewallEntry[] = [];
  const enf = new Enforcer(be, () => active, { ...cfg, retryInitialMs: 50 }, log, {}, { maxPending: 10 });
  await enf.start();
  be.failures = 3;
  const all: Promise<void>[] = [];
  for (let i = 0; i < 50; i++) {
    const e = entry(v4(i));
    active.push(e);
    all.push(enf.ban(e));
  }
  await new Promise((r) => setTimeout(r, 10));
  assert.ok(enf.queued <= 10);
  await Promise.all(all);
  assert.equal(enf.healthy, true);
  assert.equal((await be.list()).length, 50); // restore re-applied what the queue dropped
  await enf.stop();
});

test('enforcer: stop applies what is queued, then rejects new work', async () => {
  const be = new MemoryBackend();
  const enf = new Enforcer(be, () => [], { ...cfg, batchWindowMs: 10_000 }, log);
  await enf.start();
  const p = enf.ban(entry('192.0.2.77'));
  await enf.stop();
  await p;
  assert.equal((await be.list()).length, 1);
  await assert.rejects(enf.ban(entry('192.0.2.78')), /stopped/);
});
