import type { AmiHealth } from '../ami/index.js';
import type { FirewallHealth } from '../firewall/index.js';
import type { OdooHealthSnapshot } from '../odoo/index.js';
import type { WebhookHealth } from '../webhooks/index.js';
import type { FleetHealth } from '../fleet/index.js';
import type { FeedsHealth } from '../feeds/index.js';
import type { SecurityLogHealth } from '../sources/index.js';

export type PartName = 'ami' | 'guard' | 'firewall' | 'store' | 'odoo' | 'webhooks' | 'fleet' | 'feeds';

/** One part's answer. `healthy` is true exactly when `problems` is empty. */
export interface PartHealth {
  part: PartName;
  /** false: switched off in the config (never unhealthy) */
  enabled: boolean;
  healthy: boolean;
  /** one line an administrator understands */
  summary: string;
  /** each says what is wrong, what it affects and what to do */
  problems: string[];
  /** machine-readable facts the judgement used */
  detail: Record<string, unknown>;
}

export interface HealthReport {
  /** every enabled part is healthy */
  healthy: boolean;
  parts: PartHealth[];
  /** ISO 8601 */
  checkedAt: string;
}

export interface GuardSnapshot {
  rules: number;
  /** addresses with failures being counted */
  tracked: number;
  maxTracked: number;
  activeBans: number;
  /** the security-log source; absent or null when sources.securityLog is off */
  securityLog?: SecurityLogHealth | null;
}

export interface StoreSnapshot {
  /** false: running on the in-memory fallback */
  onDisk: boolean;
  /** the state file (or ':memory:') */
  path: string;
  /** the configured state directory */
  stateDir: string;
  /** why the state file could not be opened (the fallback's cause) */
  openError: string | null;
  lastWriteError: { message: string; at: number; lost: number } | null;
  lastWriteOkAt: number | null;
}

/** Everything the judges read: snapshots taken from each stage at one moment. */
export interface HealthInputs {
  /** null: ami.enabled is false */
  ami: AmiHealth | null;
  guard: GuardSnapshot;
  /** firewall.backend as configured (auto, nftables, ipset, memory) and what the enforcer reports */
  firewall: { configured: string; health: FirewallHealth };
  store: StoreSnapshot;
  /** null: odoo.enabled is false */
  odoo: OdooHealthSnapshot | null;
  /** null: no webhooks configured */
  webhooks: WebhookHealth[] | null;
  /** null: crowdsec.machine and crowdsec.bouncer off */
  fleet: FleetHealth | null;
  /** null or absent: no feeds configured */
  feeds?: FeedsHealth | null;
}
