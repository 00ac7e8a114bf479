/** `pbx-guardian config show`: the effective config (file over defaults, environment over the
 *  file), every key with where its value came from; secrets masked. */
import { configSourceOf, isSecretKey, type GuardianConfig } from '../config/index.js';
import { printable, table } from './table.js';

export type Origin = 'default' | 'file' | 'env';

export interface ShownKey {
  key: string;
  value: unknown;
  origin: Origin;
}

const MASK = '********';

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hasPath(doc: unknown, key: string): boolean {
  let node = doc;
  for (const k of key.split('.')) {
    if (!isPlain(node) || !(k in node)) return false;
    node = node[k];
  }
  return true;
}

/** A value with every secret in it masked (a list of mappings: rest.tokens[].token, webhooks[].secret). */
function mask(key: string, value: unknown): unknown {
  if (isSecretKey(key)) return value === '' || value === null || value === undefined ? value : MASK;
  if (Array.isArray(value)) return value.map((v, i) => mask(`${key}[${i}]`, v));
  if (isPlain(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mask(`${key}.${k}`, v)]));
  return value;
}

/** Every leaf key of the config (a list or an open map is one key), masked, with its origin. */
export function configKeys(cfg: GuardianConfig): ShownKey[] {
  const src = configSourceOf(cfg);
  const out: ShownKey[] = [];
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(node)) {
      const key = prefix ? `${prefix}.${k}` : k;
      // a section walks on; an open map (odoo events, rest tokens) is shown whole
      if (isPlain(v) && !hasOpenKeys(key)) {
        walk(v, key);
        continue;
      }
      const origin: Origin = src?.envKeys.includes(key) ? 'env' : src && hasPath(src.doc, key) ? 'file' : 'default';
      out.push({ key, value: mask(key, v), origin });
    }
  };
  walk(cfg as unknown as Record<string, unknown>, '');
  return out;
}

/** Mappings whose keys are the user's own: shown as one value. */
function hasOpenKeys(key: string): boolean {
  return /(^|\.)(events|eventMap|headers|labels|settings)$/.test(key);
}

export function formatConfig(keys: ShownKey[], source: string): string {
  const fromFile = keys.filter((k) => k.origin !== 'default').length;
  return [
    `# ${source}: ${fromFile} of ${keys.length} keys set (file or environment), the rest are defaults; secrets masked`,
    table(
      ['KEY', 'ORIGIN', 'VALUE'],
      keys.map((k) => [k.key, k.origin, printable(JSON.stringify(k.value) ?? 'null').slice(0, 200)]),
    ),
  ].join('\n');
}
