/** Public interface of the firewall stage (enforcement backends and the batcher). */
export type { Family, FirewallBackend, FirewallBatch, FirewallEntry, FirewallHealth, FirewallTarget, Inspection, RepairReport } from './types.js';
export {
  Enforcer,
  EnforcerStoppedError,
  FirewallRefusedError,
  type Refusal,
  defaultFirewallConfig,
  DEFAULT_WATCHDOG_INTERVAL_MS,
  type EnforcerHooks,
  type EnforcerOptions,
  type FirewallConfig,
} from './enforcer.js';
export { createBackend } from './create.js';
export { MemoryBackend } from './memory.js';
export { DeferredBackend } from './deferred.js';
export { canonicalTarget, checkTarget, InvalidFirewallTargetError, type CanonicalTarget } from './target.js';
export { pauseControl, takePausedNote, type Pausable } from './pause-note.js';
export { AllowFollowers } from './allow-followers.js';
export { groupFirewallConfig, GROUP_NAME } from './group.js';
export { RemoteSet, type RemoteSetHealth, type RemoteSetOptions } from './remote-set.js';
