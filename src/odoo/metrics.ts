import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface OdooMetrics {
  rpcCalls: Counter<'outcome'>;
  rpcSeconds: Histogram<'outcome'>;
  eventsMatched: Counter<'event'>;
  eventsForwarded: Counter<string>;
  eventsDropped: Counter<'reason'>;
  eventsDelayed: Gauge<string>;
  eventsQueued: Gauge<string>;
  outboxDepth: Gauge<string>;
  outboxOldestAge: Gauge<string>;
  outboxDropped: Counter<'reason'>;
  outboxWritten: Counter<string>;
  conditionsRejected: Counter<string>;
  jobsAccepted: Counter<string>;
  jobsRejected: Counter<'reason'>;
  jobsCompleted: Counter<'fun' | 'outcome'>;
  jobsQueued: Gauge<string>;
  jobsRunning: Gauge<string>;
  fagiRequests: Counter<'outcome'>;
}

/** Define the bridge's metrics in `registry`. Gauges read from the callbacks at scrape time. */
export function createOdooMetrics(
  registry: Registry,
  read: {
    outboxDepth: () => number;
    outboxOldestAgeSec: () => number;
    delayed: () => number;
    queued: () => number;
    jobsQueued: () => number;
    jobsRunning: () => number;
  },
): OdooMetrics {
  const r = [registry];
  const m = {
    rpcCalls: new Counter({ name: 'pbx_guardian_odoo_rpc_calls_total', help: 'Odoo RPC calls by outcome', labelNames: ['outcome'], registers: r }),
    rpcSeconds: new Histogram({
      name: 'pbx_guardian_odoo_rpc_duration_seconds',
      help: 'Odoo RPC call duration',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    eventsMatched: new Counter({
      name: 'pbx_guardian_odoo_events_matched_total',
      help: 'AMI events that matched an events map handler',
      labelNames: ['event'],
      registers: r,
    }),
    eventsForwarded: new Counter({ name: 'pbx_guardian_odoo_events_forwarded_total', help: 'event handler calls Odoo accepted', registers: r }),
    eventsDropped: new Counter({
      name: 'pbx_guardian_odoo_events_dropped_total',
      help: 'event handler calls dropped, by reason',
      labelNames: ['reason'],
      registers: r,
    }),
    eventsDelayed: new Gauge({
      name: 'pbx_guardian_odoo_events_delayed',
      help: 'events waiting for their handler delay',
      registers: r,
      collect() {
        this.set(read.delayed());
      },
    }),
    eventsQueued: new Gauge({
      name: 'pbx_guardian_odoo_events_queued',
      help: 'events in memory waiting for a delivery lane',
      registers: r,
      collect() {
        this.set(read.queued());
      },
    }),
    outboxDepth: new Gauge({
      name: 'pbx_guardian_outbox_depth',
      help: 'rows in the Odoo outbox',
      registers: r,
      collect() {
        this.set(read.outboxDepth());
      },
    }),
    outboxOldestAge: new Gauge({
      name: 'pbx_guardian_outbox_oldest_age_seconds',
      help: 'age of the oldest outbox row (0 when empty)',
      registers: r,
      collect() {
        this.set(read.outboxOldestAgeSec());
      },
    }),
    outboxDropped: new Counter({
      name: 'pbx_guardian_outbox_dropped_total',
      help: 'outbox rows dropped, by reason (cap, expired, too_large, rejected)',
      labelNames: ['reason'],
      registers: r,
    }),
    outboxWritten: new Counter({ name: 'pbx_guardian_outbox_written_total', help: 'calls written to the outbox', registers: r }),
    conditionsRejected: new Counter({
      name: 'pbx_guardian_odoo_conditions_unsupported_total',
      help: 'events map rows skipped for an unsupported condition',
      registers: r,
    }),
    jobsAccepted: new Counter({ name: 'pbx_guardian_jobs_accepted_total', help: 'Odoo jobs accepted', registers: r }),
    jobsRejected: new Counter({ name: 'pbx_guardian_jobs_rejected_total', help: 'Odoo job requests refused, by reason', labelNames: ['reason'], registers: r }),
    jobsCompleted: new Counter({
      name: 'pbx_guardian_jobs_completed_total',
      help: 'Odoo jobs finished, by function and outcome',
      labelNames: ['fun', 'outcome'],
      registers: r,
    }),
    jobsQueued: new Gauge({
      name: 'pbx_guardian_jobs_queued',
      help: 'Odoo jobs waiting',
      registers: r,
      collect() {
        this.set(read.jobsQueued());
      },
    }),
    jobsRunning: new Gauge({
      name: 'pbx_guardian_jobs_running',
      help: 'Odoo jobs running',
      registers: r,
      collect() {
        this.set(read.jobsRunning());
      },
    }),
    fagiRequests: new Counter({ name: 'pbx_guardian_odoo_fagi_requests_total', help: 'FastAGI requests by outcome', labelNames: ['outcome'], registers: r }),
  };
  // the series with known label values, at 0 from the first scrape (values: odoo/rpc.ts onCall,
  // store/outbox.ts OutboxDropReason, forwarder.ts, jobs.ts, fagi.ts)
  for (const outcome of ['ok', 'unavailable', 'auth', 'server_error']) m.rpcCalls.inc({ outcome }, 0);
  for (const reason of ['cap', 'expired', 'too_large']) m.outboxDropped.inc({ reason }, 0);
  for (const reason of ['delay_overflow', 'rejected', 'outbox_error']) m.eventsDropped.inc({ reason }, 0);
  for (const reason of ['queue_full', 'queue_bytes']) m.jobsRejected.inc({ reason }, 0);
  for (const outcome of ['ok', 'no_handler', 'error']) m.fagiRequests.inc({ outcome }, 0);
  return m;
}
