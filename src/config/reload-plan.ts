/**
 * What a reload can apply, from the schema's marks: each changed key (config/changes.ts) is either
 * live (the running daemon applies it: src/reload.ts) or waits for a restart. Key names only,
 * never values (many are secrets).
 */
import { isSection, type Node } from '../common/config-schema.js';
import { changedKeys } from './changes.js';
import { ConfigSchema } from './schema.js';

export interface ReloadPlan {
  live: string[];
  restart: string[];
}

/** The schema key a changed path belongs to: a list or a map is one key ("odoo.outboxPolicy.Cdr.ttlSec" -> "odoo.outboxPolicy"). */
export function schemaKeyOf(path: string, schema: Node = ConfigSchema as Node): { key: string; node: Node } | null {
  let node = schema;
  const parts = path.split('.');
  for (let i = 0; i < parts.length; i++) {
    const next = isSection(node) ? node.properties![parts[i]!] : undefined;
    if (!next) return null;
    if (!isSection(next)) return { key: parts.slice(0, i + 1).join('.'), node: next };
    node = next;
  }
  return null;
}

/** The changed keys between two validated configs, split into live and restart (each key once, in file order of change). */
export function reloadPlan(prev: unknown, next: unknown): ReloadPlan {
  const plan: ReloadPlan = { live: [], restart: [] };
  const seen = new Set<string>();
  for (const path of changedKeys(prev, next)) {
    const hit = schemaKeyOf(path);
    const key = hit?.key ?? path;
    if (seen.has(key)) continue;
    seen.add(key);
    (hit?.node.reload === 'live' ? plan.live : plan.restart).push(key);
  }
  return plan;
}
