/**
 * The nftables backend's watchdog check: is our table as setup() left it? Two cheap looks, never
 * a listing of the elements:
 * 1. the terse listing of the inet ruleset (NftRunner.listTerse, ~2 ms through the addon at 100k
 *    elements): our table, sets, chains and the rules of our chains, compared with the shape
 *    recorded right after setup() (handles left out: they change on every re-creation);
 * 2. one lookup of the canary element (canary.ts) in every ban set, through the addon's netlink
 *    single-element get, on the thread pool (~40 µs for all of them at 100k elements). Without
 *    the addon, `nft get element` is used instead; nft 1.0.6 fetches the whole set for it (~0.75 s at 100k), so it
 *    runs only every FALLBACK_EVERY-th check.
 */
import { CANARY4, CANARY4_KEY, CANARY6, CANARY6_KEY } from './canary.js';
import { loadNftAddon } from './nft-addon.js';
import type { NftRunner } from './nft-runner.js';
import type { Inspection } from './types.js';

/** the sets that hold a canary: the ban sets. Not the allow sets: an allow entry may cover any
 *  address (interval sets refuse an overlapping element), and they are re-written at every reload. */
export const BAN_SETS = ['ban4', 'ban6', 'net4', 'net6', 'pfx6'] as const;

/** without the addon, the expensive canary lookups run on every n-th check only */
export const FALLBACK_EVERY = 15;

type NativeLookup = (table: string, probes: Array<{ set: string; key: Buffer }>) => Promise<number[]>;

/** "set ban4" / "chain input" / "rules of chain input" → the object's JSON without its handle */
export type Shape = Map<string, string>;

const withoutHandle = (o: Record<string, unknown>): string => JSON.stringify({ ...o, handle: undefined });

/** Our table's objects in nft's JSON output of `-t list ruleset inet`; null when the table is absent. */
export function tableShape(jsonText: string, table: string): Shape | null {
  let items: unknown[] = [];
  for (const line of jsonText.split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    try {
      const doc = JSON.parse(line) as { nftables?: unknown[] };
      if (Array.isArray(doc.nftables)) items = items.concat(doc.nftables);
    } catch {
      /* not JSON */
    }
  }
  let present = false;
  const shape: Shape = new Map();
  const rules = new Map<string, unknown[]>();
  for (const item of items) {
    const [kind, o] = Object.entries(item as Record<string, Record<string, unknown>>)[0] ?? [];
    if (!o || o.family !== 'inet') continue;
    if (kind === 'table' && o.name === table) present = true;
    if (o.table !== table) continue;
    if (kind === 'set' || kind === 'chain') shape.set(`${kind} ${String(o.name)}`, withoutHandle(o));
    if (kind === 'rule') {
      const chain = String(o.chain);
      if (!rules.has(chain)) rules.set(chain, []);
      rules.get(chain)!.push(o.expr);
    }
  }
  if (!present) return null;
  for (const [chain, exprs] of rules) shape.set(`rules of chain ${chain}`, JSON.stringify(exprs));
  return shape;
}

/** What `actual` lacks or has changed against `expected` (objects someone else added are ignored,
 *  except rules in our chains, which change "rules of chain ..."). */
export function shapeProblems(expected: Shape, actual: Shape): string[] {
  const out: string[] = [];
  for (const [key, want] of expected) {
    const have = actual.get(key);
    if (have === undefined) out.push(`${key} missing`);
    else if (have !== want) out.push(`${key} changed`);
  }
  return out;
}

/** The watchdog check for one nftables table (see the file comment). */
export class NftWatch {
  private expected: Shape | null = null;
  private checks = 0;

  /** `lookup`: the addon's single-element lookup; null = the `nft get element` fallback */
  constructor(
    private readonly runner: NftRunner,
    private readonly table: string,
    private readonly lookup: NativeLookup | null = loadNftAddon()?.hasElements?.bind(null) ?? null,
  ) {}

  /** Records the table's shape as our own setup() just left it. */
  async recordShape(): Promise<void> {
    this.expected = tableShape(await this.runner.listTerse(), this.table);
  }

  async inspect(): Promise<Inspection> {
    const shape = tableShape(await this.runner.listTerse(), this.table);
    if (!shape) return { tablePresent: false, problems: [`table inet ${this.table} missing`] };
    const problems = this.expected ? shapeProblems(this.expected, shape) : [];
    const sets = BAN_SETS.filter((s) => shape.has(`set ${s}`));
    for (const set of await this.canaryless(sets)) problems.push(`elements of set ${set} (its canary element is gone: the set was flushed)`);
    return { tablePresent: true, problems };
  }

  /** the sets whose canary element is missing */
  private async canaryless(sets: readonly string[]): Promise<string[]> {
    const is6 = (s: string) => s.endsWith('6');
    if (this.lookup) {
      const rc = await this.lookup(
        this.table,
        sets.map((set) => ({ set, key: is6(set) ? CANARY6_KEY : CANARY4_KEY })),
      );
      const failed = rc.findIndex((r) => r < 0);
      if (failed >= 0) throw new Error(`nftables: looking up the canary element of set ${sets[failed]} failed (errno ${-rc[failed]!})`);
      return sets.filter((_, i) => rc[i] === 0);
    }
    if (this.checks++ % FALLBACK_EVERY !== 0) return [];
    const out: string[] = [];
    for (const set of sets) {
      try {
        await this.runner.run(`get element inet ${this.table} ${set} { ${is6(set) ? CANARY6 : CANARY4} }`);
      } catch (err) {
        if (!/No such file or directory/i.test((err as Error).message)) throw err;
        out.push(set);
      }
    }
    return out;
  }
}

/** `add element` lines that put the canary into every set (part of setup and of setAllow). */
export function canaryLines(table: string, sets: readonly string[] = BAN_SETS): string[] {
  return sets.map((s) => `add element inet ${table} ${s} { ${s.endsWith('6') ? CANARY6 : CANARY4} }`);
}
