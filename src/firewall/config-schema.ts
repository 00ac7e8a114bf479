/** The `firewall:` config section (src/common/config-schema.ts, docs/config.md). */
import { Duration, Enum, Int, IntList, Section, Str, type Static } from '../common/config-schema.js';

export const FirewallConfigSchema = Section(
  {
    backend: Enum(['auto', 'nftables', 'ipset', 'memory'] as const, 'auto', {
      description: 'auto (nftables when usable, else ipset+iptables) | nftables | ipset | memory (dry run)',
    }),
    table: Str('pbx_guardian', { description: 'the nftables table (family inet)' }, { pattern: '^[A-Za-z0-9_]{1,32}$', shape: '1-32 letters, digits or "_"' }),
    verdict: Enum(['drop', 'reject'] as const, 'drop', { description: 'what a banned address gets: drop | reject' }),
    ports: IntList(
      [],
      1,
      65535,
      { description: 'only these destination ports (TCP and UDP) are filtered; [] = all ports', example: ['- 5060', '- 5061', '- 5038'] },
      'ports',
    ),
    nftMode: Enum(['auto', 'addon', 'command'] as const, 'auto', {
      description: 'nftables path: auto (the libnftables addon, else the nft command) | addon | command',
    }),
    ipsetMaxElem: Int(1048576, 1, 2_147_483_647, { description: 'ipset maxelem, and the size of the nftables address sets' }, 'count'),
    ipsetPrefix: Str('pbxg', { description: 'prefix of the ipset names' }, { pattern: '^[A-Za-z0-9_-]{1,16}$', shape: '1-16 letters, digits, "_" or "-"' }),
    batchWindowMs: Int(2, 0, 10_000, { description: 'bans arriving within this window (or up to batchMaxSize) go to the kernel as one transaction' }, 'ms'),
    batchMaxSize: Int(10000, 1, 1_000_000, { description: 'operations in one kernel transaction, at most' }, 'count'),
    reconcileIntervalMs: Int(
      300000,
      0,
      86_400_000,
      { description: 're-add elements the store says are active, remove unknown ones, this often; 0 = never' },
      'ms',
    ),
    retryInitialMs: Int(1000, 1, 3_600_000, { description: 'a failed kernel transaction: first retry delay (capped exponential backoff)' }, 'ms'),
    retryMaxMs: Int(60000, 1, 86_400_000, { description: 'a failed kernel transaction: longest retry delay' }, 'ms'),
    watchdogInterval: Duration(
      '2s',
      { description: 'how often the watchdog checks that the table, sets and hook rules are still there (a removed table is repaired within 5 s); 0 = off' },
      {
        minSeconds: 0.1,
        maxSeconds: 3600,
        zeroOff: true,
        shape: '0 (off) or from 100ms to 1h',
        boundsError: '0 (off) or from 100ms to 1h (default 2s: a removed table is repaired within 5 s)',
      },
    ),
  },
  { description: 'the kernel firewall that enforces the bans' },
);

export type FirewallConfig = Static<typeof FirewallConfigSchema>;
