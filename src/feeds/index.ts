/**
 * The feeds stage (docs/feeds.md): block lists (a plain-text list, the APIBAN API) fetched on an
 * interval, each enforced in kernel sets of its own (RemoteSet, group = the feed's name), every
 * entry judged by the guard's allow-list and scope limits first.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import {
  createBackend,
  groupFirewallConfig,
  RemoteSet,
  type FirewallBackend,
  type FirewallConfig,
  type FirewallEntry,
  type FirewallTarget,
  type RemoteSetHealth,
} from '../firewall/index.js';
import type { RemoteBanJudge } from '../guard/types.js';
import { parseNetwork } from '../net/ip.js';
import type { FeedConfig } from './config-schema.js';
import { Feed, type FeedHealth } from './feed.js';
import { feedMetrics } from './metrics.js';
import { loadState, saveState, stateFile } from './state.js';

export { FeedsConfigSchema, resolveFeeds, type FeedConfig } from './config-schema.js';
export type { FeedHealth, RefreshResult } from './feed.js';

export type FeedsHealth = (FeedHealth & { set: RemoteSetHealth })[];

export interface FeedsDeps {
  feeds: FeedConfig[];
  firewall: FirewallConfig;
  watchdogIntervalMs: number;
  judge: RemoteBanJudge;
  /** the guard's allow-list now (each feed's sets get it at their start) */
  allow: () => FirewallTarget[];
  /** where each feed's last good answer is kept across a restart (null: not kept) */
  stateDir: string | null;
  logger: Logger;
  registry?: Registry;
  fetch?: typeof fetch;
  /** a feed's set backend (tests) */
  backend?: (feed: string) => FirewallBackend;
  now?: () => number;
}

interface Held {
  feed: Feed;
  set: RemoteSet;
  file: string | null;
  saving: Promise<void> | null;
  again: boolean;
}

export class Feeds {
  private readonly held: Held[];

  constructor(private readonly deps: FeedsDeps) {
    const metrics = feedMetrics(
      deps.registry,
      deps.feeds.map((f) => f.name),
    );
    this.held = deps.feeds.map((config) => {
      const logger = deps.logger.child({ feed: config.name });
      const set = new RemoteSet({
        group: config.name,
        firewall: deps.firewall,
        watchdogIntervalMs: deps.watchdogIntervalMs,
        logger,
        backend: deps.backend?.(config.name),
        now: deps.now,
      });
      const h: Held = { feed: null as unknown as Feed, set, file: deps.stateDir ? stateFile(deps.stateDir, config.name) : null, saving: null, again: false };
      h.feed = new Feed({ config, set, judge: deps.judge, metrics, logger, fetch: deps.fetch, now: deps.now, onChange: () => this.save(h) });
      return h;
    });
  }

  get names(): string[] {
    return this.held.map((h) => h.feed.name);
  }

  /** the feed of this name (tests, admin) */
  feed(name: string): Feed | undefined {
    return this.held.find((h) => h.feed.name === name)?.feed;
  }

  /** Opens each feed's sets (of the local backend's kind), puts back the saved last good answer, then fetches. */
  async start(localBackend: string): Promise<void> {
    const now = (this.deps.now ?? Date.now)();
    for (const h of this.held) {
      await h.set.open(localBackend);
      if (h.file) {
        try {
          const st = loadState(h.file, this.configOf(h).maxEntries, now);
          if (st) {
            for (const e of st.entries) if (this.stillEnforceable(e.target)) h.set.put(e);
            h.feed.restore(st);
          }
        } catch (e) {
          this.deps.logger.warn({ feed: h.feed.name }, `feed ${h.feed.name}: the saved list is not used (${(e as Error).message.slice(0, 200)})`);
        }
      }
      await h.set.start(this.deps.allow());
      h.feed.start();
    }
  }

  /** the allow-list changed: each feed's kernel allow set follows, and entries now allow-listed leave */
  async setAllow(targets: FirewallTarget[]): Promise<void> {
    for (const h of this.held) {
      for (const e of h.set.list()) if (!this.stillEnforceable(e.target)) h.set.delete(e.target);
      h.feed.recount();
      await h.set.setAllow(targets);
    }
  }

  async pause(reason: string): Promise<void> {
    for (const h of this.held) await h.set.pause(reason);
  }

  async resume(): Promise<void> {
    for (const h of this.held) await h.set.resume();
  }

  /** each feed's set, for pbx-guardian why / bans (what covers an address) */
  lookups(): { kind: 'feed'; name: string; get(target: string): FirewallEntry | undefined }[] {
    return this.held.map((h) => ({ kind: 'feed' as const, name: h.feed.name, get: (t: string) => h.set.get(t) }));
  }

  health(): FeedsHealth {
    return this.held.map((h) => ({ ...h.feed.health(), set: h.set.health() }));
  }

  async stop(): Promise<void> {
    for (const h of this.held) {
      await h.feed.stop();
      await h.saving;
      await h.set.stop();
    }
  }

  private configOf(h: Held): FeedConfig {
    return this.deps.feeds.find((f) => f.name === h.feed.name)!;
  }

  private stillEnforceable(target: string): boolean {
    const net = parseNetwork(target);
    return net !== null && this.deps.judge.allowed(net) === null && this.deps.judge.scopeRefusal(net) === null;
  }

  /** one write at a time per feed; a change while writing writes once more after */
  private save(h: Held): void {
    if (!h.file) return;
    if (h.saving) {
      h.again = true;
      return;
    }
    const file = h.file;
    h.saving = saveState(file, { ...h.feed.state, entries: h.set.list() })
      .catch((e: Error) =>
        this.deps.logger.warn({ feed: h.feed.name }, `feed ${h.feed.name}: the list is not saved for a restart (${e.message.slice(0, 200)})`),
      )
      .finally(() => {
        h.saving = null;
        if (h.again) {
          h.again = false;
          this.save(h);
        }
      });
  }
}

/** null when no feed is configured */
export function createFeeds(deps: FeedsDeps): Feeds | null {
  return deps.feeds.length > 0 ? new Feeds(deps) : null;
}

/** pbx-guardian flush with no daemon running: each feed's table / sets go too. */
export async function flushFeedSets(firewall: FirewallConfig, feeds: FeedConfig[], logger: Logger): Promise<void> {
  if (firewall.backend === 'memory') return;
  for (const f of feeds) {
    const backend = await createBackend(groupFirewallConfig(firewall, f.name), logger);
    await backend.flush();
    await backend.close();
  }
}
