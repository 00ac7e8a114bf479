/**
 * The `feeds:` config section (docs/feeds.md): block lists fetched on an interval, each enforced in
 * kernel sets of its own. Each entry is checked here (its errors name feeds[i].key) and filled
 * with defaults.
 */
import { Type } from '@sinclair/typebox';
import { defaultsOf, Duration, Int, Num, ObjList, Str, type Static } from '../common/config-schema.js';
import { parseDuration } from '../common/duration.js';
import { GROUP_NAME } from '../firewall/index.js';
import { networkContains, parseNetwork, type IpNetwork } from '../net/ip.js';

export const FEED_KINDS = ['list', 'apiban'] as const;
export type FeedKind = (typeof FEED_KINDS)[number];

/** the base of the APIBAN API (https://apiban.org/doc.html) */
export const APIBAN_URL = 'https://apiban.org/api';
/** APIBAN keeps an address "active" for 7 days after it was last reported (https://apiban.org/doc.html) */
export const APIBAN_ACTIVE_S = 7 * 86400;
/** a plain list's entries end this many intervals after the last good refresh */
export const LIST_TIMEOUT_INTERVALS = 3;
/** the group name the fleet's sets use: no feed may take it */
const RESERVED = ['fleet'];

export const FeedSchema = Type.Object(
  {
    name: Str('', { description: 'the feed name: its kernel sets (table inet pbx_guardian_<name>, ipsets pbxg-<name>-*), metrics and logs' }),
    kind: Str('list', { description: 'list (plain text, one address or CIDR a line) or apiban (the APIBAN API)' }),
    url: Str('', { description: 'list: the https:// URL of the list; apiban: the API base (default https://apiban.org/api)' }, { unit: 'url' }),
    key: Str('', { description: 'apiban: the API key (never logged)' }),
    interval: Duration('1h', { description: 'how often the feed is fetched' }),
    entryTimeout: Duration('', {
      description: "how long an entry stays in the kernel after the feed last gave it (default: list 3 x interval, apiban 7d, APIBAN's own active time)",
    }),
    maxEntries: Int(200000, 1, 10_000_000, { description: 'entries at most: a list with more is refused whole (the last good list is kept)' }, 'count'),
    maxBytes: Int(16 * 1024 * 1024, 1024, 256 * 1024 * 1024, { description: 'an answer longer than this is refused whole' }, 'bytes'),
    maxGarbageRatio: Num(0.1, 0, 1, { description: 'a list whose share of lines that are no address or CIDR is above this is refused whole' }),
    maxPages: Int(20, 1, 1000, { description: 'apiban: pages (of up to 250 addresses) followed in one refresh; the next refresh goes on from there' }),
    timeoutMs: Int(15000, 100, 300_000, { description: "one request's time limit" }, 'ms'),
  },
  { additionalProperties: false },
);

export type FeedConfig = Static<typeof FeedSchema>;

export const FeedsConfigSchema = ObjList(
  FeedSchema,
  {
    description: 'block-list feeds, each in kernel sets of its own, judged by the allow-list and scope limits (docs/feeds.md)',
    example: [
      '- { name: apiban, kind: apiban, key: "your APIBAN key", interval: 5m }',
      '- { name: voipbl, kind: list, url: "https://lists.example/voip.txt", interval: 4h, maxEntries: 200000 }',
    ],
  },
  'resolveFeeds',
);

function defaultFeedConfig(): Omit<FeedConfig, 'name'> {
  const { name: _n, ...d } = defaultsOf(FeedSchema);
  return d;
}

const KEYS = Object.keys(FeedSchema.properties);

const PRIVATE = ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '::1/128', 'fc00::/7', 'fe80::/10'].map(
  (c) => parseNetwork(c) as IpNetwork,
);

/**
 * Plain http only to a loopback or private address written as such: the list decides whom the
 * kernel drops, so anyone on the path of a public http fetch (or who answers its DNS) could ban
 * the PBX's own trunks. A host name never qualifies, since it goes through DNS.
 */
export function plainHttpAllowed(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const net = parseNetwork(host);
  if (!net) return false;
  return PRIVATE.some((p) => networkContains(p, net));
}

/** The seconds an entry of this feed stays in the kernel after it was last given. */
export function entryTimeoutS(f: FeedConfig): number {
  const t = f.entryTimeout === '' ? null : parseDuration(f.entryTimeout);
  if (t !== null) return t;
  return f.kind === 'apiban' ? APIBAN_ACTIVE_S : LIST_TIMEOUT_INTERVALS * (parseDuration(f.interval) ?? 3600);
}

/** Validates the `feeds:` list (each error names its key) and fills defaults. */
export function resolveFeeds(list: unknown): { feeds: FeedConfig[]; errors: string[] } {
  const errors: string[] = [];
  const out: FeedConfig[] = [];
  if (!Array.isArray(list)) return { feeds: [], errors: ['feeds: expected a list of {name, kind, url | key, interval}'] };
  const names = new Set<string>();
  list.forEach((raw: unknown, i) => {
    const at = `feeds[${i}]`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      errors.push(`${at}: expected a mapping {name, kind, url | key, interval}`);
      return;
    }
    const o = raw as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!KEYS.includes(k)) errors.push(`${at}.${k}: unknown key (known keys here: ${KEYS.join(', ')})`);
    const f = { ...defaultFeedConfig(), ...o } as FeedConfig;
    if (typeof f.name !== 'string' || !GROUP_NAME.test(f.name))
      errors.push(`${at}.name: 1-12 lower-case letters, digits or "_" (part of the kernel set names)`);
    else if (RESERVED.includes(f.name)) errors.push(`${at}.name: "${f.name}" is the fleet's set group: choose another name`);
    else if (names.has(f.name)) errors.push(`${at}.name: "${f.name}" is used twice`);
    else names.add(f.name);
    if (!(FEED_KINDS as readonly string[]).includes(f.kind)) errors.push(`${at}.kind: one of ${FEED_KINDS.join(', ')}`);
    if (f.kind === 'apiban' && f.url === '') f.url = APIBAN_URL;
    let url: URL | null = null;
    try {
      url = typeof f.url === 'string' ? new URL(f.url) : null;
    } catch {
      url = null;
    }
    if (!url || !(url.protocol === 'https:' || (url.protocol === 'http:' && plainHttpAllowed(url))))
      errors.push(
        `${at}.url: an https:// URL is required (http:// only to a loopback or private address written as one: the list decides whom the kernel drops)`,
      );
    else if (url.username || url.password || (f.kind === 'apiban' && url.search))
      errors.push(`${at}.url: no user, password${f.kind === 'apiban' ? ' or query' : ''} in the URL (they would be logged)`);
    if (f.kind === 'apiban' && (typeof f.key !== 'string' || !/^[A-Za-z0-9]{8,128}$/.test(f.key)))
      errors.push(`${at}.key: the APIBAN key, 8-128 letters or digits`);
    if (f.kind === 'list' && f.key !== '') errors.push(`${at}.key: only for kind apiban`);
    const iv = parseDuration(f.interval);
    if (iv === null || iv < 60 || iv > 7 * 86400) errors.push(`${at}.interval: a duration from 1m to 7d (e.g. 5m, 4h)`);
    if (f.entryTimeout !== '') {
      const t = parseDuration(f.entryTimeout);
      if (t === null || t < 60 || (iv !== null && t < iv)) errors.push(`${at}.entryTimeout: a duration of at least 1m and at least the interval`);
    }
    if (!Number.isInteger(f.maxEntries) || f.maxEntries < 1 || f.maxEntries > 10_000_000) errors.push(`${at}.maxEntries: from 1 to 10000000`);
    if (!Number.isInteger(f.maxBytes) || f.maxBytes < 1024 || f.maxBytes > 256 * 1024 * 1024) errors.push(`${at}.maxBytes: from 1024 to 268435456`);
    if (typeof f.maxGarbageRatio !== 'number' || !(f.maxGarbageRatio >= 0 && f.maxGarbageRatio <= 1)) errors.push(`${at}.maxGarbageRatio: from 0 to 1`);
    if (!Number.isInteger(f.maxPages) || f.maxPages < 1 || f.maxPages > 1000) errors.push(`${at}.maxPages: from 1 to 1000`);
    if (!Number.isInteger(f.timeoutMs) || f.timeoutMs < 100 || f.timeoutMs > 300_000) errors.push(`${at}.timeoutMs: from 100 to 300000`);
    out.push(f);
  });
  return { feeds: out, errors };
}
