/**
 * The apply step of a reload: every key the schema marks live (src/config/reload-plan.ts) has its
 * entry in APPLY; the rest comes back in restartNeeded, by key. main.ts calls this from `reload`
 * after the guard took its new options (every guard.* key).
 */
import { reloadPlan } from './config/reload-plan.js';
import type { GuardianConfig } from './config/index.js';
import { restTokenEntries, type RestToken } from './rest/index.js';
import type { WebhookConfig } from './webhooks/index.js';

/** What the running daemon exposes to a reload (each null or absent when that part is not running). */
export interface ReloadTargets {
  logger: { level: string };
  restTokens: { replace(entries: ReturnType<typeof restTokenEntries>): void };
  odoo: {
    setAgentToken(token: string): boolean;
    setFagi(fagi: GuardianConfig['odoo']['fagi']): Promise<void>;
    setRecordingDirs(dirs: string[]): void;
  } | null;
  webhooks: { update(list: WebhookConfig[]): { applied: string[]; restartNeeded: string[] } } | null;
  /** starts the ban history prune again with this retention */
  historyRetention: (retention: string) => void;
}

export interface ReloadOutcome {
  applied: string[];
  restartNeeded: string[];
}

type Apply = (next: GuardianConfig, t: ReloadTargets, out: ReloadOutcome, key: string) => void | Promise<void>;

const done: Apply = (_n, _t, out, key) => void out.applied.push(key);

/** Live keys and how each is applied; a key prefix ends in '.' (the guard took its options already). */
export const APPLY: Record<string, Apply> = {
  'guard.': done,
  logLevel: (next, t, out, key) => {
    t.logger.level = next.logLevel;
    out.applied.push(key);
  },
  'rest.tokens': (next, t, out, key) => {
    t.restTokens.replace(restTokenEntries(next.rest.tokens as RestToken[]));
    out.applied.push(key);
  },
  'odoo.agentToken': (next, t, out, key) => {
    if (t.odoo?.setAgentToken(next.odoo.agentToken)) out.applied.push(key);
    else out.restartNeeded.push(`${key} (the job endpoint is not running)`);
  },
  webhooks: (next, t, out, key) => {
    if (!t.webhooks) return void out.restartNeeded.push(`${key} (no webhook was running)`);
    const r = t.webhooks.update(next.webhooks);
    out.applied.push(...r.applied);
    out.restartNeeded.push(...r.restartNeeded);
  },
  // FastAGI follows odoo.fagi.* (from the file or from Odoo's fagi_enabled / fagi_listen / fagi_port): the bridge moves it once for all three keys
  'odoo.fagi.': async (next, t, out, key) => {
    if (!t.odoo) return void out.restartNeeded.push(`${key} (the Odoo bridge is not running)`);
    try {
      await t.odoo.setFagi(next.odoo.fagi);
      out.applied.push(key);
    } catch (e) {
      out.restartNeeded.push(`${key} (FastAGI cannot listen on ${next.odoo.fagi.host}:${next.odoo.fagi.port}: ${(e as Error).message}; it is off)`);
    }
  },
  'odoo.recordingDirs': (next, t, out, key) => {
    if (!t.odoo) return void out.restartNeeded.push(`${key} (the Odoo bridge is not running)`);
    t.odoo.setRecordingDirs(next.odoo.recordingDirs);
    out.applied.push(key);
  },
  'store.historyRetention': (next, t, out, key) => {
    t.historyRetention(next.store.historyRetention);
    out.applied.push(key);
  },
};

export function applierOf(key: string): Apply | undefined {
  return APPLY[key] ?? Object.entries(APPLY).find(([k]) => k.endsWith('.') && key.startsWith(k))?.[1];
}

/** Applies what can be applied of `next` over `prev`; names the rest (keys, never values). */
export async function applyReload(prev: GuardianConfig, next: GuardianConfig, targets: ReloadTargets): Promise<ReloadOutcome> {
  const plan = reloadPlan(prev, next);
  const out: ReloadOutcome = { applied: [], restartNeeded: [...plan.restart] };
  for (const key of plan.live) {
    const apply = applierOf(key);
    if (apply) await apply(next, targets, out, key);
    else out.restartNeeded.push(key);
  }
  return out;
}
