/**
 * Which config keys differ between two configs (for reload): leaf key paths such as "rest.port" or
 * "odoo.agentToken"; a list counts as one value. Only names, never values (many are secrets).
 */
export function changedKeys(prev: unknown, next: unknown, path = ''): string[] {
  const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isMap(prev) && isMap(next)) {
    const keys = new Set([...Object.keys(prev), ...Object.keys(next)]);
    return [...keys].flatMap((k) => changedKeys(prev[k], next[k], path ? `${path}.${k}` : k));
  }
  return JSON.stringify(prev) === JSON.stringify(next) ? [] : [path || '(config)'];
}
