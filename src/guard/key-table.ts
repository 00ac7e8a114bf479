/**
 * The detector's table of tracked attacker keys: a bounded LRU with a TTL, in typed arrays. At a
 * million keys lru-cache cost ~170 MB (its Map, a string per key, a boxed number per value);
 * here an IPv4 address or an IPv6 network up to /64 is two uint32 words, and a value is a double
 * or, for what does not pack, an object in a side array: ~49 bytes per key in all.
 *
 * - Entries live at stable ids in parallel typed arrays (grown by doubling up to `max`, ids
 *   reused through a free list); an LRU doubly linked list runs through them (prev/next).
 * - The index is open addressing with linear probing over ids, at most half full; a removal
 *   shifts the rest of its probe run back (no tombstones, so churn never degrades the probes).
 * - The hash is keyed by a per-process random seed: the keys are the attacker's to choose (any
 *   /64 of their allocation), so colliding ones must not be computable offline.
 * - Keys that do not pack (an IPv6 prefix longer than /64, text that is not a network) are kept
 *   by their text in a Map, in the same LRU list.
 * - TTL as lru-cache's with updateAgeOnGet: an entry not used (touch/insert) for more than
 *   `ttlMs` is gone; it is dropped when found, and the oldest ones a few per insert.
 */
import { randomFillSync } from 'node:crypto';
import type { IpNetwork } from '../net/ip.js';

/** A key as the table compares it; callers reuse one object (this is on the hot path). */
export interface TableKey {
  /** 1 + prefix for IPv4, 34 + prefix for IPv6 up to /64, TEXT_KIND otherwise (0: free) */
  kind: number;
  w0: number;
  w1: number;
  /** the key's text (only read for TEXT_KIND) */
  text: string;
}

export const TEXT_KIND = 255;
const FREE = 0;
const NONE = -1;
/** a value slot holding NaN: the value is the object in `objs` */
const OBJECT_MARK = NaN;
/** expired entries dropped from the old end per insert (bounded work per event) */
const PURGE_PER_INSERT = 2;
const MIN_CAPACITY = 16;

export function newKey(): TableKey {
  return { kind: FREE, w0: 0, w1: 0, text: '' };
}

/** Sets `k` to the key of `net`, whose canonical text is `text`; returns `k`. */
export function keyOfNetwork(k: TableKey, net: IpNetwork, text: string): TableKey {
  const b = net.bytes;
  if (net.family === 4) {
    k.kind = 1 + net.prefix;
    k.w0 = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    k.w1 = 0;
  } else if (net.prefix <= 64) {
    // host bits are cleared (IpNetwork), so the first 64 bits are the whole network
    k.kind = 34 + net.prefix;
    k.w0 = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    k.w1 = ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0;
  } else {
    k.kind = TEXT_KIND;
    k.w0 = 0;
    k.w1 = 0;
  }
  k.text = text;
  return k;
}

/** lowbias32 (Wellons): a full-avalanche 32-bit mixer */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The hash of a packed key under `seed` (exported for the tests that build collisions). */
export function hashKey(seed: Uint32Array, kind: number, w0: number, w1: number): number {
  return mix32(mix32((w0 ^ seed[0]! ^ Math.imul(kind, 0x9e3779b9)) >>> 0) ^ w1 ^ seed[1]!);
}

export interface KeyTableOptions {
  /** entries at most: inserting one more evicts the least recently used */
  max: number;
  /** an entry unused for longer is gone; 0: no TTL */
  ttlMs: number;
  /** the TTL's clock in ms (default: performance.now, monotonic) */
  now?: () => number;
  /** two words; default random */
  seed?: Uint32Array;
  /** entries allocated up front (default 1024; grown by doubling up to max) */
  initial?: number;
  /** told the number an entry held when it is removed (evicted, expired or deleted) */
  onRemove?: (value: number) => void;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** A bounded LRU map from attacker keys to a number (not NaN) or an object. */
export class KeyTable<T extends object> {
  private readonly max: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly onRemove: ((value: number) => void) | undefined;
  readonly seed: Uint32Array;
  private cap: number;
  private kinds: Uint8Array;
  private words: Uint32Array;
  private vals: Float64Array;
  private stamps: Float64Array;
  private prev: Int32Array;
  private next: Int32Array;
  private readonly objs: Array<T | undefined>;
  /** id + 1 per slot, 0 empty */
  private slots: Int32Array;
  private mask: number;
  private readonly texts = new Map<string, number>();
  private readonly textOf = new Map<number, string>();
  private head = NONE;
  private tail = NONE;
  private freeHead = NONE;
  /** ids below this have been handed out */
  private used = 0;
  private count = 0;

  constructor(opts: KeyTableOptions) {
    if (!(opts.max >= 1 && Number.isInteger(opts.max))) throw new Error(`KeyTable: max ${opts.max} is not a positive integer`);
    this.max = opts.max;
    this.ttlMs = opts.ttlMs > 0 ? opts.ttlMs : 0;
    this.now = opts.now ?? (() => performance.now());
    this.onRemove = opts.onRemove;
    this.seed = opts.seed ?? randomFillSync(new Uint32Array(2));
    this.cap = Math.min(this.max, Math.max(MIN_CAPACITY, opts.initial ?? 1024));
    this.kinds = new Uint8Array(this.cap);
    this.words = new Uint32Array(2 * this.cap);
    this.vals = new Float64Array(this.cap);
    this.stamps = new Float64Array(this.cap);
    this.prev = new Int32Array(this.cap);
    this.next = new Int32Array(this.cap);
    this.objs = new Array<T | undefined>(this.cap).fill(undefined);
    this.slots = new Int32Array(2 * nextPow2(this.cap));
    this.mask = this.slots.length - 1;
  }

  get size(): number {
    return this.count;
  }

  /** entries allocated now (tests, memory) */
  get capacity(): number {
    return this.cap;
  }

  /** slots of the index (a power of two, at least twice the capacity; tests) */
  get indexSize(): number {
    return this.slots.length;
  }

  /** The id of `k`, or -1 when absent or expired (an expired entry is removed). Its age and
   *  place in the LRU order are not touched (see touch). */
  find(k: TableKey): number {
    let id = NONE;
    if (k.kind === TEXT_KIND) id = this.texts.get(k.text) ?? NONE;
    else {
      const { slots, kinds, words, mask } = this;
      for (let i = hashKey(this.seed, k.kind, k.w0, k.w1) & mask; ; i = (i + 1) & mask) {
        const s = slots[i]!;
        if (s === 0) return NONE;
        const c = s - 1;
        if (kinds[c] === k.kind && words[2 * c] === k.w0 && words[2 * c + 1] === k.w1) {
          id = c;
          break;
        }
      }
    }
    if (id !== NONE && this.expired(id, this.now())) {
      this.remove(id);
      return NONE;
    }
    return id;
  }

  /** Counts entry `id` as used now: most recent in the LRU order, its TTL started again. */
  touch(id: number): void {
    this.stamps[id] = this.now();
    if (id === this.head) return;
    this.unlink(id);
    this.linkHead(id);
  }

  value(id: number): number | T {
    const v = this.vals[id]!;
    return v === v ? v : this.objs[id]!;
  }

  /** Replaces entry `id`'s value in place (its age and LRU place stay). */
  write(id: number, v: number | T): void {
    if (typeof v === 'number') {
      if (v !== v) throw new Error('KeyTable: NaN is not a storable value');
      this.vals[id] = v;
      this.objs[id] = undefined;
    } else {
      this.vals[id] = OBJECT_MARK;
      this.objs[id] = v;
    }
  }

  /** Adds `k` (which must be absent: see find) as the most recent entry; returns its id. At
   *  `max` entries the least recently used one is evicted first. */
  insert(k: TableKey, v: number | T): number {
    const now = this.now();
    for (let n = 0; n < PURGE_PER_INSERT && this.tail !== NONE && this.expired(this.tail, now); n++) this.remove(this.tail);
    if (this.count >= this.max) this.remove(this.tail);
    const id = this.allocate();
    this.kinds[id] = k.kind;
    this.words[2 * id] = k.w0;
    this.words[2 * id + 1] = k.w1;
    this.stamps[id] = now;
    this.write(id, v);
    this.linkHead(id);
    this.count++;
    if (k.kind === TEXT_KIND) {
      this.texts.set(k.text, id);
      this.textOf.set(id, k.text);
    } else this.place(id);
    return id;
  }

  /** Removes `k`; true when it was there (expired or not). */
  delete(k: TableKey): boolean {
    const id = this.find(k);
    if (id === NONE) return false;
    this.remove(id);
    return true;
  }

  /** Removes entry `id`. */
  remove(id: number): void {
    if (this.kinds[id] === TEXT_KIND) {
      this.texts.delete(this.textOf.get(id)!);
      this.textOf.delete(id);
    } else this.unplace(id);
    this.unlink(id);
    this.kinds[id] = FREE;
    this.objs[id] = undefined;
    const v = this.vals[id]!;
    if (this.onRemove && v === v) this.onRemove(v);
    this.next[id] = this.freeHead;
    this.freeHead = id;
    this.count--;
  }

  /** Ids from the most recently used to the least (tests, diagnostics). */
  *ids(): IterableIterator<number> {
    for (let id = this.head; id !== NONE; id = this.next[id]!) yield id;
  }

  private expired(id: number, now: number): boolean {
    return this.ttlMs > 0 && now - this.stamps[id]! > this.ttlMs;
  }

  private allocate(): number {
    if (this.freeHead !== NONE) {
      const id = this.freeHead;
      this.freeHead = this.next[id]!;
      return id;
    }
    if (this.used === this.cap) this.grow();
    return this.used++;
  }

  private grow(): void {
    const cap = Math.min(this.max, this.cap * 2);
    const widen = <A extends Uint8Array | Uint32Array | Float64Array | Int32Array>(old: A, make: (n: number) => A, per = 1): A => {
      const a = make(cap * per);
      a.set(old);
      return a;
    };
    this.kinds = widen(this.kinds, (n) => new Uint8Array(n));
    this.words = widen(this.words, (n) => new Uint32Array(n), 2);
    this.vals = widen(this.vals, (n) => new Float64Array(n));
    this.stamps = widen(this.stamps, (n) => new Float64Array(n));
    this.prev = widen(this.prev, (n) => new Int32Array(n));
    this.next = widen(this.next, (n) => new Int32Array(n));
    for (let i = this.cap; i < cap; i++) this.objs.push(undefined);
    this.cap = cap;
    if (this.slots.length < 2 * cap) this.rehash(2 * nextPow2(cap));
  }

  private rehash(size: number): void {
    this.slots = new Int32Array(size);
    this.mask = size - 1;
    for (let id = 0; id < this.used; id++) {
      const kind = this.kinds[id]!;
      if (kind !== FREE && kind !== TEXT_KIND) this.place(id);
    }
  }

  private home(id: number): number {
    return hashKey(this.seed, this.kinds[id]!, this.words[2 * id]!, this.words[2 * id + 1]!) & this.mask;
  }

  private place(id: number): void {
    const { slots, mask } = this;
    let i = this.home(id);
    while (slots[i] !== 0) i = (i + 1) & mask;
    slots[i] = id + 1;
  }

  /** Takes `id` out of the index and closes the gap (Knuth's algorithm R for linear probing):
   *  each later entry of the run moves back unless its home lies cyclically in (gap, its slot]. */
  private unplace(id: number): void {
    const { slots, mask } = this;
    let gap = this.home(id);
    while (slots[gap] !== id + 1) gap = (gap + 1) & mask;
    for (let j = (gap + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      const h = this.home(slots[j]! - 1);
      const stays = gap <= j ? gap < h && h <= j : gap < h || h <= j;
      if (stays) continue;
      slots[gap] = slots[j]!;
      gap = j;
    }
    slots[gap] = 0;
  }

  private linkHead(id: number): void {
    this.prev[id] = NONE;
    this.next[id] = this.head;
    if (this.head !== NONE) this.prev[this.head] = id;
    this.head = id;
    if (this.tail === NONE) this.tail = id;
  }

  private unlink(id: number): void {
    const p = this.prev[id]!;
    const n = this.next[id]!;
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
  }
}
