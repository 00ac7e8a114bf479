/** asterisk.manager_action and sip.get_peers: AMI actions Odoo asks for, judged by the one action policy (src/ami/policy.ts). */
import type { AmiResponse } from '../ami/types.js';
import { ActionRefusedError } from '../ami/dialplan-policy.js';
import { callerAction } from '../ami/policy.js';
import { messageToDict } from '../ami/to-dict.js';
import { JobError, truthyKw, type JobFunction } from './job-function.js';

export { messageToDict };

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
  let fields;
  try {
    fields = callerAction(action, ctx.actionPolicy);
  } catch (e) {
    if (e instanceof ActionRefusedError) throw new JobError(`asterisk.manager_action ${e.message}`);
    throw e;
  }
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
    const why = [pj, sip].map((r) =>
      r.status === 'rejected' ? String((r.reason as Error)?.message ?? r.reason) : (r.value.response.get('Message') ?? 'error'),
    );
    throw new JobError(`neither PJSIPShowEndpoints nor SIPpeers worked: ${why.join('; ')}`);
  }
  return peers;
};
