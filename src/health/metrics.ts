import { Gauge, type Registry } from 'prom-client';
import type { HealthInputs, HealthReport } from './types.js';

export interface HealthSample {
  report: HealthReport;
  inputs: HealthInputs;
}

/**
 * The health gauges, computed when Prometheus scrapes (prom-client collect()), never on a timer.
 * One sample serves every gauge of a scrape: prom-client runs the collect() of all metrics in
 * the same turn of the event loop, and the sample is dropped at the next one.
 */
export function registerHealthMetrics(registry: Registry, take: () => HealthSample): void {
  let cached: HealthSample | null = null;
  const sample = (): HealthSample => {
    if (!cached) {
      cached = take();
      setImmediate(() => (cached = null));
    }
    return cached;
  };
  // a name another stage registered already is left to it (two registrations would throw at start)
  const gauge = <L extends string>(name: string, help: string, labelNames: L[], collect: (g: Gauge<L>, s: HealthSample) => void): void => {
    if (registry.getSingleMetric(name)) return;
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        collect(this, sample());
      },
    });
  };

  gauge(
    'pbx_guardian_up',
    'health of each enabled part (ami, guard, firewall, store, odoo, webhooks, fleet, feeds): 1 healthy, 0 not; see pbx-guardian status',
    ['part'],
    (g, s) => {
      for (const p of s.report.parts) if (p.enabled) g.set({ part: p.part }, p.healthy ? 1 : 0);
    },
  );
  gauge('pbx_guardian_healthy', '1 when every enabled part is healthy (pbx-guardian status exits 0), else 0', [], (g, s) => g.set(s.report.healthy ? 1 : 0));
  gauge(
    'pbx_guardian_firewall_backend_info',
    'the firewall backend in use; dry_run="true" means nothing reaches the kernel (memory)',
    ['backend', 'dry_run'],
    (g, s) => {
      const f = s.inputs.firewall.health;
      g.set({ backend: f.backend, dry_run: f.dryRun ? 'true' : 'false' }, 1);
    },
  );
  // the gauges that can be absent carry a label: prom-client always prints a label-less gauge (0 after reset)
  gauge(
    'pbx_guardian_ami_security_verified',
    '1 when the AMI session is proven to receive security events, else 0 (the guard is blind); absent when AMI is disabled',
    ['username'],
    (g, s) => {
      const a = s.inputs.ami;
      if (a) g.set({ username: a.username }, a.security === 'verified' ? 1 : 0);
    },
  );
  gauge(
    'pbx_guardian_ami_last_security_event_timestamp_seconds',
    'unix time of the last security-class AMI event received; absent until one arrives',
    ['username'],
    (g, s) => {
      const a = s.inputs.ami;
      if (a?.lastSecurityEventAt != null) g.set({ username: a.username }, a.lastSecurityEventAt / 1000);
    },
  );
  gauge(
    'pbx_guardian_firewall_kernel_elements',
    'ban elements in the kernel at the last count; absent when not counted (memory backend, no count yet)',
    ['backend'],
    (g, s) => {
      const f = s.inputs.firewall.health;
      if (f.kernelElements !== null) g.set({ backend: f.backend }, f.kernelElements);
    },
  );
  gauge(
    'pbx_guardian_firewall_store_bans',
    'active bans the firewall should hold (compare with pbx_guardian_firewall_kernel_elements)',
    ['backend'],
    (g, s) => {
      const f = s.inputs.firewall.health;
      g.set({ backend: f.backend }, f.storeActive);
    },
  );
}
