/**
 * `pbx-guardian allow add|remove`: allow-list entries added at run time, kept in the state
 * directory (allow-runtime.json, replaced atomically) so a restart keeps them. They join the
 * guard's effective list as the 'runtime' source; entries from the config (guard.allow) and the
 * automatic ones (loopback, this host, its resolver and gateway, the AMI / Odoo hosts) are listed
 * beside them but cannot be added or removed here.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppError } from '../common/errors.js';
import { formatNetwork, parseNetwork, type AllowEntry, type AllowSource, type BanRecord } from '../guard/index.js';

export const RUNTIME_ALLOW_FILE = 'allow-runtime.json';
/** most runtime entries (the effective list stays small: the guard checks it on every event) */
export const MAX_RUNTIME_ENTRIES = 512;
/** the widest entry `allow add` takes: a wider one belongs in the config, where it is reviewed */
const WIDEST = { 4: 8, 6: 16 } as const;

export interface RuntimeEntry {
  entry: string;
  note: string;
  /** epoch ms */
  addedAt: number;
}

/** What of the guard the runtime allow-list needs (the Guardian implements it). */
export interface AllowGuardPort {
  setAllowSource(source: AllowSource, entries: AllowEntry[]): Promise<void>;
  allowOrigin(entry: string): string | null;
  readonly allowList: string[];
  automaticAllow(): AllowEntry[];
  listBans(): BanRecord[];
}

export interface AllowListing {
  configured: string[];
  runtime: RuntimeEntry[];
  automatic: AllowEntry[];
}

export class RuntimeAllow {
  private entries: RuntimeEntry[] = [];

  constructor(
    private readonly guard: AllowGuardPort,
    private readonly stateDir: string,
    private readonly onError: (message: string) => void = () => {},
  ) {}

  private get path(): string {
    return join(this.stateDir, RUNTIME_ALLOW_FILE);
  }

  /** Reads the file (absent: none; a bad entry is skipped and said) and gives the guard its entries. */
  async load(): Promise<void> {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(`${this.path} not read (${(err as Error).message}): no runtime allow entries`);
      return;
    }
    const list = Array.isArray((doc as { entries?: unknown })?.entries) ? (doc as { entries: unknown[] }).entries : [];
    for (const e of list.slice(0, MAX_RUNTIME_ENTRIES)) {
      const r = e as Partial<RuntimeEntry>;
      const net = typeof r.entry === 'string' ? parseNetwork(r.entry) : null;
      if (!net) {
        this.onError(`${this.path}: an entry that is not an address or CIDR was skipped`);
        continue;
      }
      this.entries.push({ entry: formatNetwork(net), note: cleanNote(r.note), addedAt: typeof r.addedAt === 'number' ? r.addedAt : 0 });
    }
    await this.apply();
  }

  list(): AllowListing {
    return { configured: this.guard.allowList, runtime: [...this.entries], automatic: this.guard.automaticAllow() };
  }

  /** Adds an entry; returns the bans it ended (a ban covering an allowed address ends). */
  async add(text: string, note: string | undefined, now = Date.now()): Promise<{ entry: string; ended: string[] }> {
    const net = parseNetwork(text);
    if (!net) throw new AppError(`"${String(text).slice(0, 80)}" is not an IPv4/IPv6 address or CIDR`, 'INVALID_TARGET', 400);
    const entry = formatNetwork(net);
    if (net.prefix < WIDEST[net.family])
      throw new AppError(`${entry} is wider than /${WIDEST[net.family]}: put so wide an entry in guard.allow in the config`, 'TOO_WIDE', 400);
    const origin = this.guard.allowOrigin(entry);
    if (origin !== null) throw new AppError(`${entry} is already allow-listed (${origin})`, 'ALREADY_ALLOWED', 409);
    if (this.entries.some((e) => e.entry === entry)) throw new AppError(`${entry} is already allow-listed (allow add)`, 'ALREADY_ALLOWED', 409);
    if (this.entries.length >= MAX_RUNTIME_ENTRIES)
      throw new AppError(`already ${MAX_RUNTIME_ENTRIES} runtime entries: remove some, or move them to guard.allow`, 'TOO_MANY', 409);
    const before = new Set(this.guard.listBans().map((b) => b.target));
    this.entries.push({ entry, note: cleanNote(note), addedAt: now });
    this.save();
    await this.apply();
    const after = new Set(this.guard.listBans().map((b) => b.target));
    return { entry, ended: [...before].filter((t) => !after.has(t)) };
  }

  async remove(text: string): Promise<{ entry: string }> {
    const net = parseNetwork(text);
    if (!net) throw new AppError(`"${String(text).slice(0, 80)}" is not an IPv4/IPv6 address or CIDR`, 'INVALID_TARGET', 400);
    const entry = formatNetwork(net);
    const i = this.entries.findIndex((e) => e.entry === entry);
    if (i < 0) {
      const origin = this.guard.allowOrigin(entry);
      if (origin === 'guard.allow')
        throw new AppError(`${entry} comes from the config (guard.allow): remove it there, then pbx-guardian reload`, 'NOT_RUNTIME', 409);
      if (origin !== null) throw new AppError(`${entry} is automatic (${origin}): it follows the host and cannot be removed`, 'NOT_RUNTIME', 409);
      throw new AppError(`${entry} is not on the runtime allow-list`, 'NOT_FOUND', 404);
    }
    this.entries.splice(i, 1);
    this.save();
    await this.apply();
    return { entry };
  }

  private apply(): Promise<void> {
    return this.guard.setAllowSource(
      'runtime',
      this.entries.map((e) => ({ entry: e.entry, from: e.note ? `allow add: ${e.note}` : 'allow add' })),
    );
  }

  private save(): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ version: 1, entries: this.entries }, null, 2) + '\n', { mode: 0o640 });
    renameSync(tmp, this.path);
  }
}

function cleanNote(note: unknown): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it takes out
  return typeof note === 'string' ? note.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 120) : '';
}
