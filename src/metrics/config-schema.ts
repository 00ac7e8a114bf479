/** The `metrics:` config section (src/common/config-schema.ts, docs/config.md). */
import { Bool, Port, Section, Str } from '../common/config-schema.js';

export const MetricsConfigSchema = Section(
  {
    enabled: Bool(true, { description: 'serve GET /metrics (Prometheus) and /health' }),
    host: Str('127.0.0.1', { description: 'listen address' }, { unit: 'address' }),
    port: Port(9470, { description: 'listen port' }),
  },
  { description: 'the Prometheus listener' },
);
