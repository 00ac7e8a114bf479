/** The `asteriskConfig:` config section (src/common/config-schema.ts, docs/config.md). */
import { Bool, Int, Section, Str, StrList, type Static } from '../common/config-schema.js';
import { DEFAULT_BASES, validateBases } from './names.js';

export const AsteriskConfigConfigSchema = Section(
  {
    enabled: Bool(true, { description: 'config file sync (jobs and REST routes)' }),
    dir: Str('/etc/asterisk', { description: 'the Asterisk config directory; every path is confined to it' }, { unit: 'path', absolutePath: true }),
    marker: Str(
      'odoo',
      { description: 'only <base>_<marker>.conf files can be written or deleted' },
      { pattern: '^[A-Za-z0-9_-]{2,32}$', shape: '2-32 letters, digits, "_" or "-"' },
    ),
    bases: StrList(
      DEFAULT_BASES,
      {
        description:
          'the bases whose <base>_<marker>.conf config sync owns (and #includes from <base>.conf); manager, asterisk, modules, ari, http, acl, cli, cli_permissions, cli_aliases, logger, extconfig, sorcery, res_odbc, res_pgsql and res_config_mysql are refused even if listed, and never read',
      },
      { checkedBy: 'validateBases' },
    ),
    maxFileBytes: Int(1048576, 1024, 64 * 1024 * 1024, { description: 'largest file read or written' }, 'bytes'),
    maxFiles: Int(500, 1, undefined, { description: 'get_all_configs returns at most this many files' }, 'count'),
    backup: Bool(true, { description: 'keep the previous content as <name>.bak' }),
    reloadTimeoutMs: Int(30000, 1, 600_000, { description: 'how long a module reload through AMI waits' }, 'ms'),
  },
  { description: 'Asterisk config files sync (Asterisk Base): jobs and REST routes' },
);

export type AsteriskConfigConfig = Static<typeof AsteriskConfigConfigSchema>;

export const validateAsteriskConfigConfig = (c: AsteriskConfigConfig): string[] => validateBases(c.bases);
