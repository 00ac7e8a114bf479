/**
 * The command list of `--help`. One entry per command, first word the command: the man page's
 * COMMANDS section and the README's CLI reference list the same commands
 * (test/cli-help.test.ts compares them).
 */
export const COMMANDS: ReadonlyArray<readonly [usage: string, what: string]> = [
  ['run', 'run the daemon (what systemd starts)'],
  ['demo [--duration D]', 'the real pipeline against a simulated Asterisk under attack (D: 30s, 5m, 1h; at most 24h; default until Ctrl-C)'],
  [
    'status [RULE]',
    'health of each part (OK / FAIL, with what to do), the failed / banned counters and the banned list; exits 5 when an enabled part is unhealthy. With RULE: that rule (events, windows, ban) and its bans',
  ],
  [
    'banned [ADDRESS]',
    'the active bans (a table); with ADDRESS: the bans that drop it (its own, its IPv6 /64, a covering network; fleet decisions too), exit 1 when none',
  ],
  ['ban ADDR... [--for D] [--reason TEXT]', 'ban by hand, one result line per address (D like 10m, 1h, 7d, or permanent; default guard.manualBanDuration)'],
  [
    'unban ADDR... [--covering] | --all',
    'end bans; an address inside a banned network is refused naming the covering ban (exit 1) unless --covering, which ends that ban; an IPv6 address finds the /64 it is banned by',
  ],
  [
    'why ADDRESS',
    'everything about one address: allowed (by which entry), banned (by which ban), its failures per rule and window now, what its next failure would do, its ban history',
  ],
  ['history [ADDRESS] [--since D] [--limit N]', 'the ban history, newest first (with ADDRESS: its bans and those of every network containing it)'],
  [
    'allow list | add ADDR... [--reason NOTE] | remove ADDR...',
    'the allow-list: configured, runtime (added here, kept in the state directory) and automatic entries with their origin',
  ],
  ['config show', 'the effective config (file, environment, defaults), each key with its origin; secrets masked'],
  ['metrics', "a readable summary of the daemon's own Prometheus scrape"],
  ['fraud', 'the fraud guard: accounts with live calls, blocked accounts, recent decisions (docs/fraud.md)'],
  ['unblock ACCOUNT', 'end the block of an account (AstDB guardian-blocked key deleted)'],
  ['reload', 're-read config and rules; active bans stay'],
  ['accounts', 'accounts with the networks and User-Agents they use, and their open anomalies'],
  ['acknowledge ACCOUNT', "the account's anomalies are its own: learned, and a restriction to internal calls lifted (docs/accounts.md)"],
  [
    'check FILE [--rules DIR] [--rules-only]',
    'replay a log through the rules like fail2ban-regex: the Asterisk security log, the messages log (chan_sip / PJSIP NOTICE lines), a raw AMI or call transcript; the format is named, the automatic allow-list applied (--rules-only: not); exit 1 when nothing matches, 2 for a missing file or an unknown format',
  ],
  ['flush', 'stop enforcing on purpose: the daemon removes its nftables table / ipsets, keeps detecting and storing bans, reports "paused"'],
  ['resume', 'enforce again after flush: the stored bans go back into the kernel'],
  ['console [-- "COMMAND"]', 'Asterisk CLI through AMI (interactive, or one command); no "!" shell escapes'],
  ['odoo init --url URL --db DB', "ask Odoo (Asterisk Plus) for the agent's credentials, once, and store them in the config (comments, owner and mode kept)"],
  ['version', 'print the version (also --version)'],
];

/** The names of the commands (first word; "config show", "odoo init": two words). */
export function commandNames(): string[] {
  return COMMANDS.map(([usage]) => (/^(config|odoo) /.test(usage) ? usage.split(' ').slice(0, 2).join(' ') : usage.split(' ')[0]!));
}

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.join(`\n${indent}`);
}

const COL = 30;

export const COMMANDS_HELP = [
  'Usage: pbx-guardian <command> [options]',
  '',
  'Commands:',
  ...COMMANDS.map(([usage, what]) => {
    const pad = ' '.repeat(COL + 2);
    const head = usage.length > COL ? `  ${usage}\n${pad}` : `  ${usage.padEnd(COL)}`;
    return head + wrap(what, 98 - COL, pad);
  }),
  '',
  'Options:',
  '  --config PATH     config file (default /etc/pbx-guardian/guardian.yaml)',
  '  --socket PATH     admin socket (default: admin.socket from the config)',
  '  -o, --output F    json or table, for every command that lists or reports (--json: -o json)',
  '  --version         print the version',
  '  -h, --help        this help',
  '',
  'Colour only on a terminal (never with NO_COLOR set).',
].join('\n');
