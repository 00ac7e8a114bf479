import { readFileSync } from 'node:fs';
import pino from 'pino';
import { StartupError } from '../common/errors.js';
import { Guardian, type AllowEntry, type HostAddressPort, type IgnoredReason, type Observation, type Rule } from '../guard/index.js';
import { MemoryBanStore } from '../store/memory.js';
import { formatNetwork } from '../net/ip.js';
import { splitTranscript, type AmiMessage, type AmiPort } from '../ami/index.js';
import { FraudEngine, MemoryBlockStore, destinationPlanFor, isPackageDestinations, loadRateTable, type FraudConfig } from '../fraud/index.js';
import { decodeAmiEvent, logObservation, logTime, messagesObservation, messagesTime, parseMessagesLine, parseSecurityLogLine } from '../sources/index.js';

/** the largest file check reads (a day of a busy PBX's messages log is tens of MB) */
export const CHECK_MAX_BYTES = 256 * 1024 * 1024;

export type CheckKind = 'security-log' | 'messages-log' | 'ami-transcript' | 'call-transcript';

export const KIND_NAMES: Record<CheckKind, string> = {
  'security-log': 'Asterisk security log (res_security_log)',
  'messages-log': 'Asterisk messages log (chan_sip / PJSIP / IAX2 / manager NOTICE lines)',
  'ami-transcript': 'raw AMI transcript',
  'call-transcript': 'raw AMI transcript of calls (replayed through the fraud policies)',
};

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
  kind: CheckKind;
  /** the format, in words */
  format: string;
  /** the addresses the automatic allow-list (or guard.allow, or the host's own) kept from a ban */
  allowListed: Array<{ address: string; entry: string; from: string; lines: number }>;
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

/** A security log, or a messages log (its NOTICE lines; SECURITY lines logged there too). */
function readLog(text: string, messages: boolean): { events: ReplayEvent[]; ambiguous: ReplayEvent[]; lines: number } {
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  const events: ReplayEvent[] = [];
  const ambiguous: ReplayEvent[] = [];
  let last = 0;
  lines.forEach((line, i) => {
    const { fields, ambiguous: amb } = parseSecurityLogLine(line);
    if (fields) {
      last = logTime(fields, last);
      (amb ? ambiguous : events).push({ line: i + 1, text: line, time: last, view: logObservation(fields, amb, last) });
      return;
    }
    const m = messages ? parseMessagesLine(line) : null;
    if (!m) return;
    last = messagesTime(line, last + 1);
    (m.ambiguous ? ambiguous : events).push({ line: i + 1, text: line, time: last, view: messagesObservation(m, last) });
  });
  return { events, ambiguous, lines: lines.length };
}

/** an Asterisk log line: "[date] LEVEL[pid]", or the same through syslog / the journal */
const LOG_LINE = /^(?:\[[^\]]{8,40}\] +|[A-Z][a-z]{2} +\d{1,2} [\d:]{8} \S+ asterisk\[\d+\]: +)?(?:NOTICE|WARNING|VERBOSE|ERROR|DEBUG|SECURITY|DTMF)\s*\[/;

/** Which format a file is, from its first lines; null: none that check reads. */
export function detectFormat(bytes: Buffer): 'security-log' | 'messages-log' | 'ami' | null {
  const head = bytes.subarray(0, 256 * 1024).toString('utf8');
  if (/^Asterisk Call Manager\/|^(Event|Response|Action): .*\r\n/m.test(head) && head.includes('\r\n')) return 'ami';
  const lines = head.split(/\r?\n/).filter((l) => l.trim() !== '');
  const logLines = lines.filter((l) => LOG_LINE.test(l));
  if (logLines.length === 0) return lines.some((l) => l.includes('SecurityEvent="')) ? 'security-log' : null;
  return logLines.every((l) => /SECURITY\s*\[/.test(l)) ? 'security-log' : 'messages-log';
}

function readInput(path: string): Buffer {
  try {
    const bytes = readFileSync(path);
    if (bytes.length > CHECK_MAX_BYTES)
      throw new StartupError(`${path}: larger than ${CHECK_MAX_BYTES / 1024 / 1024} MB: check a part of it (tail -n 100000)`, 'USAGE');
    return bytes;
  } catch (err) {
    if (err instanceof StartupError) throw err;
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOENT'
        ? 'no such file'
        : e.code === 'EACCES'
          ? 'permission denied (run as root or the pbx-guardian user)'
          : e.code === 'EISDIR'
            ? 'a directory, not a file'
            : e.message;
    throw new StartupError(`cannot read ${path}: ${why}`, 'USAGE');
  }
}

/** The host's automatic allow-list for a check: what the daemon would never ban. */
export interface CheckAllow {
  /** loopback, the AMI and Odoo hosts (src/guard-options.ts) */
  automatic: Array<string | AllowEntry>;
  /** the host's own addresses (never banned); absent: none */
  host?: HostAddressPort;
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
export function runCheck(path: string, rules: Rule[], allow: string[], ipv6Prefix = 64, fraud?: FraudConfig, hostAllow?: CheckAllow): CheckReport {
  const bytes = readInput(path);
  const format = detectFormat(bytes);
  if (format === null) {
    const first = bytes.subarray(0, 200).toString('utf8').split(/\r?\n/)[0] ?? '';
    throw new StartupError(
      `${path}: ${bytes.length === 0 ? 'empty' : `not a format check reads (first line: ${JSON.stringify(first.replace(/[^\x20-\x7e]/g, '?').slice(0, 80))})`}: ` +
        'give an Asterisk security log, an Asterisk messages log, or a raw AMI / call transcript',
      'USAGE',
    );
  }
  const isLog = format !== 'ami';
  const {
    events,
    lines,
    ambiguous = [],
  } = isLog ? readLog(bytes.toString('utf8'), format === 'messages-log') : { ...readTranscript(bytes), ambiguous: [] as ReplayEvent[] };
  let clock = 0;
  const guardian = new Guardian(
    {
      rules,
      allow,
      automaticAllow: hostAllow?.automatic ?? [],
      ipv6Prefix,
      maxTracked: 1_000_000,
      trackTtlSec: 86400 * 365,
      escalation: { factor: 1, maxSec: 0, lookbackSec: 0 },
      recidive: null,
      // without hostAllow, check judges the rules against the file, not this machine's addresses
      host: hostAllow?.host ?? { addresses: () => [] },
    },
    new MemoryBanStore(),
    { ban: async () => {}, unban: async () => {}, setAllow: async () => {} },
    pino({ level: 'silent' }),
    () => clock,
  );
  const failureEvents = new Set(rules.flatMap((r) => r.events));
  const report: CheckReport = {
    source: path,
    kind: isLog ? format : 'ami-transcript',
    format: '',
    allowListed: [],
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
  if (report.fraud && report.fraud.calls > 0 && report.matched.length === 0) report.kind = 'call-transcript';
  report.format = KIND_NAMES[report.kind];
  report.allowListed = allowListedOf(guardian, report.skipped, events);
  return report;
}

/** The addresses kept from a ban by an allow entry or as the host's own, with that entry. */
function allowListedOf(guardian: Guardian, skipped: CheckReport['skipped'], events: ReplayEvent[]): CheckReport['allowListed'] {
  const byLine = new Map(events.map((e) => [e.line, e]));
  const out = new Map<string, CheckReport['allowListed'][number]>();
  for (const s of skipped) {
    if (s.outcome !== 'allow-listed' && s.outcome !== 'own-address') continue;
    const address = byLine.get(s.line)?.view.address;
    if (!address) continue;
    const text = formatNetwork(address);
    const seen = out.get(text);
    if (seen) {
      seen.lines++;
      continue;
    }
    const why = guardian.explain(text);
    const by = why.allowed[0] ?? { entry: text, from: 'an address of this host' };
    out.set(text, { address: text, entry: by.entry, from: by.from, lines: 1 });
  }
  return [...out.values()];
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
  out.push(`Source: ${r.source}`);
  out.push(`Format: ${r.format} (${r.kind}), ${r.lines} lines, ${r.events} security events`);
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
  if (r.allowListed.length > 0) {
    out.push(`Allow-listed, never banned: ${r.allowListed.length}`);
    for (const a of r.allowListed)
      out.push(
        `  ${a.address}: allow-listed (${a.from}${a.entry !== a.address ? ` ${a.entry}` : ''}), would not be banned (${a.lines} ${a.lines === 1 ? 'line' : 'lines'})`,
      );
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
