/**
 * A test peer for the whole Odoo exchange (issue 15): it plays the Odoo 17 + Asterisk Plus 4.2 of
 * test/fixtures/odoo17-asterisk-plus/ against a real daemon. Every job of odoo-to-agent.jsonl is
 * posted as the module posted it (its x-token, its body; recording paths moved into a temporary
 * directory), the AMI events whose handlers the capture shows are sent by the AMI simulator, and
 * then the daemon's calls to Odoo are checked against agent-to-odoo.jsonl: the same login, the same
 * events map query, every forwarded event to the handler the capture shows with the same headers
 * plus a numeric EventTime, every job result to the same res_model.res_method with the same
 * argument shape, and no call the real run did not see but the two settings reads it predates.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { FakeOdoo, recordedExchanges, type RecordedCall } from './helpers/fake-odoo.js';
import { startTestDaemon, waitFor, type TestDaemon } from './helpers/daemon.js';
import { serveModuleSettings } from './helpers/odoo-settings.js';

const SPOOL = '/var/spool/asterisk/monitor/';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-replay-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Rpc {
  service: string;
  method: string;
  args: unknown[];
}
/** the agent's JSON-RPC calls of the capture, in order, with their status */
function recordedRpc(): Array<{ status: number; rpc: Rpc; model?: string; fn?: string; a?: unknown[]; kw?: Record<string, unknown> }> {
  return recordedExchanges('agent-to-odoo')
    .filter((x) => x.path === '/jsonrpc')
    .map((x) => {
      const rpc = (JSON.parse(x.req_body!) as { params: Rpc }).params;
      if (rpc.service !== 'object') return { status: x.status, rpc };
      const [, , , model, fn, a, kw] = rpc.args as [unknown, unknown, unknown, string, string, unknown[], Record<string, unknown>];
      return { status: x.status, rpc, model, fn, a, kw };
    });
}

/** a short 8 kHz mono 16-bit WAV, what MixMonitor writes */
function wav(file: string): void {
  const data = Buffer.alloc(1600);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVEfmt ', 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(8000, 24);
  h.writeUInt32LE(16000, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(data.length, 40);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, Buffer.concat([h, data]));
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

const withoutStamps = (e: Record<string, unknown>): Record<string, unknown> => {
  const { SystemName: _s, EventTime: _t, ...rest } = e;
  return rest;
};
const keysOf = (v: unknown): string[] => (v && typeof v === 'object' && !Array.isArray(v) ? Object.keys(v).sort() : []);
const kindOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v);

/** calls the capture predates, each with why the daemon makes it now */
const NEW_CALLS = new Map([
  ['asterisk_plus.server.search_read', 'the settings kept in Odoo: the AMI fields, at start and on agent.reload_config'],
  ['asterisk_plus.agent_options.search_read', 'the settings kept in Odoo: the agent options, at start and on agent.reload_config'],
  ['asterisk_plus.server.read', "sip.get_peers reads the server's security_token to download the SIP configuration"],
]);

test('the recorded Odoo 17 / Asterisk Plus 4.2 run, replayed: the daemon makes the calls the module expects, with EventTime', async () => {
  const recorded = recordedRpc();
  const login = recorded.find((r) => r.rpc.service === 'common')!.rpc.args as [string, string, string];
  const firstCall = recorded.find((r) => r.rpc.service === 'object')!.rpc.args as [string, number];
  const eventsMap = JSON.parse(recordedExchanges('agent-to-odoo').find((x) => x.req_body?.includes('"asterisk_plus.event","search_read"'))!.resp_body!) as {
    result: unknown[];
  };
  // the Odoo of the capture: its database, agent user, password and uid, its events map
  const odoo = new FakeOdoo({ db: login[0], user: login[1], password: login[2], uid: firstCall[1], eventsMap: eventsMap.result });
  await odoo.start();
  serveModuleSettings(odoo, { server: { ami_host: '127.0.0.1', ami_user: 'guardian' }, options: { fagi_port: '0' } });
  const rec = path.join(tmp, 'monitor');
  const jobs = recordedExchanges('odoo-to-agent').map((x) => ({
    token: (x as unknown as { req_headers: Record<string, string> }).req_headers['x-token']!,
    body: x.req_body!.split(SPOOL).join(`${rec}/`),
    status: x.status,
  }));
  for (const j of jobs) {
    const job = JSON.parse(j.body) as { fun: string; args: unknown };
    if ((job.fun === 'recording.get_file' || job.fun === 'file.delete') && typeof job.args === 'string') wav(job.args);
  }
  const td = await startTestDaemon({
    odoo,
    config: { odoo: { agentToken: jobs[0]!.token, listen: { enabled: true, host: '127.0.0.1', port: 0 }, recordingDirs: [rec] } },
  });
  try {
    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.event', 'search_read').length > 0, 5000, 'the events map');
    await waitFor('AMI logged in', () => td.daemon.ami!.state === 'connected');
    const t0 = Date.now() / 1000;

    // 1. every job, in the capture's order, answered as the capture shows
    for (const j of jobs) assert.equal(await post(td, j.token, j.body), j.status, j.body.slice(0, 80));
    await td.daemon.odoo!.jobs.whenIdle();

    // 2. the AMI events the capture shows forwarded, once each, as Asterisk sent them
    const handled = recorded.filter((r) => r.model && r.fn && kindOf(r.a?.[0]) === 'object' && (r.a![0] as { Event?: unknown }).Event !== undefined);
    const expected = new Map<string, { model: string; fn: string; event: Record<string, unknown> }>();
    for (const r of handled) {
      const event = withoutStamps(r.a![0] as Record<string, unknown>);
      expected.set(`${r.model}.${r.fn} ${JSON.stringify(event)}`, { model: r.model!, fn: r.fn!, event });
    }
    assert.equal(expected.size, 52, 'the capture forwarded 52 distinct events (Newchannel, Newstate, VarSet, UserEvent, Hangup)');
    const frames = new Map<string, Record<string, unknown>>();
    for (const { event } of expected.values()) frames.set(JSON.stringify(event), event);
    td.sim!.broadcast(
      [...frames.values()]
        .map(
          (e) =>
            `${Object.entries(e)
              .map(([k, v]) => `${k}: ${String(v)}`)
              .join('\r\n')}\r\n\r\n`,
        )
        .join(''),
    );
    const isHandled = (c: RecordedCall) => kindOf(c.args[0]) === 'object' && (c.args[0] as { Event?: unknown }).Event !== undefined;
    await odoo.waitFor(() => odoo.calls.filter(isHandled).length >= expected.size, 15_000, `${expected.size} forwarded events`);
    const t1 = Date.now() / 1000;
    const forwarded = odoo.calls.filter(isHandled);
    for (const [id, e] of expected) {
      const hit = forwarded.find(
        (c) => c.model === e.model && c.method === e.fn && JSON.stringify(withoutStamps(c.args[0] as Record<string, unknown>)) === JSON.stringify(e.event),
      );
      assert.ok(hit, `forwarded as the capture shows: ${id.slice(0, 160)}`);
      assert.equal(hit.args.length, 1);
      assert.deepEqual(hit.kwargs, {});
      const ev = hit.args[0] as Record<string, unknown>;
      assert.equal(typeof ev.EventTime, 'number', `EventTime on ${e.fn}`);
      assert.ok((ev.EventTime as number) >= Math.floor(t0) && (ev.EventTime as number) <= t1 + 1, `EventTime of ${e.fn} is when the frame arrived`);
      assert.equal(ev.SystemName, 'pbx-test');
    }
    assert.equal(forwarded.length, expected.size, 'no event forwarded that the capture does not show');

    // 2b. the FastAGI request of the capture, as Asterisk opened it; every AGI command the daemon sends is answered
    const agi = recorded.find((r) => r.fn === 'fagi_request')!;
    odoo.responders.set('asterisk_plus.user.fagi_request', () => ['EXEC MIXMONITOR 2026/12/2/1796191600.30.wav,b', 'PJSIP_DIAL_CONTACTS 101,101 30,t']);
    const env = withoutStamps(agi.a![0] as Record<string, unknown>);
    const fagi = td.daemon.odoo!.fagiAddress!;
    const sent: string[] = [];
    await new Promise<void>((resolve) => {
      const sock = net.connect(fagi.port, '127.0.0.1', () =>
        sock.write(
          `${Object.entries(env)
            .map(([k, v]) => `${k}: ${String(v)}`)
            .join('\n')}\n\n`,
        ),
      );
      let buf = '';
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          sent.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
          sock.write('200 result=1 (PJSIP/101/sip:101@192.0.2.10:5060)\n');
        }
      });
      sock.on('close', () => resolve());
      sock.on('error', () => resolve());
      setTimeout(() => sock.destroy(), 3000);
    });
    const fr = odoo.callsTo('asterisk_plus.user', 'fagi_request');
    assert.equal(fr.length, 1);
    assert.deepEqual(withoutStamps(fr[0]!.args[0] as Record<string, unknown>), env, 'the AGI environment as Asterisk sent it');
    assert.ok(
      sent.some((l) => /^EXEC MIXMONITOR /i.test(l)),
      `AGI commands sent: ${sent.join(' | ')}`,
    );

    // 3. job results: the same model.method, as many, the same argument shape and kwargs
    const results = recorded.filter((r) => r.model && r.fn && !handled.includes(r) && r.model !== 'asterisk_plus.event');
    const byMethod = new Map<string, typeof results>();
    for (const r of results) byMethod.set(`${r.model}.${r.fn}`, [...(byMethod.get(`${r.model}.${r.fn}`) ?? []), r]);
    assert.deepEqual([...byMethod.keys()].sort(), [
      'asterisk_plus.recording.file_delete_result',
      'asterisk_plus.recording.upload_recording',
      'asterisk_plus.recording.upload_voicemail',
      'asterisk_plus.server.originate_call_response',
      'asterisk_plus.settings.asterisk_plus_notify',
      'asterisk_plus.user.fagi_request',
    ]);
    for (const [m, rs] of byMethod) {
      const [model, fn] = [m.slice(0, m.lastIndexOf('.')), m.slice(m.lastIndexOf('.') + 1)];
      const ours = odoo.callsTo(model, fn);
      if (fn !== 'asterisk_plus_notify') assert.equal(ours.length, rs.length, `${m}: one call per job`);
      else assert.ok(ours.length >= rs.length, `${m}: a notice per job with res_notify_uid`);
      const kinds = new Set(rs.map((r) => kindOf(r.a![0])));
      const allowedKeys = new Set(rs.flatMap((r) => keysOf(r.a![0])));
      const kwKeys = new Set(rs.map((r) => JSON.stringify(keysOf(r.kw))));
      for (const c of ours) {
        assert.equal(c.args.length, 1, `${m}: one positional argument`);
        assert.ok(kinds.has(kindOf(c.args[0])), `${m}: a ${[...kinds].join('/')}, got ${kindOf(c.args[0])}`);
        for (const k of keysOf(c.args[0])) assert.ok(allowedKeys.has(k), `${m}: key ${k} is one the module got in the capture`);
        assert.ok(kwKeys.has(JSON.stringify(keysOf(c.kwargs))), `${m}: kwargs ${JSON.stringify(keysOf(c.kwargs))}`);
      }
    }
    // pass_back comes back as kwargs, paths as the job named them
    const up = odoo.callsTo('asterisk_plus.recording', 'upload_recording');
    for (const r of byMethod.get('asterisk_plus.recording.upload_recording')!)
      assert.ok(
        up.some((c) => c.kwargs.call_id === r.kw!.call_id && c.kwargs.file_path === String(r.kw!.file_path).split(SPOOL).join(`${rec}/`)),
        `upload_recording with call_id ${String(r.kw!.call_id)}`,
      );
    assert.deepEqual(odoo.callsTo('asterisk_plus.recording', 'file_delete_result')[0]!.args, [true]);
    assert.equal(fs.existsSync(path.join(rec, 'del-me.wav')), false);

    // 4. the login and the events map query exactly as recorded; nothing the real run did not see
    for (const l of odoo.logins) assert.deepEqual(l.args, login);
    const mapQuery = recorded.find((r) => r.model === 'asterisk_plus.event')!;
    for (const c of odoo.callsTo('asterisk_plus.event', 'search_read')) {
      assert.deepEqual(c.args, mapQuery.a);
      assert.deepEqual(c.kwargs, mapQuery.kw);
    }
    const seen = new Set(recorded.filter((r) => r.model).map((r) => `${r.model}.${r.fn}`));
    const unknown = odoo.calls.map((c) => `${c.model}.${c.method}`).filter((m) => !seen.has(m) && !NEW_CALLS.has(m));
    assert.deepEqual([...new Set(unknown)], []);
    assert.ok(odoo.callsTo('asterisk_plus.agent_options', 'search_read').length >= 2, 'the settings read at start and on agent.reload_config');
    assert.deepEqual(odoo.violations, []);
  } finally {
    await td.close();
  }
});
