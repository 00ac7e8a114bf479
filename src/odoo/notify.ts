/**
 * The text of a job's outcome for the user who started it (`res_notify_uid`): the module's Ping
 * Agent, Ping Asterisk, System Information and Reload buttons send jobs without `res_model`, so
 * this notice is the only place their result appears. The earlier agents notified `str(result)`;
 * this says which job it was, then the result as an admin reads it (AMI fields as `Key: Value`).
 */

/** Odoo shows the notice in a toast: long enough for a CoreStatus, never a megabyte. */
export const NOTIFY_MAX_CHARS = 4000;
/** fields that hold a file or a secret, never shown */
const HIDDEN = new Set(['file_data', 'secret', 'password', 'Secret']);

export function successNotice(fun: string, result: unknown): string {
  const body = resultText(result, 0);
  const text = body === '' ? `${fun}: OK` : `${fun}: OK\n${body}`;
  return bound(text);
}

export function bound(text: string): string {
  if (text.length <= NOTIFY_MAX_CHARS) return text;
  return `${text.slice(0, NOTIFY_MAX_CHARS)}… (${text.length - NOTIFY_MAX_CHARS} more characters)`;
}

function resultText(v: unknown, depth: number): string {
  if (v === true || v === null || v === undefined) return '';
  if (v === false) return 'False';
  if (typeof v === 'string') return v.slice(0, NOTIFY_MAX_CHARS + 1);
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (depth > 2) return '…';
  if (Array.isArray(v)) {
    const parts: string[] = [];
    let size = 0;
    for (const item of v) {
      const t = resultText(item, depth + 1);
      parts.push(t);
      size += t.length + 2;
      if (size > NOTIFY_MAX_CHARS) break; // the rest would be cut anyway
    }
    return parts.filter(Boolean).join('\n\n');
  }
  if (typeof v === 'object') {
    const lines: string[] = [];
    let size = 0;
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
      if (HIDDEN.has(k)) continue;
      const t = typeof val === 'object' && val !== null ? (JSON.stringify(val)?.slice(0, 500) ?? '') : String(val);
      lines.push(`${k}: ${t}`);
      size += k.length + t.length + 3;
      if (size > NOTIFY_MAX_CHARS) break;
    }
    return lines.join('\n');
  }
  return '';
}
