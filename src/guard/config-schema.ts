/** The `guard:` config section (src/common/config-schema.ts, docs/config.md); a reload applies all of it but hostLookupInterval. */
import { join } from 'node:path';
import { Bool, Duration, Int, Num, Section, Str, StrList, type Static } from '../common/config-schema.js';
import { parseDuration } from '../common/duration.js';
import { PACKAGE_ROOT } from '../paths.js';

const live = 'live' as const;

export const GuardConfigSchema = Section(
  {
    rulesDir: Str(
      join(PACKAGE_ROOT, 'rules'),
      { description: 'rules/*.yaml: the detection rules', reload: live, defaultText: "the package's rules/" },
      { unit: 'path' },
    ),
    allow: StrList(
      [],
      {
        description: 'never banned, by any path (rules, CLI, API, Odoo); loopback, the AMI host and the Odoo host are always added',
        reload: live,
        example: ['- 192.0.2.0/24', '- 2001:db8:100::/48'],
      },
      { unit: 'addresses', checkedBy: 'addressListErrors' },
    ),
    ipv6Prefix: Int(64, 16, 128, { description: 'IPv6 attackers are counted and banned by this prefix', reload: live }, 'prefix length'),
    widestBanIPv4: Int(
      16,
      8,
      32,
      {
        description:
          "the widest IPv4 network one ban may cover, from any path (link-local, multicast, reserved ranges and this host's own addresses are never banned)",
        reload: live,
      },
      'prefix length',
    ),
    widestBanIPv6: Int(32, 16, 128, { description: 'the widest IPv6 network one ban may cover', reload: live }, 'prefix length'),
    maxBanDuration: Duration(
      '365d',
      { description: 'longest ban: longer manual bans are refused, rule bans capped ("permanent" is always allowed)', reload: live },
      { minSeconds: 1, maxSeconds: 36500 * 86400, shape: 'from 1s to 36500d (longer bans are "permanent")' },
    ),
    manualBanDuration: Duration(
      '1d',
      {
        description: 'a manual ban (CLI, REST) given no duration lasts this long; 0 = permanent (a ban is permanent when asked for: --for permanent)',
        reload: live,
      },
      { minSeconds: 0, zeroOff: true, shape: '0 (permanent) or a duration like 1h, 1d, 7d' },
    ),
    maxTracked: Int(
      1_000_000,
      1000,
      undefined,
      { description: 'per-address failure state kept at most (least recently seen forgotten first)', reload: live },
      'count',
    ),
    trackTtl: Duration('12h', { description: 'per-address failure state is forgotten after this long idle', reload: live }),
    escalation: Section(
      {
        factor: Num(2, 1, 100, { description: 'each new ban of the same address within lookback lasts factor times longer', reload: live }),
        max: Duration('30d', { description: 'up to this long', reload: live }),
        lookback: Duration('30d', { description: 'earlier bans counted from the history this far back', reload: live }),
      },
      { description: 'longer bans for an address banned again' },
    ),
    recidive: Section(
      {
        enabled: Bool(true, { description: 'bans automatic bans within `within` turn into one long ban', reload: live }),
        bans: Int(5, 1, 1000, { description: 'this many automatic bans', reload: live }, 'count'),
        within: Duration('1d', { description: 'within this long', reload: live }),
        ban: Duration('30d', { description: 'give one ban this long', reload: live }),
      },
      { description: 'repeat offenders' },
    ),
    hostLookupInterval: Duration(
      '5m',
      {
        description:
          'an AMI or Odoo host given by name is resolved at start (every address) and again this often for the allow-list; a failed lookup keeps the last good addresses and is retried every 30 s (a new interval applies at restart)',
      },
      { minSeconds: 10, shape: 'at least 10s' },
    ),
  },
  { description: 'detection and ban decisions' },
);

export type GuardConfig = Static<typeof GuardConfigSchema>;

/** The widest ban vs the IPv6 prefix, and the longest ban vs the bans that may be given. */
export function guardConfigErrors(g: GuardConfig): string[] {
  const errors: string[] = [];
  const widestValid = Number.isInteger(g.widestBanIPv6) && g.widestBanIPv6 >= 16 && g.widestBanIPv6 <= 128; // else reported by the schema
  if (widestValid && g.ipv6Prefix < g.widestBanIPv6)
    errors.push(
      `guard.ipv6Prefix: /${g.ipv6Prefix} is wider than guard.widestBanIPv6 (/${g.widestBanIPv6}): IPv6 attackers could never be banned by their prefix`,
    );
  const max = parseDuration(g.maxBanDuration);
  if (max === null) return errors;
  for (const [key, value] of [
    ['guard.escalation.max', g.escalation.max],
    ['guard.recidive.ban', g.recidive.ban],
    ['guard.manualBanDuration', g.manualBanDuration],
  ] as const) {
    const v = parseDuration(value);
    if (v !== null && v > max) errors.push(`${key}: "${value}" is longer than guard.maxBanDuration (${g.maxBanDuration})`);
  }
  return errors;
}
