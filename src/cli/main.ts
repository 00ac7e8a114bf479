#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG_PATH, loadConfig, formatDuration, parseDuration } from '../config/index.js';
import type { BanRecord, GuardStatus } from '../guard/index.js';
import { formatHealth, type HealthReport } from '../health/index.js';
import { VERSION } from '../version.js';
import { COMMANDS_HELP } from './help.js';
import { callDaemon } from '../admin/client.js';
import type { AccountWatch } from '../accounts/index.js';
import { formatSettingsStatus, type SettingsStatus } from '../config/settings-origin.js';
import { StartupError } from '../common/errors.js';
import { EXIT, exitCodeOf } from './exit.js';
import { formatFraud } from './fraud.js';
import { banCommand, bannedCommand, checkTargets, unbanCommand } from './bans.js';
import { outputFormat } from './table.js';
import { allowCommand, metricsCommand, ruleStatus } from './daemon-views.js';
import { configKeys, formatConfig } from './config-show.js';
import { formatHistory, formatWhy, whyOf } from './why.js';
import type { HistoryRow } from '../store/index.js';
import type { FraudSnapshot } from '../fraud/index.js';

/** longest `demo --duration` */
const DEMO_MAX_SEC = 86400;

const HELP = `pbx-guardian ${VERSION}: guards an Asterisk PBX (AMI security events → kernel bans) and bridges AMI to Odoo.

${COMMANDS_HELP}

Exit codes: 0 ok, 1 refused by the daemon (allow-listed, not banned, invalid address),
2 usage or config error, 3 daemon not reachable, 4 other failure,
5 (status) the daemon runs but an enabled part is unhealthy (see docs/health.md).
run exits before touching the firewall with: 2 config error (a bad allow-list entry, an empty
AMI secret ...), 10 another daemon holds the state directory (its pid is named), 11 the state
directory cannot be made or written, 12 a listener cannot bind (admin socket, metrics, REST,
Odoo job endpoint, FastAGI: named with its address and config keys).`;

function printBans(bans: BanRecord[], now = Date.now()): string {
  if (bans.length === 0) return '   `- Banned IP list: (none)';
  const lines = bans.map((b) => {
    const left = b.expiresAt === null ? 'permanent' : `${formatDuration(Math.max(0, (b.expiresAt - now) / 1000))} left`;
    return `      ${b.target}  ${left}  rule ${b.rule} (${b.source}): ${b.reason}`;
  });
  return ['   `- Banned IP list:', ...lines].join('\n');
}

function printStatus(s: GuardStatus): string {
  return [
    'Status',
    '|- Filter',
    `|  |- Currently failed:\t${s.currentlyFailed}`,
    `|  \`- Total failed:\t${s.totalFailed}`,
    '`- Actions',
    `   |- Currently banned:\t${s.currentlyBanned}`,
    `   |- Total banned:\t${s.totalBanned}`,
    printBans(s.banned),
  ].join('\n');
}

type AccountList = ReturnType<AccountWatch['list']>;

function printAccounts(r: AccountList): string {
  const when = (t: number) => new Date(t).toISOString().replace(/\.\d+Z$/, 'Z');
  const head = r.learning ? [`learning until ${when(r.learningUntil)}: no anomaly is raised before`] : [];
  if (r.accounts.length === 0) return [...head, 'no accounts seen yet'].join('\n');
  const lines = r.accounts.map((a) => {
    const nets = a.networks.map((n) => `${n.network} (last ${when(n.last)})`).join(', ') || '-';
    const uas = a.userAgents.map((u) => u.userAgent).join(' | ') || '-';
    const out = [`${a.account}${a.restricted ? '  RESTRICTED to internal calls' : ''}`, `  networks:    ${nets}`, `  user agents: ${uas}`];
    for (const an of a.anomalies) out.push(`  anomaly ${when(an.at)} ${an.signal} (${an.action}): ${an.detail}`);
    return out.join('\n');
  });
  return [...head, ...lines].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' },
      socket: { type: 'string' },
      json: { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      covering: { type: 'boolean' },
      since: { type: 'string' },
      limit: { type: 'string' },
      for: { type: 'string' },
      reason: { type: 'string' },
      all: { type: 'boolean' },
      rules: { type: 'string' },
      duration: { type: 'string' },
      url: { type: 'string' },
      db: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
      'rules-only': { type: 'boolean' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.version) {
    process.stdout.write(VERSION + '\n');
    return EXIT.ok;
  }
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(HELP + '\n');
    return command === undefined && !values.help ? EXIT.usage : EXIT.ok;
  }
  const config = () => loadConfig(values.config);
  const socket = () => values.socket ?? config().admin.socket;
  const out = (text: string) => process.stdout.write(text + '\n');
  const io = { out, err: (text: string) => process.stderr.write(text + '\n') };
  const fmtOrNull = outputFormat(values.output, values.json);
  if (fmtOrNull === null) throw new UsageError(`-o: "${String(values.output).slice(0, 20)}" is not an output format (json or table)`);
  const fmt = fmtOrNull;

  switch (command) {
    case 'version':
      out(VERSION);
      return EXIT.ok;
    case 'run': {
      const { runDaemon } = await import('./run.js');
      return runDaemon(values.config);
    }
    case 'demo': {
      const { runDemo } = await import('../demo/index.js');
      return runDemo({ durationSec: values.duration === undefined ? undefined : demoDuration(values.duration) });
    }
    case 'status': {
      if (rest.length > 1) throw new UsageError('status takes at most one rule: pbx-guardian status auth-failure');
      if (rest[0] !== undefined) return ruleStatus(socket(), rest[0], fmt, io);
      const health = await callDaemon<HealthReport>(socket(), 'GET', '/health');
      const s = await callDaemon<GuardStatus & { settings?: SettingsStatus }>(socket(), 'GET', '/status');
      // a part that is off is left out of the text, as the health block does
      const settings = s.settings && s.settings.state !== 'off' ? `\n\n${formatSettingsStatus(s.settings)}` : '';
      out(fmt === 'json' ? JSON.stringify({ health, ...s }, null, 2) : `${formatHealth(health)}\n\n${printStatus(s)}${settings}`);
      return health.healthy ? EXIT.ok : EXIT.unhealthy;
    }
    case 'allow': {
      if (rest[0] !== undefined && !['list', 'add', 'remove'].includes(rest[0]))
        throw new UsageError('usage: pbx-guardian allow list | add ADDR... | remove ADDR...');
      if (rest[0] !== undefined && rest[0] !== 'list' && rest.length < 2) throw new UsageError(`allow ${rest[0]} takes one or more addresses or CIDRs`);
      return allowCommand(socket(), rest, values.reason, fmt, io);
    }
    case 'config': {
      if (rest[0] !== 'show' || rest.length > 1) throw new UsageError('usage: pbx-guardian config show [--config PATH] [-o json]');
      const cfg = config();
      const keys = configKeys(cfg);
      out(
        fmt === 'json'
          ? JSON.stringify(Object.fromEntries(keys.map((k) => [k.key, { value: k.value, origin: k.origin }])), null, 2)
          : formatConfig(keys, values.config ?? DEFAULT_CONFIG_PATH),
      );
      return EXIT.ok;
    }
    case 'metrics':
      return metricsCommand(socket(), fmt, io);
    case 'banned': {
      if (rest.length > 1) throw new UsageError('banned takes at most one address: pbx-guardian banned 203.0.113.7');
      return bannedCommand(socket(), rest[0], fmt, io);
    }
    case 'ban': {
      const bad = checkTargets('ban', rest);
      if (bad) throw new UsageError(bad);
      return banCommand(socket(), rest, { for: values.for, reason: values.reason }, fmt, io);
    }
    case 'unban': {
      if (values.all) {
        if (rest.length > 0) throw new UsageError('unban --all takes no address');
        const { unbanned } = await callDaemon<{ unbanned: number }>(socket(), 'DELETE', '/bans');
        out(fmt === 'json' ? JSON.stringify({ unbanned }) : `unbanned ${unbanned}`);
        return EXIT.ok;
      }
      const bad = checkTargets('unban', rest);
      if (bad) throw new UsageError(bad + ', or --all');
      return unbanCommand(socket(), rest, values.covering === true, fmt, io);
    }
    case 'why': {
      if (rest.length !== 1) throw new UsageError('why takes one address: pbx-guardian why 203.0.113.7');
      const r = await whyOf(socket(), rest[0]!);
      out(fmt === 'json' ? JSON.stringify(r, null, 2) : formatWhy(r));
      return EXIT.ok;
    }
    case 'history': {
      if (rest.length > 1) throw new UsageError('history takes at most one address: pbx-guardian history 203.0.113.7 --since 1d');
      const q = new URLSearchParams();
      if (rest[0] !== undefined) q.set('address', rest[0]);
      if (values.since !== undefined) {
        const sec = parseDuration(values.since);
        if (sec === null || sec <= 0) throw new UsageError(`--since: "${values.since.slice(0, 40)}" is not a duration (like 30m, 1h, 7d)`);
        q.set('since', String(Date.now() - sec * 1000));
      }
      if (values.limit !== undefined) {
        if (!/^\d{1,4}$/.test(values.limit) || Number(values.limit) < 1) throw new UsageError('--limit: a number of rows from 1 to 1000');
        q.set('limit', values.limit);
      }
      const { history } = await callDaemon<{ history: HistoryRow[] }>(socket(), 'GET', `/history?${q.toString()}`);
      out(fmt === 'json' ? JSON.stringify(history, null, 2) : formatHistory(history));
      return EXIT.ok;
    }
    case 'accounts': {
      const r = await callDaemon<AccountList>(socket(), 'GET', '/accounts');
      out(fmt === 'json' ? JSON.stringify(r, null, 2) : printAccounts(r));
      return EXIT.ok;
    }
    case 'acknowledge': {
      if (rest.length !== 1) throw new UsageError('acknowledge takes one account: pbx-guardian acknowledge 102');
      const r = await callDaemon<{ acknowledged: number; lifted: boolean }>(socket(), 'POST', `/accounts/${encodeURIComponent(rest[0]!)}/acknowledge`);
      out(`account ${rest[0]}: ${r.acknowledged} anomalies acknowledged${r.lifted ? '; restriction lifted' : ''}`);
      return EXIT.ok;
    }
    case 'fraud': {
      const snap = await callDaemon<FraudSnapshot>(socket(), 'GET', '/fraud');
      out(fmt === 'json' ? JSON.stringify(snap, null, 2) : formatFraud(snap));
      return EXIT.ok;
    }
    case 'unblock': {
      if (rest.length !== 1) throw new UsageError('unblock takes one account: pbx-guardian unblock 101');
      await callDaemon(socket(), 'DELETE', `/fraud/blocks/${encodeURIComponent(rest[0]!)}`);
      out(`unblocked ${rest[0]}`);
      return EXIT.ok;
    }
    case 'reload': {
      const r = await callDaemon<{ rules: number; applied?: string[]; restartNeeded?: string[] }>(socket(), 'POST', '/reload');
      out(`reloaded: ${r.rules} rules; active bans kept`);
      if (r.applied?.length) out(`applied now: ${r.applied.join('; ')}`);
      if (r.restartNeeded?.length) out(`needs a restart (systemctl restart pbx-guardian): ${r.restartNeeded.join('; ')}`);
      return EXIT.ok;
    }
    case 'check': {
      if (rest.length !== 1) throw new UsageError('check takes one file: a security log, a messages log, or a raw AMI / call transcript');
      // loaded here only: the replay needs the guard, the sources and the fraud stage
      const [{ formatCheckReport, runCheck }, { guardOptions }, { interfaceAddresses, loadRulesDir }] = await Promise.all([
        import('./check.js'),
        import('../guard-options.js'),
        import('../guard/index.js'),
      ]);
      const cfg = values.config ? config() : loadConfig(undefined, {});
      const rulesDir = values.rules ?? cfg.guard.rulesDir;
      // --rules given alone judges the rules only, as before: no config allow-list
      const allow = values.rules ? [] : cfg.guard.allow;
      const hostAllow = values['rules-only'] ? undefined : { automatic: guardOptions(cfg, [], interfaceAddresses).automaticAllow, host: interfaceAddresses };
      const report = runCheck(rest[0]!, loadRulesDir(rulesDir), allow, cfg.guard.ipv6Prefix, cfg.fraud.enabled ? cfg.fraud : undefined, hostAllow);
      out(fmt === 'json' ? JSON.stringify(report, null, 2) : formatCheckReport(report));
      if (report.matched.length === 0 && report.skipped.length === 0 && !(report.fraud && report.fraud.calls > 0)) {
        io.err(`pbx-guardian: no line of ${rest[0]} matched a rule (${report.format}, ${report.lines} lines): nothing there would be counted`);
        return EXIT.refused;
      }
      return EXIT.ok;
    }
    case 'flush': {
      const { flushCommand } = await import('./flush.js');
      out(await flushCommand(socket(), values.config));
      return EXIT.ok;
    }
    case 'resume': {
      const { resumeCommand } = await import('./flush.js');
      out(await resumeCommand(socket()));
      return EXIT.ok;
    }
    case 'console': {
      const { consoleCommand } = await import('../console/cli.js');
      return consoleCommand(socket(), rest);
    }
    case 'odoo': {
      const { odooInitCommand } = await import('./odoo-init.js');
      if (rest[0] !== 'init' || !values.url || !values.db)
        throw new UsageError('usage: pbx-guardian odoo init --url https://odoo.example.com --db DBNAME [--config PATH]');
      out(await odooInitCommand(values.url, values.db, values.config ?? DEFAULT_CONFIG_PATH));
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown command "${command}" (see pbx-guardian --help)`);
  }
}

class UsageError extends StartupError {
  constructor(message: string) {
    super(message, 'USAGE');
  }
}

function demoDuration(text: string): number {
  const sec = parseDuration(text);
  if (sec === null || sec < 1 || sec > DEMO_MAX_SEC) {
    throw new UsageError(`--duration: "${text.slice(0, 40)}" is not a duration from 1s to 24h (seconds, or like 30s, 5m, 1h)`);
  }
  return sec;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`pbx-guardian: ${err.message}\n`);
    process.exitCode = exitCodeOf(err);
  },
);
