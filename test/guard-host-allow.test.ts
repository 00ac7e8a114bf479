/**
 * Issue 12, finding 12: a DNS-named Odoo (or AMI) host was not allow-listed although the README
 * says it always is. The names are resolved at start (every address, both families) and again
 * periodically; a failed lookup is logged once, retried, never fatal, and keeps the last good
 * addresses; bans are not dropped. The resolver is injected: no DNS.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { buildConfig } from '../src/config/index.js';
import { MemoryBackend } from '../src/firewall/index.js';
import { AllowListedError, HostAllowFeed } from '../src/guard/index.js';
import { startDaemon, type Daemon } from '../src/main.js';

/** pino lines captured as objects */
function captureLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('the AMI and Odoo host names are allow-listed (all addresses, both families); re-resolved on reload; a failed lookup keeps the last good addresses, is logged once and is not fatal; bans stay', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-hostallow-'));
  const answers = new Map<string, string[] | Error>([
    ['ami.pbx.test', ['192.0.2.10']],
    ['odoo.pbx.test', ['198.51.100.7', '2001:db8::7']],
  ]);
  const lookups: string[] = [];
  const resolveHost = async (name: string): Promise<string[]> => {
    lookups.push(name);
    const a = answers.get(name);
    if (a instanceof Error) throw a;
    if (!a) throw new Error(`ENOTFOUND ${name}`);
    return a;
  };
  const config = buildConfig({
    stateDir: join(dir, 'state'),
    ami: { host: 'ami.pbx.test', port: 1, secret: 's', reconnectInitialMs: 60_000, reconnectMaxMs: 60_000 },
    odoo: { enabled: true, url: 'https://odoo.pbx.test:8069', db: 'db', listen: { enabled: false }, eventsRefreshMs: 3_600_000 },
    firewall: { backend: 'memory' },
    metrics: { enabled: false },
  });
  const { logger, lines } = captureLogger();
  const backend = new MemoryBackend();
  let daemon: Daemon | undefined;
  try {
    daemon = await startDaemon({ config, backend, logger, adminSocket: false, resolveHost });
    const g = daemon.guardian;
    const allowed = () =>
      backend
        .allowList()
        .map((t) => t.target)
        .sort();
    assert.deepEqual(lookups.sort(), ['ami.pbx.test', 'odoo.pbx.test']);
    for (const a of ['192.0.2.10', '198.51.100.7', '2001:db8::7']) {
      assert.ok(allowed().includes(a), `${a} in the kernel allow set: ${allowed().join(' ')}`);
      await assert.rejects(g.ban({ target: a, durationSec: 60, source: 'manual' }), AllowListedError, a);
    }
    await g.ban({ target: '203.0.113.9', durationSec: 3600, source: 'manual' });

    // the Odoo host moved: the new address is allow-listed, the old one no longer; the ban stays
    answers.set('odoo.pbx.test', ['198.51.100.8']);
    await daemon.reload();
    assert.ok(allowed().includes('198.51.100.8'));
    assert.ok(!allowed().includes('198.51.100.7') && !allowed().includes('2001:db8::7'));
    assert.ok(allowed().includes('192.0.2.10') && allowed().includes('127.0.0.0/8'));
    assert.deepEqual(
      g.listBans().map((b) => b.target),
      ['203.0.113.9'],
    );
    await waitFor('the ban in the kernel set', async () => (await backend.list()).some((e) => e.target === '203.0.113.9'));

    // DNS fails: not fatal, the last good address stays, one warn line for two failed lookups
    answers.set('odoo.pbx.test', new Error('EAI_AGAIN odoo.pbx.test'));
    await daemon.reload();
    await daemon.reload();
    assert.ok(allowed().includes('198.51.100.8'), 'last good address kept');
    await assert.rejects(g.ban({ target: '198.51.100.8', durationSec: 60, source: 'manual' }), AllowListedError);
    const warns = lines.filter((l) => l.host === 'odoo.pbx.test' && l.level === 40);
    assert.equal(warns.length, 1, JSON.stringify(warns));
    assert.match(String(warns[0]!.msg), /cannot resolve odoo\.pbx\.test .*keeping its last addresses 198\.51\.100\.8/);
    assert.deepEqual(
      g.listBans().map((b) => b.target),
      ['203.0.113.9'],
    );
  } finally {
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('HostAllowFeed re-resolves every interval, retries a failure sooner, logs it once, and logs the recovery', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { logger, lines } = captureLogger();
    let answer: string[] | Error = ['192.0.2.1', '::ffff:192.0.2.99', 'not-an-address', '2001:db8::1'];
    let calls = 0;
    const changes: string[][] = [];
    const feed = new HostAllowFeed({
      resolve: async () => {
        calls++;
        if (answer instanceof Error) throw answer;
        return answer;
      },
      intervalMs: 300_000,
      retryMs: 30_000,
      timeoutMs: 5_000,
      logger,
      onChange: (a) => changes.push(a),
    });
    await feed.setHosts(['odoo.example']);
    assert.equal(calls, 1);
    assert.deepEqual(feed.addresses(), ['192.0.2.1', '192.0.2.99', '2001:db8::1'].sort());
    const settle = async () => {
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    };
    mock.timers.tick(299_999);
    await settle();
    assert.equal(calls, 1, 'not before the interval');
    answer = new Error('ENOTFOUND');
    mock.timers.tick(1);
    await settle();
    assert.equal(calls, 2, 'looked up again after the interval');
    mock.timers.tick(30_000);
    await settle();
    mock.timers.tick(30_000);
    await settle();
    assert.equal(calls, 4, 'a failing name is retried every retryMs');
    assert.equal(lines.filter((l) => l.level === 40).length, 1, 'the failure is logged once');
    assert.equal(feed.addresses().length, 3, 'the last good addresses are kept');
    answer = ['192.0.2.2'];
    mock.timers.tick(30_000);
    await settle();
    assert.deepEqual(feed.addresses(), ['192.0.2.2']);
    assert.deepEqual(changes, [['192.0.2.1', '192.0.2.99', '2001:db8::1'].sort(), ['192.0.2.2']]);
    assert.ok(lines.some((l) => l.level === 30 && /resolves to 192\.0\.2\.2/.test(String(l.msg))));
    feed.stop();
  } finally {
    mock.timers.reset();
  }
});
