import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startOdooBridge, type OdooBridge, type OdooConfigInput } from '../src/odoo/index.js';
import { Outbox } from '../src/store/outbox.js';
import { FakeOdoo, FakeAmi, FakeBans, amiMessage } from './helpers/fake-odoo.js';

const log = pino({ level: 'silent' });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-odoo-fwd-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const MAP = [
  {
    id: 1,
    name: 'OriginateResponse',
    source: 'AMI',
    model: 'asterisk_plus.channel',
    method: 'on_ami_originate_response_failure',
    delay: 0.05,
    condition: "event['Response'] == 'Failure'",
  },
  { id: 2, name: 'Hangup', source: 'AMI', model: 'asterisk_plus.channel', method: 'on_ami_hangup', delay: 0.15, condition: false },
  {
    id: 3,
    name: 'Newchannel',
    source: 'AMI',
    model: 'asterisk_plus.channel',
    method: 'on_ami_new_channel',
    delay: 0,
    condition: "not event['Channel'].startswith('Local/')",
  },
  {
    id: 4,
    name: 'Newstate',
    source: 'AMI',
    model: 'asterisk_plus.channel',
    method: 'on_ami_update_channel_state',
    delay: 0,
    condition: "not (event['Channel'].startswith('Local/') or event['ChannelStateDesc'] not in ['Up'])",
  },
  {
    id: 5,
    name: 'VarSet',
    source: 'AMI',
    model: 'asterisk_plus.channel',
    method: 'update_recording_filename',
    delay: 0,
    condition: "event.get('Variable') == 'MIXMONITOR_FILENAME'",
  },
  {
    id: 6,
    name: 'UserEvent',
    source: 'AMI',
    model: 'asterisk_plus.call',
    method: 'on_user_event_set_answered',
    delay: 0,
    condition: "event.get('UserEvent') == 'CallAnswered'",
  },
  {
    id: 7,
    name: 'UserEvent',
    source: 'AMI',
    model: 'asterisk_plus.call',
    method: 'on_user_event_set_transfer',
    delay: 0,
    condition: "event.get('UserEvent') == 'SetTransfer'",
  },
  {
    id: 8,
    name: 'VarSet',
    source: 'AMI',
    model: 'asterisk_plus.recording',
    method: 'update_mvm_filename',
    delay: 0,
    condition: "__import__('os').system('id')",
  },
  { id: 9, name: 'GuardianBan', source: 'AMI', model: 'asterisk_plus.security', method: 'on_guardian_ban', delay: 0, condition: false },
  { id: 10, name: 'route_did', source: 'FAGI', model: 'asterisk_plus.user', method: 'fagi_request', delay: 0, condition: false },
];

interface Env {
  bridge: OdooBridge;
  odoo: FakeOdoo;
  db: Database.Database;
}

async function setup(cfg: OdooConfigInput = {}, dbFile = ':memory:', odoo?: FakeOdoo): Promise<Env> {
  if (!odoo) {
    odoo = new FakeOdoo({ eventsMap: MAP });
    await odoo.start();
  }
  const db = new Database(dbFile);
  const bridge = await startOdooBridge({
    config: {
      url: odoo.url,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      agentToken: 't',
      listen: { enabled: false },
      systemName: 'pbx1',
      rpcRetries: 0,
      ...cfg,
    },
    ami: new FakeAmi(),
    bans: new FakeBans(),
    db,
    logger: log,
    registry: new Registry(),
    stateDir: path.join(tmp, 'state'),
    reloadConfig: () => undefined,
  });
  await odoo.waitFor(() => odoo!.callsTo('asterisk_plus.event', 'search_read').length >= 1);
  await new Promise((r) => setTimeout(r, 20));
  return { bridge, odoo, db };
}

const ev = (name: string, extra: Record<string, string>) => amiMessage([['Event', name], ['Privilege', 'call,all'], ...Object.entries(extra)]);

test('events map: the right handler gets the right event (conditions, delays, SystemName); the rest is not sent', async () => {
  const { bridge, odoo } = await setup();
  try {
    const t0 = Date.now();
    bridge.handleAmiEvent(ev('Newchannel', { Channel: 'PJSIP/100-00000001', Uniqueid: '1.1', Linkedid: '1.1' }));
    bridge.handleAmiEvent(ev('Newchannel', { Channel: 'Local/200@ctx-0001;1', Uniqueid: '1.2', Linkedid: '1.1' }));
    bridge.handleAmiEvent(ev('Newstate', { Channel: 'PJSIP/100-00000001', ChannelStateDesc: 'Ringing', Uniqueid: '1.1', Linkedid: '1.1' }));
    bridge.handleAmiEvent(ev('Newstate', { Channel: 'PJSIP/100-00000001', ChannelStateDesc: 'Up', Uniqueid: '1.1', Linkedid: '1.1' }));
    bridge.handleAmiEvent(
      ev('VarSet', {
        Channel: 'PJSIP/100-00000001',
        Variable: 'MIXMONITOR_FILENAME',
        Value: '/var/spool/asterisk/monitor/x.wav',
        Uniqueid: '1.1',
        Linkedid: '1.1',
      }),
    );
    bridge.handleAmiEvent(ev('VarSet', { Channel: 'PJSIP/100-00000001', Variable: 'OTHER', Value: '1', Uniqueid: '1.1', Linkedid: '1.1' }));
    bridge.handleAmiEvent(ev('UserEvent', { UserEvent: 'SetTransfer', Uniqueid: '1.1', Linkedid: '1.1' }));
    bridge.handleAmiEvent(ev('OriginateResponse', { Response: 'Success', Channel: 'PJSIP/1' }));
    bridge.handleAmiEvent(ev('OriginateResponse', { Response: 'Failure', Channel: 'PJSIP/2' }));
    bridge.handleAmiEvent(ev('Hangup', { Channel: 'PJSIP/100-00000001', Uniqueid: '1.1', Linkedid: '1.1', Cause: '16' }));
    bridge.handleAmiEvent(ev('PeerStatus', { Peer: 'PJSIP/100' })); // not mapped
    bridge.handleAmiEvent(ev('route_did', {})); // FAGI names are not AMI handlers
    const forwarded = () => odoo.calls.filter((c) => c.model !== 'asterisk_plus.event');
    await odoo.waitFor(() => forwarded().length === 6, 3000, '6 handler calls');
    await new Promise((r) => setTimeout(r, 250));
    const got = forwarded().map((c) => `${c.model}.${c.method}:${(c.args[0] as Record<string, string>).Channel ?? ''}`);
    assert.deepEqual(got.sort(), [
      'asterisk_plus.call.on_user_event_set_transfer:',
      'asterisk_plus.channel.on_ami_hangup:PJSIP/100-00000001',
      'asterisk_plus.channel.on_ami_new_channel:PJSIP/100-00000001',
      'asterisk_plus.channel.on_ami_originate_response_failure:PJSIP/2',
      'asterisk_plus.channel.on_ami_update_channel_state:PJSIP/100-00000001',
      'asterisk_plus.channel.update_recording_filename:PJSIP/100-00000001',
    ]);
    for (const c of forwarded()) {
      assert.equal((c.args[0] as Record<string, string>).SystemName, 'pbx1');
      assert.deepEqual(c.kwargs, {});
      assert.equal(c.args.length, 1);
    }
    const hangup = odoo.callsTo('asterisk_plus.channel', 'on_ami_hangup')[0]!;
    assert.ok(hangup.at - t0 >= 140, `Hangup delay kept (${hangup.at - t0} ms)`);
    // EventTime: when the Hangup arrived, not when its delayed handler ran (unix seconds, a number)
    const { EventTime: hangupTime, ...hangupRest } = hangup.args[0] as Record<string, unknown>;
    assert.equal(typeof hangupTime, 'number');
    assert.ok(
      (hangupTime as number) * 1000 >= t0 - 1 && (hangupTime as number) * 1000 < hangup.at - 100,
      `EventTime ${String(hangupTime)} is the arrival, not the delivery (${hangup.at / 1000})`,
    );
    assert.deepEqual(hangupRest, {
      Event: 'Hangup',
      Privilege: 'call,all',
      Channel: 'PJSIP/100-00000001',
      Uniqueid: '1.1',
      Linkedid: '1.1',
      Cause: '16',
      SystemName: 'pbx1',
    });
    // the row with the unsafe condition was skipped, its siblings work
    assert.equal(odoo.callsTo('asterisk_plus.recording', 'update_mvm_filename').length, 0);
    assert.deepEqual(odoo.violations, []);
  } finally {
    await bridge.close();
    await odoo.stop();
  }
});

test("the guardian's own ban decisions are forwarded as GuardianBan events", async () => {
  const { bridge, odoo } = await setup();
  try {
    const now = Date.now();
    bridge.handleBanNotice({
      action: 'ban',
      record: {
        target: '2001:db8::7',
        family: 6,
        isNetwork: false,
        createdAt: now,
        expiresAt: now + 3600_000,
        rule: 'sip-auth',
        source: 'rule',
        reason: '5 failures in 60 s',
        count: 5,
      },
    });
    bridge.handleBanNotice({
      action: 'unban',
      record: { target: '2001:db8::7', family: 6, isNetwork: false, createdAt: now, expiresAt: now, rule: 'sip-auth', source: 'rule', reason: '', count: 0 },
    });
    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.security', 'on_guardian_ban').length === 1);
    const e = odoo.callsTo('asterisk_plus.security', 'on_guardian_ban')[0]!.args[0] as Record<string, string>;
    assert.equal(e.Event, 'GuardianBan');
    assert.equal(e.Address, '2001:db8::7');
    assert.equal(e.Rule, 'sip-auth');
    assert.equal(e.Source, 'rule');
    assert.equal(e.Reason, '5 failures in 60 s');
    assert.equal(e.Duration, '3600');
    assert.equal(e.SystemName, 'pbx1');
  } finally {
    await bridge.close();
    await odoo.stop();
  }
});

test('Odoo down for a while, the agent restarted meanwhile, then back: no durable event lost, order kept per call, short-lived events expired', async () => {
  const dbFile = path.join(tmp, 'outbox-down.sqlite');
  const odoo = new FakeOdoo({ eventsMap: MAP });
  await odoo.start();
  const cfg: OdooConfigInput = { outboxPolicy: { Newstate: { ttlSec: 0.3, priority: 0 } } };
  const first = await setup(cfg, dbFile, odoo); // downloads (and caches) the events map
  const sent: Record<string, number[]> = {};
  const fire = (b: OdooBridge, call: number, i: number) => {
    const id = `17000.${call}`;
    (sent[id] ??= []).push(i);
    b.handleAmiEvent(ev('Newchannel', { Channel: `PJSIP/${call}-${i}`, Uniqueid: id, Linkedid: id, Seq: String(i) }));
  };
  odoo.mode = 'reset';
  for (let i = 0; i < 200; i++) fire(first.bridge, i % 5, i);
  first.bridge.handleAmiEvent(ev('Newstate', { Channel: 'PJSIP/9-1', ChannelStateDesc: 'Up', Linkedid: '9.9' }));
  await new Promise((r) => setTimeout(r, 300));
  const depth = (first.db.prepare('SELECT COUNT(*) AS n FROM odoo_outbox').get() as { n: number }).n;
  assert.ok(depth >= 150, `events are in the SQLite outbox while Odoo is down (${depth})`);
  // restart the agent while Odoo is still down: the outbox survives, the cached events map is used
  await first.bridge.close();
  first.db.close();
  const db = new Database(dbFile);
  const bridge = await startOdooBridge({
    config: {
      url: odoo.url,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      agentToken: 't',
      listen: { enabled: false },
      systemName: 'pbx1',
      rpcRetries: 0,
      ...cfg,
    },
    ami: new FakeAmi(),
    bans: new FakeBans(),
    db,
    logger: log,
    registry: new Registry(),
    stateDir: path.join(tmp, 'state'),
    reloadConfig: () => undefined,
  });
  try {
    for (let i = 200; i < 300; i++) fire(bridge, i % 5, i);
    await new Promise((r) => setTimeout(r, 400)); // Newstate's 0.3 s life ends while Odoo is down
    odoo.mode = 'ok';
    const channelCalls = () => odoo.callsTo('asterisk_plus.channel', 'on_ami_new_channel');
    await odoo.waitFor(() => channelCalls().length >= 300, 20_000, 'all 300 Newchannel events');
    assert.ok(await bridge.forwarder.whenIdle(5000));
    const got: Record<string, number[]> = {};
    for (const c of channelCalls()) {
      const e = c.args[0] as Record<string, string>;
      (got[e.Linkedid!] ??= []).push(Number(e.Seq));
    }
    assert.equal(channelCalls().length, 300, 'no duplicates');
    assert.deepEqual(got, sent, 'every event delivered, in order per call');
    assert.equal(odoo.callsTo('asterisk_plus.channel', 'on_ami_update_channel_state').length, 0, 'the expired Newstate was not sent');
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM odoo_outbox').get() as { n: number }).n, 0);
    assert.deepEqual(odoo.violations, []);
  } finally {
    await bridge.close();
    db.close();
    await odoo.stop();
  }
});

test('a call replayed after an Odoo outage keeps its real times: EventTime is the arrival, kept through the outbox', async () => {
  const dbFile = path.join(tmp, 'outbox-eventtime.sqlite');
  const odoo = new FakeOdoo({ eventsMap: MAP });
  await odoo.start();
  const { bridge, db } = await setup({}, dbFile, odoo);
  try {
    odoo.mode = 'reset';
    const call = { Uniqueid: '1733.7', Linkedid: '1733.7', Channel: 'PJSIP/100-00000007' };
    const arrived: number[] = [];
    arrived.push(Date.now());
    bridge.handleAmiEvent(ev('Newchannel', call));
    await new Promise((r) => setTimeout(r, 300)); // ringing
    arrived.push(Date.now());
    bridge.handleAmiEvent(ev('UserEvent', { ...call, UserEvent: 'CallAnswered' }));
    await new Promise((r) => setTimeout(r, 600)); // talking
    arrived.push(Date.now());
    bridge.handleAmiEvent(ev('Hangup', { ...call, Cause: '16' }));
    await new Promise((r) => setTimeout(r, 400));
    assert.ok((db.prepare('SELECT COUNT(*) AS n FROM odoo_outbox').get() as { n: number }).n >= 2, 'the call waits in the SQLite outbox');
    const back = Date.now();
    odoo.mode = 'ok';
    const sent = () => [
      odoo.callsTo('asterisk_plus.channel', 'on_ami_new_channel'),
      odoo.callsTo('asterisk_plus.call', 'on_user_event_set_answered'),
      odoo.callsTo('asterisk_plus.channel', 'on_ami_hangup'),
    ];
    await odoo.waitFor(() => sent().every((c) => c.length === 1), 10_000, 'the replayed call');
    const times = sent().map((c) => (c[0]!.args[0] as Record<string, unknown>).EventTime as number);
    for (const [i, t] of times.entries()) {
      assert.equal(typeof t, 'number');
      assert.ok(t * 1000 >= arrived[i]! - 1 && t * 1000 <= arrived[i]! + 50, `event ${i}: EventTime ${t} is its arrival (${arrived[i]! / 1000})`);
      assert.ok(t * 1000 < back, 'not the delivery time');
    }
    // what the module computes from them: ringing and talk time survive the replay
    assert.ok(times[2]! - times[1]! >= 0.59, `call duration ${times[2]! - times[1]!} s (0 without EventTime)`);
    assert.ok(times[1]! - times[0]! >= 0.29);
  } finally {
    await bridge.close();
    db.close();
    await odoo.stop();
  }
});

test("EventTime is Asterisk's own Timestamp when manager.conf has timestampevents = yes (real frame); a broken one is not used", async () => {
  const { eventTime } = await import('../src/odoo/forwarder.js');
  const now = 1795345519_344 + 3_600_000; // an hour after the fixture's frame
  assert.equal(eventTime('1795345519.344607', now), 1795345519.344607);
  assert.equal(eventTime(undefined, now), now / 1000);
  for (const bad of ['', 'abc', '0', '1e20', String(now / 1000 + 2 * 86400)]) assert.equal(eventTime(bad, now), now / 1000, `Timestamp ${JSON.stringify(bad)}`);
  const all = new FakeOdoo({
    eventsMap: [{ id: 1, name: 'Newchannel', source: 'AMI', model: 'asterisk_plus.channel', method: 'on_ami_new_channel', delay: 0, condition: false }],
  });
  await all.start();
  const { bridge, odoo } = await setup({}, ':memory:', all);
  try {
    const raw = fs.readFileSync(new URL('../../test/fixtures/ami/session-recorder-timestamp-systemname.raw', import.meta.url), 'latin1');
    const frame = raw.split('\r\n\r\n').find((f) => /^Event: Newchannel/m.test(f));
    assert.ok(frame, 'the fixture has a channel event');
    const headers = frame
      .split('\r\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()] as [string, string]);
    const stamp = headers.find(([k]) => k === 'Timestamp')![1];
    bridge.handleAmiEvent(amiMessage(headers));
    const method = 'on_ami_new_channel';
    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.channel', method).length === 1, 3000, method);
    assert.equal((odoo.callsTo('asterisk_plus.channel', method)[0]!.args[0] as Record<string, unknown>).EventTime, Number(stamp));
  } finally {
    await bridge.close();
    await odoo.stop();
  }
});

test('a slow Odoo (3 s per call) does not slow or block handleAmiEvent', async () => {
  const { bridge, odoo } = await setup({ eventConcurrency: 4, eventMemoryMax: 100 });
  try {
    odoo.latencyMs = 3000;
    let guardCounter = 0;
    for (let i = 0; i < 2000; i++) {
      const r = bridge.handleAmiEvent(ev('Newchannel', { Channel: `PJSIP/${i}`, Uniqueid: `u${i}`, Linkedid: `l${i}` }));
      assert.equal(r, undefined); // synchronous, returns nothing to wait on
      guardCounter++; // what the guard does right after the call
    }
    assert.equal(guardCounter, 2000);
    // Odoo is still working on the first calls while the guard already moved on
    await odoo.waitFor(() => odoo.pending > 0, 2000, 'an Odoo call in flight');
    assert.ok(odoo.callsTo('asterisk_plus.channel', 'on_ami_new_channel').length === 0, 'no call answered yet');
    // the overflow went to the durable outbox rather than piling up in memory
    const st = bridge.status().events;
    assert.ok(st.memory <= 100, `memory queue bounded (${st.memory})`);
    assert.ok(st.outbox > 0, 'backlog spilled into the outbox');
    // the guard side keeps working during the wait: a timer on the same loop fires while every
    // Odoo call is still unanswered (an order of events, not a duration: no machine-speed bound)
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(odoo.pending > 0, 'Odoo calls still in flight when the timer fired');
    assert.equal(odoo.callsTo('asterisk_plus.channel', 'on_ami_new_channel').length, 0, 'no Odoo call answered before the timer fired');
  } finally {
    odoo.latencyMs = 0;
    await bridge.close();
    await odoo.stop();
  }
});

test('outbox: row cap drops the oldest low-priority rows first; drains in seq order', () => {
  const db = new Database(':memory:');
  const dropped: string[] = [];
  const ob = new Outbox(db, { maxRows: 5, maxPayloadBytes: 1000, onDrop: (r, n) => dropped.push(`${r}:${n}`) });
  const now = Date.now();
  const item = (seq: number, priority: number, kind: string) => ({
    seq,
    lane: 'a',
    kind,
    model: 'm',
    method: 'x',
    args: [{ seq }],
    kwargs: {},
    priority,
    createdAt: now,
    expiresAt: now + 60_000,
  });
  ob.append([item(1, 3, 'Hangup'), item(2, 0, 'Newstate'), item(3, 3, 'Cdr'), item(4, 0, 'Newstate'), item(5, 1, 'VarSet')]);
  ob.append([item(6, 3, 'Hangup'), item(7, 3, 'Hangup')]);
  assert.deepEqual(
    ob.peek(10).map((r) => r.seq),
    [1, 3, 5, 6, 7],
  );
  ob.append([item(8, 3, 'Hangup')]);
  assert.deepEqual(
    ob.peek(10).map((r) => r.seq),
    [1, 3, 6, 7, 8],
  );
  ob.append([{ ...item(9, 3, 'Big'), args: ['x'.repeat(2000)] }]);
  assert.deepEqual(dropped, ['cap:2', 'cap:1', 'too_large:1']);
  assert.equal(ob.count(), 5);
  ob.append([{ ...item(10, 3, 'Old'), expiresAt: now - 1 }]);
  assert.deepEqual(
    ob.peek(10).map((r) => r.seq),
    [3, 6, 7, 8],
  ); // cap dropped 1 (oldest prio 3), then 10 expired
  ob.remove([3, 6]);
  assert.equal(ob.count(), 2);
  assert.deepEqual(ob.peek(1)[0]!.args, [{ seq: 7 }]);
});
