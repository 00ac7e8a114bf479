/**
 * The `webhooks:` config section (src/common/config-schema.ts, docs/config.md): a list of
 * subscribers, each entry checked here (its errors name webhooks[i].key) and filled with defaults.
 */
import { Type } from '@sinclair/typebox';
import { defaultsOf, Duration, Int, ObjList, Str, type Static } from '../common/config-schema.js';
import { parseDuration } from '../common/duration.js';

const live = 'live' as const;

/** One subscriber; url, secret, timeoutMs and maxBackoffMs apply on reload (WebhookDispatcher.update). */
export const WebhookSchema = Type.Object(
  {
    name: Str('', { description: "the subscriber's name (its outbox, metrics and logs)" }),
    url: Str('', { description: 'http:// or https:// URL the events are POSTed to', reload: live }, { unit: 'url' }),
    events: Type.Array(Type.String(), { default: [], description: 'event names; "*" = every AMI event (think twice: that is a lot)' }),
    match: Type.Record(Type.String(), Type.Union([Type.String(), Type.Array(Type.String())]), {
      default: {},
      description: 'field -> value or list of values; every field must match (field names case-insensitive)',
    }),
    secret: Str('', { description: 'HMAC-SHA256 key of x-pbx-guardian-signature (16+ characters)', reload: live }),
    maxRows: Int(10000, 1, 10_000_000, { description: 'outbox rows kept for this subscriber while it is down (oldest dropped first)' }, 'count'),
    ttl: Duration('1d', { description: 'an undelivered event is dropped after this long' }),
    timeoutMs: Int(5000, 100, 120_000, { description: "one POST's time limit", reload: live }, 'ms'),
    maxBackoffMs: Int(60000, 10, 3_600_000, { description: 'retry backoff cap', reload: live }, 'ms'),
  },
  { additionalProperties: false },
);

export type WebhookConfig = Static<typeof WebhookSchema>;

export const WebhooksConfigSchema = ObjList(
  WebhookSchema,
  {
    description: 'signed event POSTs, one durable queue per subscriber: [{name, url, events, match, secret, maxRows, ttl, timeoutMs, maxBackoffMs}]',
    reload: live,
    example: [
      '- name: crm',
      '  url: https://crm.example/hooks/pbx',
      '  events: [Newchannel, Hangup, GuardianBan]',
      '  match: { Context: [from-trunk] }',
      '  secret: "32+ random characters"',
    ],
  },
  'resolveWebhooks',
);

/** An entry's defaults (name, url and secret have none). */
export function defaultWebhookConfig(): Omit<WebhookConfig, 'name' | 'url' | 'secret'> {
  const { name: _n, url: _u, secret: _s, ...d } = defaultsOf(WebhookSchema);
  return d;
}

const KEYS = Object.keys(WebhookSchema.properties);

/** Validates the `webhooks:` list (each error names its key) and fills defaults. */
export function resolveWebhooks(list: unknown): { webhooks: WebhookConfig[]; errors: string[] } {
  const errors: string[] = [];
  const out: WebhookConfig[] = [];
  if (!Array.isArray(list)) return { webhooks: [], errors: ['webhooks: expected a list of {name, url, events, match, secret}'] };
  const names = new Set<string>();
  list.forEach((raw: unknown, i) => {
    const at = `webhooks[${i}]`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      errors.push(`${at}: expected a mapping {name, url, events, match, secret}`);
      return;
    }
    const o = raw as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!KEYS.includes(k)) errors.push(`${at}.${k}: unknown key (known keys here: ${KEYS.join(', ')})`);
    const w = { ...defaultWebhookConfig(), ...o } as WebhookConfig;
    if (typeof w.name !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(w.name)) errors.push(`${at}.name: 1-64 letters, digits, "_", "." or "-"`);
    else if (names.has(w.name)) errors.push(`${at}.name: "${w.name}" is used twice`);
    else names.add(w.name);
    let url: URL | null = null;
    try {
      url = typeof w.url === 'string' ? new URL(w.url) : null;
    } catch {
      url = null;
    }
    if (!url || !/^https?:$/.test(url.protocol)) errors.push(`${at}.url: an http:// or https:// URL is required`);
    else if (url.username || url.password)
      errors.push(
        `${at}.url: a user or password in the URL is not supported (and would be logged): the receiver checks x-pbx-guardian-signature with the secret`,
      );
    if (!Array.isArray(w.events) || w.events.length === 0 || w.events.some((e) => typeof e !== 'string' || !/^(\*|[A-Za-z0-9_]{1,64})$/.test(e)))
      errors.push(`${at}.events: a non-empty list of event names (e.g. [Newchannel, Hangup, GuardianBan])`);
    if (
      w.match === null ||
      typeof w.match !== 'object' ||
      Array.isArray(w.match) ||
      Object.entries(w.match).some(
        ([k, v]) => !/^[A-Za-z0-9_-]{1,64}$/.test(k) || !(typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))),
      )
    ) {
      errors.push(`${at}.match: a mapping of field name to a string or a list of strings`);
    }
    if (typeof w.secret !== 'string' || w.secret.length < 16)
      errors.push(`${at}.secret: at least 16 characters (the receiver checks x-pbx-guardian-signature with it)`);
    if (!Number.isInteger(w.maxRows) || w.maxRows < 1 || w.maxRows > 10_000_000) errors.push(`${at}.maxRows: from 1 to 10000000`);
    if (parseDuration(w.ttl) === null) errors.push(`${at}.ttl: "${String(w.ttl)}" is not a duration (e.g. 1h, 1d)`);
    if (!Number.isInteger(w.timeoutMs) || w.timeoutMs < 100 || w.timeoutMs > 120_000) errors.push(`${at}.timeoutMs: from 100 to 120000`);
    if (!Number.isInteger(w.maxBackoffMs) || w.maxBackoffMs < 10 || w.maxBackoffMs > 3_600_000) errors.push(`${at}.maxBackoffMs: from 10 to 3600000`);
    out.push(w);
  });
  return { webhooks: out, errors };
}
