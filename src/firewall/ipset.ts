import type { Logger } from 'pino';
import type { FirewallConfig } from './enforcer.js';
import type { FirewallBackend } from './types.js';

export async function createIpsetBackend(_config: FirewallConfig, _logger: Logger): Promise<FirewallBackend> {
  throw new Error('ipset backend: not implemented yet');
}
