/**
 * Faults on the Odoo side, through the real daemon (odoo.enabled, AMI from the simulator):
 * - Odoo answers in 10 s: the guard path is not held up (bans at the threshold while Odoo calls
 *   are still pending);
 * - Odoo is down (connection refused, then HTTP 503) for ~3 s, then back: no durable event is
 *   lost and the order of each call's events is kept.
 * The slow-Odoo test runs first: its 10 s answer timers then overlap the outage test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeOdoo } from './helpers/fake-odoo.js';
import { attackBytes, sleep, startTestDaemon, waitFor, type TestDaemon } from './helpers/daemon.js';

const MAP = [
  { id: 1, name: 'UserEvent', source: 'AMI', model: 'asterisk_plus.call', method: 'on_user_event', delay: 0, condition: "event.get('UserEvent') == 'Seq'" },
  { id: 2, name: 'GuardianBan', source: 'AMI', model: 'asterisk_plus.security', method: 'on_guardian_ban', delay: 0, condition: false },
];

const userEvent = (lane: string, seq: number) =>
  `Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: Seq\r\nLinkedid: ${lane}\r\nUniqueid: ${lane}\r\nSeq: ${seq}\r\n\r\n`;

const bannedIn = async (td: TestDaemon, target: string) => (await td.backend.list()).some((e) => e.target === target);

async function mapLoaded(td: TestDaemon): Promise<void> {
  await waitFor('AMI login', () => td.daemon.ami?.state === 'connected');
  await waitFor('events map downloaded', () => td.odoo!.callsTo('asterisk_plus.event', 'search_read').length >= 1 && td.daemon.odoo!.forwarder.hasMap());
}

test('Odoo answers in 10 s: bans still happen exactly at the threshold while Odoo calls are pending', async (t) => {
  const odoo = new FakeOdoo({ eventsMap: MAP });
  const td = await startTestDaemon({ odoo });
  try {
    await mapLoaded(td);
    odoo.latencyMs = 10_000;
    const sim = td.sim!;
    // Odoo is now busy with a forwarded event
    sim.broadcast(userEvent('call-slow', 1));
    await waitFor('a call pending in Odoo', () => odoo.pending >= 1, 3000);

    for (const addr of ['203.0.113.50', '203.0.113.51']) {
      for (let i = 0; i < 4; i++) sim.broadcast(attackBytes(addr));
    }
    await waitFor('8 failures counted', () => td.daemon.guardian.status().totalFailed >= 8, 3000);
    assert.equal(td.daemon.guardian.listBans().length, 0, 'nobody banned below the threshold');
    const t0 = Date.now();
    sim.broadcast(attackBytes('203.0.113.50'));
    sim.broadcast(attackBytes('203.0.113.51'));
    await waitFor('both banned in the backend', async () => (await bannedIn(td, '203.0.113.50')) && (await bannedIn(td, '203.0.113.51')), 3000);
    const ms = Date.now() - t0;
    t.diagnostic(`bans applied ${ms} ms after the 5th failure while ${odoo.pending} Odoo call(s) were pending (Odoo latency 10 s)`);
    // ordering/state: the bans are done, Odoo has not answered anything yet
    assert.ok(odoo.pending >= 1, 'Odoo calls still pending when the bans were applied');
    assert.equal(odoo.callsTo('asterisk_plus.call', 'on_user_event').length, 0, 'Odoo has answered no forwarded event yet');
    assert.equal(odoo.callsTo('asterisk_plus.security', 'on_guardian_ban').length, 0);
    assert.deepEqual(
      td.daemon.guardian
        .listBans()
        .map((b) => b.target)
        .sort(),
      ['203.0.113.50', '203.0.113.51'],
    );
    assert.ok(td.daemon.enforcer.healthy);
    assert.equal(td.daemon.guardian.listBans()[0]!.count, 5, 'banned at the 5th failure (auth-failure: 5 within 10m)');
  } finally {
    await td.close();
  }
});

test('Odoo down ~3 s (refused, then 503), then back: no durable event lost, order per call kept', async (t) => {
  const odoo = new FakeOdoo({ eventsMap: MAP });
  const td = await startTestDaemon({ odoo });
  try {
    await mapLoaded(td);
    const sim = td.sim!;
    const port = Number(new URL(odoo.url).port);
    const lanes = ['call-A', 'call-B', 'call-C'];
    let seq = 0;
    const send = (n: number) => {
      for (let i = 0; i < n; i++) {
        seq++;
        for (const lane of lanes) sim.broadcast(userEvent(lane, seq));
      }
    };
    send(10); // Odoo up
    await waitFor('first events delivered', () => odoo.callsTo('asterisk_plus.call', 'on_user_event').length >= 30, 5000);

    // outage, part 1: Odoo's HTTP port is closed (connection refused)
    await odoo.stop();
    const outageStart = Date.now();
    for (let k = 0; k < 10; k++) {
      send(2);
      await sleep(150);
    }
    // a ban during the outage is a durable event too
    for (let i = 0; i < 5; i++) sim.broadcast(attackBytes('203.0.113.60'));
    await waitFor('the ban', () => bannedIn(td, '203.0.113.60'));
    // outage, part 2: Odoo listens again but answers 503
    await odoo.start(port);
    odoo.mode = 'http503';
    for (let k = 0; k < 10; k++) {
      send(2);
      await sleep(150);
    }
    const outageMs = Date.now() - outageStart;
    const stats = td.daemon.odoo!.forwarder.stats();
    t.diagnostic(`outage ${outageMs} ms; forwarder during it: ${JSON.stringify(stats)}`);
    assert.equal(stats.mode, 'outbox', 'the forwarder switched to the durable outbox');
    assert.ok(stats.outbox > 0, 'events wait in the outbox');
    odoo.mode = 'ok';
    send(10); // after the outage
    const total = seq;
    await waitFor('every event delivered', () => odoo.callsTo('asterisk_plus.call', 'on_user_event').length >= total * lanes.length, 20_000);
    await waitFor('the GuardianBan delivered', () => odoo.callsTo('asterisk_plus.security', 'on_guardian_ban').length >= 1, 10_000);
    assert.ok(await td.daemon.odoo!.forwarder.whenIdle(10_000), 'forwarder idle again (outbox drained, direct mode)');

    const calls = odoo.callsTo('asterisk_plus.call', 'on_user_event');
    for (const lane of lanes) {
      const seen = calls
        .map((c) => c.args[0] as Record<string, string>)
        .filter((e) => e.Linkedid === lane)
        .map((e) => Number(e.Seq));
      assert.deepEqual(
        seen,
        Array.from({ length: total }, (_, i) => i + 1),
        `${lane}: every event exactly once, in order`,
      );
    }
    const ban = odoo.callsTo('asterisk_plus.security', 'on_guardian_ban')[0]!.args[0] as Record<string, string>;
    assert.equal(ban.Address, '203.0.113.60');
    assert.equal(ban.Event, 'GuardianBan');
    assert.deepEqual(odoo.violations, []);
    t.diagnostic(`${calls.length} forwarded events + 1 GuardianBan delivered after a ${outageMs} ms outage`);
  } finally {
    await td.close();
  }
});
