/**
 * What consumes the daemon's events and decisions (the Odoo bridge, the webhooks, later the fleet).
 * main.ts connects the list to the AMI client and the guardian with one listener each.
 */
import type { AmiMessage } from '../ami/types.js';
import type { GuardListener } from './guardian.js';
import type { BanNotice } from './types.js';

export interface Subscriber<Health = unknown> {
  readonly name: string;
  /**
   * Every AMI event, on the AMI client's read path: synchronous, cheap for events it does not
   * want (one Map lookup), never throws; work that takes time goes to its own bounded queue.
   */
  handleAmiEvent?(msg: AmiMessage): void;
  /** the guardian's ban and unban decisions (never throws) */
  handleBanNotice?(notice: BanNotice): void;
  /**
   * the guardian's own events besides bans (GuardianFraud, GuardianAccountBlocked,
   * GuardianAccountUnblocked, GuardianAccountAnomaly): a flat string dict with `Event` (never throws)
   */
  handleGuardianEvent?(ev: GuardianEvent): void;
  /** a read-only snapshot for the health model */
  health?(): Health;
  /** stops delivering; called once at stop, the AMI client and the guard's timers stopped before */
  close(): Promise<void>;
}

/** One of the guardian's own events: flat strings, `Event` the name (Account, Address, Policy, Action, Reason, Time ...). */
export type GuardianEvent = Readonly<Record<string, string>> & { readonly Event: string };

/** One function that hands a guardian event to every subscriber that takes them, in list order. */
export function guardianEventFanout(subscribers: readonly Subscriber[]): (ev: GuardianEvent) => void {
  const takers = subscribers.filter((s) => s.handleGuardianEvent !== undefined);
  return (ev) => {
    for (const s of takers) s.handleGuardianEvent!(ev);
  };
}

/** Where AMI events come from (the AMI client). */
export interface AmiEventSource {
  on(event: 'event', listener: (msg: AmiMessage) => void): unknown;
}

/**
 * One AMI 'event' listener and one GuardListener for all of `subscribers`, called in list order;
 * nothing is attached for a kind no subscriber takes.
 */
export function connectSubscribers(subscribers: readonly Subscriber[], ami: AmiEventSource | null, guard: { on(l: GuardListener): void }): void {
  const onAmi = subscribers.filter((s) => s.handleAmiEvent !== undefined);
  if (ami && onAmi.length > 0) {
    ami.on('event', (msg) => {
      for (const s of onAmi) s.handleAmiEvent!(msg);
    });
  }
  const onBan = subscribers.filter((s) => s.handleBanNotice !== undefined);
  if (onBan.length > 0) {
    const notify = (notice: BanNotice) => {
      for (const s of onBan) s.handleBanNotice!(notice);
    };
    guard.on({ banned: notify, unbanned: (notice) => notify(notice) });
  }
}
