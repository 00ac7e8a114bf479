import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Gauge, Registry } from 'prom-client';
import type { AmiHealth } from '../src/ami/index.js';
import type { FirewallHealth } from '../src/firewall/index.js';
import { judgeHealth, registerHealthMetrics, type HealthInputs, type HealthSample } from '../src/health/index.js';

const sample = (text: string, series: string) =>
  text
    .split('\n')
    .find((l) => l.startsWith(series + ' '))
    ?.slice(series.length + 1);

const fw: FirewallHealth = {
  backend: 'nftables',
  dryRun: false,
  state: 'enforcing',
  pausedReason: null,
  tablePresent: true,
  kernelElements: 2,
  kernelCountedAt: 1,
  storeActive: 2,
  queued: 0,
  lastSuccessAt: 1,
  lastError: null,
  repairs: 0,
};
const ami: AmiHealth = {
  state: 'connected',
  host: '127.0.0.1',
  port: 5038,
  username: 'guardian',
  since: 0,
  lastLoginError: null,
  security: 'verified',
  classesSeen: ['security'],
  lastEventAt: 1_700_000_000_000,
  lastSecurityEventAt: 1_700_000_000_000,
  advice: null,
};

function inputs(over: Partial<HealthInputs>): HealthInputs {
  return {
    ami,
    guard: { rules: 3, tracked: 0, maxTracked: 1000, activeBans: 2 },
    firewall: { configured: 'auto', health: fw },
    store: { onDisk: true, path: '/s/guardian.sqlite', stateDir: '/s', openError: null, lastWriteError: null, lastWriteOkAt: null },
    odoo: null,
    webhooks: null,
    fleet: null,
    ...over,
  };
}

test('health metrics: judged at each scrape (one sample per scrape, no timer), per enabled part', async () => {
  const registry = new Registry();
  let current = inputs({});
  let takes = 0;
  registerHealthMetrics(registry, (): HealthSample => {
    takes++;
    return { inputs: current, report: judgeHealth(current, Date.now()) };
  });
  assert.equal(takes, 0, 'nothing is computed before a scrape');
  let text = await registry.metrics();
  assert.equal(takes, 1, 'one sample serves every health gauge of a scrape');
  assert.equal(sample(text, 'pbx_guardian_up{part="ami"}'), '1');
  assert.equal(sample(text, 'pbx_guardian_up{part="odoo"}'), undefined);
  assert.equal(sample(text, 'pbx_guardian_healthy'), '1');
  assert.equal(sample(text, 'pbx_guardian_firewall_backend_info{backend="nftables",dry_run="false"}'), '1');
  assert.equal(sample(text, 'pbx_guardian_ami_security_verified{username="guardian"}'), '1');
  assert.equal(sample(text, 'pbx_guardian_ami_last_security_event_timestamp_seconds{username="guardian"}'), '1700000000');
  assert.equal(sample(text, 'pbx_guardian_firewall_kernel_elements{backend="nftables"}'), '2');
  assert.equal(sample(text, 'pbx_guardian_firewall_store_bans{backend="nftables"}'), '2');

  // the AMI user loses read=security, the backend becomes a dry run: the next scrape says so
  current = inputs({
    ami: { ...ami, security: 'missing' },
    firewall: { configured: 'memory', health: { ...fw, backend: 'memory', dryRun: true, kernelElements: null } },
  });
  await new Promise((r) => setImmediate(r));
  text = await registry.metrics();
  assert.equal(takes, 2);
  assert.equal(sample(text, 'pbx_guardian_up{part="guard"}'), '0');
  assert.equal(sample(text, 'pbx_guardian_up{part="ami"}'), '1');
  assert.equal(sample(text, 'pbx_guardian_healthy'), '0');
  assert.equal(sample(text, 'pbx_guardian_ami_security_verified{username="guardian"}'), '0');
  assert.equal(sample(text, 'pbx_guardian_firewall_backend_info{backend="memory",dry_run="true"}'), '1');
  assert.equal(sample(text, 'pbx_guardian_firewall_backend_info{backend="nftables",dry_run="false"}'), undefined, 'the old backend series is gone');
  assert.ok(!/^pbx_guardian_firewall_kernel_elements[ {]/m.test(text), 'not counted: no sample');

  current = inputs({ ami: null });
  await new Promise((r) => setImmediate(r));
  text = await registry.metrics();
  assert.ok(!/^pbx_guardian_ami_security_verified[ {]/m.test(text), 'AMI disabled: no sample');
  assert.ok(!/^pbx_guardian_ami_last_security_event_timestamp_seconds[ {]/m.test(text));
  assert.equal(sample(text, 'pbx_guardian_up{part="ami"}'), undefined);
});

test('health metrics: a name another stage registered first is left to it (no duplicate-registration crash at start)', async () => {
  const registry = new Registry();
  const theirs = new Gauge({ name: 'pbx_guardian_ami_security_verified', help: 'registered elsewhere', registers: [registry] });
  theirs.set(7);
  registerHealthMetrics(registry, () => ({ inputs: inputs({}), report: judgeHealth(inputs({}), Date.now()) }));
  const text = await registry.metrics();
  assert.equal(sample(text, 'pbx_guardian_ami_security_verified'), '7');
  assert.equal(sample(text, 'pbx_guardian_healthy'), '1');
});
