import type { Logger } from 'pino';
import type { FirewallBackend, Inspection, RepairReport } from './types.js';

/** What the watchdog needs from the Enforcer. */
export interface WatchdogPort {
  backend: FirewallBackend;
  logger: Logger;
  /** runs fn under the enforcer's lock while it enforces (not starting, paused, failing or
   *  stopped); resolves null without running it otherwise */
  whileEnforcing<T>(fn: () => Promise<T>): Promise<T | null>;
  /** re-creates our table / sets / rules and re-fills them from the store (already under the
   *  lock); resolves the number of elements restored */
  restore(): Promise<number>;
  /** the repair itself failed: the enforcer's retry with backoff takes over */
  repairFailed(err: Error): void;
  /** an inspection counted the ban elements in the kernel */
  counted(elements: number): void;
  onRepaired(report: RepairReport): void;
}

const toError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/**
 * The firewall watchdog: every `intervalMs` it asks the backend whether our table, chains, hook
 * rules and sets are still as setup() left them (backend.inspect(): cheap at any set size, see
 * nft-watch.ts and IpsetBackend.inspect), and when they are not (`nft flush ruleset`, `nft delete
 * table`, `nft flush set`, a firewalld / iptables-restore reload, `ipset destroy`), re-creates and
 * re-fills them from the store at once. The check runs under the enforcer's lock, between our own
 * transactions, so our own changes are never taken for tampering. One repair is one incident: one
 * warning (what was missing, how many elements came back, how long it took) and one count.
 */
export class Watchdog {
  /** repairs since start */
  repairs = 0;
  /** result of the last inspection; null before the first */
  tablePresent: boolean | null = null;
  lastCheckAt: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private inspectFailing = false;

  constructor(private readonly port: WatchdogPort) {}

  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One periodic check (skipped while the previous one still runs). */
  async tick(): Promise<RepairReport | null> {
    if (this.ticking) return null;
    this.ticking = true;
    try {
      return await this.port.whileEnforcing(() => this.checkLocked('watchdog'));
    } catch (err) {
      this.port.repairFailed(toError(err));
      return null;
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Inspects and, when something is missing, repairs; the caller holds the enforcer's lock.
   * Resolves the repair's report, or null when all was in place (or the inspection itself failed:
   * logged once until one succeeds). Rejects when the repair fails.
   */
  async checkLocked(during: RepairReport['during']): Promise<RepairReport | null> {
    let found: Inspection;
    try {
      found = await this.port.backend.inspect!();
    } catch (err) {
      if (!this.inspectFailing) {
        this.port.logger.warn(
          { err: toError(err) },
          `firewall watchdog: the check failed (${toError(err).message}); enforcement goes on, the check is tried again`,
        );
      }
      this.inspectFailing = true;
      return null;
    }
    this.inspectFailing = false;
    this.lastCheckAt = Date.now();
    this.tablePresent = found.tablePresent;
    if (found.elements !== undefined) this.port.counted(found.elements);
    if (found.problems.length === 0) return null;
    const t0 = performance.now();
    const restored = await this.port.restore();
    const report: RepairReport = { problems: found.problems, restored, ms: Math.round(performance.now() - t0), during };
    this.repairs++;
    this.tablePresent = true;
    this.port.logger.warn(
      { ...report, backend: this.port.backend.name, repairs: this.repairs },
      `firewall watchdog: ${found.problems.join('; ')}. Someone else removed or changed pbx-guardian's firewall objects ` +
        `(nft flush ruleset, a firewalld or iptables-restore reload, ipset destroy?): re-created them and restored ${restored} bans in ${report.ms} ms. ` +
        'To stop enforcing on purpose, use pbx-guardian flush',
    );
    try {
      this.port.onRepaired(report);
    } catch {
      /* a hook never breaks enforcement */
    }
    return report;
  }
}
