import type { AmiMessage } from './types.js';

/**
 * A lazily parsed AMI frame. The frame text (one UTF-8 decode of the frame bytes, without the
 * terminating blank line) is kept as is; header offsets are computed on first access only.
 *
 * Parsing rules: lines are separated by CRLF; a line is split on its FIRST ':' and one space after
 * the colon is dropped (so `a: b: c` is key `a`, value `b: c`); a line with no colon is kept as
 * key = line, value = ''; empty lines are ignored; duplicate keys are kept in order. Keys are
 * never used as object property names except in toObject(), which returns a null-prototype object,
 * so `__proto__` / `constructor` headers are harmless.
 */
export class AmiFrame implements AmiMessage {
  /** the decoded frame text, header lines separated by CRLF, no trailing blank line */
  readonly raw: string;
  /** triples [lineStart, colon (-1 when none), lineEnd] */
  private idx: number[] | null = null;
  private pairs: ReadonlyArray<readonly [string, string]> | null = null;

  constructor(raw: string) {
    this.raw = raw;
  }

  /** true when the frame is an event (`Event:` is Asterisk's first header of every event) */
  get isEvent(): boolean {
    return this.raw.startsWith('Event:') || (!this.raw.startsWith('Response:') && this.get('Event') !== undefined);
  }

  /** true when the frame is an action response */
  get isResponse(): boolean {
    return this.raw.startsWith('Response:') || (!this.raw.startsWith('Event:') && this.get('Response') !== undefined);
  }

  /** number of header lines (empty lines not counted) */
  get headerCount(): number {
    return (this.idx ?? this.index()).length / 3;
  }

  private index(): number[] {
    const s = this.raw;
    const n = s.length;
    const out: number[] = [];
    let p = 0;
    let c = -1; // last colon position found (reused while it lies beyond the current line)
    while (p < n) {
      let e = s.indexOf('\r\n', p);
      if (e < 0) e = n;
      if (e > p) {
        if (c < p) {
          c = s.indexOf(':', p);
          if (c < 0) c = n; // no more colons anywhere: every later line has none
        }
        out.push(p, c < e ? c : -1, e);
      }
      p = e + 2;
    }
    this.idx = out;
    return out;
  }

  private valueAt(ix: number[], i: number): string {
    const c = ix[i + 1]!;
    const e = ix[i + 2]!;
    if (c < 0) return '';
    let v = c + 1;
    if (v < e && this.raw.charCodeAt(v) === 32) v++;
    return this.raw.slice(v, e);
  }

  private keyAt(ix: number[], i: number): string {
    const c = ix[i + 1]!;
    return this.raw.slice(ix[i]!, c < 0 ? ix[i + 2]! : c);
  }

  private matches(ix: number[], i: number, key: string, lower: string | null): boolean {
    const s = ix[i]!;
    const c = ix[i + 1]!;
    const ke = c < 0 ? ix[i + 2]! : c;
    if (ke - s !== key.length) return false;
    if (this.raw.startsWith(key, s)) return true;
    return this.raw.slice(s, ke).toLowerCase() === (lower ?? key.toLowerCase());
  }

  get(key: string): string | undefined {
    // Fast path before the frame is indexed: one native case-insensitive search for the key at a
    // line start (values cannot contain CRLF, so a match is always a real header line).
    if (this.idx === null) {
      const re = keyRegex(key);
      if (re) {
        const m = this.raw.search(re);
        return m < 0 ? undefined : this.valueAfterMatch(m, key);
      }
    }
    const ix = this.idx ?? this.index();
    for (let i = 0; i < ix.length; i += 3) {
      if (this.matches(ix, i, key, null)) return this.valueAt(ix, i);
    }
    return undefined;
  }

  /**
   * The value of a key that must be given once: undefined when absent, null when it appears more
   * than once with different values (the event is ambiguous), else the value. Like get(), it
   * scans the unindexed frame with one native search (the guard asks it of every event).
   */
  getSingle(key: string): string | undefined | null {
    const re = this.idx === null ? keyRegex(key) : null;
    if (re !== null) {
      const m = this.raw.search(re);
      if (m < 0) return undefined;
      const first = this.valueAfterMatch(m, key);
      // the rest of the frame, from the end of that line (a V8 slice is a view, not a copy)
      const e = this.raw.indexOf('\r\n', m + 2);
      if (e < 0 || this.raw.slice(e).search(re) < 0) return first;
    }
    const all = this.getAll(key);
    return all.length === 0 ? undefined : all.every((v) => v === all[0]) ? all[0] : null;
  }

  /** The value of the header line that a keyRegex match at `m` found. */
  private valueAfterMatch(m: number, key: string): string {
    const s = this.raw;
    let k = (m === 0 && s.charCodeAt(0) !== 13 ? 0 : m + 2) + key.length;
    let e = s.indexOf('\r\n', k);
    if (e < 0) e = s.length;
    if (s.charCodeAt(k) !== 58) return ''; // a line that is just the key
    k++;
    if (s.charCodeAt(k) === 32 && k < e) k++;
    return s.slice(k, e);
  }

  getAll(key: string): string[] {
    const ix = this.idx ?? this.index();
    const lower = key.toLowerCase();
    const out: string[] = [];
    for (let i = 0; i < ix.length; i += 3) {
      if (this.matches(ix, i, key, lower)) out.push(this.valueAt(ix, i));
    }
    return out;
  }

  get headers(): ReadonlyArray<readonly [string, string]> {
    if (this.pairs) return this.pairs;
    const ix = this.idx ?? this.index();
    const out: Array<readonly [string, string]> = [];
    for (let i = 0; i < ix.length; i += 3) out.push([this.keyAt(ix, i), this.valueAt(ix, i)] as const);
    this.pairs = out;
    return out;
  }

  toObject(): Record<string, string> {
    const o = Object.create(null) as Record<string, string>;
    for (const [k, v] of this.headers) if (!Object.prototype.hasOwnProperty.call(o, k)) o[k] = v;
    return o;
  }
}

const SIMPLE_KEY = /^[A-Za-z0-9_-]+$/;
const MAX_CACHED_KEYS = 1024;
const keyRegexes = new Map<string, RegExp>();

/** `(?:^|\r\n)key(?=:|\r\n|$)`, case-insensitive, cached; null for keys outside [A-Za-z0-9_-]+. */
function keyRegex(key: string): RegExp | null {
  let re = keyRegexes.get(key);
  if (re) return re;
  if (!SIMPLE_KEY.test(key)) return null;
  re = new RegExp(`(?:^|\\r\\n)${key}(?=:|\\r\\n|$)`, 'i');
  if (keyRegexes.size < MAX_CACHED_KEYS) keyRegexes.set(key, re);
  return re;
}

/** Parse one frame's text (as delivered by AmiFramer) into a lazy message. */
export function parseFrame(text: string): AmiFrame {
  return new AmiFrame(text);
}
