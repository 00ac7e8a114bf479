/** `allow`, `status RULE`, `metrics`: the daemon's runtime state as tables. */
import { callDaemon } from '../admin/client.js';
import type { AllowListing } from '../admin/runtime-allow.js';
import { formatDuration } from '../common/duration.js';
import type { BanRecord } from '../guard/index.js';
import { formatBans, type Io } from './bans.js';
import { EXIT } from './exit.js';
import { printable, table, type OutputFormat } from './table.js';

const when = (ms: number) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '-');

export function formatAllow(l: AllowListing): string {
  const rows = [
    ...l.configured.map((e) => [e, 'config', 'guard.allow (or Odoo access rules)']),
    ...l.runtime.map((e) => [e.entry, 'runtime', `allow add ${when(e.addedAt)}${e.note ? `: ${e.note}` : ''}`]),
    ...l.automatic.map((e) => [e.entry, 'automatic', e.from]),
  ];
  return table(['ENTRY', 'KIND', 'ORIGIN'], rows);
}

/** `allow list|add|remove` */
export async function allowCommand(socket: string, args: string[], note: string | undefined, fmt: OutputFormat, io: Io): Promise<number> {
  const [sub, ...entries] = args;
  if (sub === undefined || sub === 'list') {
    const l = await callDaemon<AllowListing>(socket, 'GET', '/allow');
    io.out(fmt === 'json' ? JSON.stringify(l, null, 2) : formatAllow(l));
    return EXIT.ok;
  }
  let code: number = EXIT.ok;
  const results: unknown[] = [];
  for (const entry of entries) {
    try {
      if (sub === 'add') {
        const r = await callDaemon<{ entry: string; ended: string[] }>(socket, 'POST', '/allow', { entry, ...(note ? { note } : {}) });
        results.push(r);
        if (fmt !== 'json') io.out(`allowed ${r.entry}${r.ended.length ? `; ended the ban of ${r.ended.join(', ')}` : ''}`);
      } else {
        const r = await callDaemon<{ entry: string }>(socket, 'DELETE', `/allow/${encodeURIComponent(entry)}`);
        results.push(r);
        if (fmt !== 'json') io.out(`removed ${r.entry} from the allow-list`);
      }
    } catch (err) {
      code = code || EXIT.refused;
      results.push({ entry, error: (err as Error).message });
      if (fmt !== 'json') io.err(`${printable(entry)}: ${printable((err as Error).message)}`);
    }
  }
  if (fmt === 'json') io.out(JSON.stringify(results, null, 2));
  return code;
}

interface RuleView {
  name: string;
  description: string;
  events: string[];
  windows: Array<{ count: number; withinMs: number }>;
  banSec: number;
  weight: number;
  resetOn: string[];
}

/** `status RULE`: the rule as loaded and the bans it gave (fail2ban-client status JAIL). */
export async function ruleStatus(socket: string, name: string, fmt: OutputFormat, io: Io): Promise<number> {
  const { rules } = await callDaemon<{ rules: RuleView[] }>(socket, 'GET', '/rules');
  const rule = rules.find((r) => r.name === name);
  if (!rule) {
    io.err(`no rule named "${printable(name.slice(0, 64))}" (rules: ${rules.map((r) => r.name).join(', ') || 'none'})`);
    return EXIT.refused;
  }
  const { bans } = await callDaemon<{ bans: BanRecord[] }>(socket, 'GET', '/bans');
  // recidive bans name the rule of the last ban in their reason, not in `rule`
  const mine = bans.filter((b) => b.rule === name);
  if (fmt === 'json') {
    io.out(JSON.stringify({ rule, currentlyBanned: mine.length, banned: mine }, null, 2));
    return EXIT.ok;
  }
  io.out(
    [
      `Status for the rule: ${rule.name}`,
      `|- ${rule.description}`,
      `|- Filter`,
      `|  |- events:   ${rule.events.join(', ')}${rule.weight !== 1 ? ` (weight ${rule.weight})` : ''}`,
      `|  |- windows:  ${rule.windows.map((w) => `${w.count} within ${formatDuration(w.withinMs / 1000)}`).join(', ')}`,
      ...(rule.resetOn.length ? [`|  |- reset on: ${rule.resetOn.join(', ')}`] : []),
      `|  \`- ban:      ${formatDuration(rule.banSec)} (escalated for repeat offenders)`,
      '`- Actions',
      `   \`- Currently banned: ${mine.length}`,
      '',
      formatBans(mine),
    ].join('\n'),
  );
  return EXIT.ok;
}

interface Sample {
  name: string;
  labels: string;
  value: number;
}

/** Prometheus text → samples (histogram buckets left out: _count and _sum say enough here). */
export function parseScrape(text: string): { help: Map<string, string>; samples: Sample[] } {
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const h = /^# HELP (\S+) (.*)$/.exec(line);
    if (h) help.set(h[1]!, h[2]!);
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)/.exec(line);
    if (!m || m[1]!.endsWith('_bucket')) continue;
    samples.push({ name: m[1]!, labels: m[2] ?? '', value: Number(m[3]) });
  }
  return { help, samples };
}

/** the process numbers worth a line; the rest of prom-client's default metrics are left out */
const PROCESS =
  /^(pbx_guardian_)?(process_resident_memory_bytes|process_cpu_seconds_total|process_open_fds|nodejs_eventloop_lag_p99_seconds|nodejs_heap_size_used_bytes)$/;
const DEFAULTS = /^(pbx_guardian_)?(process|nodejs)_/;

export function formatScrape(text: string): string {
  const { samples } = parseScrape(text);
  const ours = samples.filter((s) => s.name.startsWith('pbx_guardian_') && !DEFAULTS.test(s.name));
  const proc = samples.filter((s) => PROCESS.test(s.name));
  const num = (v: number) => (Number.isInteger(v) ? String(v) : v.toPrecision(4));
  return [
    table(
      ['METRIC', 'LABELS', 'VALUE'],
      ours.map((s) => [s.name.replace(/^pbx_guardian_/, ''), s.labels.replace(/^\{|\}$/g, ''), num(s.value)]),
    ),
    '',
    table(
      ['PROCESS', 'VALUE'],
      proc.map((s) => [s.name.replace(/^pbx_guardian_/, ''), num(s.value)]),
    ),
  ].join('\n');
}

export async function metricsCommand(socket: string, fmt: OutputFormat, io: Io): Promise<number> {
  const { metrics } = await callDaemon<{ metrics: string }>(socket, 'GET', '/metrics');
  io.out(fmt === 'json' ? JSON.stringify(parseScrape(metrics).samples, null, 2) : formatScrape(metrics));
  return EXIT.ok;
}
