/**
 * A whole daemon with the settings an Asterisk Plus 4.2 installation keeps in Odoo: FastAGI comes
 * up because Odoo ships fagi_enabled=yes, the AMI login uses the server record's user, status says
 * where each setting came from, and the module's Reload Config job (recorded, replayed) picks up
 * a setting changed in Odoo and says in its notice what applied and what needs a restart.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import { test } from 'node:test';
import { FakeOdoo, recordedExchanges } from './helpers/fake-odoo.js';
import { startTestDaemon, waitFor, type TestDaemon } from './helpers/daemon.js';
import { serveModuleSettings } from './helpers/odoo-settings.js';
import { cliOnSocket } from './helpers/cli.js';
import type { SettingsStatus } from '../src/config/settings-origin.js';

/** the Reload Config button's job, as the module sent it, with its x-token */
function recordedReloadJob(): { token: string; body: string } {
  const x = recordedExchanges('odoo-to-agent').find((e) => (JSON.parse(e.req_body!) as { fun: string }).fun === 'agent.reload_config')!;
  return { token: (x as unknown as { req_headers: Record<string, string> }).req_headers['x-token']!, body: x.req_body! };
}

function post(td: TestDaemon, token: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: td.daemon.odoo!.agentAddress!.port,
        path: '/app/asterisk_plus/agent',
        method: 'POST',
        rejectUnauthorized: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-token': token },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** read anew each time: a reload moves it */
const fagiOf = (td: TestDaemon) => td.daemon.odoo!.fagiAddress;

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

test("Odoo's defaults turn FastAGI on (on loopback), the server's AMI user logs in, status names each origin; Reload Config applies a change made in Odoo", async () => {
  const odoo = new FakeOdoo();
  await odoo.start();
  // the module's records, with the AMI user of this test's Asterisk and a free FastAGI port (the module's 44574 may be taken here)
  const served = serveModuleSettings(odoo, { server: { ami_host: '127.0.0.1', ami_user: 'guardian' }, options: { fagi_port: '0' } });
  const job = recordedReloadJob();
  const td = await startTestDaemon({
    odoo,
    adminSocket: true,
    // the file sets ami.port and ami.secret (test/helpers/daemon.ts), not ami.username nor anything of FastAGI
    config: { odoo: { agentToken: job.token, listen: { enabled: true, host: '127.0.0.1', port: 0 } } },
  });
  try {
    const fagi = td.daemon.odoo!.fagiAddress;
    assert.ok(fagi, 'FastAGI is listening: fagi_enabled=yes in Odoo');
    assert.equal(fagi.host, '127.0.0.1', "Odoo's fagi_listen 0.0.0.0 is refused: the loopback default stays");
    assert.ok(await canConnect(fagi.port));
    await waitFor('AMI logged in as the server record user', () => td.daemon.ami!.state === 'connected');
    assert.equal(td.daemon.config.ami.username, 'guardian');
    assert.ok(td.log.lines.some((l) => /^setting from Odoo not applied \(agent_options\.fagi_listen for odoo\.fagi\.host\)/.test(String(l.msg))));

    const json = await cliOnSocket(td.config.admin.socket, 'status', '--json');
    const settings = (JSON.parse(json.stdout) as { settings: SettingsStatus }).settings;
    assert.equal(settings.state, 'read');
    assert.equal(settings.serverId, 1);
    const origin = Object.fromEntries(settings.keys.map((k) => [k.key, k.origin]));
    assert.deepEqual(origin, {
      'ami.host': 'odoo',
      'ami.port': 'file',
      'ami.username': 'odoo',
      'ami.secret': 'file',
      'odoo.fagi.enabled': 'odoo',
      'odoo.fagi.host': 'default',
      'odoo.fagi.port': 'odoo',
      'odoo.recordingDirs': 'odoo',
    });
    assert.match(settings.keys.find((k) => k.key === 'odoo.fagi.host')!.note ?? '', /^Odoo's value refused: .*loopback or private/);
    const text = await cliOnSocket(td.config.admin.socket, 'status');
    assert.match(text.stdout, /\nsettings from Odoo: read \S+ \(server 1\)\n/);
    assert.match(text.stdout, /\n {2}ami\.username +guardian +odoo \(server\.ami_user\)\n/);
    assert.ok(!text.stdout.includes('s3cret') && !json.stdout.includes('s3cret'), 'the AMI secret is not shown');

    // an admin switches FastAGI off in Odoo and changes the AMI user, then presses Reload Config
    served.options.set('fagi_enabled', 'no');
    served.server.ami_user = 'guardian2';
    assert.equal(await post(td, job.token, job.body), 200);
    const notices = () => odoo.callsTo('asterisk_plus.settings', 'asterisk_plus_notify');
    await odoo.waitFor(() => notices().length === 1, 5000, 'the reload notice');
    const notice = notices()[0]!;
    assert.deepEqual(notice.kwargs, { title: 'Reload Config', notify_uid: 2, warning: false });
    const message = notice.args[0] as string;
    assert.match(message, /^agent\.reload_config: OK\n/);
    assert.match(message, /\napplied: odoo\.fagi\.enabled\n/);
    assert.match(message, /\nrestart_needed: ami\.username$/);
    assert.equal(fagiOf(td), null);
    assert.equal(await canConnect(fagi.port), false, 'FastAGI stopped');

    served.options.set('fagi_enabled', 'yes');
    const r = await td.daemon.reload();
    assert.ok(r.applied.includes('odoo.fagi.enabled'));
    const again = fagiOf(td);
    assert.ok(again, 'FastAGI started again');
    assert.ok(await canConnect(again.port));
    assert.deepEqual(odoo.violations, []);
  } finally {
    await td.close();
  }
});

test('a file that switches FastAGI off keeps it off whatever Odoo says; Odoo down at start: the file and defaults, and a reload reads them later', async () => {
  const odoo = new FakeOdoo();
  await odoo.start();
  serveModuleSettings(odoo, { options: { fagi_port: '0', fagi_listen: '127.0.0.1' } });
  const off = await startTestDaemon({ odoo, config: { odoo: { fagi: { enabled: false } } } });
  try {
    assert.equal(off.daemon.odoo!.fagiAddress, null);
    assert.equal(off.daemon.config.odoo.fagi.port, 0, 'the keys the file leaves unset still come from Odoo');
  } finally {
    await off.close();
  }

  const later = new FakeOdoo();
  later.mode = 'http503';
  await later.start();
  serveModuleSettings(later, { server: { ami_user: 'guardian', ami_host: '127.0.0.1' }, options: { fagi_port: '0', fagi_listen: '127.0.0.1' } });
  const td = await startTestDaemon({ odoo: later });
  try {
    assert.equal(fagiOf(td), null, 'nothing read: the default (off) applies');
    assert.ok(td.log.lines.some((l) => /^settings from Odoo not read: .*the file and the defaults apply/.test(String(l.msg))));
    later.mode = 'ok';
    const r = await td.daemon.reload();
    assert.ok(r.applied.includes('odoo.fagi.enabled'));
    assert.ok(fagiOf(td));
  } finally {
    await td.close();
  }
});
