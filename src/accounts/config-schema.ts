/** The `accounts:` config section (src/common/config-schema.ts, docs/accounts.md). */
import { Bool, Duration, Enum, Int, Section, type Static } from '../common/config-schema.js';

export const POLICIES = ['alert', 'restrict'] as const;
export type AnomalyPolicy = (typeof POLICIES)[number];

const policy = (what: string) =>
  Enum(POLICIES, 'alert', {
    description: `${what}: alert (a GuardianAccountAnomaly event and a log line) or restrict (also internal calls only until pbx-guardian acknowledge ACCOUNT)`,
  });

export const AccountsConfigSchema = Section(
  {
    enabled: Bool(true, {
      description: 'learn the networks and User-Agents each account (PJSIP endpoint) authenticates from, and report when it changes (docs/accounts.md)',
    }),
    learningPeriod: Duration('7d', {
      description:
        'after the first start with an empty memory, learn this long without any anomaly (a fresh install does not alert on every phone); an account with no known network learns its first one silently',
    }),
    forgetAfter: Duration('90d', { description: 'a network or User-Agent an account has not used for this long is forgotten (sliding memory)' }),
    maxAccounts: Int(10000, 10, 1_000_000, { description: 'accounts remembered at most (the least recently seen forgotten first)' }, 'count'),
    maxNetworksPerAccount: Int(
      16,
      1,
      256,
      { description: 'networks (IPv4 /24, IPv6 /48) remembered per account (least recently used forgotten first)' },
      'count',
    ),
    maxUserAgentsPerAccount: Int(8, 1, 64, { description: 'User-Agents remembered per account (least recently used forgotten first)' }, 'count'),
    distantWindow: Duration(
      '2m',
      {
        description:
          'two networks of different IPv4 /16 or IPv6 /32 used by one account within this, both still live (no contact removed), are "distant at once"',
      },
      { minSeconds: 1, maxSeconds: 86400 },
    ),
    userAgentLookup: Bool(true, {
      description:
        'on a new contact, ask Asterisk for the contacts (PJSIPShowContacts) to read its User-Agent (no AMI event carries it); at most once per 30 s',
    }),
    policy: Section(
      {
        newNetwork: policy('an account seen from a network it has never used'),
        newUserAgent: policy('an account seen with a User-Agent (product, versions aside) it has never used'),
        distantNetworks: policy('an account live from two distant networks at once'),
      },
      { description: 'what each signal does' },
    ),
    nat: Section(
      {
        recentSuccess: Duration('2h', {
          description: 'an address where some account authenticated successfully within this is shared (an office behind NAT): its failures count per account',
        }),
        enumerationAccounts: Int(
          5,
          2,
          1000,
          { description: 'distinct accounts failing from a shared address before the address is banned like any other (enumeration)' },
          'count',
        ),
        reportAfter: Int(5, 1, 10000, { description: 'failures of one account from a shared address before it is reported (stale password?)' }, 'count'),
      },
      { description: 'account-aware bans (docs/accounts.md)' },
    ),
  },
  { description: 'account memory and compromise signals (docs/accounts.md); a change needs a restart' },
);

export type AccountsConfig = Static<typeof AccountsConfigSchema>;
