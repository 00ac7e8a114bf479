import { isAscii } from 'node:buffer';
import type { AmiFrameDrop } from './types.js';

const TERM = Buffer.from('\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');

export const DEFAULT_MAX_FRAME_BYTES = 1048576;
export const DEFAULT_MAX_HEADERS = 4096;
/** The greeting is one short line; anything longer without a CRLF is not AMI. */
export const MAX_GREETING_BYTES = 1024;

export interface AmiFramerOptions {
  /** largest frame accepted, in bytes, terminator excluded (default 1 MiB) */
  maxFrameBytes?: number;
  /** most header lines accepted in one frame (default 4096) */
  maxHeaders?: number;
  /** the first line (up to CRLF) is the AMI greeting and is delivered to `greeting` (default false) */
  expectGreeting?: boolean;
}

export interface AmiFramerHandlers {
  /** one complete frame, decoded once as UTF-8, without its terminating blank line */
  frame(text: string): void;
  /** a frame was dropped; the framer skips to the next `\r\n\r\n` without buffering */
  drop?(info: AmiFrameDrop): void;
  /**
   * the greeting line (without CRLF); `complete` is false when no CRLF came within
   * MAX_GREETING_BYTES (then `line` is what arrived)
   */
  greeting?(line: string, complete: boolean): void;
}

type Decoder = (buf: Buffer, start: number, end: number) => string;
// Buffer#utf8Slice / #latin1Slice are what toString() calls after its argument checks; use them
// when present.
type Slicer = { utf8Slice?: (s: number, e: number) => string; latin1Slice?: (s: number, e: number) => string };
const proto = Buffer.prototype as unknown as Slicer;
const decode: Decoder =
  typeof proto.utf8Slice === 'function' ? (b, s, e) => (b as unknown as Required<Slicer>).utf8Slice(s, e) : (b, s, e) => b.toString('utf8', s, e);
// On pure ASCII bytes Latin-1 and UTF-8 decode alike, and Latin-1 is a plain copy (no validation).
const decodeAscii: Decoder =
  typeof proto.latin1Slice === 'function' ? (b, s, e) => (b as unknown as Required<Slicer>).latin1Slice(s, e) : (b, s, e) => b.toString('latin1', s, e);

/**
 * Offset of the first `\r\n\r\n` starting at or after `from` and ending before `n`, or -1.
 * A JS loop beats Buffer#indexOf here: that call costs more than the ~360-byte search it does
 * (a native call per frame, and a memchr per CR inside). It looks at every 4th byte only: a byte
 * that is neither CR nor LF rules out the 4 windows holding it.
 */
export function findTerminator(b: Buffer, from: number, n: number): number {
  let p = from + 3;
  while (p < n) {
    const c = b[p];
    if (c === 10) {
      if (b[p - 1] === 13 && b[p - 2] === 10 && b[p - 3] === 13) return p - 3;
      p += 2; // this LF can only be the 2nd byte of a terminator ending 2 bytes on
    } else if (c === 13) {
      p += 1; // this CR can be the 3rd byte of a terminator ending 1 byte on
    } else {
      p += 4;
    }
  }
  return -1;
}

function last3(prev: Buffer, next: Buffer): Buffer {
  if (next.length >= 3) return Buffer.from(next.subarray(next.length - 3));
  const both = Buffer.concat([prev, next]);
  return both.subarray(Math.max(0, both.length - 3));
}

/**
 * Streaming AMI framer: splits a TCP byte stream on `\r\n\r\n`.
 *
 * - The terminator search is resumable: bytes already scanned are never scanned again; across a
 *   chunk boundary only the last 3 bytes of the held data are looked at again.
 * - Each frame is decoded from bytes exactly once (so a UTF-8 character split across chunks is
 *   decoded correctly).
 * - Frames that complete inside one chunk are decoded straight from that chunk (no copy); only a
 *   frame that straddles chunks is copied (once, when it completes).
 * - Bounds: a frame longer than maxFrameBytes (or with no terminator within maxFrameBytes) and a
 *   frame with more than maxHeaders lines are dropped, reported once through `drop`, and then the
 *   framer skips bytes up to the next terminator without keeping them.
 *
 * The framer keeps references to pushed buffers until their frame completes: do not reuse them.
 */
export class AmiFramer {
  readonly maxFrameBytes: number;
  readonly maxHeaders: number;
  private readonly h: AmiFramerHandlers;
  /** held bytes of an incomplete frame */
  private parts: Buffer[] = [];
  private pendLen = 0;
  /** last (up to) 3 bytes of the held data, or of the skipped data while skipping */
  private tail: Buffer = Buffer.alloc(0);
  private skipping = false;
  private greetingPending: boolean;
  private greetBuf: Buffer = Buffer.alloc(0);
  /** bumped by reset(): stops a push() in progress */
  private gen = 0;

  constructor(handlers: AmiFramerHandlers, opts: AmiFramerOptions = {}) {
    this.h = handlers;
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxHeaders = opts.maxHeaders ?? DEFAULT_MAX_HEADERS;
    if (!(this.maxFrameBytes > 0) || !(this.maxHeaders > 0)) throw new RangeError('maxFrameBytes and maxHeaders must be positive');
    this.greetingPending = opts.expectGreeting ?? false;
  }

  /** bytes currently held for an incomplete frame (bounded by maxFrameBytes) */
  get bufferedBytes(): number {
    return this.pendLen + this.greetBuf.length;
  }

  /** true while skipping the rest of a dropped frame */
  get isSkipping(): boolean {
    return this.skipping;
  }

  /** forget everything held; a push() in progress stops after the current callback */
  reset(expectGreeting = false): void {
    this.gen++;
    this.parts = [];
    this.pendLen = 0;
    this.tail = Buffer.alloc(0);
    this.skipping = false;
    this.greetingPending = expectGreeting;
    this.greetBuf = Buffer.alloc(0);
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const gen = this.gen;
    if (this.greetingPending) {
      const buf = this.greetBuf.length ? Buffer.concat([this.greetBuf, chunk]) : chunk;
      const i = buf.indexOf(CRLF);
      if (i < 0) {
        if (buf.length > MAX_GREETING_BYTES) {
          this.greetingPending = false;
          this.greetBuf = Buffer.alloc(0);
          this.h.greeting?.(buf.toString('utf8', 0, MAX_GREETING_BYTES), false);
          // not AMI: the caller is expected to drop the connection; skip what came
          if (gen === this.gen) this.reset(false);
          return;
        }
        this.greetBuf = Buffer.from(buf);
        return;
      }
      this.greetingPending = false;
      this.greetBuf = Buffer.alloc(0);
      this.h.greeting?.(decode(buf, 0, i), true);
      if (gen !== this.gen) return;
      chunk = buf.subarray(i + 2);
      if (chunk.length === 0) return;
    }
    let pos: number;
    if (this.skipping) pos = this.skip(chunk);
    else if (this.pendLen > 0) pos = this.completePending(chunk, gen);
    else pos = 0;
    if (pos < 0 || gen !== this.gen) return;
    this.scan(chunk, pos, gen);
  }

  /** Find a terminator straddling `tail|chunk`; returns the chunk offset just after it, or -1. */
  private straddle(chunk: Buffer): number {
    const t = this.tail.length;
    if (t === 0) return -1;
    const probe = Buffer.concat([this.tail, chunk.subarray(0, 3)]);
    const i = probe.indexOf(TERM);
    return i >= 0 && i < t ? i + 4 - t : -1;
  }

  private skip(chunk: Buffer): number {
    let after = this.straddle(chunk);
    if (after < 0) {
      const idx = chunk.indexOf(TERM);
      if (idx >= 0) after = idx + 4;
    }
    if (after < 0) {
      this.tail = last3(this.tail, chunk);
      return -1;
    }
    this.skipping = false;
    this.tail = Buffer.alloc(0);
    return after;
  }

  private completePending(chunk: Buffer, gen: number): number {
    const after = this.straddle(chunk);
    let frame: Buffer;
    let pos: number;
    if (after >= 0) {
      // the terminator began in the held bytes: the frame ends (4 - after) bytes before their end
      const all = Buffer.concat(this.parts, this.pendLen);
      frame = all.subarray(0, this.pendLen - (4 - after));
      pos = after;
    } else {
      const idx = chunk.indexOf(TERM);
      if (idx < 0) {
        const total = this.pendLen + chunk.length;
        if (total > this.maxFrameBytes) {
          this.startSkipping(total, chunk);
          return -1;
        }
        this.parts.push(chunk);
        this.pendLen = total;
        this.tail = last3(this.tail, chunk);
        return -1;
      }
      const total = this.pendLen + idx;
      pos = idx + 4;
      if (total > this.maxFrameBytes) {
        this.clearHeld();
        this.h.drop?.({ reason: 'oversized', bytes: total });
        return pos;
      }
      this.parts.push(chunk.subarray(0, idx));
      frame = Buffer.concat(this.parts, total);
    }
    this.clearHeld();
    this.emitFrame(frame, 0, frame.length);
    return gen === this.gen ? pos : -1;
  }

  private scan(chunk: Buffer, pos: number, gen: number): void {
    const n = chunk.length;
    const max = this.maxFrameBytes;
    // one check per chunk: frames wholly inside an ASCII chunk take the cheaper Latin-1 copy
    const dec = n - pos >= 64 && isAscii(pos === 0 ? chunk : chunk.subarray(pos)) ? decodeAscii : decode;
    while (pos < n) {
      const idx = findTerminator(chunk, pos, n);
      if (idx < 0) break;
      if (idx - pos > max) this.h.drop?.({ reason: 'oversized', bytes: idx - pos });
      else this.emitFrame(chunk, pos, idx, dec);
      if (gen !== this.gen) return;
      pos = idx + 4;
    }
    if (pos >= n) return;
    const rest = n - pos;
    if (rest > max) {
      this.startSkipping(rest, chunk);
      return;
    }
    // keep a copy of the (small) tail so the whole chunk can be released
    const held = Buffer.allocUnsafe(rest);
    chunk.copy(held, 0, pos, n);
    this.parts.push(held);
    this.pendLen = rest;
    this.tail = held.subarray(Math.max(0, rest - 3));
  }

  private startSkipping(bytes: number, chunk: Buffer): void {
    this.clearHeld();
    this.skipping = true;
    this.tail = last3(Buffer.alloc(0), chunk);
    this.h.drop?.({ reason: 'oversized', bytes });
  }

  private clearHeld(): void {
    this.parts = [];
    this.pendLen = 0;
    this.tail = Buffer.alloc(0);
  }

  private emitFrame(buf: Buffer, s: number, e: number, dec: Decoder = decode): void {
    // tolerate stray blank lines between frames
    while (e - s >= 2 && buf[s] === 13 && buf[s + 1] === 10) s += 2;
    if (e <= s) return;
    const len = e - s;
    // every header line takes >= 3 bytes with its CRLF, so only long frames can have too many
    if ((len + 2) / 3 > this.maxHeaders) {
      let lines = 1;
      let p = buf.indexOf(10, s);
      while (p >= 0 && p < e) {
        lines++;
        if (lines > this.maxHeaders) {
          this.h.drop?.({ reason: 'too-many-headers', bytes: len });
          return;
        }
        p = buf.indexOf(10, p + 1);
      }
    }
    this.h.frame(dec(buf, s, e));
  }
}
