/** The Asterisk CLI's word splitting: a leaf, shared by the console and its config schema. */

/** Split like Asterisk's CLI (main/cli.c parse_args): blanks separate, "..." groups, \x escapes x. */
export function tokenizeCli(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"') {
      quoted = !quoted;
      inWord = true;
      continue;
    }
    if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
      continue;
    }
    if (!quoted && (c === ' ' || c === '\t')) {
      if (inWord) {
        out.push(cur);
        cur = '';
        inWord = false;
      }
      continue;
    }
    cur += c;
    inWord = true;
  }
  if (inWord) out.push(cur);
  return out;
}
