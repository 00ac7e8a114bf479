/**
 * Asterisk CLI commands through the AMI `Command` action (the Asterisk Base "WEB CLI"), for the
 * `pbx-guardian console` command (admin socket), the Odoo job `asterisk.console` and the REST
 * route POST /v1/console. Commands are checked against an allow-list / deny-list word by word,
 * after splitting them exactly as Asterisk's CLI does (quotes and backslashes), and re-quoted
 * before sending, so what was checked is what Asterisk runs. There is no shell escape: the
 * seed agent's "!command" is refused.
 */
import type { FastifyInstance } from 'fastify';
import { judgeCliWords, type AmiActionFields, type AmiPort, type AmiResponse, type DialplanPolicy } from '../ami/index.js';
import { AppError } from '../common/errors.js';
import { LOCAL_SOCKET } from '../net/auth.js';

export type { AmiPort };

/** Commands that stop or restart Asterisk, unload modules, write files, or add dialplan. */
export const DEFAULT_CONSOLE_DENY = [
  'core stop', 'core restart', 'stop', 'restart', 'module load', 'module unload',
  'dialplan save', 'dialplan add', 'dialplan remove',
  'logger rotate', 'pjsip export', 'xmldoc dump',
  'database put', 'database del', 'database deltree',
  'realtime store', 'realtime update', 'realtime destroy',
];

export function defaultConsoleConfig() {
  return {
    enabled: true,
    /** non-empty: only commands starting with one of these (word by word) run */
    allow: [] as string[],
    /** commands starting with one of these (word by word) are refused; applies after allow */
    deny: [...DEFAULT_CONSOLE_DENY],
    maxCommandLength: 512,
    timeoutMs: 10000,
    /** output lines kept per command */
    maxOutputLines: 10000,
  };
}
export type ConsoleConfig = ReturnType<typeof defaultConsoleConfig>;

export function validateConsoleConfig(c: ConsoleConfig): string[] {
  const errors: string[] = [];
  for (const k of ['allow', 'deny'] as const) {
    c[k].forEach((p, i) => { if (tokenizeCli(p).length === 0 || /[\r\n\0]/.test(p)) errors.push(`console.${k}[${i}]: "${p}" is not a CLI command prefix like "core show"`); });
  }
  if (!Number.isInteger(c.maxCommandLength) || c.maxCommandLength < 16 || c.maxCommandLength > 4096) errors.push('console.maxCommandLength: from 16 to 4096');
  if (!Number.isInteger(c.timeoutMs) || c.timeoutMs < 100 || c.timeoutMs > 600_000) errors.push('console.timeoutMs: from 100 to 600000 ms');
  if (!Number.isInteger(c.maxOutputLines) || c.maxOutputLines < 1) errors.push('console.maxOutputLines: a whole number of at least 1');
  return errors;
}

/** A command the policy refuses; the message says which rule and what to change. */
export class ConsoleRefusedError extends AppError {
  constructor(message: string) {
    super(message, 'CONSOLE_REFUSED', 403);
  }
}

/** Split like Asterisk's CLI (main/cli.c parse_args): blanks separate, "..." groups, \x escapes x. */
export function tokenizeCli(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"') { quoted = !quoted; inWord = true; continue; }
    if (c === '\\' && i + 1 < s.length) { cur += s[++i]; inWord = true; continue; }
    if (!quoted && (c === ' ' || c === '\t')) {
      if (inWord) { out.push(cur); cur = ''; inWord = false; }
      continue;
    }
    cur += c;
    inWord = true;
  }
  if (inWord) out.push(cur);
  return out;
}

/** Words back into a command Asterisk splits into exactly these words. */
export function quoteCli(words: string[]): string {
  return words.map((w) => (/^[^\s"\\]+$/.test(w) ? w : `"${w.replace(/(["\\])/g, '\\$1')}"`)).join(' ');
}

function startsWith(words: string[], prefix: string[]): boolean {
  return prefix.length > 0 && prefix.length <= words.length && prefix.every((p, i) => p === words[i]);
}

export interface ConsolePolicy {
  allow: string[];
  deny: string[];
  maxCommandLength: number;
  /** the action policy's dialplan side (src/ami): applications, functions, variables, expressions */
  dialplan: DialplanPolicy;
}

/** Checks a command; returns the words to send or throws ConsoleRefusedError. */
export function checkCommand(command: string, p: ConsolePolicy): string[] {
  if (typeof command !== 'string' || command.trim() === '') throw new ConsoleRefusedError('empty command');
  if (/[\r\n\0]/.test(command)) throw new ConsoleRefusedError('refused: the command contains CR, LF or NUL');
  if (command.length > p.maxCommandLength) throw new ConsoleRefusedError(`refused: the command is longer than ${p.maxCommandLength} characters (console.maxCommandLength)`);
  if (command.trimStart().startsWith('!')) {
    throw new ConsoleRefusedError('refused: "!" shell escapes are not supported (the console runs Asterisk CLI commands through AMI only; use a real shell on the host for system commands)');
  }
  const words = tokenizeCli(command);
  const lower = words.map((w) => w.toLowerCase());
  if (words.length === 0) throw new ConsoleRefusedError('empty command');
  const allow = p.allow.map((a) => tokenizeCli(a.toLowerCase()));
  if (allow.length > 0 && !allow.some((a) => startsWith(lower, a))) {
    throw new ConsoleRefusedError(`refused: "${quoteCli(words)}" is not in console.allow (${p.allow.join(', ')})`);
  }
  const hit = p.deny.find((d) => startsWith(lower, tokenizeCli(d.toLowerCase())));
  if (hit !== undefined) throw new ConsoleRefusedError(`refused: "${quoteCli(words)}" is denied by console.deny ("${hit}"): it stops Asterisk, unloads modules, writes files or changes the dialplan`);
  try {
    judgeCliWords(words, p.dialplan);
  } catch (e) {
    throw new ConsoleRefusedError((e as Error).message);
  }
  return words;
}

export interface ConsoleResult {
  command: string;
  /** Success, or Error (e.g. no such command) as Asterisk answered */
  response: string;
  output: string[];
}

export class AsteriskConsole {
  constructor(private readonly ami: AmiPort, private readonly cfg: ConsoleConfig, private readonly dialplan: DialplanPolicy) {}

  /** The console policy alone (enabled, allow/deny, words): also what the AMI `Command` action from Odoo or REST passes. */
  check(command: string): string[] {
    if (!this.cfg.enabled) throw new ConsoleRefusedError('the console is disabled (console.enabled: false)');
    return checkCommand(command, { ...this.cfg, dialplan: this.dialplan });
  }

  async run(command: string): Promise<ConsoleResult> {
    const words = this.check(command);
    const sent = quoteCli(words);
    const r = await this.ami.action({ Action: 'Command', Command: sent }, { timeoutMs: this.cfg.timeoutMs });
    const output = r.output ?? r.response.getAll('Output');
    const capped = output.length > this.cfg.maxOutputLines ? [...output.slice(0, this.cfg.maxOutputLines), `... ${output.length - this.cfg.maxOutputLines} more lines (console.maxOutputLines)`] : output;
    return { command: sent, response: r.response.get('Response') ?? 'Error', output: capped };
  }
}

/** Odoo job functions: args "core show channels", ["core show channels"] or {command: "..."}. */
export function consoleJobFunctions(con: AsteriskConsole): Map<string, (args: unknown, kwargs: Record<string, unknown>) => Promise<unknown>> {
  const fn = async (args: unknown, kwargs: Record<string, unknown>): Promise<unknown> => {
    let cmd: unknown = Array.isArray(args) ? args[0] : args;
    if (cmd && typeof cmd === 'object') cmd = (cmd as Record<string, unknown>).command ?? (cmd as Record<string, unknown>).cmd;
    if (cmd === undefined || cmd === null || cmd === '') cmd = kwargs.command;
    if (typeof cmd !== 'string') throw new ConsoleRefusedError('asterisk.console expects the CLI command as a string, e.g. "core show channels"');
    return con.run(cmd);
  };
  return new Map([['asterisk.console', fn], ['asterisk.cli', fn], ['console.command', fn]]);
}

/** POST /console {command} on the admin app (the CLI's unix socket). Register before listen(). */
export function registerConsoleRoute(app: FastifyInstance, con: AsteriskConsole): void {
  app.post<{ Body: { command: string } }>('/console', {
    config: { auth: LOCAL_SOCKET },
    schema: { body: { type: 'object', required: ['command'], additionalProperties: false, properties: { command: { type: 'string', minLength: 1, maxLength: 4096 } } } },
  }, async (req) => con.run(req.body.command));
}
