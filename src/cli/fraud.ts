/** `pbx-guardian fraud`: the fraud guard's view, as text. */
import type { FraudSnapshot } from '../fraud/index.js';

const time = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);

/** Only `written` stops calls in the dialplan: the other states say so plainly. */
function astdbText(a: FraudSnapshot['blocked'][number]['astdb'] | undefined): string {
  if (!a) return 'AstDB: unknown';
  if (a.state === 'written') return 'AstDB: written';
  if (a.state === 'pending')
    return `AstDB: PENDING since ${time(a.since)} (DBPut not confirmed yet: the dialplan may still let calls through; fraud.hangupBlocked hangs them up)`;
  return `AstDB: FAILED after ${a.attempts} attempts (${a.error ?? '?'}): the dialplan still lets calls through (fraud.hangupBlocked hangs them up); DBPut again at the next AMI login`;
}

export function formatFraud(s: FraudSnapshot): string {
  if (!s.enabled) return 'the fraud guard is off (fraud.enabled: false)';
  const out: string[] = [];
  out.push(
    `Live outbound calls: ${s.live.reduce((n, a) => n + a.calls, 0)} (tracked calls ${s.tracked.calls} of ${s.tracked.maxCalls}; expired ${s.tracked.expired}, evicted ${s.tracked.evicted})`,
  );
  for (const a of s.live) out.push(`  ${a.account}: ${a.calls} (${a.numbers.slice(0, 10).join(', ')}${a.numbers.length > 10 ? ', ...' : ''})`);
  const notWritten = s.blocked.filter((b) => b.astdb?.state !== 'written').length;
  out.push(`Blocked accounts: ${s.blocked.length}${notWritten > 0 ? ` (${notWritten} NOT yet blocked by the dialplan: AstDB key not written)` : ''}`);
  for (const b of s.blocked)
    out.push(`  ${b.account}  ${b.mode}  since ${time(b.createdAt)}  ${astdbText(b.astdb)}  ${b.policy}${b.address ? ` from ${b.address}` : ''}: ${b.reason}`);
  out.push(`Recent decisions: ${s.decisions.length}`);
  for (const d of s.decisions.slice(-20))
    out.push(`  ${time(d.at)}  ${d.account}  ${d.policy}  ${d.actions.length ? d.actions.join(',') : 'alert'}${d.repeat ? ' (repeat)' : ''}: ${d.reason}`);
  if (s.blocked.length > 0) out.push('Unblock with: pbx-guardian unblock ACCOUNT');
  return out.join('\n');
}
