/** Reading nft's JSON output (`nft -j list ...`): set elements, as firewall entries. */
import type { Logger } from 'pino';
import { canonicalTarget } from './target.js';
import type { FirewallEntry } from './types.js';

/** The sets of our nftables table. */
export type SetName = 'ban4' | 'ban6' | 'net4' | 'net6' | 'pfx6' | 'allow4' | 'allow6';

export interface RawElem {
  val: string;
  timeout: number | null;
  expires: number | null;
}

/** Elements of one set from nft's JSON output (`list table` or `list set`). */
export function parseSetElems(jsonText: string, setName: string): RawElem[] {
  return parseSets(jsonText).get(setName) ?? [];
}

/** Elements of every set in nft's JSON output, by set name. */
export function parseSets(jsonText: string): Map<string, RawElem[]> {
  const bySet = new Map<string, RawElem[]>();
  for (const doc of splitJsonDocs(jsonText)) {
    const items = (doc as { nftables?: unknown[] }).nftables;
    if (!Array.isArray(items)) continue;
    for (const item of items) {
      const set = (item as { set?: { name?: string; elem?: unknown[] } }).set;
      if (!set || typeof set.name !== 'string' || !Array.isArray(set.elem)) continue;
      let out = bySet.get(set.name);
      if (!out) bySet.set(set.name, (out = []));
      for (const raw of set.elem) {
        const e = elemOf(raw);
        if (e) out.push(e);
      }
    }
  }
  return bySet;
}

/** One item of a set's "elem" array: a value, or {"elem": {val, timeout, expires}}. */
export function elemOf(raw: unknown): RawElem | null {
  let val: unknown = raw;
  let timeout: number | null = null;
  let expires: number | null = null;
  if (raw && typeof raw === 'object' && 'elem' in raw) {
    const e = (raw as { elem: { val: unknown; timeout?: number; expires?: number } }).elem;
    val = e.val;
    timeout = typeof e.timeout === 'number' ? e.timeout : null;
    expires = typeof e.expires === 'number' ? e.expires : null;
  }
  let text: string | null = null;
  if (typeof val === 'string') text = val;
  else if (val && typeof val === 'object' && 'prefix' in val) {
    const p = (val as { prefix: { addr: string; len: number } }).prefix;
    text = `${p.addr}/${p.len}`;
  }
  return text === null ? null : { val: text, timeout, expires };
}

function splitJsonDocs(text: string): unknown[] {
  const docs: unknown[] = [];
  for (const line of text.split('\n')) {
    const s = line.trim();
    if (!s.startsWith('{')) continue;
    try {
      docs.push(JSON.parse(s));
    } catch {
      /* not JSON */
    }
  }
  return docs;
}

export function toEntries(elems: RawElem[], set: SetName, now: number, logger?: Logger): FirewallEntry[] {
  const out: FirewallEntry[] = [];
  for (const e of elems) {
    const c = canonicalTarget(e.val);
    if (!c) {
      logger?.warn({ set, val: e.val.slice(0, 80) }, 'nftables: unexpected element in our set; ignored');
      continue;
    }
    // a timed element's expires is whole seconds (rounded down)
    const expiresAt = e.timeout !== null && e.expires !== null ? now + e.expires * 1000 : null;
    out.push({ target: c.target, family: c.family, isNetwork: c.isNetwork, expiresAt });
  }
  return out;
}
