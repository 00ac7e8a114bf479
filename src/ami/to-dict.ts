import type { AmiMessage } from './types.js';

/** AMI message → dict; duplicate keys become lists (like the Salt agent's panoramisk messages). */
export function messageToDict(m: AmiMessage): Record<string, unknown> {
  const o: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of m.headers) {
    const cur = o[k];
    if (cur === undefined) o[k] = v;
    else if (Array.isArray(cur)) cur.push(v);
    else o[k] = [cur, v];
  }
  return { ...o };
}
