export { AccountsConfigSchema, type AccountsConfig, type AnomalyPolicy } from './config-schema.js';
export { AccountMemory, agentFamily, learnedNetwork, distantNetwork, type AccountState, type MemoryLimits } from './memory.js';
export { AccountStore, type AnomalyRow } from './persist.js';
export { AccountWatch, type AccountRestrictPort, type AccountWatchOptions, type AccountView } from './watch.js';
export { SIGNALS, isAccountName, type Signal } from './names.js';
export { accountWatchOptions, type AccountsWiring } from './wiring.js';
