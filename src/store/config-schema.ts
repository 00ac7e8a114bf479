/** The `store:` config section and `stateDir` (src/common/config-schema.ts, docs/config.md). */
import { Duration, Section, Str } from '../common/config-schema.js';

export const StateDirSchema = Str(
  '/var/lib/pbx-guardian',
  { description: 'SQLite state: active bans, ban history, the Odoo and webhook outboxes (one daemon per directory)' },
  { unit: 'path', absolutePath: true },
);

export const StoreConfigSchema = Section(
  {
    historyRetention: Duration('90d', {
      description:
        'ended bans leave the ban history this long after they ended (at least guard.escalation.lookback and guard.recidive.within); 0 keeps the history forever (docs/store.md)',
      reload: 'live',
    }),
  },
  { description: 'the state database (docs/store.md)' },
);
