/** security.*: bans, unbans and access rules from Odoo. */
import type { BanRecord } from '../guard/types.js';
import { JobError, type JobFunction } from './job-function.js';
import { parseDuration } from '../common/duration.js';
import { isClientError } from '../common/errors.js';

function banToDict(b: BanRecord): Record<string, unknown> {
  const now = Date.now();
  return {
    address: b.target,
    family: b.family,
    is_network: b.isNetwork,
    timeout: b.expiresAt === null ? 0 : Math.max(0, Math.round((b.expiresAt - now) / 1000)),
    expires_at: b.expiresAt === null ? false : new Date(b.expiresAt).toISOString(),
    created_at: new Date(b.createdAt).toISOString(),
    packets: 0,
    bytes: 0,
    rule: b.rule,
    source: b.source,
    count: b.count,
    comment: b.reason,
  };
}

function targetsOf(args: unknown): string[] {
  const list = Array.isArray(args) ? (args as unknown[]).flat(2) : [args];
  const out: string[] = [];
  for (const x of list) {
    if (typeof x === 'string') out.push(...x.split(/[\s,]+/).filter(Boolean));
    else if (x && typeof x === 'object') {
      const o = x as Record<string, unknown>;
      const t = o.address ?? o.target ?? o.ip;
      if (typeof t === 'string') out.push(t);
    }
  }
  if (out.length === 0) throw new JobError('no address given');
  if (out.length > 10_000) throw new JobError('too many addresses in one job (max 10000)');
  return out;
}

function banErrorText(e: unknown): string {
  if (isClientError(e)) return e.message;
  return `ban failed: ${(e as Error).message}`;
}

/** Access rules as the old Odoo access_list rows or {allow: [], deny: []}. */
function parseAccessRules(args: unknown): { allow: string[]; deny: string[] } {
  const a = Array.isArray(args) && args.length === 1 && Array.isArray(args[0]) ? args[0] : args;
  if (a && typeof a === 'object' && !Array.isArray(a)) {
    const o = a as Record<string, unknown>;
    const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    return { allow: strs(o.allow), deny: strs(o.deny) };
  }
  if (!Array.isArray(a)) throw new JobError('update_access_rules expects a list of rules or {allow: [...], deny: [...]}');
  const allow: string[] = [];
  const deny: string[] = [];
  for (const r of a) {
    if (!r || typeof r !== 'object') continue;
    const o = r as Record<string, unknown>;
    if (o.is_enabled === false) continue;
    const addr = typeof o.address === 'string' ? o.address.trim() : '';
    if (!addr) continue;
    let target = addr;
    if (!addr.includes('/') && o.address_type === 'net' && typeof o.netmask === 'string' && o.netmask) {
      const nm = o.netmask.trim();
      target = /^\d+$/.test(nm) ? `${addr}/${nm}` : `${addr}/${maskToPrefix(nm)}`;
    }
    if (o.access_type === 'deny') deny.push(target);
    else if (o.access_type === 'allow') allow.push(target);
  }
  return { allow, deny };
}

function maskToPrefix(mask: string): number {
  const parts = mask.split('.').map(Number);
  if (parts.length !== 4 || parts.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new JobError(`bad netmask ${mask}`);
  const bits = parts
    .reduce((acc, x) => acc * 256 + x, 0)
    .toString(2)
    .padStart(32, '0');
  if (!/^1*0*$/.test(bits)) throw new JobError(`bad netmask ${mask}`);
  return bits.indexOf('0') === -1 ? 32 : bits.indexOf('0');
}

/** what Odoo sends for a ban without an end */
const PERMANENT = new Set<unknown>([undefined, null, false, 0, '0', '', 'permanent']);

export const ban: JobFunction = async (args, kwargs, ctx) => {
  const list = Array.isArray(args) ? args : [args];
  const results: Record<string, unknown>[] = [];
  for (const x of list) {
    let target: unknown = x;
    let duration: unknown = kwargs.duration ?? kwargs.timeout;
    let reason: unknown = kwargs.reason ?? kwargs.comment;
    if (x && typeof x === 'object') {
      const o = x as Record<string, unknown>;
      target = o.address ?? o.target ?? o.ip;
      duration = o.duration ?? o.timeout ?? duration;
      reason = o.reason ?? o.comment ?? reason;
    }
    if (typeof target !== 'string' || !target) {
      results.push({ address: target ?? null, error: 'no address given' });
      continue;
    }
    // seconds or a duration text ("1h"); absent, 0, false or "permanent": permanent
    const permanent = PERMANENT.has(duration);
    const durationSec = permanent ? null : parseDuration(duration);
    if (!permanent && durationSec === null) {
      results.push({ address: target, banned: false, error: `${JSON.stringify(duration).slice(0, 40)} is not a duration (seconds, or e.g. 10m, 1h, 7d)` });
      continue;
    }
    try {
      const rec = await ctx.bans.ban({ target, durationSec, reason: typeof reason === 'string' ? reason.slice(0, 200) : 'banned from Odoo', source: 'odoo' });
      results.push({ ...banToDict(rec), banned: true });
    } catch (e) {
      results.push({ address: target, banned: false, error: banErrorText(e) });
    }
  }
  return results;
};

export const unban: JobFunction = async (args, _k, ctx) => {
  const results: Record<string, unknown>[] = [];
  for (const t of targetsOf(args)) {
    try {
      results.push({ address: t, unbanned: await ctx.bans.unban(t) });
    } catch (e) {
      results.push({ address: t, unbanned: false, error: banErrorText(e) });
    }
  }
  return results;
};

export const getBanned: JobFunction = async (_a, _k, ctx) => ctx.bans.listBans().map(banToDict);

export const updateAccessRules: JobFunction = async (args, _k, ctx) => {
  const rules = parseAccessRules(args);
  await ctx.bans.replaceAccessRules(rules);
  return { allow: rules.allow.length, deny: rules.deny.length };
};
