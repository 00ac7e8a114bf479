/**
 * The fraud policies, judged when a call is dialled (and the budget again on each sweep): what was
 * crossed, by which calls, and what the policy says to do. Per-account state is bounded: at most
 * maxAccounts accounts (least recently calling forgotten first), and per window only its last
 * `calls` start times.
 */
import { parseDuration } from '../common/duration.js';
import { WEEKDAYS, type FraudAction, type FraudConfig } from './config-schema.js';
import type { RateTable } from './destinations.js';
import type { TrackedCall } from './types.js';

export interface Crossing {
  policy: string;
  actions: FraudAction[];
  reason: string;
  /** the calls the actions apply to (hangup) */
  calls: TrackedCall[];
  /** how long a repeat of this crossing for the same account is a repeat (no new event) */
  windowMs: number;
}

interface Window {
  name: string;
  calls: number;
  withinMs: number;
  classes: ReadonlySet<string> | null;
  actions: FraudAction[];
}

interface Hours {
  name: string;
  exact: ReadonlySet<string>;
  prefixes: string[];
  days: ReadonlySet<number>;
  fromMin: number;
  toMin: number;
  actions: FraudAction[];
}

interface AccountState {
  /** per window: the start times of its last `calls` matching calls */
  starts: number[][];
  /** answered or ended calls with a cost: [start, perMinute, billable seconds or null while live, answeredAt] */
  costs: Array<{ channel: string; at: number; perMinute: number; answeredAt: number | null; billableSec: number | null }>;
}

const MAX_COST_ENTRIES = 1000;
const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
const acts = (list: readonly string[]) => list as FraudAction[];

type CostEntry = AccountState['costs'][number];

/** The latest cost entry of a channel: Asterisk reuses channel names (the sequence restarts with
 *  it), and an answer or a Cdr belongs to the call now using the name, not to an ended one. */
function newest(costs: CostEntry[] | undefined, channel: string): CostEntry | undefined {
  if (!costs) return undefined;
  for (let i = costs.length - 1; i >= 0; i--) if (costs[i]!.channel === channel) return costs[i];
  return undefined;
}

/** whether a call's destination is one of `classes` (null: every outbound call) */
function inClasses(call: TrackedCall, classes: ReadonlySet<string> | null): boolean {
  if (classes === null) return true;
  for (const c of call.destination.classes) if (classes.has(c)) return true;
  return false;
}

export class Policies {
  private readonly windows: Window[];
  private readonly hours: Hours[];
  private readonly accounts = new Map<string, AccountState>();
  private readonly riskyClasses: ReadonlySet<string>;
  private readonly budgetMs: number;

  constructor(
    private readonly cfg: FraudConfig,
    private readonly rates: RateTable | null,
    private readonly localTime: (ms: number) => { day: number; minute: number } = (ms) => {
      const d = new Date(ms);
      return { day: d.getDay(), minute: d.getHours() * 60 + d.getMinutes() };
    },
  ) {
    this.windows = cfg.windows.map((w) => ({
      name: w.name,
      calls: w.calls,
      withinMs: parseDuration(w.within)! * 1000,
      classes: w.classes && w.classes.length > 0 ? new Set(w.classes) : null,
      actions: acts(w.actions),
    }));
    this.hours = cfg.hours.map((h) => ({
      name: h.name,
      exact: new Set(h.accounts.filter((a) => !a.endsWith('*'))),
      prefixes: h.accounts.filter((a) => a.endsWith('*')).map((a) => a.slice(0, -1)),
      days: new Set((h.days && h.days.length > 0 ? h.days : WEEKDAYS).map((d) => WEEKDAYS.indexOf(d.toLowerCase()))),
      fromMin: minutes(h.from),
      toMin: minutes(h.to),
      actions: acts(h.actions),
    }));
    this.riskyClasses = new Set(cfg.destinationClasses.classes);
    this.budgetMs = parseDuration(cfg.budget.within)! * 1000;
  }

  get budgetWindowMs(): number {
    return this.budgetMs;
  }

  get trackedAccounts(): number {
    return this.accounts.size;
  }

  private state(account: string): AccountState {
    let s = this.accounts.get(account);
    if (s) {
      this.accounts.delete(account); // most recently calling last
    } else {
      s = { starts: this.windows.map(() => []), costs: [] };
      if (this.accounts.size >= this.cfg.maxAccounts) this.accounts.delete(this.accounts.keys().next().value as string);
    }
    this.accounts.set(account, s);
    return s;
  }

  /** A call was dialled: every policy it crosses. `live` = the account's live outbound calls (it included). */
  judge(call: TrackedCall, live: readonly TrackedCall[], trunkLive: number, now: number): Crossing[] {
    const out: Crossing[] = [];
    if (!call.outbound) return out;
    const s = this.state(call.account);
    const { cfg } = this;
    if (live.length > cfg.concurrentPerAccount.limit)
      out.push({
        policy: 'concurrent-per-account',
        actions: acts(cfg.concurrentPerAccount.actions),
        reason: `${live.length} live outbound calls from account ${call.account} (limit ${cfg.concurrentPerAccount.limit})`,
        calls: [...live],
        windowMs: 60_000,
      });
    if (call.trunk !== null && trunkLive > cfg.concurrentPerTrunk.limit)
      out.push({
        policy: 'concurrent-per-trunk',
        actions: acts(cfg.concurrentPerTrunk.actions),
        reason: `${trunkLive} live calls through trunk ${call.trunk} (limit ${cfg.concurrentPerTrunk.limit})`,
        calls: [call],
        windowMs: 60_000,
      });
    this.windows.forEach((w, i) => {
      if (!inClasses(call, w.classes)) return;
      const starts = s.starts[i]!;
      starts.push(now);
      if (starts.length > w.calls) starts.shift();
      if (starts.length >= w.calls && now - starts[0]! <= w.withinMs) {
        const what = w.classes ? [...w.classes].join('/') : 'outbound';
        out.push({
          policy: w.name,
          actions: w.actions,
          reason: `${w.calls} ${what} calls from account ${call.account} within ${Math.round((now - starts[0]!) / 100) / 10}s (limit: fewer than ${w.calls} within ${w.withinMs / 1000}s)`,
          calls: live.filter((c) => inClasses(c, w.classes)),
          windowMs: w.withinMs,
        });
      }
    });
    const risky = call.destination.classes.filter((c) => this.riskyClasses.has(c));
    if (risky.length > 0)
      out.push({
        policy: 'destination-class',
        actions: acts(cfg.destinationClasses.actions),
        reason: `call from account ${call.account} to ${call.number} (${risky.join(', ')}${call.destination.prefix ? ` prefix ${call.destination.prefix}` : ''})`,
        calls: [call],
        windowMs: 0,
      });
    const t = this.localTime(now);
    for (const h of this.hours) {
      if (!h.exact.has(call.account) && !h.prefixes.some((p) => call.account.startsWith(p))) continue;
      const inside = h.days.has(t.day) && (h.fromMin <= h.toMin ? t.minute >= h.fromMin && t.minute < h.toMin : t.minute >= h.fromMin || t.minute < h.toMin);
      if (!inside)
        out.push({
          policy: `hours:${h.name}`,
          actions: h.actions,
          reason: `outbound call from account ${call.account} to ${call.number} outside its allowed hours (${h.name})`,
          calls: [call],
          windowMs: 0,
        });
    }
    if (this.rates && call.destination.e164) {
      const perMinute = this.rates.perMinute(call.destination.e164);
      if (perMinute !== null && perMinute > 0) {
        s.costs.push({ channel: call.channel, at: now, perMinute, answeredAt: null, billableSec: null });
        if (s.costs.length > MAX_COST_ENTRIES) s.costs.shift();
      }
    }
    return out;
  }

  answered(call: TrackedCall, now: number): void {
    const e = newest(this.accounts.get(call.account)?.costs, call.channel);
    if (e) e.answeredAt = now;
  }

  billed(account: string, channel: string, billableSec: number): void {
    const e = newest(this.accounts.get(account)?.costs, channel);
    if (e) e.billableSec = billableSec;
  }

  /** The estimated cost of `account`'s calls started within the budget window (live ones so far). */
  cost(account: string, now: number): number {
    const s = this.accounts.get(account);
    if (!s) return 0;
    let sum = 0;
    for (const c of s.costs) {
      if (now - c.at > this.budgetMs) continue;
      const sec = c.billableSec ?? (c.answeredAt !== null ? (now - c.answeredAt) / 1000 : 0);
      sum += (sec / 60) * c.perMinute;
    }
    return sum;
  }

  /** Accounts over the budget now (judged on each sweep, as live calls cost more every minute). */
  overBudget(now: number): Array<{ account: string; cost: number }> {
    if (this.cfg.budget.amount <= 0 || !this.rates) return [];
    const out: Array<{ account: string; cost: number }> = [];
    for (const account of this.accounts.keys()) {
      const cost = this.cost(account, now);
      if (cost > this.cfg.budget.amount) out.push({ account, cost });
    }
    return out;
  }

  budgetCrossing(account: string, cost: number, live: readonly TrackedCall[]): Crossing {
    const { budget } = this.cfg;
    return {
      policy: 'budget',
      actions: acts(budget.actions),
      reason: `estimated cost ${cost.toFixed(2)} ${this.rates?.currency ?? ''} of account ${account} within ${budget.within} (budget ${budget.amount})`,
      calls: [...live],
      windowMs: this.budgetMs,
    };
  }
}
