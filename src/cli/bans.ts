/** `ban`, `unban`, `banned`: several addresses at once, one line of result each. */
import { callDaemon } from '../admin/client.js';
import { formatDuration } from '../common/duration.js';
import type { BanRecord } from '../guard/index.js';
import { exitCodeOf, EXIT } from './exit.js';
import { colours, printable, table, type OutputFormat } from './table.js';

/** at most this many addresses in one ban / unban command (each is one request) */
export const MAX_TARGETS = 256;

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export function banRows(bans: Array<BanRecord & { how?: string }>, now = Date.now()): string[][] {
  return bans.map((b) => [
    b.target,
    b.expiresAt === null ? 'permanent' : `${formatDuration(Math.max(0, Math.round((b.expiresAt - now) / 1000)))}`,
    b.rule,
    b.source,
    ...(b.how !== undefined ? [b.how] : []),
    b.reason,
  ]);
}

/** The banned list as a table (header, aligned columns). */
export function formatBans(bans: Array<BanRecord & { how?: string }>, now = Date.now(), bold?: (s: string) => string): string {
  if (bans.length === 0) return 'no active bans';
  const how = bans.some((b) => b.how !== undefined);
  return table(['TARGET', 'LEFT', 'RULE', 'SOURCE', ...(how ? ['MATCH'] : []), 'REASON'], banRows(bans, now), bold);
}

/** `banned [ADDRESS]`: every ban, or those that drop ADDRESS (itself, its IPv6 prefix, a wider network). */
export async function bannedCommand(socket: string, address: string | undefined, fmt: OutputFormat, io: Io): Promise<number> {
  const path = address === undefined ? '/bans' : `/bans?address=${encodeURIComponent(address)}`;
  const { bans } = await callDaemon<{ bans: Array<BanRecord & { how?: string }> }>(socket, 'GET', path);
  if (fmt === 'json') io.out(JSON.stringify(bans, null, 2));
  else if (address !== undefined && bans.length === 0) io.out(`${printable(address)} is not banned`);
  else io.out(formatBans(bans, Date.now(), colours(process.stdout).bold));
  return address !== undefined && bans.length === 0 ? EXIT.refused : EXIT.ok;
}

interface Result {
  target: string;
  ok: boolean;
  text: string;
  code: number;
  data?: unknown;
}

/** Runs `one` for every target in order; one line each; the exit status of the first failure. */
async function each(targets: string[], fmt: OutputFormat, io: Io, one: (t: string) => Promise<Omit<Result, 'target' | 'code'> & { code?: number }>) {
  const results: Result[] = [];
  for (const t of targets) {
    try {
      const r = await one(t);
      results.push({ target: t, code: r.code ?? EXIT.ok, ...r });
    } catch (err) {
      results.push({ target: t, ok: false, text: `${printable(t)}: ${printable((err as Error).message)}`, code: exitCodeOf(err) });
      // the daemon is gone or refuses every request: the others would fail the same way
      if (exitCodeOf(err) === EXIT.unreachable) break;
    }
  }
  if (fmt === 'json')
    io.out(
      JSON.stringify(
        results.map(({ target, ok, text, data }) => ({ target, ok, message: text, ...(data === undefined ? {} : { result: data }) })),
        null,
        2,
      ),
    );
  else for (const r of results) (r.ok && r.code === EXIT.ok ? io.out : io.err)(r.text);
  return results.find((r) => r.code !== EXIT.ok)?.code ?? EXIT.ok;
}

export function checkTargets(command: string, targets: string[]): string | null {
  if (targets.length === 0) return `${command} takes one or more addresses or CIDRs: pbx-guardian ${command} 203.0.113.7 198.51.100.0/24`;
  if (targets.length > MAX_TARGETS) return `${command}: at most ${MAX_TARGETS} addresses at once (${targets.length} given)`;
  return null;
}

export function banCommand(socket: string, targets: string[], opts: { for?: string; reason?: string }, fmt: OutputFormat, io: Io): Promise<number> {
  return each(targets, fmt, io, async (target) => {
    const { ban } = await callDaemon<{ ban: BanRecord }>(socket, 'POST', '/bans', {
      target,
      ...(opts.for !== undefined ? { duration: opts.for } : {}),
      ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
    });
    const how = ban.expiresAt === null ? 'permanently' : `for ${formatDuration(Math.round((ban.expiresAt - ban.createdAt) / 1000))}`;
    return { ok: true, text: `banned ${ban.target} ${how}`, data: ban };
  });
}

interface UnbanAnswer {
  target: string;
  removed: BanRecord[];
  stillCovered: BanRecord[];
}

export function unbanCommand(socket: string, targets: string[], covering: boolean, fmt: OutputFormat, io: Io): Promise<number> {
  return each(targets, fmt, io, async (target) => {
    const r = await callDaemon<Partial<UnbanAnswer> & { unbanned: number }>(
      socket,
      'DELETE',
      `/bans/${encodeURIComponent(target)}${covering ? '?covering=1' : ''}`,
    );
    if (!r.removed) return { ok: true, text: `unbanned ${printable(target)}`, data: r };
    const asked = r.target ?? target;
    const parts = r.removed.map((b) => (b.target === asked ? `unbanned ${b.target}` : `unbanned ${b.target} (it covered ${asked})`));
    const still = r.stillCovered ?? [];
    if (still.length === 0) return { ok: true, text: parts.join('; '), data: r };
    const by = still.map((b) => b.target).join(', ');
    return {
      ok: false,
      code: EXIT.refused,
      text: `${parts.join('; ')}; ${asked} is still covered by the ban of ${by}: unban ${still[0]!.target}, or ask again with --covering`,
      data: r,
    };
  });
}
