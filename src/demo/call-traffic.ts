import { AmiSimulator, type SimulatedRequest, type SimulatedUser } from './ami-simulator.js';
import { callValues, loadCallTemplate, renderFrames, type CallTemplate, type CallTimes, type CallValues } from './call-templates.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A synthetic Asterisk 22 PBX on the AMI wire: calls rendered from the real transcripts
 * (call-templates.ts) with a unique channel pair and uniqueids each, sent to every logged-in
 * session by its Events mask (AmiSimulator), and the actions a guard sends answered the way
 * Asterisk answered them in test/fixtures/ami-asterisk22-calls/: Hangup (exact channel or /regex/)
 * hangs the calls up with the AMI-hangup frames, DBPut/DBGet/DBDel/DBDelTree/DBGetTree keep an
 * AstDB, CoreShowChannels lists the live channels. Every action is recorded with the time it
 * arrived (performance.now()), for bench/fraud.ts.
 *
 * A call hung up over AMI before it was answered still ends with the frames of an answered call
 * (the only AMI-hangup transcript there is).
 */

export interface TrafficAccount {
  /** the PJSIP endpoint (the channel is PJSIP/<name>-<n>) */
  name: string;
  callerName: string;
  /** where the phone registers from (SuccessfulAuth RemoteAddress) */
  address: string;
}

/** internal: a call to another extension; the others go out through the trunk */
export type CallKind = 'internal' | 'answered' | 'busy' | 'no-answer' | 'congestion';

export interface CallSpec {
  account: string;
  /** the number dialled (for internal: the other account's name) */
  dialled: string;
  kind: CallKind;
  /** ms from the dial to the answer (or the failure: busy, congestion, no-answer timeout) */
  ringMs: number;
  /** ms of talk after the answer; null: the call stays up until hung up over AMI */
  talkMs: number | null;
  /** free text kept with the call (the bench marks its attack calls) */
  tag?: string;
}

export interface PlacedCall {
  id: number;
  spec: CallSpec;
  values: CallValues;
  /** performance.now() when the call's first frames (with DialBegin) were written */
  dialBeginAt: number;
  /** 0 ringing, 1 answered/failed, 2 ended */
  phase: 0 | 1 | 2;
  endedBy?: 'pbx' | 'ami';
  endedAt?: number;
  readonly template: CallTemplate;
  readonly times: CallTimes;
  timer?: NodeJS.Timeout;
}

export interface ActionRecord {
  /** performance.now() at arrival */
  at: number;
  action: string;
  headers: Record<string, string>;
  /** channels this action hung up */
  hungUp: string[];
  response: 'Success' | 'Error';
}

export interface CallTrafficOptions {
  fixturesDir: string;
  accounts: TrafficAccount[];
  /** send CEL frames (cel_manager on, as in the transcripts); default true */
  cel?: boolean;
  username?: string;
  secret?: string;
  users?: Record<string, SimulatedUser>;
  /** bound on calls up at once (default 100 000) and on recorded actions (default 100 000) */
  maxLive?: number;
  maxActions?: number;
}

const TEMPLATES: Record<CallKind, string> = {
  internal: 'call-pjsip-internal-extension.raw',
  answered: 'call-pjsip-international-trunk.raw',
  busy: 'call-pjsip-trunk-busy.raw',
  'no-answer': 'call-pjsip-trunk-no-answer.raw',
  congestion: 'call-pjsip-trunk-congestion.raw',
};
const AMI_HANGUP = 'action-hangup-fraud-call-exact.raw';
const ANSWERED: ReadonlySet<CallKind> = new Set(['internal', 'answered']);

const crlf = (lines: string[]) => lines.map((l) => l + '\r\n').join('') + '\r\n';
const two = (n: number) => String(n).padStart(2, '0');
const hms = (ms: number) => {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${two(Math.floor(s / 3600))}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}`;
};

export class CallTraffic {
  readonly sim: AmiSimulator;
  readonly actions: ActionRecord[] = [];
  /** actions not recorded because maxActions was reached */
  actionsDropped = 0;
  /** AstDB: "family/key" → value */
  readonly db = new Map<string, string>();
  /** frames sent, by their Privilege header ('' for none) */
  readonly sentByPrivilege = new Map<string, number>();
  placed = 0;
  private readonly templates: Record<CallKind, CallTemplate>;
  private readonly amiHangup: CallTemplate;
  private readonly accounts: Map<string, TrafficAccount>;
  private readonly live = new Map<string, PlacedCall>();
  private readonly maxLive: number;
  private readonly maxActions: number;
  private seq = 0;
  private outbox: string[] = [];
  private flushing = false;

  constructor(opts: CallTrafficOptions) {
    const cel = opts.cel ?? true;
    this.templates = Object.fromEntries(Object.entries(TEMPLATES).map(([k, f]) => [k, loadCallTemplate(opts.fixturesDir, f, { cel })])) as Record<
      CallKind,
      CallTemplate
    >;
    this.amiHangup = loadCallTemplate(opts.fixturesDir, AMI_HANGUP, { cel, ami: true });
    this.accounts = new Map(opts.accounts.map((a) => [a.name, a]));
    this.maxLive = opts.maxLive ?? 100_000;
    this.maxActions = opts.maxActions ?? 100_000;
    // the Asterisk 22 greeting, as the defender session received it
    const client = readFileSync(join(opts.fixturesDir, 'action-hangup-fraud-call-exact.client.raw'), 'latin1');
    const greeting = Buffer.from(client.slice(0, client.indexOf('\r\n') + 2), 'latin1');
    this.sim = new AmiSimulator({
      fixturesDir: opts.fixturesDir,
      greeting,
      username: opts.username,
      secret: opts.secret,
      users: opts.users,
      loginFailDelayMs: 10,
      onAction: (req, reply) => this.onAction(req, reply),
    });
  }

  listen(): Promise<number> {
    return this.sim.listen();
  }

  get port(): number {
    return this.sim.port;
  }

  /** calls up now (ringing or answered) */
  get liveCalls(): number {
    return this.live.size / 2;
  }

  /** Dial a call now: its first frames go out at once, the rest on its timeline. */
  place(spec: CallSpec): PlacedCall {
    const acct = this.accounts.get(spec.account);
    if (!acct) throw new Error(`unknown account ${spec.account}`);
    if (this.live.size / 2 >= this.maxLive) throw new Error(`more than ${this.maxLive} calls up at once (maxLive)`);
    const t = this.templates[spec.kind];
    const now = Date.now();
    const callee = spec.kind === 'internal' ? this.accounts.get(spec.dialled) : undefined;
    const values = callValues(t, {
      seq: this.seq,
      startMs: now,
      caller: acct.name,
      callerName: acct.callerName,
      phoneIp: acct.address,
      dialled: spec.dialled,
      calleeName: callee?.callerName ?? spec.dialled,
    });
    this.seq += 2;
    const answered = ANSWERED.has(spec.kind);
    const times: CallTimes = {
      start: now,
      answer: answered ? now + spec.ringMs : null,
      end: now + spec.ringMs + (answered ? (spec.talkMs ?? 0) : 0),
    };
    const call: PlacedCall = { id: this.placed++, spec, values, dialBeginAt: performance.now(), phase: 0, template: t, times };
    this.live.set(values.callerChannel.toLowerCase(), call);
    this.live.set(values.calleeChannel.toLowerCase(), call);
    this.send(t, 0, t.answerAt, call, now);
    call.timer = setTimeout(() => this.answer(call), spec.ringMs);
    return call;
  }

  private answer(call: PlacedCall): void {
    const t = call.template;
    call.phase = 1;
    this.send(t, t.answerAt, t.hangupAt, call, Date.now());
    const talk = ANSWERED.has(call.spec.kind) ? call.spec.talkMs : 0;
    if (talk === null) return;
    call.timer = setTimeout(() => this.end(call, 'pbx'), talk);
  }

  private end(call: PlacedCall, by: 'pbx' | 'ami', cause?: { channel: string; code: number }): void {
    if (call.phase === 2) return;
    clearTimeout(call.timer);
    const now = Date.now();
    if (by === 'ami') {
      const times = call.times as { end: number };
      times.end = now;
      this.send(this.amiHangup, 0, this.amiHangup.frames.length, call, now, cause);
    } else this.send(call.template, call.template.hangupAt, call.template.frames.length, call, now);
    call.phase = 2;
    call.endedBy = by;
    call.endedAt = performance.now();
    this.live.delete(call.values.callerChannel.toLowerCase());
    this.live.delete(call.values.calleeChannel.toLowerCase());
  }

  private send(t: CallTemplate, from: number, to: number, call: PlacedCall, now: number, cause?: { channel: string; code: number }): void {
    if (to <= from) return;
    for (let i = from; i < to; i++) {
      const p = t.frames[i]!.privilege;
      this.sentByPrivilege.set(p, (this.sentByPrivilege.get(p) ?? 0) + 1);
    }
    this.outbox.push(renderFrames(t, from, to, call.values, call.times, now, cause));
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
  }

  /** write what is queued now (the bench calls it after placing a call it times) */
  flush(): void {
    this.flushing = false;
    if (this.outbox.length === 0) return;
    const text = this.outbox.join('');
    this.outbox = [];
    this.sim.broadcast(text);
  }

  private record(req: SimulatedRequest, at: number, hungUp: string[], response: 'Success' | 'Error'): void {
    if (this.actions.length >= this.maxActions) {
      this.actionsDropped++;
      return;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of req.headers) headers[k] = v;
    this.actions.push({ at, action: req.action, headers, hungUp, response });
  }

  private onAction(req: SimulatedRequest, reply: (text: string) => void): boolean {
    const at = performance.now();
    const action = req.action.toLowerCase();
    const get = (k: string) => req.headers.find(([hk]) => hk.toLowerCase() === k)?.[1];
    const id = req.actionId === undefined ? [] : [`ActionID: ${req.actionId}`];
    const answer = (response: 'Success' | 'Error', message: string): true => {
      this.record(req, at, [], response);
      reply(crlf([`Response: ${response}`, ...id, `Message: ${message}`]));
      return true;
    };
    const ok = (message: string) => answer('Success', message);
    const error = (message: string) => answer('Error', message);
    const family = get('family');
    const key = get('key');
    switch (action) {
      case 'hangup':
        this.hangup(req, at, get('channel') ?? '', Number(get('cause') ?? 16) || 16, id, reply);
        return true;
      case 'dbput':
        if (!family) return error('No family specified.');
        if (!key) return error('No key specified.');
        this.db.set(`${family}/${key}`, get('val') ?? '');
        return ok('Updated database successfully');
      case 'dbget': {
        const val = this.db.get(`${family}/${key}`);
        if (!family || !key || val === undefined) return error('Database entry not found');
        this.record(req, at, [], 'Success');
        reply(
          crlf(['Response: Success', ...id, 'EventList: start', 'Message: Result will follow']) +
            crlf(['Event: DBGetResponse', `Family: ${family}`, `Key: ${key}`, `Val: ${val}`, ...id]) +
            crlf(['Event: DBGetComplete', ...id, 'EventList: Complete', 'ListItems: 1']),
        );
        return true;
      }
      case 'dbdel':
        if (!family || !key || !this.db.delete(`${family}/${key}`)) return error('Database entry not found');
        return ok('Key deleted successfully');
      case 'dbdeltree': {
        const prefix = `${family}/${key ? key + '/' : ''}`;
        const keys = [...this.db.keys()].filter((k) => k.startsWith(prefix) || (key !== undefined && k === `${family}/${key}`));
        if (!family || keys.length === 0) return error('Database entry not found');
        for (const k of keys) this.db.delete(k);
        return ok('Key tree deleted successfully');
      }
      case 'dbgettree': {
        const prefix = `${family}/${key ? key + '/' : ''}`;
        const rows = [...this.db].filter(([k]) => family !== undefined && k.startsWith(prefix));
        if (rows.length === 0) return error('Database entry not found');
        this.record(req, at, [], 'Success');
        reply(
          crlf(['Response: Success', ...id, 'EventList: start', 'Message: Result will follow']) +
            rows.map(([k, v]) => crlf(['Event: DBGetTreeResponse', `Key: /${k}`, `Val: ${v}`, ...id])).join('') +
            crlf(['Event: DBGetTreeComplete', ...id, 'EventList: Complete', `ListItems: ${rows.length}`]),
        );
        return true;
      }
      case 'coreshowchannels':
        this.record(req, at, [], 'Success');
        reply(this.coreShowChannels(id));
        return true;
      default:
        this.record(req, at, [], 'Success');
        return false;
    }
  }

  private hangup(req: SimulatedRequest, at: number, name: string, cause: number, id: string[], reply: (text: string) => void): void {
    const regex = name.length > 2 && name.startsWith('/') && name.endsWith('/');
    if (!regex) {
      const call = this.live.get(name.toLowerCase());
      if (!call) {
        this.record(req, at, [], 'Error');
        reply(crlf(['Response: Error', ...id, 'Message: No such channel']));
        return;
      }
      const channel = call.values.callerChannel.toLowerCase() === name.toLowerCase() ? call.values.callerChannel : call.values.calleeChannel;
      this.record(req, at, [channel], 'Success');
      reply(crlf(['Response: Success', ...id, 'Message: Channel Hungup']));
      this.end(call, 'ami', { channel, code: cause });
      return;
    }
    let re: RegExp;
    try {
      re = new RegExp(name.slice(1, -1));
    } catch {
      this.record(req, at, [], 'Error');
      reply(crlf(['Response: Error', ...id, `Message: Regex compile failed on: ${name.slice(1, -1)}`]));
      return;
    }
    const hit: Array<[string, PlacedCall]> = [];
    for (const call of new Set(this.live.values()))
      for (const ch of [call.values.callerChannel, call.values.calleeChannel]) if (re.test(ch)) hit.push([ch, call]);
    this.record(
      req,
      at,
      hit.map(([ch]) => ch),
      'Success',
    );
    reply(
      crlf(['Response: Success', ...id, 'EventList: start', 'Message: Channels hung up will follow']) +
        hit.map(([ch]) => crlf(['Event: ChannelHungup', `Channel: ${ch}`, ...id])).join('') +
        crlf(['Event: ChannelsHungupListComplete', ...id, 'EventList: Complete', `ListItems: ${hit.length}`]),
    );
    for (const [channel, call] of hit) this.end(call, 'ami', { channel, code: cause });
  }

  private coreShowChannels(id: string[]): string {
    const now = Date.now();
    let out = crlf(['Response: Success', ...id, 'EventList: start', 'Message: Channels will follow']);
    let n = 0;
    for (const call of new Set(this.live.values())) {
      const v = call.values;
      const up = call.phase > 0 && ANSWERED.has(call.spec.kind);
      const internal = call.spec.kind === 'internal';
      const common = (state: boolean) => [`ChannelState: ${state ? 6 : 4}`, `ChannelStateDesc: ${state ? 'Up' : 'Ring'}`];
      const dur = `Duration: ${hms(now - call.times.start)}`;
      const bridge = `BridgeId: ${up ? v.bridge : ''}`;
      out += crlf([
        'Event: CoreShowChannel',
        ...id,
        `Channel: ${v.callerChannel}`,
        ...common(up),
        `CallerIDNum: ${v.caller}`,
        `CallerIDName: ${v.callerName}`,
        `ConnectedLineNum: ${v.dialled}`,
        `ConnectedLineName: ${internal ? v.calleeName : '<unknown>'}`,
        'Language: en',
        'AccountCode: ',
        'Context: internal',
        `Exten: ${v.dialled}`,
        'Priority: 2',
        `Uniqueid: ${v.callerUid}`,
        `Linkedid: ${v.callerUid}`,
        'Application: Dial',
        `ApplicationData: ${internal ? `PJSIP/${v.dialled},20` : `PJSIP/${v.dialled}@trunk,8`}`,
        dur,
        bridge,
      ]);
      out += crlf([
        'Event: CoreShowChannel',
        ...id,
        `Channel: ${v.calleeChannel}`,
        ...common(up),
        `CallerIDNum: ${v.dialled}`,
        `CallerIDName: ${internal ? v.calleeName : '<unknown>'}`,
        `ConnectedLineNum: ${v.caller}`,
        `ConnectedLineName: ${v.callerName}`,
        'Language: en',
        'AccountCode: ',
        `Context: ${internal ? 'internal' : 'from-trunk'}`,
        'Exten: ',
        'Priority: 1',
        `Uniqueid: ${v.calleeUid}`,
        `Linkedid: ${v.callerUid}`,
        'Application: AppDial',
        'ApplicationData: (Outgoing Line)',
        dur,
        bridge,
      ]);
      n += 2;
    }
    return out + crlf(['Event: CoreShowChannelsComplete', ...id, 'EventList: Complete', `ListItems: ${n}`]);
  }

  /** Place calls at `rate` per second for `seconds` (spec(i) gives the i-th); resolves with the count. */
  async run(rate: number, seconds: number, spec: (i: number) => CallSpec | null, signal?: { stop: boolean }): Promise<number> {
    const t0 = performance.now();
    let n = 0;
    while (!signal?.stop) {
      const elapsed = (performance.now() - t0) / 1000;
      if (elapsed >= seconds) break;
      const due = Math.min(Math.floor(elapsed * rate), Math.floor(seconds * rate));
      for (; n < due; n++) {
        const s = spec(n);
        if (s) this.place(s);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    return n;
  }

  /** End every live call (the PBX hangs up) and close the listener. */
  async close(): Promise<void> {
    for (const call of new Set(this.live.values())) clearTimeout(call.timer);
    this.live.clear();
    this.outbox = [];
    await this.sim.close();
  }
}
