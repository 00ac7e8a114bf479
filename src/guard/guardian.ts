import type { Logger } from 'pino';
import type { FirewallEntry, FirewallTarget } from '../firewall/types.js';
import { formatDuration } from '../common/duration.js';
import { checkBannable, checkDuration, ruleBan } from './ban-judge.js';
import { AccountFailures, defaultAccountAware, type AccountAwareOptions, type AccountEvidence, type AccountFailureReport } from './account-aware.js';
import { Detector, type EventView } from './detector.js';
import { plainObservation, type Observation, type ObservationSink } from './observation.js';
import { formatNetwork, isSingleAddress, parseNetwork, type IpNetwork } from '../net/ip.js';
import { AllowList, interfaceEntries, type AllowEntry, type AllowSource } from './allow.js';
import type { Rule } from './rules.js';
import { BanScope, defaultScopeLimits, interfaceAddresses } from './scope.js';
import { countInForce, ExpiryQueue, startSweep, SWEEP_TURN_MAX } from './expiry.js';
import { explainAddress, type AddressReport } from './explain.js';
import { coveringBans, planUnban, type LocalBanMatch, type UnbanOutcome } from './lookup.js';
import type { BanLookup } from './lookup-port.js';
import { remoteJudgeOf } from './remote-judge.js';
import type { BanStorePort, EnforcementPort, GuardListener, GuardOptions, GuardStatus, IgnoredReason } from './guardian-types.js';
import { DEFAULT_MAX_BAN_SEC, HOST_REFRESH_MS } from './guardian-types.js';
import { InvalidTargetError, type BanControl, type BanRecord, type ManualBanRequest, type RemoteBanJudge } from './types.js';

export {
  DEFAULT_MAX_BAN_SEC,
  HOST_REFRESH_MS,
  type BanStorePort,
  type EnforcementPort,
  type GuardListener,
  type GuardOptions,
  type GuardStatus,
  type IgnoredReason,
} from './guardian-types.js';

const DENY_LIST_REASON = 'deny list (Odoo access rules)';

/** Turns security events into bans, and is the one place every ban and unban goes through. */
export class Guardian implements BanControl, BanLookup, ObservationSink {
  private detector: Detector;
  private allow = new AllowList();
  private readonly active = new Map<string, BanRecord>();
  private readonly listeners: GuardListener[] = [];
  /** the active bans' ends in time order (the sweep pops what is due) */
  private readonly expiry = new ExpiryQueue((rec) => this.active.get(rec.target) === rec);
  private stopSweep = () => {};
  /** the last kernel allow-set update (setAllowSource) */
  private allowApplied: Promise<void> = Promise.resolve();
  private hostTimer: NodeJS.Timeout | undefined;
  private scope: BanScope;
  /** the key an address is counted under (the detector's, which a reload replaces) */
  private readonly keyOf = (address: IpNetwork) => this.detector.keyOf(address);
  /** account-aware bans (set by setAccountEvidence; null: every address is judged alone) */
  private accountAware: AccountFailures | null = null;

  constructor(
    private options: GuardOptions,
    private readonly store: BanStorePort,
    private readonly enforcement: EnforcementPort,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    this.detector = this.newDetector(options);
    this.scope = newScope(options);
    this.allow.setConfigured(options.allow);
    this.allow.setSource('static', options.automaticAllow);
    this.allow.setSource('interfaces', interfaceEntries(this.scope.hostAddresses()));
  }

  on(listener: GuardListener): void {
    this.listeners.push(listener);
  }

  /** Loads active bans from the store (ending those that ran out while we were down). */
  restore(): BanRecord[] {
    const now = this.clock();
    const restored =
      this.safeStore(() => {
        for (const target of this.store.expiredTargets(now)) this.store.endBan(target, now, 'expired');
        return this.store.activeBans(now);
      }) ?? [];
    const kept: BanRecord[] = [];
    for (const rec of restored) {
      this.active.set(rec.target, rec);
      const refused = this.refusalOf(rec.target);
      if (refused) {
        this.logger.warn({ target: rec.target, code: refused.code }, `stored ban of ${rec.target} ended at start: ${refused.message}`);
        this.endBan(rec, 'unbanned');
      } else kept.push(rec);
    }
    this.expiry.rebuild(this.active.values());
    return kept;
  }

  /** What the kernel must hold now: used by the enforcer for restore and reconcile. */
  activeEntries(): FirewallEntry[] {
    const now = this.clock();
    const out: FirewallEntry[] = [];
    for (const rec of this.active.values()) {
      if (rec.expiresAt === null || rec.expiresAt > now) out.push(toEntry(rec));
    }
    return out;
  }

  /** The kernel allow set: the same effective list the guard checks (configured + automatic). */
  allowTargets(): FirewallTarget[] {
    return this.allow.targets();
  }

  /** Starts the timer that ends expired bans: four times a second, so 1,400 bans ending a second
   *  (the soak's steady state) cost short turns, not one 20-60 ms turn each second. */
  startExpirySweep(intervalMs = 250): void {
    this.stopSweep = startSweep(() => {
      const now = this.clock();
      this.sweepExpired(now, SWEEP_TURN_MAX);
      return this.expiry.pending(now);
    }, intervalMs);
    this.hostTimer = setInterval(() => this.refreshHostAddresses(), HOST_REFRESH_MS);
    this.hostTimer.unref();
  }

  stop(): void {
    this.stopSweep();
    if (this.hostTimer) clearInterval(this.hostTimer);
  }

  /** Re-reads the host's own addresses (scope and allow-list); ends bans that now cover one. */
  refreshHostAddresses(force = false): void {
    if (!this.scope.refresh() && !force) return;
    // setAllowSource never rejects (a kernel failure is logged); callers that must wait use allowApplied.
    void this.setAllowSource('interfaces', interfaceEntries(this.scope.hostAddresses()));
    this.endBansCovering(
      (net) => this.scope.ownOverlap(net),
      () => 'now an address of this host',
    );
  }

  /** true when some rule counts or resets on this event name (sources build nothing else) */
  watches(eventName: string): boolean {
    return this.detector.watches(eventName);
  }

  /**
   * An Asterisk security event in field form (an AMI frame, a log line's fields), read by the
   * configured decoder (options.decodeEvent): the tests' and replays' way in; the daemon's
   * sources (src/sources) call observe().
   */
  handleEvent(event: EventView, now = this.clock()): void {
    const name = event.get('Event');
    if (name === undefined || !this.detector.watches(name)) return;
    const decode = this.options.decodeEvent;
    if (!decode) throw new Error('Guardian.handleEvent needs options.decodeEvent (src/sources: decodeAmiEvent)');
    this.observe(decode(event, name, now), now);
  }

  /** The hot path: one observation from a source (an AMI event, a security-log line, ...). */
  observe(o: Observation, now = o.time): void {
    const name = o.event;
    if (!this.detector.watches(name)) return;
    for (const l of this.listeners) l.securityEvent?.(name, o.service, o.source);
    const address = o.address;
    if (address === null) {
      this.emitIgnored(o.ambiguous ? 'ambiguous' : 'bad-address');
      return;
    }
    const key = this.keyOf(address);
    const keyText = formatNetwork(key);
    // scope first: the host's own addresses are also allow-listed, and say 'own-address'
    const never = this.scope.neverBanned(address);
    if (never) {
      this.emitIgnored(never, address);
      return;
    }
    if (this.allow.contains(address)) {
      this.emitIgnored('allow-listed', address);
      return;
    }
    if (this.active.has(keyText) || (key !== address && this.active.size > 0 && this.active.has(formatNetwork(address)))) {
      this.emitIgnored('already-banned', address);
      return;
    }
    const before = this.detector.totalFailures;
    const detection = this.detector.observe(name, o, key, keyText, now);
    const counted = this.detector.totalFailures - before;
    if (counted > 0) for (const l of this.listeners) l.failure?.(name, counted, keyText);
    const aware = this.accountAware;
    // an address where other accounts succeed (an office behind NAT): failures count per account
    const addressText = aware === null ? '' : key === address ? keyText : formatNetwork(address);
    const shared = aware === null ? null : counted > 0 ? aware.failure(addressText, o, now) : detection ? aware.peek(addressText, now) : null;
    if (shared?.report) this.reportAccountFailing(shared.report);
    if (!detection) return;
    if (shared && !shared.enumeration) return;
    // An IPv6 prefix that would also cover an allow-listed address (configured, the host's own,
    // its resolver or gateway, the AMI / Odoo host), that is out of scope, or where some address
    // authenticated successfully recently (a phone): the address alone.
    let target = detection.key;
    if (target !== address && (this.allow.findOverlap(target) || this.scope.refusal(target) || aware?.evidence.hasRecentSuccess(target, now))) target = address;
    if (this.scope.refusal(target)) {
      this.detector.forget(detection.keyText);
      this.emitIgnored('out-of-scope', address);
      return;
    }
    const targetText = formatNetwork(target);
    const { escalation, recidive } = this.options;
    const since = now - 1000 * Math.max(escalation.lookbackSec, recidive?.withinSec ?? 0);
    const earlier = this.safeStore(() => this.store.banTimesSince(targetText, since)) ?? [];
    const rec = ruleBan({
      target,
      rule: detection.rule,
      count: detection.count,
      windowMs: detection.windowMs,
      eventName: name,
      now,
      earlier,
      escalation,
      recidive,
      maxBanSec: this.maxBanSec,
    });
    if (shared) {
      rec.reason += ` (failures for ${shared.accounts} accounts from an address where others authenticate: enumeration)`;
      aware?.forget(addressText);
    }
    this.applyBan(rec, detection.windowMs, o.seenAt ?? performance.now());
    this.detector.forget(detection.keyText);
  }

  /**
   * Account-aware bans (src/guard/account-aware.ts): `evidence` says which addresses authenticate
   * successfully (src/accounts); null turns it off. Failure counts per account start again.
   */
  setAccountEvidence(evidence: AccountEvidence | null, options: AccountAwareOptions = defaultAccountAware): void {
    this.accountAware = evidence === null ? null : new AccountFailures(options, evidence);
  }

  private reportAccountFailing(r: AccountFailureReport): void {
    this.logger.warn(
      { event: 'account-failing', account: r.account, address: r.address, failures: r.failures, accounts: r.accounts, succeeding: r.succeeding },
      `account ${r.account} keeps failing from ${r.address} (stale password?): ${r.failures} failures; ${r.succeeding} accounts authenticate from it, so it is not banned unless ${this.accountAware?.options.enumerationAccounts ?? 0} accounts fail`,
    );
    for (const l of this.listeners) l.accountFailing?.(r);
  }

  /**
   * A security event seen outside Asterisk (e.g. a refused credential on an HTTP listener, event
   * HttpAuthFailure, source 'http'): counted by the same rules and windows as Asterisk's,
   * allow-list first.
   */
  observeExternal(eventName: string, address: string, service: string, now = this.clock()): void {
    const parsed = parseNetwork(address);
    // a CIDR is no attacker's address: 'bad-address', like an unparsable one
    this.observe(plainObservation('http', eventName, service, parsed && isSingleAddress(parsed) ? parsed : null, now), now);
  }

  /** seenAt: when the failure that completed a rule ban was received (none for other bans) */
  private applyBan(rec: BanRecord, windowMs: number, seenAt?: number): void {
    const replaces = this.active.has(rec.target);
    this.active.set(rec.target, rec);
    this.expiry.add(rec, this.active.size, () => this.active.values());
    this.safeStore(() => this.store.saveBan(rec, replaces));
    this.enforcement
      .ban(seenAt === undefined ? toEntry(rec) : { ...toEntry(rec), seenAt })
      .catch((err: Error) => this.logger.error({ err, target: rec.target }, 'ban not applied in the kernel (the enforcer retries)'));
    const durationSec = rec.expiresAt === null ? null : Math.round((rec.expiresAt - rec.createdAt) / 1000);
    this.logger.warn(
      { event: 'ban', address: rec.target, rule: rec.rule, source: rec.source, count: rec.count, windowSec: windowMs / 1000, durationSec, reason: rec.reason },
      `banned ${rec.target} for ${formatDuration(durationSec)} (${rec.rule}: ${rec.reason})`,
    );
    for (const l of this.listeners) l.banned?.({ action: 'ban', record: rec });
  }

  private endBan(rec: BanRecord, why: 'expired' | 'unbanned'): void {
    const now = this.clock();
    this.active.delete(rec.target);
    this.detector.forget(rec.target);
    this.safeStore(() => this.store.endBan(rec.target, now, why));
    this.enforcement
      .unban(toEntry(rec))
      .catch((err: Error) => this.logger.error({ err, target: rec.target }, 'unban not applied in the kernel (reconcile will remove it)'));
    this.logger.info({ event: 'unban', address: rec.target, rule: rec.rule, source: rec.source, why }, `unbanned ${rec.target} (${why})`);
    for (const l of this.listeners) l.unbanned?.({ action: 'unban', record: rec }, why);
  }

  /** Ends the bans whose time is up (at most `limit`, soonest first); returns how many ended. */
  sweepExpired(now = this.clock(), limit = Infinity): number {
    const due = this.expiry.due(now, limit);
    for (const rec of due) this.endBan(rec, 'expired');
    return due.length;
  }

  // ---- BanControl: manual bans from the CLI, the API and Odoo ----

  parseTarget(text: string): IpNetwork {
    const net = typeof text === 'string' ? parseNetwork(text) : null;
    if (!net) throw new InvalidTargetError(`"${String(text).slice(0, 80)}" is not an IPv4/IPv6 address or CIDR`);
    return net;
  }

  isAllowListed(address: string): boolean {
    const net = parseNetwork(address);
    return net !== null && this.allow.findOverlap(net) !== undefined;
  }

  async ban(request: ManualBanRequest): Promise<BanRecord> {
    const net = this.parseTarget(request.target);
    checkBannable(net, this.scope, this.allow);
    // no duration asked: guard.manualBanDuration (null there: permanent); null asked: permanent
    const duration = request.durationSec === undefined ? (this.options.manualBanSec ?? null) : request.durationSec;
    checkDuration(duration, this.maxBanSec);
    const now = this.clock();
    const rec: BanRecord = {
      target: formatNetwork(net),
      family: net.family,
      isNetwork: !isSingleAddress(net),
      createdAt: now,
      expiresAt: duration === null ? null : now + duration * 1000,
      rule: 'manual',
      source: request.source,
      // eslint-disable-next-line no-control-regex -- control characters are what it takes out
      reason: (request.reason ?? `manual ban (${request.source})`).replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 200),
      count: 0,
    };
    this.applyBan(rec, 0);
    return rec;
  }

  /** The guard's judgement of a ban decided elsewhere (src/fleet, feeds): the same allow-list and scope limits. */
  remoteJudge(): RemoteBanJudge {
    return remoteJudgeOf(this.allow, this.scope, this.active);
  }

  async unban(target: string): Promise<boolean> {
    const rec = this.active.get(formatNetwork(this.parseTarget(target)));
    if (!rec) return false;
    this.endBan(rec, 'unbanned');
    return true;
  }

  bansCovering(target: string): LocalBanMatch[] {
    const net = this.parseTarget(target);
    return coveringBans(this.active, net, isSingleAddress(net) ? this.keyOf(net) : net, this.clock());
  }

  async unbanTarget(target: string, opts: { covering?: boolean } = {}): Promise<UnbanOutcome> {
    const text = formatNetwork(this.parseTarget(target));
    const { remove, still } = planUnban(this.bansCovering(text), text, opts.covering === true, this.clock());
    for (const rec of remove) this.endBan(rec, 'unbanned');
    return { target: text, removed: remove, stillCovered: still };
  }

  explain(target: string): AddressReport {
    const net = this.parseTarget(target);
    if (!isSingleAddress(net)) throw new InvalidTargetError(`"${formatNetwork(net)}" is a network: why takes one address`);
    const { escalation, recidive } = this.options;
    return explainAddress(net, {
      detector: this.detector,
      allow: this.allow,
      scope: this.scope,
      active: this.active,
      escalation,
      recidive,
      maxBanSec: this.maxBanSec,
      banTimesSince: (t, since) => this.safeStore(() => this.store.banTimesSince(t, since)) ?? [],
      now: this.clock(),
    });
  }

  async unbanAll(): Promise<number> {
    const all = [...this.active.values()];
    for (const rec of all) this.endBan(rec, 'unbanned');
    return all.length;
  }

  /** Bans in force by family, counted without copying or sorting (a gauge reads it). */
  activeCounts(): { v4: number; v6: number } {
    return countInForce(this.active.values(), this.clock());
  }

  listBans(): BanRecord[] {
    const now = this.clock();
    return [...this.active.values()].filter((r) => r.expiresAt === null || r.expiresAt > now).sort((a, b) => a.createdAt - b.createdAt);
  }

  async replaceAccessRules(rules: { allow: string[]; deny: string[] }): Promise<void> {
    const allow = rules.allow.map((a) => formatNetwork(this.parseTarget(a)));
    const deny = rules.deny.map((d) => this.parseTarget(d));
    // every deny entry is judged before anything changes: one refused entry changes nothing
    const nextAllow = this.allow.withConfigured(allow, 'allow');
    for (const net of deny) checkBannable(net, this.scope, nextAllow);
    this.allow = nextAllow;
    await this.enforcement.setAllow(this.allowTargets());
    this.endAllowListedBans();
    const wanted = new Set(deny.map(formatNetwork));
    for (const rec of [...this.active.values()]) {
      if (rec.reason === DENY_LIST_REASON && !wanted.has(rec.target)) this.endBan(rec, 'unbanned');
    }
    for (const net of deny) {
      if (this.active.get(formatNetwork(net))?.reason === DENY_LIST_REASON) continue;
      await this.ban({ target: formatNetwork(net), durationSec: null, reason: DENY_LIST_REASON, source: 'odoo' });
    }
  }

  /** New rules and allow-list; active bans stay, failure counts start again. */
  reload(options: GuardOptions): void {
    this.options = options;
    this.detector = this.newDetector(options);
    this.scope = newScope(options);
    this.allow = this.allow.withConfigured(options.allow);
    void this.setAllowSource('static', options.automaticAllow, true);
    this.refreshHostAddresses(true);
  }

  /** Loopback and the AMI / Odoo hosts written as addresses (kept for callers of the old name). */
  setAutomaticAllow(list: Array<string | AllowEntry>): void {
    void this.setAllowSource('static', list);
  }

  /** Resolves once the last allow-set update has reached the kernel (or failed, logged). */
  allowSettled(): Promise<void> {
    return this.allowApplied;
  }

  /**
   * New entries for one automatic source (the AMI or Odoo host resolves elsewhere now, an
   * interface got an address, the resolver or gateway changed): when the effective list changes,
   * the kernel allow set follows and bans that now cover an allowed address end; other bans stay.
   * Resolves once the kernel allow set holds the effective list (a failure is logged, never
   * thrown), also when this call changed nothing but an earlier update is still on its way.
   */
  setAllowSource(source: AllowSource, entries: Array<string | AllowEntry>, force = false): Promise<void> {
    if (!this.allow.setSource(source, entries) && !force) return this.allowApplied;
    this.allowApplied = this.enforcement.setAllow(this.allowTargets()).catch((err: Error) => this.logger.error({ err }, 'allow set not updated in the kernel'));
    this.endAllowListedBans();
    return this.allowApplied;
  }

  /** The effective automatic allow-list with each entry's origin (bounded). */
  automaticAllow(): AllowEntry[] {
    return this.allow.automaticEntries();
  }

  /** Where an exact allow entry comes from: 'guard.allow', an automatic origin, or null (none
   *  of those: a runtime entry, or not listed). */
  allowOrigin(entry: string): string | null {
    const net = this.parseTarget(entry);
    if (this.allow.configuredEntries().includes(formatNetwork(net))) return 'guard.allow';
    return this.allow.automaticOrigin(net) ?? null;
  }

  private endAllowListedBans(): void {
    this.endBansCovering(
      (net) => this.allow.findOverlap(net),
      (by) => `allow-listed (${this.allow.originOf(by)})`,
    );
  }

  private endBansCovering(find: (net: IpNetwork) => IpNetwork | undefined, what: (by: IpNetwork) => string): void {
    for (const rec of [...this.active.values()]) {
      const net = parseNetwork(rec.target);
      const by = net && find(net);
      if (!by) continue;
      this.logger.warn({ target: rec.target, covers: formatNetwork(by) }, `ban of ${rec.target} ended: it covers ${formatNetwork(by)}, ${what(by)}`);
      this.endBan(rec, 'unbanned');
    }
  }

  status(): GuardStatus {
    const banned = this.listBans();
    return {
      currentlyFailed: this.detector.trackedCount,
      totalFailed: this.detector.totalFailures,
      currentlyBanned: banned.length,
      totalBanned: this.safeStore(() => this.store.totalBans()) ?? banned.length,
      banned,
      automaticAllow: this.allow.automaticEntries(),
      automaticAllowTotal: this.allow.automaticCount,
    };
  }

  get rules(): readonly Rule[] {
    return this.detector.ruleList;
  }

  /** addresses with failures being counted (health) */
  get trackedCount(): number {
    return this.detector.trackedCount;
  }

  get allowList(): string[] {
    return this.allow.configuredEntries();
  }

  private get maxBanSec(): number {
    return this.options.maxBanSec ?? DEFAULT_MAX_BAN_SEC;
  }

  /** The scope refusal of a stored target text, or null. */
  private refusalOf(target: string) {
    const net = parseNetwork(target);
    return net ? this.scope.refusal(net) : null;
  }

  private newDetector(o: GuardOptions): Detector {
    return new Detector(o.rules, { ipv6Prefix: o.ipv6Prefix, maxTracked: o.maxTracked, trackTtlMs: o.trackTtlSec * 1000 });
  }

  private emitIgnored(reason: IgnoredReason, address?: IpNetwork): void {
    if (this.listeners.length === 0) return;
    const text = address ? formatNetwork(address) : undefined;
    for (const l of this.listeners) l.ignored?.(reason, text);
  }

  /** The store failing (read-only, disk full) must not stop the kernel bans: log and go on. */
  private safeStore<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.logger.error({ err }, 'state store write/read failed; bans still go to the kernel but may not survive a restart');
      for (const l of this.listeners) l.storeError?.(err as Error);
      return undefined;
    }
  }
}

function newScope(o: GuardOptions): BanScope {
  return new BanScope(o.scope ?? defaultScopeLimits, o.host ?? interfaceAddresses);
}

function toEntry(rec: BanRecord): FirewallEntry {
  return { target: rec.target, family: rec.family, isNetwork: rec.isNetwork, expiresAt: rec.expiresAt };
}
