/** `pbx-guardian why ADDRESS`: everything the daemon knows about one address. */
import { callDaemon } from '../admin/client.js';
import { formatDuration } from '../common/duration.js';
import { describeBan, type AddressReport, type WindowCount } from '../guard/index.js';
import type { HistoryRow } from '../store/index.js';
import { printable, table } from './table.js';

export type WhyAnswer = AddressReport & { history: HistoryRow[] | null };

export function whyOf(socket: string, address: string): Promise<WhyAnswer> {
  return callDaemon<WhyAnswer>(socket, 'GET', `/why/${encodeURIComponent(address)}`);
}

const when = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
const windowText = (w: WindowCount) => `${w.hits} of ${w.count} within ${formatDuration(w.withinMs / 1000)}`;

const NEVER: Record<NonNullable<AddressReport['neverBanned']>, string> = {
  'link-local': 'a link-local address: never counted nor banned',
  reserved: 'in a reserved range (unspecified, multicast, broadcast): never counted nor banned',
  'own-address': 'an address of this host: never counted nor banned',
};

export function formatHistory(rows: HistoryRow[]): string {
  if (rows.length === 0) return 'no bans in the history';
  return table(
    ['CREATED', 'TARGET', 'DURATION', 'RULE', 'SOURCE', 'ENDED', 'REASON'],
    rows.map((r) => [
      when(r.createdAt),
      r.target,
      r.expiresAt === null ? 'permanent' : formatDuration(Math.round((r.expiresAt - r.createdAt) / 1000)),
      r.rule,
      r.source,
      r.endedAt === null ? 'in force' : `${when(r.endedAt)} ${r.endReason ?? ''}`.trim(),
      r.reason,
    ]),
  );
}

export function formatWhy(r: WhyAnswer, now = Date.now()): string {
  const out: string[] = [r.address];
  const allowed = r.allowed.map((a) => `${a.entry} (${printable(a.from)})`);
  out.push(`  allowed:  ${allowed.length ? `yes, by ${allowed.join(', ')}: never counted nor banned` : 'no'}`);
  if (r.neverBanned) out.push(`  scope:    ${NEVER[r.neverBanned]}`);
  if (r.bans.length === 0) out.push('  banned:   no');
  for (const [i, m] of r.bans.entries()) {
    const how = m.how === 'itself' ? 'its own ban' : m.how === 'key' ? `the prefix it is counted by` : 'a covering ban';
    const what =
      m.kind === 'local'
        ? `local: ${describeBan(m.ban, now)}, ${how}: ${printable(m.ban.reason)}`
        : `${m.kind} (set ${printable(m.set)}): ${m.target} (${m.expiresAt === null ? 'no end' : `${formatDuration(Math.max(0, Math.round((m.expiresAt - now) / 1000)))} left`}), ${how.replace('ban', 'decision')}`;
    out.push(`  ${i === 0 ? 'banned:  ' : '         '} yes, ${what}`);
  }
  const under = r.key === r.address ? '' : ` (counted under ${r.key})`;
  if (r.failures.length === 0) out.push(`  failures: none counted now${under}`);
  else {
    out.push(`  failures now${under}:`);
    for (const f of r.failures) out.push(`    ${f.rule.padEnd(16)} ${f.windows.map(windowText).join(', ')}`);
  }
  if (r.next === null) out.push(`  next failure: not counted (${r.allowed.length || r.neverBanned ? 'never banned' : 'already banned'})`);
  else {
    const shown = r.next.filter((n) => n.outcome === 'ban' || r.failures.some((f) => f.rule === n.rule));
    out.push('  next failure:');
    for (const n of shown) {
      const what =
        n.outcome === 'ban' && n.ban
          ? `bans ${n.ban.target} ${n.ban.durationSec === null ? 'permanently' : `for ${formatDuration(n.ban.durationSec)}`} (rule ${n.ban.rule}: ${printable(n.ban.reason)})`
          : `counted: ${windowText(n.window)}, no ban yet`;
      out.push(`    ${n.rule.padEnd(16)} ${what}`);
    }
    if (shown.length < r.next.length) out.push(`    ${shown.length ? 'other rules' : 'any rule'}: counted, no window crossed by one failure`);
  }
  if (r.history === null) out.push('  history:  not kept by this daemon');
  else if (r.history.length === 0) out.push('  history:  no bans');
  else {
    out.push(`  history (newest first, ${r.history.length}):`);
    out.push(
      formatHistory(r.history)
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n'),
    );
  }
  return out.join('\n');
}
