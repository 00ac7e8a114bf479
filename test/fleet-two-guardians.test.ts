/**
 * Two guardians and a real CrowdSec LAPI, each guardian in a network namespace of its own: the
 * scenario runs in one private namespace (guardian A, the LAPI on a veth address, the simulated
 * AMI peer on loopback) and starts guardian B in a second one, joined by a veth pair. Asserted in
 * the kernel sets of each namespace (nft), never in the host's ruleset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { banElements } from './helpers/nft-set.js';
import { createBackend, defaultFirewallConfig } from '../src/firewall/index.js';
import { buildConfig } from '../src/config/index.js';
import { startDaemon } from '../src/main.js';
import { assertPrivateNetns, netnsSkipReason, reportScenario, runInNetns, UNSHARE } from './helpers/netns.js';
import { skipReason as lapiSkipReason, startLapi } from './helpers/crowdsec-lapi.js';
import { attackBytes, sleep, startTestDaemon, waitFor } from './helpers/daemon.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const IP = '/usr/sbin/ip';
const LAPI_HOST = '10.231.0.1';
const B_HOST = '10.231.0.2';
const PORT = 18190;

/** the ban elements of one table, in this namespace or in process `pid`'s ([] while the table is not there) */
function kernelSet(table: string, pid?: number): string[] {
  try {
    return banElements(table, pid);
  } catch {
    return [];
  }
}

const ip = (...args: string[]) => execFileSync(IP, args, { stdio: 'ignore' });

/** Guardian B: a whole daemon in its own namespace, a bouncer of the LAPI; runs until killed. */
async function guardianB(): Promise<void> {
  assertPrivateNetns();
  ip('link', 'set', 'lo', 'up');
  // the veth's far end can only be moved into this namespace once this process is in it
  console.log('B-NETNS');
  for (let i = 0; i < 200; i++) {
    try {
      ip('link', 'show', 'vb');
      break;
    } catch {
      await sleep(50);
    }
  }
  ip('addr', 'add', `${B_HOST}/24`, 'dev', 'vb');
  ip('link', 'set', 'vb', 'up');
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-fleet-b-'));
  const config = buildConfig({
    stateDir: join(dir, 'state'),
    logLevel: 'warn',
    ami: { enabled: false },
    firewall: { backend: 'nftables' },
    admin: { socket: join(dir, 'admin.sock') },
    metrics: { enabled: false },
    guard: { allow: ['198.51.100.0/24'] },
    crowdsec: { url: `http://${LAPI_HOST}:${PORT}`, bouncer: { enabled: true, apiKey: process.env.PBXG_BOUNCER_KEY, interval: '500ms' } },
  });
  const d = await startDaemon({ config, adminSocket: false, logger: pino({ level: process.env.PBXG_B_LOG ?? 'warn' }, pino.destination(2)) });
  console.log('B-READY');
  // the daemon's own timers do not hold the process (the CLI's run waits for a signal the same way)
  const hold = setInterval(() => {}, 1 << 30);
  process.on('SIGTERM', () => void d.stop().finally(() => (clearInterval(hold), process.exit(0))));
}

interface Report {
  bGotAttack: boolean;
  aLocalBeforeDelete: string[];
  bAfterDelete: string[];
  aLocalAfterDelete: string[];
  aFleetAfterDelete: string[];
  bWithAllowListed: string[];
  bAfterOutage: string[];
  outageMs: number;
  propagationMs: number;
}

async function scenario(): Promise<Report> {
  assertPrivateNetns();
  ip('link', 'set', 'lo', 'up');
  // B's bouncer key (registered by the helper); A gets one of its own below: the LAPI keeps one
  // stream position per bouncer, two guardians sharing a key would each see half the deltas
  const bouncerKey = 'test-bouncer-key-12345678';
  // B first: the veth's far end goes into B's namespace, named by B's pid
  const b: ChildProcess = spawn(UNSHARE, ['-n', process.execPath, SELF], {
    env: {
      ...process.env,
      PBXG_SCENARIO: 'fleet-b',
      PBXG_BOUNCER_KEY: bouncerKey,
      PBXG_PARENT_NETNS: execFileSync('readlink', ['/proc/self/ns/net'], { encoding: 'utf8' }).trim(),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let bOut = '';
  b.stdout!.on('data', (c: Buffer) => (bOut += c.toString()));
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-fleet-a-'));
  try {
    await waitFor('B in its namespace', () => bOut.includes('B-NETNS'), 10_000);
    ip('link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb', 'netns', String(b.pid));
    ip('addr', 'add', `${LAPI_HOST}/24`, 'dev', 'va');
    ip('link', 'set', 'va', 'up');
    const lapi = await startLapi(PORT, LAPI_HOST);
    try {
      await waitFor(
        'B ready',
        () => {
          if (b.exitCode !== null) throw new Error(`guardian B exited ${b.exitCode} before it was ready: ${bOut.slice(-500)}`);
          return bOut.includes('B-READY');
        },
        30_000,
      );
      // A: the attacked guardian (machine: pushes its bans; bouncer: its own come back and are not enforced twice)
      const backend = await createBackend({ ...defaultFirewallConfig, backend: 'nftables' }, pino({ level: 'warn' }));
      const a = await startTestDaemon({
        backend,
        config: {
          crowdsec: {
            url: lapi.url,
            machine: { enabled: true, login: lapi.machine.login, password: lapi.machine.password, batchWindowMs: 20 },
            bouncer: { enabled: true, apiKey: lapi.addBouncer('pbx-a'), interval: '500ms' },
          },
        },
      });
      try {
        await waitFor('A logged in to AMI', () => a.daemon.ami?.state === 'connected', 10_000);
        const attacker = '203.0.113.50';
        const t0 = Date.now();
        for (let i = 0; i < 5; i++) a.sim!.broadcast(attackBytes(attacker));
        await waitFor('A bans the attacker in its own set', () => kernelSet('pbx_guardian').includes(attacker), 10_000);
        const bGotAttack = await waitFor('B enforces it in its fleet set', () => kernelSet('pbx_guardian_fleet', b.pid).includes(attacker), 15_000)
          .then(() => true)
          .catch(() => false);
        const propagationMs = Date.now() - t0;
        const aLocalBeforeDelete = kernelSet('pbx_guardian');
        // cscli decisions delete ends it on B (a remote decision), never A's own ban
        lapi.cscli(['decisions', 'delete', '-i', attacker]);
        await waitFor('B drops it', () => !kernelSet('pbx_guardian_fleet', b.pid).includes(attacker), 10_000).catch(() => undefined);
        const bAfterDelete = kernelSet('pbx_guardian_fleet', b.pid);
        await sleep(1500);
        const aLocalAfterDelete = kernelSet('pbx_guardian');
        const aFleetAfterDelete = kernelSet('pbx_guardian_fleet');
        // an address B allow-lists, decided remotely, and one it does not, decided after it
        lapi.cscli(['decisions', 'add', '-i', '198.51.100.7', '-d', '2h']);
        lapi.cscli(['decisions', 'add', '-i', '203.0.113.60', '-d', '2h']);
        await waitFor('B enforces 203.0.113.60', () => kernelSet('pbx_guardian_fleet', b.pid).includes('203.0.113.60'), 10_000).catch(() => undefined);
        const bWithAllowListed = kernelSet('pbx_guardian_fleet', b.pid);
        // the LAPI down for a minute: A's bans wait in its durable queue, nothing is lost
        await lapi.stop();
        const down = Date.now();
        const during = '203.0.113.70';
        for (let i = 0; i < 5; i++) a.sim!.broadcast(attackBytes(during));
        await waitFor('A bans during the outage', () => kernelSet('pbx_guardian').includes(during), 10_000);
        await sleep(Math.max(0, Number(process.env.PBXG_OUTAGE_MS ?? 60_000) - (Date.now() - down)));
        const outageMs = Date.now() - down;
        await lapi.start();
        await waitFor('B gets the ban made during the outage', () => kernelSet('pbx_guardian_fleet', b.pid).includes(during), 45_000).catch(() => undefined);
        const bAfterOutage = kernelSet('pbx_guardian_fleet', b.pid);
        return { bGotAttack, aLocalBeforeDelete, bAfterDelete, aLocalAfterDelete, aFleetAfterDelete, bWithAllowListed, bAfterOutage, outageMs, propagationMs };
      } finally {
        await a.close();
      }
    } finally {
      await lapi.close();
    }
  } finally {
    if (b.exitCode === null && b.signalCode === null) {
      const exited = new Promise((r) => b.once('exit', r));
      b.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env.PBXG_SCENARIO === 'fleet') reportScenario(scenario);
else if (process.env.PBXG_SCENARIO === 'fleet-b') void guardianB();
else {
  const skip = netnsSkipReason([NFT, IP, '/usr/bin/nsenter']) ?? lapiSkipReason();
  test(
    'two guardians, two namespaces, one real LAPI: A bans, B drops it; cscli delete ends it on B only; allow-list wins; a minute of LAPI outage loses no push',
    { skip: skip || false },
    async (t) => {
      const r = await runInNetns<Report>(SELF, { PBXG_SCENARIO: 'fleet' }, [], 240_000);
      t.diagnostic(`attack on A to the element in B's kernel set: ${r.propagationMs} ms (bench/fleet.ts measures p50/p99)`);
      t.diagnostic(`LAPI down for ${Math.round(r.outageMs / 1000)} s`);
      assert.equal(r.bGotAttack, true, "the attacker banned by A is in B's fleet set");
      assert.ok(r.aLocalBeforeDelete.includes('203.0.113.50'));
      assert.ok(!r.bAfterDelete.includes('203.0.113.50'), 'cscli decisions delete ends it on B');
      assert.ok(r.aLocalAfterDelete.includes('203.0.113.50'), "A's own ban stays in A's local set");
      assert.ok(!r.aFleetAfterDelete.includes('203.0.113.50'), "A's own ban coming back is not enforced a second time in A's fleet set");
      assert.ok(r.bWithAllowListed.includes('203.0.113.60'), 'B processed the decisions');
      assert.ok(!r.bWithAllowListed.includes('198.51.100.7'), 'an allow-listed address decided remotely is not enforced');
      assert.ok(r.outageMs >= 60_000);
      assert.ok(r.bAfterOutage.includes('203.0.113.70'), 'the ban A made while the LAPI was down reached B after it came back');
    },
  );
}
