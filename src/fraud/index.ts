/**
 * Fraud stage: follows outbound calls per account and trunk from AMI call events and acts on the
 * fraud policies (docs/fraud.md). main.ts builds it (createFraudEngine), feeds it every AMI event
 * and reconnect, and hands its events to the subscribers.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';
import type { Logger } from 'pino';
import { FraudEngine, type FraudDeps } from './engine.js';
import type { FraudConfig } from './config-schema.js';
import { loadDestinationPlan, loadRateTable, parseDestinationPlan, type DestinationPlan } from './destinations.js';

export { FraudEngine, blockValue, type FraudDeps, type FraudListener } from './engine.js';
export { CallTracker, channelEndpoint, contactAddress, type DialFallback, type TrackerListener, type TrackerOptions } from './tracker.js';
export { parseDialString, type ParsedDial } from './dialstring.js';
export { Hangups, AstDbWriter, BLOCK_FAMILY, realTimers, type Timers, type RetryPolicy } from './actions.js';
export { MemoryBlockStore } from './memory.js';
export { FraudConfigSchema, fraudConfigErrors, FRAUD_ACTIONS, DEFAULT_WINDOWS, type FraudConfig, type FraudAction } from './config-schema.js';
export { fraudJobFunctions } from './jobs.js';
export type { AccountBlock, BlockStorePort, FraudBanPort, FraudDecision, FraudSnapshot, TrackedCall } from './types.js';
export type { DestinationPlan, DialingPlan, Destination, RateTable } from './destinations.js';
export { parseDestinationPlan, loadDestinationPlan, loadRateTable };

/** whether fraud.destinations is the package's own file (its absence is then a warning, not an error) */
export function isPackageDestinations(cfg: FraudConfig): boolean {
  return cfg.destinations === join(PACKAGE_ROOT, 'rules', 'fraud-destinations.yaml');
}

/** The package's destination file may be missing (an install without rules/): only `international` is known then. */
export function destinationPlanFor(cfg: FraudConfig, logger: Logger, packageDefault: boolean): DestinationPlan {
  if (packageDefault && !existsSync(cfg.destinations)) {
    logger.warn({ file: cfg.destinations }, `fraud: ${cfg.destinations} is missing: destinations are only told apart as internal, national and international`);
    return parseDestinationPlan('classes: {}\n', 'built-in');
  }
  return loadDestinationPlan(cfg.destinations);
}

/** The engine from the config: the destination plan and the rate table read now (a bad file throws RULES_INVALID). */
export function createFraudEngine(deps: Omit<FraudDeps, 'plan' | 'rates'>): FraudEngine {
  const plan = destinationPlanFor(deps.config, deps.logger, isPackageDestinations(deps.config));
  const rates = deps.config.rates === '' ? null : loadRateTable(deps.config.rates);
  return new FraudEngine({ ...deps, plan, rates });
}
