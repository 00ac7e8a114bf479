/**
 * Asterisk CLI commands through the AMI `Command` action (the Asterisk Base "WEB CLI"), for the
 * `pbx-guardian console` command (admin socket), the Odoo job `asterisk.console` and the REST
 * route POST /v1/console. Commands are checked against an allow-list / deny-list word by word,
 * after splitting them exactly as Asterisk's CLI does (quotes and backslashes), and re-quoted
 * before sending, so what was checked is what Asterisk runs. There is no shell escape: the
 * seed agent's "!command" is refused.
 */
import type { FastifyInstance } from 'fastify';
import { judgeCliWords, type AmiPort, type DialplanPolicy } from '../ami/index.js';
import { AppError } from '../common/errors.js';
import { LOCAL_SOCKET } from '../net/auth.js';
import { defaultsOf } from '../common/config-schema.js';
import { ConsoleConfigSchema, type ConsoleConfig } from './config-schema.js';
import { tokenizeCli } from './tokenize.js';

export type { AmiPort };

export { DEFAULT_CONSOLE_DENY, validateConsoleConfig, type ConsoleConfig } from './config-schema.js';
export { tokenizeCli } from './tokenize.js';

/** The `console:` config section with its defaults (from ConsoleConfigSchema). */
export function defaultConsoleConfig(): ConsoleConfig {
  return defaultsOf(ConsoleConfigSchema);
}

/** A command the policy refuses; the message says which rule and what to change. */
export class ConsoleRefusedError extends AppError {
  constructor(message: string) {
    super(message, 'CONSOLE_REFUSED', 403);
  }
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
  if (command.length > p.maxCommandLength)
    throw new ConsoleRefusedError(`refused: the command is longer than ${p.maxCommandLength} characters (console.maxCommandLength)`);
  if (command.trimStart().startsWith('!')) {
    throw new ConsoleRefusedError(
      'refused: "!" shell escapes are not supported (the console runs Asterisk CLI commands through AMI only; use a real shell on the host for system commands)',
    );
  }
  const words = tokenizeCli(command);
  const lower = words.map((w) => w.toLowerCase());
  if (words.length === 0) throw new ConsoleRefusedError('empty command');
  const allow = p.allow.map((a) => tokenizeCli(a.toLowerCase()));
  if (allow.length > 0 && !allow.some((a) => startsWith(lower, a))) {
    throw new ConsoleRefusedError(`refused: "${quoteCli(words)}" is not in console.allow (${p.allow.join(', ')})`);
  }
  const hit = p.deny.find((d) => startsWith(lower, tokenizeCli(d.toLowerCase())));
  if (hit !== undefined)
    throw new ConsoleRefusedError(
      `refused: "${quoteCli(words)}" is denied by console.deny ("${hit}"): it stops Asterisk, unloads modules, writes files or changes the dialplan`,
    );
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
  constructor(
    private readonly ami: AmiPort,
    private readonly cfg: ConsoleConfig,
    private readonly dialplan: DialplanPolicy,
  ) {}

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
    const capped =
      output.length > this.cfg.maxOutputLines
        ? [...output.slice(0, this.cfg.maxOutputLines), `... ${output.length - this.cfg.maxOutputLines} more lines (console.maxOutputLines)`]
        : output;
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
  return new Map([
    ['asterisk.console', fn],
    ['asterisk.cli', fn],
    ['console.command', fn],
  ]);
}

/** POST /console {command} on the admin app (the CLI's unix socket). Register before listen(). */
export function registerConsoleRoute(app: FastifyInstance, con: AsteriskConsole): void {
  app.post<{ Body: { command: string } }>(
    '/console',
    {
      config: { auth: LOCAL_SOCKET },
      schema: {
        body: {
          type: 'object',
          required: ['command'],
          additionalProperties: false,
          properties: { command: { type: 'string', minLength: 1, maxLength: 4096 } },
        },
      },
    },
    async (req) => con.run(req.body.command),
  );
}
