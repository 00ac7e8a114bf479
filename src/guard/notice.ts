import type { BanNotice } from './types.js';

/**
 * A ban or unban the guardian made, as an AMI-like event (`GuardianBan` / `GuardianUnban`) that
 * Odoo's events map and webhook subscribers can route like any other event.
 */
export function banNoticeEvent(notice: BanNotice): Record<string, string> {
  const r = notice.record;
  return {
    Event: notice.action === 'ban' ? 'GuardianBan' : 'GuardianUnban',
    Address: r.target,
    Family: `IPV${r.family}`,
    IsNetwork: r.isNetwork ? 'yes' : 'no',
    Rule: r.rule,
    Source: r.source,
    Reason: r.reason,
    Count: String(r.count),
    Duration: r.expiresAt === null ? '0' : String(Math.max(0, Math.round((r.expiresAt - r.createdAt) / 1000))),
    Permanent: r.expiresAt === null ? 'yes' : 'no',
    CreatedAt: new Date(r.createdAt).toISOString(),
    ExpiresAt: r.expiresAt === null ? '' : new Date(r.expiresAt).toISOString(),
  };
}
