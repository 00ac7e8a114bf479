/**
 * The whole daemon with AMI disabled and the Asterisk security log as its only detection source
 * (sources.securityLog): real fixture lines appended to the followed file ban the attacker in
 * the (memory) firewall; the file rotated meanwhile is followed on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { startDaemon, type Daemon } from '../src/main.js';
import { readFixture } from './helpers/fixtures.js';
import { waitFor } from './helpers/daemon.js';

const LOG = readFixture('asterisk-security.log').toString('utf8').split('\n');
/** the fixture's chan_sip wrong passwords, from 203.0.113.7 (captured from 127.0.0.2, which the daemon allow-lists as loopback) */
const SIP_WRONG = LOG.filter((l) => /Service="SIP"/.test(l) && /SecurityEvent="InvalidPassword"/.test(l)).map((l) =>
  l.replace('RemoteAddress="IPV4/UDP/127.0.0.2/', 'RemoteAddress="IPV4/UDP/203.0.113.7/'),
);

test('daemon, AMI disabled: the security log alone bans, across a log rotation', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-seclog-d-'));
  const path = join(dir, 'security');
  writeFileSync(path, LOG[0] + '\n');
  const config = buildConfig({
    stateDir: join(dir, 'state'),
    logLevel: 'silent',
    ami: { enabled: false },
    firewall: { backend: 'memory' },
    admin: { socket: join(dir, 'admin.sock') },
    metrics: { enabled: false },
    sources: { securityLog: { enabled: true, path, pollInterval: '100ms' } },
  });
  const backend = new MemoryBackend();
  let d: Daemon | undefined;
  try {
    d = await startDaemon({ config, backend, logger: pino({ level: 'silent' }), hostAddresses: { addresses: () => [] } });
    const daemon = d;
    appendFileSync(path, SIP_WRONG.slice(0, 3).join('\n') + '\n');
    await waitFor('3 failures counted', () => daemon.guardian.status().totalFailed === 3);
    assert.equal(daemon.guardian.listBans().length, 0);
    // logrotate: renamed away, a new file; the attack goes on in it
    renameSync(path, `${path}.0`);
    writeFileSync(path, SIP_WRONG.slice(3, 5).join('\n') + '\n');
    await waitFor('the ban', () => daemon.guardian.listBans().length === 1);
    const ban = daemon.guardian.listBans()[0]!;
    assert.equal(ban.target, '203.0.113.7');
    assert.equal(ban.rule, 'auth-failure');
    await waitFor('the ban in the firewall', async () => (await backend.list()).some((e) => e.target === '203.0.113.7'));
  } finally {
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config: sources.securityLog keys are checked (unknown key, mode, path)', () => {
  assert.throws(
    () => buildConfig({ sources: { securityLog: { enabled: true, path: 'relative', mode: 'twice' } } }),
    (err: Error) => {
      assert.match(err.message, /sources\.securityLog\.mode: "twice" is not one of fallback, always/);
      assert.match(err.message, /sources\.securityLog\.path: "relative" must be an absolute path/);
      return true;
    },
  );
  assert.throws(() => buildConfig({ sources: { securityLog: { folow: true } } }), /sources\.securityLog\.folow: unknown key/);
  assert.equal(buildConfig({}).sources.securityLog.enabled, false);
});
