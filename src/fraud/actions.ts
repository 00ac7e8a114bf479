/**
 * The actions that touch Asterisk, each retried with the one backoff (net/backoff.ts):
 *  - hangup: AMI `Hangup` with the exact Channel name the tracker saw (never a /regex/: the
 *    channel name is Asterisk's, but a regex would be built from it and could match other calls),
 *    sent again until that channel's Hangup event arrives or the attempts are used up;
 *  - block / unblock: AMI `DBPut` / `DBDel` of family guardian-blocked, key = the account, value
 *    `all;<epoch seconds>` (docs/fraud-dialplan.md reads it), retried while AMI refuses.
 * Bounded: at most MAX_PENDING channels and accounts in flight; beyond, the action is dropped and
 * reported (the alert has gone out already).
 */
import type { AmiActionFields, AmiPort } from '../ami/index.js';
import { backoffMs } from '../net/backoff.js';

export const BLOCK_FAMILY = 'guardian-blocked';
const MAX_PENDING = 10_000;

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const realTimers: Timers = {
  set: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface RetryPolicy {
  attempts: number;
  retryMs: number;
  maxRetryMs: number;
}

export interface ActionReport {
  /** an action finished: ok, or given up after its attempts (with the last error) */
  done(what: 'hangup' | 'block' | 'unblock', target: string, ok: boolean, attempts: number, error?: string): void;
}

/** Asterisk answers Hangup of a channel that is already gone with this message. */
const GONE = /no such channel/i;

export class Hangups {
  private readonly pending = new Map<string, { attempts: number; timer: unknown }>();

  constructor(
    private readonly ami: AmiPort,
    private readonly retry: RetryPolicy,
    private readonly timers: Timers,
    private readonly report: ActionReport,
    /** whether the tracker still knows the channel (its Hangup event has not arrived) */
    private readonly alive: (channel: string) => boolean,
  ) {}

  get inFlight(): number {
    return this.pending.size;
  }

  hangup(channel: string): void {
    if (this.pending.has(channel)) return;
    if (this.pending.size >= MAX_PENDING) return this.report.done('hangup', channel, false, 0, 'too many hangups in flight');
    const p = { attempts: 0, timer: null as unknown };
    this.pending.set(channel, p);
    this.send(channel, p);
  }

  /** the channel's Hangup event arrived: nothing more to do */
  gone(channel: string): void {
    const p = this.pending.get(channel);
    if (!p) return;
    this.timers.clear(p.timer);
    this.pending.delete(channel);
    this.report.done('hangup', channel, true, p.attempts);
  }

  close(): void {
    for (const p of this.pending.values()) this.timers.clear(p.timer);
    this.pending.clear();
  }

  private send(channel: string, p: { attempts: number; timer: unknown }): void {
    p.attempts++;
    const next = (error: string) => {
      if (this.pending.get(channel) !== p) return;
      if (p.attempts >= this.retry.attempts) {
        this.pending.delete(channel);
        return this.report.done('hangup', channel, false, p.attempts, error);
      }
      p.timer = this.timers.set(() => this.send(channel, p), backoffMs(p.attempts - 1, this.retry.retryMs, this.retry.maxRetryMs));
    };
    this.ami.action({ Action: 'Hangup', Channel: channel }).then(
      (r) => {
        const ok = r.response.get('Response') === 'Success';
        const message = r.response.get('Message') ?? '';
        if (!ok && GONE.test(message)) return this.gone(channel);
        // Success: wait for the Hangup event; a channel the tracker no longer knows is taken as gone
        if (ok && !this.alive(channel)) return this.gone(channel);
        next(ok ? 'no Hangup event after the AMI Hangup' : `AMI answered ${r.response.get('Response') ?? '?'}: ${message}`);
      },
      (err: Error) => next(err.message),
    );
  }
}

/** DBPut / DBDel with retries; a newer request for an account replaces the one in flight. */
export class AstDbWriter {
  private readonly pending = new Map<string, { op: 'put' | 'del'; value: string; attempts: number; timer: unknown }>();

  constructor(
    private readonly ami: AmiPort,
    private readonly retry: RetryPolicy,
    private readonly timers: Timers,
    private readonly report: ActionReport,
  ) {}

  get inFlight(): number {
    return this.pending.size;
  }

  put(account: string, value: string): void {
    this.start(account, 'put', value);
  }

  del(account: string): void {
    this.start(account, 'del', '');
  }

  close(): void {
    for (const p of this.pending.values()) this.timers.clear(p.timer);
    this.pending.clear();
  }

  private start(account: string, op: 'put' | 'del', value: string): void {
    const old = this.pending.get(account);
    if (old) this.timers.clear(old.timer);
    else if (this.pending.size >= MAX_PENDING)
      return this.report.done(op === 'put' ? 'block' : 'unblock', account, false, 0, 'too many AstDB writes in flight');
    const p = { op, value, attempts: 0, timer: null as unknown };
    this.pending.set(account, p);
    this.send(account, p);
  }

  private send(account: string, p: { op: 'put' | 'del'; value: string; attempts: number; timer: unknown }): void {
    p.attempts++;
    const what = p.op === 'put' ? 'block' : 'unblock';
    const fields: AmiActionFields =
      p.op === 'put' ? { Action: 'DBPut', Family: BLOCK_FAMILY, Key: account, Val: p.value } : { Action: 'DBDel', Family: BLOCK_FAMILY, Key: account };
    const finish = (ok: boolean, error?: string) => {
      if (this.pending.get(account) !== p) return; // replaced meanwhile
      if (ok || p.attempts >= this.retry.attempts) {
        this.pending.delete(account);
        return this.report.done(what, account, ok, p.attempts, error);
      }
      p.timer = this.timers.set(() => this.send(account, p), backoffMs(p.attempts - 1, this.retry.retryMs, this.retry.maxRetryMs));
    };
    this.ami.action(fields).then(
      (r) => {
        const ok = r.response.get('Response') === 'Success';
        // DBDel of a key that is not there: the goal (no block) holds
        const absent = p.op === 'del' && /not found|does not exist/i.test(r.response.get('Message') ?? '');
        finish(ok || absent, ok || absent ? undefined : `AMI answered ${r.response.get('Response') ?? '?'}: ${r.response.get('Message') ?? ''}`);
      },
      (err: Error) => finish(false, err.message),
    );
  }
}
