/**
 * The program's one bounded FIFO queue: a ring buffer (push and shift are O(1), never
 * Array.shift), at most `capacity` items. When it is full its policy decides, and push says which
 * happened; `dropped` counts the items lost either way:
 *  - 'reject-newest': the new item is not queued (push returns 'rejected');
 *  - 'drop-oldest': the oldest item leaves to make room (push returns 'dropped-oldest'; `onDrop`
 *    gets it, e.g. to settle whoever waits on it).
 * The storage grows by doubling up to the capacity and shrinks back when the queue is drained, so
 * a large bound costs nothing until it is used.
 */
export type DropPolicy = 'reject-newest' | 'drop-oldest';
export type PushResult = 'queued' | 'rejected' | 'dropped-oldest';

const INITIAL_SLOTS = 16;

export class BoundedQueue<T> {
  /** a power of two slots; `mask` = slots - 1 */
  private buf: Array<T | undefined> = slots(INITIAL_SLOTS);
  private mask = INITIAL_SLOTS - 1;
  private head = 0;
  private len = 0;
  private cap: number;
  /** items lost to the policy since the queue was made (the caller may reset it) */
  dropped = 0;

  constructor(
    capacity: number,
    readonly policy: DropPolicy = 'reject-newest',
    private readonly onDrop?: (item: T) => void,
  ) {
    this.cap = checkCapacity(capacity);
  }

  get length(): number {
    return this.len;
  }

  get capacity(): number {
    return this.cap;
  }

  /** A new bound (a reloaded limit): a queue already longer keeps its items and refuses or drops on the next push. */
  set capacity(n: number) {
    this.cap = checkCapacity(n);
  }

  get isFull(): boolean {
    return this.len >= this.cap;
  }

  push(item: T): PushResult {
    if (this.len >= this.cap) {
      if (this.policy === 'reject-newest') {
        this.dropped++;
        return 'rejected';
      }
      // more than one when the capacity was lowered below the length
      while (this.len >= this.cap) {
        const old = this.shift() as T;
        this.dropped++;
        this.onDrop?.(old);
      }
      this.put(item);
      return 'dropped-oldest';
    }
    this.put(item);
    return 'queued';
  }

  /** The oldest item, taken out; undefined when empty. */
  shift(): T | undefined {
    if (this.len === 0) return undefined;
    const item = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.len--;
    return item;
  }

  /** The oldest item, left in. */
  peek(): T | undefined {
    return this.len === 0 ? undefined : this.buf[this.head];
  }

  /** Every item, oldest first; the queue is empty (and small) again. */
  drainAll(): T[] {
    const out = new Array<T>(this.len);
    for (let i = 0; i < this.len; i++) out[i] = this.buf[(this.head + i) & this.mask] as T;
    this.reset();
    return out;
  }

  /** Empties the queue; returns how many items it held. */
  clear(): number {
    const n = this.len;
    this.reset();
    return n;
  }

  private put(item: T): void {
    if (this.len === this.buf.length) this.grow();
    this.buf[(this.head + this.len) & this.mask] = item;
    this.len++;
  }

  /** Doubles the slots, the items in order from slot 0. */
  private grow(): void {
    const next = slots<T>(this.buf.length * 2);
    for (let i = 0; i < this.len; i++) next[i] = this.buf[(this.head + i) & this.mask];
    this.buf = next;
    this.mask = next.length - 1;
    this.head = 0;
  }

  private reset(): void {
    this.buf = slots(INITIAL_SLOTS);
    this.mask = INITIAL_SLOTS - 1;
    this.head = 0;
    this.len = 0;
  }
}

/** `n` empty slots, filled (a packed array stays fast where a holey one would not). */
function slots<T>(n: number): Array<T | undefined> {
  return new Array<T | undefined>(n).fill(undefined);
}

function checkCapacity(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`a queue's capacity is a whole number of at least 1, not ${n}`);
  return n;
}
