/**
 * AGI commands that Odoo answers a FastAGI request with are judged like AMI actions: the line
 * is split into words the way res_agi.c parse_args splits it, and each command is judged on
 * those words (EXEC's application and data, SET/GET VARIABLE names, GET FULL VARIABLE's
 * expression). The line is sent unchanged, so what was judged is what Asterisk parses.
 */
import { ActionRefusedError, judgeApplication, judgeText, judgeVariableName, type DialplanPolicy } from './dialplan-policy.js';

/** res_agi.c MAX_ARGS */
const AGI_MAX_ARGS = 128;

/** Split an AGI command line as res_agi.c parse_args does (quotes group, a backslash escapes). */
export function parseAgiArgs(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  let escaped = false;
  const startWord = (): boolean => {
    if (inWord) return true;
    if (out.length >= AGI_MAX_ARGS - 1) return false; // Asterisk drops what does not fit
    inWord = true;
    cur = '';
    return true;
  };
  for (const c of line) {
    if (c === '"' && !escaped) {
      quoted = !quoted;
      if (quoted) startWord();
      continue;
    }
    if ((c === ' ' || c === '\t') && !quoted && !escaped) {
      if (inWord) {
        out.push(cur);
        inWord = false;
      }
      continue;
    }
    if (c === '\\' && !escaped) {
      escaped = true;
      continue;
    }
    if (startWord()) cur += c;
    escaped = false;
  }
  if (inWord) out.push(cur);
  return out;
}

const GET_FULL_RE = /^\$\{([^${}]+)\}$/;
const RELATIVE_FILE_RE = /^(?!\/)(?!.*(?:^|\/)\.\.(?:\/|$))/;

/** Judges one AGI command line; throws ActionRefusedError naming the rule. */
export function judgeAgiCommand(line: string, p: DialplanPolicy): void {
  if (/[\r\n\0]/.test(line)) throw new ActionRefusedError('refused: an AGI command with CR, LF or NUL');
  const w = parseAgiArgs(line);
  const cmd = w.map((x) => x.toUpperCase());
  const is = (...words: string[]) => words.every((x, i) => cmd[i] === x);
  if (is('GET', 'FULL', 'VARIABLE')) {
    // the one command whose argument Asterisk evaluates: only ${NAME} or ${FUNCTION(literal args)}
    const m = GET_FULL_RE.exec(w[3] ?? '');
    if (!m)
      throw new ActionRefusedError(
        `refused: GET FULL VARIABLE ${JSON.stringify((w[3] ?? '').slice(0, 80))} must be one \${NAME} or \${FUNCTION(literal arguments)}`,
      );
    judgeVariableName('GET FULL VARIABLE', m[1]!, 'read', p);
    w.slice(4).forEach((x) => judgeText('GET FULL VARIABLE channel', x, p));
    return;
  }
  w.forEach((x) => judgeText('the AGI argument', x, p));
  if (is('EXEC')) judgeApplication('AGI EXEC', w[1] ?? '', w[2] ?? '', p);
  else if (is('SET', 'VARIABLE')) judgeVariableName('AGI SET VARIABLE', w[2] ?? '', 'write', p);
  else if (is('GET', 'VARIABLE')) judgeVariableName('AGI GET VARIABLE', w[2] ?? '', 'read', p);
  else if (is('RECORD', 'FILE') && !RELATIVE_FILE_RE.test(w[2] ?? '')) {
    throw new ActionRefusedError(`refused: RECORD FILE ${JSON.stringify((w[2] ?? '').slice(0, 80))} is an absolute path or climbs out with ".."`);
  }
}
