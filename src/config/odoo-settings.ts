/**
 * Settings from Odoo over the local file (issue 15): a key the file (or the environment) sets
 * always wins; a value Odoo holds (src/odoo/settings.ts) applies only where the file leaves the key
 * unset, replacing the schema default. Every Odoo value goes through the same validation as the
 * file (buildConfig) and through the rules below that keep a compromised Odoo from opening the
 * host up; a value refused either way is logged (never a secret's value) and left out, and the
 * daemon runs on. docs: README "Settings kept in Odoo", SECURITY.md.
 */
import { posix } from 'node:path';
import type { Logger } from 'pino';
import { networkContains, parseNetwork } from '../net/ip.js';
import { ODOO_SETTING_KEYS, readOdooSettings, type OdooSetting, type OdooSettingsRead } from '../odoo/settings.js';
import { OdooRpc, resolveOdooConfig } from '../odoo/index.js';
import { changedKeys } from './changes.js';
import { buildConfig, configSourceOf, defaultConfig, odooBridgeConfig, setConfigSource, type ConfigSource, type GuardianConfig } from './index.js';
import { isPlainObject } from './validate.js';

export type SettingOrigin = 'file' | 'env' | 'odoo' | 'default';

export interface RejectedSetting {
  key: string;
  from: string;
  why: string;
}

export interface OverlayResult {
  config: GuardianConfig;
  /** keys whose effective value is Odoo's */
  applied: string[];
  /** Odoo values left out (refused by a rule or by validation) */
  rejected: RejectedSetting[];
  /** Odoo values not used because the file or the environment sets the key */
  shadowed: string[];
}

const LOOPBACK = ['127.0.0.0/8', '::1/128'].map((n) => parseNetwork(n)!);
const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'].map((n) => parseNetwork(n)!);
/** Asterisk's spool: recordings (monitor/) and voicemail live below it */
const ASTERISK_SPOOL = '/var/spool/asterisk';

/** one address (not a network, not a wildcard) inside one of `nets` */
function addressIn(v: string, nets: typeof LOOPBACK): boolean {
  const a = parseNetwork(v);
  return a !== null && a.prefix === a.bytes.length * 8 && nets.some((n) => networkContains(n, a));
}
const isLoopback = (v: string): boolean => v === 'localhost' || addressIn(v, LOOPBACK);

const shown = (v: unknown): string => JSON.stringify(v)?.slice(0, 80) ?? String(v);

/**
 * What Odoo may not set even where the file is silent: a compromised Odoo must not make the daemon
 * listen on a public address, send the local AMI secret elsewhere, or read and delete files
 * outside Asterisk's spool. The file can set each of these keys itself.
 */
export function odooValueRefusal(s: OdooSetting): string | null {
  const v = s.value;
  if (s.key === 'odoo.fagi.host' && typeof v === 'string' && !(isLoopback(v) || addressIn(v, PRIVATE)))
    return (
      `Odoo may set the FastAGI listen address only to a loopback or private address (FastAGI has no authentication), not ${shown(v)}: ` +
      'set odoo.fagi.host in the file to listen there'
    );
  if (s.key === 'ami.host' && typeof v === 'string' && !isLoopback(v))
    return (
      `Odoo may point the AMI connection only at this host (localhost, 127.0.0.1, ::1), not ${shown(v)}: the AMI login sends its secret in clear; ` +
      'set ami.host in the file for an Asterisk on another host'
    );
  if (s.key === 'odoo.recordingDirs' && Array.isArray(v)) {
    const bad = v.find((d) => typeof d !== 'string' || !d.startsWith(`${ASTERISK_SPOOL}/`) || posix.normalize(d) !== d);
    if (bad !== undefined)
      return (
        `Odoo may confine recordings only to a directory inside ${ASTERISK_SPOOL}/, not ${shown(bad)} ` +
        '(recording.get_file and file.delete read and delete there): set odoo.recordingDirs in the file'
      );
  }
  return null;
}

function hasPath(doc: Record<string, unknown>, key: string): boolean {
  let node: unknown = doc;
  for (const part of key.split('.')) {
    if (!isPlainObject(node)) return false;
    node = node[part];
  }
  return node !== undefined && node !== null;
}

function setPath(doc: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = doc;
  for (const part of parts.slice(0, -1)) {
    if (!isPlainObject(node[part])) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts.at(-1)!] = value;
}

/** The file's document and its keys; a config not built by buildConfig counts what differs from the defaults as set. */
function sourceOf(cfg: GuardianConfig): ConfigSource & { local: (key: string) => SettingOrigin | null } {
  const src = configSourceOf(cfg);
  if (src) return { ...src, local: (k) => (src.envKeys.includes(k) ? 'env' : hasPath(src.doc, k) ? 'file' : null) };
  const changed = new Set(changedKeys(defaultConfig(), cfg));
  const doc = structuredClone(cfg) as unknown as Record<string, unknown>;
  return { doc, envKeys: [], source: 'config', local: (k) => ([...changed].some((c) => c === k || c.startsWith(`${k}.`)) ? 'file' : null) };
}

/** The origin of each key Odoo can set, in `cfg` (an overlaid config or the file's). */
export function localOrigin(cfg: GuardianConfig, key: string): SettingOrigin | null {
  return sourceOf(cfg).local(key);
}

/** `base` (the file's config) with Odoo's values where the file is silent, each validated as the file is. */
export function overlayOdooSettings(base: GuardianConfig, read: OdooSettingsRead, log: Logger): OverlayResult {
  const src = sourceOf(base);
  let doc = structuredClone(src.doc);
  const applied: string[] = [];
  const rejected: RejectedSetting[] = [];
  const shadowed: string[] = [];
  const refuse = (s: OdooSetting, why: string) => {
    rejected.push({ key: s.key, from: s.from, why });
    log.warn({ key: s.key, from: s.from }, `setting from Odoo not applied (${s.from} for ${s.key}): ${why}`);
  };
  for (const s of read.settings) {
    if (!ODOO_SETTING_KEYS.some((k) => k.key === s.key)) continue;
    if (src.local(s.key) !== null) {
      shadowed.push(s.key);
      continue;
    }
    const rule = odooValueRefusal(s);
    if (rule) {
      refuse(s, rule);
      continue;
    }
    const trial = structuredClone(doc);
    setPath(trial, s.key, s.value);
    try {
      buildConfig(trial, {}, 'the settings from Odoo');
    } catch (e) {
      // the file alone is valid, so what is wrong now is this value (a secret's value is never in the message)
      refuse(s, (e as Error).message.replace(/^[^\n]*\n\s*- /, '').replace(/\n\s*- /g, '; '));
      continue;
    }
    doc = trial;
    applied.push(s.key);
  }
  const config = buildConfig(doc, {}, 'the settings from Odoo');
  // the file's source, not one with Odoo's values in it: the next overlay starts from the file again
  const registered = configSourceOf(base);
  if (registered) setConfigSource(config, registered);
  return { config, applied, rejected, shadowed };
}

/** how long reading the settings may hold up a start or a reload */
export const SETTINGS_READ_TIMEOUT_MS = 10_000;

/** Reads the settings with a client of its own (the bridge's is not started yet at a start). */
export async function fetchOdooSettings(cfg: GuardianConfig, log: Logger): Promise<OdooSettingsRead> {
  const o = resolveOdooConfig(odooBridgeConfig(cfg));
  const rpc = new OdooRpc(
    { ...o, rpcRetries: 0, rpcConcurrency: 1, rpcTimeoutMs: Math.min(o.rpcTimeoutMs, SETTINGS_READ_TIMEOUT_MS) },
    log.child({ stage: 'odoo' }),
  );
  try {
    const uid = o.transport === 'jsonrpc' ? await rpc.login() : null;
    return await readOdooSettings(rpc, uid, { retries: 0 });
  } finally {
    rpc.close();
  }
}
