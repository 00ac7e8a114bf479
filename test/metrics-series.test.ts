/**
 * The core metrics' labelled series exist at zero from the first scrape, pbx_guardian_build_info
 * names the firewall path, and pbx_guardian_ban_latency_seconds measures failure received →
 * kernel transaction applied (an Enforcer over a backend with a known delay; a real daemon
 * banning a replayed attack).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Enforcer, MemoryBackend, defaultFirewallConfig, type FirewallBatch } from '../src/firewall/index.js';
import { createMetrics } from '../src/metrics/index.js';
import { enforcerMetricHooks } from '../src/metrics/bind.js';
import { AMI_LOGIN_KINDS, AMI_STATES, FIREWALL_OPS, FRAME_DROP_REASONS, IGNORED_REASONS, UNBAN_WHY } from '../src/metrics/labels.js';
import { attackBytes, startTestDaemon, waitFor } from './helpers/daemon.js';

const sample = (text: string, series: string) =>
  text
    .split('\n')
    .find((l) => l.startsWith(series + ' '))
    ?.slice(series.length + 1);

test('a fresh registry: every labelled core series with known values is there at 0; build_info before the backend', async () => {
  const text = await createMetrics().registry.metrics();
  for (const reason of IGNORED_REASONS) assert.equal(sample(text, `pbx_guardian_events_ignored_total{reason="${reason}"}`), '0', reason);
  assert.equal(IGNORED_REASONS.length, 8);
  for (const kind of AMI_LOGIN_KINDS) assert.equal(sample(text, `pbx_guardian_ami_login_failures_total{kind="${kind}"}`), '0', kind);
  for (const reason of FRAME_DROP_REASONS) assert.equal(sample(text, `pbx_guardian_ami_frames_dropped_total{reason="${reason}"}`), '0');
  for (const state of AMI_STATES) assert.equal(sample(text, `pbx_guardian_ami_state{state="${state}"}`), state === 'disconnected' ? '1' : '0');
  for (const why of UNBAN_WHY) assert.equal(sample(text, `pbx_guardian_unbans_total{why="${why}"}`), '0');
  for (const op of FIREWALL_OPS)
    for (const m of ['firewall_elements_total', 'firewall_drift_repaired_total', 'firewall_refused_total'])
      assert.equal(sample(text, `pbx_guardian_${m}{op="${op}"}`), '0', `${m} ${op}`);
  assert.equal(sample(text, 'pbx_guardian_ami_connected'), '0');
  assert.equal(sample(text, 'pbx_guardian_ban_latency_seconds_count'), '0');
  assert.match(text, /^pbx_guardian_build_info\{version="[^"]+",node="[^"]+",modules="\d+",backend="starting"\} 1$/m);
  assert.match(text, /^process_cpu_seconds_total \d/m, 'prom-client defaults under their standard names');
  assert.doesNotMatch(text, /^pbx_guardian_process_/m);
});

test('ban latency: observed at the end of the transaction that applied the ban, from the entry seenAt; not for bans without one, not while paused', async () => {
  const metrics = createMetrics();
  const hooks = enforcerMetricHooks(metrics);
  const DELAY_MS = 40;
  class SlowBackend extends MemoryBackend {
    override async apply(batch: FirewallBatch): Promise<void> {
      await new Promise((r) => setTimeout(r, DELAY_MS));
      return super.apply(batch);
    }
  }
  const be = new SlowBackend();
  const enf = new Enforcer(be, () => [], { ...defaultFirewallConfig, batchWindowMs: 5, reconcileIntervalMs: 0 }, pino({ level: 'silent' }), hooks, {
    watchdogIntervalMs: 0,
  });
  await enf.start();
  try {
    const seenAt = performance.now();
    await enf.ban({ target: '203.0.113.7', family: 4, isNetwork: false, expiresAt: null, seenAt });
    const waited = (performance.now() - seenAt) / 1000;
    await enf.ban({ target: '203.0.113.8', family: 4, isNetwork: false, expiresAt: null }); // a manual ban: no seenAt
    const h = (await metrics.banLatency.get()).values;
    const count = h.find((v) => v.metricName === 'pbx_guardian_ban_latency_seconds_count')!.value;
    const sum = h.find((v) => v.metricName === 'pbx_guardian_ban_latency_seconds_sum')!.value;
    assert.equal(count, 1, 'only the ban with a seenAt');
    assert.ok(sum >= DELAY_MS / 1000 && sum <= waited, `latency ${sum} s: at least the backend's ${DELAY_MS} ms, at most what the caller waited (${waited} s)`);
    assert.deepEqual(
      (await be.list()).map((e) => Object.keys(e).sort()),
      [
        ['expiresAt', 'family', 'isNetwork', 'target'],
        ['expiresAt', 'family', 'isNetwork', 'target'],
      ],
      'the backend never sees seenAt',
    );
    assert.equal(enf.backendPath, 'memory-dry-run');
    await enf.pause('test');
    await enf.ban({ target: '203.0.113.9', family: 4, isNetwork: false, expiresAt: null, seenAt: performance.now() });
    const after = (await metrics.banLatency.get()).values.find((v) => v.metricName === 'pbx_guardian_ban_latency_seconds_count')!.value;
    assert.equal(after, 1, 'paused: no kernel transaction, no sample');
  } finally {
    await enf.stop();
  }
});

test('a real daemon: bans per rule and failures per watched event at 0 before any attack; a replayed attack is one ban-latency sample', async (t) => {
  const td = await startTestDaemon({ config: { firewall: { batchWindowMs: 5 } } });
  try {
    const registry = td.daemon.metrics.registry;
    let text = await registry.metrics();
    const rules = td.daemon.guardian.rules;
    assert.ok(rules.length >= 2);
    for (const r of rules) {
      assert.equal(sample(text, `pbx_guardian_bans_total{rule="${r.name}",source="rule"}`), '0', r.name);
      for (const e of r.events) assert.equal(sample(text, `pbx_guardian_failures_total{event="${e}"}`), '0', e);
    }
    assert.equal(sample(text, 'pbx_guardian_bans_total{rule="manual",source="manual"}'), '0');
    assert.equal(sample(text, 'pbx_guardian_fraud_calls_watched_total{kind="outbound"}'), '0');
    assert.equal(sample(text, 'pbx_guardian_fraud_action_failures_total{action="hangup"}'), '0');
    for (const fallback of ['exten', 'unknown', 'none'])
      assert.equal(sample(text, `pbx_guardian_fraud_dialstrings_unparsed_total{fallback="${fallback}"}`), '0');
    assert.match(text, /^pbx_guardian_build_info\{[^}]*backend="memory-dry-run"\} 1$/m);

    await waitFor('AMI login', () => td.daemon.ami?.state === 'connected');
    for (let i = 0; i < 5; i++) td.sim!.broadcast(attackBytes('203.0.113.10'));
    await waitFor('the ban in the backend', async () => (await td.backend.list()).some((e) => e.target === '203.0.113.10'));
    await waitFor('the latency sample', async () => sample(await registry.metrics(), 'pbx_guardian_ban_latency_seconds_count') === '1');
    text = await registry.metrics();
    const sum = Number(sample(text, 'pbx_guardian_ban_latency_seconds_sum'));
    t.diagnostic(`ban latency through the daemon (memory backend, batch window 5 ms): ${(sum * 1000).toFixed(2)} ms`);
    assert.ok(sum > 0 && sum < 1, `ban latency ${sum} s`);
    assert.equal(sample(text, 'pbx_guardian_ban_latency_seconds_bucket{le="1"}'), '1');
  } finally {
    await td.close();
  }
});
