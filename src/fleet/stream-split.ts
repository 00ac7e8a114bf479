/**
 * A large decisions stream answer without one long JSON.parse: JSON.parse of a 100k-decision
 * startup answer (15 MB) holds the event loop ~100 ms, of a million ~1 s — while the AMI socket
 * must be read. The text is scanned in slices (strings and escapes respected) for the elements of
 * the top-level "new" and "deleted" lists; each batch of elements is parsed on its own turn of the
 * event loop, and what is left around the lists (the skeleton) is parsed too, so an answer that is
 * not valid JSON is still refused as a whole.
 */
import { LapiAnswerError, type RawStream } from './decision.js';

/** below this, one JSON.parse is cheaper than the scan (≈ 7,000 decisions) */
export const SPLIT_MIN_BYTES = 1 << 20;
/** characters scanned per turn */
const SCAN_SLICE = 2 << 20;
/** elements parsed per turn */
const PARSE_BATCH = 5000;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

interface List {
  key: string;
  /** offset of '[' and of the matching ']' */
  open: number;
  close: number;
  /** [start, end) of each element */
  elems: number[];
}

function bad(why: string): LapiAnswerError {
  return new LapiAnswerError(`the decisions stream answered with something that is not JSON (${why})`);
}

export async function rawStreamSplit(text: string, nextTurn: () => Promise<void>): Promise<RawStream> {
  const lists: List[] = [];
  let depth = 0;
  let inString = false;
  let stringStart = -1;
  let lastKey = '';
  let current: List | null = null;
  let elemStart = -1;
  let afterComma = false;
  for (let from = 0; from < text.length; from += SCAN_SLICE) {
    if (from > 0) await nextTurn();
    const to = Math.min(text.length, from + SCAN_SLICE);
    for (let i = from; i < to; i++) {
      const c = text.charCodeAt(i);
      if (inString) {
        if (c === BACKSLASH) i++;
        else if (c === QUOTE) {
          inString = false;
          if (depth === 1) lastKey = text.slice(stringStart + 1, i);
        }
        continue;
      }
      if (c === QUOTE) {
        inString = true;
        stringStart = i;
        if (current && depth === 2 && elemStart < 0) elemStart = i;
      } else if (c === OPEN_OBJ || c === OPEN_ARR) {
        if (depth === 1 && c === OPEN_ARR && (lastKey === 'new' || lastKey === 'deleted')) {
          current = { key: lastKey, open: i, close: -1, elems: [] };
        } else if (current && depth === 2 && elemStart < 0) elemStart = i;
        depth++;
      } else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
        depth--;
        if (depth < 0) throw bad('unbalanced brackets');
        if (current && depth === 1) {
          if (afterComma && elemStart < 0) throw bad('a trailing comma');
          afterComma = false;
          if (elemStart >= 0) current.elems.push(elemStart, i);
          current.close = i;
          lists.push(current);
          current = null;
          elemStart = -1;
        }
      } else if (current && depth === 2) {
        if (c === COMMA) {
          if (elemStart < 0) throw bad('an empty element');
          current.elems.push(elemStart, i);
          elemStart = -1;
          afterComma = true;
        } else if (elemStart < 0 && c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09 && c !== COLON) elemStart = i;
      }
    }
  }
  if (inString || depth !== 0) throw bad('it ends inside a string or a bracket');
  // the skeleton: the whole answer with each list emptied, parsed for its shape
  let skeleton = '';
  let at = 0;
  for (const l of lists) {
    skeleton += text.slice(at, l.open + 1);
    at = l.close;
  }
  skeleton += text.slice(at);
  let body: unknown;
  try {
    body = JSON.parse(skeleton);
  } catch (e) {
    throw bad((e as Error).message.slice(0, 120));
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new LapiAnswerError('the decisions stream answered with JSON that is not {"new", "deleted"}');
  const out: RawStream = { new: [], deleted: [] };
  for (const key of ['new', 'deleted'] as const) {
    const v = (body as Record<string, unknown>)[key];
    if (v !== null && v !== undefined && !Array.isArray(v)) throw new LapiAnswerError(`the decisions stream's "${key}" is not a list`);
  }
  for (const l of lists) {
    const target = out[l.key as 'new' | 'deleted'];
    target.length = 0; // a repeated key: the last one wins, as in JSON.parse
    for (let k = 0; k < l.elems.length; k += 2 * PARSE_BATCH) {
      await nextTurn();
      const last = Math.min(l.elems.length, k + 2 * PARSE_BATCH) - 1;
      let batch: unknown;
      try {
        batch = JSON.parse(`[${text.slice(l.elems[k]!, l.elems[last]!)}]`);
      } catch (e) {
        throw bad((e as Error).message.slice(0, 120));
      }
      for (const x of batch as unknown[]) target.push(x);
    }
  }
  return out;
}
