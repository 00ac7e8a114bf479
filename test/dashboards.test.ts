/**
 * The shipped dashboard (dashboards/pbx-guardian.json), alert rules (dashboards/alert-rules.yaml)
 * and metric reference (docs/metrics.md) against what a real daemon exports: a daemon with every
 * stage that registers metrics (AMI, Odoo, REST, a webhook, the security log, accounts, fraud, the fleet) is
 * started on loopback and its registry scraped. A renamed metric fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { startTestDaemon, waitFor } from './helpers/daemon.js';
import { repoPath } from './helpers/fixtures.js';

/** made by Prometheus itself, not by the daemon */
const PROMETHEUS_MADE = new Set(['up']);

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/** Metric names an expression reads: label matchers, strings, ranges and function calls removed. */
export function metricNamesOf(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  for (const m of bare.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    if (m[2] || PROMQL_WORDS.has(m[1]!.toLowerCase())) continue;
    names.push(m[1]!);
  }
  return names;
}

function dashboardExprs(): string[] {
  const dash = JSON.parse(readFileSync(repoPath('dashboards/pbx-guardian.json'), 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    templating: { list: Array<{ definition?: string }> };
  };
  const out = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  for (const v of dash.templating.list) if (v.definition) out.push(v.definition.replace(/^label_values\((.*),\s*\w+\)$/, '$1'));
  return out;
}

function ruleExprs(): Array<{ alert: string; expr: string }> {
  const doc = parseYaml(readFileSync(repoPath('dashboards/alert-rules.yaml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  return doc.groups.flatMap((g) => g.rules);
}

/** the names in the first column of the tables of docs/metrics.md */
function documentedNames(): Set<string> {
  const text = readFileSync(repoPath('docs/metrics.md'), 'utf8');
  return new Set([...text.matchAll(/^\| `([a-z0-9_:]+)(?:\{[^`]*\})?` \|/gm)].map((m) => m[1]!));
}

/** One scrape of a daemon with every metric-registering stage on, and its metric names. */
async function exportedNames(): Promise<{ names: Set<string>; histograms: Set<string>; text: string }> {
  const hook = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  const hookPort = (hook.address() as { port: number }).port;
  const logDir = mkdtempSync(join(tmpdir(), 'pbxg-dash-'));
  const securityLog = join(logDir, 'security');
  writeFileSync(securityLog, '');
  const td = await startTestDaemon({
    odoo: true,
    config: {
      rest: { enabled: true, port: 0, tokens: [{ name: 'crm', token: 'a-rest-token-0123456789', scopes: ['read'] }] },
      webhooks: [{ name: 'crm', url: `http://127.0.0.1:${hookPort}/hook`, events: ['GuardianBan'], secret: 'a-webhook-secret-0123456789abcdef' }],
      sources: { securityLog: { enabled: true, path: securityLog, pollInterval: '100ms' } },
      accounts: { enabled: true },
      fraud: { enabled: true },
      // the fleet's machine and bouncer register their metrics at start (the LAPI need not answer: port 9 is closed)
      crowdsec: {
        url: 'http://127.0.0.1:9',
        machine: { enabled: true, login: 'pbx1', password: 'a-machine-password' },
        bouncer: { enabled: true, apiKey: 'a-bouncer-key-0123456789' },
      },
      // a feed registers its metrics at start (port 9 is closed: its first refresh fails)
      feeds: [{ name: 'voip', kind: 'list', url: 'http://127.0.0.1:9/list.txt', interval: '1h' }],
    },
  });
  try {
    await waitFor('AMI login', () => td.daemon.ami?.state === 'connected');
    const registry = td.daemon.metrics.registry;
    const text = await registry.metrics();
    const json = await registry.getMetricsAsJSON();
    if (process.env.PBXG_DUMP_METRICS)
      writeFileSync(
        process.env.PBXG_DUMP_METRICS,
        JSON.stringify(
          json.map((m) => ({
            name: m.name,
            type: m.type,
            help: m.help,
            labels: (registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] }).labelNames ?? [],
          })),
        ),
      );
    return {
      names: new Set(json.map((m) => m.name)),
      histograms: new Set(json.filter((m) => String(m.type) === 'histogram').map((m) => m.name)),
      text,
    };
  } finally {
    await td.close();
    await new Promise((r) => hook.close(r));
    rmSync(logDir, { recursive: true, force: true });
  }
}

test('dashboard, alert rules and docs/metrics.md name only metrics a real daemon exports; every exported metric is documented', async (t) => {
  const { names, histograms, text } = await exportedNames();
  t.diagnostic(`${names.size} metric names exported`);
  // prom-client's defaults under their standard names, no project prefix
  for (const std of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes'])
    assert.ok(names.has(std), `${std} is exported`);
  assert.ok(![...names].some((n) => /^pbx_guardian_(process|nodejs)_/.test(n)), 'no prefixed default metric');
  assert.match(text, /^pbx_guardian_build_info\{version="[^"]+",node="[0-9.]+",modules="[0-9]+",backend="memory-dry-run"\} 1$/m);
  // the stages' labelled series with known values exist before anything happened
  for (const series of [
    'pbx_guardian_webhook_deliveries_total{subscriber="crm",outcome="rejected"} 0',
    'pbx_guardian_webhook_dropped_total{subscriber="crm",reason="overflow"} 0',
    'pbx_guardian_webhook_queued_total{subscriber="crm"} 0',
    'pbx_guardian_webhook_outbox_depth{subscriber="crm"} 0',
    'pbx_guardian_odoo_rpc_calls_total{outcome="unavailable"} 0',
    'pbx_guardian_outbox_dropped_total{reason="cap"} 0',
    'pbx_guardian_odoo_events_dropped_total{reason="delay_overflow"} 0',
    'pbx_guardian_jobs_rejected_total{reason="queue_full"} 0',
    'pbx_guardian_odoo_fagi_requests_total{outcome="error"} 0',
    'pbx_guardian_events_ignored_total{reason="allow-listed"} 0',
    'pbx_guardian_auth_failures_total{listener="rest",reason="missing"} 0',
    'pbx_guardian_auth_throttled_total{listener="agent",reason="throttled"} 0',
    'pbx_guardian_account_anomalies_total{signal="new-network",action="restrict"} 0',
    'pbx_guardian_fleet_decisions_skipped_total{reason="cap"} 0',
    'pbx_guardian_fleet_dropped_total{reason="cap"} 0',
  ])
    assert.ok(text.split('\n').includes(series), `${series} in the first scrape`);

  const known = (n: string): boolean => {
    if (names.has(n) || PROMETHEUS_MADE.has(n)) return true;
    const base = n.replace(/_(bucket|sum|count)$/, '');
    if (base !== n && histograms.has(base)) return true;
    return false;
  };
  const dashNames = new Set(dashboardExprs().flatMap(metricNamesOf));
  assert.ok(dashNames.size >= 30, `the dashboard reads ${dashNames.size} metrics`);
  for (const n of dashNames) assert.ok(known(n), `dashboards/pbx-guardian.json reads ${n}, which the daemon does not export`);
  const rules = ruleExprs();
  assert.ok(rules.length >= 10);
  for (const r of rules) {
    const used = metricNamesOf(r.expr);
    assert.ok(used.length > 0, `${r.alert}: no metric found in ${r.expr}`);
    for (const n of used) assert.ok(known(n), `alert ${r.alert} reads ${n}, which the daemon does not export`);
  }
  // the alerts the operators asked for are there
  const alerts = new Set(rules.map((r) => r.alert));
  for (const a of [
    'PbxGuardianBlind',
    'PbxGuardianAmiDown',
    'PbxGuardianDryRun',
    'PbxGuardianKernelDrift',
    'PbxGuardianOdooOutboxGrowing',
    'PbxGuardianFleetLinkDown',
  ])
    assert.ok(alerts.has(a), `${a} is in dashboards/alert-rules.yaml`);

  const documented = documentedNames();
  for (const n of names) assert.ok(documented.has(n), `${n} is exported but not in docs/metrics.md`);
  for (const n of documented) assert.ok(names.has(n), `docs/metrics.md lists ${n}, which the daemon does not export`);
});

test('metricNamesOf: names outside matchers, ranges, strings and grouping clauses', () => {
  assert.deepEqual(metricNamesOf('sum by (rule, source) (rate(pbx_guardian_bans_total{job=~"$job",rule="x"}[5m])) * 60'), ['pbx_guardian_bans_total']);
  assert.deepEqual(metricNamesOf('a == 0 unless on (instance, job) b == 1'), ['a', 'b']);
  assert.deepEqual(metricNamesOf('time() - c > 600'), ['c']);
  assert.deepEqual(metricNamesOf('histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))'), ['h_bucket']);
});
