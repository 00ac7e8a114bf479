/**
 * What feeds the core metrics: the guard's, the enforcer's and the AMI client's events, each
 * wired to the counters and gauges of createMetrics() (names and labels are defined there).
 */
import type { AmiClient, AmiConnectionState, AmiFrameDrop, AmiMessage } from '../ami/index.js';
import type { EnforcerHooks } from '../firewall/index.js';
import type { Guardian } from '../guard/index.js';
import type { FraudEngine } from '../fraud/index.js';
import type { Metrics } from './index.js';
import type { Rule } from '../guard/index.js';
import { AMI_STATES, DIAL_FALLBACKS, FRAUD_CALL_KINDS, FRAUD_FAILED_ACTIONS } from './labels.js';

/** The enforcer's hooks: transactions, drift, failures and recovery, refusals, watchdog repairs. */
export function enforcerMetricHooks(metrics: Metrics): EnforcerHooks {
  return {
    onBanLatency: (seconds) => metrics.banLatency.observe(seconds),
    onApplied: (adds, removes) => {
      metrics.firewallBatches.inc();
      metrics.firewallElements.inc({ op: 'add' }, adds);
      metrics.firewallElements.inc({ op: 'remove' }, removes);
    },
    onDrift: (added, removed) => {
      metrics.firewallDrift.inc({ op: 'add' }, added);
      metrics.firewallDrift.inc({ op: 'remove' }, removed);
    },
    onFailure: () => {
      metrics.firewallFailures.inc();
      metrics.firewallHealthy.set(0);
    },
    onRecovered: () => metrics.firewallHealthy.set(1),
    onRefused: (r) => metrics.firewallRefused.inc({ op: r.op }),
    onRepaired: () => metrics.firewallRepairs.inc(),
  };
}

/** Security events, counted failures, ignored events, bans, unbans, store errors; the active-ban gauge. */
export function bindGuardMetrics(metrics: Metrics, guard: Guardian): void {
  guard.on({
    securityEvent: (event, service) => metrics.securityEvents.inc(event, service),
    failure: (event, weight) => metrics.failures.inc(event, undefined, weight),
    ignored: (reason) => metrics.ignored.inc(reason),
    banned: ({ record }) => metrics.bans.inc({ rule: record.rule, source: record.source }),
    unbanned: (_n, why) => metrics.unbans.inc({ why }),
    storeError: () => metrics.storeErrors.inc(),
  });
  metrics.bansActiveSource = () => guard.activeCounts();
  zeroRuleSeries(metrics, guard.rules);
}

/** Events by name (a Map lookup per event: this runs on the AMI read path), connection state, reconnects, login failures, dropped frames. */
export function bindAmiMetrics(metrics: Metrics, ami: AmiClient): void {
  ami.on('event', (msg: AmiMessage) => metrics.amiEvents.inc(msg.get('Event') ?? ''));
  ami.on('state', (state: AmiConnectionState) => {
    metrics.amiConnected.set(state === 'connected' ? 1 : 0);
    for (const s of AMI_STATES) metrics.amiState.set({ state: s }, s === state ? 1 : 0);
  });
  ami.on('disconnected', () => metrics.amiReconnects.inc());
  ami.on('loginError', (err: Error & { kind?: string }) => metrics.amiLoginFailures.inc({ kind: err.kind ?? 'unknown' }));
  ami.on('frameDropped', (info: AmiFrameDrop) => metrics.amiFramesDropped.inc({ reason: info.reason }));
}

/** The fraud stage: calls watched, decisions by policy and action, expiries, failed actions, blocked accounts (read at scrape). */
export function bindFraudMetrics(metrics: Metrics, fraud: FraudEngine): void {
  fraud.on({
    watched: (call) => metrics.fraudCallsWatched.inc(call.outbound ? 'outbound' : 'internal'),
    decision: (d) => {
      for (const action of d.actions.length ? d.actions : ['alert']) metrics.fraudDecisions.labels(d.policy, action).inc();
    },
    expired: (n) => metrics.fraudCallsExpired.inc(n),
    action: (what, ok) => {
      if (!ok) metrics.fraudActionFailures.labels(what).inc();
    },
    blocked: (n) => metrics.fraudBlockedAccounts.set(n),
    unparsed: (fallback) => metrics.fraudDialstringsUnparsed.labels(fallback).inc(),
  });
  metrics.fraudBlockedAccounts.set(fraud.blockedCount);
  zeroFraudSeries(metrics);
}

/** The series named by the rules: bans per rule (source rule) and manual bans, failures per event
 *  a rule counts. Called again after a reload (new rules get their series; old ones stay). */
export function zeroRuleSeries(m: Metrics, rules: readonly Rule[]): void {
  m.bans.inc({ rule: 'manual', source: 'manual' }, 0);
  for (const r of rules) {
    m.bans.inc({ rule: r.name, source: 'rule' }, 0);
    for (const event of r.events) m.failures.counter.inc({ event }, 0);
  }
}

/** The fraud stage's series with fixed label values (the decisions' policies come from the config). */
export function zeroFraudSeries(m: Metrics): void {
  for (const kind of FRAUD_CALL_KINDS) m.fraudCallsWatched.counter.inc({ kind }, 0);
  for (const action of FRAUD_FAILED_ACTIONS) m.fraudActionFailures.inc({ action }, 0);
  for (const fallback of DIAL_FALLBACKS) m.fraudDialstringsUnparsed.inc({ fallback }, 0);
}
