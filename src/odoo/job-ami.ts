/** asterisk.manager_action and sip.get_peers: AMI actions Odoo asks for, and the checks they pass first. */
import type { AmiActionFields, AmiMessage, AmiResponse } from '../ami/types.js';
import type { OdooConfig } from './config.js';
import { JobError, truthyKw, type JobFunction } from './job-function.js';

const HEADER_KEY_RE = /^[A-Za-z0-9_\-]{1,64}$/;
const SHELL_IN_DATA_RE = /\b(?:try)?system\s*\(|\bshell\s*\(/i;

/** AMI message → dict; duplicate keys become lists (like the Salt agent's panoramisk messages). */
export function messageToDict(m: AmiMessage): Record<string, unknown> {
  const o: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of m.headers) {
    const cur = o[k];
    if (cur === undefined) o[k] = v;
    else if (Array.isArray(cur)) cur.push(v);
    else o[k] = [cur, v];
  }
  return { ...o };
}

/** Validate and convert an action dict from Odoo; throws JobError with a clear message. */
export function toActionFields(action: unknown, cfg: Pick<OdooConfig, 'deniedActions' | 'deniedApplications'>): AmiActionFields {
  if (action === null || typeof action !== 'object' || Array.isArray(action)) {
    throw new JobError('asterisk.manager_action expects the action as a dict in args, e.g. {"Action": "Ping"}');
  }
  const out: AmiActionFields = {};
  const check = (k: string, v: string): string => {
    if (/[\r\n\0]/.test(v)) throw new JobError(`refused: the value of ${k} contains CR, LF or NUL (AMI header injection)`);
    if (v.length > 8192) throw new JobError(`refused: the value of ${k} is longer than 8192 characters`);
    return v;
  };
  for (const [k, raw] of Object.entries(action as Record<string, unknown>)) {
    if (!HEADER_KEY_RE.test(k)) throw new JobError(`refused: action key ${JSON.stringify(k.slice(0, 80))} is not a valid AMI header name`);
    if (k.toLowerCase() === 'actionid') continue; // the AMI client owns ActionID
    if (typeof raw === 'string') out[k] = check(k, raw);
    else if (typeof raw === 'number' && Number.isFinite(raw)) out[k] = raw;
    else if (typeof raw === 'boolean') out[k] = raw ? 'true' : 'false';
    else if (Array.isArray(raw)) {
      if (raw.length > 256) throw new JobError(`refused: ${k} has more than 256 values`);
      out[k] = raw.map((x) => {
        if (typeof x === 'string') return check(k, x);
        if (typeof x === 'number' && Number.isFinite(x)) return x;
        throw new JobError(`refused: ${k} must be a list of strings or numbers`);
      });
    } else if (raw !== null && typeof raw === 'object' && k.toLowerCase() === 'variable') {
      // {"VAR": "value"} → Variable: VAR=value (once per pair)
      out[k] = Object.entries(raw as Record<string, unknown>).map(([vk, vv]) => check(k, `${vk}=${String(vv)}`));
    } else if (raw === null) continue;
    else throw new JobError(`refused: ${k} must be a string, a number or a list`);
  }
  const actionName = typeof out.Action === 'string' ? out.Action : Object.entries(out).find(([k]) => k.toLowerCase() === 'action')?.[1];
  if (typeof actionName !== 'string' || !actionName) throw new JobError('asterisk.manager_action: the action dict has no "Action" key');
  const lower = actionName.toLowerCase();
  if (cfg.deniedActions.some((a) => a.toLowerCase() === lower)) {
    throw new JobError(`refused: the AMI action ${actionName} is denied by odoo.deniedActions on this agent`);
  }
  if (lower === 'originate') {
    const get = (key: string): string | undefined => {
      const e = Object.entries(out).find(([k]) => k.toLowerCase() === key);
      if (!e) return undefined;
      return Array.isArray(e[1]) ? e[1].join(',') : String(e[1]);
    };
    const app = (get('application') ?? '').trim();
    const data = get('data') ?? '';
    const appLower = app.toLowerCase();
    if (app && cfg.deniedApplications.some((a) => a.toLowerCase() === appLower)) {
      throw new JobError(`refused: Originate with Application ${app} is denied on this agent (it would run a shell command)`);
    }
    // Exec/ExecIf/Set/Gosub... can reach System() or ${SHELL()} through their Data
    if (SHELL_IN_DATA_RE.test(data)) {
      throw new JobError(`refused: Originate Data runs a shell command (System/TrySystem/SHELL) through ${app || 'the dialplan'}`);
    }
  }
  return out;
}

function responseToResult(resp: AmiResponse, asList: boolean): unknown {
  const head = messageToDict(resp.response);
  if (resp.output && resp.output.length) head.Output = resp.output;
  const isList = resp.events.length > 0 || resp.complete !== undefined || /^start$/i.test(resp.response.get('EventList') ?? '');
  if (!isList) return asList ? [head] : head;
  const out = [head, ...resp.events.map(messageToDict)];
  if (resp.complete) out.push(messageToDict(resp.complete));
  return out;
}

export const managerAction: JobFunction = async (args, kwargs, ctx) => {
  const asList = truthyKw(kwargs.as_list);
  const action = Array.isArray(args) && args.length === 1 ? args[0] : args;
  if (action && typeof action === 'object' && !Array.isArray(action)) {
    const a = (action as Record<string, unknown>).Action ?? (action as Record<string, unknown>).action;
    if (typeof a === 'string' && a.toLowerCase() === 'reloadevents') {
      await ctx.reloadEvents();
      return asList ? [{ Response: true }] : { Response: true };
    }
  }
  const fields = toActionFields(action, ctx.config);
  const kwTimeout = typeof kwargs.timeout === 'number' && kwargs.timeout > 0 ? kwargs.timeout * 1000 : undefined;
  const resp = await ctx.ami.action(fields, { timeoutMs: Math.min(kwTimeout ?? ctx.timeoutMs, ctx.timeoutMs) });
  return responseToResult(resp, asList);
};

export const sipPeers: JobFunction = async (_a, _k, ctx) => {
  const timeoutMs = Math.min(10_000, ctx.timeoutMs);
  const [pj, sip] = await Promise.allSettled([
    ctx.ami.action({ Action: 'PJSIPShowEndpoints' }, { timeoutMs }),
    ctx.ami.action({ Action: 'SIPpeers' }, { timeoutMs }),
  ]);
  const peers: Record<string, unknown>[] = [];
  let any = false;
  for (const r of [pj, sip]) {
    if (r.status !== 'fulfilled') continue;
    if (!/^success$/i.test(r.value.response.get('Response') ?? '')) continue;
    any = true;
    peers.push(...r.value.events.map(messageToDict));
  }
  if (!any) {
    const why = [pj, sip].map((r) => (r.status === 'rejected' ? String((r.reason as Error)?.message ?? r.reason) : r.value.response.get('Message') ?? 'error'));
    throw new JobError(`neither PJSIPShowEndpoints nor SIPpeers worked: ${why.join('; ')}`);
  }
  return peers;
};
