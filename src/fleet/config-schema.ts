/**
 * The `crowdsec:` config section (src/common/config-schema.ts, docs/fleet.md): the guardian as a
 * machine (it pushes its bans to a CrowdSec Local API) and as a bouncer (it enforces the fleet's
 * decisions in sets of their own).
 */
import { Bool, Duration, Int, Section, Str, StrList, type Static } from '../common/config-schema.js';
import { parseDuration } from '../common/duration.js';

/** ban sources that may be pushed (src/guard/types.ts BanSource) */
export const PUSHABLE_SOURCES = ['rule', 'recidive', 'manual', 'odoo', 'api'] as const;

export const CrowdsecConfigSchema = Section(
  {
    url: Str('', { description: 'the Local API, e.g. http://lapi.example:8080 ("" = off)' }, { unit: 'url' }),
    timeoutMs: Int(5000, 100, 120_000, { description: "one request's time limit" }, 'ms'),
    maxBackoffMs: Int(30000, 100, 3_600_000, { description: 'retry backoff cap (a failed push or poll)' }, 'ms'),
    machine: Section(
      {
        enabled: Bool(false, { description: 'push the bans this guardian decides as alerts with their decision' }),
        login: Str('', { description: 'the machine name registered with cscli machines add' }),
        password: Str('', { description: "the machine's password" }),
        push: StrList(['rule', 'recidive'], {
          description: 'which bans are pushed, by source: rule, recidive, manual, odoo, api',
        }),
        batchWindowMs: Int(100, 0, 60_000, { description: 'bans decided within this window go in one POST /v1/alerts' }, 'ms'),
        batchMaxSize: Int(100, 1, 1000, { description: 'alerts in one POST, at most' }, 'count'),
        maxRows: Int(100000, 1, 10_000_000, { description: 'pushes kept in the durable queue while the LAPI is down (oldest dropped first)' }, 'count'),
        permanentDuration: Duration('8760h', { description: 'the duration pushed for a permanent ban (CrowdSec decisions always have one)' }),
      },
      { description: 'the guardian as a LAPI machine (watcher)' },
    ),
    bouncer: Section(
      {
        enabled: Bool(false, { description: "enforce the fleet's decisions (its own kernel sets: the local bans are never touched)" }),
        apiKey: Str('', { description: 'the bouncer key from cscli bouncers add' }),
        interval: Duration('500ms', { description: 'how often GET /v1/decisions/stream is polled' }, { minSeconds: 0.05, maxSeconds: 3600 }),
        maxDecisions: Int(1_000_000, 1, 10_000_000, { description: 'remote decisions enforced at most (the rest are refused and counted)' }, 'count'),
        maxResponseBytes: Int(
          64 * 1024 * 1024,
          1024,
          1024 * 1024 * 1024,
          { description: 'a stream answer longer than this is refused (nothing lost: the same poll is retried)' },
          'bytes',
        ),
      },
      { description: 'the guardian as a LAPI bouncer' },
    ),
  },
  { description: 'CrowdSec Local API: share bans with a fleet of guardians and stock bouncers (docs/fleet.md)' },
);

export type CrowdsecConfig = Static<typeof CrowdsecConfigSchema>;

/** What the schema cannot say; each error names its key. */
export function crowdsecConfigErrors(c: CrowdsecConfig): string[] {
  const errors: string[] = [];
  const on = c.machine.enabled || c.bouncer.enabled;
  if (!on) return errors;
  let url: URL | null = null;
  try {
    url = new URL(c.url);
  } catch {
    url = null;
  }
  if (!url || !/^https?:$/.test(url.protocol))
    errors.push('crowdsec.url: an http:// or https:// URL of the Local API is required (e.g. http://lapi.example:8080)');
  else if (url.username || url.password || url.search)
    errors.push('crowdsec.url: no user, password or query in the URL (they would be logged): use machine.password and bouncer.apiKey');
  if (c.machine.enabled) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(c.machine.login))
      errors.push('crowdsec.machine.login: 1-64 letters, digits, "_", "." or "-" (the name given to cscli machines add)');
    if (c.machine.password.length < 8) errors.push('crowdsec.machine.password: at least 8 characters (the password given to cscli machines add)');
    for (const s of c.machine.push)
      if (!(PUSHABLE_SOURCES as readonly string[]).includes(s))
        errors.push(`crowdsec.machine.push: "${String(s).slice(0, 40)}" is not one of ${PUSHABLE_SOURCES.join(', ')}`);
    const p = parseDuration(c.machine.permanentDuration);
    if (p === null || p < 60) errors.push('crowdsec.machine.permanentDuration: a duration of 1m or more (e.g. 8760h)');
  }
  if (c.bouncer.enabled && !/^[\x21-\x7e]{8,256}$/.test(c.bouncer.apiKey))
    errors.push('crowdsec.bouncer.apiKey: 8-256 printable characters without spaces (the key of cscli bouncers add)');
  return errors;
}
