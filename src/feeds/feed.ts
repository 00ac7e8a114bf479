/**
 * One feed: fetched on its interval (backoff on failure), every entry judged by the guard's
 * allow-list and scope limits before it reaches its own kernel sets. A list replaces the set
 * whole; an answer that is refused (too big, not text, too much garbage) changes nothing, so the
 * last good list stays until its entries' timeout. APIBAN is incremental: each page adds.
 */
import type { Logger } from 'pino';
import type { FirewallEntry } from '../firewall/index.js';
import type { RemoteBanJudge } from '../guard/types.js';
import { parseDuration } from '../common/duration.js';
import { redactUrl } from '../common/redact.js';
import { backoffMs } from '../net/backoff.js';
import { entryTimeoutS, type FeedConfig } from './config-schema.js';
import type { FeedMetrics } from './metrics.js';
import { FeedRefusedError, parseApibanPage, parseList, type FeedTarget } from './parse.js';
import { FeedFetchError, get, hide } from './source.js';

/** the set a feed fills (RemoteSet) */
export interface FeedSetPort {
  readonly size: number;
  put(entry: FirewallEntry): void;
  delete(target: string): void;
  list(): FirewallEntry[];
}

export type RefreshResult = 'ok' | 'unchanged' | 'refused' | 'failed';
export type RefuseReason = 'allowed' | 'scope' | 'garbage' | 'cap';

export interface FeedHealth {
  name: string;
  kind: string;
  /** the list URL, or the APIBAN base (never the key) */
  url: string;
  intervalMs: number;
  entryTimeoutMs: number;
  entries: number;
  lastSuccessAt: number | null;
  lastAttemptAt: number | null;
  failingSince: number | null;
  lastError: string | null;
  /** entries of the feed not enforced, by reason, since the start */
  refused: Record<RefuseReason, number>;
  /** refreshes refused whole (the last good list kept) */
  refusedAnswers: number;
  /** apiban: the ID the next refresh asks from */
  cursor: string | null;
}

export interface FeedOptions {
  config: FeedConfig;
  set: FeedSetPort;
  judge: RemoteBanJudge;
  metrics: FeedMetrics;
  logger: Logger;
  /** after each refresh that changed the set (the state file) */
  onChange?: () => void;
  fetch?: typeof fetch;
  now?: () => number;
}

/** the first retry after a failure; doubling up to the interval */
const FIRST_RETRY_MS = 30_000;
/** APIBAN sends pages of 250 (https://apiban.org/doc.html): a shorter page is the last one */
const APIBAN_PAGE = 250;
/** entries put between two turns of the event loop */
const REPLACE_CHUNK = 2000;

export class Feed {
  readonly name: string;
  readonly intervalMs: number;
  readonly entryTimeoutMs: number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<RefreshResult> | null = null;
  private stopped = false;
  private failures = 0;
  private cursor: string | null = null;
  private readonly h: Omit<FeedHealth, 'entries' | 'cursor'>;
  private readonly now: () => number;

  constructor(private readonly o: FeedOptions) {
    const c = o.config;
    this.name = c.name;
    this.now = o.now ?? Date.now;
    this.intervalMs = (parseDuration(c.interval) ?? 3600) * 1000;
    this.entryTimeoutMs = entryTimeoutS(c) * 1000;
    const refused = { allowed: 0, scope: 0, garbage: 0, cap: 0 };
    this.h = {
      name: c.name,
      kind: c.kind,
      url: c.url,
      intervalMs: this.intervalMs,
      entryTimeoutMs: this.entryTimeoutMs,
      lastSuccessAt: null,
      lastAttemptAt: null,
      failingSince: null,
      lastError: null,
      refused,
      refusedAnswers: 0,
    };
  }

  /** what a restart keeps (the state file): the APIBAN cursor and the last success */
  restore(state: { cursor: string | null; lastSuccessAt: number | null }): void {
    this.cursor = state.cursor;
    this.h.lastSuccessAt = state.lastSuccessAt;
  }

  get state(): { cursor: string | null; lastSuccessAt: number | null } {
    return { cursor: this.cursor, lastSuccessAt: this.h.lastSuccessAt };
  }

  /** The first refresh now (a refresh() right after joins it), then one each interval; after a restart with a fresh state file, at its time. */
  start(): void {
    const last = this.h.lastSuccessAt;
    const wait = last === null ? 0 : Math.max(0, Math.min(this.intervalMs, last + this.intervalMs - this.now()));
    if (wait === 0) this.cycle();
    else this.schedule(wait);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  health(): FeedHealth {
    return { ...this.h, refused: { ...this.h.refused }, entries: this.o.set.size, cursor: this.cursor };
  }

  /** the entries gauge after the set changed outside a refresh (the allow-list grew) */
  recount(): void {
    this.o.metrics.entries.set({ feed: this.name }, this.o.set.size);
  }

  /** One refresh (the timer's, or a test's); never throws. Two never run at once. */
  refresh(): Promise<RefreshResult> {
    this.running ??= this.fetchOnce().finally(() => (this.running = null));
    return this.running;
  }

  private cycle(): void {
    void this.refresh().then((r) => this.schedule(r === 'failed' ? backoffMs(this.failures - 1, FIRST_RETRY_MS, this.intervalMs) : this.intervalMs));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.cycle(), ms);
    this.timer.unref();
  }

  private async fetchOnce(): Promise<RefreshResult> {
    const { metrics, config } = this.o;
    const now = this.now();
    this.h.lastAttemptAt = now;
    let result: RefreshResult;
    try {
      result = config.kind === 'apiban' ? await this.apiban(now) : await this.list(now);
      this.failures = 0;
      this.h.failingSince = null;
      this.h.lastError = null;
      this.h.lastSuccessAt = now;
      metrics.lastSuccess.set({ feed: this.name }, Math.floor(now / 1000));
    } catch (e) {
      const refused = e instanceof FeedRefusedError;
      result = refused ? 'refused' : 'failed';
      const msg = hide((e as Error).message, config.key).slice(0, 300);
      this.failures++;
      this.h.failingSince ??= now;
      this.h.lastError = msg;
      if (refused) this.h.refusedAnswers++;
      this.o.logger.warn(
        { feed: this.name, result, failures: this.failures, entries: this.o.set.size },
        `feed ${this.name}: ${msg}; the ${this.o.set.size} entries of the last good answer stay (they end ${Math.round(this.entryTimeoutMs / 60_000)} min after their last refresh)`,
      );
    }
    metrics.refreshes.inc({ feed: this.name, result });
    metrics.entries.set({ feed: this.name }, this.o.set.size);
    return result;
  }

  private async list(now: number): Promise<RefreshResult> {
    const c = this.o.config;
    const { status, bytes } = await get({ url: c.url, shownUrl: redactUrl(c.url), timeoutMs: c.timeoutMs, maxBytes: c.maxBytes, fetch: this.o.fetch });
    if (status !== 200) throw new FeedFetchError(`${redactUrl(c.url)} answered HTTP ${status}`, status);
    const parsed = parseList(bytes, c.maxEntries, c.maxGarbageRatio);
    this.refuse('garbage', parsed.garbage);
    const expiresAt = now + this.entryTimeoutMs;
    const keep: FirewallEntry[] = [];
    for (const t of parsed.targets) if (this.enforceable(t)) keep.push(entryOf(t, expiresAt));
    await this.replace(keep);
    this.o.logger.info(
      { feed: this.name, entries: keep.length, garbage: parsed.garbage },
      `feed ${this.name}: ${keep.length} entries enforced (${parsed.targets.length - keep.length} not: allow-listed or out of scope; ${parsed.garbage} garbage lines)`,
    );
    this.o.onChange?.();
    return 'ok';
  }

  /** GET {url}/{key}/banned[/{ID}], page after page up to maxPages; the next refresh goes on from the last ID. */
  private async apiban(now: number): Promise<RefreshResult> {
    const c = this.o.config;
    const base = c.url.replace(/\/+$/, '');
    const expiresAt = now + this.entryTimeoutMs;
    let added = 0;
    for (let page = 0; page < c.maxPages; page++) {
      const path = this.cursor === null ? 'banned' : `banned/${this.cursor}`;
      const shown = `APIBAN ${base}/…/${path}`;
      const { status, bytes } = await get({
        url: `${base}/${encodeURIComponent(c.key)}/${path}`,
        shownUrl: shown,
        timeoutMs: c.timeoutMs,
        maxBytes: c.maxBytes,
        secret: c.key,
        fetch: this.o.fetch,
      });
      const text = bytes.toString('utf8');
      // "no new bans" comes as HTTP 400 {"ipaddress":["no new bans"],"ID":"none"} (the API docs)
      if (status === 400 && /"ID"\s*:\s*"none"/.test(text)) break;
      if (status === 403) throw new FeedFetchError(`${shown} answered HTTP 403: the key is refused (check feeds[].key)`, status);
      if (status === 429) {
        // rate limited mid-way: what came so far stays, the next refresh goes on from this.cursor
        if (page > 0) break;
        throw new FeedFetchError(`${shown} answered HTTP 429: rate limited (APIBAN allows a few requests in 2 minutes)`, status);
      }
      if (status !== 200) throw new FeedFetchError(`${shown} answered HTTP ${status}`, status);
      const p = parseApibanPage(text);
      if (p.next === null) break;
      this.refuse('garbage', p.garbage);
      for (const t of p.targets) {
        if (!this.enforceable(t)) continue;
        if (this.o.set.size >= c.maxEntries) {
          this.refuse('cap', 1);
          continue;
        }
        this.o.set.put(entryOf(t, expiresAt));
        added++;
      }
      this.cursor = p.next;
      if (p.targets.length + p.garbage < APIBAN_PAGE) break;
    }
    if (added > 0) this.o.logger.info({ feed: this.name, added, entries: this.o.set.size }, `feed ${this.name}: ${added} new APIBAN entries enforced`);
    this.o.onChange?.();
    return added > 0 ? 'ok' : 'unchanged';
  }

  /**
   * RemoteSet.replace in chunks with a turn of the event loop between them: 200 000 puts in one
   * go held the loop for 0.8 s (bench/feeds.ts), AMI events and the kernel writes waited.
   */
  private async replace(list: FirewallEntry[]): Promise<void> {
    const keep = new Set<string>();
    for (let i = 0; i < list.length; i += REPLACE_CHUNK) {
      for (const e of list.slice(i, i + REPLACE_CHUNK)) {
        keep.add(e.target);
        this.o.set.put(e);
      }
      await new Promise((r) => setImmediate(r));
    }
    for (const e of this.o.set.list()) if (!keep.has(e.target)) this.o.set.delete(e.target);
  }

  private enforceable(t: FeedTarget): boolean {
    const { judge } = this.o;
    if (judge.allowed(t.net) !== null) return this.refuse('allowed', 1);
    if (judge.scopeRefusal(t.net) !== null) return this.refuse('scope', 1);
    return true;
  }

  private refuse(reason: RefuseReason, n: number): false {
    if (n > 0) {
      this.h.refused[reason] += n;
      this.o.metrics.refused.inc({ feed: this.name, reason }, n);
    }
    return false;
  }
}

function entryOf(t: FeedTarget, expiresAt: number): FirewallEntry {
  return { target: t.target, family: t.family, isNetwork: t.isNetwork, expiresAt };
}
