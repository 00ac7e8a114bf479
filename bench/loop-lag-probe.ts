/**
 * Preloaded into the daemon by bench/burst.ts (`node --import <this> ...`): samples the event
 * loop's lag with a 10 ms timer and appends `<epoch ms> <lag ms>` lines to $PBXG_LOOP_LAG_FILE,
 * flushed every 100 ms, so the bench can take the lag inside the burst's own window.
 */
import { appendFileSync } from 'node:fs';

const file = process.env.PBXG_LOOP_LAG_FILE;
if (file) {
  const EVERY = 10;
  let last = performance.now();
  let lines: string[] = [];
  const sample = setInterval(() => {
    const now = performance.now();
    lines.push(`${Math.round(performance.timeOrigin + now)} ${(now - last - EVERY).toFixed(2)}`);
    last = now;
    if (lines.length >= 10) {
      appendFileSync(file, lines.join('\n') + '\n');
      lines = [];
    }
  }, EVERY);
  sample.unref();
}
