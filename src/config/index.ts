import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { PACKAGE_ROOT } from '../paths.js';
import { parseDuration } from '../common/duration.js';
import { isSecretKey, redactUrl } from '../common/redact.js';
import { defaultOdooConfig, resolveOdooConfig, type OdooConfigInput } from '../odoo/index.js';
import { defaultRestConfig, validateRestConfig } from '../rest/index.js';
import { defaultConsoleConfig, validateConsoleConfig } from '../console/index.js';
import { defaultAsteriskConfigConfig, validateAsteriskConfigConfig } from '../asterisk-config/index.js';
import { resolveWebhooks, type WebhookConfig } from '../webhooks/index.js';
import { defaultFirewallConfig } from '../firewall/index.js';
import { validateActionPolicyAllow } from '../ami/index.js';
import { defaultSourcesConfig, validateSourcesConfig } from '../sources/index.js';
import { addressListErrors, hostError, listenerErrors, type TcpListener } from './addresses.js';

export { parseDuration, formatDuration } from '../common/duration.js';
export { isSecretKey, redactUrl } from '../common/redact.js';

export const DEFAULT_CONFIG_PATH = '/etc/pbx-guardian/guardian.yaml';

/** The package root (where rules/ and package.json live), from dist/src/config/. */
export { PACKAGE_ROOT };

export class ConfigError extends Error {}

/** Every key with its default. A key not in here is an error (a typo must not pass silently). */
export function defaultConfig() {
  return {
    stateDir: '/var/lib/pbx-guardian',
    logLevel: 'info',
    ami: {
      enabled: true,
      host: '127.0.0.1',
      port: 5038,
      username: 'guardian',
      secret: '',
      /** login Events mask; auto: see loginEventMask */
      events: 'auto',
      connectTimeoutMs: 5000,
      actionTimeoutMs: 10000,
      pingIntervalMs: 15000,
      pongTimeoutMs: 5000,
      maxFrameBytes: 1048576,
      maxHeaders: 4096,
      reconnectInitialMs: 500,
      reconnectMaxMs: 30000,
      /** after each login, how long to wait for proof that the session reads security events */
      securityCheckTimeout: '5s',
      /** while it does not, how often to re-check (a probe session); 0 = never */
      securityRecheckInterval: '10s',
    },
    guard: {
      rulesDir: join(PACKAGE_ROOT, 'rules'),
      allow: [] as string[],
      ipv6Prefix: 64,
      /** widest network one ban may cover, from any path (src/guard/scope.ts) */
      widestBanIPv4: 16,
      widestBanIPv6: 32,
      /** longest ban: longer manual bans are refused, rule bans capped */
      maxBanDuration: '365d',
      maxTracked: 1_000_000,
      trackTtl: '12h',
      escalation: { factor: 2, max: '30d', lookback: '30d' },
      recidive: { enabled: true, bans: 5, within: '1d', ban: '30d' },
      /** how often the AMI and Odoo host names are resolved again for the allow-list */
      hostLookupInterval: '5m',
    },
    firewall: { ...defaultFirewallConfig, ports: [] as number[] },
    /** the state database (docs/store.md): ended bans leave the history this long after; 0 = never */
    store: { historyRetention: '90d' },
    admin: {
      socket: '/run/pbx-guardian/admin.sock',
      socketMode: '0600',
    },
    metrics: {
      enabled: true,
      host: '127.0.0.1',
      port: 9470,
    },
    /** failed authentication on the HTTP listeners (job endpoint, REST, admin over TCP) */
    auth: {
      /** failures per source address and minute; beyond, its requests are answered 429 */
      maxFailuresPerMinute: 20,
      /** source addresses tracked at most (least recently seen forgotten first) */
      trackedSources: 10000,
    },
    odoo: odooDefaults(),
    /** REST API for any CRM (salara-compatible calls, messages, status), its own listener */
    rest: defaultRestConfig(),
    /** the AMI action policy (src/ami/policy.ts): what an operator widens on purpose, e.g. ["application:AGI"] */
    actionPolicy: { allow: [] as string[] },
    /** Asterisk CLI through AMI Command (pbx-guardian console, asterisk.console job, POST /v1/console) */
    console: defaultConsoleConfig(),
    /** Asterisk config files sync (Asterisk Base): jobs and REST routes */
    asteriskConfig: defaultAsteriskConfigConfig(),
    /** event POSTs: [{name, url, events, match, secret, maxRows, ttl, timeoutMs, maxBackoffMs}] */
    webhooks: [] as WebhookConfig[],
    /** detection sources besides AMI: the security log (docs/detection.md) */
    sources: defaultSourcesConfig(),
  };
}

/** The Odoo bridge's own defaults (src/odoo/config.ts), with optional paths as "" and a switch. */
function odooDefaults() {
  const d = defaultOdooConfig();
  return {
    enabled: false,
    ...d,
    listen: { ...d.listen, certFile: '', keyFile: '' },
    lamePath: '',
    ffmpegPath: '',
  };
}

/** The bridge's config from ours: "" means unset for the optional paths. */
/**
 * The `Events:` mask the guardian logs in with. `auto`: only the security class when nothing
 * forwards events (no Odoo, no webhooks) — Asterisk then never formats or sends the rest (a third
 * of the frames of a SIP attack are PeerStatus) — else every class the AMI user may read.
 */
export function loginEventMask(cfg: GuardianConfig): string {
  if (cfg.ami.events !== 'auto') return cfg.ami.events;
  return cfg.odoo.enabled || cfg.webhooks.length > 0 ? 'on' : 'security';
}

export function odooBridgeConfig(cfg: GuardianConfig): OdooConfigInput {
  const { enabled: _enabled, lamePath, ffmpegPath, listen, ...rest } = cfg.odoo;
  return {
    ...rest,
    listen: { ...listen, certFile: listen.certFile || undefined, keyFile: listen.keyFile || undefined },
    lamePath: lamePath || undefined,
    ffmpegPath: ffmpegPath || undefined,
  };
}

export type GuardianConfig = ReturnType<typeof defaultConfig>;

/** Mappings whose keys are the user's own (event names, model.method): checked by their stage. */
const OPEN_MAPS = new Set(['odoo.outboxPolicy', 'odoo.json2ParamNames']);
/** Keys whose values are lists of numbers (all other lists hold strings). */
const NUMBER_LISTS = new Set(['firewall.ports']);
/** Keys whose values are lists of mappings: checked (and filled with defaults) by their stage. */
const OBJECT_LISTS = new Set(['rest.tokens', 'webhooks']);
const ENUMS: Record<string, string[]> = {
  logLevel: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
  'firewall.backend': ['auto', 'nftables', 'ipset', 'memory'],
  'firewall.verdict': ['drop', 'reject'],
  'firewall.nftMode': ['auto', 'addon', 'command'],
  'odoo.transport': ['jsonrpc', 'json2'],
  'rest.peerDriver': ['auto', 'pjsip', 'sip'],
};
const DURATIONS = ['firewall.watchdogInterval', 'ami.securityCheckTimeout', 'ami.securityRecheckInterval', 'guard.hostLookupInterval', 'guard.maxBanDuration', 'guard.trackTtl', 'guard.escalation.max', 'guard.escalation.lookback', 'guard.recidive.within', 'guard.recidive.ban', 'store.historyRetention'];
const PORTS = ['ami.port', 'metrics.port'];
/** Whole numbers and their bounds: 0 or a negative size would fail only once the daemon runs (some in the kernel). */
const RANGES: Record<string, [number, number]> = {
  'ami.connectTimeoutMs': [1, 600_000],
  'ami.actionTimeoutMs': [1, 600_000],
  'ami.pingIntervalMs': [0, 3_600_000],
  'ami.pongTimeoutMs': [1, 600_000],
  'ami.maxFrameBytes': [1024, 64 * 1024 * 1024],
  'ami.maxHeaders': [16, 100_000],
  'ami.reconnectInitialMs': [1, 3_600_000],
  'ami.reconnectMaxMs': [1, 86_400_000],
  'firewall.ipsetMaxElem': [1, 2_147_483_647],
  'firewall.batchWindowMs': [0, 10_000],
  'firewall.batchMaxSize': [1, 1_000_000],
  'firewall.reconcileIntervalMs': [0, 86_400_000],
  'firewall.retryInitialMs': [1, 3_600_000],
  'firewall.retryMaxMs': [1, 86_400_000],
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kindOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v;
}

/** Merges user values over defaults, checking every key and type; `path` names keys in errors. */
function merge(defaults: Record<string, unknown>, user: unknown, path: string, errors: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...defaults };
  if (user === undefined || user === null) return out;
  if (!isPlainObject(user)) {
    errors.push(`${path || 'config'}: expected a mapping, got ${kindOf(user)}`);
    return out;
  }
  for (const [key, value] of Object.entries(user)) {
    const at = path ? `${path}.${key}` : key;
    if (!(key in defaults)) {
      errors.push(`${at}: unknown key (known keys here: ${Object.keys(defaults).join(', ')})`);
      continue;
    }
    const def = defaults[key];
    if (OPEN_MAPS.has(at)) {
      if (isPlainObject(value)) out[key] = { ...(def as object), ...value };
      else errors.push(`${at}: expected a mapping`);
    } else if (isPlainObject(def)) {
      out[key] = merge(def, value, at, errors);
    } else if (OBJECT_LISTS.has(at)) {
      if (Array.isArray(value)) out[key] = value;
      else errors.push(`${at}: expected a list of mappings`);
    } else if (Array.isArray(def)) {
      const want = NUMBER_LISTS.has(at) ? 'number' : 'string';
      if (!Array.isArray(value) || value.some((v) => typeof v !== want)) errors.push(`${at}: expected a list of ${want}s`);
      else out[key] = value;
    } else if (typeof def === 'number' && typeof value === 'string' && /^\d+$/.test(value)) {
      out[key] = Number(value);
    } else if (typeof def === 'string' && typeof value === 'number' && DURATIONS.includes(at)) {
      out[key] = String(value); // a duration in seconds
    } else if (typeof value !== typeof def) {
      const shown = isSecretKey(at) ? 'its value is not shown: a secret' : JSON.stringify(value)?.slice(0, 60);
      errors.push(`${at}: expected a ${typeof def}, got ${kindOf(value)} (${shown})`);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function get(obj: Record<string, unknown>, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (isPlainObject(o) ? o[k] : undefined), obj);
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

function applyEnv(user: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [name, path] of ENV_KEYS) {
    const value = env[name];
    if (value === undefined || value === '') continue;
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
}

/** Validates a parsed YAML document (plus environment overrides) into a full config. */
export function buildConfig(doc: unknown, env: NodeJS.ProcessEnv = {}, source = 'config'): GuardianConfig {
  const user: Record<string, unknown> = isPlainObject(doc) ? structuredClone(doc) : {};
  if (doc !== null && doc !== undefined && !isPlainObject(doc)) throw new ConfigError(`${source}: expected a YAML mapping at the top level`);
  applyEnv(user, env);
  const errors: string[] = [];
  const cfg = merge(defaultConfig(), user, '', errors) as GuardianConfig;
  for (const [path, allowed] of Object.entries(ENUMS)) {
    const v = get(cfg, path);
    if (!allowed.includes(v as string)) errors.push(`${path}: "${String(v)}" is not one of ${allowed.join(', ')}`);
  }
  for (const path of DURATIONS) {
    const v = get(cfg, path);
    if (parseDuration(v) === null) errors.push(`${path}: "${String(v)}" is not a duration (e.g. 30s, 10m, 1h, 7d)`);
  }
  for (const path of PORTS) {
    const v = get(cfg, path) as number;
    if (!Number.isInteger(v) || v < 0 || v > 65535) errors.push(`${path}: ${v} is not a TCP port (0-65535)`);
  }
  for (const [path, [min, max]] of Object.entries(RANGES)) {
    const v = get(cfg, path) as number;
    if (!Number.isInteger(v) || v < min || v > max) errors.push(`${path}: ${v} must be a whole number from ${min} to ${max}`);
  }
  if (cfg.firewall.ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) errors.push('firewall.ports: every port must be 1-65535');
  if (!Number.isInteger(cfg.guard.ipv6Prefix) || cfg.guard.ipv6Prefix < 16 || cfg.guard.ipv6Prefix > 128) errors.push('guard.ipv6Prefix: must be a whole number from 16 to 128');
  errors.push(...banScopeErrors(cfg.guard));
  errors.push(...retentionErrors(cfg));
  errors.push(...addressListErrors('guard.allow', cfg.guard.allow));
  errors.push(...listenerErrors(tcpListeners(cfg)));
  if (cfg.ami.enabled) {
    const h = hostError('ami.host', cfg.ami.host);
    if (h) errors.push(h);
  }
  for (const key of ['stateDir', 'admin.socket'] as const) {
    const v = get(cfg, key) as string;
    if (!v.startsWith('/')) errors.push(`${key}: "${v.slice(0, 120)}" must be an absolute path`);
  }
  if (!Number.isInteger(cfg.guard.maxTracked) || cfg.guard.maxTracked < 1000) errors.push('guard.maxTracked: must be a whole number of at least 1000');
  if ((parseDuration(cfg.guard.hostLookupInterval) ?? 10) < 10) errors.push('guard.hostLookupInterval: at least 10s');
  if (!(cfg.guard.escalation.factor >= 1 && cfg.guard.escalation.factor <= 100)) errors.push('guard.escalation.factor: must be from 1 to 100');
  const watchdog = parseDuration(cfg.firewall.watchdogInterval);
  if (watchdog !== null && watchdog !== 0 && (watchdog < 0.1 || watchdog > 3600)) errors.push('firewall.watchdogInterval: 0 (off) or from 100ms to 1h (default 2s: a removed table is repaired within 5 s)');
  if (!/^[A-Za-z0-9_]{1,32}$/.test(cfg.firewall.table)) errors.push('firewall.table: 1-32 letters, digits or "_"');
  if (!/^[A-Za-z0-9_-]{1,16}$/.test(cfg.firewall.ipsetPrefix)) errors.push('firewall.ipsetPrefix: 1-16 letters, digits, "_" or "-"');
  if (!Number.isInteger(cfg.auth.maxFailuresPerMinute) || cfg.auth.maxFailuresPerMinute < 1 || cfg.auth.maxFailuresPerMinute > 10_000) errors.push('auth.maxFailuresPerMinute: a whole number from 1 to 10000');
  if (!Number.isInteger(cfg.auth.trackedSources) || cfg.auth.trackedSources < 100 || cfg.auth.trackedSources > 1_000_000) errors.push('auth.trackedSources: a whole number from 100 to 1000000');
  if (!/^0?[0-7]{3}$/.test(cfg.admin.socketMode)) errors.push(`admin.socketMode: "${cfg.admin.socketMode}" is not an octal file mode like 0600`);
  if (cfg.ami.enabled && /[\r\n]/.test(cfg.ami.username + cfg.ami.secret + cfg.ami.events)) errors.push('ami: username, secret and events must not contain line breaks');
  if (!/^(auto|on|off|[a-z]+(,[a-z]+)*)$/i.test(cfg.ami.events.replace(/\s/g, ''))) errors.push(`ami.events: "${cfg.ami.events}" is not auto, on, off or a comma list of event classes (security,system,call,...)`);
  errors.push(...amiSecurityCheckErrors(cfg.ami));
  if (cfg.odoo.enabled && /^[^:/?#]*:\/\/[^/?#]*@/.test(cfg.odoo.url)) errors.push('odoo.url: a user or password in the URL is not supported (and would be logged): set odoo.user and odoo.password');
  if (cfg.odoo.enabled && /^https?:\/\//.test(cfg.odoo.url) && !URL.canParse(cfg.odoo.url)) errors.push(`odoo.url: "${redactUrl(cfg.odoo.url)}" is not a valid URL (check the host name or address)`);
  if (cfg.odoo.enabled && !/^https?:\/\//.test(cfg.odoo.url)) errors.push(`odoo.url: "${redactUrl(cfg.odoo.url)}" must start with http:// or https:// when odoo.enabled is true`);
  if (cfg.odoo.enabled) {
    try {
      resolveOdooConfig(odooBridgeConfig(cfg));
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  errors.push(...validateRestConfig(cfg.rest).filter((e) => !e.startsWith('rest.peerDriver')));
  errors.push(...validateConsoleConfig(cfg.console), ...validateAsteriskConfigConfig(cfg.asteriskConfig));
  errors.push(...validateActionPolicyAllow(cfg.actionPolicy.allow));
  errors.push(...validateSourcesConfig(cfg.sources));
  const hooks = resolveWebhooks(cfg.webhooks);
  errors.push(...hooks.errors);
  cfg.webhooks = hooks.webhooks;
  if (errors.length > 0) throw new ConfigError(`${source} is not valid:\n  - ${[...new Set(errors)].join('\n  - ')}`);
  return cfg;
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

function amiSecurityCheckErrors(a: GuardianConfig['ami']): string[] {
  const errors: string[] = [];
  const check = parseDuration(a.securityCheckTimeout);
  const every = parseDuration(a.securityRecheckInterval);
  if (check !== null && (check < 0.5 || check > 60)) errors.push(`ami.securityCheckTimeout: "${a.securityCheckTimeout}" must be from 500ms to 60s`);
  if (every !== null && every !== 0 && (every < 2 || every > 3600)) errors.push(`ami.securityRecheckInterval: "${a.securityRecheckInterval}" must be 0 (never) or from 2s to 1h`);
  return errors;
}

/** longest guard.maxBanDuration accepted: longer is "permanent" */
const MAX_BAN_CEILING_SEC = 36500 * 86400;

function banScopeErrors(g: GuardianConfig['guard']): string[] {
  const errors: string[] = [];
  if (!Number.isInteger(g.widestBanIPv4) || g.widestBanIPv4 < 8 || g.widestBanIPv4 > 32) errors.push('guard.widestBanIPv4: must be a whole number from 8 to 32');
  if (!Number.isInteger(g.widestBanIPv6) || g.widestBanIPv6 < 16 || g.widestBanIPv6 > 128) errors.push('guard.widestBanIPv6: must be a whole number from 16 to 128');
  else if (g.ipv6Prefix < g.widestBanIPv6) errors.push(`guard.ipv6Prefix: /${g.ipv6Prefix} is wider than guard.widestBanIPv6 (/${g.widestBanIPv6}): IPv6 attackers could never be banned by their prefix`);
  const max = parseDuration(g.maxBanDuration);
  if (max === null) return errors; // reported with the other durations
  if (max < 1 || max > MAX_BAN_CEILING_SEC) errors.push(`guard.maxBanDuration: "${g.maxBanDuration}" must be from 1s to 36500d (longer bans are "permanent")`);
  for (const [key, value] of [['guard.escalation.max', g.escalation.max], ['guard.recidive.ban', g.recidive.ban]] as const) {
    const v = parseDuration(value);
    if (v !== null && v > max) errors.push(`${key}: "${value}" is longer than guard.maxBanDuration (${g.maxBanDuration})`);
  }
  return errors;
}

/** The history the guard reads (escalation, recidive) must outlive the prune: refused, not clamped. */
function retentionErrors(cfg: GuardianConfig): string[] {
  const keep = parseDuration(cfg.store.historyRetention);
  if (keep === null || keep === 0) return [];
  const { escalation, recidive } = cfg.guard;
  const reads: Array<[string, string]> = [['guard.escalation.lookback', escalation.lookback], ...(recidive.enabled ? [['guard.recidive.within', recidive.within] as [string, string]] : [])];
  return reads.filter(([, v]) => (parseDuration(v) ?? 0) > keep)
    .map(([key, v]) => `store.historyRetention: "${cfg.store.historyRetention}" is shorter than ${key} ("${v}"), which counts earlier bans from the history: set it to at least ${v}, or 0 to keep the history forever`);
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
