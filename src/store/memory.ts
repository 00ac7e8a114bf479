import type { BanRecord } from '../guard/types.js';
import type { BanEndReason } from './index.js';

/** An in-memory stand-in for Store's ban tables: `pbx-guardian check` and tests use it. */
export class MemoryBanStore {
  private readonly active = new Map<string, BanRecord>();
  private readonly history: BanRecord[] = [];

  saveBan(rec: BanRecord): void {
    this.active.set(rec.target, rec);
    this.history.push(rec);
  }

  endBan(target: string, _now: number, _why: BanEndReason): void {
    this.active.delete(target);
  }

  activeBans(now: number): BanRecord[] {
    return [...this.active.values()].filter((r) => r.expiresAt === null || r.expiresAt > now);
  }

  expiredTargets(now: number): string[] {
    return [...this.active.values()].filter((r) => r.expiresAt !== null && r.expiresAt <= now).map((r) => r.target);
  }

  banTimesSince(target: string, since: number): number[] {
    return this.history.filter((r) => r.target === target && r.createdAt >= since && (r.source === 'rule' || r.source === 'recidive')).map((r) => r.createdAt);
  }

  totalBans(): number {
    return this.history.length;
  }
}
