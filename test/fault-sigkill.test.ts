/**
 * Fault: SIGKILL of the daemon while it bans a burst. After a restart on the same state directory,
 * restore + reconcile must leave the kernel sets equal to the store's active bans.
 *
 * Layout (root + nft): the test runs this file under `unshare -n` as a supervisor (private network
 * namespace); the supervisor starts the real daemon (startDaemon, nftables backend via the nft
 * command) as a child in that namespace, kills it with SIGKILL in the middle of the burst, starts
 * a second daemon on the same state dir, and compares `nft list` with the SQLite store.
 */
import { banElements } from './helpers/nft-set.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pino from 'pino';
import { AmiFrame } from '../src/ami/index.js';
import { buildConfig } from '../src/config/index.js';
import { startDaemon } from '../src/main.js';
import { loadTemplate, retarget } from '../src/demo/attack.js';
import { fixturePath } from './helpers/fixtures.js';
import { assertPrivateNetns, netnsSkipReason, runInNetns } from './helpers/netns.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const TABLE = 'pbx_guardian';
const BURST = 3000;
const KILL_AFTER = 600;

function config(stateDir: string) {
  return buildConfig({
    stateDir,
    logLevel: 'silent',
    ami: { enabled: false },
    firewall: { backend: 'nftables', nftMode: 'command', table: TABLE, reconcileIntervalMs: 0 },
    metrics: { enabled: false },
    guard: { recidive: { enabled: false } },
  });
}

const addr = (i: number) => `198.18.${(i >> 8) & 255}.${i & 255}`;

/** Daemon child: start, then ban a burst through the guardian's hot path, reporting progress. */
async function daemonBurst(stateDir: string): Promise<void> {
  assertPrivateNetns();
  const d = await startDaemon({ config: config(stateDir), logger: pino({ level: 'silent' }), adminSocket: false });
  const template = loadTemplate(fixturePath('ami'), 'security-sip-register-wrong-password.raw');
  process.stdout.write('READY\n');
  for (let i = 0; i < BURST; i += 25) {
    for (let j = i; j < i + 25; j++) {
      const frames = template.map((f) => new AmiFrame(retarget(f, addr(j))));
      for (let k = 0; k < 5; k++) for (const f of frames) d.guardian.handleEvent(f);
    }
    process.stdout.write(`BANNED ${d.guardian.listBans().length}\n`);
    await new Promise((r) => setTimeout(r, 1)); // let the enforcer apply batches meanwhile
  }
  process.stdout.write('BURST-DONE\n');
  await new Promise((r) => setTimeout(r, 60_000)); // bounded: the supervisor kills us long before
}

/** Second daemon: restore (in startDaemon), then one reconcile; prints the store's view. */
async function daemonRestore(stateDir: string): Promise<void> {
  assertPrivateNetns();
  const d = await startDaemon({ config: config(stateDir), logger: pino({ level: 'silent' }), adminSocket: false });
  const afterRestore = kernel();
  const rec = await d.enforcer.reconcile();
  const store = d.store
    .activeBans(Date.now())
    .map((b) => b.target)
    .sort();
  await d.stop();
  console.log(JSON.stringify({ afterRestore, reconcile: rec, store, healthy: true }));
}

const kernel = (): string[] => banElements(TABLE);

function storeActive(stateDir: string): string[] {
  const db = new Database(join(stateDir, 'guardian.sqlite'), { readonly: true });
  try {
    const rows = db.prepare('SELECT target FROM bans WHERE expires_at IS NULL OR expires_at > ?').all(Date.now()) as Array<{ target: string }>;
    return rows.map((r) => r.target).sort();
  } finally {
    db.close();
  }
}

interface Report {
  killedAt: number;
  storeAtKill: number;
  kernelAtKill: number;
  storeNotInKernelAtKill: number;
  kernelNotInStoreAtKill: number;
  rogue: string;
  afterRestore: string[];
  reconcile: { added: number; removed: number };
  storeAfter: string[];
  kernelFinal: string[];
  signal: string | null;
}

/** Supervisor (in the private netns): burst, SIGKILL, restart, compare. */
async function supervisor(): Promise<Report> {
  assertPrivateNetns();
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-kill-'));
  const stateDir = join(dir, 'state');
  try {
    const child = spawn(process.execPath, [SELF], {
      env: { ...process.env, PBXG_SCENARIO: 'daemon-burst', PBXG_STATE: stateDir },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let killedAt = -1;
    let buf = '';
    const exited = new Promise<string | null>((resolve) => child.on('exit', (_c, sig) => resolve(sig)));
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (b: Buffer) => {
      buf += b.toString();
      const m = /BANNED (\d+)\n/g;
      let x: RegExpExecArray | null;
      while ((x = m.exec(buf))) {
        const n = Number(x[1]);
        if (killedAt < 0 && n >= KILL_AFTER) {
          killedAt = n;
          child.kill('SIGKILL'); // in the middle of the burst, with batches in flight
        }
      }
      buf = buf.slice(buf.lastIndexOf('\n') + 1);
    });
    const signal = await exited;
    clearTimeout(guard);
    const storeAtKill = storeActive(stateDir);
    const kernelAtKill = kernel();
    const ks = new Set(kernelAtKill);
    const ss = new Set(storeAtKill);
    // an element the store does not know (e.g. left by an older state file): reconcile removes it
    const rogue = '192.0.2.254';
    execFileSync(NFT, ['add', 'element', 'inet', TABLE, 'ban4', `{ ${rogue} timeout 1h }`]);

    const second = spawn(process.execPath, [SELF], {
      env: { ...process.env, PBXG_SCENARIO: 'daemon-restore', PBXG_STATE: stateDir },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    second.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const guard2 = setTimeout(() => second.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => second.on('exit', (c) => resolve(c)));
    clearTimeout(guard2);
    if (code !== 0) throw new Error(`restarted daemon exited ${code}: ${out}`);
    const r2 = JSON.parse(out.trim().split('\n').pop()!) as { afterRestore: string[]; reconcile: { added: number; removed: number }; store: string[] };
    return {
      killedAt,
      storeAtKill: storeAtKill.length,
      kernelAtKill: kernelAtKill.length,
      storeNotInKernelAtKill: storeAtKill.filter((t) => !ks.has(t)).length,
      kernelNotInStoreAtKill: kernelAtKill.filter((t) => !ss.has(t)).length,
      rogue,
      afterRestore: r2.afterRestore,
      reconcile: r2.reconcile,
      storeAfter: r2.store,
      kernelFinal: kernel(),
      signal,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const scenario = process.env.PBXG_SCENARIO;
if (scenario === 'daemon-burst') {
  daemonBurst(process.env.PBXG_STATE!).then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
} else if (scenario === 'daemon-restore') {
  daemonRestore(process.env.PBXG_STATE!).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else if (scenario === 'kill-supervisor') {
  supervisor().then(
    (r) => console.log(JSON.stringify(r)),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
} else {
  const skip = netnsSkipReason();
  test(
    'SIGKILL during a ban burst: after restart, restore + reconcile make the kernel sets equal the store (nftables, private netns)',
    { skip: skip ?? false },
    async (t) => {
      const r = await runInNetns<Report>(SELF, { PBXG_SCENARIO: 'kill-supervisor' }, [], 80_000);
      t.diagnostic(
        `killed (${r.signal}) after ${r.killedAt} bans; at kill: store ${r.storeAtKill} active, kernel ${r.kernelAtKill} elements (${r.storeNotInKernelAtKill} stored but not yet in the kernel, ${r.kernelNotInStoreAtKill} in the kernel but not stored)`,
      );
      t.diagnostic(
        `after restore: kernel ${r.afterRestore.length}; reconcile ${JSON.stringify(r.reconcile)}; final kernel ${r.kernelFinal.length}, store ${r.storeAfter.length}`,
      );
      assert.equal(r.signal, 'SIGKILL');
      assert.ok(r.killedAt >= KILL_AFTER && r.storeAtKill < BURST, 'killed in the middle of the burst');
      assert.equal(r.kernelNotInStoreAtKill, 0, 'the store is written before the kernel: nothing in the kernel is unknown to the store');
      assert.ok(r.afterRestore.length >= r.storeAfter.length, 'restore re-added what the kill left out');
      for (const target of r.storeAfter) assert.ok(r.afterRestore.includes(target), `${target} restored`);
      assert.deepEqual(r.reconcile, { added: 0, removed: 1 }, 'reconcile removes only the element unknown to the store');
      assert.ok(!r.kernelFinal.includes(r.rogue));
      assert.deepEqual(r.kernelFinal, r.storeAfter, 'kernel sets == store active bans');
      // The store is written once per event-loop turn, before the enforcer's batch timer can fire:
      // bans decided in the turn the kill lands in may be lost, and then never reached the kernel
      // either (asserted above); the attacker is simply detected again. At most two turns' worth.
      assert.ok(r.storeAfter.length >= r.killedAt - 50, `store ${r.storeAfter.length} vs ${r.killedAt} decided before the kill`);
    },
  );
}
