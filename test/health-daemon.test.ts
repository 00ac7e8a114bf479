/**
 * Health through a real daemon: the AMI simulator as its Asterisk, the admin socket, the CLI as a
 * child process, and a Prometheus scrape checked by promtool.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { DeferredBackend, MemoryBackend, type FirewallBackend } from '../src/firewall/index.js';
import { startDaemon, type Daemon } from '../src/main.js';
import { AmiSimulator, type AmiSimulatorOptions } from '../src/demo/ami-simulator.js';
import type { HealthReport } from '../src/health/index.js';
import { callDaemon } from '../src/admin/client.js';
import { cliOnSocket } from './helpers/cli.js';
import { waitFor } from './helpers/daemon.js';
import { fixturePath } from './helpers/fixtures.js';

const PROMTOOL = '/usr/bin/promtool';

/** prom-client's default gauges named *_total, which promtool's lint refuses; they keep prom-client's
 *  names because stock Node.js dashboards query them */
const PROM_CLIENT_TOTAL_GAUGES = /^(# (HELP|TYPE) )?nodejs_active_(handles|requests|resources)_total\b/;

function promtoolCheck(text: string): { status: number | null; output: string } {
  const input = text
    .split('\n')
    .filter((l) => !PROM_CLIENT_TOTAL_GAUGES.test(l))
    .join('\n');
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const sample = (text: string, series: string): string | undefined =>
  text
    .split('\n')
    .find((l) => l.startsWith(series + ' '))
    ?.slice(series.length + 1);

interface Running {
  daemon: Daemon;
  sim: AmiSimulator;
  socket: string;
  close(): Promise<void>;
}

/** A daemon as `run` starts it (admin socket, metrics on an ephemeral port), on the memory backend. */
async function start(
  amiSecret: string,
  amiPort?: number,
  backend: FirewallBackend = new MemoryBackend(),
  backendName = 'memory',
  read?: string,
): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-health-'));
  const simOptions = { fixturesDir: fixturePath('ami'), username: 'guardian', secret: 's3cret', loginFailDelayMs: 10, ...(read === undefined ? {} : { read }) };
  const sim = new AmiSimulator(simOptions as AmiSimulatorOptions);
  await sim.listen();
  const config = buildConfig({
    stateDir: join(dir, 'state'),
    logLevel: 'silent',
    ami: { port: amiPort ?? sim.port, secret: amiSecret },
    firewall: { backend: backendName, retryInitialMs: 60_000 },
    admin: { socket: join(dir, 'admin.sock') },
    metrics: { host: '127.0.0.1', port: 0 },
  });
  let daemon: Daemon;
  try {
    daemon = await startDaemon({ config, backend, logger: pino({ level: 'silent' }) });
  } catch (e) {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    daemon,
    sim,
    socket: config.admin.socket,
    async close() {
      try {
        await daemon.stop();
      } finally {
        await sim.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

test(
  'healthy daemon: status prints the health block on top and exits 0; --json has health.parts; metrics say up',
  { skip: !existsSync(PROMTOOL) && 'no promtool' },
  async () => {
    const r = await start('s3cret');
    try {
      const d = r.daemon;
      await waitFor('AMI login', () => d.ami?.state === 'connected');
      // what Asterisk sends a session that may read security: its own SuccessfulAuth (real capture)
      r.sim.broadcast(readFileSync(join(fixturePath('ami'), 'login-success.raw')));
      await waitFor('every part healthy', () => d.health().healthy, 10_000);

      const status = await cliOnSocket(r.socket, 'status');
      assert.equal(status.status, 0, status.stdout + status.stderr);
      const lines = status.stdout.split('\n');
      assert.match(lines[0]!, /^Health: OK \(4 parts\)$/);
      assert.match(lines[1]!, /^ {2}OK {4}ami {7}connected to 127\.0\.0\.1:\d+ as "guardian" .*security verified/);
      assert.match(status.stdout, /OK {4}guard .*receives AMI security events/);
      assert.match(status.stdout, /OK {4}firewall +DRY RUN \(backend memory\)/, 'a dry run says so');
      assert.match(status.stdout, /OK {4}store +state in .*guardian\.sqlite/);
      assert.doesNotMatch(status.stdout, /odoo|webhooks/, 'disabled parts are left out');
      const countersAt = lines.indexOf('Status');
      assert.ok(countersAt > 4, 'the fail2ban-like counters come after the health block');
      assert.match(status.stdout, /Currently banned:\t0/);

      const json = await cliOnSocket(r.socket, 'status', '--json');
      assert.equal(json.status, 0, json.stderr);
      const parsed = JSON.parse(json.stdout) as { health: HealthReport; currentlyBanned: number; banned: unknown[] };
      assert.equal(parsed.health.healthy, true);
      assert.deepEqual(
        parsed.health.parts.map((p) => p.part),
        ['ami', 'guard', 'firewall', 'store', 'odoo', 'webhooks', 'fleet', 'feeds'],
      );
      const fw = parsed.health.parts.find((p) => p.part === 'firewall')!;
      assert.equal(fw.detail.backend, 'memory');
      assert.equal(fw.detail.dryRun, true);
      assert.equal(parsed.currentlyBanned, 0, 'the counters are still there');
      assert.ok(Array.isArray(parsed.banned));

      const metrics = await (await fetch(d.metricsUrl!)).text();
      for (const part of ['ami', 'guard', 'firewall', 'store']) assert.equal(sample(metrics, `pbx_guardian_up{part="${part}"}`), '1', part);
      assert.equal(sample(metrics, 'pbx_guardian_up{part="odoo"}'), undefined, 'disabled parts have no series');
      assert.equal(sample(metrics, 'pbx_guardian_healthy'), '1');
      assert.equal(sample(metrics, 'pbx_guardian_firewall_backend_info{backend="memory",dry_run="true"}'), '1');
      assert.equal(sample(metrics, 'pbx_guardian_ami_security_verified{username="guardian"}'), '1');
      const ts = Number(sample(metrics, 'pbx_guardian_ami_last_security_event_timestamp_seconds{username="guardian"}'));
      assert.ok(Math.abs(ts - Date.now() / 1000) < 60, `last security event timestamp ${ts}`);
      const check = promtoolCheck(metrics);
      assert.equal(check.status, 0, check.output);
    } finally {
      await r.close();
    }
  },
);

test(
  'wrong AMI secret: status exits 5 and prints the AMI problem; metrics say ami down; promtool accepts the scrape',
  { skip: !existsSync(PROMTOOL) && 'no promtool' },
  async () => {
    const r = await start('not-the-secret');
    try {
      const d = r.daemon;
      await waitFor('a refused login', () => d.ami?.health().lastLoginError?.kind === 'auth', 10_000);
      const status = await cliOnSocket(r.socket, 'status');
      assert.equal(status.status, 5, status.stdout + status.stderr);
      assert.match(status.stdout, /^Health: FAIL \(ami, guard: /);
      assert.match(status.stdout, /FAIL {2}ami +not connected to 127\.0\.0\.1:\d+ as "guardian"/);
      assert.match(
        status.stdout,
        /\n {18}- AMI login to 127\.0\.0\.1:\d+ as "guardian" was refused .*wrong username or secret/,
        'the problem is indented under its part',
      );
      assert.match(status.stdout, /FAIL {2}guard .*BLIND/);
      assert.match(status.stdout, /Currently banned:/, 'the counters still follow');

      const json = await cliOnSocket(r.socket, 'status', '--json');
      assert.equal(json.status, 5);
      const parsed = JSON.parse(json.stdout) as { health: HealthReport };
      const amiPart = parsed.health.parts.find((p) => p.part === 'ami')!;
      assert.equal(amiPart.healthy, false);
      assert.ok(amiPart.problems.length > 0);

      const metrics = await (await fetch(d.metricsUrl!)).text();
      assert.equal(sample(metrics, 'pbx_guardian_up{part="ami"}'), '0');
      assert.equal(sample(metrics, 'pbx_guardian_up{part="guard"}'), '0');
      assert.equal(sample(metrics, 'pbx_guardian_up{part="store"}'), '1');
      assert.equal(sample(metrics, 'pbx_guardian_healthy'), '0');
      assert.equal(sample(metrics, 'pbx_guardian_ami_security_verified{username="guardian"}'), '0');
      const check = promtoolCheck(metrics);
      assert.equal(check.status, 0, check.output);
      for (const family of [
        'pbx_guardian_up',
        'pbx_guardian_healthy',
        'pbx_guardian_firewall_backend_info',
        'pbx_guardian_ami_security_verified',
        'pbx_guardian_firewall_store_bans',
      ]) {
        assert.match(metrics, new RegExp(`^# TYPE ${family} gauge$`, 'm'), `${family} is in the checked scrape`);
      }
    } finally {
      await r.close();
    }
  },
);

test('unreachable AMI host: status exits 5 and says so; an unreachable daemon still exits 3', async () => {
  const probe = new AmiSimulator({ fixturesDir: fixturePath('ami') });
  const closedPort = await probe.listen();
  await probe.close();
  const r = await start('s3cret', closedPort);
  try {
    await waitFor('a failed connect', () => r.daemon.ami?.health().lastLoginError?.kind === 'unreachable', 10_000);
    const status = await cliOnSocket(r.socket, 'status');
    assert.equal(status.status, 5, status.stdout + status.stderr);
    assert.match(status.stdout, /FAIL {2}ami .*\n {18}- AMI at 127\.0\.0\.1:\d+ is unreachable/);
  } finally {
    await r.close();
  }
  const gone = await cliOnSocket(join(tmpdir(), 'pbxg-health-no-such.sock'), 'status');
  assert.equal(gone.status, 3);
  assert.match(gone.stderr, /cannot reach the pbx-guardian daemon/);
});

// the alert rules (folded into dashboards/alert-rules.yaml): test/dashboards-promtool.test.ts and test/dashboards.test.ts

test('no usable firewall backend: status exits 5 with the firewall problem, while AMI and the guard are fine', async () => {
  // what main.ts runs when the configured backend cannot be built (not root, nft missing): it keeps trying
  const backend = new DeferredBackend(() => Promise.reject(new Error('nftables needs CAP_NET_ADMIN (Operation not permitted)')));
  const r = await start('s3cret', undefined, backend, 'nftables');
  try {
    const d = r.daemon;
    await waitFor('AMI login', () => d.ami?.state === 'connected');
    r.sim.broadcast(readFileSync(join(fixturePath('ami'), 'login-success.raw')));
    await waitFor('the guard sees security events', () => d.health().parts.find((p) => p.part === 'guard')!.healthy, 10_000);
    const status = await cliOnSocket(r.socket, 'status');
    assert.equal(status.status, 5, status.stdout + status.stderr);
    assert.match(status.stdout, /^Health: FAIL \(firewall: 1 problem\)/);
    assert.match(status.stdout, /FAIL {2}firewall +failing \(backend unavailable\)/);
    assert.match(status.stdout, /- enforcement is failing \(backend unavailable\): nftables needs CAP_NET_ADMIN \(Operation not permitted\)/);
    assert.match(status.stdout, /OK {4}ami /);
    const metrics = await (await fetch(d.metricsUrl!)).text();
    assert.equal(sample(metrics, 'pbx_guardian_up{part="firewall"}'), '0');
    assert.equal(sample(metrics, 'pbx_guardian_up{part="ami"}'), '1');
    assert.equal(sample(metrics, 'pbx_guardian_firewall_backend_info{backend="unavailable",dry_run="false"}'), '1');
  } finally {
    await r.close();
  }
});

test('AMI user without read = security: status exits 5, the guard is blind and says what to add to manager.conf', async () => {
  const r = await start('s3cret', undefined, new MemoryBackend(), 'memory', 'system,call');
  try {
    const d = r.daemon;
    await waitFor('the security check to fail', () => d.ami?.health().security === 'missing', 20_000);
    const status = await cliOnSocket(r.socket, 'status');
    assert.equal(status.status, 5, status.stdout + status.stderr);
    assert.match(status.stdout, /^Health: FAIL \(guard: 1 problem\)/);
    assert.match(status.stdout, /OK {4}ami +connected to .*security missing/);
    assert.match(
      status.stdout,
      /FAIL {2}guard .*BLIND: the AMI session receives no security events\n {18}- blind: the AMI user "guardian" does not receive security events.*read/,
    );
    const metrics = await (await fetch(d.metricsUrl!)).text();
    assert.equal(sample(metrics, 'pbx_guardian_up{part="guard"}'), '0');
    assert.equal(sample(metrics, 'pbx_guardian_up{part="ami"}'), '1');
    assert.equal(sample(metrics, 'pbx_guardian_ami_security_verified{username="guardian"}'), '0');
  } finally {
    await r.close();
  }
});

test('flush through the running daemon: status exits 5 and says enforcement is paused on purpose; resume → 0', async () => {
  const r = await start('s3cret');
  try {
    const d = r.daemon;
    await waitFor('AMI login', () => d.ami?.state === 'connected');
    r.sim.broadcast(readFileSync(join(fixturePath('ami'), 'login-success.raw')));
    await waitFor('every part healthy', () => d.health().healthy, 10_000);
    // the admin route itself, not the CLI: the CLI's flush falls back to the host's firewall when no daemon answers
    await callDaemon(r.socket, 'POST', '/firewall/flush');
    const paused = await cliOnSocket(r.socket, 'status');
    assert.equal(paused.status, 5, paused.stdout + paused.stderr);
    assert.match(paused.stdout, /^Health: FAIL \(firewall: 1 problem\)/);
    assert.match(
      paused.stdout,
      /FAIL {2}firewall .*\n {18}- enforcement is paused on purpose \(pbx-guardian flush at [^)]+\): no ban reaches the kernel.*"pbx-guardian resume"/,
    );
    await callDaemon(r.socket, 'POST', '/firewall/resume');
    await waitFor('healthy again', () => d.health().healthy, 10_000);
    assert.equal((await cliOnSocket(r.socket, 'status')).status, 0);
  } finally {
    await r.close();
  }
});
