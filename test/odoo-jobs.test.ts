import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startOdooBridge, type OdooBridge, type OdooConfigInput } from '../src/odoo/index.js';
import { FakeOdoo, FakeAmi, FakeBans, amiMessage, parseFrames, recordedExchanges } from './helpers/fake-odoo.js';

const log = pino({ level: 'silent' });
const TOKEN = 'f1c3a0de-5b2b-4c4e-9d7e-1234567890ab';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-odoo-jobs-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Env {
  bridge: OdooBridge;
  odoo: FakeOdoo;
  ami: FakeAmi;
  bans: FakeBans;
  reloads: number;
  close(): Promise<void>;
}

async function setup(cfg: OdooConfigInput = {}, odooOpts: ConstructorParameters<typeof FakeOdoo>[0] = {}): Promise<Env> {
  const odoo = new FakeOdoo(odooOpts);
  await odoo.start();
  const ami = new FakeAmi();
  const bans = new FakeBans();
  const env = { reloads: 0 } as Env;
  const bridge = await startOdooBridge({
    config: {
      url: odoo.url,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      apiKey: odoo.apiKey,
      agentToken: TOKEN,
      listen: { enabled: true, host: '127.0.0.1', port: 0 },
      recordingDirs: [path.join(tmp, 'rec')],
      systemName: 'pbx1',
      ...cfg,
    },
    ami,
    bans,
    db: new Database(':memory:'),
    logger: log,
    registry: new Registry(),
    stateDir: path.join(tmp, 'state'),
    reloadConfig: () => {
      env.reloads++;
    },
  });
  Object.assign(env, {
    bridge,
    odoo,
    ami,
    bans,
    async close() {
      await bridge.close();
      await odoo.stop();
    },
  });
  return env;
}

function post(env: Env, body: unknown, token: string | null = TOKEN): Promise<{ status: number; body: string }> {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: env.bridge.agentAddress!.port,
        path: '/app/asterisk_plus/agent',
        method: 'POST',
        rejectUnauthorized: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...(token !== null ? { 'x-token': token } : {}) },
      },
      (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

test('test.ping runs in the background and its result reaches res_model.res_method with pass_back', async () => {
  const env = await setup();
  try {
    const r = await post(env, {
      fun: 'test.ping',
      args: [],
      kwargs: {},
      res_model: 'asterisk_plus.server',
      res_method: 'ping_reply',
      res_notify_uid: 2,
      res_notify_title: 'PBX',
      pass_back: { notify_uid: 2, server_id: 1 },
    });
    assert.equal(r.status, 200);
    const j = JSON.parse(r.body) as { job_id: string };
    assert.match(j.job_id, /^[0-9a-f-]{36}$/);
    await env.odoo.waitFor(() => env.odoo.callsTo('asterisk_plus.server', 'ping_reply').length === 1, 5000, 'ping result');
    const c = env.odoo.callsTo('asterisk_plus.server', 'ping_reply')[0]!;
    assert.deepEqual(c.args, [true]);
    assert.deepEqual(c.kwargs, { notify_uid: 2, server_id: 1 });
    assert.equal(env.odoo.logins.length, 1);
    assert.deepEqual(env.odoo.logins[0]!.args, [env.odoo.db, env.odoo.user, env.odoo.password]);
    // no pass_back → {} kwargs; agent.reload_config and its alias call the reload callback
    await post(env, { fun: 'agent.reload_config', res_model: 'm.x', res_method: 'done' });
    await post(env, { fun: 'agent_reload_config', args: 'scalar-arg' });
    await env.odoo.waitFor(() => env.odoo.callsTo('m.x', 'done').length === 1);
    assert.deepEqual(env.odoo.callsTo('m.x', 'done')[0]!.kwargs, {});
    await env.bridge.jobs.whenIdle();
    assert.equal(env.reloads, 2);
    assert.deepEqual(env.odoo.violations, []);
  } finally {
    await env.close();
  }
});

test('wrong or missing token → 401; oversized body → 413; bad body → 400', async () => {
  const env = await setup({ bodyLimitBytes: 4096 });
  try {
    assert.equal((await post(env, { fun: 'test.ping' }, 'wrong')).status, 401);
    assert.equal((await post(env, { fun: 'test.ping' }, TOKEN + 'x')).status, 401);
    assert.equal((await post(env, { fun: 'test.ping' }, null)).status, 401);
    assert.equal((await post(env, { fun: 'test.ping', args: 'x'.repeat(10_000) })).status, 413);
    assert.equal((await post(env, { args: [] })).status, 400);
    assert.equal((await post(env, '{not json')).status, 400);
    // args as dict, list or scalar all accepted
    for (const args of [{ a: 1 }, [1, 2], 'path', 42, null]) assert.equal((await post(env, { fun: 'test.ping', args })).status, 200);
    assert.equal(env.bridge.jobs.counters.accepted, 5);
  } finally {
    await env.close();
  }
});

test('queue full → 503', async () => {
  const env = await setup({ jobQueueMax: 2, jobConcurrency: 1 });
  try {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    env.ami.handler = async () => {
      await gate;
      return { response: amiMessage([['Response', 'Success']]), events: [] };
    };
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) codes.push((await post(env, { fun: 'asterisk.manager_action', args: { Action: 'Ping' } })).status);
    assert.ok(codes.includes(503), `codes ${codes}`);
    assert.equal(codes.filter((c) => c === 200).length, 3); // one running + two queued
    release();
    await env.bridge.jobs.whenIdle();
  } finally {
    await env.close();
  }
});

test('asterisk.manager_action: dict result, event lists as lists, as_list, Originate pass_back', async () => {
  const env = await setup();
  try {
    const raw = fs.readFileSync(new URL('../../test/fixtures/ami/action-sippeers.raw', import.meta.url), 'utf8');
    const frames = parseFrames(raw);
    env.ami.handler = (f) => {
      if (f.Action === 'SIPpeers') return { response: frames[0]!, events: frames.slice(1, -1), complete: frames[frames.length - 1]! };
      if (f.Action === 'Originate')
        return {
          response: amiMessage([
            ['Response', 'Success'],
            ['Message', 'Originate successfully queued'],
          ]),
          events: [],
        };
      return {
        response: amiMessage([
          ['Response', 'Success'],
          ['Ping', 'Pong'],
        ]),
        events: [],
      };
    };
    await post(env, { fun: 'asterisk.manager_action', args: { Action: 'Ping' }, kwargs: {}, res_model: 'r.m', res_method: 'one' });
    await post(env, { fun: 'asterisk.manager_action', args: { Action: 'Ping' }, kwargs: { as_list: true }, res_model: 'r.m', res_method: 'two' });
    await post(env, { fun: 'asterisk.manager_action', args: { Action: 'SIPpeers' }, res_model: 'r.m', res_method: 'three' });
    const orig = {
      Action: 'Originate',
      Async: 'true',
      Channel: 'PJSIP/100',
      Context: 'from-internal',
      Exten: '200',
      Priority: '1',
      Timeout: 60000,
      ChannelId: 'c1',
      OtherChannelId: 'c2',
      Variable: ['A=1', 'B=2'],
    };
    await post(env, {
      fun: 'asterisk.manager_action',
      args: orig,
      res_model: 'asterisk_plus.server',
      res_method: 'originate_call_response',
      pass_back: { notify_uid: 2, channel_id: 'c1' },
    });
    await env.odoo.waitFor(() => env.odoo.calls.filter((c) => c.model === 'r.m' || c.method === 'originate_call_response').length === 4);
    assert.deepEqual(env.odoo.callsTo('r.m', 'one')[0]!.args, [{ Response: 'Success', Ping: 'Pong' }]);
    assert.deepEqual(env.odoo.callsTo('r.m', 'two')[0]!.args, [[{ Response: 'Success', Ping: 'Pong' }]]);
    const three = env.odoo.callsTo('r.m', 'three')[0]!.args[0] as Array<Record<string, string>>;
    assert.equal(three.length, 3);
    assert.equal(three[1]!.Event, 'PeerEntry');
    assert.equal(three[1]!.ObjectName, '100');
    assert.equal(three[2]!.Event, 'PeerlistComplete');
    const o = env.odoo.callsTo('asterisk_plus.server', 'originate_call_response')[0]!;
    assert.deepEqual(o.kwargs, { notify_uid: 2, channel_id: 'c1' });
    assert.deepEqual(
      env.ami.actions.find((a) => a.Action === 'Originate'),
      orig,
    );
    assert.deepEqual(env.odoo.violations, []);
  } finally {
    await env.close();
  }
});

test('ReloadEvents pseudo-action downloads the events map again', async () => {
  const env = await setup();
  try {
    await env.odoo.waitFor(() => env.odoo.callsTo('asterisk_plus.event', 'search_read').length >= 1);
    env.odoo.eventsMap = [{ id: 1, name: 'Hangup', source: 'AMI', model: 'asterisk_plus.channel', method: 'on_ami_hangup', delay: 0, condition: false }];
    await post(env, { fun: 'asterisk.manager_action', args: { Action: 'ReloadEvents' }, res_model: 'r.m', res_method: 'reloaded' });
    await env.odoo.waitFor(() => env.odoo.callsTo('r.m', 'reloaded').length === 1);
    assert.equal(env.odoo.callsTo('asterisk_plus.event', 'search_read').length, 2);
    assert.deepEqual(env.odoo.callsTo('r.m', 'reloaded')[0]!.args, [{ Response: true }]);
    assert.equal(env.ami.actions.length, 0);
    env.bridge.handleAmiEvent(
      amiMessage([
        ['Event', 'Hangup'],
        ['Channel', 'SIP/1-1'],
        ['Uniqueid', '1.1'],
      ]),
    );
    await env.odoo.waitFor(() => env.odoo.callsTo('asterisk_plus.channel', 'on_ami_hangup').length === 1);
  } finally {
    await env.close();
  }
});

test('CR/LF injection, denied actions and shell-running Originates are refused with a clear error result', async () => {
  const env = await setup({ deniedActions: ['ModuleLoad'] });
  try {
    const jobs: Array<[string, unknown]> = [
      ['crlf', { Action: 'Ping', Foo: 'x\r\nAction: Originate' }],
      ['lf-key', { Action: 'Ping', 'Bad\nKey': 'v' }],
      ['crlf-list', { Action: 'Originate', Variable: ['A=1', 'B=2\nAction: Command'] }],
      ['denied', { Action: 'moduleload', Module: 'x.so' }],
      ['system', { Action: 'Originate', Channel: 'Local/1@x', Application: 'System', Data: 'touch /tmp/pwn' }],
      ['trysystem', { Action: 'Originate', Channel: 'Local/1@x', Application: 'trysystem', Data: 'id' }],
      ['exec', { Action: 'Originate', Channel: 'Local/1@x', Application: 'Exec', Data: 'System(id)' }],
      ['shell', { Action: 'Originate', Channel: 'Local/1@x', Application: 'Set', Data: 'X=${SHELL(id)}' }],
      ['noaction', { Foo: 'bar' }],
    ];
    for (const [name, args] of jobs) {
      assert.equal((await post(env, { fun: 'asterisk.manager_action', args, res_model: 'r.m', res_method: name, res_notify_uid: 5 })).status, 200);
    }
    await env.odoo.waitFor(() => env.odoo.calls.filter((c) => c.model === 'r.m').length === jobs.length);
    for (const [name] of jobs) {
      const r = env.odoo.callsTo('r.m', name)[0]!.args[0] as { Response: string; Message: string };
      assert.equal(r.Response, 'Error', name);
      assert.match(r.Message, name === 'noaction' ? /no "Action"/ : /refused/, name);
    }
    assert.equal(env.ami.actions.length, 0, 'nothing reached AMI');
    // errors notified to res_notify_uid
    await env.odoo.waitFor(() => env.odoo.callsTo('asterisk_plus.settings', 'asterisk_plus_notify').length === jobs.length);
    const n = env.odoo.callsTo('asterisk_plus.settings', 'asterisk_plus_notify')[0]!;
    assert.equal(typeof n.args[0], 'string');
    assert.equal(n.kwargs.notify_uid, 5);
    assert.equal(n.kwargs.warning, true);
    // Command goes through the console policy: without one (no console wired) it is refused
    await post(env, { fun: 'asterisk.manager_action', args: { Action: 'Command', Command: 'core show version' } });
    await env.bridge.jobs.whenIdle();
    assert.equal(env.ami.actions.length, 0);
  } finally {
    await env.close();
  }
});

test('recording.get_file / file.delete: confined to the recording dirs, no ../, no symlink escape, size limit; mp3 asked without an encoder sends the file as it is', async () => {
  const rec = path.join(tmp, 'rec');
  fs.mkdirSync(path.join(rec, '2024/01/02'), { recursive: true });
  fs.writeFileSync(path.join(rec, '2024/01/02/call.wav'), Buffer.from('RIFFdata'));
  fs.writeFileSync(path.join(rec, 'big.wav'), Buffer.alloc(2048));
  fs.writeFileSync(path.join(tmp, 'secret.txt'), 'secret');
  fs.symlinkSync(path.join(tmp, 'secret.txt'), path.join(rec, 'link.wav'));
  fs.symlinkSync(tmp, path.join(rec, 'dirlink'));
  fs.writeFileSync(path.join(rec, 'del.wav'), 'x');
  const env = await setup({ recordingMaxBytes: 1024, lamePath: '/nonexistent/lame', ffmpegPath: '/nonexistent/ffmpeg' });
  try {
    const send = (m: string, fun: string, args: unknown, kwargs = {}) =>
      post(env, { fun, args, kwargs, res_model: 'asterisk_plus.recording', res_method: m, pass_back: { call_id: 9 } });
    await send('ok', 'recording.get_file', path.join(rec, '2024/01/02/call.wav'));
    await send('rel', 'recording.get_file', '2024/01/02/call.wav');
    await send('dotdot', 'recording.get_file', path.join(rec, '../secret.txt'));
    await send('symlink', 'recording.get_file', path.join(rec, 'link.wav'));
    await send('dirlink', 'recording.get_file', path.join(rec, 'dirlink/secret.txt'));
    await send('abs', 'recording.get_file', '/etc/passwd');
    await send('big', 'recording.get_file', path.join(rec, 'big.wav'));
    await send('mp3', 'recording.get_file', path.join(rec, '2024/01/02/call.wav'), { file_format: 'mp3' });
    await send('del_escape', 'file.delete', path.join(rec, '../secret.txt'));
    await send('del_ok', 'file.delete', path.join(rec, 'del.wav'));
    await env.odoo.waitFor(() => env.odoo.calls.filter((c) => c.model === 'asterisk_plus.recording').length === 10, 5000);
    const res = (m: string) => env.odoo.callsTo('asterisk_plus.recording', m)[0]!.args[0] as Record<string, string>;
    assert.equal(Buffer.from(res('ok').file_data!, 'base64').toString(), 'RIFFdata');
    assert.equal(res('ok').file_name, 'call.wav');
    assert.equal(env.odoo.callsTo('asterisk_plus.recording', 'ok')[0]!.kwargs.call_id, 9);
    assert.equal(Buffer.from(res('rel').file_data!, 'base64').toString(), 'RIFFdata');
    for (const m of ['dotdot', 'symlink', 'dirlink', 'abs', 'del_escape']) {
      assert.match(res(m).error ?? '', /outside the recording directories/, m);
      assert.equal(res(m).file_data, undefined, m);
    }
    assert.match(res('big').error!, /recordingMaxBytes/);
    // no encoder: the recording still reaches Odoo (as the earlier agents did), unconverted
    assert.equal(res('mp3').error, undefined);
    assert.equal(res('mp3').file_name, 'call.wav');
    assert.equal(Buffer.from(res('mp3').file_data!, 'base64').toString(), 'RIFFdata');
    assert.equal(env.odoo.callsTo('asterisk_plus.recording', 'del_ok')[0]!.args[0], true);
    assert.ok(!fs.existsSync(path.join(rec, 'del.wav')));
    assert.ok(fs.existsSync(path.join(tmp, 'secret.txt')));
  } finally {
    await env.close();
  }
});

test("sip.get_peers (the module's Apply SIP peers: args = server id) downloads Odoo's SIP configuration with the server's security token and applies it through config sync", async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'etc-asterisk-'));
  fs.writeFileSync(path.join(dir, 'pjsip_wizard.conf'), '[global-wizard](!)\ntype = wizard\n');
  fs.writeFileSync(path.join(dir, 'pjsip.conf'), '[transport-udp]\ntype = transport\n');
  const ami = new FakeAmi();
  ami.handler = () => ({
    response: amiMessage([
      ['Response', 'Success'],
      ['Message', 'Module Reloaded'],
    ]),
    events: [],
  });
  const { AsteriskConfigFiles, defaultAsteriskConfigConfig } = await import('../src/asterisk-config/index.js');
  const files = new AsteriskConfigFiles({ ...defaultAsteriskConfigConfig(), dir }, ami);
  const odoo = new FakeOdoo();
  await odoo.start();
  // what the module's default template makes of one PBX user (server.py DEFAULT_SIP_TEMPLATE)
  const peers = '[101](udp-user)\ninbound_auth/username = 101\ninbound_auth/password = s3cr3t-101\nendpoint/callerid = Alice <101>\nhint_exten = 101\n';
  odoo.sipPeers = { securityToken: '5a0c2f0e-security-token', text: peers };
  odoo.responders.set('asterisk_plus.server.read', (c) => (JSON.stringify(c.args[0]) === '[1]' ? [{ id: 1, security_token: '5a0c2f0e-security-token' }] : []));
  const bridge = await startOdooBridge({
    config: {
      url: odoo.url,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      agentToken: TOKEN,
      listen: { enabled: true, host: '127.0.0.1', port: 0 },
      systemName: 'pbx1',
    },
    ami,
    bans: new FakeBans(),
    db: new Database(':memory:'),
    logger: log,
    registry: new Registry(),
    stateDir: path.join(tmp, 'state'),
    reloadConfig: () => undefined,
    configSync: files,
  });
  const env = { bridge } as Env;
  const notices = () => odoo.callsTo('asterisk_plus.settings', 'asterisk_plus_notify');
  try {
    // the recorded request: {"fun": "sip.get_peers", "args": 1, "res_notify_uid": 2, ...}
    const recorded = recordedJobs().find((j) => j.fun === 'sip.get_peers')!;
    assert.equal(recorded.args, 1);
    assert.equal((await post(env, recorded)).status, 200);
    await odoo.waitFor(() => notices().length === 1, 5000, 'the outcome notice');
    assert.deepEqual(odoo.sipPeersRequests, [{ token: '5a0c2f0e-security-token' }]);
    assert.equal(fs.readFileSync(path.join(dir, 'pjsip_wizard_odoo.conf'), 'utf8'), peers);
    assert.match(fs.readFileSync(path.join(dir, 'pjsip_wizard.conf'), 'utf8'), /^#include pjsip_wizard_odoo\.conf$/m);
    assert.deepEqual(
      ami.actions.map((a) => `${a.Action} ${a.Module}`),
      ['Reload res_pjsip.so'],
    );
    const n = notices()[0]!;
    assert.equal(n.kwargs.warning, false);
    assert.equal(n.kwargs.notify_uid, 2);
    assert.match(n.args[0] as string, /^sip\.get_peers: OK\nfile: pjsip_wizard_odoo\.conf\n/);
    assert.doesNotMatch(n.args[0] as string, /s3cr3t/, "the peers' passwords are not in the notice");
    // the same again: nothing changed, nothing reloaded
    await post(env, recorded);
    await odoo.waitFor(() => notices().length === 2);
    assert.equal(ami.actions.length, 1);
    assert.match(notices()[1]!.args[0] as string, /reload: not needed/);
    // what the module answers when the token is wrong, or when Odoo tries to make Asterisk run or read something
    const refused = async (text: string | null, re: RegExp) => {
      odoo.sipPeers = text === null ? { securityToken: 'another', text: peers } : { securityToken: '5a0c2f0e-security-token', text };
      const before = notices().length;
      await post(env, recorded);
      await odoo.waitFor(() => notices().length === before + 1);
      const last = notices().at(-1)!;
      assert.equal(last.kwargs.warning, true);
      assert.match(last.args[0] as string, re);
    };
    await refused(null, /HTTP 400: Bad token!/);
    await refused('[101](udp-user)\n#exec /usr/bin/id\n', /#exec line: not applied/);
    await refused('[101](udp-user)\n  #include /etc/asterisk/manager.conf\n', /#include line: not applied/);
    await refused('<html>login</html>', /no configuration section/);
    await post(env, { fun: 'sip.get_peers', args: 'x', res_notify_uid: 2 });
    await odoo.waitFor(() => /server id/.test(notices().at(-1)!.args[0] as string));
    assert.equal(fs.readFileSync(path.join(dir, 'pjsip_wizard_odoo.conf'), 'utf8'), peers, 'a refused answer changes nothing');
    assert.equal(ami.actions.length, 1);
    // plain PJSIP objects (no wizard) go to pjsip_odoo.conf
    const { sipPeersFile } = await import('../src/odoo/job-sip-peers.js');
    assert.equal(sipPeersFile('[101]\ntype=endpoint\n'), 'pjsip_odoo.conf');
    assert.equal(sipPeersFile('[101](udp-user)\ninbound_auth/username = 101\n'), 'pjsip_wizard_odoo.conf');
    assert.equal(sipPeersFile('[101]\ntype = wizard ; the wizard\n'), 'pjsip_wizard_odoo.conf');
    assert.deepEqual(odoo.violations, []);
  } finally {
    await bridge.close();
    await odoo.stop();
  }
});

test('sip.get_peers without config sync says so (asteriskConfig.enabled: false)', async () => {
  const env = await setup();
  try {
    await post(env, { fun: 'sip.get_peers', args: 1, res_model: 'asterisk_plus.server', res_method: 'peers' });
    await env.odoo.waitFor(() => env.odoo.callsTo('asterisk_plus.server', 'peers').length === 1);
    assert.match((env.odoo.callsTo('asterisk_plus.server', 'peers')[0]!.args[0] as { error: string }).error, /config sync is off/);
    assert.equal(env.ami.actions.length, 0);
  } finally {
    await env.close();
  }
});

test('a ban and an unban from Odoo reach BanControl (new names and old aliases)', async () => {
  const env = await setup();
  try {
    const R = { res_model: 'asterisk_plus.security', res_method: '' };
    await post(env, { fun: 'security.ban', args: { address: '203.0.113.9', timeout: 600, comment: 'from odoo' }, ...R, res_method: 'ban' });
    await post(env, { fun: 'security.ban', args: '127.0.0.1', ...R, res_method: 'ban_allow' });
    await post(env, { fun: 'security.ban', args: 'rm -rf /', ...R, res_method: 'ban_bad' });
    await env.bridge.jobs.whenIdle();
    await post(env, { fun: 'security.get_banned', ...R, res_method: 'list' });
    await post(env, { fun: 'get_banned', ...R, res_method: 'list_old' });
    await env.bridge.jobs.whenIdle();
    await post(env, { fun: 'security.unban', args: '203.0.113.9', ...R, res_method: 'unban' });
    await post(env, { fun: 'remove_banned_addresses', args: [['198.51.100.1']], ...R, res_method: 'unban_old' });
    await post(env, {
      fun: 'update_access_rules',
      args: [
        [
          { address: '10.0.0.0', netmask: '255.255.255.0', address_type: 'net', access_type: 'allow', comment: 'office' },
          { address: '192.0.2.5', access_type: 'deny', address_type: 'ip', comment: 'x' },
        ],
      ],
      ...R,
      res_method: 'rules',
    });
    await env.odoo.waitFor(() => env.odoo.calls.filter((c) => c.model === 'asterisk_plus.security').length === 8);
    const r = (m: string) => env.odoo.callsTo('asterisk_plus.security', m)[0]!.args[0];
    assert.equal((r('ban') as Array<Record<string, unknown>>)[0]!.banned, true);
    assert.equal((r('ban') as Array<Record<string, unknown>>)[0]!.comment, 'from odoo');
    assert.match(String((r('ban_allow') as Array<Record<string, unknown>>)[0]!.error), /allow-listed/);
    assert.match(String((r('ban_bad') as Array<Record<string, unknown>>)[0]!.error), /not an IP/);
    assert.equal((r('list') as Array<Record<string, unknown>>)[0]!.address, '203.0.113.9');
    assert.deepEqual(r('list'), r('list_old'));
    assert.deepEqual(r('unban'), [{ address: '203.0.113.9', unbanned: true }]);
    assert.deepEqual(r('unban_old'), [{ address: '198.51.100.1', unbanned: false }]);
    assert.deepEqual(r('rules'), { allow: 1, deny: 1 });
    assert.deepEqual(env.bans.calls, [
      'ban 203.0.113.9',
      'ban 127.0.0.1',
      'ban rm -rf /',
      'unban 203.0.113.9',
      'unban 198.51.100.1',
      'rules {"allow":["10.0.0.0/24"],"deny":["192.0.2.5"]}',
    ]);
    assert.equal(env.bans.bans.size, 0);
  } finally {
    await env.close();
  }
});

test('unknown fun → error result; re-login when the uid is rejected; JSON-2 transport', async () => {
  const env = await setup();
  try {
    await post(env, { fun: 'cmd.run', args: ['id'], res_model: 'r.m', res_method: 'unk' });
    await env.odoo.waitFor(() => env.odoo.callsTo('r.m', 'unk').length === 1);
    assert.match((env.odoo.callsTo('r.m', 'unk')[0]!.args[0] as { error: string }).error, /unknown function/);
    env.odoo.uid = 8; // Odoo re-created the user: the cached uid is now refused
    await post(env, { fun: 'test.ping', res_model: 'r.m', res_method: 'after' });
    await env.odoo.waitFor(() => env.odoo.callsTo('r.m', 'after').length === 1);
    assert.ok(env.odoo.logins.length >= 2);
  } finally {
    await env.close();
  }
  const e2 = await setup({ transport: 'json2' });
  try {
    await post(e2, { fun: 'test.ping', res_model: 'asterisk_plus.server', res_method: 'originate_call_response', pass_back: { channel_id: 'c9' } });
    await e2.odoo.waitFor(() => e2.odoo.callsTo('asterisk_plus.server', 'originate_call_response').length === 1);
    const c = e2.odoo.callsTo('asterisk_plus.server', 'originate_call_response')[0]!;
    assert.equal(c.transport, 'json2');
    assert.deepEqual(c.kwargs, { channel_id: 'c9', data: true });
    assert.equal(e2.odoo.logins.length, 0);
    assert.deepEqual(e2.odoo.violations, []);
  } finally {
    await e2.close();
  }
});

test('per-job timeout gives an error result; metrics are defined with the agreed prefixes', async () => {
  const odoo = new FakeOdoo();
  await odoo.start();
  const ami = new FakeAmi();
  ami.handler = () => new Promise(() => undefined); // AMI never answers
  const registry = new Registry();
  const bridge = await startOdooBridge({
    config: {
      url: odoo.url,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      agentToken: TOKEN,
      listen: { enabled: true, host: '127.0.0.1', port: 0 },
      jobTimeoutMs: 200,
    },
    ami,
    bans: new FakeBans(),
    db: new Database(':memory:'),
    logger: log,
    registry,
    stateDir: path.join(tmp, 'state'),
    reloadConfig: () => undefined,
  });
  const env = { bridge } as Env;
  try {
    await post(env, { fun: 'asterisk.manager_action', args: { Action: 'Status' }, kwargs: { as_list: true }, res_model: 'r.m', res_method: 'slow' });
    await odoo.waitFor(() => odoo.callsTo('r.m', 'slow').length === 1);
    const r = odoo.callsTo('r.m', 'slow')[0]!.args[0] as Array<{ Response: string; Message: string }>;
    assert.equal(r[0]!.Response, 'Error');
    assert.match(r[0]!.Message, /timed out after 200 ms/);
    const text = await registry.metrics();
    for (const m of [
      'pbx_guardian_odoo_rpc_calls_total',
      'pbx_guardian_outbox_depth',
      'pbx_guardian_outbox_oldest_age_seconds',
      'pbx_guardian_outbox_dropped_total',
      'pbx_guardian_jobs_accepted_total',
      'pbx_guardian_jobs_completed_total',
      'pbx_guardian_jobs_queued',
    ]) {
      assert.ok(text.includes(m), m);
    }
    assert.match(text, /pbx_guardian_jobs_completed_total\{fun="asterisk.manager_action",outcome="error"\} 1/);
  } finally {
    await bridge.close();
    await odoo.stop();
  }
});

/** The jobs a real Odoo 17 with Asterisk Plus 4.2 sent (test/fixtures/odoo17-asterisk-plus/). */
function recordedJobs(): Array<Record<string, unknown>> {
  return recordedExchanges('odoo-to-agent').map((x) => JSON.parse(x.req_body!) as Record<string, unknown>);
}

test("job outcomes reach res_notify_uid (the module's Ping Agent, Ping Asterisk, System Information, Reload buttons; recorded jobs)", async () => {
  const env = await setup();
  const coreStatus = fs.readFileSync(new URL('../../test/fixtures/ami/action-corestatus.raw', import.meta.url), 'latin1');
  env.ami.handler = (f) => ({
    response:
      f.Action === 'CoreStatus'
        ? parseFrames(coreStatus)[0]!
        : amiMessage([
            ['Response', 'Success'],
            ['Ping', 'Pong'],
            ['Timestamp', '1796191368.2'],
          ]),
    events: [],
  });
  try {
    const recorded = recordedJobs();
    const pick = (fun: string, action?: string) =>
      recorded.find((j) => j.fun === fun && (action === undefined || (j.args as { Action?: string }).Action === action))!;
    const buttons = [
      pick('test.ping'),
      pick('asterisk.manager_action', 'Ping'),
      pick('asterisk.manager_action', 'CoreStatus'),
      pick('agent.reload_config'),
      pick('recording.get_transcript'),
    ];
    for (const j of buttons) {
      assert.equal(j.res_model, null, `${String(j.fun)} is sent without res_model`);
      assert.equal((await post(env, j)).status, 200);
    }
    const notices = () => env.odoo.callsTo('asterisk_plus.settings', 'asterisk_plus_notify');
    await env.odoo.waitFor(() => notices().length === buttons.length, 5000, 'a notice per job');
    const byText = (re: RegExp) => notices().find((n) => re.test(n.args[0] as string));
    const ping = byText(/^test\.ping: OK$/);
    assert.ok(ping, 'test.ping: OK');
    assert.deepEqual(ping.kwargs, { title: 'Async', notify_uid: 2, warning: false });
    const core = byText(/^asterisk\.manager_action: OK\n/);
    assert.ok(
      core,
      notices()
        .map((n) => n.args[0])
        .join(' | '),
    );
    const coreNotice = notices().find((n) => /CoreCurrentCalls/.test(n.args[0] as string));
    assert.ok(coreNotice, 'the CoreStatus output reaches the user');
    assert.match(coreNotice.args[0] as string, /^CoreStartupDate: 2026-11-22$/m);
    assert.match(coreNotice.args[0] as string, /^CoreCurrentCalls: 0$/m);
    assert.match(coreNotice.args[0] as string, /^asterisk\.manager_action: OK\nResponse: Success/);
    assert.ok(
      notices().some((n) => /Ping: Pong/.test(n.args[0] as string)),
      'Ping Asterisk shows Pong',
    );
    const reload = byText(/^agent\.reload_config: OK$/);
    assert.equal(reload?.kwargs.title, 'Reload Config');
    assert.equal(env.reloads, 1);
    // transcription: a clear notice, not an error toast, and the API key it carried shown nowhere
    const transcript = byText(/^recording\.get_transcript: /)!;
    assert.match(transcript.args[0] as string, /transcription is not available on this agent/);
    assert.match(transcript.args[0] as string, /1796191368\.20\.wav was not transcribed/);
    assert.equal(transcript.kwargs.warning, false);
    assert.ok(!notices().some((n) => JSON.stringify(n).includes('openai')));
    // a failure stays a warning with its message
    await post(env, { fun: 'asterisk.manager_action', args: { Action: 'ModuleLoad', Module: 'x.so' }, res_notify_uid: 7, res_notify_title: 'PBX' });
    await env.odoo.waitFor(() => notices().length === buttons.length + 1);
    const failed = notices().at(-1)!;
    assert.equal(failed.kwargs.warning, true);
    assert.equal(failed.kwargs.notify_uid, 7);
    assert.match(failed.args[0] as string, /refused/);
    // a job without res_notify_uid notifies nobody
    await post(env, { fun: 'test.ping' });
    await env.bridge.jobs.whenIdle();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(notices().length, buttons.length + 1);
  } finally {
    await env.close();
  }
});

test('a notice is bounded and never shows a file or a secret', async () => {
  const { successNotice, NOTIFY_MAX_CHARS } = await import('../src/odoo/notify.js');
  assert.equal(successNotice('test.ping', true), 'test.ping: OK');
  assert.equal(successNotice('x', { file_name: 'a.mp3', file_data: 'QUJD', password: 'p' }), 'x: OK\nfile_name: a.mp3');
  assert.equal(successNotice('x', [{ A: '1' }, { B: '2' }]), 'x: OK\nA: 1\n\nB: 2');
  const big = successNotice('x', 'y'.repeat(100_000));
  assert.ok(big.length <= NOTIFY_MAX_CHARS + 40, String(big.length));
  assert.match(big, /more characters\)$/);
  const many = successNotice(
    'x',
    Array.from({ length: 100_000 }, (_, i) => ({ Event: 'PeerEntry', ObjectName: String(i) })),
  );
  assert.ok(many.length <= NOTIFY_MAX_CHARS + 40);
});
