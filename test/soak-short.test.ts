/**
 * Short soak (~20 s): a sustained stream of real security frames (from a producer in a worker
 * thread) through the real daemon with the memory backend. Asserts properties of the run, not
 * speed: every attacker that crossed the threshold is banned, nothing allow-listed, legitimate or
 * below the threshold is banned, every event sent was received and memory stays bounded. The
 * event-loop delay is printed, not asserted (it depends on the machine and its load): its bound
 * is the `soak: event-loop delay p99` row of the full soak (5k events/s, 100k addresses, 600 s),
 * `bench/soak.ts`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { soak } from '../bench/soak.js';

test('soak (short): sustained attack with legitimate traffic, no attacker missed, nothing allowed banned, bounded', { timeout: 180_000 }, async () => {
  const r = await soak({ seconds: 20, rate: 1500, addresses: 2000, backend: 'memory', sampleMs: 1000, drainBoundMs: 30_000 });
  console.log(
    `# soak-short: ${r.eventsSent} events at ${r.achievedRate}/s, lag p99 ${r.lagP99Ms} ms (max ${r.lagMaxMs}), RSS ${r.rssFirstThirdMaxMb} → ${r.rssLastThirdMaxMb} MB (${r.rssGrowthPct}%), ${r.attackersBanned}/${r.attackersExpected} attackers banned`,
  );
  assert.equal(r.eventsReceived, r.eventsSent, 'every event sent reached the daemon');
  assert.ok(r.attackersExpected > 0, 'some attackers crossed the threshold');
  assert.equal(r.attackersMissed, 0, `attackers missed, e.g. ${r.missedSample.join(', ')}`);
  assert.equal(r.allowListedBanned, 0, 'an allow-listed address was banned');
  assert.equal(r.legitBanned, 0, 'a legitimate phone was banned');
  assert.equal(r.noiseBanned, 0, 'an address below the threshold was banned');
  assert.equal(r.bansTotal, r.attackersExpected, 'bans are exactly the attackers that crossed the threshold');
  assert.ok(r.rssGrowthPct <= 50, `RSS grew ${r.rssGrowthPct}% from the first third to the last`);
});
