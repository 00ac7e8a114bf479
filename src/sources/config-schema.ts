/** The `sources:` config section (src/common/config-schema.ts, docs/detection.md). */
import { Bool, Duration, Enum, Section, Str, type Static } from '../common/config-schema.js';

export const SourcesConfigSchema = Section(
  {
    securityLog: Section(
      {
        enabled: Bool(false, { description: "follow Asterisk's security log (like tail -F) as a second detection source, e.g. while AMI is down" }),
        path: Str(
          '/var/log/asterisk/security',
          { description: 'the security log file (logger.conf: security => security)' },
          { unit: 'path', absolutePath: true },
        ),
        mode: Enum(['fallback', 'always'] as const, 'fallback', {
          description: 'fallback: its lines count only while AMI does not deliver security events; always: always (a failure seen by both counts twice)',
        }),
        pollInterval: Duration(
          '1s',
          { description: 'how often the file is looked at besides fs.watch (rotation, truncation, missed events)' },
          { minSeconds: 0.1, maxSeconds: 60 },
        ),
      },
      { description: "Asterisk's security log as a detection source (docs/detection.md)" },
    ),
  },
  { description: 'detection sources besides AMI (docs/detection.md); a change needs a restart' },
);

export type SourcesConfig = Static<typeof SourcesConfigSchema>;
