import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startOdooBridge, odooInit, OdooInitError } from '../src/odoo/index.js';
import { ensureTlsPair } from '../src/odoo/tls.js';
import { FakeOdoo, FakeAmi, FakeBans, recordedExchanges } from './helpers/fake-odoo.js';

const log = pino({ level: 'silent' });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-odoo-fagi-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Play Asterisk on a FastAGI connection: send the environment, answer each command. */
async function agiSession(port: number, env: Record<string, string>, answer: (cmd: string) => string): Promise<string[]> {
  const sock = net.connect(port, '127.0.0.1');
  sock.setEncoding('utf8');
  const cmds: string[] = [];
  let buf = '';
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write(
    Object.entries(env)
      .map(([k, v]) => `${k}: ${v}\n`)
      .join('') + '\n',
  );
  await new Promise<void>((resolve, reject) => {
    sock.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        cmds.push(line);
        sock.write(answer(line) + '\n');
      }
    });
    sock.on('end', () => resolve());
    sock.on('error', reject);
  });
  sock.destroy();
  return cmds;
}

test('FastAGI round trip: environment → fagi_request(request) → AGI commands, PJSIP_DIAL_CONTACTS expanded', async () => {
  const odoo = new FakeOdoo({
    eventsMap: [{ id: 10, name: 'route_did', source: 'FAGI', model: 'asterisk_plus.user', method: 'fagi_request', delay: 0, condition: false }],
  });
  await odoo.start();
  odoo.responders.set('asterisk_plus.user.fagi_request', () => ['EXEC MIXMONITOR 2024/01/02/1700000000.1.wav,b', 'PJSIP_DIAL_CONTACTS 101,102,103 30,t']);
  const bridge = await startOdooBridge({
    config: {
      url: odoo.url,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      listen: { enabled: false },
      fagi: { enabled: true, host: '127.0.0.1', port: 0 },
      systemName: 'pbx1',
    },
    ami: new FakeAmi(),
    bans: new FakeBans(),
    db: new Database(':memory:'),
    logger: log,
    registry: new Registry(),
    stateDir: path.join(tmp, 's'),
    reloadConfig: () => undefined,
  });
  try {
    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.event', 'search_read').length === 1);
    await new Promise((r) => setTimeout(r, 20));
    const env = {
      agi_network: 'yes',
      agi_network_script: 'route_did',
      agi_request: `agi://127.0.0.1:${bridge.fagiAddress!.port}/route_did`,
      agi_channel: 'PJSIP/trunk-00000001',
      agi_language: 'en',
      agi_uniqueid: '1700000000.1',
      agi_callerid: '+15551234',
      agi_dnid: '+15550000',
      agi_extension: '5550000',
      agi_context: 'from-trunk',
    };
    const cmds = await agiSession(bridge.fagiAddress!.port, env, (cmd) => {
      if (cmd === 'GET FULL VARIABLE ${PJSIP_DIAL_CONTACTS(101)}') return '200 result=1 (PJSIP/101/sip:101@192.0.2.10:5060)';
      if (cmd === 'GET FULL VARIABLE ${PJSIP_DIAL_CONTACTS(102)}') return '200 result=1 ()';
      if (cmd === 'GET FULL VARIABLE ${PJSIP_DIAL_CONTACTS(103)}') return '200 result=1 (PJSIP/103/sip:103@192.0.2.11:5060)';
      return '200 result=0';
    });
    assert.deepEqual(cmds, [
      'EXEC MIXMONITOR 2024/01/02/1700000000.1.wav,b',
      'GET FULL VARIABLE ${PJSIP_DIAL_CONTACTS(101)}',
      'GET FULL VARIABLE ${PJSIP_DIAL_CONTACTS(102)}',
      'GET FULL VARIABLE ${PJSIP_DIAL_CONTACTS(103)}',
      'EXEC Dial PJSIP/101/sip:101@192.0.2.10:5060&PJSIP/103/sip:103@192.0.2.11:5060,30,t',
    ]);
    const c = odoo.callsTo('asterisk_plus.user', 'fagi_request');
    assert.equal(c.length, 1);
    assert.deepEqual(c[0]!.args, [{ ...env, SystemName: 'pbx1' }]);
    assert.deepEqual(c[0]!.kwargs, {});
    // a script with no FAGI handler: the connection just ends, nothing sent to Odoo
    const none = await agiSession(bridge.fagiAddress!.port, { ...env, agi_network_script: 'other', agi_request: 'agi://x/other' }, () => '200 result=0');
    assert.deepEqual(none, []);
    assert.equal(odoo.callsTo('asterisk_plus.user', 'fagi_request').length, 1);
    // a hang-up in the middle stops the command list
    const hung = await agiSession(bridge.fagiAddress!.port, env, () => 'HANGUP');
    assert.deepEqual(hung, ['EXEC MIXMONITOR 2024/01/02/1700000000.1.wav,b']);
    // an over-long environment line is refused and the connection closed
    const s = net.connect(bridge.fagiAddress!.port, '127.0.0.1');
    await new Promise<void>((r) => s.once('connect', () => r()));
    s.write('agi_x: ' + 'a'.repeat(20_000));
    await new Promise<void>((r) => {
      s.on('close', () => r());
      s.on('error', () => r());
      s.resume();
    });
    assert.deepEqual(odoo.violations, []);
  } finally {
    await bridge.close();
    await odoo.stop();
  }
});

test('odooInit: credentials on success; clear errors for the 400 texts', async () => {
  const odoo = new FakeOdoo();
  await odoo.start();
  try {
    const r = await odooInit({ url: odoo.url, db: 'testdb' });
    assert.deepEqual(r, { agent_token: 'tok-123', odoo_user: 'asterisk1', odoo_password: odoo.password, odoo_db: 'testdb' });
    odoo.init = { status: 400, text: 'Agent is already initialized.' };
    await assert.rejects(
      odooInit({ url: odoo.url + '/', db: 'testdb' }),
      (e: unknown) => e instanceof OdooInitError && /Permit agent initialization/.test(e.message) && /copy the agent token/.test(e.message),
    );
    odoo.init = { status: 400, text: 'Agent initialization is not permitted!' };
    await assert.rejects(odooInit({ url: odoo.url, db: 'testdb' }), /not permitted.*enable "Permit agent initialization"/);
    odoo.init = { status: 200, body: { agent_token: 'x' } };
    await assert.rejects(odooInit({ url: odoo.url, db: 'testdb' }), /no odoo_user/);
    await assert.rejects(odooInit({ url: 'http://127.0.0.1:1', db: 'testdb' }), /cannot reach Odoo/);
  } finally {
    await odoo.stop();
  }
});

test('self-signed pair: generated once in the state dir with mode 0600, valid, reused', () => {
  const dir = path.join(tmp, 'tls');
  const a = ensureTlsPair({ stateDir: dir });
  assert.equal(a.generated, true);
  assert.equal(fs.statSync(a.keyFile).mode & 0o777, 0o600);
  assert.equal(fs.statSync(a.certFile).mode & 0o777, 0o600);
  const x = new crypto.X509Certificate(a.cert);
  assert.ok(x.verify(x.publicKey));
  assert.match(x.subjectAltName ?? '', /DNS:localhost/);
  assert.ok(x.checkPrivateKey(crypto.createPrivateKey(a.key)));
  const b = ensureTlsPair({ stateDir: dir });
  assert.equal(b.generated, false);
  assert.equal(b.cert, a.cert);
});

test('FastAGI: the answer Odoo gave for a user with two channels (PJSIP_DIAL_CONTACTS 101,101, recorded) asks and dials each contact once', async () => {
  const recorded = recordedExchanges('agent-to-odoo').find((r) => r.req_body?.includes('fagi_request'))!;
  const answer = (JSON.parse(recorded.resp_body!) as { result: string[] }).result;
  assert.ok(answer.includes('PJSIP_DIAL_CONTACTS 101,101 30,t'));
  const odoo = new FakeOdoo({
    eventsMap: [{ id: 10, name: 'route_did', source: 'FAGI', model: 'asterisk_plus.user', method: 'fagi_request', delay: 0, condition: false }],
  });
  await odoo.start();
  odoo.responders.set('asterisk_plus.user.fagi_request', () => answer);
  const bridge = await startOdooBridge({
    config: {
      url: odoo.url,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      listen: { enabled: false },
      fagi: { enabled: true, host: '127.0.0.1', port: 0 },
    },
    ami: new FakeAmi(),
    bans: new FakeBans(),
    db: new Database(':memory:'),
    logger: log,
    registry: new Registry(),
    stateDir: path.join(tmp, 's2'),
    reloadConfig: () => undefined,
  });
  try {
    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.event', 'search_read').length === 1);
    await new Promise((r) => setTimeout(r, 20));
    const env = {
      agi_network: 'yes',
      agi_network_script: 'route_did',
      agi_request: `agi://127.0.0.1:${bridge.fagiAddress!.port}/route_did`,
      agi_channel: 'PJSIP/trunk-00000002',
      agi_uniqueid: '1796191600.30',
    };
    // two contacts registered for 101 (a desk phone and a softphone), one of them twice
    const cmds = await agiSession(bridge.fagiAddress!.port, env, (cmd) =>
      cmd === 'GET FULL VARIABLE ${PJSIP_DIAL_CONTACTS(101)}'
        ? '200 result=1 (PJSIP/101/sip:101@192.0.2.10:5060&PJSIP/101/sip:101@192.0.2.20:5062&PJSIP/101/sip:101@192.0.2.10:5060)'
        : '200 result=0',
    );
    assert.deepEqual(cmds, [
      'EXEC MIXMONITOR 2026/12/2/1796191600.30.wav,b',
      'GET FULL VARIABLE ${PJSIP_DIAL_CONTACTS(101)}',
      'EXEC Dial PJSIP/101/sip:101@192.0.2.10:5060&PJSIP/101/sip:101@192.0.2.20:5062,30,t',
    ]);
  } finally {
    await bridge.close();
    await odoo.stop();
  }
});
