/** Output of the listing commands: aligned tables with a header, JSON with -o json, colour only on a terminal. */

export type OutputFormat = 'table' | 'json';

/** `-o json|table` and the older `--json`; anything else is a usage error (thrown by the caller). */
export function outputFormat(o: string | undefined, json: boolean | undefined): OutputFormat | null {
  if (o === undefined) return json ? 'json' : 'table';
  return o === 'json' || o === 'table' ? o : null;
}

/** Colour for a stream: only on a terminal, and never with NO_COLOR set (https://no-color.org). */
export function colours(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env) {
  const on = Boolean(stream.isTTY) && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  const wrap = (code: string) => (s: string) => (on ? `\u001b[${code}m${s}\u001b[0m` : s);
  return { on, bold: wrap('1'), red: wrap('31'), green: wrap('32'), yellow: wrap('33'), dim: wrap('2') };
}

/** Text from the daemon or a log shown in a table: control characters (an escape sequence in
 *  an attacker-chosen reason) never reach the terminal. */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it takes out
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
}

/**
 * Columns padded to their widest cell, the header first (in bold on a terminal); the last
 * column is not padded (a long reason does not push trailing spaces).
 */
export function table(header: string[], rows: string[][], bold: (s: string) => string = (s) => s): string {
  const cells = rows.map((r) => r.map(printable));
  const width = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(width[i]!)))
      .join('  ')
      .trimEnd();
  return [bold(line(header)), ...cells.map(line)].join('\n');
}
