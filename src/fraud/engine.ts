/**
 * The fraud stage: the call tracker feeds the policies; a crossing becomes a decision (logged with
 * what crossed which policy, kept for `pbx-guardian fraud`, sent as GuardianFraud) and its actions:
 * hang up the offending channels, block the account (AstDB + the store; restored and reasserted
 * at each AMI login), ban the address it registered from (the guardian's allow-list wins).
 */
import type { Logger } from 'pino';
import type { AmiMessage, AmiPort } from '../ami/index.js';
import type { GuardianEvent } from '../guard/index.js';
import { parseDuration } from '../common/duration.js';
import { AstDbWriter, Hangups, realTimers, type Timers } from './actions.js';
import type { FraudAction, FraudConfig } from './config-schema.js';
import type { DestinationPlan, RateTable } from './destinations.js';
import { Policies, type Crossing } from './policies.js';
import { CallTracker, channelEndpoint, type DialFallback } from './tracker.js';
import type { AccountBlock, AstDbStatus, BlockStorePort, FraudBanPort, FraudDecision, FraudSnapshot, TrackedCall } from './types.js';

export interface FraudDeps {
  config: FraudConfig;
  plan: DestinationPlan;
  rates: RateTable | null;
  ami: AmiPort;
  store: BlockStorePort;
  bans: FraudBanPort | null;
  /** GuardianFraud / GuardianAccountBlocked / GuardianAccountUnblocked to the subscribers */
  emit: (ev: GuardianEvent) => void;
  logger: Logger;
  now?: () => number;
  timers?: Timers;
  /** for the hours policies (tests): weekday 0-6 and minute of the day of an epoch ms */
  localTime?: (ms: number) => { day: number; minute: number };
}

/** What the metrics count (metrics/bind.ts). */
export interface FraudListener {
  watched?(call: TrackedCall): void;
  decision?(d: FraudDecision): void;
  expired?(calls: number): void;
  action?(what: 'hangup' | 'block' | 'unblock' | 'ban', ok: boolean): void;
  /** a DialString without a number, and how the call was followed (tracker.ts DialFallback) */
  unparsed?(fallback: DialFallback): void;
  /** the number of blocked accounts changed */
  blocked?(count: number): void;
}

const SWEEP_MS = 5000;
const MAX_DEDUPE = 10_000;
const MAX_FAILED_DELS = 10_000;

export class FraudEngine {
  readonly tracker: CallTracker;
  private readonly policies: Policies;
  private readonly hangups: Hangups;
  private readonly astdb: AstDbWriter;
  private readonly blocked = new Map<string, AccountBlock>();
  /** per blocked account: is its AstDB key written (what the operator is told) */
  private readonly astdbStatus = new Map<string, AstDbStatus>();
  private lastFailureLog = -Infinity;
  private lastUnparsedLog = -Infinity;
  private readonly failedDels = new Set<string>();
  private readonly addresses = new Map<string, string>();
  private readonly liveByAccount = new Map<string, Set<TrackedCall>>();
  private readonly liveByTrunk = new Map<string, number>();
  private readonly lastDecision = new Map<string, number>();
  private readonly recent: FraudDecision[] = [];
  private readonly listeners: FraudListener[] = [];
  private readonly now: () => number;
  private readonly timers: Timers;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: FraudDeps) {
    const { config } = deps;
    this.now = deps.now ?? Date.now;
    this.timers = deps.timers ?? realTimers;
    this.policies = new Policies(config, deps.rates, deps.localTime);
    const report = {
      done: (what: 'hangup' | 'block' | 'unblock', target: string, ok: boolean, attempts: number, error?: string) =>
        this.actionDone(what, target, ok, attempts, error),
    };
    this.tracker = new CallTracker(
      {
        plan: deps.plan,
        dialingPlan: config.dialingPlan,
        trunks: config.trunks,
        maxCalls: config.maxCalls,
        callTimeoutMs: parseDuration(config.callTimeout)! * 1000,
      },
      {
        started: (call, now) => this.started(call, now),
        answered: (call, now) => this.policies.answered(call, now),
        ended: (call, why) => this.ended(call, why),
        channelGone: (channel) => this.hangups.gone(channel),
        address: (account, address) => this.learnAddress(account, address),
        billed: (channel, sec) => {
          const owner = channelEndpoint(channel);
          if (owner !== null) this.policies.billed(owner, channel, sec);
        },
        unparsed: (fallback, dialString) => {
          for (const l of this.listeners) l.unparsed?.(fallback);
          const now = this.now();
          if (now - this.lastUnparsedLog < 60_000) return;
          this.lastUnparsedLog = now;
          const how = {
            exten: "the caller's Exten is taken as the number",
            unknown: 'followed as an international call of unknown number (it goes to a trunk)',
            none: 'the call is not followed',
          }[fallback];
          this.deps.logger.warn(
            { dialString: dialString.slice(0, 120), fallback },
            `fraud: a DialString without a readable number: ${how} (logged once a minute; counted)`,
          );
        },
        failed: (event, err) => {
          // once a minute at most: a defect here would otherwise repeat on every call event
          const now = this.now();
          if (now - this.lastFailureLog < 60_000) return;
          this.lastFailureLog = now;
          this.deps.logger.error({ err, event, failed: this.tracker.counts.failed }, `fraud: handling a ${event} event failed; the call is not followed`);
        },
      },
    );
    this.hangups = new Hangups(deps.ami, config.hangup, this.timers, report, (ch) => this.tracker.has(ch));
    this.astdb = new AstDbWriter(deps.ami, config.block, this.timers, report);
    for (const b of deps.store.activeBlocks()) this.blocked.set(b.account, b);
  }

  on(l: FraudListener): void {
    this.listeners.push(l);
  }

  /** Every AMI event, on the read path (never throws). `at`: the event's time (check). */
  handleAmiEvent(msg: AmiMessage, at?: number): void {
    this.tracker.handle(msg, at ?? this.now());
  }

  /** After each AMI login: the stored blocks are written again (AstDB may have been wiped), failed deletes retried. */
  onConnected(): void {
    for (const b of this.blocked.values()) this.putBlock(b);
    for (const a of this.failedDels) this.astdb.del(a);
    this.failedDels.clear();
    if (this.blocked.size > 0) this.deps.logger.info({ accounts: [...this.blocked.keys()] }, `fraud: reasserting ${this.blocked.size} account blocks in AstDB`);
  }

  /** Expire calls without Hangup; judge the budget (live calls cost more every minute). */
  sweep(now = this.now()): void {
    const n = this.tracker.sweep(now);
    if (n > 0) {
      this.deps.logger.warn({ expired: n }, `fraud: forgot ${n} calls whose Hangup never arrived within ${this.deps.config.callTimeout}`);
      for (const l of this.listeners) l.expired?.(n);
    }
    for (const { account, cost } of this.policies.overBudget(now)) {
      const live = [...(this.liveByAccount.get(account) ?? [])];
      // over budget with nothing live to act on, already decided in this window: not a new decision every sweep
      const last = this.lastDecision.get(`budget\n${account}`);
      if (live.length === 0 && last !== undefined && now - last <= this.policies.budgetWindowMs) continue;
      const first = live[0];
      this.decide(this.policies.budgetCrossing(account, cost, live), account, first?.number ?? '', first?.trunk ?? null, now);
    }
  }

  start(): void {
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.hangups.close();
    this.astdb.close();
  }

  get blockedCount(): number {
    return this.blocked.size;
  }

  snapshot(): FraudSnapshot {
    const c = this.tracker.counts;
    return {
      enabled: true,
      live: [...this.liveByAccount].map(([account, calls]) => ({
        account,
        calls: calls.size,
        channels: [...calls].map((x) => x.channel),
        numbers: [...calls].map((x) => x.number),
      })),
      blocked: [...this.blocked.values()].map((b) => ({ ...b, astdb: { ...this.astdbOf(b.account) } })),
      decisions: [...this.recent],
      tracked: { calls: this.tracker.size, maxCalls: this.deps.config.maxCalls, expired: c.expired, evicted: c.evicted },
    };
  }

  /** Ends a block: AstDB key deleted (retried, and again at the next login), store row removed. */
  unblock(account: string, by: string): boolean {
    const had = this.blocked.delete(account);
    this.astdbStatus.delete(account);
    let stored = false;
    try {
      stored = this.deps.store.deleteBlock(account);
    } catch (err) {
      this.deps.logger.error({ err, account }, 'fraud: the block could not be removed from the state store');
    }
    if (!had && !stored) return false;
    for (const l of this.listeners) l.blocked?.(this.blocked.size);
    this.astdb.del(account);
    this.deps.logger.info({ fraud: { account, by } }, `fraud: account ${account} unblocked (${by})`);
    this.deps.emit({ Event: 'GuardianAccountUnblocked', Account: account, By: by, Time: new Date(this.now()).toISOString() });
    return true;
  }

  isBlocked(account: string): boolean {
    return this.blocked.has(account);
  }

  // ---------------------------------------------------------------- tracker callbacks

  private started(call: TrackedCall, now: number): void {
    for (const l of this.listeners) l.watched?.(call);
    if (!call.outbound) return;
    let live = this.liveByAccount.get(call.account);
    if (!live) this.liveByAccount.set(call.account, (live = new Set()));
    live.add(call);
    const trunkLive = call.trunk === null ? 0 : (this.liveByTrunk.get(call.trunk) ?? 0) + 1;
    if (call.trunk !== null) this.liveByTrunk.set(call.trunk, trunkLive);
    if (this.blocked.has(call.account) && this.deps.config.hangupBlocked) {
      const crossing: Crossing = {
        policy: 'blocked',
        actions: ['hangup'],
        reason: `outbound call from blocked account ${call.account} to ${call.number} got through (is the guardian-outbound-check GoSub in the outbound context? docs/fraud-dialplan.md)`,
        calls: [call],
        windowMs: 60_000,
      };
      this.decide(crossing, call.account, call.number, call.trunk, now);
      return;
    }
    for (const crossing of this.policies.judge(call, [...live], trunkLive, now)) this.decide(crossing, call.account, call.number, call.trunk, now);
  }

  private ended(call: TrackedCall, why: string): void {
    if (why === 'expired') this.hangups.gone(call.channel);
    if (!call.outbound) return;
    const live = this.liveByAccount.get(call.account);
    if (live?.delete(call) && live.size === 0) this.liveByAccount.delete(call.account);
    if (call.trunk !== null) {
      const n = (this.liveByTrunk.get(call.trunk) ?? 1) - 1;
      if (n <= 0) this.liveByTrunk.delete(call.trunk);
      else this.liveByTrunk.set(call.trunk, n);
    }
  }

  private learnAddress(account: string, address: string): void {
    this.addresses.delete(account);
    if (this.addresses.size >= this.deps.config.maxAccounts) this.addresses.delete(this.addresses.keys().next().value as string);
    this.addresses.set(account, address);
  }

  // ---------------------------------------------------------------- decisions and actions

  private decide(c: Crossing, account: string, number: string, trunk: string | null, now: number): void {
    const key = `${c.policy}\n${account}`;
    const last = this.lastDecision.get(key);
    const repeat = c.windowMs > 0 && last !== undefined && now - last <= c.windowMs;
    if (!repeat) {
      this.lastDecision.delete(key);
      if (this.lastDecision.size >= MAX_DEDUPE) this.lastDecision.delete(this.lastDecision.keys().next().value as string);
      this.lastDecision.set(key, now);
    }
    const address = this.addresses.get(account) ?? null;
    const d: FraudDecision = {
      at: now,
      account,
      policy: c.policy,
      actions: c.actions,
      reason: c.reason,
      channels: c.actions.includes('hangup') ? c.calls.map((x) => x.channel) : [],
      number,
      trunk,
      address,
      repeat,
    };
    this.deps.logger.warn(
      { fraud: { account, policy: c.policy, actions: c.actions, reason: c.reason, channels: d.channels, number, trunk, address, repeat } },
      `fraud: ${c.policy} crossed: ${c.reason}; ${c.actions.length ? c.actions.join(', ') : 'alert'}${repeat ? ' (repeat)' : ''}`,
    );
    this.recent.push(d);
    if (this.recent.length > this.deps.config.recentDecisions) this.recent.shift();
    for (const l of this.listeners) l.decision?.(d);
    for (const ch of d.channels) this.hangups.hangup(ch);
    if (!repeat) {
      this.deps.emit({
        Event: 'GuardianFraud',
        Account: account,
        Address: address ?? '',
        Policy: c.policy,
        Action: (c.actions.length ? c.actions : (['alert'] as FraudAction[])).join(','),
        Reason: c.reason,
        Calls: String(c.calls.length),
        Channels: c.calls
          .map((x) => x.channel)
          .slice(0, 50)
          .join(','),
        Number: number,
        Trunk: trunk ?? '',
        Time: new Date(now).toISOString(),
      });
    }
    if (c.actions.includes('block')) this.block(account, c.policy, c.reason, address, now);
    if (c.actions.includes('ban') && !repeat) this.ban(account, address, c);
  }

  /**
   * The accounts stage's "restrict to internal calls" (docs/accounts.md): an AstDB block with mode
   * `internal`, so the dialplan subroutine lets extensions through and nothing else. A full block
   * already in place stays as it is.
   */
  restrict(account: string, reason: string): Promise<void> {
    this.block(account, 'account-anomaly', reason, null, this.now(), 'internal');
    return Promise.resolve();
  }

  /** Lifts what restrict() set; a full block (a fraud policy's) waits for `unblock`. */
  lift(account: string): Promise<void> {
    if (this.blocked.get(account)?.mode === 'internal') this.unblock(account, 'acknowledged');
    return Promise.resolve();
  }

  private block(account: string, policy: string, reason: string, address: string | null, now: number, mode: AccountBlock['mode'] = 'all'): void {
    const had = this.blocked.get(account);
    if (had && (had.mode === 'all' || mode === 'internal')) return;
    const b: AccountBlock = { account, mode, createdAt: now, policy, reason: reason.slice(0, 300), address };
    this.blocked.set(account, b);
    try {
      this.deps.store.saveBlock(b);
    } catch (err) {
      this.deps.logger.error({ err, account }, 'fraud: the block could not be saved in the state store; it holds until a restart');
    }
    for (const l of this.listeners) l.blocked?.(this.blocked.size);
    this.putBlock(b);
    this.deps.emit({
      Event: 'GuardianAccountBlocked',
      Account: account,
      Address: address ?? '',
      Policy: policy,
      Reason: b.reason,
      Mode: b.mode,
      Time: new Date(now).toISOString(),
    });
  }

  private putBlock(b: AccountBlock): void {
    this.astdbStatus.set(b.account, { state: 'pending', since: this.now(), attempts: 0, error: null });
    this.astdb.put(b.account, blockValue(b));
  }

  private astdbOf(account: string): AstDbStatus {
    return this.astdbStatus.get(account) ?? { state: 'pending', since: this.now(), attempts: 0, error: null };
  }

  private ban(account: string, address: string | null, c: Crossing): void {
    const bans = this.deps.bans;
    const log = this.deps.logger;
    if (!bans || address === null) return void log.warn({ account }, `fraud: ${c.policy} says ban, but no address is known for account ${account}`);
    if (bans.isAllowListed(address)) return void log.warn({ account, address }, `fraud: not banning ${address} (account ${account}): it is allow-listed`);
    const durationSec = parseDuration(this.deps.config.block.banDuration)!;
    bans.ban({ target: address, durationSec, reason: `fraud ${c.policy}: account ${account}`.slice(0, 200), source: 'fraud' }).then(
      () => this.listeners.forEach((l) => l.action?.('ban', true)),
      (err: Error) => {
        log.warn({ account, address, err: err.message }, `fraud: ban of ${address} refused: ${err.message}`);
        this.listeners.forEach((l) => l.action?.('ban', false));
      },
    );
  }

  private actionDone(what: 'hangup' | 'block' | 'unblock', target: string, ok: boolean, attempts: number, error?: string): void {
    for (const l of this.listeners) l.action?.(what, ok);
    if (what === 'block' && this.blocked.has(target))
      this.astdbStatus.set(target, { state: ok ? 'written' : 'failed', since: this.now(), attempts, error: ok ? null : (error ?? '?').slice(0, 200) });
    const log = this.deps.logger;
    if (ok) return void log.info({ fraud: { action: what, target, attempts } }, `fraud: ${what} of ${target} done`);
    if (what === 'unblock' && !this.blocked.has(target) && this.failedDels.size < MAX_FAILED_DELS) this.failedDels.add(target);
    const later = what === 'hangup' ? '' : '; tried again at the next AMI login';
    log.error({ fraud: { action: what, target, attempts, error } }, `fraud: ${what} of ${target} failed after ${attempts} attempts: ${error ?? '?'}${later}`);
  }
}

/** the AstDB value the dialplan reads: mode;epoch seconds (docs/fraud-dialplan.md) */
export function blockValue(b: AccountBlock): string {
  return `${b.mode};${Math.floor(b.createdAt / 1000)}`;
}
