import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { PACKAGE_ROOT } from '../paths.js';
import { parseDuration } from '../common/duration.js';
import { defaultsOf, type Node } from '../common/config-schema.js';
import { amiConfigErrors, actionPolicyConfigErrors } from '../ami/config-schema.js';
import { guardConfigErrors } from '../guard/config-schema.js';
import { odooBridgeConfig as bridgeConfig, odooConfigErrors } from '../odoo/config-schema.js';
import type { OdooConfigInput } from '../odoo/config.js';
import { validateRestConfig } from '../rest/config-schema.js';
import { validateConsoleConfig } from '../console/config-schema.js';
import { validateAsteriskConfigConfig } from '../asterisk-config/config-schema.js';
import { resolveWebhooks } from '../webhooks/config-schema.js';
import { fraudConfigErrors } from '../fraud/config-schema.js';
import { crowdsecConfigErrors } from '../fleet/config-schema.js';
import { resolveFeeds } from '../feeds/config-schema.js';
import { groupFirewallConfig } from '../firewall/index.js';
import { addressListErrors, hostError, listenerErrors, type TcpListener } from './addresses.js';
import { ConfigSchema, type GuardianConfig } from './schema.js';
import { constraintErrors, isPlainObject, mergeWithDefaults } from './validate.js';
import { StartupError } from '../common/errors.js';

export { ConfigSchema, type GuardianConfig } from './schema.js';
export { parseDuration, formatDuration } from '../common/duration.js';
export { isSecretKey, redactUrl } from '../common/redact.js';

export const DEFAULT_CONFIG_PATH = '/etc/pbx-guardian/guardian.yaml';

/** The package root (where rules/ and package.json live), from dist/src/config/. */
export { PACKAGE_ROOT };

export class ConfigError extends StartupError {
  constructor(message: string) {
    super(message, 'CONFIG_INVALID');
  }
}

/** Every key with its default (from ConfigSchema). A key not in the schema is an error (a typo must not pass silently). */
export function defaultConfig(): GuardianConfig {
  return defaultsOf(ConfigSchema);
}

/**
 * The `Events:` mask the guardian logs in with. `auto`: only the security class when nothing
 * forwards events (no Odoo, no webhooks) — Asterisk then never formats or sends the rest (a third
 * of the frames of a SIP attack are PeerStatus) — plus call and cdr when the fraud guard is on (it
 * follows calls: Dial*, Hangup, Cdr), else every class the AMI user may read.
 */
export function loginEventMask(cfg: GuardianConfig): string {
  if (cfg.ami.events !== 'auto') return cfg.ami.events;
  if (cfg.odoo.enabled || cfg.webhooks.length > 0) return 'on';
  return cfg.fraud.enabled ? 'security,call,cdr' : 'security';
}

/** The bridge's config from ours: "" means unset for the optional paths. */
export function odooBridgeConfig(cfg: GuardianConfig): OdooConfigInput {
  return bridgeConfig(cfg.odoo);
}

/** Environment overrides from the seed agents' documentation. */
const ENV_KEYS: Array<[string, string]> = [
  ['ASTERISK_AMI_HOST', 'ami.host'],
  ['ASTERISK_AMI_PORT', 'ami.port'],
  ['ASTERISK_AMI_USER', 'ami.username'],
  ['ASTERISK_AMI_PASSWORD', 'ami.secret'],
  ['ODOO_URL', 'odoo.url'],
  ['ODOO_DB', 'odoo.db'],
  ['ODOO_USER', 'odoo.user'],
  ['ODOO_PASSWORD', 'odoo.password'],
];

function applyEnv(user: Record<string, unknown>, env: NodeJS.ProcessEnv): string[] {
  const set: string[] = [];
  for (const [name, path] of ENV_KEYS) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    set.push(path);
    const keys = path.split('.');
    let node = user;
    for (const k of keys.slice(0, -1)) {
      if (!isPlainObject(node[k])) node[k] = {};
      node = node[k] as Record<string, unknown>;
    }
    node[keys.at(-1)!] = value;
  }
  if (env.ODOO_URL && !isPlainObject(user.odoo)) user.odoo = {};
  if (env.ODOO_URL && (user.odoo as Record<string, unknown>).enabled === undefined) (user.odoo as Record<string, unknown>).enabled = true;
  return set;
}

/** What a config was built from: the file's document with the environment applied, and the keys the environment set. */
export interface ConfigSource {
  doc: Record<string, unknown>;
  envKeys: string[];
  source: string;
}

const sources = new WeakMap<GuardianConfig, ConfigSource>();

/** The document a config was built from (buildConfig), to tell the keys the file sets from the defaults; undefined for a config built otherwise. */
export function configSourceOf(cfg: GuardianConfig): ConfigSource | undefined {
  return sources.get(cfg);
}

/** `cfg` was built from `src` (a config with settings from Odoo over the file keeps the file's source). */
export function setConfigSource(cfg: GuardianConfig, src: ConfigSource): void {
  sources.set(cfg, src);
}

/** Validates a parsed YAML document (plus environment overrides) into a full config. */
export function buildConfig(doc: unknown, env: NodeJS.ProcessEnv = {}, source = 'config'): GuardianConfig {
  const user: Record<string, unknown> = isPlainObject(doc) ? structuredClone(doc) : {};
  if (doc !== null && doc !== undefined && !isPlainObject(doc)) throw new ConfigError(`${source}: expected a YAML mapping at the top level`);
  const envKeys = applyEnv(user, env);
  const origin = structuredClone(user);
  const errors: string[] = [];
  const cfg = mergeWithDefaults(ConfigSchema as Node, user, '', errors) as GuardianConfig;
  errors.push(...constraintErrors(ConfigSchema as Node, cfg, ''));
  errors.push(...stageErrors(cfg));
  if (errors.length > 0) throw new ConfigError(`${source} is not valid:\n  - ${[...new Set(errors)].join('\n  - ')}`);
  sources.set(cfg, { doc: origin, envKeys, source });
  return cfg;
}

/** What the schema alone cannot say: each stage's entries and cross-key rules, each naming its key. */
function stageErrors(cfg: GuardianConfig): string[] {
  const errors: string[] = [];
  errors.push(...guardConfigErrors(cfg.guard), ...retentionErrors(cfg));
  errors.push(...addressListErrors('guard.allow', cfg.guard.allow));
  errors.push(...listenerErrors(tcpListeners(cfg)));
  if (cfg.ami.enabled) {
    const h = hostError('ami.host', cfg.ami.host);
    if (h) errors.push(h);
  }
  errors.push(...amiConfigErrors(cfg.ami), ...odooConfigErrors(cfg.odoo));
  errors.push(...validateRestConfig(cfg.rest));
  errors.push(...validateConsoleConfig(cfg.console), ...validateAsteriskConfigConfig(cfg.asteriskConfig));
  errors.push(...actionPolicyConfigErrors(cfg.actionPolicy));
  if (cfg.fraud.enabled) errors.push(...fraudConfigErrors(cfg.fraud));
  errors.push(...crowdsecConfigErrors(cfg.crowdsec));
  const hooks = resolveWebhooks(cfg.webhooks);
  errors.push(...hooks.errors);
  cfg.webhooks = hooks.webhooks;
  const feeds = resolveFeeds(cfg.feeds);
  errors.push(...feeds.errors);
  cfg.feeds = feeds.feeds;
  // each feed's table / ipset names must fit beside the configured firewall.table / ipsetPrefix
  for (const f of cfg.feeds)
    try {
      groupFirewallConfig(cfg.firewall, f.name);
    } catch (e) {
      errors.push(`feeds (${f.name.slice(0, 12)}): ${(e as Error).message}`);
    }
  return errors;
}

/** The enabled TCP listeners, by config key. */
function tcpListeners(cfg: GuardianConfig): TcpListener[] {
  const out: TcpListener[] = [];
  if (cfg.metrics.enabled) out.push({ key: 'metrics', host: cfg.metrics.host, port: cfg.metrics.port });
  if (cfg.rest.enabled) out.push({ key: 'rest', host: cfg.rest.host, port: cfg.rest.port });
  if (cfg.odoo.enabled && cfg.odoo.listen.enabled) out.push({ key: 'odoo.listen', host: cfg.odoo.listen.host, port: cfg.odoo.listen.port });
  if (cfg.odoo.enabled && cfg.odoo.fagi.enabled) out.push({ key: 'odoo.fagi', host: cfg.odoo.fagi.host, port: cfg.odoo.fagi.port });
  return out;
}

/**
 * What `run` needs beyond a valid file: checked when a daemon starts, not when the CLI reads the
 * config to find the admin socket (the AMI secret often comes from the service's environment).
 */
export function assertRunnable(cfg: GuardianConfig): void {
  const errors: string[] = [];
  if (cfg.ami.enabled && cfg.ami.secret === '') {
    errors.push(
      `ami.secret: empty, so the AMI login of "${cfg.ami.username}" would be refused and no attack would be seen. Set ami.secret ` +
        '(the secret of that user in /etc/asterisk/manager.conf), or the ASTERISK_AMI_PASSWORD environment variable ' +
        '(systemctl edit pbx-guardian: Environment=ASTERISK_AMI_PASSWORD=...), or ami.enabled: false',
    );
  }
  if (errors.length > 0) throw new ConfigError(`the config cannot run a daemon:\n  - ${errors.join('\n  - ')}`);
}

/** The history the guard reads (escalation, recidive) must outlive the prune: refused, not clamped. */
function retentionErrors(cfg: GuardianConfig): string[] {
  const keep = parseDuration(cfg.store.historyRetention);
  if (keep === null || keep === 0) return [];
  const { escalation, recidive } = cfg.guard;
  const reads: Array<[string, string]> = [
    ['guard.escalation.lookback', escalation.lookback],
    ...(recidive.enabled ? [['guard.recidive.within', recidive.within] as [string, string]] : []),
  ];
  return reads
    .filter(([, v]) => (parseDuration(v) ?? 0) > keep)
    .map(
      ([key, v]) =>
        `store.historyRetention: "${cfg.store.historyRetention}" is shorter than ${key} ("${v}"), which counts earlier bans from the history: set it to at least ${v}, or 0 to keep the history forever`,
    );
}

/** Reads and validates the YAML config file; a missing file at the default path means defaults. */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): GuardianConfig {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!(code === 'ENOENT' && path === undefined)) throw new ConfigError(`cannot read the config file ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  if (text !== undefined) {
    try {
      // not prettyErrors: their excerpt of the line would show a secret written on it
      doc = parseYaml(text, { prettyErrors: false });
    } catch (err) {
      const at = (err as { pos?: [number, number] }).pos?.[0];
      const where = at === undefined ? '' : ` (line ${text.slice(0, at).split('\n').length}, column ${at - text.lastIndexOf('\n', at - 1)})`;
      throw new ConfigError(`${file} is not valid YAML: ${(err as Error).message}${where}`);
    }
  }
  return buildConfig(doc, env, file);
}

/** Seconds from a validated duration key. */
export function seconds(value: string): number {
  return parseDuration(value)!;
}
