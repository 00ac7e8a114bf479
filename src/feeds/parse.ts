/**
 * A feed's answer, parsed without trusting it: a plain-text list (one address or CIDR a line,
 * `#` / `;` comments, blank lines) or one page of the APIBAN API. Nothing here enforces: it says
 * what the answer holds, what was garbage, and whether the whole answer is refused.
 */
import { AppError } from '../common/errors.js';
import { formatNetwork, isSingleAddress, parseNetwork, type Family, type IpNetwork } from '../net/ip.js';

/** An answer refused whole (the last good list stays): too big, not text, too much garbage. */
export class FeedRefusedError extends AppError {
  constructor(
    message: string,
    readonly reason: 'too_big' | 'not_text' | 'garbage' | 'too_many' | 'bad_answer',
  ) {
    super(message, 'FEED_REFUSED', 502);
  }
}

export interface FeedTarget {
  target: string;
  family: Family;
  isNetwork: boolean;
  net: IpNetwork;
}

export interface ParsedList {
  targets: FeedTarget[];
  /** lines that were neither blank, a comment nor an address / CIDR */
  garbage: number;
  /** lines that held an address or CIDR (duplicates included) */
  lines: number;
}

/** a line longer than this is garbage without a look (a list line is an address and a comment) */
const LINE_MAX = 512;

export function targetOf(text: string): FeedTarget | null {
  if (text.length === 0 || text.length > 64) return null;
  const net = parseNetwork(text);
  if (!net) return null;
  return { target: formatNetwork(net), family: net.family, isNetwork: !isSingleAddress(net), net };
}

/** Whether the bytes are text: valid UTF-8 with no NUL or other control bytes than tab, CR, LF. */
export function isText(bytes: Buffer): boolean {
  // a control byte anywhere: a binary file (an archive, an image) or something worse
  for (const b of bytes) if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * A plain-text list. Refused whole when it is not text, holds more than `maxEntries` distinct
 * targets, or the share of garbage among its non-comment lines is above `maxGarbageRatio`.
 */
export function parseList(bytes: Buffer, maxEntries: number, maxGarbageRatio: number): ParsedList {
  if (!isText(bytes)) throw new FeedRefusedError('the list is not text (a control byte or invalid UTF-8): refused whole', 'not_text');
  const text = bytes.toString('utf8');
  const seen = new Map<string, FeedTarget>();
  let garbage = 0;
  let lines = 0;
  for (const raw of text.split('\n')) {
    // "1.2.3.0/24 ; SBL123" and "1.2.3.4 # why" carry their comment after the address
    const cut = raw.search(/[#;]/);
    const line = (cut === -1 ? raw : raw.slice(0, cut)).trim();
    if (line === '') continue;
    const token = line.split(/\s/, 1)[0]!;
    const t = raw.length <= LINE_MAX ? targetOf(token) : null;
    if (!t) {
      garbage++;
      continue;
    }
    lines++;
    if (!seen.has(t.target)) {
      if (seen.size >= maxEntries) throw new FeedRefusedError(`the list holds more than maxEntries ${maxEntries} entries: refused whole`, 'too_many');
      seen.set(t.target, t);
    }
  }
  const counted = garbage + lines;
  if (counted > 0 && garbage / counted > maxGarbageRatio)
    throw new FeedRefusedError(
      `${garbage} of ${counted} lines are no address or CIDR (more than ${Math.round(maxGarbageRatio * 100)} %): refused whole`,
      'garbage',
    );
  return { targets: [...seen.values()], garbage, lines };
}

/** One page of GET /api/KEY/banned[/ID] (https://apiban.org/doc.html). */
export interface ApibanPage {
  /** the addresses of this page (garbage counted, not kept) */
  targets: FeedTarget[];
  garbage: number;
  /** the ID to ask for next; null: "none", nothing new */
  next: string | null;
}

/** longest ID kept (APIBAN's are decimal numbers) */
const ID_RE = /^[0-9]{1,20}$/;
/** entries looked at in one page (APIBAN sends 250) */
const PAGE_MAX = 10_000;

/** `{"ipaddress": [...], "ID": "987654321"}` or `{"ipaddress": ["no new bans"], "ID": "none"}`. */
export function parseApibanPage(text: string): ApibanPage {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new FeedRefusedError('APIBAN answered with something that is not JSON', 'bad_answer');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new FeedRefusedError('APIBAN answered with JSON that is not {ipaddress, ID}', 'bad_answer');
  const { ipaddress, ID } = body as { ipaddress?: unknown; ID?: unknown };
  if (ID === 'none') return { targets: [], garbage: 0, next: null };
  if (typeof ID !== 'string' || !ID_RE.test(ID)) throw new FeedRefusedError('APIBAN answered without a numeric ID', 'bad_answer');
  if (!Array.isArray(ipaddress)) throw new FeedRefusedError('APIBAN answered without an ipaddress list', 'bad_answer');
  if (ipaddress.length > PAGE_MAX) throw new FeedRefusedError(`APIBAN answered a page of more than ${PAGE_MAX} addresses`, 'too_big');
  const targets: FeedTarget[] = [];
  let garbage = 0;
  for (const a of ipaddress) {
    const t = typeof a === 'string' ? targetOf(a.trim()) : null;
    if (t) targets.push(t);
    else garbage++;
  }
  return { targets, garbage, next: ID };
}
