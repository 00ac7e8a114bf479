/** The `admin:` config section (src/common/config-schema.ts, docs/config.md). */
import { Section, Str } from '../common/config-schema.js';

export const AdminConfigSchema = Section(
  {
    socket: Str('/run/pbx-guardian/admin.sock', { description: 'the admin socket: the CLI talks to the daemon here' }, { unit: 'path', absolutePath: true }),
    socketMode: Str('0600', { description: 'its file mode' }, { unit: 'octal mode', pattern: '^0?[0-7]{3}$', shape: 'an octal file mode like 0600' }),
  },
  { description: 'the admin socket (unix)' },
);
