/**
 * The salara-style telephony operations over AMI: operator-then-phone call setup, messages to an
 * internal subscriber, and extension / peer / channel status with salara's result codes and texts.
 * Every value that reaches an AMI header has been checked against a strict character class by the
 * route schema first; the AMI client refuses CR/LF/NUL as a second line of defence.
 */
import { randomUUID } from 'node:crypto';
import { AppError } from '../common/errors.js';
import type { AmiActionFields, AmiMessage, AmiPort, AmiResponse } from '../ami/index.js';

export type { AmiPort };

/** salara's answer: a status code and its text. */
export interface SalaraStatus {
  result: number;
  text: string;
}

export interface TelephonyOptions {
  /** context used when a request gives none */
  defaultContext: string;
  /** contexts a request may name (empty: any valid name) */
  callContexts: string[];
  /** channel of the operator's leg; {operator} is replaced, e.g. PJSIP/{operator} */
  operatorChannel: string;
  /** Originate Timeout (ms): how long the operator's phone rings */
  originateTimeoutMs: number;
  /** MessageSend To; {operator} is replaced, e.g. pjsip:{operator} */
  messageTo: string;
  /** MessageSend From; {phone} is replaced */
  messageFrom: string;
  /** which peer status action: pjsip (PJSIPShowEndpoint), sip (SIPshowpeer), auto (PJSIP, then SIP) */
  peerDriver: 'auto' | 'pjsip' | 'sip';
  actionTimeoutMs: number;
}

/** A request the PBX state refuses (operator unavailable, context not allowed...): HTTP 409 / 404 / 403. */
export class TelephonyError extends AppError {
  constructor(
    message: string,
    statusCode: number,
    readonly status?: SalaraStatus,
  ) {
    super(message, 'REFUSED', statusCode);
  }
}

const ok = (r: AmiResponse): boolean => /^success$/i.test(r.response.get('Response') ?? '');

/** ExtensionState codes (Asterisk's ast_extension_state), with the text salara shows. */
const EXTENSION_TEXT: Record<string, string> = {
  '-2': 'Removed',
  '-1': 'Unknown',
  '0': 'Idle',
  '1': 'InUse',
  '2': 'Busy',
  '4': 'Unavailable',
  '8': 'Ringing',
  '9': 'InUse&Ringing',
  '16': 'Hold',
  '17': 'InUse&Hold',
};
/** operator states in which no call is set up: the operator is away or already on the phone */
const CALL_REFUSED = new Set([-2, 1, 2, 4, 8, 9, 16, 17]);
/** operator states in which no message is sent */
const MESSAGE_REFUSED = new Set([-2, 4]);

function fill(template: string, vars: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => vars[k] ?? m);
}

export class Telephony {
  constructor(
    private readonly ami: AmiPort,
    private readonly o: TelephonyOptions,
  ) {}

  private context(given: string | undefined): string {
    const c = given ?? this.o.defaultContext;
    if (this.o.callContexts.length > 0 && !this.o.callContexts.includes(c)) {
      throw new TelephonyError(`context "${c}" is not allowed here (rest.callContexts: ${this.o.callContexts.join(', ')})`, 403);
    }
    return c;
  }

  private act(fields: AmiActionFields): Promise<AmiResponse> {
    return this.ami.action(fields, { timeoutMs: this.o.actionTimeoutMs });
  }

  /** salara 1.3: ExtensionState → {result: Status, text: StatusText}; -1 Unknown when not in the dialplan. */
  async extensionStatus(exten: string, context?: string): Promise<SalaraStatus> {
    const r = await this.act({ Action: 'ExtensionState', Exten: exten, Context: this.context(context) });
    if (!ok(r)) return { result: -1, text: r.response.get('Message') ?? 'Unknown' };
    const code = Number(r.response.get('Status') ?? '-1');
    const result = Number.isFinite(code) ? code : -1;
    return { result, text: r.response.get('StatusText') ?? EXTENSION_TEXT[String(result)] ?? 'Unknown' };
  }

  /** salara 1.4: {0, Reachable} / {0, Unknown|Unreachable|Lagged|Unmonitored} / {-1, Error} (no such peer). */
  async peerStatus(peer: string): Promise<SalaraStatus & { detail?: string }> {
    if (this.o.peerDriver !== 'sip') {
      const r = await this.act({ Action: 'PJSIPShowEndpoint', Endpoint: peer });
      if (ok(r)) return pjsipPeerStatus(r);
      if (this.o.peerDriver === 'pjsip') return { result: -1, text: 'Error', detail: r.response.get('Message') };
    }
    const r = await this.act({ Action: 'SIPshowpeer', Peer: peer });
    if (!ok(r)) return { result: -1, text: 'Error', detail: r.response.get('Message') };
    return sipPeerStatus(r.response);
  }

  /** salara 1.5: {0, "Up (6)"} while the channel lives, {-1, "Channel not present"} otherwise. */
  async channelStatus(channel: string): Promise<SalaraStatus> {
    const r = await this.act({ Action: 'Status', Channel: channel });
    const item = ok(r)
      ? (r.events.find((e) => (e.get('Event') ?? '').toLowerCase() === 'status' && e.get('Channel') === channel) ??
        (r.events.length === 1 ? r.events[0] : undefined))
      : undefined;
    if (!item) return { result: -1, text: 'Channel not present' };
    return { result: 0, text: `${item.get('ChannelStateDesc') ?? 'Unknown'} (${item.get('ChannelState') ?? '?'})` };
  }

  /**
   * salara 1.1: check the operator, then Originate the operator's channel into context/phone
   * (Async): Asterisk rings the operator first and, when the operator answers, runs the dialplan
   * at phone@context, which dials the called party.
   */
  async call(req: { operator: string; phone: string; context?: string }): Promise<SalaraStatus & { callId: string; originated: true; channel: string }> {
    const context = this.context(req.context);
    const st = await this.extensionStatus(req.operator, context);
    if (CALL_REFUSED.has(st.result)) {
      throw new TelephonyError(`operator ${req.operator} is ${st.text} (ExtensionState ${st.result}): no call was set up`, 409, st);
    }
    const callId = randomUUID();
    const channel = fill(this.o.operatorChannel, { operator: req.operator });
    const r = await this.act({
      Action: 'Originate',
      Channel: channel,
      Context: context,
      Exten: req.phone,
      Priority: 1,
      CallerID: `"${req.phone}" <${req.phone}>`,
      Timeout: this.o.originateTimeoutMs,
      ChannelId: callId,
      Variable: `PBXG_CALL_ID=${callId}`,
      Async: 'true',
    });
    if (!ok(r)) {
      throw new TelephonyError(`Asterisk refused the call: ${r.response.get('Message') ?? 'Originate failed'}`, 502, st);
    }
    return { ...st, callId, originated: true, channel };
  }

  /** salara 1.2: check the operator, then MessageSend to the operator from phone. */
  async message(req: { operator: string; phone: string; msg: string; context?: string }): Promise<SalaraStatus & { sent: true }> {
    const st = await this.extensionStatus(req.operator, req.context);
    if (MESSAGE_REFUSED.has(st.result)) {
      throw new TelephonyError(`operator ${req.operator} is ${st.text} (ExtensionState ${st.result}): the message was not sent`, 409, st);
    }
    // a message with line breaks cannot travel in a header: send it base64-encoded
    const body: AmiActionFields = /[\r\n]/.test(req.msg) ? { Base64Body: Buffer.from(req.msg, 'utf8').toString('base64') } : { Body: req.msg };
    const r = await this.act({
      Action: 'MessageSend',
      To: fill(this.o.messageTo, { operator: req.operator }),
      From: fill(this.o.messageFrom, { phone: req.phone }),
      ...body,
    });
    if (!ok(r)) throw new TelephonyError(`Asterisk did not send the message: ${r.response.get('Message') ?? 'MessageSend failed'}`, 502, st);
    return { ...st, sent: true };
  }
}

function sipPeerStatus(m: AmiMessage): SalaraStatus & { detail: string } {
  const s = m.get('Status') ?? '';
  const addr = m.get('Address-IP') ?? '';
  const registered = addr !== '' && addr !== '(null)' && addr !== '0.0.0.0';
  let text: string;
  if (/^OK\b/i.test(s)) text = 'Reachable';
  else if (/^LAGGED/i.test(s)) text = 'Lagged';
  else if (/^UNREACHABLE/i.test(s)) text = 'Unreachable';
  else if (/^Unmonitored/i.test(s)) text = registered ? 'Reachable' : 'Unknown';
  else text = 'Unknown';
  return { result: 0, text, detail: s };
}

function pjsipPeerStatus(r: AmiResponse): SalaraStatus & { detail: string } {
  const contacts = r.events.filter((e) => (e.get('Event') ?? '') === 'ContactStatusDetail');
  const endpoint = r.events.find((e) => (e.get('Event') ?? '') === 'EndpointDetail');
  const states = contacts.map((c) => c.get('Status') ?? '');
  const detail = endpoint?.get('DeviceState') ?? states.join(',');
  if (states.some((s) => /^(Reachable|Created)$/i.test(s))) return { result: 0, text: 'Reachable', detail };
  if (states.some((s) => /^Unreachable$/i.test(s))) return { result: 0, text: 'Unreachable', detail };
  if (states.some((s) => /^NonQualified$/i.test(s))) return { result: 0, text: 'Unmonitored', detail };
  return { result: 0, text: 'Unknown', detail };
}
