/**
 * A key's state that does not pack in one number (packed.ts) — a second hit, a second rule, a
 * PJSIP attempt — kept as doubles in a pooled Float64Array instead of as JS arrays: a PJSIP
 * attacker after one attempt is [count, ATTEMPT, attempt(5), rule, ring, rule, ring], ~305 bytes
 * of arrays and 13 doubles (104 bytes) here. The detector decodes it into fresh arrays for the
 * event and encodes it back after (detector.ts).
 *
 * Layout: [count, then per (tag, value) pair: a header, then the value's elements], the header
 * being (tag + 1) + 128 * (0 for an undefined value, else its length + 1). Blocks of one size
 * share one array, kept dense: a freed block is filled by the last one, whose owner (the table
 * entry) is told its new handle, and the array shrinks when a quarter full — a key's state moves
 * from one size to the next as it is hit, which would otherwise leave every smaller size's array
 * at its high-water mark (measured: 1M keys hit 4 times 329 MB RSS, most of it free blocks).
 * A handle is index * MAX_SIZE + size.
 */
type KeyState = Array<number | number[] | undefined>;

/** doubles per state at most (larger ones stay arrays) */
export const MAX_SIZE = 128;
const TAG_SPAN = 128;
const FIRST_BLOCKS = 64;

interface SizeClass {
  data: Float64Array;
  /** the owner of each block */
  owners: Int32Array;
  /** blocks in use: 0 .. used - 1 */
  used: number;
}

/** Doubles `st` takes here, or 0 when it cannot be kept (a tag out of range, too large). */
export function encodedSize(st: KeyState): number {
  let size = 1;
  for (let i = 1; i < st.length; i += 2) {
    const tag = st[i] as number;
    const v = st[i + 1];
    if (!(tag >= -1 && tag < TAG_SPAN - 1) || (v !== undefined && !Array.isArray(v))) return 0;
    size += 1 + (v === undefined ? 0 : v.length);
    if (size > MAX_SIZE) return 0;
  }
  return size;
}

export class StatePool {
  private readonly classes: Array<SizeClass | undefined> = [];
  /** blocks in use (tests, memory) */
  blocks = 0;

  /** @param moved told when the block of `owner` moves to `handle` (see free) */
  constructor(private readonly moved: (owner: number, handle: number) => void) {}

  /** Stores `st` (its size: encodedSize, > 0) for `owner`, in `old`'s block when it is of that
   *  size, else in a new one (`old` is freed). Returns the handle. */
  store(st: KeyState, size: number, old: number | undefined, owner: number): number {
    let handle: number;
    if (old !== undefined && old % MAX_SIZE === size) handle = old;
    else {
      if (old !== undefined) this.free(old);
      handle = this.alloc(size, owner);
    }
    const data = this.classes[size]!.data;
    let at = Math.floor(handle / MAX_SIZE) * size;
    data[at++] = st[0] as number;
    for (let i = 1; i < st.length; i += 2) {
      const v = st[i + 1] as number[] | undefined;
      data[at++] = (st[i] as number) + 1 + TAG_SPAN * (v === undefined ? 0 : v.length + 1);
      if (v) for (let j = 0; j < v.length; j++) data[at++] = v[j]!;
    }
    return handle;
  }

  /** A fresh state array for `handle` (the caller may change it). */
  load(handle: number): KeyState {
    const size = handle % MAX_SIZE;
    const data = this.classes[size]!.data;
    let at = Math.floor(handle / MAX_SIZE) * size;
    const end = at + size;
    const st: KeyState = [data[at++]!];
    while (at < end) {
      const header = data[at++]!;
      const tag = (header % TAG_SPAN) - 1;
      const code = (header - tag - 1) / TAG_SPAN;
      if (code === 0) st.push(tag, undefined);
      else {
        const v = new Array<number>(code - 1);
        for (let j = 0; j < code - 1; j++) v[j] = data[at++]!;
        st.push(tag, v);
      }
    }
    return st;
  }

  /** Frees a block: the last block of its size moves into it (its owner is told). */
  free(handle: number): void {
    const size = handle % MAX_SIZE;
    const c = this.classes[size]!;
    const i = Math.floor(handle / MAX_SIZE);
    const last = --c.used;
    this.blocks--;
    if (i !== last) {
      c.data.copyWithin(i * size, last * size, last * size + size);
      c.owners[i] = c.owners[last]!;
      this.moved(c.owners[i]!, i * MAX_SIZE + size);
    }
    const blocks = c.owners.length;
    if (blocks > FIRST_BLOCKS && c.used < blocks / 4) this.resize(c, size, blocks / 2);
  }

  /** doubles allocated for `size` (tests, memory) */
  capacityOf(size: number): number {
    return this.classes[size]?.data.length ?? 0;
  }

  private alloc(size: number, owner: number): number {
    let c = this.classes[size];
    if (!c) this.classes[size] = c = { data: new Float64Array(FIRST_BLOCKS * size), owners: new Int32Array(FIRST_BLOCKS), used: 0 };
    if (c.used === c.owners.length) this.resize(c, size, 2 * c.owners.length);
    this.blocks++;
    c.owners[c.used] = owner;
    return c.used++ * MAX_SIZE + size;
  }

  private resize(c: SizeClass, size: number, blocks: number): void {
    const data = new Float64Array(blocks * size);
    data.set(c.data.subarray(0, c.used * size));
    const owners = new Int32Array(blocks);
    owners.set(c.owners.subarray(0, c.used));
    c.data = data;
    c.owners = owners;
  }
}
