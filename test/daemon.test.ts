import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { startDaemon, type Daemon } from '../src/main.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';
import { loadTemplate, replayBytes } from '../src/demo/attack.js';
import { cliOnSocket } from './helpers/cli.js';
import { fixturePath } from './helpers/fixtures.js';

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('end to end: AMI brute force → ban in the backend and store; CLI and metrics; restart restores', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-daemon-'));
  const sim = new AmiSimulator({ fixturesDir: fixturePath('ami'), username: 'guardian', secret: 's3cret', loginFailDelayMs: 10 });
  await sim.listen();
  const config = buildConfig({
    stateDir: join(dir, 'state'),
    logLevel: 'silent',
    ami: { port: sim.port, secret: 's3cret' },
    guard: { allow: ['192.0.2.0/24'] },
    firewall: { backend: 'memory' },
    admin: { socket: join(dir, 'admin.sock') },
    metrics: { port: 0 },
  });
  const socket = config.admin.socket;
  let daemon: Daemon | undefined;
  try {
    const backend = new MemoryBackend();
    daemon = await startDaemon({ config, backend, logger: pino({ level: 'silent' }) });
    const d = daemon;
    await waitFor('AMI login', () => d.ami?.state === 'connected');
    assert.equal(statSync(socket).mode & 0o777, 0o600, 'admin socket is 0600');

    const attack = replayBytes(loadTemplate(fixturePath('ami'), 'security-sip-register-wrong-password.raw'), '203.0.113.5');
    const office = replayBytes(loadTemplate(fixturePath('ami'), 'security-sip-register-wrong-password.raw'), '192.0.2.10');
    for (let i = 0; i < 4; i++) sim.broadcast(attack + office);
    await waitFor('4 failures counted', () => d.guardian.status().totalFailed >= 4);
    assert.equal(d.guardian.listBans().length, 0, 'not banned before the threshold');
    const beforeBan = Date.now();
    sim.broadcast(attack);
    await waitFor('the ban in the backend', async () => (await backend.list()).some((e) => e.target === '203.0.113.5'));
    const afterBan = Date.now();
    const entry = (await backend.list()).find((e) => e.target === '203.0.113.5')!;
    // bracketed by the clock before the 5th failure and after the ban arrived: however slow the machine
    assert.ok(entry.expiresAt! >= beforeBan + 3600_000 && entry.expiresAt! <= afterBan + 3600_000, 'kernel timeout is the ban duration');

    const status = await cliOnSocket(socket, 'status');
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /Currently banned:\t1/);
    assert.match(status.stdout, /203\.0\.113\.5 .*rule auth-failure/);

    const refused = await cliOnSocket(socket, 'ban', '192.0.2.77');
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /192\.0\.2\.77 is allow-listed|overlaps the allow-listed 192\.0\.2\.0\/24/);
    const invalid = await cliOnSocket(socket, 'ban', '1.2.3.4;reboot');
    assert.equal(invalid.status, 1);
    assert.match(invalid.stderr, /not an IPv4\/IPv6 address or CIDR/);

    const banNet = await cliOnSocket(socket, 'ban', '198.51.100.0/24', '--for', '10m', '--reason', 'scanner');
    assert.equal(banNet.status, 0, banNet.stderr);
    assert.match(banNet.stdout, /banned 198\.51\.100\.0\/24 for 10m/);
    const banned = JSON.parse((await cliOnSocket(socket, 'banned', '--json')).stdout) as Array<{ target: string }>;
    assert.deepEqual(banned.map((b) => b.target).sort(), ['198.51.100.0/24', '203.0.113.5']);
    await waitFor('the CIDR in the backend', async () => (await backend.list()).some((e) => e.target === '198.51.100.0/24' && e.isNetwork));
    assert.equal((await cliOnSocket(socket, 'unban', '198.51.100.0/24')).status, 0);
    const again = await cliOnSocket(socket, 'unban', '198.51.100.0/24');
    assert.equal(again.status, 1);
    assert.match(again.stderr, /is not banned/);
    assert.equal((await cliOnSocket(socket, 'reload')).status, 0);
    // the admin routes main.ts wires: why (store history), allow (state directory), metrics
    const why = await cliOnSocket(socket, 'why', '203.0.113.5');
    assert.equal(why.status, 0, why.stderr);
    assert.match(why.stdout, /banned: {3}yes, local: 203\.0\.113\.5 \(rule auth-failure, .* left\), its own ban/);
    assert.match(why.stdout, /history \(newest first, 1\):\n.*\n.* 203\.0\.113\.5 +1h +auth-failure +rule +in force/);
    assert.equal((await cliOnSocket(socket, 'allow', 'add', '198.51.100.77', '--reason', 'test')).status, 0);
    assert.match((await cliOnSocket(socket, 'metrics')).stdout, /\nbans_total +rule="auth-failure",source="rule" +1\n/);

    const metrics = await (await fetch(d.metricsUrl!)).text();
    assert.match(metrics, /pbx_guardian_bans_total\{rule="auth-failure",source="rule"\} 1/);
    assert.match(metrics, /pbx_guardian_ami_connected 1/);
    assert.match(metrics, /pbx_guardian_bans_active\{family="ipv4"\} 1\n/, 'counted at the scrape: 203.0.113.5 (the /24 was unbanned)');
    assert.match(metrics, /pbx_guardian_bans_active\{family="ipv6"\} 0\n/);
    // the office's 8 frames; the SuccessfulAuth of the daemon's own login comes from 127.0.0.1, an
    // address of this host (the scope is asked first)
    assert.match(metrics, /pbx_guardian_events_ignored_total\{reason="allow-listed"\} 8/);
    assert.match(metrics, /pbx_guardian_events_ignored_total\{reason="own-address"\} 1/);
    assert.match(metrics, /pbx_guardian_security_events_total\{event="InvalidPassword",service="SIP"\} 9/);
    // no Odoo, no webhooks: the login asks Asterisk for the security class and, for the fraud
    // guard (on by default), call and cdr; the transcript's PeerStatus frames (class system) never
    // reach the daemon
    const login = sim.requests.find((r) => r.action.toLowerCase() === 'login')!;
    assert.equal(login.headers.find(([k]) => k === 'Events')?.[1], 'security,call,cdr');
    assert.match(metrics, /pbx_guardian_ami_events_total\{event="InvalidPassword"\} 9/);
    assert.doesNotMatch(metrics, /pbx_guardian_ami_events_total\{event="PeerStatus"\}/);

    await d.stop();
    daemon = undefined;
    const backend2 = new MemoryBackend();
    daemon = await startDaemon({ config, backend: backend2, logger: pino({ level: 'silent' }), adminSocket: false });
    await waitFor('restore into the new backend', async () => (await backend2.list()).some((e) => e.target === '203.0.113.5'));
    assert.deepEqual(
      daemon.guardian.listBans().map((b) => b.target),
      ['203.0.113.5'],
    );
    assert.equal(daemon.guardian.isAllowListed('198.51.100.77'), true, 'the runtime allow entry survives a restart');
  } finally {
    await daemon?.stop();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
