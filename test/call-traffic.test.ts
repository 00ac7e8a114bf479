/**
 * The call-traffic generator (src/demo/call-traffic.ts) that bench/fraud.ts measures the fraud
 * guard with: its calls must look like the real Asterisk 22 transcripts
 * (test/fixtures/ami-asterisk22-calls) to the project's own AMI parser, each call with its own
 * channels, and the actions a guard sends must be answered byte for byte as Asterisk answered them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { AmiFramer, parseFrame, type AmiFrame } from '../src/ami/index.js';
import { callValues, loadCallTemplate, renderFrames, splitFrames } from '../src/demo/call-templates.js';
import { CallTraffic, type CallKind, type TrafficAccount } from '../src/demo/call-traffic.js';
import { fixturePath } from './helpers/fixtures.js';

const DIR = fixturePath('ami-asterisk22-calls');
const ACCOUNTS: TrafficAccount[] = [
  { name: '2001', callerName: 'Office 2001', address: '10.20.0.1' },
  { name: '2002', callerName: 'Office 2002', address: '10.20.0.2' },
  { name: 'reception.1', callerName: 'Reception', address: '198.51.100.77' },
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const raw = (f: string) => readFileSync(`${DIR}/${f}`, 'latin1');

/** A TCP session whose bytes go through the project's AmiFramer and parseFrame. */
async function session(port: number, events: string) {
  const sock = net.connect(port, '127.0.0.1');
  let text = '';
  const frames: AmiFrame[] = [];
  const drops: unknown[] = [];
  let greeting = '';
  const framer = new AmiFramer({ frame: (t) => frames.push(parseFrame(t)), drop: (d) => drops.push(d), greeting: (l) => (greeting = l) });
  framer.reset(true);
  sock.on('data', (b: Buffer) => {
    text += b.toString('latin1');
    framer.push(Buffer.from(b));
  });
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write(`Action: Login\r\nUsername: guardian\r\nSecret: s\r\nEvents: ${events}\r\n\r\n`);
  for (let i = 0; i < 200 && !text.includes('Authentication accepted'); i++) await sleep(5);
  return {
    frames,
    drops,
    text: () => text,
    greeting: () => greeting,
    send: (t: string) => sock.write(t),
    until: async (pred: () => boolean, what: string) => {
      for (let i = 0; i < 400 && !pred(); i++) await sleep(5);
      assert.ok(pred(), `timed out waiting for ${what}`);
    },
    close: () => sock.destroy(),
  };
}

async function withTraffic(fn: (t: CallTraffic) => Promise<void>) {
  const t = new CallTraffic({ fixturesDir: DIR, accounts: ACCOUNTS, username: 'guardian', secret: 's' });
  await t.listen();
  try {
    await fn(t);
  } finally {
    await t.close();
  }
}

const signature = (frame: string) =>
  frame
    .split('\r\n')
    .map((l) => l.slice(0, Math.max(0, l.indexOf(': '))))
    .join('|');

test('call traffic: every template renders frames with the same field names, in the same order, as the transcript', () => {
  for (const f of [
    'call-pjsip-internal-extension.raw',
    'call-pjsip-international-trunk.raw',
    'call-pjsip-trunk-busy.raw',
    'call-pjsip-trunk-no-answer.raw',
    'call-pjsip-trunk-congestion.raw',
  ]) {
    const t = loadCallTemplate(DIR, f);
    assert.ok(t.found.callerChannel && t.found.calleeChannel && t.found.dialled && t.found.callerUid, `${f}: the call's slots found`);
    assert.ok(t.answerAt > 0 && t.answerAt <= t.hangupAt && t.hangupAt < t.frames.length, `${f}: three phases`);
    const now = Date.now();
    const v = callValues(t, {
      seq: 0x1234,
      startMs: now,
      caller: '2001',
      callerName: 'Office 2001',
      phoneIp: '10.20.0.1',
      dialled: '2002',
      calleeName: 'Office 2002',
    });
    const rendered = splitFrames(renderFrames(t, 0, t.frames.length, v, { start: now, answer: now + 500, end: now + 3000 }, now));
    const original = splitFrames(raw(f));
    assert.deepEqual(rendered.map(signature), original.map(signature), `${f}: header names`);
    // nothing of the transcript's call is left over
    for (const lit of [t.found.callerChannel, t.found.callerUid, t.found.callId!]) assert.ok(!rendered.some((r) => r.includes(lit)), `${f}: ${lit} replaced`);
    assert.ok(rendered.some((r) => r.includes(v.callerChannel)));
  }
});

test('call traffic: calls parse with the AMI framer, each with its own channels and uniqueids, and the chain Asterisk sends', async () => {
  await withTraffic(async (traffic) => {
    const s = await session(traffic.port, 'on');
    assert.equal(s.greeting(), 'Asterisk Call Manager/11.0.0', 'the Asterisk 22 greeting');
    const kinds: CallKind[] = ['internal', 'answered', 'busy', 'no-answer', 'congestion'];
    const calls = [];
    for (let i = 0; i < 50; i++) {
      const kind = kinds[i % kinds.length]!;
      calls.push(
        traffic.place({
          account: ACCOUNTS[i % 3]!.name,
          dialled: kind === 'internal' ? ACCOUNTS[(i + 1) % 3]!.name : `0049301234${String(i).padStart(3, '0')}`,
          kind,
          ringMs: 5,
          talkMs: 10,
        }),
      );
    }
    await s.until(() => s.frames.filter((f) => f.get('Event') === 'Cdr').length === 50, '50 Cdr');
    await s.until(() => s.frames.filter((f) => f.get('Event') === 'Hangup').length === 100, '100 Hangup');
    assert.deepEqual(s.drops, [], 'no frame dropped by the framer');
    const newch = s.frames.filter((f) => f.get('Event') === 'Newchannel');
    assert.equal(newch.length, 100);
    assert.equal(new Set(newch.map((f) => f.get('Channel'))).size, 100, 'unique channel names');
    assert.equal(new Set(newch.map((f) => f.get('Uniqueid'))).size, 100, 'unique uniqueids');
    for (const c of calls) {
      const mine = s.frames.filter((f) => f.get('Channel') === c.values.callerChannel);
      assert.match(c.values.callerChannel, new RegExp(`^PJSIP/${c.spec.account.replace('.', '\\.')}-[0-9a-f]{8}$`));
      const names = mine.map((f) => f.get('Event'));
      for (const e of ['Newchannel', 'DialBegin', 'DialEnd', 'Hangup']) assert.ok(names.includes(e), `${c.spec.kind}: ${e} on the caller channel`);
      const begin = mine.find((f) => f.get('Event') === 'DialBegin')!;
      assert.equal(begin.get('DestChannel'), c.values.calleeChannel);
      assert.equal(begin.get('DialString'), c.spec.kind === 'internal' ? c.spec.dialled : `${c.spec.dialled}@trunk`);
      assert.equal(begin.get('CallerIDNum'), c.spec.account);
      const end = mine.find((f) => f.get('Event') === 'DialEnd')!;
      assert.equal(
        end.get('DialStatus'),
        { internal: 'ANSWER', answered: 'ANSWER', busy: 'BUSY', 'no-answer': 'NOANSWER', congestion: 'CONGESTION' }[c.spec.kind],
      );
      const cdr = s.frames.find((f) => f.get('Event') === 'Cdr' && f.get('Channel') === c.values.callerChannel)!;
      assert.equal(cdr.get('Source'), c.spec.account);
      assert.equal(cdr.get('Destination'), c.spec.dialled);
      const auth = s.frames.find((f) => f.get('Event') === 'SuccessfulAuth' && f.get('SessionID') === c.values.callId)!;
      assert.equal(auth.get('RemoteAddress'), `IPV4/UDP/${ACCOUNTS.find((a) => a.name === c.spec.account)!.address}/5060`);
    }
    s.close();
  });
});

test('call traffic: a burst call has the set-up frames of a call in the fixtures burst', async () => {
  // the burst transcript: 10 calls by 101, kept up; one of them, by its Linkedid
  const burst = splitFrames(raw('call-pjsip-burst-international.raw'));
  const linked = /Linkedid: (\S+)/i.exec(burst.find((f) => f.startsWith('Event: Newchannel'))!)![1]!;
  const key = (f: string) => `${/^Event: (\S+)/.exec(f)![1]}/${/EventName: (\S+)/.exec(f)?.[1] ?? ''}/${/Variable: (\S+)/.exec(f)?.[1] ?? ''}`;
  const want = burst
    .filter((f) => new RegExp(`^Linked[iI][dD]: ${linked.replace('.', '\\.')}$`, 'm').test(f))
    .map(key)
    .sort();
  await withTraffic(async (traffic) => {
    const s = await session(traffic.port, 'on');
    const call = traffic.place({ account: 'reception.1', dialled: '00881612345001', kind: 'answered', ringMs: 5, talkMs: null });
    await s.until(() => s.frames.some((f) => f.get('Event') === 'BridgeEnter' && f.get('Channel') === call.values.calleeChannel), 'BridgeEnter');
    await sleep(50);
    const got = s
      .text()
      .split('\r\n\r\n')
      .filter((f) => f.includes(call.values.callerUid) && /^Event: /.test(f))
      .map(key)
      .sort();
    assert.deepEqual(got, want);
    assert.equal(traffic.liveCalls, 1, 'talkMs null: the call stays up');
    s.close();
  });
});

test('call traffic: Hangup of an exact channel is answered like Asterisk, then that call hangs up (Cause on the target)', async () => {
  await withTraffic(async (traffic) => {
    const defender = await session(traffic.port, 'off');
    const rec = await session(traffic.port, 'on');
    const call = traffic.place({ account: '2001', dialled: '09001234560008', kind: 'answered', ringMs: 5, talkMs: null });
    await rec.until(() => rec.frames.some((f) => f.get('Event') === 'BridgeEnter'), 'the answer');
    const t0 = performance.now();
    defender.send(`Action: Hangup\r\nActionID: hup-1\r\nChannel: ${call.values.callerChannel}\r\n\r\n`);
    await defender.until(() => defender.text().includes('Channel Hungup'), 'the response');
    // greeting + login + the response: the bytes the real defender session received
    assert.equal(defender.text(), raw('action-hangup-fraud-call-exact.client.raw'));
    await rec.until(() => rec.frames.filter((f) => f.get('Event') === 'Hangup').length === 2, 'two Hangup');
    const hangups = rec.frames.filter((f) => f.get('Event') === 'Hangup');
    assert.deepEqual(hangups.map((f) => f.get('Channel')).sort(), [call.values.callerChannel, call.values.calleeChannel].sort());
    assert.ok(rec.frames.some((f) => f.get('Event') === 'SoftHangupRequest' && f.get('Channel') === call.values.callerChannel));
    assert.ok(!rec.frames.some((f) => f.get('Event') === 'HangupRequest'), 'AMI-initiated: no HangupRequest');
    const rec0 = traffic.actions.find((a) => a.action === 'Hangup')!;
    assert.ok(rec0.at >= t0, 'arrival time recorded');
    assert.deepEqual(rec0.hungUp, [call.values.callerChannel]);
    assert.equal(traffic.liveCalls, 0);
    // again (a retry): the channel is gone
    defender.send(`Action: Hangup\r\nActionID: hup-2\r\nChannel: ${call.values.callerChannel}\r\n\r\n`);
    await defender.until(() => defender.text().includes('No such channel'), 'the error');
    assert.ok(defender.text().endsWith('Response: Error\r\nActionID: hup-2\r\nMessage: No such channel\r\n\r\n'));
    // Cause 21 shows on the targeted channel's Hangup only
    const c2 = traffic.place({ account: '2002', dialled: '+5352540005', kind: 'answered', ringMs: 1, talkMs: null });
    await sleep(20);
    defender.send(`Action: Hangup\r\nChannel: ${c2.values.callerChannel}\r\nCause: 21\r\n\r\n`);
    await rec.until(() => rec.frames.filter((f) => f.get('Event') === 'Hangup').length === 4, 'two more Hangup');
    const h2 = rec.frames.filter((f) => f.get('Event') === 'Hangup').slice(2);
    const byCh = new Map(h2.map((f) => [f.get('Channel'), `${f.get('Cause')} ${f.get('Cause-txt')}`]));
    assert.equal(byCh.get(c2.values.callerChannel), '21 Call Rejected');
    assert.equal(byCh.get(c2.values.calleeChannel), '16 Normal Clearing');
    defender.close();
    rec.close();
  });
});

test('call traffic: Hangup /regex/ lists the channels it hung up as Asterisk does', async () => {
  await withTraffic(async (traffic) => {
    const defender = await session(traffic.port, 'off');
    const mine = [0, 1, 2].map((i) => traffic.place({ account: 'reception.1', dialled: `0088161234500${i}`, kind: 'answered', ringMs: 1, talkMs: null }));
    const other = traffic.place({ account: '2001', dialled: '030123456', kind: 'answered', ringMs: 1, talkMs: null });
    await sleep(20);
    defender.send(raw('action-hangup-fraud-calls-regex.request.raw').replace('/^PJSIP\\/101-/', '/^PJSIP\\/reception\\.1-/'));
    await defender.until(() => defender.text().includes('ChannelsHungupListComplete'), 'the list');
    const got = defender.text().slice(defender.text().indexOf('Response: Success\r\nActionID'));
    const expected = raw('action-hangup-fraud-calls-regex.client.raw');
    const shape = (t: string) => splitFrames(t).map((f) => f.replace(/^Channel: .*$/m, 'Channel: X').replace(/ListItems: \d+/, 'ListItems: N'));
    const exp = shape(expected.slice(expected.indexOf('Response: Success\r\nActionID')));
    assert.deepEqual(shape(got), [exp[0], exp[1], exp[1], exp[1], exp.at(-1)]);
    assert.match(got, /ListItems: 3\r\n/);
    assert.deepEqual([...got.matchAll(/^Channel: (.*)$/gm)].map((m) => m[1]!.trim()).sort(), mine.map((c) => c.values.callerChannel).sort());
    assert.equal(traffic.liveCalls, 1, 'the other account’s call is still up');
    assert.equal(other.phase, 1);
    defender.close();
  });
});

test('call traffic: DBPut / DBGet / DBGetTree / DBDel / DBDelTree answer byte for byte like the recorded Asterisk', async () => {
  await withTraffic(async (traffic) => {
    const s = await session(traffic.port, 'off');
    const steps = ['dbput', 'dbget', 'dbgettree', 'dbdel', 'dbget-guardian-missing', 'dbdeltree'];
    for (const step of steps) {
      const name = step.includes('missing') ? 'action-dbget-guardian-missing' : `action-${step}-guardian`;
      const before = s.text().length;
      s.send(raw(`${name}.request.raw`));
      const want = raw(`${name}.raw`);
      await s.until(() => s.text().length - before >= want.length, name);
      assert.equal(s.text().slice(before), want, name);
    }
    assert.equal(traffic.db.size, 0, 'DBDelTree emptied the family');
    const puts = traffic.actions.filter((a) => a.action === 'DBPut');
    assert.deepEqual(
      puts.map((a) => [a.headers.Family, a.headers.Key, a.headers.Val]),
      [
        ['guardian', 'block/102', 'toll-fraud 198.51.100.77'],
        ['guardian', 'block/198.51.100.77', '1795600000'],
      ],
    );
    s.close();
  });
});

test('call traffic: CoreShowChannels lists both legs of every live call', async () => {
  await withTraffic(async (traffic) => {
    const s = await session(traffic.port, 'off');
    s.send('Action: CoreShowChannels\r\nActionID: csc-18\r\n\r\n');
    await s.until(() => s.text().includes('CoreShowChannelsComplete'), 'idle list');
    assert.ok(s.text().endsWith(raw('action-coreshowchannels-idle.raw')), 'idle: the recorded answer');
    const c = traffic.place({ account: 'reception.1', dialled: '0023767100010', kind: 'answered', ringMs: 1, talkMs: null });
    await sleep(20);
    const before = s.text().length;
    s.send('Action: CoreShowChannels\r\nActionID: csc-1\r\n\r\n');
    await s.until(() => s.text().slice(before).includes('CoreShowChannelsComplete'), 'the list');
    const got = splitFrames(s.text().slice(before));
    const rec = splitFrames(raw('action-coreshowchannels-burst.raw'));
    const names = (f: string) => signature(f);
    assert.deepEqual(
      got.map(names),
      [rec[0], rec[1], rec[2], rec.at(-1)].map((f) => names(f!)),
      'the recorded field names and order',
    );
    assert.match(got[1]!, new RegExp(`Channel: ${c.values.callerChannel}`));
    assert.match(got[2]!, /CallerIDNum: 0023767100010/);
    assert.match(got.at(-1)!, /ListItems: 2/);
    s.close();
  });
});
