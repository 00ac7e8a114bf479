/**
 * One set's elements from nft's JSON listing (`nft -j list set …`), parsed a slice at a time.
 * The listing of a set is one line (68 MB at 1M elements): one JSON.parse of it stalls the
 * event loop for about a second, and the AMI socket must keep being read. Here the `elem` array
 * is cut at its top-level commas by a scan that knows JSON strings, each slice is parsed alone,
 * and the loop runs between slices.
 */
import { elemOf, type RawElem } from './nft-json.js';

/** characters scanned (and their elements parsed) per event-loop turn; the first turns are
 *  shorter: the scan is not compiled yet (a first slice of 256k characters took ~35 ms) */
const SLICE_CHARS = 256 * 1024;
const FIRST_SLICE_CHARS = 8 * 1024;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/**
 * The elements of set `setName` in `text`, in slices of about SLICE_CHARS characters, each passed
 * to `onSlice`; yields to the event loop between slices. A listing that is not nft's shape gives
 * no element (the caller's diff then re-adds what is missing); a slice that fails to parse is
 * skipped the same way.
 */
export async function eachElemSlice(text: string, setName: string, onSlice: (elems: RawElem[]) => void): Promise<void> {
  const start = elemArrayStart(text, setName);
  if (start < 0) return;
  let i = start + 1;
  let from = i;
  let depth = 0;
  let inString = false;
  let sliceLen = FIRST_SLICE_CHARS;
  let sliceEnd = i + sliceLen;
  const flush = (to: number) => {
    const body = text.slice(from, to).trim();
    if (body) onSlice(parseSlice(body));
  };
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (depth === 0) break; // the end of the elem array
      depth--;
    } else if (c === COMMA && depth === 0 && i >= sliceEnd) {
      flush(i);
      from = i + 1;
      sliceLen = Math.min(SLICE_CHARS, sliceLen * 2);
      sliceEnd = i + sliceLen;
      await yieldToLoop();
    }
  }
  flush(i);
}

function parseSlice(body: string): RawElem[] {
  let items: unknown;
  try {
    items = JSON.parse(`[${body}]`);
  } catch {
    return [];
  }
  const out: RawElem[] = [];
  for (const raw of items as unknown[]) {
    const e = elemOf(raw);
    if (e) out.push(e);
  }
  return out;
}

/** Index of the `[` of set `setName`'s "elem" array, or -1 (an empty set has none). */
function elemArrayStart(text: string, setName: string): number {
  const head = text.indexOf(`"set": {`);
  if (head < 0) return -1;
  // nft prints the set's attributes before its elements: name, then (much later) "elem"
  const name = text.indexOf(`"name": ${JSON.stringify(setName)}`, head);
  if (name < 0) return -1;
  const at = text.indexOf('"elem":', name);
  if (at < 0) return -1;
  // the set's array comes first; an element's own {"elem": {...}} key is never before it. No
  // RegExp on the whole listing: its first run on a 7 MB string cost ~30 ms (measured), a scan nothing
  let i = at + '"elem":'.length;
  while (text.charCodeAt(i) === 0x20) i++;
  return text.charCodeAt(i) === 0x5b ? i : -1;
}
