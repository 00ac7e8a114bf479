/**
 * What a caller-chosen dialplan text may name: applications, functions, channel variables and
 * expressions. Shared by the AMI action policy (policy.ts), the FastAGI answers (agi-policy.ts) and
 * the console's word check. Each rule says why it refuses; a refusal throws ActionRefusedError.
 *
 * Asterisk's own manager.c refuses the same family of names for AMI users without the `system`
 * write class (is_originate_app_permitted, function_capable_string_allowed_with_auths); the lists
 * here are that list, widened to what runs a program, writes a file or evaluates text again.
 */
import { AppError } from '../common/errors.js';
import { networkContains, parseNetwork } from '../net/ip.js';

/** A caller's action, AGI command or CLI command was refused; nothing was sent. */
export class ActionRefusedError extends AppError {
  constructor(message: string) {
    super(message, 'ACTION_REFUSED', 403);
  }
}

/**
 * Applications that run a program, run an AGI script, evaluate their argument as dialplan, write
 * where they are told, or originate further calls. Compared by exact name, case-insensitively.
 */
export const BUILTIN_DENIED_APPLICATIONS: readonly string[] = [
  'System',
  'TrySystem',
  'Exec',
  'ExecIf',
  'TryExec',
  'ExternalIVR',
  'Originate',
  'Ices',
  'MP3Player',
  'NBScat',
  'Festival',
  'DBdeltree',
  'Reload',
];

/** Applications allowed only with particular arguments (judged in judgeApplication). */
const AGI_APPS = new Set(['agi', 'eagi', 'deadagi']);

/**
 * Dialplan functions a caller may read or write through a variable name (Originate Variable,
 * Setvar, Getvar, Status Variables, Set/MSet, AGI SET/GET VARIABLE). Every other function is
 * refused: SHELL, EVAL, FILE, ENV, DB, ODBC, CURL, REALTIME, STAT, ... run programs, evaluate
 * text again, or reach files and databases.
 */
export const BUILTIN_ALLOWED_FUNCTIONS: readonly string[] = [
  'CALLERID',
  'CONNECTEDLINE',
  'REDIRECTING',
  'CHANNEL',
  'CDR',
  'LEN',
  'HANGUPCAUSE',
  'HANGUPCAUSE_KEYS',
  'PJSIP_HEADER',
  'PJSIP_DIAL_CONTACTS',
  'PJSIP_ENDPOINT',
  'PJSIP_CONTACT',
  'PJSIP_AOR',
  'PJSIP_MEDIA_OFFER',
  'SIP_HEADER',
  'SIPPEER',
  'SIPCHANINFO',
  'IAXPEER',
  'DEVICE_STATE',
  'EXTENSION_STATE',
  'PRESENCE_STATE',
  'HINT',
  'MAILBOX_EXISTS',
  'VM_INFO',
  'QUEUE_MEMBER',
  'QUEUE_MEMBER_COUNT',
  'QUEUE_MEMBER_LIST',
  'QUEUE_VARIABLES',
  'QUEUE_WAITING_COUNT',
  'GROUP',
  'GROUP_COUNT',
  'VOLUME',
  'MASTER_CHANNEL',
  'SHARED',
  'TIMEOUT',
  'JITTERBUFFER',
  'TALK_DETECT',
];

/** Channel variables whose value Asterisk runs as a command or uses to evaluate text again. */
export const BUILTIN_DENIED_VARIABLES: readonly string[] = ['MONITOR_EXEC', 'MONITOR_EXEC_ARGS', 'AGIEXECFULL'];

/** The dialplan side of the policy, resolved (names lower or upper case as compared). */
export interface DialplanPolicy {
  /** lower case */
  readonly deniedApplications: ReadonlySet<string>;
  /** upper case */
  readonly allowedFunctions: ReadonlySet<string>;
  /** upper case, without the inheritance underscores */
  readonly deniedVariables: ReadonlySet<string>;
  /** `${...}` and `$[...]` in caller text (off: refused) */
  readonly expressions: boolean;
  /** AGI/EAGI/DeadAGI with a local script path, or agi:// to another host (off: only agi(s):// to loopback) */
  readonly anyAgi: boolean;
}

function refuse(message: string): never {
  throw new ActionRefusedError(`refused: ${message}`);
}

function show(s: string): string {
  return JSON.stringify(s.length > 80 ? s.slice(0, 80) + '…' : s);
}

/**
 * `$` followed by `{` or `[` starts an expression; a backslash or a quote between them is removed
 * by Asterisk's argument parsing and would assemble one, so `$` followed by any of those refuses.
 */
const EXPRESSION_RE = /\$[\\"'{[]/;

/** Refuses text that Asterisk could evaluate as an expression (when the policy does not allow them). */
export function judgeText(where: string, text: string, p: DialplanPolicy): void {
  if (!p.expressions && EXPRESSION_RE.test(text)) {
    refuse(
      `${where} ${show(text)} holds a dialplan expression ($\{...} or $[...]); it cannot be judged before Asterisk evaluates it (a name like $\{SH$\{EMPTY}ELL()} is assembled at run time). Send the literal value, or see actionPolicy.allow "expressions"`,
    );
  }
}

/**
 * Asterisk's __ast_app_separate_args (main/app.c): split on `delim` outside (), [] and quotes;
 * with removeChars, quotes and backslashes are removed (a backslash keeps the next character).
 */
export function separateArgs(input: string, delim: string, removeChars: boolean, max = 128): string[] {
  const out: string[] = [];
  let cur = '';
  let paren = 0;
  let bracket = 0;
  let quote = false;
  let i = 0;
  let endedOnDelim = false;
  while (i < input.length && out.length < max - 1) {
    cur = '';
    endedOnDelim = false;
    for (; i < input.length; i++) {
      const c = input[i]!;
      if (c === '(') paren++;
      else if (c === ')') {
        if (paren) paren--;
      } else if (c === '[') bracket++;
      else if (c === ']') {
        if (bracket) bracket--;
      } else if (c === '"' && delim !== '"') {
        quote = !quote;
        if (removeChars) continue;
      } else if (c === '\\') {
        if (removeChars) {
          i++;
          if (i < input.length) cur += input[i];
          continue;
        }
        cur += c;
        i++;
        if (i < input.length) cur += input[i];
        continue;
      } else if (c === delim && !paren && !quote && !bracket) {
        i++;
        endedOnDelim = true;
        break;
      }
      cur += c;
    }
    out.push(cur);
  }
  if (i < input.length)
    out.push(input.slice(i)); // past the last slot Asterisk keeps the rest unparsed
  else if (endedOnDelim && out.length < max) out.push('');
  return out;
}

const FUNCTION_RE = /^([A-Za-z0-9_]+)\(([^()$]*(?:\([^()$]*\)[^()$]*)*)\)$/;
const PLAIN_VARIABLE_RE = /^[A-Za-z0-9_.-]+$/;

/**
 * A variable name a caller reads or writes: a plain name (not one of the denied variables), or
 * one call of an allowed function with literal arguments.
 */
export function judgeVariableName(where: string, name: string, mode: 'read' | 'write', p: DialplanPolicy): void {
  const n = name.trim();
  judgeText(where, n, p);
  const bare = n.replace(/^_{1,2}/, '');
  if (n.includes('(') || n.includes(')')) {
    const m = FUNCTION_RE.exec(bare);
    if (!m) refuse(`${where} ${show(n)} is not one call of a dialplan function with literal arguments`);
    const fn = m[1]!.toUpperCase();
    if (!p.allowedFunctions.has(fn)) {
      refuse(
        `${where} ${mode === 'write' ? 'writes' : 'reads'} the dialplan function ${fn}(), which is not on the allowed list (SHELL, EVAL, FILE, ENV, DB, ODBC, CURL, ... run programs, evaluate text again or reach files); see actionPolicy.allow "function:${fn}"`,
      );
    }
    return;
  }
  if (!PLAIN_VARIABLE_RE.test(bare)) refuse(`${where} ${show(n)} is not a variable name (letters, digits, "_", ".", "-")`);
  if (p.deniedVariables.has(bare.toUpperCase())) {
    refuse(
      `${where} sets ${bare.toUpperCase()}, whose value Asterisk runs as a command or uses to evaluate text again; see actionPolicy.allow "variable:${bare.toUpperCase()}"`,
    );
  }
}

/** `NAME=value` assignments (Originate Variable items, Set, MSet): the name is a write. */
export function judgeAssignment(where: string, item: string, p: DialplanPolicy): void {
  judgeText(where, item, p);
  const eq = item.indexOf('=');
  if (eq <= 0) return; // Asterisk skips an item without "=" (or with an empty name)
  judgeVariableName(where, item.slice(0, eq), 'write', p);
}

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h.toLowerCase() === 'localhost') return true;
  const net = parseNetwork(h);
  if (!net) return false;
  const lo = parseNetwork(net.family === 4 ? '127.0.0.0/8' : '::1/128')!;
  return networkContains(lo, net);
}

const AGI_URL_RE = /^agis?:\/\/(\[[0-9A-Fa-f:.]+\]|[^/:\s]+)(?::\d{1,5})?(?:\/|$)/i;
const RELATIVE_FILE_RE = /^(?!\/)(?!.*(?:^|\/)\.\.(?:\/|$))/;

/**
 * One application with its data, as Originate, AGI EXEC or the console would run it.
 * `app` is the name as Asterisk looks it up (case-insensitive, exact).
 */
export function judgeApplication(where: string, app: string, data: string, p: DialplanPolicy): void {
  const name = app.trim();
  judgeText(`${where} application`, name, p);
  judgeText(`${where} data`, data, p);
  if (name === '') return;
  if (!/^[A-Za-z0-9_]+$/.test(name)) refuse(`${where} application ${show(name)} is not an application name`);
  const lower = name.toLowerCase();
  if (p.deniedApplications.has(lower)) {
    refuse(
      `${where} application ${name} is denied on this agent: it runs a program, evaluates its data as dialplan, or originates further calls (odoo.deniedApplications and the built-in list; see actionPolicy.allow "application:${name}")`,
    );
  }
  const args = separateArgs(data, ',', true);
  if (AGI_APPS.has(lower) && !p.anyAgi) {
    const url = AGI_URL_RE.exec((args[0] ?? '').trim());
    if (!url || !isLoopbackHost(url[1]!)) {
      refuse(
        `${where} ${name}(${show(args[0] ?? '')}) runs an AGI script that is not a FastAGI server on this host (agi://127.0.0.1/...): a local script or a remote FastAGI server can run any command; see actionPolicy.allow "agi"`,
      );
    }
  }
  if (lower === 'mixmonitor') {
    if ((args[2] ?? '').trim() !== '') refuse(`${where} MixMonitor with a post-recording command ${show(args[2]!)}: Asterisk runs it through the shell`);
    if (!RELATIVE_FILE_RE.test((args[0] ?? '').trim()))
      refuse(`${where} MixMonitor file ${show(args[0] ?? '')} is an absolute path or climbs out with "..": recordings stay in Asterisk's monitor directory`);
  }
  if (lower === 'monitor' && !RELATIVE_FILE_RE.test((args[1] ?? '').trim())) {
    refuse(`${where} Monitor file ${show(args[1] ?? '')} is an absolute path or climbs out with "..": recordings stay in Asterisk's monitor directory`);
  }
  if (lower === 'queue' && (args[5] ?? '').trim() !== '')
    refuse(`${where} Queue with an AGI argument ${show(args[5]!)} runs an AGI script for each answered call`);
  if (lower === 'set') judgeAssignment(`${where} Set`, data, p);
  if (lower === 'mset') for (const a of args) judgeAssignment(`${where} MSet`, a, p);
}

/**
 * The words of a CLI command (console, AMI Command): no word may be a denied application or
 * variable, call a function off the allowed list, or hold an expression. `channel originate
 * ... application AGI /bin/sh` and `dialplan set chanvar ... FILE(/etc/x) y` are refused here.
 */
export function judgeCliWords(words: readonly string[], p: DialplanPolicy): void {
  for (const w of words) {
    judgeText('the command word', w, p);
    const bare = w.replace(/\(.*$/s, '');
    if (p.deniedApplications.has(bare.toLowerCase()) || (!p.anyAgi && AGI_APPS.has(bare.toLowerCase()))) {
      refuse(`the command names ${bare}, a dialplan application that runs a program, an AGI script or evaluates dialplan`);
    }
    if (p.deniedVariables.has(bare.replace(/^_{1,2}/, '').toUpperCase())) refuse(`the command names ${bare}, a variable Asterisk runs as a command`);
    for (const call of w.matchAll(/([A-Za-z0-9_]+)\(/g)) {
      const fn = call[1]!.toUpperCase();
      if (!p.allowedFunctions.has(fn))
        refuse(`the command word ${show(w)} calls ${fn}(), which is not an allowed dialplan function (see actionPolicy.allow "function:${fn}")`);
    }
    if (/^(shell|eval|file|env|system|trysystem)$/i.test(bare)) refuse(`the command names ${bare}, which runs programs or reaches files`);
  }
}
