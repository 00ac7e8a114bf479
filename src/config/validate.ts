/**
 * Validation against the schema (src/common/config-schema.ts): a small walker of our own rather
 * than TypeBox's Value.Errors, so that every error names the full key path in the words the
 * project has always used ("ami.port: expected a number, got string", "... unknown key (known keys
 * here: ...)", "... must be a whole number from 1 to 600000") and a secret's value is never shown.
 */
import { parseDuration } from '../common/duration.js';
import { isSecretKey } from '../common/redact.js';
import { defaultsOf, enumValues, isOpenMap, isSection, type Node } from '../common/config-schema.js';

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kindOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v;
}

/** the JSON type a leaf holds, as the errors say it */
function leafType(s: Node): string {
  if (enumValues(s)) return 'string';
  return s.type === 'integer' ? 'number' : String(s.type);
}

/**
 * The user's values over the schema's defaults, checking every key and type; errors name the key.
 * A wrongly typed value keeps the default (its error is reported).
 */
export function mergeWithDefaults(schema: Node, user: unknown, path: string, errors: string[]): unknown {
  const defaults = defaultsOf(schema) as Record<string, unknown>;
  if (user === undefined || user === null) return defaults;
  if (!isPlainObject(user)) {
    errors.push(`${path || 'config'}: expected a mapping, got ${kindOf(user)}`);
    return defaults;
  }
  const props = schema.properties!;
  const out: Record<string, unknown> = defaults;
  for (const [key, value] of Object.entries(user)) {
    const at = path ? `${path}.${key}` : key;
    const s = props[key];
    if (!s) {
      errors.push(`${at}: unknown key (known keys here: ${Object.keys(props).join(', ')})`);
      continue;
    }
    const v = mergeValue(s, value, at, errors);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** One key's value, converted where the file may write it otherwise ("5038" for 5038, 30 for "30"); undefined: keep the default. */
function mergeValue(s: Node, value: unknown, at: string, errors: string[]): unknown {
  if (isSection(s)) return mergeWithDefaults(s, value, at, errors);
  if (isOpenMap(s)) {
    if (isPlainObject(value)) return { ...(s.default as object), ...value };
    errors.push(`${at}: expected a mapping`);
    return undefined;
  }
  if (s.type === 'array') {
    const item = s.items!;
    if (item.type === 'object') {
      if (Array.isArray(value)) return value; // each entry: its stage's own check (s.checkedBy)
      errors.push(`${at}: expected a list of mappings`);
      return undefined;
    }
    const want = item.type === 'string' ? 'string' : 'number';
    if (!Array.isArray(value) || value.some((v) => typeof v !== want)) {
      errors.push(`${at}: expected a list of ${want}s`);
      return undefined;
    }
    return value;
  }
  const want = leafType(s);
  if (want === 'number' && typeof value === 'string' && /^\d+$/.test(value)) return Number(value);
  if (s.format === 'duration' && typeof value === 'number') return String(value); // a duration in seconds
  if (typeof value !== want) {
    const shown = isSecretKey(at) ? 'its value is not shown: a secret' : JSON.stringify(value)?.slice(0, 60);
    errors.push(`${at}: expected a ${want}, got ${kindOf(value)} (${shown})`);
    return undefined;
  }
  return value;
}

/** Bounds, enums, durations, patterns and paths of a merged (well-typed) config, each naming its key. */
export function constraintErrors(schema: Node, value: unknown, path: string): string[] {
  if (isSection(schema)) {
    return Object.entries(schema.properties!).flatMap(([k, s]) => constraintErrors(s, (value as Record<string, unknown>)[k], path ? `${path}.${k}` : k));
  }
  if (schema.type === 'array' && schema.items!.type !== 'object' && Array.isArray(value)) {
    return value.flatMap((v, i) => constraintErrors(schema.items!, v, `${path}[${i}]`));
  }
  const e = leafError(schema, value);
  return e === null ? [] : [`${path}: ${e}`];
}

function leafError(s: Node, v: unknown): string | null {
  const values = enumValues(s);
  if (values) return values.includes(v as string) ? null : `"${String(v)}" is not one of ${values.join(', ')}`;
  if (s.type === 'integer' || s.type === 'number') return numberError(s, v as number);
  if (s.type !== 'string' || typeof v !== 'string') return null;
  if (s.format === 'duration') {
    const sec = parseDuration(v);
    if (sec === null) return `"${v}" is not a duration (e.g. 30s, 10m, 1h, 7d)`;
    if (sec === 0 && s.zeroOff) return null;
    if ((s.minSeconds !== undefined && sec < s.minSeconds) || (s.maxSeconds !== undefined && sec > s.maxSeconds))
      return s.boundsError ?? `"${v}" must be ${s.shape}`;
    return null;
  }
  if (s.absolutePath && !v.startsWith('/')) return `"${v.slice(0, 120)}" must be an absolute path`;
  if (s.pattern !== undefined && !new RegExp(s.pattern).test(v)) return `"${v.slice(0, 80)}" must be ${s.shape}`;
  return null;
}

function numberError(s: Node, v: number): string | null {
  if (s.unit === 'port') return Number.isInteger(v) && v >= 0 && v <= 65535 ? null : `${v} is not a TCP port (0-65535)`;
  if (s.exclusiveMinimum !== undefined) return Number.isFinite(v) && v > s.exclusiveMinimum ? null : `${v} must be a positive number`;
  const whole = s.type === 'integer';
  const low = s.minimum ?? -Infinity;
  const high = s.maximum ?? Infinity;
  if ((!whole || Number.isInteger(v)) && v >= low && v <= high) return null;
  const range = s.maximum === undefined ? `of at least ${low}` : `from ${low} to ${high}`;
  return `${v} must be ${whole ? 'a whole number ' : ''}${range}`;
}
