/**
 * A node:test reporter for the unit lane: the time each test file's top-level tests took, as JSON
 * ({ "guard.test.ts": ms }). test/lanes.ts deals the next run's files to its processes by it.
 */
import { basename } from 'node:path';

interface TestEvent {
  type: string;
  data?: { file?: string; nesting?: number; details?: { duration_ms?: number } };
}

export default async function* laneTimes(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const times: Record<string, number> = {};
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { file, nesting, details } = event.data ?? {};
    if (!file || nesting !== 0 || details?.duration_ms === undefined) continue;
    const name = basename(file).replace(/\.js$/, '.ts');
    times[name] = Math.round((times[name] ?? 0) + details.duration_ms);
  }
  yield JSON.stringify(times);
}
