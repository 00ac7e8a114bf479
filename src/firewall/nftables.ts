import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { FirewallConfig } from './enforcer.js';
import { createAddonRunner } from './nft-addon.js';
import { findNft, NftCommandRunner } from './nft-command.js';
import { parseSetElems, toEntries } from './nft-json.js';
import { eachElemSlice } from './nft-elems.js';
import type { ElemOp, NativeElements, NftRunner } from './nft-runner.js';
import { elemError, elemOp, isUnsupported, recordsToEntries } from './nft-netlink.js';
import { addrBig, banSet, isPfx6, maskBig, PFX6_PREFIX, planNetLines, pushElems, type NetElem } from './nft-nets.js';
import { canaryLines, NftWatch } from './nft-watch.js';
import { isCanary } from './canary.js';
import { checkTarget, type CanonicalTarget } from './target.js';
import type { FirewallBackend, FirewallBatch, FirewallEntry, FirewallTarget, Inspection } from './types.js';

export interface NftablesOptions {
  table: string;
  verdict: 'drop' | 'reject';
  ports: number[];
  /** size of the ban4/ban6 hash sets (a transaction that would overflow is rejected whole) */
  size: number;
  /** path of the template; default rules/nftables.nft of the package */
  templatePath?: string;
  /** longest element timeout sent (default NFT_MAX_TIMEOUT_MS, the kernel's limit) */
  maxTimeoutMs?: number;
  now?: () => number;
}

/**
 * The longest set element timeout the kernel accepts: nf_msecs_to_jiffies64() in
 * net/netfilter/nf_tables_api.c refuses `ms >= U64_MAX / NSEC_PER_MSEC` with ERANGE ("Numerical
 * result out of range"), i.e. anything over ~584 years. Measured on 6.18: 213503d23h34m33s708ms
 * goes in, one millisecond more is refused, and one refused element fails its whole transaction.
 */
export const NFT_MAX_TIMEOUT_MS = 18_446_744_073_708;

/** the most elements one netlink listing of a set may return (the addon's own bound) */
const LIST_MAX = 16_777_216;

/** An address set's part of a batch: what goes (deleted, absent-safe) and what is (re-)added. */
/** the hash sets: one key per element (pfx6: an IPv6 /64's network address) */
type HashSet = 'ban4' | 'ban6' | 'pfx6';
const HASH_SETS = ['ban4', 'ban6', 'pfx6'] as const;
const hashSet = (c: CanonicalTarget): HashSet => (isPfx6(c) ? 'pfx6' : (banSet(c) as 'ban4' | 'ban6'));

/** a pfx6 element as listed (its /64's network address) as the ban's network target */
function pfx6Entry(e: FirewallEntry): FirewallEntry {
  return { ...e, target: `${e.target}/${PFX6_PREFIX}`, isNetwork: true };
}

interface SinglePlan {
  gone: Map<string, CanonicalTarget>;
  timed: { c: CanonicalTarget; timeoutMs: number }[];
}

const here = dirname(fileURLToPath(import.meta.url));

function templateFile(): string {
  for (const p of [resolve(here, '../../../rules/nftables.nft'), resolve(here, '../../rules/nftables.nft')]) {
    try {
      readFileSync(p);
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error('rules/nftables.nft (the nftables table template) not found in the package');
}

/** nft time string: composite units, since one unit over 2^32 ("2592000000ms") is rejected. */
export function nftTime(ms: number): string {
  let rest = Math.max(1, Math.ceil(ms));
  const d = Math.floor(rest / 86400000);
  rest -= d * 86400000;
  const h = Math.floor(rest / 3600000);
  rest -= h * 3600000;
  const m = Math.floor(rest / 60000);
  rest -= m * 60000;
  const s = Math.floor(rest / 1000);
  rest -= s * 1000;
  let out = '';
  if (d) out += `${d}d`;
  if (h) out += `${h}h`;
  if (m) out += `${m}m`;
  if (s) out += `${s}s`;
  if (rest) out += `${rest}ms`;
  return out;
}

export type { SetName } from './nft-json.js';

/**
 * nftables backend: one table of our own (rules/nftables.nft), hash sets with per-element
 * timeouts for single addresses, interval sets with timeouts for CIDRs, allow sets accepted
 * first. Every apply() is one nft transaction.
 */
export class NftablesBackend implements FirewallBackend {
  readonly name = 'nftables';
  get path(): string {
    return `nftables-${this.runner.kind}`;
  }
  readonly maxTimeoutMs: number;
  private readonly now: () => number;
  /** does `add element` of a present element refresh its timeout (kernel >= 6.10)? */
  private addRefreshesTimeout = false;
  private readonly watch: NftWatch;
  /** the address sets' elements over raw netlink; null: libnftables text (old addon, nft command) */
  private netlink: NativeElements | null;

  constructor(
    readonly runner: NftRunner,
    private readonly opts: NftablesOptions,
    private readonly logger?: Logger,
  ) {
    if (!/^[A-Za-z0-9_]{1,32}$/.test(opts.table)) throw new Error(`invalid nftables table name ${JSON.stringify(opts.table)}`);
    if (opts.verdict !== 'drop' && opts.verdict !== 'reject') throw new Error(`invalid verdict ${String(opts.verdict)}`);
    for (const p of opts.ports) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`invalid port ${String(p)}`);
    if (!Number.isInteger(opts.size) || opts.size < 1) throw new Error(`invalid set size ${String(opts.size)}`);
    this.now = opts.now ?? Date.now;
    this.maxTimeoutMs = opts.maxTimeoutMs ?? NFT_MAX_TIMEOUT_MS;
    this.watch = new NftWatch(runner, opts.table);
    this.netlink = runner.elements ?? null;
  }

  /** ` timeout <rest>` of an element that ends at `expiresAt`, capped at the kernel's limit
   *  (the enforcer's reconcile re-asserts a longer ban before the kernel drops it). */
  private timeout(expiresAt: number, now: number): string {
    return ` timeout ${nftTime(Math.min(expiresAt - now, this.maxTimeoutMs))}`;
  }

  get table(): string {
    return this.opts.table;
  }

  /** The table definition as loaded by setup(). */
  renderTemplate(): string {
    const text = readFileSync(this.opts.templatePath ?? templateFile(), 'utf8');
    const ports = [...new Set(this.opts.ports)].sort((a, b) => a - b);
    const scope = ports.length ? `meta l4proto { tcp, udp } th dport { ${ports.join(', ')} }` : '';
    return text
      .replaceAll('@TABLE@', this.opts.table)
      .replaceAll('@SIZE@', String(this.opts.size))
      .replaceAll('@SCOPE@', scope)
      .replaceAll('@VERDICT@', this.opts.verdict);
  }

  async setup(): Promise<void> {
    await this.runner.run([this.renderTemplate(), ...canaryLines(this.opts.table)].join('\n') + '\n');
    // Probe: does re-adding a present element refresh its timeout on this kernel?
    const t = this.opts.table;
    try {
      await this.runner.run(
        [
          `add set inet ${t} probe { type ipv4_addr; flags timeout; }`,
          `add element inet ${t} probe { 192.0.2.255 timeout 100s }`,
          `add element inet ${t} probe { 192.0.2.255 timeout 300s }`,
        ].join('\n'),
      );
      const out = await this.runner.run(`list set inet ${t} probe`);
      const elems = parseSetElems(out, 'probe');
      this.addRefreshesTimeout = elems.length === 1 && elems[0]!.timeout !== null && elems[0]!.timeout > 200;
    } finally {
      await this.runner.run(`delete set inet ${t} probe`).catch(() => undefined);
    }
    await this.movePfx6();
    await this.watch.recordShape();
    this.logger?.debug({ addRefreshesTimeout: this.addRefreshesTimeout, runner: this.runner.kind }, 'nftables: table ready');
  }

  /** /64 bans that a version before pfx6 left in net6 go to pfx6 (once: new ones never land in net6). */
  private async movePfx6(): Promise<void> {
    const t = this.opts.table;
    const now = this.now();
    const moved = (await this.listNets()).map((e) => ({ c: checkTarget(e), end: e.expiresAt })).filter(({ c }) => isPfx6(c));
    if (!moved.length) return;
    const lines: string[] = [];
    pushElems(
      lines,
      'delete',
      t,
      'net6',
      moved.map(({ c }) => c.target),
    );
    const live = moved.filter(({ end }) => end === null || end > now);
    pushElems(
      lines,
      'add',
      t,
      'pfx6',
      live.map(({ c, end }) => (end === null ? c.address : `${c.address}${this.timeout(end, now)}`)),
    );
    await this.runner.run(lines.join('\n') + '\n');
    this.logger?.info({ moved: moved.length }, `nftables: ${moved.length} IPv6 /64 bans moved from set net6 to pfx6`);
  }

  async apply(batch: FirewallBatch): Promise<void> {
    const now = this.now();
    const t = this.opts.table;
    const lines: string[] = [];
    const single: Record<HashSet, SinglePlan> = {
      ban4: { gone: new Map(), timed: [] },
      ban6: { gone: new Map(), timed: [] },
      pfx6: { gone: new Map(), timed: [] },
    };
    const netRemove: CanonicalTarget[] = [];
    const netAdd: { c: CanonicalTarget; expiresAt: number | null }[] = [];
    const adding = new Set<string>();
    const addList: { c: CanonicalTarget; expiresAt: number | null }[] = [];
    for (const e of batch.add) {
      const c = checkTarget(e);
      if (e.expiresAt !== null && e.expiresAt <= now) continue; // already over
      adding.add(c.target);
      addList.push({ c, expiresAt: e.expiresAt });
    }
    for (const r of batch.remove) {
      const c = checkTarget(r);
      if (adding.has(c.target)) continue; // the add in the same batch wins (it refreshes)
      if (c.isNetwork && !isPfx6(c)) netRemove.push(c);
      else single[hashSet(c)].gone.set(c.target, c);
    }
    for (const { c, expiresAt } of addList) {
      if (c.isNetwork && !isPfx6(c)) {
        netAdd.push({ c, expiresAt });
        continue;
      }
      const s = single[hashSet(c)];
      // a present element's timeout is refreshed by re-adding it only on kernel >= 6.10
      if (expiresAt === null || !this.addRefreshesTimeout) s.gone.set(c.target, c);
      s.timed.push({ c, timeoutMs: expiresAt === null ? 0 : Math.max(1, Math.ceil(Math.min(expiresAt - now, this.maxTimeoutMs))) });
    }
    // the address sets alone (the common case) go over netlink; a batch with CIDRs stays one nft
    // transaction of text, all of it
    if (this.netlink && !netRemove.length && !netAdd.length && (await this.applyNetlink(single))) return;
    for (const set of HASH_SETS) {
      const s = single[set];
      // absent-safe delete (nft 1.0.6 has no `destroy`): add, then delete, in one transaction
      const gone = [...s.gone.values()].map((c) => c.address);
      pushElems(lines, 'add', t, set, gone);
      pushElems(lines, 'delete', t, set, gone);
      pushElems(
        lines,
        'add',
        t,
        set,
        s.timed.map(({ c, timeoutMs }) => (timeoutMs ? `${c.address} timeout ${nftTime(timeoutMs)}` : c.address)),
      );
    }
    if (netRemove.length || netAdd.length) lines.push(...(await this.planNets(netRemove, netAdd, now)));
    if (lines.length === 0) return;
    await this.runner.run(lines.join('\n') + '\n');
  }

  /** The address sets' changes in one netlink batch, in the text path's order (add and delete
   *  what goes, absent-safe; add what stays). false: netlink cannot be used here (text instead). */
  private async applyNetlink(single: Record<HashSet, SinglePlan>): Promise<boolean> {
    const ops: ElemOp[] = [];
    for (const set of HASH_SETS) {
      const keyLen = set === 'ban4' ? 4 : 16;
      const gone = [...single[set].gone.values()].map((c) => ({ c, timeoutMs: 0 }));
      if (gone.length) ops.push(elemOp(false, set, keyLen, gone, false), elemOp(true, set, keyLen, gone, false));
      if (single[set].timed.length) ops.push(elemOp(false, set, keyLen, single[set].timed, true));
    }
    if (!ops.length) return true;
    try {
      await this.netlink!.applyElements(this.opts.table, ops);
      return true;
    } catch (err) {
      if (!this.netlinkUnsupported(err)) throw elemError(err);
      return false;
    }
  }

  /** An EOPNOTSUPP-like answer: the text path from now on (logged once). */
  private netlinkUnsupported(err: unknown): boolean {
    if (!isUnsupported(err)) return false;
    this.netlink = null;
    this.logger?.warn({ err }, 'nftables: set elements over netlink not supported here; libnftables text is used instead');
    return true;
  }

  private async planNets(remove: CanonicalTarget[], add: { c: CanonicalTarget; expiresAt: number | null }[], now: number): Promise<string[]> {
    return planNetLines(await this.listNets(), remove, add, this.opts.table, (expiresAt) => this.timeout(expiresAt, now), this.logger);
  }

  private async listNets(): Promise<FirewallEntry[]> {
    const t = this.opts.table;
    const now = this.now();
    const out: FirewallEntry[] = [];
    for (const set of ['net4', 'net6'] as const) {
      const text = await this.runner.run(`list set inet ${t} ${set}`);
      out.push(...toEntries(parseSetElems(text, set), set, now, this.logger).filter((e) => !isCanary(e.target)));
    }
    return out;
  }

  async list(): Promise<FirewallEntry[]> {
    const out: FirewallEntry[] = [];
    for (const set of ['ban4', 'ban6', 'pfx6', 'net4', 'net6'] as const) {
      // expires are as of the kernel's dump, which starts with the run (a 1M set takes tens of
      // seconds to list): `now` from before it; the diff allows for how long the listing took
      const now = this.now();
      if (set !== 'net4' && set !== 'net6' && (await this.listNetlink(set, now, out))) continue;
      const text = await this.runner.run(`list set inet ${this.opts.table} ${set}`);
      // parsed in slices, the event loop running between them (the AMI socket is read meanwhile)
      await eachElemSlice(text, set, (elems) => {
        for (const e of toEntries(elems, set, now, this.logger)) if (!isCanary(e.target)) out.push(set === 'pfx6' ? pfx6Entry(e) : e);
      });
    }
    return out;
  }

  /** An address set's elements from a netlink dump (records, no JSON); false: use the text path. */
  private async listNetlink(set: HashSet, now: number, out: FirewallEntry[]): Promise<boolean> {
    if (!this.netlink) return false;
    let records: Buffer;
    try {
      records = await this.netlink.listElements(this.opts.table, set, set === 'ban4' ? 4 : 16, Math.min(LIST_MAX, Math.max(2 * this.opts.size, 65_536)));
    } catch (err) {
      if (!this.netlinkUnsupported(err)) throw elemError(err);
      return false;
    }
    await recordsToEntries(records, set === 'ban4' ? 4 : 6, now, out, set === 'pfx6' ? PFX6_PREFIX : undefined);
    return true;
  }

  /** The allow sets' elements (for tests and the CLI). */
  async listAllow(): Promise<string[]> {
    const text = await this.runner.run(`list table inet ${this.opts.table}`);
    const out: string[] = [];
    for (const set of ['allow4', 'allow6'] as const) for (const e of toEntries(parseSetElems(text, set), set, 0)) if (!isCanary(e.target)) out.push(e.target);
    return out;
  }

  async setAllow(targets: FirewallTarget[]): Promise<void> {
    const t = this.opts.table;
    const byFam: Record<4 | 6, NetElem[]> = { 4: [], 6: [] };
    const seen = new Set<string>();
    for (const x of targets) {
      const c = checkTarget(x);
      if (seen.has(c.target)) continue;
      seen.add(c.target);
      byFam[c.family].push({ c, v: addrBig(c), expiresAt: null });
    }
    const lines = [`flush set inet ${t} allow4`, `flush set inet ${t} allow6`];
    for (const fam of [4, 6] as const) {
      const bits = fam === 4 ? 32 : 128;
      // drop entries covered by a broader one (interval sets reject overlaps)
      const list = byFam[fam].sort((a, b) => a.c.prefix - b.c.prefix);
      const kept: NetElem[] = [];
      for (const e of list) {
        if (kept.some((k) => k.c.prefix <= e.c.prefix && maskBig(e.v, k.c.prefix, bits) === k.v)) continue;
        kept.push(e);
      }
      pushElems(
        lines,
        'add',
        t,
        fam === 4 ? 'allow4' : 'allow6',
        kept.map((k) => k.c.target),
      );
    }
    await this.runner.run(lines.join('\n') + '\n');
  }

  async flush(): Promise<void> {
    const t = this.opts.table;
    // absent-safe: add (no-op when present) then delete
    await this.runner.run(`add table inet ${t}\ndelete table inet ${t}\n`);
  }

  async close(): Promise<void> {
    await this.runner.close?.();
  }

  /** The watchdog's check (nft-watch.ts): the terse shape of our table and the canary elements. */
  inspect(): Promise<Inspection> {
    return this.watch.inspect();
  }
}

/**
 * Builds the nftables backend for the configured mode: 'addon' (libnftables in process), 'command'
 * (the nft binary), 'auto' (addon when built, else the command). Checks that it can work (creates
 * the table) and throws a clear error otherwise.
 */
export async function createNftablesBackend(config: FirewallConfig, logger: Logger): Promise<NftablesBackend> {
  let runner: NftRunner | null = null;
  if (config.nftMode === 'addon' || config.nftMode === 'auto') {
    runner = createAddonRunner(logger);
    if (!runner && config.nftMode === 'addon') {
      throw new Error(
        'nftables addon (build/Release/nftables.node) is not available: install libnftables-dev and rebuild (npm rebuild pbx-guardian), or set firewall.nftMode: command',
      );
    }
  }
  if (!runner) {
    const nft = findNft();
    if (!nft) throw new Error('nft not found in /usr/sbin or /sbin: install the nftables package');
    runner = new NftCommandRunner(nft);
  }
  const backend = new NftablesBackend(
    runner,
    {
      table: config.table,
      verdict: config.verdict,
      ports: config.ports,
      size: config.ipsetMaxElem,
    },
    logger,
  );
  try {
    await backend.setup();
  } catch (err) {
    await runner.close?.().catch(() => undefined);
    throw err;
  }
  logger.info(
    { backend: 'nftables', runner: runner.kind, table: `inet ${config.table}` },
    `firewall backend: nftables via ${runner.kind === 'addon' ? 'libnftables (in-process addon)' : 'the nft command'}`,
  );
  return backend;
}
