import type { HealthReport } from './types.js';

/**
 * The health block `pbx-guardian status` prints on top: one line per enabled part with OK or
 * FAIL, each problem indented under its part. Disabled parts are left out.
 */
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function formatHealth(report: HealthReport): string {
  const enabled = report.parts.filter((p) => p.enabled);
  const failing = enabled.filter((p) => !p.healthy);
  const head =
    failing.length === 0
      ? `Health: OK (${enabled.length} parts)`
      : `Health: FAIL (${failing.map((p) => p.part).join(', ')}: ${plural(
          failing.reduce((n, p) => n + p.problems.length, 0),
          'problem',
        )})`;
  const width = Math.max(...enabled.map((p) => p.part.length), 0);
  const lines = [head];
  for (const p of enabled) {
    lines.push(`  ${p.healthy ? 'OK  ' : 'FAIL'}  ${p.part.padEnd(width)}  ${p.summary}`);
    for (const problem of p.problems) lines.push(`${' '.repeat(width + 10)}- ${problem}`);
  }
  return lines.join('\n');
}
