export {
  Guardian,
  DEFAULT_MAX_BAN_SEC,
  HOST_REFRESH_MS,
  type IgnoredReason,
  type GuardOptions,
  type GuardListener,
  type GuardStatus,
  type BanStorePort,
  type EnforcementPort,
} from './guardian.js';
export { Detector, type EventView, type Detection } from './detector.js';
export { SOURCE_NAMES, plainObservation, type SourceName, type Observation, type ObservationSink, type EventDecoder } from './observation.js';
export { loadRulesDir, parseRules, RuleError, type Rule } from './rules.js';
export { parseNetwork, formatNetwork, NetworkList, type IpNetwork } from '../net/ip.js';
export * from './types.js';
export { banNoticeEvent } from './notice.js';
export { HostAllowFeed, systemResolver, type HostResolver } from './host-allow.js';
export { BanScope, defaultScopeLimits, interfaceAddresses, type HostAddress, type HostAddressPort, type ScopeLimits } from './scope.js';
export { AllowList, MAX_LISTED, type AllowEntry, type AllowSource } from './allow.js';
export {
  HostWatch,
  systemFiles,
  defaultHostPaths,
  parseResolvConf,
  parseIPv4Routes,
  parseIPv6Routes,
  type HostFilesPort,
  type HostPaths,
} from './host-watch.js';
export { requestedBanDuration } from './ban-duration.js';
export {
  coveringBans,
  describeBan,
  enclosingNetworks,
  networkAt,
  remoteMatches,
  CoveredByBanError,
  type BanCover,
  type BanMatch,
  type LocalBanMatch,
  type RemoteBanMatch,
  type RemoteBanSet,
  type UnbanOutcome,
} from './lookup.js';
export type { BanLookup } from './lookup-port.js';
export type { AddressReport, NextFailure, RuleCount, WindowCount } from './explain.js';
export { connectSubscribers, guardianEventFanout, type Subscriber, type AmiEventSource, type GuardianEvent } from './subscriber.js';
export {
  AccountFailures,
  defaultAccountAware,
  type AccountAwareOptions,
  type AccountEvidence,
  type AccountFailureReport,
  type SharedVerdict,
} from './account-aware.js';
