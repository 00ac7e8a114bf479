import type { Logger } from 'pino';
import type { FirewallConfig } from './enforcer.js';
import type { FirewallBackend } from './types.js';

/**
 * Picks and builds the backend. 'auto': nftables when usable (the libnftables addon, else the
 * nft command), else ipset + iptables, else a clear error. Logs which path it uses.
 */
export async function createBackend(config: FirewallConfig, logger: Logger): Promise<FirewallBackend> {
  if (config.backend === 'memory') {
    const { MemoryBackend } = await import('./memory.js');
    logger.warn('firewall backend: memory (dry run) — nothing is enforced in the kernel');
    return new MemoryBackend();
  }
  const problems: string[] = [];
  if (config.backend === 'auto' || config.backend === 'nftables') {
    const { createNftablesBackend } = await import('./nftables.js');
    try {
      const be = await createNftablesBackend(config, logger);
      return be;
    } catch (err) {
      if (config.backend === 'nftables') throw err;
      problems.push(err instanceof Error ? err.message : String(err));
    }
  }
  if (config.backend === 'auto' || config.backend === 'ipset') {
    const { createIpsetBackend } = await import('./ipset.js');
    try {
      return await createIpsetBackend(config, logger);
    } catch (err) {
      if (config.backend === 'ipset') throw err;
      problems.push(err instanceof Error ? err.message : String(err));
    }
  }
  throw new Error(
    `no usable firewall backend: ${problems.join('; ')}. Install nftables (or ipset and iptables), run pbx-guardian as root or with CAP_NET_ADMIN (the systemd unit grants it), or set firewall.backend: memory for a dry run`,
  );
}
