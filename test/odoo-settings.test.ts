/**
 * Settings kept in Odoo (issue 15): what the agent reads from a FakeOdoo that holds them as the
 * Asterisk Plus 4.2 module does, and how they meet the local file: the file wins, Odoo fills
 * what it leaves unset, a bad or unsafe Odoo value is logged and left out.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { buildConfig, type GuardianConfig } from '../src/config/index.js';
import { fetchOdooSettings, overlayOdooSettings } from '../src/config/odoo-settings.js';
import { formatSettingsStatus, OdooSettings } from '../src/config/settings-origin.js';
import type { OdooSettingsRead } from '../src/odoo/index.js';
import { FakeOdoo } from './helpers/fake-odoo.js';
import { LogCapture } from './helpers/daemon.js';
import { serveModuleSettings } from './helpers/odoo-settings.js';

const odoo = new FakeOdoo();
before(async () => {
  await odoo.start();
  serveModuleSettings(odoo);
});
after(() => odoo.stop());

const fileWith = (doc: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}): GuardianConfig => {
  const { odoo: o, ...rest } = doc;
  return buildConfig({ ...rest, odoo: { enabled: true, url: odoo.url, db: odoo.db, user: odoo.user, password: odoo.password, ...(o as object) } }, env);
};

/** the module's defaults as the agent reads them, with some options changed */
async function moduleRead(options: Record<string, string> = {}, server: Record<string, unknown> = {}): Promise<OdooSettingsRead> {
  const o = new FakeOdoo();
  await o.start();
  serveModuleSettings(o, { options, server });
  try {
    const r = await fetchOdooSettings(
      buildConfig({ odoo: { enabled: true, url: o.url, db: o.db, user: o.user, password: o.password } }),
      new LogCapture().logger,
    );
    assert.deepEqual(o.violations, []);
    return r;
  } finally {
    await o.stop();
  }
}

test("the module's defaults, read as the agent user: each mapped to its config key, the rest named with why", async () => {
  const r = await fetchOdooSettings(fileWith(), new LogCapture().logger);
  assert.equal(r.serverId, 1);
  assert.deepEqual(
    r.settings.map((s) => [s.key, s.value, s.from]),
    [
      ['ami.host', 'localhost', 'server.ami_host'],
      ['ami.port', 5038, 'server.ami_port'],
      ['ami.username', 'asterisk_plus_agent', 'server.ami_user'],
      ['ami.secret', '3f0f7a3e-5b1e-4a55-9a39-0d6c1a2b7c11', 'server.ami_password'],
      ['odoo.fagi.enabled', true, 'agent_options.fagi_enabled'],
      ['odoo.fagi.host', '0.0.0.0', 'agent_options.fagi_listen'],
      ['odoo.fagi.port', '44574', 'agent_options.fagi_port'],
      ['odoo.recordingDirs', ['/var/spool/asterisk/monitor'], 'agent_options.asterisk_monitor_dir'],
    ],
  );
  const ignored = r.ignored.map((i) => i.from);
  for (const k of ['security_enabled', 'security_banned_timeout', 'security_ports_tcp', 'security_iptables', 'asterisk_sounds_dir', 'asterisk_mp3_convert'])
    assert.ok(ignored.includes(`agent_options.${k}`), `${k} is named as not used`);
  assert.match(r.ignored.find((i) => i.from === 'agent_options.security_enabled')!.why, /guard's settings are the local file's/);
  // the agent found its server by its own uid (the responder checks the domain)
  assert.equal(odoo.logins.length, 1);
  assert.deepEqual(odoo.violations, []);
});

test('precedence: a key the file sets wins, Odoo fills the keys it leaves unset (the default is replaced)', async () => {
  const base = fileWith({ ami: { secret: 'file-secret', port: 5039 }, odoo: { fagi: { enabled: false } } });
  const log = new LogCapture();
  const r = overlayOdooSettings(base, await moduleRead({ fagi_listen: '127.0.0.1', fagi_port: '4573' }), log.logger);
  assert.equal(r.config.odoo.fagi.enabled, false, 'the file says off');
  assert.equal(r.config.odoo.fagi.port, 4573, "Odoo's port over the default 44574");
  assert.equal(r.config.odoo.fagi.host, '127.0.0.1');
  assert.equal(r.config.ami.secret, 'file-secret');
  assert.equal(r.config.ami.port, 5039);
  assert.equal(r.config.ami.username, 'asterisk_plus_agent', "Odoo's ami_user over the default");
  assert.deepEqual(r.shadowed.sort(), ['ami.port', 'ami.secret', 'odoo.fagi.enabled']);
  assert.deepEqual(r.applied.sort(), ['ami.host', 'ami.username', 'odoo.fagi.host', 'odoo.fagi.port', 'odoo.recordingDirs']);
  assert.deepEqual(r.rejected, []);
  // the base is untouched and still the file's: a second overlay starts from it again
  assert.equal(base.odoo.fagi.port, 44574);
  assert.equal(overlayOdooSettings(r.config, await moduleRead({ fagi_port: '4600' }), log.logger).config.odoo.fagi.port, 4600);
});

test("FastAGI follows fagi_enabled (yes by default in Odoo); Odoo's 0.0.0.0 or a public address is refused, loopback or private is taken, the file's own 0.0.0.0 wins", async () => {
  const log = new LogCapture();
  const r = overlayOdooSettings(fileWith(), await moduleRead(), log.logger);
  assert.equal(r.config.odoo.fagi.enabled, true, 'on, as Odoo ships it');
  assert.equal(r.config.odoo.fagi.host, '127.0.0.1', "Odoo's 0.0.0.0 refused: the default loopback address stays");
  assert.equal(r.config.odoo.fagi.port, 44574);
  assert.equal(r.rejected.length, 1);
  assert.equal(r.rejected[0]!.key, 'odoo.fagi.host');
  assert.match(r.rejected[0]!.why, /only to a loopback or private address .*not "0\.0\.0\.0".*set odoo\.fagi\.host in the file/);
  const line = log.lines.find((l) => l.key === 'odoo.fagi.host');
  assert.ok(line, 'the refusal is logged');
  assert.equal(line.level, 40);
  assert.match(String(line.msg), /^setting from Odoo not applied \(agent_options\.fagi_listen for odoo\.fagi\.host\)/);

  for (const [listen, ok] of [
    ['127.0.0.2', true],
    ['::1', true],
    ['10.20.30.40', true],
    ['172.20.0.1', true],
    ['192.168.1.10', true],
    ['fd00::5', true],
    ['203.0.113.9', false],
    ['172.32.0.1', false],
    ['2001:db8::1', false],
    ['::', false],
    ['10.0.0.0/8', false],
    ['pbx.example.com', false],
  ] as const) {
    const o = overlayOdooSettings(fileWith(), await moduleRead({ fagi_listen: listen }), log.logger);
    assert.equal(o.config.odoo.fagi.host, ok ? listen : '127.0.0.1', `fagi_listen ${listen}`);
    assert.equal(o.applied.includes('odoo.fagi.host'), ok, `fagi_listen ${listen}`);
  }
  const fileOpen = overlayOdooSettings(fileWith({ odoo: { fagi: { host: '0.0.0.0' } } }), await moduleRead({ fagi_listen: '192.168.1.10' }), log.logger);
  assert.equal(fileOpen.config.odoo.fagi.host, '0.0.0.0', 'the file may open it up');
  assert.equal(fileOpen.config.odoo.fagi.enabled, true);
  const off = overlayOdooSettings(fileWith(), await moduleRead({ fagi_enabled: 'no' }), log.logger);
  assert.equal(off.config.odoo.fagi.enabled, false);
});

test('a bad value from Odoo is logged with its key and left out; the rest applies; a secret is never logged', async () => {
  const log = new LogCapture();
  const odooSecret = 'Odoo-Side-AMI-Secret-0xC0FFEE';
  const r = overlayOdooSettings(
    fileWith(),
    await moduleRead({ fagi_port: 'abc', fagi_enabled: 'maybe', fagi_listen: '127.0.0.1' }, { ami_password: odooSecret, ami_port: 70000 }),
    log.logger,
  );
  const why = (key: string) => r.rejected.find((x) => x.key === key)?.why ?? '';
  assert.match(why('odoo.fagi.port'), /^odoo\.fagi\.port: expected a number, got string \("abc"\)/);
  assert.match(why('odoo.fagi.enabled'), /^odoo\.fagi\.enabled: expected a boolean, got string/);
  assert.match(why('ami.port'), /^ami\.port: 70000 is not a TCP port/);
  assert.equal(r.config.odoo.fagi.port, 44574, 'the default stays');
  assert.equal(r.config.odoo.fagi.enabled, false);
  assert.equal(r.config.ami.port, 5038);
  assert.equal(r.config.ami.secret, odooSecret, 'applied');
  assert.ok(r.applied.includes('ami.secret'));
  for (const key of ['odoo.fagi.port', 'odoo.fagi.enabled', 'ami.port'])
    assert.ok(
      log.lines.some((l) => l.key === key && l.level === 40),
      `${key}: a warning`,
    );
  // the same validation as the file: a port another listener holds is refused like a file's would be
  const clash = overlayOdooSettings(
    fileWith({ metrics: { enabled: true, host: '127.0.0.1', port: 9188 } }),
    await moduleRead({ fagi_port: '9188', fagi_listen: '127.0.0.1' }),
    log.logger,
  );
  assert.match(clash.rejected.find((x) => x.key === 'odoo.fagi.port')?.why ?? '', /odoo\.fagi\.port: 9188 is also metrics\.port/);
  // a secret of the wrong type: refused without its value
  const wrong = overlayOdooSettings(fileWith(), await moduleRead({}, { ami_password: 424242 }), log.logger);
  assert.match(wrong.rejected.find((x) => x.key === 'ami.secret')?.why ?? '', /its value is not shown: a secret/);
  const settings = new OdooSettings(log.logger, async () => moduleRead({}, { ami_password: odooSecret }));
  await settings.load(fileWith());
  const status = settings.status();
  assert.equal(status.keys.find((k) => k.key === 'ami.secret')?.value, '(hidden)');
  const everything = JSON.stringify(log.lines) + JSON.stringify(status) + formatSettingsStatus(status);
  assert.ok(!everything.includes(odooSecret), 'the AMI secret from Odoo is in no log line and not in status');
  assert.ok(!everything.includes('424242'));
});

test('Odoo may not point AMI elsewhere than this host, nor confine recordings outside /var/spool/asterisk', async () => {
  const log = new LogCapture();
  for (const [host, ok] of [
    ['localhost', true],
    ['127.0.0.1', true],
    ['::1', true],
    ['10.0.0.5', false],
    ['pbx.example.com', false],
  ] as const) {
    const r = overlayOdooSettings(fileWith({ ami: { secret: 'file-secret' } }), await moduleRead({}, { ami_host: host }), log.logger);
    assert.equal(r.config.ami.host, ok ? host : '127.0.0.1', `ami_host ${host}`);
    if (!ok) assert.match(r.rejected.find((x) => x.key === 'ami.host')!.why, /only at this host .*sends its secret in clear/);
  }
  for (const [dir, ok] of [
    ['/var/spool/asterisk/monitor/', true],
    ['/var/spool/asterisk/recordings', true],
    ['/etc', false],
    ['/var/spool/asterisk/../../../etc', false],
    ['/var/spool/asterisk', false],
    ['var/spool/asterisk/monitor', false],
  ] as const) {
    const r = overlayOdooSettings(fileWith(), await moduleRead({ asterisk_monitor_dir: dir }), log.logger);
    assert.deepEqual(r.config.odoo.recordingDirs, [ok ? dir.replace(/\/$/, '') : '/var/spool/asterisk/monitor'], `asterisk_monitor_dir ${dir}`);
    assert.equal(r.applied.includes('odoo.recordingDirs'), ok, dir);
  }
  // the file's own directory is the file's business
  const own = overlayOdooSettings(fileWith({ odoo: { recordingDirs: ['/srv/rec'] } }), await moduleRead({ asterisk_monitor_dir: '/etc' }), log.logger);
  assert.deepEqual(own.config.odoo.recordingDirs, ['/srv/rec']);
  assert.deepEqual(
    own.rejected.filter((x) => x.key === 'odoo.recordingDirs'),
    [],
  );
  assert.ok(own.shadowed.includes('odoo.recordingDirs'));
});

test('the environment counts as local: ASTERISK_AMI_PASSWORD wins over the server record, and status says so', async () => {
  const log = new LogCapture();
  const settings = new OdooSettings(log.logger, () => moduleRead());
  const cfg = await settings.load(fileWith({}, { ASTERISK_AMI_PASSWORD: 'env-secret' }));
  assert.equal(cfg.ami.secret, 'env-secret');
  const k = settings.status().keys.find((x) => x.key === 'ami.secret')!;
  assert.equal(k.origin, 'env');
  assert.match(k.note ?? '', /the environment sets it/);
});

test('a failed read keeps the values read before; off means not asked; status shows each key with its origin', async () => {
  const log = new LogCapture();
  let calls = 0;
  const first = await moduleRead({ fagi_listen: '127.0.0.1' });
  const settings = new OdooSettings(log.logger, async () => {
    calls++;
    if (calls > 1) throw new Error('Odoo unreachable (ECONNREFUSED)');
    return first;
  });
  const base = fileWith({ ami: { secret: 'file-secret' } });
  assert.equal((await settings.load(base)).odoo.fagi.enabled, true);
  const again = await settings.load(base);
  assert.equal(again.odoo.fagi.enabled, true, 'Odoo down on a reload does not switch FastAGI off');
  const s = settings.status();
  assert.equal(s.state, 'read');
  assert.equal(s.error, 'Odoo unreachable (ECONNREFUSED)');
  assert.ok(log.lines.some((l) => /^settings from Odoo not read: Odoo unreachable .*the values read before stay in use/.test(String(l.msg))));
  const origin = Object.fromEntries(s.keys.map((k) => [k.key, k.origin]));
  assert.deepEqual(origin, {
    'ami.host': 'odoo',
    'ami.port': 'odoo',
    'ami.username': 'odoo',
    'ami.secret': 'file',
    'odoo.fagi.enabled': 'odoo',
    'odoo.fagi.host': 'odoo',
    'odoo.fagi.port': 'odoo',
    'odoo.recordingDirs': 'odoo',
  });
  const text = formatSettingsStatus(s);
  assert.match(text, /^settings from Odoo: read \S+ \(server 1\); the last read failed: Odoo unreachable/);
  assert.match(text, /\n {2}odoo\.fagi\.enabled +true +odoo \(agent_options\.fagi_enabled\)\n/);
  assert.match(text, /\n {2}ami\.secret +\(hidden\) +file +\[Odoo's value not used: the file sets it\]\n/);
  assert.match(text, /\n {2}not used: .*security_enabled, security_banned_timeout/);

  const never = new OdooSettings(log.logger, () => Promise.reject(new Error('must not be called')));
  const offBase = fileWith({ odoo: { settingsFromOdoo: false } });
  assert.equal(await never.load(offBase), offBase);
  assert.equal(never.status().state, 'off');
  assert.equal(formatSettingsStatus(never.status()), 'settings from Odoo: off (odoo.enabled or odoo.settingsFromOdoo is false)');
});
