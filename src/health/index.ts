/**
 * Health model: one answer per part (AMI, guard, firewall, store, Odoo bridge, webhooks), judged
 * from read-only snapshots of each stage. Downstream of every stage, like metrics/: only main.ts,
 * cli/ and admin/admin.ts import it.
 */
export type { PartName, PartHealth, HealthReport, HealthInputs, GuardSnapshot, StoreSnapshot } from './types.js';
export {
  judgeHealth,
  judgeAmi,
  judgeGuard,
  judgeFirewall,
  judgeStore,
  judgeOdoo,
  judgeWebhooks,
  STORE_ERROR_RECENT_MS,
  ODOO_OLDEST_MAX_MS,
  ODOO_FAILING_MAX_MS,
  WEBHOOK_FAILING_MAX_MS,
  OUTBOX_FULL_RATIO,
} from './judge.js';
export { formatHealth } from './text.js';
export { registerHealthMetrics, type HealthSample } from './metrics.js';
