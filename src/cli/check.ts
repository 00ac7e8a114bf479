import { readFileSync } from 'node:fs';
import pino from 'pino';
import { Guardian, type IgnoredReason, type Observation, type Rule } from '../guard/index.js';
import { MemoryBanStore } from '../store/memory.js';
import { splitTranscript, type AmiMessage, type AmiPort } from '../ami/index.js';
import { FraudEngine, MemoryBlockStore, destinationPlanFor, isPackageDestinations, loadRateTable, type FraudConfig } from '../fraud/index.js';
import { decodeAmiEvent, logObservation, logTime, parseSecurityLogLine } from '../sources/index.js';

/** One event replayed by `check`: where it came from, as the source that reads it observes it. */
export interface ReplayEvent {
  line: number;
  text: string;
  time: number;
  view: Observation;
  /** the AMI frame (transcripts), for the fraud replay */
  message?: AmiMessage;
}

export type LineOutcome = Exclude<IgnoredReason, 'already-banned'> | 'matched' | 'not-watched';

export interface CheckReport {
  source: string;
  kind: 'security-log' | 'ami-transcript';
  lines: number;
  events: number;
  matched: Array<{ line: number; event: string; service: string; address: string; text: string }>;
  skipped: Array<{ line: number; outcome: LineOutcome; text: string }>;
  bans: Array<{ target: string; rule: string; reason: string; line: number }>;
  /** the fraud policies' view of a transcript (absent for a security log, or with fraud.enabled false) */
  fraud?: {
    calls: number;
    decisions: Array<{ line: number; account: string; policy: string; actions: string[]; reason: string; repeat: boolean }>;
    /** the AMI actions the daemon would send */
    actions: Array<{ line: number; action: string }>;
  };
}

function readSecurityLog(text: string): { events: ReplayEvent[]; ambiguous: ReplayEvent[]; lines: number } {
  const lines = text.split(/\r?\n/);
  const events: ReplayEvent[] = [];
  const ambiguous: ReplayEvent[] = [];
  let last = 0;
  lines.forEach((line, i) => {
    const { fields, ambiguous: amb } = parseSecurityLogLine(line);
    if (!fields) return;
    last = logTime(fields, last);
    const ev = { line: i + 1, text: line, time: last, view: logObservation(fields, amb, last) };
    (amb ? ambiguous : events).push(ev);
  });
  return { events, ambiguous, lines: lines.length };
}

function readTranscript(bytes: Buffer): { events: ReplayEvent[]; lines: number } {
  const events: ReplayEvent[] = [];
  let line = 1;
  let clock = 0;
  for (const frame of splitTranscript(bytes)) {
    const lineNo = line;
    line += frame.raw.split('\r\n').length;
    const name = frame.message.get('Event');
    if (name === undefined) continue;
    const ts = Number(frame.message.get('Timestamp'));
    const tv = Date.parse(frame.message.get('EventTV') ?? '');
    clock = Number.isFinite(ts) && ts > 0 ? ts * 1000 : Number.isFinite(tv) ? tv : clock + 1;
    events.push({
      line: lineNo,
      text: frame.raw.replace(/\r\n/g, ' | ').slice(0, 300),
      time: clock,
      view: decodeAmiEvent(frame.message, name, clock),
      message: frame.message,
    });
  }
  return { events, lines: line - 1 };
}

/** Replays a security log or a raw AMI transcript through the rules, like fail2ban-regex. */
export function runCheck(path: string, rules: Rule[], allow: string[], ipv6Prefix = 64, fraud?: FraudConfig): CheckReport {
  const bytes = readFileSync(path);
  const isLog = bytes.includes('SecurityEvent="');
  const { events, lines, ambiguous = [] } = isLog ? readSecurityLog(bytes.toString('utf8')) : { ...readTranscript(bytes), ambiguous: [] as ReplayEvent[] };
  let clock = 0;
  const guardian = new Guardian(
    {
      rules,
      allow,
      automaticAllow: [],
      ipv6Prefix,
      maxTracked: 1_000_000,
      trackTtlSec: 86400 * 365,
      escalation: { factor: 1, maxSec: 0, lookbackSec: 0 },
      recidive: null,
      // check judges the rules against the file, not this machine's addresses
      host: { addresses: () => [] },
    },
    new MemoryBanStore(),
    { ban: async () => {}, unban: async () => {}, setAllow: async () => {} },
    pino({ level: 'silent' }),
    () => clock,
  );
  const failureEvents = new Set(rules.flatMap((r) => r.events));
  const report: CheckReport = {
    source: path,
    kind: isLog ? 'security-log' : 'ami-transcript',
    lines,
    events: events.length + ambiguous.length,
    matched: [],
    skipped: [],
    bans: [],
  };
  const seen: { outcome: LineOutcome; line: number } = { outcome: 'not-watched', line: 0 };
  guardian.on({
    failure: () => (seen.outcome = 'matched'),
    ignored: (why) => (seen.outcome = why === 'already-banned' ? 'matched' : why),
    banned: ({ record }) => report.bans.push({ target: record.target, rule: record.rule, reason: record.reason, line: seen.line }),
  });
  for (const ev of events) {
    clock = ev.time;
    seen.line = ev.line;
    seen.outcome = 'not-watched';
    const name = ev.view.event;
    guardian.observe(ev.view, ev.time);
    const outcome = seen.outcome as LineOutcome;
    if (outcome === 'matched' && failureEvents.has(name)) {
      report.matched.push({ line: ev.line, event: name, service: ev.view.service, address: ev.view.get('RemoteAddress') ?? '', text: ev.text });
    } else if (outcome !== 'not-watched' && outcome !== 'matched') {
      report.skipped.push({ line: ev.line, outcome, text: ev.text });
    }
  }
  for (const ev of ambiguous) report.skipped.push({ line: ev.line, outcome: 'ambiguous', text: ev.text });
  if (fraud && !isLog) report.fraud = replayFraud(events, fraud);
  return report;
}

/** The transcript through the fraud policies: decisions and the AMI actions they would send (answered Success, nothing sent). */
function replayFraud(events: ReplayEvent[], cfg: FraudConfig): NonNullable<CheckReport['fraud']> {
  const out: NonNullable<CheckReport['fraud']> = { calls: 0, decisions: [], actions: [] };
  let line = 0;
  let clock = 0;
  const ami: AmiPort = {
    action: (fields) => {
      const what =
        fields.Action === 'Hangup'
          ? `Hangup ${String(fields.Channel)}`
          : `${String(fields.Action)} ${String(fields.Family)}/${String(fields.Key)}${fields.Val ? ` = ${String(fields.Val)}` : ''}`;
      out.actions.push({ line, action: what });
      return Promise.reject(new Error('check sends nothing'));
    },
  };
  const logger = pino({ level: 'silent' });
  const engine = new FraudEngine({
    config: { ...cfg, hangup: { ...cfg.hangup, attempts: 1 }, block: { ...cfg.block, attempts: 1 } },
    plan: destinationPlanFor(cfg, logger, isPackageDestinations(cfg)),
    rates: cfg.rates === '' ? null : loadRateTable(cfg.rates),
    ami,
    store: new MemoryBlockStore(),
    bans: null,
    emit: () => {},
    logger,
    now: () => clock,
    timers: { set: () => null, clear: () => {} },
  });
  engine.on({
    watched: () => out.calls++,
    decision: (d) => out.decisions.push({ line, account: d.account, policy: d.policy, actions: d.actions, reason: d.reason, repeat: d.repeat }),
  });
  for (const ev of events) {
    if (!ev.message) continue;
    line = ev.line;
    clock = ev.time;
    engine.handleAmiEvent(ev.message, ev.time);
  }
  engine.stop();
  return out;
}

export function formatCheckReport(r: CheckReport): string {
  const out: string[] = [];
  out.push(`Source: ${r.source} (${r.kind}), ${r.lines} lines, ${r.events} security events`);
  out.push(`Matched failures: ${r.matched.length}`);
  const byEvent = new Map<string, typeof r.matched>();
  for (const m of r.matched) {
    const key = `${m.event} (${m.service || '?'})`;
    byEvent.set(key, [...(byEvent.get(key) ?? []), m]);
  }
  for (const [key, list] of [...byEvent].sort()) {
    out.push(`  ${key}: ${list.length}`);
    for (const m of list) out.push(`    line ${m.line}: ${m.address}`);
  }
  if (r.skipped.length > 0) {
    out.push(`Not counted: ${r.skipped.length}`);
    for (const s of r.skipped) out.push(`    line ${s.line}: ${s.outcome}`);
  }
  out.push(`Would be banned: ${r.bans.length}`);
  for (const b of r.bans) out.push(`  ${b.target}  rule ${b.rule}  (${b.reason}) at line ${b.line}`);
  if (r.fraud) {
    out.push(`Fraud: ${r.fraud.calls} calls followed, ${r.fraud.decisions.length} decisions`);
    for (const d of r.fraud.decisions)
      out.push(`  line ${d.line}: ${d.account}  ${d.policy}  ${d.actions.length ? d.actions.join(',') : 'alert'}${d.repeat ? ' (repeat)' : ''}: ${d.reason}`);
    out.push(`Fraud actions that would be sent: ${r.fraud.actions.length}`);
    for (const a of r.fraud.actions) out.push(`  line ${a.line}: ${a.action}`);
  }
  return out.join('\n');
}
