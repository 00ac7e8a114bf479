/**
 * The settings an Asterisk Plus 4.2 installation keeps in Odoo for its agent, read through the RPC
 * client as the agent user: the server record's AMI fields (`asterisk_plus.server`: ami_host,
 * ami_port, ami_user, ami_password, ami_trace) and the key/value rows of its
 * `asterisk_plus.agent_options` (the module's data/agent_options.xml: fagi_enabled=yes,
 * fagi_listen=0.0.0.0, fagi_port=44574, security_*, asterisk_*_dir, asterisk_mp3_convert).
 * Each is mapped to the config key it stands for, or named as read-and-not-used with why. Which
 * value wins and whether it is valid is not decided here (src/config/odoo-settings.ts).
 */
import type { CallOptions, OdooCaller } from './rpc.js';

/** One value Odoo holds for a config key. */
export interface OdooSetting {
  /** our config key, e.g. "odoo.fagi.enabled" */
  key: string;
  /** as Odoo holds it, converted only where the module's convention is not ours ("yes" -> true) */
  value: unknown;
  /** where it is kept in Odoo, e.g. "agent_options.fagi_enabled" */
  from: string;
}

export interface OdooSettingsRead {
  serverId: number;
  settings: OdooSetting[];
  /** read from Odoo and not used by this agent */
  ignored: Array<{ from: string; why: string }>;
}

/** The config keys Odoo can set, and where each is kept there. */
export const ODOO_SETTING_KEYS: ReadonlyArray<{ key: string; from: string }> = [
  { key: 'ami.host', from: 'server.ami_host' },
  { key: 'ami.port', from: 'server.ami_port' },
  { key: 'ami.username', from: 'server.ami_user' },
  { key: 'ami.secret', from: 'server.ami_password' },
  { key: 'odoo.fagi.enabled', from: 'agent_options.fagi_enabled' },
  { key: 'odoo.fagi.host', from: 'agent_options.fagi_listen' },
  { key: 'odoo.fagi.port', from: 'agent_options.fagi_port' },
  { key: 'odoo.recordingDirs', from: 'agent_options.asterisk_monitor_dir' },
];

const SERVER_FIELDS: Record<string, string> = { ami_host: 'ami.host', ami_port: 'ami.port', ami_user: 'ami.username', ami_password: 'ami.secret' };
export const SERVER_READ_FIELDS = ['id', ...Object.keys(SERVER_FIELDS), 'ami_trace'];

const GUARD_IS_LOCAL =
  "not used: the guard's settings are the local file's and rules/ (Odoo's default security_enabled=no must not switch banning off; these keys describe the older agent's ipset chain)";
const NOT_USED: Record<string, string> = {
  ami_trace: 'not used: this agent has no AMI trace (logLevel: trace in the file logs more)',
  asterisk_sounds_dir: 'not used: this agent plays and writes no sounds',
  asterisk_mp3_convert: 'not used: a recording is converted when the job asks for mp3 (file_format), as the module sends it',
};

/** agent option rows read at most (the module ships 14) and the longest value kept */
export const MAX_OPTION_ROWS = 200;
const MAX_VALUE_CHARS = 1024;

/** The module's yes/no (and Odoo's booleans); anything else is passed on for the schema to refuse. */
function yesNo(v: string): unknown {
  const t = v.trim().toLowerCase();
  if (['yes', 'true', '1', 'on'].includes(t)) return true;
  if (['no', 'false', '0', 'off'].includes(t)) return false;
  return v;
}

function optionSetting(key: string, value: string): OdooSetting | { why: string } {
  const from = `agent_options.${key}`;
  switch (key) {
    case 'fagi_enabled':
      return { key: 'odoo.fagi.enabled', value: yesNo(value), from };
    case 'fagi_listen':
      return { key: 'odoo.fagi.host', value: value.trim(), from };
    case 'fagi_port':
      return { key: 'odoo.fagi.port', value: value.trim(), from };
    case 'asterisk_monitor_dir': {
      const dir = value.trim().replace(/(.)\/+$/, '$1');
      return dir === '' ? { why: 'empty in Odoo' } : { key: 'odoo.recordingDirs', value: [dir], from };
    }
  }
  if (key.startsWith('security_')) return { why: GUARD_IS_LOCAL };
  return { why: NOT_USED[key] ?? 'not an option this agent knows' };
}

function rowsOf(v: unknown, what: string): Array<Record<string, unknown>> {
  if (!Array.isArray(v) || v.some((r) => r === null || typeof r !== 'object'))
    throw new Error(`Odoo answered ${what} with something else than a list of records`);
  return v as Array<Record<string, unknown>>;
}

/**
 * The agent's server record and its options. `uid` (the classic transport's login) picks the
 * server whose `user` is the agent's, as the module's handlers do (env.user.asterisk_server); with
 * no uid (JSON-2) the one server the agent user can read. Throws an Error saying what is missing.
 */
export async function readOdooSettings(rpc: OdooCaller, uid: number | null, opts: CallOptions = {}): Promise<OdooSettingsRead> {
  const domain = uid === null ? [] : [['user', '=', uid]];
  const servers = rowsOf(
    await rpc.executeKw('asterisk_plus.server', 'search_read', [domain], { fields: SERVER_READ_FIELDS, limit: 2 }, opts),
    'the server search',
  );
  if (servers.length === 0)
    throw new Error(`no Asterisk Plus server record is linked to the agent's Odoo user${uid === null ? '' : ` (uid ${uid})`} (Asterisk Plus → Servers → User)`);
  if (servers.length > 1) throw new Error('the agent user can read several Asterisk Plus servers and none is linked to it by uid: use odoo.transport: jsonrpc');
  const server = servers[0]!;
  const serverId = server.id;
  if (typeof serverId !== 'number') throw new Error('the server record from Odoo has no id');

  const settings: OdooSetting[] = [];
  const ignored: OdooSettingsRead['ignored'] = [];
  for (const [field, key] of Object.entries(SERVER_FIELDS)) {
    const v = server[field];
    // Odoo answers an empty Char field as false
    if (v === false || v === null || v === undefined || v === '') continue;
    settings.push({ key, value: typeof v === 'string' ? v.slice(0, MAX_VALUE_CHARS) : v, from: `server.${field}` });
  }
  if (server.ami_trace === true) ignored.push({ from: 'server.ami_trace', why: NOT_USED.ami_trace! });

  const rows = rowsOf(
    await rpc.executeKw(
      'asterisk_plus.agent_options',
      'search_read',
      [[['server', '=', serverId]]],
      { fields: ['key', 'value'], limit: MAX_OPTION_ROWS + 1 },
      opts,
    ),
    'the agent options search',
  );
  if (rows.length > MAX_OPTION_ROWS) ignored.push({ from: 'agent_options', why: `more than ${MAX_OPTION_ROWS} rows: the rest not read` });
  const seen = new Set<string>();
  for (const row of rows.slice(0, MAX_OPTION_ROWS)) {
    const key = typeof row.key === 'string' ? row.key.trim().slice(0, 100) : '';
    if (!/^[a-z0-9_]+$/i.test(key)) continue;
    if (seen.has(key)) {
      ignored.push({ from: `agent_options.${key}`, why: 'a second row with this key: the first is used' });
      continue;
    }
    seen.add(key);
    const value = typeof row.value === 'string' ? row.value.slice(0, MAX_VALUE_CHARS) : '';
    const s = optionSetting(key, value);
    if ('why' in s) ignored.push({ from: `agent_options.${key}`, why: s.why });
    else settings.push(s);
  }
  return { serverId, settings, ignored };
}
