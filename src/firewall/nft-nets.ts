/**
 * The CIDR sets (net4/net6, interval sets) of the nftables backend, planned as nft text: what
 * to delete and add so that no two elements overlap (interval sets refuse overlaps), and the
 * statements themselves. (Moved out of nftables.ts with the netlink path of the address sets.)
 */
import type { Logger } from 'pino';
import type { SetName } from './nft-json.js';
import { checkTarget, type CanonicalTarget } from './target.js';
import type { FirewallEntry, FirewallTarget } from './types.js';

/** Elements per `add element` statement (one transaction holds any number of statements). */
const CHUNK = 5000;

/** The prefix length of the pfx6 set: an IPv6 network of exactly this length is one hash-set key. */
export const PFX6_PREFIX = 64;

/** true for a target held by the pfx6 hash set (an IPv6 /64) rather than the net6 interval set */
export function isPfx6(c: CanonicalTarget): boolean {
  return c.isNetwork && c.family === 6 && c.prefix === PFX6_PREFIX;
}

export function banSet(t: FirewallTarget): SetName {
  return t.isNetwork ? (t.family === 4 ? 'net4' : 'net6') : t.family === 4 ? 'ban4' : 'ban6';
}

/** bigint value of a canonical address, for CIDR containment */
export function addrBig(c: CanonicalTarget): bigint {
  if (c.family === 4) return c.address.split('.').reduce((acc, p) => (acc << 8n) | BigInt(p), 0n);
  // expand via the canonical form
  const [l, r] = c.address.includes('::') ? c.address.split('::') : [c.address, undefined];
  const left = l ? l.split(':') : [];
  const right = r !== undefined && r !== '' ? r.split(':') : [];
  const groups = [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function maskBig(v: bigint, prefix: number, bits: number): bigint {
  const hostBits = BigInt(bits - prefix);
  return (v >> hostBits) << hostBits;
}

export interface NetElem {
  c: CanonicalTarget;
  v: bigint;
  expiresAt: number | null;
}

/** CIDR changes against the interval sets' current contents: deletes only what is there
 *  (delete of an absent element fails the transaction), and avoids overlaps (rejected by
 *  interval sets): a CIDR inside a present broader one is skipped, a broader CIDR replaces
 *  the narrower ones it covers. `timeout`: the ` timeout …` text of an end. */
export function planNetLines(
  current: FirewallEntry[],
  remove: CanonicalTarget[],
  add: { c: CanonicalTarget; expiresAt: number | null }[],
  t: string,
  timeout: (expiresAt: number) => string,
  logger?: Logger,
): string[] {
  const cur = new Map<string, NetElem>();
  for (const e of current) {
    const c = checkTarget(e);
    cur.set(c.target, { c, v: addrBig(c), expiresAt: e.expiresAt });
  }
  const del: Record<'net4' | 'net6', string[]> = { net4: [], net6: [] };
  const ins: Record<'net4' | 'net6', string[]> = { net4: [], net6: [] };
  for (const c of remove) {
    if (cur.delete(c.target)) del[banSet(c) as 'net4' | 'net6'].push(c.target);
  }
  const sorted = [...add].sort((a, b) => a.c.prefix - b.c.prefix);
  const planned = new Map<string, NetElem>();
  for (const { c, expiresAt } of sorted) {
    const set = banSet(c) as 'net4' | 'net6';
    const bits = c.family === 4 ? 32 : 128;
    const v = addrBig(c);
    if (planned.has(c.target)) continue;
    if (cur.has(c.target)) {
      del[set].push(c.target); // refresh its timeout
      cur.delete(c.target);
    } else {
      let covered: NetElem | undefined;
      for (const m of [cur, planned]) {
        for (const o of m.values()) {
          if (o.c.family === c.family && o.c.prefix < c.prefix && maskBig(v, o.c.prefix, bits) === o.v) covered = o;
        }
      }
      if (covered) {
        logger?.debug({ target: c.target, within: covered.c.target }, 'nftables: CIDR ban inside a present broader one; skipped');
        continue;
      }
      for (const [k, o] of cur) {
        if (o.c.family === c.family && o.c.prefix > c.prefix && maskBig(o.v, c.prefix, bits) === v) {
          del[set].push(k);
          cur.delete(k);
        }
      }
    }
    planned.set(c.target, { c, v, expiresAt });
    ins[set].push(expiresAt === null ? c.target : c.target + timeout(expiresAt));
  }
  const lines: string[] = [];
  for (const set of ['net4', 'net6'] as const) {
    pushElems(lines, 'delete', t, set, del[set]);
    pushElems(lines, 'add', t, set, ins[set]);
  }
  return lines;
}

export function pushElems(lines: string[], verb: 'add' | 'delete', table: string, set: SetName, elems: string[]): void {
  for (let i = 0; i < elems.length; i += CHUNK) {
    lines.push(`${verb} element inet ${table} ${set} { ${elems.slice(i, i + CHUNK).join(', ')} }`);
  }
}
