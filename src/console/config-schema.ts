/** The `console:` config section (src/common/config-schema.ts, docs/config.md). */
import { Bool, Int, Section, StrList, type Static } from '../common/config-schema.js';
import { tokenizeCli } from './tokenize.js';

/** Commands that stop or restart Asterisk, unload modules, write files, or add dialplan. */
export const DEFAULT_CONSOLE_DENY = [
  'core stop',
  'core restart',
  'stop',
  'restart',
  'module load',
  'module unload',
  'dialplan save',
  'dialplan add',
  'dialplan remove',
  'logger rotate',
  'pjsip export',
  'xmldoc dump',
  'database put',
  'database del',
  'database deltree',
  'realtime store',
  'realtime update',
  'realtime destroy',
];

export const ConsoleConfigSchema = Section(
  {
    enabled: Bool(true, { description: 'Asterisk CLI commands through AMI Command (no shell escape)' }),
    allow: StrList([], { description: 'when not empty, only commands starting with one of these (word by word) run' }, { checkedBy: 'validateConsoleConfig' }),
    deny: StrList(
      DEFAULT_CONSOLE_DENY,
      { description: 'commands starting with one of these (word by word) are refused; applies after allow' },
      { checkedBy: 'validateConsoleConfig' },
    ),
    maxCommandLength: Int(512, 16, 4096, { description: 'longest command' }, 'characters'),
    timeoutMs: Int(10000, 100, 600_000, { description: 'how long a command waits for its output' }, 'ms'),
    maxOutputLines: Int(10000, 1, undefined, { description: 'output lines kept per command' }, 'count'),
  },
  { description: 'Asterisk CLI through AMI Command (pbx-guardian console, asterisk.console job, POST /v1/console)' },
);

export type ConsoleConfig = Static<typeof ConsoleConfigSchema>;

/** The allow and deny prefixes, each naming its entry. */
export function validateConsoleConfig(c: ConsoleConfig): string[] {
  const errors: string[] = [];
  for (const k of ['allow', 'deny'] as const) {
    c[k].forEach((p, i) => {
      if (tokenizeCli(p).length === 0 || /[\r\n\0]/.test(p)) errors.push(`console.${k}[${i}]: "${p}" is not a CLI command prefix like "core show"`);
    });
  }
  return errors;
}
