/**
 * The one policy for AMI actions that a caller chose (Odoo's asterisk.manager_action, REST
 * POST /v1/actions): `buildCallerAction` turns the caller's dict into the fields that will be
 * sent, refusing what is ambiguous, and `judgeAction` judges the header lines exactly as
 * actionHeaders() will write them, reading them back the way Asterisk's manager.c does (the
 * FIRST header of a name wins, names compared case-insensitively, leading blanks skipped).
 * `callerAction` does both and freezes the result, so what was judged is what is sent.
 */
import { actionHeaders } from './action.js';
import type { AmiActionFields } from './types.js';
import {
  ActionRefusedError,
  BUILTIN_ALLOWED_FUNCTIONS,
  BUILTIN_DENIED_APPLICATIONS,
  BUILTIN_DENIED_VARIABLES,
  judgeApplication,
  judgeAssignment,
  judgeText,
  judgeVariableName,
  separateArgs,
  type DialplanPolicy,
} from './dialplan-policy.js';

/**
 * Actions that change Asterisk itself (its config files, modules, dialplan, database), run AGI
 * commands on a channel, read config files holding secrets, or change the guardian's own AMI
 * session (its event mask: the guard would go blind).
 */
export const BUILTIN_DENIED_ACTIONS: readonly string[] = [
  'UpdateConfig',
  'CreateConfig',
  'GetConfig',
  'GetConfigJSON',
  'ModuleLoad',
  'ModuleUnload',
  'DialplanExtensionAdd',
  'DialplanExtensionRemove',
  'DBPut',
  'DBDel',
  'DBDelTree',
  'AGI',
  'PRIDebugFileSet',
  'Events',
  'Filter',
  'Login',
  'Logoff',
  'Challenge',
  'WaitEvent',
];

/** Asterisk's AST_MAX_MANHEADERS: a message with more header lines is refused whole. */
export const MAX_ACTION_HEADERS = 128;
/** Asterisk reads a line into a 1025-byte buffer: a longer line ("Key: value" + CRLF) is refused. */
export const MAX_ACTION_LINE_BYTES = 1024;
/** Header names that may appear more than once (Asterisk reads every one of them). */
const MULTI_VALUED = new Set(['variable']);

export interface ActionPolicyInput {
  /** odoo.deniedActions: refused in addition to the built-in list */
  deniedActions?: readonly string[];
  /** odoo.deniedApplications: refused in addition to the built-in list */
  deniedApplications?: readonly string[];
  /** actionPolicy.allow: what the operator widened on purpose (validateActionPolicyAllow) */
  allow?: readonly string[];
  /** the console policy for `Command` actions (returns, or throws with the reason); none: Command is refused */
  checkCommand?: ((command: string) => unknown) | null;
}

export interface ActionPolicy extends DialplanPolicy {
  /** lower case */
  readonly deniedActions: ReadonlySet<string>;
  readonly checkCommand: ((command: string) => unknown) | null;
}

const ALLOW_RE = /^(action|application|function|variable):([A-Za-z0-9_]{1,64})$/i;

/** Problems in actionPolicy.allow, each naming its entry. */
export function validateActionPolicyAllow(allow: readonly unknown[], at = 'actionPolicy.allow'): string[] {
  const errors: string[] = [];
  const denied = {
    action: new Set(BUILTIN_DENIED_ACTIONS.map((a) => a.toLowerCase())),
    application: new Set([...BUILTIN_DENIED_APPLICATIONS, 'AGI', 'EAGI', 'DeadAGI'].map((a) => a.toLowerCase())),
    variable: new Set(BUILTIN_DENIED_VARIABLES.map((a) => a.toLowerCase())),
  };
  allow.forEach((e, i) => {
    if (typeof e !== 'string') {
      errors.push(
        `${at}[${i}]: expected a string like "application:AGI", "function:ODBC_CUSTOMER", "action:UpdateConfig", "variable:MONITOR_EXEC", "agi" or "expressions"`,
      );
      return;
    }
    if (e === 'expressions' || e === 'agi') return;
    const m = ALLOW_RE.exec(e);
    if (!m) {
      errors.push(`${at}[${i}]: "${e.slice(0, 80)}" is not "action:NAME", "application:NAME", "function:NAME", "variable:NAME", "agi" or "expressions"`);
      return;
    }
    const kind = m[1]!.toLowerCase() as 'action' | 'application' | 'function' | 'variable';
    if (kind !== 'function' && !denied[kind].has(m[2]!.toLowerCase())) {
      errors.push(`${at}[${i}]: "${e}" widens nothing: ${m[2]} is not on the built-in ${kind} list (${[...denied[kind]].join(', ')})`);
    }
  });
  return errors;
}

/** The built-in lists with the operator's additions (odoo.denied*) and widenings (actionPolicy.allow). */
export function resolveActionPolicy(input: ActionPolicyInput = {}): ActionPolicy {
  const allow = new Map<string, Set<string>>([
    ['action', new Set()],
    ['application', new Set()],
    ['function', new Set()],
    ['variable', new Set()],
  ]);
  let expressions = false;
  let anyAgi = false;
  for (const e of input.allow ?? []) {
    if (e === 'expressions') {
      expressions = true;
      continue;
    }
    if (e === 'agi') {
      anyAgi = true;
      continue;
    }
    const m = ALLOW_RE.exec(e);
    if (m) allow.get(m[1]!.toLowerCase())!.add(m[2]!.toLowerCase());
  }
  const minus = (names: Iterable<string>, kind: string) => new Set([...names].map((n) => n.toLowerCase()).filter((n) => !allow.get(kind)!.has(n)));
  if (allow.get('application')!.has('agi')) anyAgi = true;
  return {
    deniedActions: minus([...BUILTIN_DENIED_ACTIONS, ...(input.deniedActions ?? [])], 'action'),
    deniedApplications: minus([...BUILTIN_DENIED_APPLICATIONS, ...(input.deniedApplications ?? [])], 'application'),
    allowedFunctions: new Set([...BUILTIN_ALLOWED_FUNCTIONS, ...allow.get('function')!].map((f) => f.toUpperCase())),
    deniedVariables: new Set([...minus(BUILTIN_DENIED_VARIABLES, 'variable')].map((v) => v.toUpperCase())),
    expressions,
    anyAgi,
    checkCommand: input.checkCommand ?? null,
  };
}

function refuse(message: string): never {
  throw new ActionRefusedError(`refused: ${message}`);
}

function scalar(key: string, v: unknown): string | number | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (v === null) return undefined;
  return refuse(`${key} must be a string, a number or (for Variable) a list`);
}

/**
 * A caller's action dict → the fields that will be sent. Refused: not a dict; a key that is not an
 * AMI header name; two keys naming the same header in different case (Asterisk reads the first,
 * a check could read the other); a list for a header Asterisk reads once; CR, LF or NUL.
 * `{"Variable": {"A": "1"}}` becomes `Variable: A=1`. The Action key comes first; ActionID is the
 * client's own and dropped.
 */
export function buildCallerAction(input: unknown): AmiActionFields {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    refuse('the action must be a dict, e.g. {"Action": "Ping"}');
  }
  const seen = new Map<string, string>();
  const out: Record<string, string | number | Array<string | number>> = {};
  let action: string | undefined;
  for (const [k, raw] of Object.entries(input as Record<string, unknown>)) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(k)) refuse(`action key ${JSON.stringify(k.slice(0, 80))} is not an AMI header name ([A-Za-z0-9_-], at most 64)`);
    const lk = k.toLowerCase();
    const prior = seen.get(lk);
    if (prior !== undefined) refuse(`the keys "${prior}" and "${k}" name the same AMI header; Asterisk would read only the first one. Send it once`);
    seen.set(lk, k);
    if (lk === 'actionid') continue;
    let value: string | number | Array<string | number> | undefined;
    if (Array.isArray(raw) || (raw !== null && typeof raw === 'object')) {
      const list = Array.isArray(raw)
        ? raw.map((x) => scalar(k, x))
        : lk === 'variable'
          ? Object.entries(raw as Record<string, unknown>).map(([vk, vv]) => `${vk}=${String(scalar(k, vv) ?? '')}`)
          : refuse(`${k} must be a string, a number or (for Variable) a list`);
      const values = list.filter((x): x is string | number => x !== undefined);
      if (values.length > 1 && !MULTI_VALUED.has(lk)) refuse(`${k} has ${values.length} values, but Asterisk reads only the first ${k} header; send one value`);
      if (values.length === 0) continue;
      value = values.length === 1 ? values[0]! : values;
    } else {
      value = scalar(k, raw);
      if (value === undefined) continue;
    }
    for (const v of Array.isArray(value) ? value : [value]) {
      if (/[\r\n\0]/.test(String(v))) refuse(`the value of ${k} contains CR, LF or NUL (AMI header injection)`);
    }
    if (lk === 'action') {
      if (typeof value !== 'string' || !/^[A-Za-z0-9_]{1,64}$/.test(value.trim())) refuse('"Action" must name one AMI action, e.g. "Ping"');
      action = value;
      continue;
    }
    out[k] = value;
  }
  if (action === undefined) refuse('the action dict has no "Action" key');
  return { Action: action, ...out };
}

/** The header lines as Asterisk's astman_get_header reads them. */
class WireMessage {
  constructor(readonly headers: ReadonlyArray<readonly [string, string]>) {}
  private static value(v: string): string {
    let i = 0;
    while (i < v.length && v.charCodeAt(i) < 33) i++; // ast_skip_blanks
    return v.slice(i);
  }
  first(key: string): string {
    const k = key.toLowerCase();
    const h = this.headers.find(([n]) => n.toLowerCase() === k);
    return h ? WireMessage.value(h[1]) : '';
  }
  all(key: string): string[] {
    const k = key.toLowerCase();
    return this.headers.filter(([n]) => n.toLowerCase() === k).map(([, v]) => WireMessage.value(v));
  }
}

const LOCAL_CHANNEL_RE = /^Local\/[A-Za-z0-9_+*#.-]+@[A-Za-z0-9_.-]+(?:\/[a-z]+)?$/i;

/** Judges the lines actionHeaders(fields) writes; throws ActionRefusedError naming the rule. */
export function judgeAction(fields: AmiActionFields, p: ActionPolicy): void {
  let headers: Array<[string, string]>;
  try {
    headers = actionHeaders(fields);
  } catch (e) {
    return refuse((e as Error).message);
  }
  if (headers.length + 1 > MAX_ACTION_HEADERS)
    refuse(`the action has ${headers.length} headers; Asterisk refuses more than ${MAX_ACTION_HEADERS} (ActionID included)`);
  for (const [k, v] of headers) {
    if (Buffer.byteLength(`${k}: ${v}\r\n`) > MAX_ACTION_LINE_BYTES)
      refuse(`the header ${k} is longer than Asterisk reads (${MAX_ACTION_LINE_BYTES} bytes per line)`);
  }
  const m = new WireMessage(headers);
  const name = m.first('Action').trim();
  const lower = name.toLowerCase();
  if (p.deniedActions.has(lower)) {
    refuse(
      `the AMI action ${name} is denied on this agent: it changes Asterisk itself (config, modules, dialplan, database), reads config files with secrets, runs AGI commands, or changes the guardian's own AMI session (odoo.deniedActions and the built-in list; see actionPolicy.allow "action:${name}")`,
    );
  }
  for (const [k, v] of headers.slice(1)) judgeText(`the value of ${k}`, v, p);
  switch (lower) {
    case 'originate': {
      const channel = m.first('Channel').trim();
      if (/^local\//i.test(channel) && !LOCAL_CHANNEL_RE.test(channel))
        refuse(`Originate Channel ${JSON.stringify(channel.slice(0, 80))} is not a plain Local/exten@context`);
      judgeApplication('Originate', m.first('Application'), m.first('Data'), p);
      break;
    }
    case 'setvar':
      judgeVariableName('Setvar Variable', m.first('Variable'), 'write', p);
      break;
    case 'getvar':
      judgeVariableName('Getvar Variable', m.first('Variable'), 'read', p);
      break;
    case 'status':
      for (const v of separateArgs(m.first('Variables'), ',', true, 100)) if (v.trim()) judgeVariableName('Status Variables', v, 'read', p);
      break;
    case 'mixmonitor':
      if (m.first('Command') !== '') refuse('MixMonitor with a Command: Asterisk runs it through the shell when the recording ends');
      break;
    case 'command': {
      if (!p.checkCommand) refuse('Command actions run Asterisk CLI commands and go through the console policy, which is not enabled here (console.enabled)');
      try {
        p.checkCommand(m.first('Command'));
      } catch (e) {
        refuse(`Command ${JSON.stringify(m.first('Command').slice(0, 80))}: ${(e as Error).message.replace(/^refused: /, '')}`);
      }
      break;
    }
  }
  // Originate, MessageSend, PJSIPNotify...: every Variable header is read, its items split as manager.c does
  if (lower !== 'setvar' && lower !== 'getvar') {
    for (const v of m.all('Variable')) for (const item of separateArgs(v, ',', true, 64)) judgeAssignment(`${name} Variable`, item, p);
  }
}

/** buildCallerAction then judgeAction; the fields are frozen, so what was judged is what is sent. */
export function callerAction(input: unknown, p: ActionPolicy): AmiActionFields {
  const fields = buildCallerAction(input);
  judgeAction(fields, p);
  for (const v of Object.values(fields)) if (Array.isArray(v)) Object.freeze(v);
  return Object.freeze(fields);
}
