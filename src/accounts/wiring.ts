/** The accounts stage built from its config section (main.ts calls this). */
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { AmiPort } from '../ami/types.js';
import { parseDuration } from '../common/duration.js';
import type { AccountAwareOptions, AccountFailureReport, GuardianEvent } from '../guard/index.js';
import { POLICIES, type AccountsConfig } from './config-schema.js';
import { SIGNALS } from './names.js';
import type { AccountStore } from './persist.js';
import type { AccountRestrictPort, AccountWatchOptions } from './watch.js';

const ms = (d: string) => (parseDuration(d) ?? 0) * 1000;
/** distinct accounts given their own label in the failure counter; the rest are "other" */
const MAX_ACCOUNT_LABELS = 1000;

export interface AccountsWiring {
  logger: Logger;
  emit: (ev: GuardianEvent) => void;
  store?: AccountStore | null;
  ami?: AmiPort | null;
  restrict?: AccountRestrictPort | null;
  registry?: Registry | null;
}

/** The watch's options, the guard's account-aware options, and the handler of the guard's
 *  "account keeps failing" reports (a metric per account and a GuardianAccountFailing event). */
export function accountWatchOptions(
  cfg: AccountsConfig,
  w: AccountsWiring,
): { watch: AccountWatchOptions; guard: AccountAwareOptions; onAccountFailing: (r: AccountFailureReport) => void } {
  const anomalies = w.registry
    ? new Counter({
        name: 'pbx_guardian_account_anomalies_total',
        help: 'account anomalies by signal and action',
        labelNames: ['signal', 'action'],
        registers: [w.registry],
      })
    : null;
  // every signal × action series exists from the first scrape (an alert on rate() needs the 0)
  for (const signal of SIGNALS) for (const action of POLICIES) anomalies?.inc({ signal, action }, 0);
  const failing = w.registry
    ? new Counter({
        name: 'pbx_guardian_account_failing_total',
        help: 'reports of one account failing from an address where other accounts authenticate (stale password?), by account',
        labelNames: ['account'],
        registers: [w.registry],
      })
    : null;
  const labelled = new Set<string>();
  const watch: AccountWatchOptions = {
    limits: {
      maxAccounts: cfg.maxAccounts,
      maxNetworks: cfg.maxNetworksPerAccount,
      maxAgents: cfg.maxUserAgentsPerAccount,
      forgetAfterMs: ms(cfg.forgetAfter),
      recentSuccessMs: ms(cfg.nat.recentSuccess),
      maxAddresses: Math.max(1024, cfg.maxAccounts * 2),
    },
    learningPeriodMs: ms(cfg.learningPeriod),
    distantWindowMs: ms(cfg.distantWindow),
    policy: { 'new-network': cfg.policy.newNetwork, 'new-user-agent': cfg.policy.newUserAgent, 'distant-networks': cfg.policy.distantNetworks },
    userAgentLookup: cfg.userAgentLookup,
    emit: w.emit,
    restrict: w.restrict ?? null,
    ami: w.ami ?? null,
    store: w.store ?? null,
    logger: w.logger,
    onAnomaly: (signal, action) => anomalies?.inc({ signal, action }),
  };
  const guard: AccountAwareOptions = {
    enumerationAccounts: cfg.nat.enumerationAccounts,
    reportAfter: cfg.nat.reportAfter,
    reportEveryMs: 10 * 60_000,
    windowMs: 12 * 3600_000,
    maxAddresses: 4096,
  };
  const onAccountFailing = (r: AccountFailureReport) => {
    if (labelled.size < MAX_ACCOUNT_LABELS) labelled.add(r.account);
    failing?.inc({ account: labelled.has(r.account) ? r.account : 'other' });
    w.emit({
      Event: 'GuardianAccountFailing',
      Account: r.account,
      Address: r.address,
      Failures: String(r.failures),
      Accounts: String(r.accounts),
      Succeeding: String(r.succeeding),
      Reason: `account ${r.account} keeps failing from ${r.address} (stale password?)`,
      Time: new Date().toISOString(),
    });
  };
  return { watch, guard, onAccountFailing };
}
