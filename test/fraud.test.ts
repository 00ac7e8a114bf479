/**
 * The fraud stage on the real Asterisk 22 call transcripts (test/fixtures/ami-asterisk22-calls/):
 * the burst is hung up channel by channel (exact names on the AMI wire) and the account blocked
 * (DBPut on the wire, a row in the real SQLite store); ordinary calls cause nothing; a refusing AMI
 * is retried while the alert still goes out; calls without Hangup expire; malformed events are
 * ignored.
 */
import { test } from 'node:test';
import pino from 'pino';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFrame } from '../src/ami/index.js';
import { Store } from '../src/store/index.js';
import { buildConfig, loginEventMask } from '../src/config/index.js';
import { MemoryBlockStore, fraudJobFunctions, type TrackedCall } from '../src/fraud/index.js';
import { readFixtureText } from './helpers/fixtures.js';
import { CALLS, REFUSED, WireAmi, fixtureValues, fraudConfig, replay, rig, settle } from './helpers/fraud.js';

const BURST = 'call-pjsip-burst-international.raw';

function tempStore(): { store: Store; dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-fraud-'));
  const store = Store.open(dir);
  return { store, dir, done: () => (store.close(), rmSync(dir, { recursive: true, force: true })) };
}

test('the burst: every one of the 10 calls is hung up by its exact channel name, and account 101 is blocked in AstDB and the store', async () => {
  const t = tempStore();
  try {
    const r = rig(t.store.blocks);
    replay(r, BURST);
    await settle();
    const callers = fixtureValues(BURST, 'DialBegin', 'Channel');
    assert.equal(callers.length, 10);
    const hungUp = r.ami.sent('Hangup').map((h) => h.Channel);
    assert.deepEqual([...new Set(hungUp)].sort(), [...callers].sort(), 'one Hangup per caller channel, by its exact name');
    for (const h of r.ami.sent('Hangup')) assert.deepEqual(Object.keys(h), ['Action', 'Channel'], 'exact Channel, no Cause, no regex');
    // the same bytes the real defender sent (fixture .request.raw), but for the ActionID
    const wire = r.ami.wire.find((w) => w.includes('Channel: PJSIP/101-00000008\r\n'))!;
    const real = readFixtureText(`${CALLS}/action-hangup-fraud-call-exact.request.raw`);
    assert.equal(wire.replace(/ActionID: .*\r\n/, ''), real.replace(/ActionID: .*\r\n/, ''));

    const puts = r.ami.sent('DBPut');
    assert.equal(puts.length, 1);
    assert.equal(puts[0]!.Family, 'guardian-blocked');
    assert.equal(puts[0]!.Key, '101');
    assert.match(puts[0]!.Val!, /^all;\d{10}$/);
    const rows = t.store.blocks.activeBlocks();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.account, '101');
    assert.equal(rows[0]!.policy, 'burst');
    assert.equal(rows[0]!.address, '192.0.2.101', 'learnt from the SuccessfulAuth before each call');

    const fraud = r.events.filter((e) => e.Event === 'GuardianFraud' && e.Policy === 'burst');
    assert.equal(fraud.length, 1, 'one alert for the burst, not one per call');
    assert.equal(fraud[0]!.Account, '101');
    assert.equal(fraud[0]!.Action, 'hangup,block');
    assert.equal(r.events.filter((e) => e.Event === 'GuardianAccountBlocked').length, 1);
    const snap = r.engine.snapshot();
    assert.deepEqual(
      snap.blocked.map((b) => b.account),
      ['101'],
    );
    assert.ok(
      snap.decisions.some((d) => d.policy === 'blocked'),
      'calls after the block are hung up as calls of a blocked account',
    );
    r.engine.stop();
  } finally {
    t.done();
  }
});

test('a hung-up channel is not sent Hangup again once its Hangup event arrived; the others are retried until theirs arrive', async () => {
  const r = rig(new MemoryBlockStore());
  replay(r, BURST);
  await settle();
  const first = r.ami.sent('Hangup').length;
  assert.equal(first, 10);
  replay(r, 'action-hangup-fraud-call-exact.raw'); // PJSIP/101-00000008 is gone
  r.timers.runAll(); // the confirm timers of the other 9 fire
  await settle();
  const again = r.ami
    .sent('Hangup')
    .slice(first)
    .map((h) => h.Channel);
  assert.equal(again.length, 9);
  assert.ok(!again.includes('PJSIP/101-00000008'));
  replay(r, 'action-hangup-fraud-calls-regex.raw'); // the other nine end
  assert.equal(r.timers.runAll(), 0, 'nothing left to retry');
  assert.equal(r.engine.tracker.size, 0);
  r.engine.stop();
});

const ORDINARY = [
  'call-pjsip-internal-extension.raw',
  'call-pjsip-internal-echo.raw',
  'call-pjsip-trunk-no-answer.raw',
  'call-pjsip-trunk-busy.raw',
  'call-pjsip-trunk-congestion.raw',
  'call-pjsip-trunk-not-found.raw',
  'call-pjsip-caller-cancel.raw',
];

for (const file of ORDINARY) {
  test(`no decision and no action on ${file}`, async () => {
    const store = new MemoryBlockStore();
    const r = rig(store);
    const watched: TrackedCall[] = [];
    r.engine.on({ watched: (c) => watched.push(c) });
    replay(r, file);
    await settle();
    r.timers.runAll();
    assert.deepEqual(r.ami.wire, [], 'nothing written to AMI');
    assert.deepEqual(r.events, []);
    assert.deepEqual(r.engine.snapshot().decisions, []);
    assert.deepEqual(store.activeBlocks(), []);
    assert.equal(r.engine.tracker.size, 0, 'the call ended with its Hangup / DialEnd');
    const dials = fixtureValues(file, 'DialBegin', 'Channel');
    assert.equal(watched.length, dials.length, 'each dialled call was followed');
  });
}

test('the trunk call is followed as outbound: account = caller endpoint, trunk = dialled endpoint, number from DialString', () => {
  const r = rig(new MemoryBlockStore());
  const watched: TrackedCall[] = [];
  r.engine.on({ watched: (c) => watched.push(c) });
  replay(r, 'call-pjsip-international-trunk.raw');
  assert.equal(watched.length, 1);
  const c = watched[0]!;
  assert.equal(c.account, '100');
  assert.equal(c.trunk, 'trunk');
  assert.equal(c.number, '00881234567');
  assert.equal(c.destination.kind, 'international');
  assert.ok(c.outbound);
  assert.equal(c.answeredAt !== null, true);
  const internal: TrackedCall[] = [];
  const r2 = rig(new MemoryBlockStore());
  r2.engine.on({ watched: (x) => internal.push(x) });
  replay(r2, 'call-pjsip-internal-extension.raw');
  assert.equal(internal[0]!.outbound, false);
  assert.equal(internal[0]!.trunk, null);
  const national: TrackedCall[] = [];
  const r3 = rig(new MemoryBlockStore());
  r3.engine.on({ watched: (x) => national.push(x) });
  replay(r3, 'call-pjsip-trunk-busy.raw');
  assert.equal(national[0]!.destination.kind, 'national', '004930... from a PBX in country 49');
});

test('an AMI that answers Hangup and DBPut with Response: Error is retried with backoff; the alert goes out at once', async () => {
  const store = new MemoryBlockStore();
  // refuses the first two of each, then the real Success
  const ami = new WireAmi((f, nth) =>
    nth <= 2 ? REFUSED : f.Action === 'Hangup' ? responseOk('Channel Hungup') : responseOk('Updated database successfully'),
  );
  const r = rig(store, fraudConfig(), ami);
  replay(r, BURST);
  await settle();
  assert.ok(
    r.events.some((e) => e.Event === 'GuardianFraud' && e.Policy === 'burst'),
    'the alert does not wait for AMI',
  );
  assert.ok(r.events.some((e) => e.Event === 'GuardianAccountBlocked'));
  assert.equal(store.activeBlocks().length, 1, 'the block is stored while AstDB refuses');
  assert.equal(ami.sent('DBPut').length, 1);
  for (let i = 0; i < 3; i++) {
    r.timers.runAll();
    await settle();
  }
  assert.equal(ami.sent('DBPut').length, 3, 'DBPut sent again after each refusal, until the Success');
  r.timers.runAll();
  await settle();
  assert.equal(ami.sent('DBPut').length, 3, 'not after the Success');
  assert.ok(ami.sent('Hangup').length > 10, 'refused Hangups are sent again');
  r.engine.stop();
});

test('an AMI that always refuses: attempts are bounded, failures are reported, the alert went out', async () => {
  const failures: string[] = [];
  const ami = new WireAmi(() => new Error('AMI is not connected'));
  const cfg = fraudConfig({ block: { attempts: 3 }, hangup: { attempts: 2 } });
  const r = rig(new MemoryBlockStore(), cfg, ami);
  r.engine.on({ action: (what, ok) => (ok ? undefined : failures.push(what)) });
  replay(r, BURST);
  for (let i = 0; i < 6; i++) {
    await settle();
    r.timers.runAll();
  }
  assert.equal(ami.sent('DBPut').length, 3);
  assert.equal(ami.sent('Hangup').length, 20, 'two attempts for each of the 10 channels');
  assert.equal(failures.filter((f) => f === 'block').length, 1);
  assert.equal(failures.filter((f) => f === 'hangup').length, 10);
  assert.equal(r.events.filter((e) => e.Event === 'GuardianFraud' && e.Policy === 'burst').length, 1);
  // the next login writes the stored block again
  ami.answer = () => responseOk('Updated database successfully');
  r.engine.onConnected();
  await settle();
  assert.equal(ami.sent('DBPut').length, 4);
  r.engine.stop();
});

function responseOk(message: string): string {
  return `Response: Success\r\nActionID: x\r\nMessage: ${message}`;
}

test('blocks survive a restart: a new engine on the same store reasserts them at AMI login; unblock writes DBDel and clears the row', async () => {
  const t = tempStore();
  try {
    const r = rig(t.store.blocks);
    replay(r, BURST);
    await settle();
    r.engine.stop();
    const r2 = rig(t.store.blocks);
    assert.deepEqual(
      r2.engine.snapshot().blocked.map((b) => b.account),
      ['101'],
    );
    r2.engine.onConnected();
    await settle();
    assert.deepEqual(
      r2.ami.sent('DBPut').map((p) => [p.Family, p.Key, p.Val]),
      [['guardian-blocked', '101', `all;${Math.floor(t.store.blocks.activeBlocks()[0]!.createdAt / 1000)}`]],
    );
    // through the Odoo job
    const jobs = fraudJobFunctions(r2.engine);
    assert.deepEqual(await jobs.get('security.unblock_account')!(['101'], {}), [{ account: '101', unblocked: true }]);
    await settle();
    assert.deepEqual(
      r2.ami.sent('DBDel').map((p) => [p.Family, p.Key]),
      [['guardian-blocked', '101']],
    );
    assert.deepEqual(t.store.blocks.activeBlocks(), []);
    assert.equal(r2.events.at(-1)!.Event, 'GuardianAccountUnblocked');
    assert.equal(r2.engine.unblock('101', 'cli'), false, 'not blocked any more');
    assert.deepEqual(await jobs.get('security.unblock_account')!(['bad\r\nAction: Originate'], {}), [
      { account: 'bad\r\nAction: Originate', unblocked: false, error: 'not an account name' },
    ]);
    assert.equal(r2.ami.sent('DBDel').length, 1, 'a bad name never reaches AMI');
    r2.engine.stop();
  } finally {
    t.done();
  }
});

test('a call whose Hangup never arrives expires after callTimeout (counted); the tracker is bounded by maxCalls', () => {
  const r = rig(new MemoryBlockStore(), fraudConfig({ maxCalls: 10, windows: [] }));
  let expired = 0;
  r.engine.on({ expired: (n) => (expired += n) });
  replay(r, BURST); // 10 calls that stay up
  assert.equal(r.engine.tracker.size, 10);
  r.engine.sweep(r.clock.now + 60_000);
  assert.equal(r.engine.tracker.size, 10, 'not yet');
  r.engine.sweep(r.clock.now + 4 * 3600_000 + 1);
  assert.equal(r.engine.tracker.size, 0);
  assert.equal(expired, 10);
  assert.equal(r.engine.snapshot().tracked.expired, 10);
  assert.deepEqual(r.engine.snapshot().live, []);
  // a bound of 10: an 11th call pushes the oldest out (counted as evicted)
  replay(r, BURST);
  replay(r, 'call-pjsip-international-trunk.raw'); // dialled (evicting one), then hung up
  assert.equal(r.engine.tracker.size, 9);
  assert.equal(r.engine.snapshot().tracked.evicted, 1);
  assert.ok(!r.engine.tracker.has(fixtureValues(BURST, 'DialBegin', 'Channel')[0]!), 'the oldest went first');
});

test('malformed and partial events are ignored without throwing, and attacker text never becomes an action', async () => {
  const r = rig(new MemoryBlockStore(), fraudConfig({ windows: [{ name: 'any', calls: 1, within: '1m', actions: ['hangup', 'block'] }] }));
  const frames = [
    'Event: DialBegin',
    'Event: DialBegin\r\nChannel: PJSIP/100-00000004',
    'Event: DialBegin\r\nChannel: Local/100@internal-00000001;1\r\nDialString: 0088123@trunk',
    'Event: DialBegin\r\nChannel: PJSIP/../../etc-00000001\r\nDialString: 0088123@trunk',
    'Event: DialBegin\r\nChannel: PJSIP/' + 'x'.repeat(300) + '-00000001\r\nDialString: 0088123@trunk',
    'Event: DialBegin\r\nChannel: PJSIP/100-00000004\r\nDialString: /^PJSIP\\/.*/@trunk\r\nExten: also bad',
    'Event: Hangup',
    'Event: DialEnd\r\nChannel: PJSIP/nope-00000001',
    'Event: Cdr\r\nChannel: PJSIP/100-00000004\r\nBillableSeconds: -5',
    'Event: Cdr\r\nBillableSeconds: banana',
    'Event: SuccessfulAuth\r\nService: PJSIP\r\nAccountID: 100\r\nRemoteAddress: not an address',
    'Event: ContactStatus\r\nContactStatus: Reachable\r\nEndpointName: 102\r\nURI: sip:102@999.1.1.1:5060',
  ];
  for (const f of frames) assert.doesNotThrow(() => r.engine.handleAmiEvent(parseFrame(f)));
  await settle();
  assert.equal(r.engine.tracker.size, 0, 'none of them is a call');
  assert.deepEqual(r.ami.wire, []);
  assert.ok(r.engine.tracker.counts.ignored >= 9);
  // an exact name with a regex-looking endpoint is not a regex: it is refused as a channel name
  r.engine.handleAmiEvent(parseFrame('Event: DialBegin\r\nChannel: PJSIP/.*-00000001\r\nDialString: 0088123@trunk'));
  assert.deepEqual(r.ami.wire, []);
});

test('the ban action bans the address the account registered from (ContactStatus), and the allow-list wins', async () => {
  const banned: string[] = [];
  const allow = new Set<string>();
  const bans = { ban: async (req: { target: string }) => void banned.push(req.target), isAllowListed: (a: string) => allow.has(a) };
  const cfg = fraudConfig({ windows: [], destinationClasses: { classes: ['satellite', 'international'], actions: ['ban'] } });
  const r = rig(new MemoryBlockStore(), cfg, new WireAmi(), bans);
  replay(r, 'account-pjsip-register-new-network.raw'); // 102 from 198.51.100.77
  replay(r, 'call-pjsip-new-network-international.raw'); // 102 dials 0088216123456
  await settle();
  assert.deepEqual(banned, ['198.51.100.77']);
  const d = r.engine.snapshot().decisions[0]!;
  assert.equal(d.account, '102');
  assert.equal(d.address, '198.51.100.77');
  allow.add('198.51.100.77');
  replay(r, 'call-pjsip-new-network-international.raw');
  await settle();
  assert.deepEqual(banned, ['198.51.100.77'], 'allow-listed: not banned again');
});

// The two answered trunk calls of the capture dial 00881234567 and +88213541234: +881 and +882 are
// satellite / international networks (ITU-T E.164 assignments, rules/fraud-destinations.yaml), so
// the shipped destination-class policy alerts on each, and does nothing else.
for (const file of ['call-pjsip-international-trunk.raw', 'call-pjsip-international-trunk-remote-hangup.raw']) {
  test(`one satellite call (${file}): an alert, no action`, async () => {
    const store = new MemoryBlockStore();
    const r = rig(store);
    replay(r, file);
    await settle();
    r.timers.runAll();
    assert.deepEqual(r.ami.wire, [], 'nothing written to AMI: no Hangup, no DBPut');
    assert.deepEqual(
      r.events.map((e) => [e.Event, e.Policy, e.Action]),
      [['GuardianFraud', 'destination-class', 'alert']],
    );
    assert.match(r.events[0]!.Reason ?? '', /satellite prefix \+88[12]/);
    assert.deepEqual(store.activeBlocks(), []);
    assert.equal(r.engine.tracker.size, 0, 'the call ended with its Hangup');
  });
}

test('the hours policy: an outbound call outside the allowed hours of its group is a decision', () => {
  const cfg = fraudConfig({
    windows: [],
    hours: [{ name: 'office', accounts: ['10*'], days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '07:00', to: '20:00', actions: ['alert'] }],
  });
  const r = rig(new MemoryBlockStore(), cfg);
  // 2026-12-02 06:36 UTC is a Wednesday, before 07:00 in UTC: outside
  replay(r, 'call-pjsip-international-trunk.raw');
  const d = r.engine.snapshot().decisions.map((x) => x.policy);
  // the number is a satellite one too (the destination-class alert): the hours policy decides once
  assert.deepEqual(
    d.filter((p) => p.startsWith('hours:')),
    ['hours:office'],
  );
  assert.deepEqual(
    d.filter((p) => !p.startsWith('hours:')),
    ['destination-class'],
  );
});

test('with fraud on, the auto login mask adds call and cdr; off, security only', () => {
  assert.equal(loginEventMask(buildConfig({})), 'security,call,cdr');
  assert.equal(loginEventMask(buildConfig({ fraud: { enabled: false } })), 'security');
  assert.equal(loginEventMask(buildConfig({ ami: { events: 'on' } })), 'on');
});

test('fraud config errors name their key', () => {
  assert.throws(
    () => buildConfig({ fraud: { windows: [{ name: 'x', calls: 1, within: 'soon', actions: ['explode'] }] } }),
    /fraud\.windows\[0\]\.within[\s\S]*fraud\.windows\[0\]\.actions: "explode"/,
  );
  assert.throws(() => buildConfig({ fraud: { dialingPlan: { country: '+49' } } }), /fraud\.dialingPlan\.country/);
  assert.throws(() => buildConfig({ fraud: { budget: { amount: 10 } } }), /fraud\.budget\.amount: a budget needs a rate table/);
});

test('an event whose handling throws is counted and logged (once a minute), never silent, and the read path goes on', () => {
  const lines: Array<{ msg: string; event?: string }> = [];
  const logger = pino({ level: 'error' }, { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string; event?: string }) });
  const throwing = {
    classify: () => {
      throw new Error('refused dialing plan');
    },
    classNames: () => [],
  };
  const r = rig(new MemoryBlockStore(), fraudConfig(), new WireAmi(), null, { plan: throwing, logger });
  replay(r, BURST); // ten DialBegin, each classified
  assert.equal(r.engine.tracker.counts.failed, 10);
  assert.equal(r.engine.tracker.size, 0, 'no call followed');
  assert.equal(lines.length, 1, 'one line for the ten failures within a minute');
  assert.equal(lines[0]!.event, 'DialBegin');
  assert.match(lines[0]!.msg, /handling a DialBegin event failed/);
  r.clock.now += 61_000;
  replay(r, BURST);
  assert.equal(lines.length, 2, 'a minute later it is said again');
  r.engine.stop();
});
