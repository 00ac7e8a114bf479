/** Public interface of the firewall stage (enforcement backends and the batcher). */
export type { Family, FirewallBackend, FirewallBatch, FirewallEntry, FirewallTarget } from './types.js';
export {
  Enforcer,
  EnforcerStoppedError,
  FirewallRefusedError,
  type Refusal,
  defaultFirewallConfig,
  type EnforcerHooks,
  type EnforcerOptions,
  type FirewallConfig,
} from './enforcer.js';
export { createBackend } from './create.js';
export { MemoryBackend } from './memory.js';
export { DeferredBackend } from './deferred.js';
export { canonicalTarget, checkTarget, InvalidFirewallTargetError, type CanonicalTarget } from './target.js';
