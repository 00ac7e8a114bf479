import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LapiClient, LapiError } from '../src/fleet/lapi.js';
import { parseStream, targetOf } from '../src/fleet/decision.js';
import { skipReason, startLapi } from './helpers/crowdsec-lapi.js';

const skip = skipReason();

test('a real LAPI 1.4: the machine pushes an alert with its decision, the bouncer stream returns it, cscli sees it', { skip }, async () => {
  const lapi = await startLapi(18180);
  try {
    const now = new Date().toISOString();
    const alert = (scope: 'Ip' | 'Range', value: string) => ({
      scenario: 'pbx-guardian/sip-auth',
      scenario_hash: '',
      scenario_version: '',
      message: 'pbx-guardian: 5 failed registrations',
      events_count: 5,
      start_at: now,
      stop_at: now,
      capacity: 0,
      leakspeed: '0',
      simulated: false,
      events: [],
      source: scope === 'Ip' ? { scope, value, ip: value } : { scope, value, range: value },
      decisions: [{ origin: 'crowdsec', type: 'ban', scope, value, duration: '3600s', scenario: 'pbx-guardian/sip-auth' }],
    });
    const machine = new LapiClient({ url: lapi.url, timeoutMs: 5000, ...lapi.machine });
    await machine.pushAlerts([alert('Ip', '203.0.113.7'), alert('Range', '2001:db8:1::/48')]);
    const listed = lapi.decisions().flatMap((a) => a.decisions);
    const ip = listed.find((d) => d.value === '203.0.113.7');
    assert.ok(ip, 'the pushed Ip decision is in cscli decisions list');
    assert.equal(ip.scope, 'Ip');
    assert.equal(ip.scenario, 'pbx-guardian/sip-auth');
    assert.match(ip.duration, /^(59m|1h0m0s)/);
    assert.equal(listed.find((d) => d.value === '2001:db8:1::/48')?.scope, 'Range');

    const bouncer = new LapiClient({ url: lapi.url, timeoutMs: 5000, apiKey: lapi.bouncer.apiKey });
    const first = parseStream(await bouncer.stream(true, 1 << 20));
    assert.deepEqual(
      first.new
        .map((d) => targetOf(d))
        .map((t) => ('skip' in t ? t.skip : t.target))
        .sort(),
      ['2001:db8:1::/48', '203.0.113.7'],
    );
    lapi.cscli(['decisions', 'add', '-i', '198.51.100.9', '-d', '2h']);
    const delta = parseStream(await bouncer.stream(false, 1 << 20));
    assert.deepEqual(
      delta.new.map((d) => d.value),
      ['198.51.100.9'],
    );
    lapi.cscli(['decisions', 'delete', '-i', '198.51.100.9']);
    const gone = parseStream(await bouncer.stream(false, 1 << 20));
    assert.deepEqual(
      gone.deleted.map((d) => d.value),
      ['198.51.100.9'],
    );

    await assert.rejects(
      new LapiClient({ url: lapi.url, timeoutMs: 5000, apiKey: 'wrong-key-123456' }).stream(true, 1 << 20),
      (e: LapiError) => e.retry && e.status === 403,
    );
    await assert.rejects(bouncer.stream(true, 64), /more than 64 bytes/);
    await lapi.stop();
    await assert.rejects(machine.pushAlerts([alert('Ip', '203.0.113.8')]), (e: LapiError) => e.retry && e.code === 'LAPI_UNAVAILABLE');
  } finally {
    await lapi.close();
  }
});
