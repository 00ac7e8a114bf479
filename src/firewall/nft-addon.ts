import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { nftError, type NativeElements, type NftRunner } from './nft-runner.js';
import { abiMismatch, describeAbiMismatch } from '../common/native-abi.js';

/** What build/Release/nftables.node exports (src/native/nftables.c). */
interface NativeNft extends Partial<NativeElements> {
  /** a new libnftables context (JSON output, buffered output and error; terse: no set elements) */
  createContext(terse?: boolean): object;
  /** runs a command buffer off the main thread; runs on one context are serialised */
  run(ctx: object, script: string): Promise<{ rc: number; output: string; error: string }>;
  /** frees the context (waits for nothing: call it when no run is in flight) */
  freeContext(ctx: object): void;
  /** single-element lookups in sets of an inet table (src/native/setelem-get.c), off the main
   *  thread: per probe 1 present, 0 absent, -errno; microseconds at any set size */
  hasElements?(table: string, probes: Array<{ set: string; key: Buffer }>): Promise<number[]>;
}

const here = dirname(fileURLToPath(import.meta.url));

/** Where the addon may be: the package root is two levels above src/firewall and three above
 *  dist/src/firewall. */
export function addonCandidates(): string[] {
  return [resolve(here, '../../../build/Release/nftables.node'), resolve(here, '../../build/Release/nftables.node')];
}

let cached: NativeNft | null | undefined;
let loadError = '';

/** Loads the native addon once; null (with the reason logged) when it is not built or fails. */
export function loadNftAddon(logger?: Logger): NativeNft | null {
  if (cached !== undefined) {
    if (cached === null && logger) logger.info({ reason: loadError }, 'nftables addon unavailable; the nft command will be used');
    return cached;
  }
  const file = addonCandidates().find((p) => existsSync(p));
  if (!file) {
    loadError = 'build/Release/nftables.node not found (not built: libnftables-dev missing at install time?)';
  } else {
    const r = tryLoadAddon(file);
    if ('mod' in r) return (cached = r.mod);
    loadError = r.error;
  }
  cached = null;
  logger?.info({ reason: loadError }, 'nftables addon unavailable; the nft command will be used');
  return null;
}

/** Loads one addon file; a module built for another Node.js ABI is named as such, with the fix. */
export function tryLoadAddon(file: string): { mod: NativeNft } | { error: string } {
  try {
    const mod = createRequire(import.meta.url)(file) as NativeNft;
    if (typeof mod.createContext !== 'function' || typeof mod.run !== 'function') throw new Error('unexpected exports');
    return { mod };
  } catch (err) {
    const abi = abiMismatch(err);
    if (abi)
      return {
        error: `${describeAbiMismatch('the nftables addon', abi)}; rebuild it for this Node.js (npm rebuild in the package directory, with build-essential, python3 and libnftables-dev) or install the package built for it`,
      };
    return { error: `${file}: ${(err as Error).message}` };
  }
}

/**
 * The in-process runner: libnftables through the N-API addon; runs off the main thread.
 * Two contexts: one for changes, one for `list` commands. libnftables keeps what a command
 * fetched in the context's cache until the next command, and a listing fetches every element:
 * freeing a 100k-element cache made the next ban's transaction take ~155 ms (measured). With
 * listings on their own context the change context never caches elements of the hash sets.
 */
export class NftAddonRunner implements NftRunner {
  readonly kind = 'addon' as const;
  private ctx: object | null;
  private listCtx: object | null = null;
  /** the watchdog's terse listings */
  private terseCtx: object | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private listChain: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** null when the addon was built before src/native/setelem-batch.c */
  readonly elements: NativeElements | null;

  constructor(private readonly native: NativeNft) {
    this.ctx = native.createContext();
    const { applyElements, listElements } = native;
    this.elements =
      typeof applyElements === 'function' && typeof listElements === 'function'
        ? { applyElements: applyElements.bind(native), listElements: listElements.bind(native) }
        : null;
  }

  run(script: string): Promise<string> {
    const isList = /^\s*list\s/.test(script) && !script.trim().includes('\n');
    const exec = async () => {
      if (this.closed) throw new Error('nftables addon context closed');
      let ctx = this.ctx!;
      if (isList) ctx = this.listCtx ??= this.native.createContext();
      const r = await this.native.run(ctx, script);
      if (r.rc !== 0) throw nftError('addon', r.error, r.rc);
      return r.output;
    };
    const next = (isList ? this.listChain : this.chain).then(exec, exec);
    if (isList) this.listChain = next.catch(() => undefined);
    else this.chain = next.catch(() => undefined);
    return next;
  }

  listTerse(): Promise<string> {
    const exec = async () => {
      if (this.closed) throw new Error('nftables addon context closed');
      const r = await this.native.run((this.terseCtx ??= this.native.createContext(true)), 'list ruleset inet');
      if (r.rc !== 0) throw nftError('addon', r.error, r.rc);
      return r.output;
    };
    const next = this.listChain.then(exec, exec);
    this.listChain = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    await Promise.all([this.chain, this.listChain]);
    this.closed = true;
    for (const c of [this.ctx, this.listCtx, this.terseCtx]) if (c) this.native.freeContext(c);
    this.ctx = this.listCtx = this.terseCtx = null;
  }
}

/** An addon runner, or null when the addon cannot be loaded. */
export function createAddonRunner(logger?: Logger): NftAddonRunner | null {
  const native = loadNftAddon(logger);
  if (!native) return null;
  try {
    return new NftAddonRunner(native);
  } catch (err) {
    logger?.warn({ err }, 'nftables addon: could not create a libnftables context');
    return null;
  }
}
