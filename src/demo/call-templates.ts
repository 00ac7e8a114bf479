import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { escapeRegExp } from '../asterisk-config/names.js';

/**
 * Call templates: the frames of one real Asterisk 22 call transcript
 * (test/fixtures/ami-asterisk22-calls/call-pjsip-*.raw), compiled once so that a new call is
 * rendered by filling slots: the channel names, uniqueids, caller, caller name, dialled number,
 * the phone's address and Call-ID, the bridge id and the times. Every other byte — field names,
 * their order, the VarSet and CEL frames, the Privilege classes — stays as Asterisk sent it.
 *
 * The slots are found in the transcript itself (the first Newchannel is the caller, the other
 * channel the callee; the caller's Exten is the dialled number...), so any call transcript of the
 * same shape is a template.
 */

const ROLES = [
  'callerChannel',
  'calleeChannel',
  'callerUid',
  'calleeUid',
  'caller',
  'callerName',
  'calleeName',
  'dialled',
  'phoneIp',
  'callId',
  'peerCallId',
  'bridge',
] as const;
export type Role = (typeof ROLES)[number];
export type CallValues = Record<Role, string>;

/** header names whose value is a time, recomputed for every call */
const TIME_KEYS = new Set(['EventTV', 'EventTime', 'StartTime', 'AnswerTime', 'EndTime', 'Duration', 'BillableSeconds', 'Timestamp']);
/** numeric headers never searched for slots (a RINGTIME_MS of "100" is not caller 100) */
const NUMERIC_KEYS = new Set([
  'Priority',
  'DestPriority',
  'ChannelState',
  'DestChannelState',
  'Cause',
  'BridgeNumChannels',
  'ListItems',
  'EventVersion',
  'UsingPassword',
]);
const NUMERIC_VARS = /TIME|QOS/;

type Part = string | { role: Role } | { time: string };
interface Line {
  parts: Part[];
}
export interface CompiledFrame {
  event: string;
  /** the CEL EventName, or '' */
  celName: string;
  /** the VarSet Variable, or '' */
  variable: string;
  channel: string;
  privilege: string;
  lines: Line[];
  /** the Cause / Cause-txt line indexes, for an AMI Hangup's Cause */
  causeLine: number;
}

export interface CallTemplate {
  name: string;
  frames: CompiledFrame[];
  /** frames [0, answerAt) come when the call is dialled, [answerAt, hangupAt) when it is answered
   *  or fails, [hangupAt, n) when it ends */
  answerAt: number;
  hangupAt: number;
  /** the literal values the slots had in the transcript */
  found: Partial<CallValues>;
  /** the callee channel's prefix in the transcript, e.g. "PJSIP/trunk-" */
  calleePrefix: string;
}

export function splitFrames(text: string): string[] {
  return text.split('\r\n\r\n').filter((f) => f.trim() !== '');
}

function header(frame: string, key: string): string | undefined {
  for (const line of frame.split('\r\n')) if (line.startsWith(key + ': ')) return line.slice(key.length + 2);
  return undefined;
}

/** Find the slot values in a transcript's frames. */
function discover(frames: string[]): { found: Partial<CallValues>; calleePrefix: string } {
  const found: Partial<CallValues> = {};
  const channels: string[] = [];
  const first = new Map<string, string>();
  for (const f of frames) {
    const ch = header(f, 'Channel');
    if (ch && /^PJSIP\/.+-[0-9a-f]{8}$/.test(ch) && !first.has(ch) && header(f, 'Uniqueid')) {
      channels.push(ch);
      first.set(ch, f);
    }
  }
  // the caller is the channel that started the call: its Uniqueid is the Linkedid
  const caller = channels.find((c) => header(first.get(c)!, 'Uniqueid') === header(first.get(c)!, 'Linkedid'));
  if (!caller) throw new Error('no caller channel (Uniqueid = Linkedid) in the template');
  const cf = first.get(caller)!;
  found.callerChannel = caller;
  found.callerUid = header(cf, 'Uniqueid');
  found.caller = /^PJSIP\/(.+)-[0-9a-f]{8}$/.exec(caller)![1];
  found.callerName = header(cf, 'CallerIDName');
  found.dialled = header(cf, 'Exten');
  const callee = channels.find((c) => c !== caller);
  let calleePrefix = '';
  if (callee) {
    const f = first.get(callee)!;
    found.calleeChannel = callee;
    found.calleeUid = header(f, 'Uniqueid');
    calleePrefix = callee.slice(0, callee.length - 8);
    const name = header(f, 'CallerIDName');
    // an internal callee: its own caller ID is the dialled extension
    if (header(f, 'CallerIDNum') === found.dialled && name && name !== '<unknown>') found.calleeName = name;
  }
  for (const f of frames) {
    if (f.startsWith('Event: SuccessfulAuth') || f.startsWith('Event: ChallengeSent')) {
      const sid = header(f, 'SessionID');
      if (sid && sid.includes('@')) found.callId = sid;
      const ra = /^IPV[46]\/UDP\/([^/]+)\//.exec(header(f, 'RemoteAddress') ?? '');
      if (ra) found.phoneIp = ra[1];
    }
    if (!found.bridge && header(f, 'BridgeUniqueid')) found.bridge = header(f, 'BridgeUniqueid');
    if (f.startsWith('Event: VarSet') && header(f, 'Variable') === 'BRIDGEPVTCALLID') {
      const v = header(f, 'Value') ?? '';
      if (v && v !== found.callId && !found.peerCallId) found.peerCallId = v;
    }
  }
  return { found, calleePrefix };
}

function compileFrames(frames: string[], found: Partial<CallValues>): CompiledFrame[] {
  const lits = ROLES.filter((r) => found[r]).map((r) => [found[r]!, r] as const);
  // longest first: a channel name is taken whole before the caller number inside it
  lits.sort((a, b) => b[0].length - a[0].length);
  const byLit = new Map<string, Role>(lits.map(([l, r]) => [l, r]));
  const re = new RegExp(`(?<![0-9A-Za-z])(?:${lits.map(([l]) => escapeRegExp(l)).join('|')})(?![0-9])`, 'g');
  return frames.map((text) => {
    const rows = text.split('\r\n');
    const variable = header(text, 'Variable') ?? '';
    let causeLine = -1;
    const lines: Line[] = rows.map((row, i) => {
      const c = row.indexOf(': ');
      const key = c < 0 ? row : row.slice(0, c);
      if (key === 'Cause' && causeLine < 0) causeLine = i;
      if (c < 0) return { parts: [row] };
      const value = row.slice(c + 2);
      if (TIME_KEYS.has(key) && !(key === 'Duration' && !text.startsWith('Event: Cdr'))) return { parts: [key + ': ', { time: key }] };
      if (NUMERIC_KEYS.has(key) || (key === 'Value' && NUMERIC_VARS.test(variable)) || lits.length === 0) return { parts: [row] };
      const parts: Part[] = [key + ': '];
      let last = 0;
      for (const m of value.matchAll(re)) {
        if (m.index > last) parts.push(value.slice(last, m.index));
        parts.push({ role: byLit.get(m[0])! });
        last = m.index + m[0].length;
      }
      if (last < value.length) parts.push(value.slice(last));
      return { parts };
    });
    return {
      event: header(text, 'Event') ?? header(text, 'Response') ?? '',
      celName: header(text, 'EventName') ?? '',
      variable,
      channel: header(text, 'Channel') ?? '',
      privilege: header(text, 'Privilege') ?? '',
      lines,
      causeLine,
    };
  });
}

/** Compile a call transcript (one call, as in call-pjsip-*.raw). */
export function compileCallTemplate(name: string, text: string, opts: { cel?: boolean; ami?: boolean } = {}): CallTemplate {
  let frames = splitFrames(text);
  // the AMI session's own login is not part of the call
  frames = frames.filter((f) => !(f.startsWith('Event: SuccessfulAuth') && header(f, 'Service') === 'AMI'));
  if (opts.cel === false) frames = frames.filter((f) => !f.startsWith('Event: CEL'));
  const { found, calleePrefix } = discover(frames);
  const compiled = compileFrames(frames, found);
  const dialBegin = compiled.findIndex((f) => f.event === 'DialBegin');
  let answerAt = compiled.length;
  let hangupAt = compiled.length;
  if (opts.ami) answerAt = hangupAt = 0;
  else if (dialBegin >= 0) {
    const after = (pred: (f: CompiledFrame) => boolean, from: number) => {
      const i = compiled.findIndex((f, k) => k > from && pred(f));
      return i < 0 ? compiled.length : i;
    };
    answerAt = after((f) => ['DialEnd', 'HangupRequest', 'SoftHangupRequest'].includes(f.event) || f.celName === 'ANSWER', dialBegin);
    hangupAt = Math.max(
      answerAt,
      after((f) => f.event === 'HangupRequest' || f.event === 'SoftHangupRequest', answerAt - 1),
    );
    // the RTP statistics are set when the BYE arrives, just before the HangupRequest
    while (hangupAt > answerAt && compiled[hangupAt - 1]!.variable.startsWith('RTPAUDIOQOS')) hangupAt--;
  }
  return { name, frames: compiled, answerAt, hangupAt, found, calleePrefix };
}

export function loadCallTemplate(dir: string, file: string, opts: { cel?: boolean; ami?: boolean } = {}): CallTemplate {
  return compileCallTemplate(file, readFileSync(join(dir, file), 'latin1'), opts);
}

const two = (n: number) => String(n).padStart(2, '0');
/** "YYYY-MM-DD HH:MM:SS" as Cdr and CEL print it (the PBX here runs on UTC) */
export function cdrTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
}

export interface CallTimes {
  /** epoch ms */
  start: number;
  answer: number | null;
  end: number;
}

const CAUSES: Record<number, string> = {
  0: 'Unknown',
  1: 'Unallocated (unassigned) number',
  16: 'Normal Clearing',
  17: 'User busy',
  21: 'Call Rejected',
  34: 'Circuit/channel congestion',
  127: 'Interworking, unspecified',
};

/**
 * Render frames [from, to) of a template for one call at `now` (epoch ms). `cause` replaces the
 * Cause of the Hangup of `causeChannel` (an AMI Hangup with Cause: shows only there).
 */
export function renderFrames(
  t: CallTemplate,
  from: number,
  to: number,
  v: CallValues,
  times: CallTimes,
  now: number,
  cause?: { channel: string; code: number },
): string {
  const tv = new Date(now).toISOString().slice(0, 23) + '+0000';
  const timeOf = (key: string): string => {
    switch (key) {
      case 'EventTV':
        return tv;
      case 'EventTime':
        return cdrTime(now);
      case 'StartTime':
        return cdrTime(times.start);
      case 'AnswerTime':
        return times.answer === null ? '' : cdrTime(times.answer);
      case 'EndTime':
        return cdrTime(times.end);
      case 'Duration':
        return String(Math.round((times.end - times.start) / 1000));
      case 'BillableSeconds':
        return times.answer === null ? '0' : String(Math.round((times.end - times.answer) / 1000));
      default:
        return `${Math.floor(now / 1000)}.${String((now % 1000) * 1000).padStart(6, '0')}`;
    }
  };
  let out = '';
  for (let i = from; i < to; i++) {
    const f = t.frames[i]!;
    const recause = cause !== undefined && f.event === 'Hangup' && f.causeLine >= 0 && renderChannel(f, v) === cause.channel;
    for (let k = 0; k < f.lines.length; k++) {
      if (recause && k === f.causeLine) out += `Cause: ${cause.code}\r\n`;
      else if (recause && k === f.causeLine + 1) out += `Cause-txt: ${CAUSES[cause.code] ?? 'Unknown'}\r\n`;
      else {
        for (const p of f.lines[k]!.parts) out += typeof p === 'string' ? p : 'role' in p ? v[p.role] : timeOf(p.time);
        out += '\r\n';
      }
    }
    out += '\r\n';
  }
  return out;
}

function renderChannel(f: CompiledFrame, v: CallValues): string {
  const line = f.lines.find((l) => l.parts[0] === 'Channel: ');
  if (!line) return '';
  return line.parts
    .slice(1)
    .map((p) => (typeof p === 'string' ? p : 'role' in p ? v[p.role] : ''))
    .join('');
}

const hex8 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
const CALLID_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** Slot values of a new call: channel counter `seq` for the caller, seq + 1 for the callee. */
export function callValues(
  t: CallTemplate,
  c: { seq: number; startMs: number; caller: string; callerName: string; phoneIp: string; dialled: string; calleeName?: string },
): CallValues {
  const uid = (n: number) => `${Math.floor(c.startMs / 1000)}.${n}`;
  let cid = '';
  for (let i = 0; i < 16; i++) cid += CALLID_CHARS[Math.floor(Math.random() * CALLID_CHARS.length)];
  const internal = t.found.calleeName !== undefined;
  return {
    callerChannel: `PJSIP/${c.caller}-${hex8(c.seq)}`,
    calleeChannel: `${internal ? `PJSIP/${c.dialled}-` : t.calleePrefix}${hex8(c.seq + 1)}`,
    callerUid: uid(c.seq),
    calleeUid: uid(c.seq + 1),
    caller: c.caller,
    callerName: c.callerName,
    calleeName: c.calleeName ?? '',
    dialled: c.dialled,
    phoneIp: c.phoneIp,
    callId: `${cid}@${c.phoneIp}`,
    peerCallId: randomUUID(),
    bridge: randomUUID(),
  };
}
