/**
 * A second, separate set of kernel sets for bans decided elsewhere (the fleet's decisions, a
 * feed): its own nftables table or ipset names and chain, so `status` and `nft list` tell them
 * from the local bans, and removing one never touches a local ban.
 */
import { StartupError } from '../common/errors.js';
import type { FirewallConfig } from './config-schema.js';
import { IPSET_PREFIX_MAX } from './ipset.js';

/** a group's name: part of a table and set name */
export const GROUP_NAME = /^[a-z0-9_]{1,12}$/;
/** nftables table names are at most this long here (the firewall.table pattern) */
const TABLE_MAX = 32;

/** The firewall config of group `group`: table `<table>_<group>`, ipset prefix `<prefix>-<group>`. */
export function groupFirewallConfig(base: FirewallConfig, group: string): FirewallConfig {
  if (!GROUP_NAME.test(group)) throw new StartupError(`firewall set group "${group.slice(0, 40)}": 1-12 lower-case letters, digits or "_"`, 'CONFIG_INVALID');
  const table = `${base.table}_${group}`;
  const ipsetPrefix = `${base.ipsetPrefix}-${group}`;
  if (table.length > TABLE_MAX)
    throw new StartupError(
      `firewall.table "${base.table}" is too long for the ${group} sets' table ${table} (at most ${TABLE_MAX} characters)`,
      'CONFIG_INVALID',
    );
  if (ipsetPrefix.length > IPSET_PREFIX_MAX)
    throw new StartupError(
      `firewall.ipsetPrefix "${base.ipsetPrefix}" is too long for the ${group} sets' prefix ${ipsetPrefix} (at most ${IPSET_PREFIX_MAX} characters)`,
      'CONFIG_INVALID',
    );
  return { ...base, table, ipsetPrefix };
}
