export { Guardian, DEFAULT_MAX_BAN_SEC, type IgnoredReason, type GuardOptions, type GuardListener, type GuardStatus, type BanStorePort, type EnforcementPort } from './guardian.js';
export { Detector, type EventView, type Detection } from './detector.js';
export { loadRulesDir, parseRules, RuleError, type Rule } from './rules.js';
export { parseNetwork, formatNetwork, NetworkList, type IpNetwork } from '../net/ip.js';
export * from './types.js';
export { banNoticeEvent } from './notice.js';
export { HostAllowFeed, systemResolver, type HostResolver } from './host-allow.js';
export { BanScope, defaultScopeLimits, interfaceAddresses, type HostAddressPort, type ScopeLimits } from './scope.js';
export { requestedBanDuration } from './ban-duration.js';
