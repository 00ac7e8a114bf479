/**
 * The budget policy: a rate table and a budget per window. A live, answered call costs more every
 * minute and crosses the budget on a sweep (not when dialled); a ringing, unanswered call costs
 * nothing; an ended call costs its Cdr BillableSeconds; the policy's actions (hangup, block) run on
 * the AMI wire. Asterisk reuses channel names (its sequence restarts with it): the answer and the
 * Cdr of a call belong to the newest call with that name, never to an ended one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFrame } from '../src/ami/index.js';
import { MemoryBlockStore } from '../src/fraud/index.js';
import { join } from 'node:path';
import { loadRateTable } from '../src/fraud/index.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { fraudConfig, rig, settle, type Rig } from './helpers/fraud.js';

/** the shipped example rate table: German premium 0900 (+49900) at 2.99 EUR a minute */
const RATES_FILE = join(PACKAGE_ROOT, 'rules', 'fraud-rates.yaml');
const RATES = loadRateTable(RATES_FILE);
const MIN = 60_000;

function budgetRig(amount = 10): Rig {
  const cfg = fraudConfig({
    windows: [],
    destinationClasses: { classes: [], actions: ['alert'] },
    rates: RATES_FILE,
    budget: { amount, within: '1h', actions: ['hangup', 'block'] },
  });
  return rig(new MemoryBlockStore(), cfg, undefined, null, { rates: RATES });
}

/** the DialBegin of a call from 101 through the trunk, as Asterisk 22 writes it (fields the tracker reads) */
function dial(r: Rig, channel: string, number: string, leg: string): void {
  const f = [
    'Event: DialBegin',
    'Privilege: call,all',
    `Channel: ${channel}`,
    'Context: internal',
    `Exten: ${number}`,
    `DestChannel: PJSIP/trunk-${leg}`,
    `DialString: ${number}@trunk`,
  ];
  r.engine.handleAmiEvent(parseFrame(f.join('\r\n')));
}
const dialEnd = (r: Rig, channel: string, status: string) =>
  r.engine.handleAmiEvent(parseFrame(`Event: DialEnd\r\nPrivilege: call,all\r\nChannel: ${channel}\r\nDialStatus: ${status}`));
const hangup = (r: Rig, channel: string) => r.engine.handleAmiEvent(parseFrame(`Event: Hangup\r\nPrivilege: call,all\r\nChannel: ${channel}\r\nCause: 16`));
const cdr = (r: Rig, channel: string, sec: number) =>
  r.engine.handleAmiEvent(parseFrame(`Event: Cdr\r\nPrivilege: cdr,all\r\nChannel: ${channel}\r\nBillableSeconds: ${sec}`));
const budgetDecisions = (r: Rig) => r.engine.snapshot().decisions.filter((d) => d.policy === 'budget');

test('an answered premium call crosses the budget on the sweep where its minutes pass it: hung up, account blocked', async () => {
  const r = budgetRig(10); // 10 EUR per hour: 3.3 minutes of 0900
  const ch = 'PJSIP/101-00000010';
  dial(r, ch, '0900123456', '00000011');
  r.clock.now += 5_000;
  dialEnd(r, ch, 'ANSWER');
  const answeredAt = r.clock.now;
  r.engine.sweep(answeredAt + 3 * MIN);
  assert.deepEqual(budgetDecisions(r), [], '3 minutes: 8.97 EUR, under the budget');
  assert.deepEqual(r.ami.sent('Hangup'), []);
  r.clock.now = answeredAt + 4 * MIN;
  r.engine.sweep(r.clock.now);
  const [d] = budgetDecisions(r);
  assert.ok(d, '4 minutes: 11.96 EUR, over');
  assert.match(d.reason, /estimated cost 11\.96 EUR of account 101 within 1h \(budget 10\)/);
  assert.deepEqual(d.channels, [ch]);
  await settle();
  assert.deepEqual(r.ami.sent('Hangup'), [{ Action: 'Hangup', Channel: ch }]);
  assert.equal(r.ami.sent('DBPut')[0]?.Key, '101');
  assert.ok(r.engine.isBlocked('101'));
  assert.deepEqual(
    r.events.map((e) => [e.Event, e.Policy]),
    [
      ['GuardianFraud', 'budget'],
      ['GuardianAccountBlocked', 'budget'],
    ],
  );
  // the call ends (its Hangup arrives): later sweeps in the same window repeat nothing
  hangup(r, ch);
  cdr(r, ch, 240);
  for (let i = 1; i <= 5; i++) r.engine.sweep(r.clock.now + i * 5_000);
  assert.equal(budgetDecisions(r).length, 1, 'no decision on every sweep for an account over budget with no live call');
  assert.equal(r.events.length, 2);
});

test('a ringing call that is never answered costs nothing, however long it rings; a busy one neither', () => {
  const r = budgetRig(1);
  dial(r, 'PJSIP/101-00000020', '0900123456', '00000021');
  r.engine.sweep(r.clock.now + 30 * MIN);
  assert.deepEqual(budgetDecisions(r), []);
  dialEnd(r, 'PJSIP/101-00000020', 'NOANSWER');
  dial(r, 'PJSIP/101-00000022', '0900123457', '00000023');
  dialEnd(r, 'PJSIP/101-00000022', 'BUSY');
  r.engine.sweep(r.clock.now + 40 * MIN);
  assert.deepEqual(budgetDecisions(r), []);
  assert.deepEqual(r.ami.wire, []);
});

test('ended calls count their Cdr BillableSeconds within the window, and fall out of it', () => {
  const r = budgetRig(8);
  for (let i = 0; i < 3; i++) {
    const ch = `PJSIP/101-0000003${i}`;
    dial(r, ch, '0900123456', `0000004${i}`);
    dialEnd(r, ch, 'ANSWER');
    r.clock.now += 60_000;
    hangup(r, ch);
    cdr(r, ch, 60); // 2.99 EUR each
    r.engine.sweep(r.clock.now);
  }
  const [d] = budgetDecisions(r);
  assert.ok(d, 'three billed minutes: 8.97 EUR > 8');
  assert.match(d.reason, /estimated cost 8\.97 EUR/);
  assert.deepEqual(d.channels, [], 'no live call to hang up');
  // an hour later the calls are out of the window: a new account-level estimate starts from zero
  const r2 = budgetRig(5);
  dial(r2, 'PJSIP/101-00000050', '0900123456', '00000051');
  dialEnd(r2, 'PJSIP/101-00000050', 'ANSWER');
  r2.clock.now += 2 * MIN;
  hangup(r2, 'PJSIP/101-00000050');
  cdr(r2, 'PJSIP/101-00000050', 120);
  r2.engine.sweep(r2.clock.now + 61 * MIN);
  assert.deepEqual(budgetDecisions(r2), []);
});

test('a reused channel name: the answer and the Cdr go to the newest call with it, so its minutes count', async () => {
  const r = budgetRig(10);
  const ch = 'PJSIP/101-00000001'; // Asterisk restarted: the sequence began again
  dial(r, ch, '0900123456', '00000002');
  dialEnd(r, ch, 'ANSWER');
  r.clock.now += 60_000;
  hangup(r, ch);
  cdr(r, ch, 60); // the first call: 2.99 EUR
  r.clock.now += 60_000;
  dial(r, ch, '0900654321', '00000002'); // a new call with the same name
  dialEnd(r, ch, 'ANSWER');
  const answeredAt = r.clock.now;
  r.engine.sweep(answeredAt + 2 * MIN);
  assert.deepEqual(budgetDecisions(r), [], '2.99 + 5.98 = 8.97 EUR');
  r.clock.now = answeredAt + 3 * MIN;
  r.engine.sweep(r.clock.now);
  const [d] = budgetDecisions(r);
  assert.ok(d, "2.99 + 8.97 = 11.96 EUR: the live call's minutes count (the old entry took the answer before the fix)");
  assert.match(d.reason, /estimated cost 11\.96 EUR/);
  await settle();
  assert.deepEqual(r.ami.sent('Hangup'), [{ Action: 'Hangup', Channel: ch }]);
  // its Cdr is the new call's too: 240 s of it (11.96 EUR), the old call keeps its 60 s (2.99 EUR)
  hangup(r, ch);
  cdr(r, ch, 240);
  const cost = (r.engine as unknown as { policies: { cost(a: string, now: number): number } }).policies.cost('101', r.clock.now);
  assert.equal(cost.toFixed(2), '14.95');
});
