/** Parts of the daemon's start that main.ts calls: the state store, the history prune, the
 *  firewall backend, the stdout logger, the accounts stage. */
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { seconds, type GuardianConfig } from './config/index.js';
import { sqliteAbiError } from './common/native-abi.js';
import { createBackend, DeferredBackend, type Enforcer, type FirewallBackend } from './firewall/index.js';
import type { AmiClient } from './ami/index.js';
import type { HealthInputs } from './health/index.js';
import type { SecurityLogHealth } from './sources/index.js';
import type { OdooBridge } from './odoo/index.js';
import type { WebhookDispatcher } from './webhooks/index.js';
import type { Fleet } from './fleet/index.js';
import type { Guardian } from './guard/index.js';
import type { Metrics } from './metrics/index.js';
import { SchemaVersionError, StateDirError, Store } from './store/index.js';
import { AccountWatch, accountWatchOptions, type AccountsWiring } from './accounts/index.js';

/**
 * The state database, at start. It must open: a daemon whose bans would not survive a restart is
 * refused here (fail fast). Write failures at run time are survived instead (Store.onWriteError),
 * counted and logged.
 */
export function openStore(config: GuardianConfig, metrics: Metrics, logger: Logger): Store {
  const { stateDir } = config;
  let st: Store;
  try {
    st = Store.open(stateDir);
  } catch (err) {
    if (err instanceof SchemaVersionError) throw new StateDirError(stateDir, err.message);
    const abi = sqliteAbiError(err);
    if (abi) throw abi;
    throw new StateDirError(
      stateDir,
      `the state database ${join(stateDir, 'guardian.sqlite')} cannot be opened (${(err as Error).message}); check the mount, free space and permissions, or move a damaged file aside`,
    );
  }
  try {
    st.onWriteError = (err, lostWrites) => {
      metrics.storeErrors.inc(lostWrites);
      logger.error({ err }, 'state store write/read failed; bans still go to the kernel but may not survive a restart');
    };
    if (st.schema.from !== st.schema.to && (st.schema.from > 0 || st.schema.adopted))
      logger.info(
        { schema: st.schema },
        `state database schema ${st.schema.adopted ? 'adopted as version 1 and ' : ''}migrated from version ${st.schema.from} to ${st.schema.to}`,
      );
  } catch (err) {
    st.close();
    throw err;
  }
  return st;
}

/** Starts (or restarts, on a reload) the hourly history prune; failures are counted and logged. */
export function historyPrune(st: Store, metrics: Metrics, logger: Logger): (retention: string) => void {
  return (retention) =>
    st.startHistoryPrune({
      retentionMs: seconds(retention) * 1000,
      onPruned: (rows, chunks) =>
        logger.info({ rows, chunks }, `ban history: deleted ${rows} bans that ended more than ${retention} ago (store.historyRetention)`),
      onError: (err) => {
        metrics.storeErrors.inc();
        logger.error({ err }, 'ban history prune failed; it is tried again in an hour');
      },
    });
}

/** The configured backend; when it cannot be built yet, one that keeps trying (see DeferredBackend). */
export async function openBackend(config: GuardianConfig, logger: Logger): Promise<FirewallBackend> {
  try {
    return await createBackend(config.firewall, logger);
  } catch (err) {
    logger.error({ err }, `enforcement is failing: ${(err as Error).message}. Detection and the Odoo bridge go on; retrying with backoff`);
    return new DeferredBackend(() => createBackend(config.firewall, logger));
  }
}

/** bound on log lines waiting for stdout (journald) to take them: a ban storm with a slow reader
 *  drops lines (counted) instead of growing the daemon's memory */
const LOG_BUFFER_BYTES = 8 * 1024 * 1024;

/** JSON lines to stdout, written asynchronously: a slow reader never blocks the AMI socket. */
export function stdoutLogger(level: string, metrics: Metrics): Logger {
  const dest = pino.destination({ dest: 1, sync: false, maxLength: LOG_BUFFER_BYTES });
  dest.on('drop', () => metrics.logLinesDropped.inc());
  return pino({ level, base: { app: 'pbx-guardian' } }, dest);
}

/** The accounts stage, and the guard told to ask it before banning a shared address. The
 *  restrict port is the fraud stage's AstDB block with mode `internal`. */
export function startAccounts(config: GuardianConfig, wiring: AccountsWiring, gd: Guardian): AccountWatch {
  const { watch, guard, onAccountFailing } = accountWatchOptions(config.accounts, wiring);
  const accounts = new AccountWatch(watch);
  gd.setAccountEvidence(accounts.memory, guard);
  gd.on({ accountFailing: onAccountFailing });
  return accounts;
}

/** What the health model judges, read from each part now. */
export function healthInputsOf(p: {
  config: GuardianConfig;
  ami: AmiClient | null;
  guard: Guardian;
  enforcer: Enforcer;
  securityLog: SecurityLogHealth | null;
  store: Store;
  odoo: OdooBridge | null;
  webhooks: WebhookDispatcher | null;
  fleet: Fleet | null;
}): HealthInputs {
  const { config, store: st } = p;
  // one walk of the active bans: the firewall snapshot counts them (the enforcer's activeCount)
  const firewall = p.enforcer.health();
  return {
    ami: p.ami?.health() ?? null,
    guard: {
      rules: p.guard.rules.length,
      tracked: p.guard.trackedCount,
      maxTracked: config.guard.maxTracked,
      activeBans: firewall.storeActive,
      securityLog: p.securityLog,
    },
    firewall: { configured: config.firewall.backend, health: firewall },
    store: {
      onDisk: st.onDisk,
      path: st.path,
      stateDir: config.stateDir,
      openError: st.fallbackReason,
      lastWriteError: st.lastWriteError,
      lastWriteOkAt: st.lastWriteOkAt,
    },
    odoo: p.odoo?.health() ?? null,
    webhooks: p.webhooks?.health() ?? null,
    fleet: p.fleet?.health() ?? null,
  };
}
