/**
 * The daemon's view of the settings from Odoo: read at start and on every reload
 * (agent.reload_config, pbx-guardian reload), kept when a later read fails (Odoo down must not
 * flip FastAGI off), and shown by `pbx-guardian status` with the origin of each key Odoo can set.
 */
import type { Logger } from 'pino';
import { isSecretKey } from '../common/redact.js';
import { ODOO_SETTING_KEYS, type OdooSettingsRead } from '../odoo/settings.js';
import type { GuardianConfig } from './index.js';
import { fetchOdooSettings, localOrigin, overlayOdooSettings, type RejectedSetting, type SettingOrigin } from './odoo-settings.js';

export interface SettingStatus {
  key: string;
  origin: SettingOrigin;
  /** the effective value; a secret shows as "(hidden)" */
  value: string;
  /** where Odoo keeps it */
  odoo: string;
  /** why Odoo's value is not the effective one, when Odoo holds one */
  note?: string;
}

export interface SettingsStatus {
  /** off: odoo.enabled or odoo.settingsFromOdoo is false */
  state: 'off' | 'read' | 'not read';
  readAt: number | null;
  serverId: number | null;
  /** the last read's failure (the values of the read before stay in use) */
  error: string | null;
  keys: SettingStatus[];
  /** read from Odoo and not used by this agent, by where Odoo keeps them */
  ignored: Array<{ from: string; why: string }>;
}

function shownValue(key: string, v: unknown): string {
  if (isSecretKey(key)) return v === '' || v === undefined ? '(empty)' : '(hidden)';
  return Array.isArray(v) ? v.join(', ') : String(v);
}

function valueAt(cfg: GuardianConfig, key: string): unknown {
  let node: unknown = cfg;
  for (const p of key.split('.')) node = (node as Record<string, unknown> | undefined)?.[p];
  return node;
}

export type SettingsReader = (cfg: GuardianConfig, log: Logger) => Promise<OdooSettingsRead>;

export class OdooSettings {
  private last: OdooSettingsRead | null = null;
  private readAt: number | null = null;
  private error: string | null = null;
  private applied: string[] = [];
  private rejected: RejectedSetting[] = [];
  private base: GuardianConfig | null = null;
  private effective: GuardianConfig | null = null;

  constructor(
    private readonly log: Logger,
    private readonly read: SettingsReader = fetchOdooSettings,
  ) {}

  /** `base` (the file's config) with the settings from Odoo read now; on a failed read, those read before. Never throws. */
  async load(base: GuardianConfig): Promise<GuardianConfig> {
    this.base = base;
    this.effective = base;
    this.applied = [];
    this.rejected = [];
    if (!base.odoo.enabled || !base.odoo.settingsFromOdoo) {
      this.last = null;
      return base;
    }
    try {
      this.last = await this.read(base, this.log);
      this.readAt = Date.now();
      this.error = null;
    } catch (e) {
      this.error = (e as Error).message.slice(0, 300);
      this.log.warn(
        { err: this.error },
        `settings from Odoo not read: ${this.error}; ${this.last ? 'the values read before stay in use' : 'the file and the defaults apply'} until agent.reload_config (or pbx-guardian reload) reads them`,
      );
    }
    if (!this.last) return base;
    const r = overlayOdooSettings(base, this.last, this.log);
    this.applied = r.applied;
    this.rejected = r.rejected;
    this.effective = r.config;
    this.log.info(
      { server: this.last.serverId, applied: r.applied, fileWins: r.shadowed },
      `settings from Odoo (server ${this.last.serverId}): ${r.applied.length > 0 ? `applied ${r.applied.join(', ')}` : 'none applied'}${
        r.shadowed.length > 0 ? `; the file sets ${r.shadowed.join(', ')}` : ''
      }`,
    );
    return r.config;
  }

  status(): SettingsStatus {
    const cfg = this.effective;
    const base = this.base;
    const on = cfg !== null && cfg.odoo.enabled && cfg.odoo.settingsFromOdoo;
    const keys: SettingStatus[] = [];
    if (cfg && base) {
      for (const { key, from } of ODOO_SETTING_KEYS) {
        const held = this.last?.settings.find((s) => s.key === key);
        const local = localOrigin(base, key);
        const origin: SettingOrigin = local ?? (this.applied.includes(key) ? 'odoo' : 'default');
        const refused = this.rejected.find((r) => r.key === key);
        const note = refused
          ? `Odoo's value refused: ${refused.why}`
          : held && local
            ? `Odoo's value not used: the ${local === 'env' ? 'environment' : 'file'} sets it`
            : undefined;
        keys.push({ key, origin, value: shownValue(key, valueAt(cfg, key)), odoo: from, ...(note ? { note } : {}) });
      }
    }
    return {
      state: !on ? 'off' : this.last ? 'read' : 'not read',
      readAt: this.readAt,
      serverId: this.last?.serverId ?? null,
      error: this.error,
      keys,
      ignored: this.last?.ignored ?? [],
    };
  }
}

/** The status block of `pbx-guardian status`: one line per key, then what Odoo holds that is not used. */
export function formatSettingsStatus(s: SettingsStatus): string {
  if (s.state === 'off') return 'settings from Odoo: off (odoo.enabled or odoo.settingsFromOdoo is false)';
  const head =
    s.state === 'read'
      ? `settings from Odoo: read ${new Date(s.readAt!).toISOString()} (server ${s.serverId})${s.error ? `; the last read failed: ${s.error}` : ''}`
      : `settings from Odoo: not read (${s.error ?? 'not yet'})`;
  const w = Math.max(...s.keys.map((k) => k.key.length));
  const v = Math.min(28, Math.max(...s.keys.map((k) => k.value.length)));
  const lines = s.keys.map(
    (k) => `  ${k.key.padEnd(w)}  ${k.value.padEnd(v)}  ${k.origin}${k.origin === 'odoo' ? ` (${k.odoo})` : ''}${k.note ? `  [${k.note}]` : ''}`,
  );
  if (s.ignored.length > 0) lines.push(`  not used: ${s.ignored.map((i) => i.from.replace(/^agent_options\./, '')).join(', ')}`);
  return [head, ...lines].join('\n');
}
