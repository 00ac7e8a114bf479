/**
 * The whole config schema: every stage's own section (src/<stage>/config-schema.ts), assembled in
 * the order of the file, plus the few top-level keys that belong to no one stage. GuardianConfig
 * is its static type; the validator, the defaults, the example config and the README tables come
 * from it (docs/config.md).
 */
import { Enum, Int, Section, type Static } from '../common/config-schema.js';
import { ActionPolicyConfigSchema, AmiConfigSchema } from '../ami/config-schema.js';
import { GuardConfigSchema } from '../guard/config-schema.js';
import { FirewallConfigSchema } from '../firewall/config-schema.js';
import { StateDirSchema, StoreConfigSchema } from '../store/config-schema.js';
import { AdminConfigSchema } from '../admin/config-schema.js';
import { MetricsConfigSchema } from '../metrics/config-schema.js';
import { OdooConfigSchema } from '../odoo/config-schema.js';
import { RestConfigSchema } from '../rest/config-schema.js';
import { ConsoleConfigSchema } from '../console/config-schema.js';
import { AsteriskConfigConfigSchema } from '../asterisk-config/config-schema.js';
import { WebhooksConfigSchema } from '../webhooks/config-schema.js';
import { SourcesConfigSchema } from '../sources/config-schema.js';
import { AccountsConfigSchema } from '../accounts/config-schema.js';
import { FraudConfigSchema } from '../fraud/config-schema.js';
import { CrowdsecConfigSchema } from '../fleet/config-schema.js';
import { FeedsConfigSchema } from '../feeds/config-schema.js';

/** Failed authentication on every HTTP listener (net/auth-failures.ts): shared, so it sits here. */
export const AuthConfigSchema = Section(
  {
    maxFailuresPerMinute: Int(
      20,
      1,
      10_000,
      {
        description:
          'failed authentications (job endpoint, REST, admin over TCP) per source address and minute; beyond, 429 until the minute is over. Each failure also counts for the http-auth-failure rule (rules/listeners.yaml)',
      },
      'count',
    ),
    trackedSources: Int(10000, 100, 1_000_000, { description: 'source addresses tracked at most (least recently seen forgotten first)' }, 'count'),
  },
  { description: 'failed authentication on the HTTP listeners (job endpoint, REST, admin over TCP)' },
);

export const ConfigSchema = Section(
  {
    stateDir: StateDirSchema,
    logLevel: Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info', {
      description: 'pino JSON lines on stdout (journald)',
      reload: 'live',
    }),
    ami: AmiConfigSchema,
    guard: GuardConfigSchema,
    firewall: FirewallConfigSchema,
    store: StoreConfigSchema,
    admin: AdminConfigSchema,
    metrics: MetricsConfigSchema,
    auth: AuthConfigSchema,
    odoo: OdooConfigSchema,
    rest: RestConfigSchema,
    actionPolicy: ActionPolicyConfigSchema,
    console: ConsoleConfigSchema,
    asteriskConfig: AsteriskConfigConfigSchema,
    webhooks: WebhooksConfigSchema,
    sources: SourcesConfigSchema,
    accounts: AccountsConfigSchema,
    fraud: FraudConfigSchema,
    crowdsec: CrowdsecConfigSchema,
    feeds: FeedsConfigSchema,
  },
  { description: 'pbx-guardian configuration' },
);

export type GuardianConfig = Static<typeof ConfigSchema>;
