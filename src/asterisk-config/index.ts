/**
 * Asterisk config sync (the Asterisk Base agent's job): list, read, write and delete config files
 * in the Asterisk config directory, and reload a module through AMI.
 *
 * - Every path is resolved with realpath inside the configured directory: no "..", no absolute
 *   paths, no symlink leading out (a symlinked file or parent directory is followed and checked).
 * - Only the files config sync owns can be written or deleted: <base>_<marker>.conf for a base in
 *   asteriskConfig.bases (see names.ts); the protected bases (manager, asterisk, modules, ...) are
 *   refused for every operation, reads included.
 * - Writes are atomic (a new temp file in the same directory, fsync, rename) and the previous
 *   content is kept as <name>.bak (also written by rename, so a planted .bak symlink is replaced,
 *   never followed). Every written file keeps the owner, group and mode of the file it replaces;
 *   a new file takes those of its base file (else: the directory's owner and group, mode 0640).
 * - Writing extensions_odoo.conf makes sure extensions.conf ends with exactly one
 *   `#include extensions_odoo.conf` line; deleting it removes that line again (a #include of a
 *   missing file would make Asterisk refuse the whole base file).
 * - One more file, on request only: the fraud stage's dialplan subroutine, extensions_guardian.conf
 *   (installGuardianDialplan), with the same checks, atomic write and #include line.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { AmiActionFields, AmiPort } from '../ami/index.js';
import { AppError } from '../common/errors.js';
import { attributesOf, OwnershipError, writeFileAtomic, type FileAttributes } from '../common/atomic-write.js';
import { escapeRegExp, managedBase, protectedReason } from './names.js';
import { defaultsOf } from '../common/config-schema.js';
import { AsteriskConfigConfigSchema, type AsteriskConfigConfig } from './config-schema.js';
import { GUARDIAN_DIALPLAN, GUARDIAN_DIALPLAN_BASE, shippedGuardianDialplan } from './guardian-dialplan.js';

export { PROTECTED_BASES } from './names.js';
export { GUARDIAN_DIALPLAN, shippedGuardianDialplan } from './guardian-dialplan.js';

/** Mode of a new file whose base file does not exist (owner and group: the directory's). */
const NEW_FILE_MODE = 0o640;

export type { AmiPort };

export { AsteriskConfigConfigSchema, validateAsteriskConfigConfig, type AsteriskConfigConfig } from './config-schema.js';

/** The `asteriskConfig:` config section with its defaults (from AsteriskConfigConfigSchema). */
export function defaultAsteriskConfigConfig(): AsteriskConfigConfig {
  return defaultsOf(AsteriskConfigConfigSchema);
}

/** Refused or failed; statusCode/code are what the REST API answers. */
export class ConfigFileError extends AppError {
  declare readonly statusCode: 400 | 403 | 404 | 409 | 413 | 502;
  constructor(message: string, statusCode: 400 | 403 | 404 | 409 | 413 | 502, code: string) {
    super(message, code, statusCode);
  }
}

const SEGMENT_RE = /^[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,127}$/;
const MODULE_RE = /^[A-Za-z0-9_.]{1,64}$/;

export interface ConfigFileInfo {
  name: string;
  size: number;
  mtime: string;
  /** <base>_<marker>.conf for a configured base: can be written and deleted */
  managed: boolean;
}

export interface WriteResult {
  name: string;
  bytes: number;
  changed: boolean;
  backup: string | null;
  /** the base file and what happened to its #include line */
  include: { base: string; action: 'added' | 'present' | 'base-missing' } | null;
}

export class AsteriskConfigFiles {
  private rootReal: string | null = null;

  constructor(
    private readonly cfg: AsteriskConfigConfig,
    private readonly ami: AmiPort | null,
  ) {}

  private async root(): Promise<string> {
    if (this.rootReal) return this.rootReal;
    try {
      this.rootReal = await fs.realpath(this.cfg.dir);
    } catch {
      throw new ConfigFileError(`the Asterisk config directory ${this.cfg.dir} does not exist (asteriskConfig.dir)`, 404, 'NO_CONFIG_DIR');
    }
    return this.rootReal;
  }

  /** Checks a relative name (a/b.conf) syntactically; returns its segments. */
  private segments(name: unknown): string[] {
    if (typeof name !== 'string' || name === '') throw new ConfigFileError('a config file name is required, e.g. extensions_odoo.conf', 400, 'BAD_NAME');
    const segs = name.split('/');
    if (segs.length > 4 || segs.some((s) => !SEGMENT_RE.test(s) || s === '.' || s === '..')) {
      throw new ConfigFileError(
        `refused: "${name.slice(0, 200)}" is not a plain file name inside ${this.cfg.dir} (letters, digits, _ . + -; no "..", no absolute path)`,
        400,
        'BAD_NAME',
      );
    }
    return segs;
  }

  private inside(root: string, p: string): boolean {
    return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
  }

  /** Real path of an existing file inside the directory (symlinks followed, then checked). */
  private async existing(name: string): Promise<string> {
    const root = await this.root();
    const segs = this.segments(name);
    let real: string;
    try {
      real = await fs.realpath(path.join(root, ...segs));
    } catch {
      throw new ConfigFileError(`${name}: no such file in ${this.cfg.dir}`, 404, 'NOT_FOUND');
    }
    if (!this.inside(root, real) || real === root) throw new ConfigFileError(`refused: ${name} leads outside ${this.cfg.dir} (symlink)`, 403, 'OUTSIDE');
    this.refuseProtected(name, segs[segs.length - 1]!, path.basename(real));
    return real;
  }

  /** Protected files are refused under their own name and behind a symlink of another name. */
  private refuseProtected(name: string, ...files: string[]): void {
    for (const f of files) {
      const why = protectedReason(f);
      if (why) throw new ConfigFileError(`refused: ${name}: ${why}; config sync never reads, writes or includes into it (edit it by hand)`, 403, 'PROTECTED');
    }
  }

  /** The configured base of a file config sync owns; anything else is refused. */
  private ownedBase(name: string, file: string): string {
    this.refuseProtected(name, file);
    const base = managedBase(file, this.cfg.bases, this.cfg.marker);
    if (base === null || protectedReason(`${base}.conf`)) {
      throw new ConfigFileError(
        `refused: ${name} is not a file config sync owns: only <base>_${this.cfg.marker}.conf (or <base>_${this.cfg.marker}_<name>.conf) ` +
          `for a base in asteriskConfig.bases (${this.cfg.bases.join(', ') || 'none'}) is written or deleted, never Asterisk's own files`,
        403,
        'NOT_MANAGED',
      );
    }
    return base;
  }

  /** Where a managed file is written: its parent directory's real path must be inside; the file itself must not be a symlink. */
  private async target(name: string): Promise<string> {
    const root = await this.root();
    const segs = this.segments(name);
    this.ownedBase(name, segs[segs.length - 1]!);
    let parent: string;
    try {
      parent = await fs.realpath(path.join(root, ...segs.slice(0, -1)));
    } catch {
      throw new ConfigFileError(`${path.dirname(name)}: no such directory in ${this.cfg.dir}`, 404, 'NOT_FOUND');
    }
    if (!this.inside(root, parent)) throw new ConfigFileError(`refused: ${name} leads outside ${this.cfg.dir} (symlinked directory)`, 403, 'OUTSIDE');
    const p = path.join(parent, segs[segs.length - 1]!);
    const st = await fs.lstat(p).catch(() => null);
    if (st && !st.isFile())
      throw new ConfigFileError(`refused: ${name} is a symlink or not a regular file; replace it by hand if that is intended`, 403, 'NOT_REGULAR');
    return p;
  }

  async list(): Promise<ConfigFileInfo[]> {
    const root = await this.root();
    const out: ConfigFileInfo[] = [];
    const walk = async (dir: string, rel: string, depth: number): Promise<void> => {
      const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
        if (out.length >= this.cfg.maxFiles) return;
        const name = rel ? `${rel}/${e.name}` : e.name;
        if (!SEGMENT_RE.test(e.name)) continue;
        if (e.isDirectory() && depth < 3) {
          await walk(path.join(dir, e.name), name, depth + 1);
          continue;
        }
        if (!e.isFile() || !/\.(conf|ael|lua|adsi|txt|sample)$/.test(e.name)) continue;
        const st = await fs.stat(path.join(dir, e.name)).catch(() => null);
        if (!st) continue;
        const managed = !protectedReason(e.name) && managedBase(e.name, this.cfg.bases, this.cfg.marker) !== null;
        out.push({ name, size: st.size, mtime: st.mtime.toISOString(), managed });
      }
    };
    await walk(root, '', 0);
    return out;
  }

  async read(name: string): Promise<{ name: string; content: string }> {
    const real = await this.existing(name);
    const st = await fs.stat(real);
    if (!st.isFile()) throw new ConfigFileError(`${name} is not a regular file`, 400, 'NOT_REGULAR');
    if (st.size > this.cfg.maxFileBytes)
      throw new ConfigFileError(`${name} is ${st.size} bytes, more than asteriskConfig.maxFileBytes (${this.cfg.maxFileBytes})`, 413, 'TOO_LARGE');
    return { name, content: await fs.readFile(real, 'utf8') };
  }

  /** Every .conf file (bounded): {name: content}. */
  async readAll(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const f of await this.list()) {
      if (!f.name.endsWith('.conf') || f.size > this.cfg.maxFileBytes) continue;
      try {
        out[f.name] = (await this.read(f.name)).content;
      } catch {
        /* vanished or outside: skipped */
      }
    }
    return out;
  }

  async write(name: string, content: string): Promise<WriteResult> {
    const bytes = this.checkWrite(name, content);
    const p = await this.target(name);
    await this.basePath(name); // a base file that is a protected one behind a symlink refuses the write before anything is written
    const w = await this.atomicWrite(p, content, this.cfg.backup, () => this.newFileAttributes(name));
    const include = await this.ensureInclude(name);
    return { name, bytes, changed: w.changed, backup: w.backup, include };
  }

  /** What can be checked without touching the disk; returns the size in bytes. */
  private checkWrite(name: string, content: unknown): number {
    if (typeof content !== 'string') throw new ConfigFileError('the file content must be a string', 400, 'BAD_CONTENT');
    const segs = this.segments(name);
    this.ownedBase(name, segs[segs.length - 1]!);
    return this.checkContent(name, content);
  }

  private checkContent(name: string, content: unknown): number {
    if (typeof content !== 'string') throw new ConfigFileError('the file content must be a string', 400, 'BAD_CONTENT');
    const bytes = Buffer.byteLength(content, 'utf8');
    if (bytes > this.cfg.maxFileBytes)
      throw new ConfigFileError(`${name}: ${bytes} bytes is more than asteriskConfig.maxFileBytes (${this.cfg.maxFileBytes})`, 413, 'TOO_LARGE');
    if (content.includes('\0')) throw new ConfigFileError(`${name}: the content contains NUL bytes`, 400, 'BAD_CONTENT');
    return bytes;
  }

  /** A new file takes its base file's owner, group and mode; without one, the directory's owner and group, 0640. */
  private async newFileAttributes(name: string): Promise<FileAttributes> {
    const b = await this.basePath(name);
    if (b?.real) return attributesOf(await fs.stat(b.real));
    const parent = await fs.stat(path.join(await this.root(), path.dirname(name)));
    return { uid: parent.uid, gid: parent.gid, mode: NEW_FILE_MODE };
  }

  async remove(
    name: string,
  ): Promise<{ name: string; deleted: boolean; backup: string | null; include: { base: string; action: 'removed' | 'absent' | 'base-missing' } | null }> {
    const p = await this.target(name);
    const st = await fs.lstat(p).catch(() => null);
    if (!st) throw new ConfigFileError(`${name}: no such file in ${this.cfg.dir}`, 404, 'NOT_FOUND');
    await this.basePath(name);
    let backup: string | null = null;
    if (this.cfg.backup) {
      backup = `${p}.bak`;
      await this.keep(backup, await fs.readFile(p, 'utf8'), attributesOf(st));
    }
    await fs.unlink(p);
    const include = await this.dropInclude(name);
    return { name, deleted: true, backup, include };
  }

  /**
   * Installs the fraud stage's dialplan subroutine as extensions_guardian.conf and #includes it
   * from extensions.conf: idempotent (an unchanged file and a present #include write nothing).
   * It is not a <base>_<marker>.conf file, so write() refuses it; this is its only way in, and
   * only while `extensions` is one of asteriskConfig.bases.
   */
  async installGuardianDialplan(content: string = shippedGuardianDialplan()): Promise<WriteResult> {
    if (!this.cfg.bases.includes('extensions'))
      throw new ConfigFileError(
        `refused: ${GUARDIAN_DIALPLAN} is #included from extensions.conf, and extensions is not in asteriskConfig.bases`,
        403,
        'NOT_MANAGED',
      );
    const bytes = this.checkContent(GUARDIAN_DIALPLAN, content);
    const root = await this.root();
    const p = path.join(root, GUARDIAN_DIALPLAN);
    const st = await fs.lstat(p).catch(() => null);
    if (st && !st.isFile())
      throw new ConfigFileError(`refused: ${GUARDIAN_DIALPLAN} is a symlink or not a regular file; replace it by hand if that is intended`, 403, 'NOT_REGULAR');
    const base = await this.existing(GUARDIAN_DIALPLAN_BASE).catch((e: unknown) => {
      if (e instanceof ConfigFileError && e.code === 'NOT_FOUND') return null;
      throw e;
    });
    // a new file takes the owner, group and mode of extensions.conf (else the directory's owner and group, 0640)
    const fresh = async (): Promise<FileAttributes> => {
      if (base) return attributesOf(await fs.stat(base));
      const d = await fs.stat(root);
      return { uid: d.uid, gid: d.gid, mode: NEW_FILE_MODE };
    };
    const w = await this.atomicWrite(p, content, this.cfg.backup, fresh);
    const include = base
      ? await this.includeInto({ base: GUARDIAN_DIALPLAN_BASE, real: base }, GUARDIAN_DIALPLAN, fresh)
      : { base: GUARDIAN_DIALPLAN_BASE, action: 'base-missing' as const };
    return { name: GUARDIAN_DIALPLAN, bytes, changed: w.changed, backup: w.backup, include };
  }

  /** Writes several files: every name and content is checked first, so a refusal writes none. */
  async writeAll(files: Array<{ name: string; content: string }>): Promise<WriteResult[]> {
    for (const f of files) this.checkWrite(f.name, f.content);
    const out: WriteResult[] = [];
    for (const f of files) out.push(await this.write(f.name, f.content));
    return out;
  }

  async reload(module?: string): Promise<{ module: string | null; response: string; message: string }> {
    if (!this.ami) throw new ConfigFileError('AMI is disabled (ami.enabled: false): cannot reload', 502, 'NO_AMI');
    if (module !== undefined && module !== null && module !== '' && !MODULE_RE.test(module))
      throw new ConfigFileError(`"${String(module).slice(0, 80)}" is not a module name like pbx_config or res_pjsip.so`, 400, 'BAD_MODULE');
    const fields: AmiActionFields = module ? { Action: 'Reload', Module: module } : { Action: 'Reload' };
    const r = await this.ami.action(fields, { timeoutMs: this.cfg.reloadTimeoutMs });
    const response = r.response.get('Response') ?? 'Error';
    const message = r.response.get('Message') ?? '';
    if (!/^success$/i.test(response)) throw new ConfigFileError(`Asterisk did not reload ${module ?? 'its modules'}: ${message}`, 502, 'RELOAD_FAILED');
    return { module: module || null, response, message };
  }

  // ---------------------------------------------------------------- internals

  /**
   * Replaces p keeping its owner, group and mode (the .bak gets them too: a backup is never more
   * readable than its file); `fresh` gives them when p does not exist yet.
   */
  private async atomicWrite(
    p: string,
    content: string,
    backup: boolean,
    fresh: () => Promise<FileAttributes>,
  ): Promise<{ changed: boolean; backup: string | null }> {
    const st = await fs.stat(p).catch(() => null);
    const old = st ? await fs.readFile(p, 'utf8') : null;
    if (old === content) return { changed: false, backup: null };
    const attrs = st ? attributesOf(st) : await fresh();
    let bak: string | null = null;
    if (backup && old !== null) {
      bak = `${p}.bak`;
      await this.keep(bak, old, attrs);
    }
    await this.keep(p, content, attrs);
    return { changed: true, backup: bak };
  }

  private async keep(p: string, content: string, attrs: FileAttributes): Promise<void> {
    try {
      await writeFileAtomic(p, content, attrs);
    } catch (e) {
      if (e instanceof OwnershipError) throw new ConfigFileError(e.message, 409, e.code);
      throw e;
    }
  }

  /** extensions_odoo.conf → extensions.conf (same directory). */
  private baseOf(name: string): string {
    const segs = name.split('/');
    const file = segs.pop()!;
    return [...segs, `${this.ownedBase(name, file)}.conf`].join('/');
  }

  private includeRe(name: string): RegExp {
    const esc = escapeRegExp(name);
    return new RegExp(`^[ \\t]*#(?:try)?include[ \\t]+(?:"${esc}"|<${esc}>|${esc})[ \\t]*(?:;.*)?$`);
  }

  private async basePath(name: string): Promise<{ base: string; real: string } | { base: string; real: null }> {
    const base = this.baseOf(name);
    try {
      return { base, real: await this.existing(base) };
    } catch (e) {
      if (e instanceof ConfigFileError && e.code === 'NOT_FOUND') return { base, real: null };
      throw e;
    }
  }

  private async ensureInclude(name: string): Promise<WriteResult['include']> {
    const b = await this.basePath(name);
    if (b.real === null) return { base: b.base, action: 'base-missing' };
    return this.includeInto(b, name, () => this.newFileAttributes(name));
  }

  private async includeInto(
    b: { base: string; real: string },
    name: string,
    fresh: () => Promise<FileAttributes>,
  ): Promise<NonNullable<WriteResult['include']>> {
    const text = await fs.readFile(b.real, 'utf8');
    const re = this.includeRe(name);
    if (text.split(/\r?\n/).some((l) => re.test(l))) return { base: b.base, action: 'present' };
    const sep = text === '' || text.endsWith('\n') ? '' : '\n';
    await this.atomicWrite(b.real, `${text}${sep}#include ${name}\n`, this.cfg.backup, fresh);
    return { base: b.base, action: 'added' };
  }

  private async dropInclude(name: string): Promise<{ base: string; action: 'removed' | 'absent' | 'base-missing' } | null> {
    const b = await this.basePath(name);
    if (b.real === null) return { base: b.base, action: 'base-missing' };
    const text = await fs.readFile(b.real, 'utf8');
    const re = this.includeRe(name);
    const lines = text.split('\n');
    const kept = lines.filter((l) => !re.test(l.replace(/\r$/, '')));
    if (kept.length === lines.length) return { base: b.base, action: 'absent' };
    await this.atomicWrite(b.real, kept.join('\n'), this.cfg.backup, () => this.newFileAttributes(name));
    return { base: b.base, action: 'removed' };
  }
}

// ---------------------------------------------------------------- Odoo job functions

type JobFn = (args: unknown, kwargs: Record<string, unknown>) => Promise<unknown>;

function nameOf(args: unknown, kwargs: Record<string, unknown>): unknown {
  const a = Array.isArray(args) ? args[0] : args;
  if (a && typeof a === 'object') {
    const o = a as Record<string, unknown>;
    return o.filename ?? o.name ?? o.file ?? o.path;
  }
  return a ?? kwargs.filename ?? kwargs.name;
}

function contentOf(args: unknown, kwargs: Record<string, unknown>): unknown {
  if (Array.isArray(args) && args.length >= 2) return args[1];
  const a = Array.isArray(args) ? args[0] : args;
  if (a && typeof a === 'object') {
    const o = a as Record<string, unknown>;
    return o.content ?? o.data ?? o.text;
  }
  return kwargs.content ?? kwargs.data;
}

function filesOf(args: unknown): Array<{ name: string; content: string }> {
  const a = Array.isArray(args) && args.length === 1 && (Array.isArray(args[0]) || (args[0] && typeof args[0] === 'object')) ? args[0] : args;
  const out: Array<{ name: string; content: string }> = [];
  if (Array.isArray(a)) {
    for (const x of a) {
      if (!x || typeof x !== 'object') throw new ConfigFileError('put_all_configs expects [{filename, content}, ...] or {filename: content}', 400, 'BAD_ARGS');
      const o = x as Record<string, unknown>;
      out.push({ name: String(o.filename ?? o.name ?? ''), content: (o.content as string) ?? (o.data as string) });
    }
  } else if (a && typeof a === 'object') {
    for (const [k, v] of Object.entries(a as Record<string, unknown>)) out.push({ name: k, content: v as string });
  } else throw new ConfigFileError('put_all_configs expects [{filename, content}, ...] or {filename: content}', 400, 'BAD_ARGS');
  if (out.length > 1000) throw new ConfigFileError('too many files in one job (max 1000)', 400, 'BAD_ARGS');
  return out;
}

/**
 * Job functions, under new names (config.*) and the Salt-era Asterisk Base names.
 * A write may reload a module afterwards: kwargs.reload = "pbx_config".
 */
export function configJobFunctions(files: AsteriskConfigFiles): Map<string, JobFn> {
  const maybeReload = async (r: unknown, kwargs: Record<string, unknown>): Promise<unknown> =>
    typeof kwargs.reload === 'string' && kwargs.reload ? { result: r, reload: await files.reload(kwargs.reload) } : r;
  const get: JobFn = async (a, k) => files.read(nameOf(a, k) as string);
  const put: JobFn = async (a, k) => maybeReload(await files.write(nameOf(a, k) as string, contentOf(a, k) as string), k);
  const del: JobFn = async (a, k) => maybeReload(await files.remove(nameOf(a, k) as string), k);
  const getAll: JobFn = async () => files.readAll();
  const putAll: JobFn = async (a, k) => maybeReload(await files.writeAll(filesOf(a)), k);
  const list: JobFn = async () => files.list();
  const installGuardian: JobFn = async (_a, k) => maybeReload(await files.installGuardianDialplan(), k);
  const reload: JobFn = async (a, k) => {
    const m = Array.isArray(a) ? a[0] : a && typeof a === 'object' ? (a as Record<string, unknown>).module : (a ?? k.module);
    return files.reload(typeof m === 'string' ? m : undefined);
  };
  return new Map<string, JobFn>([
    ['config.get', get],
    ['config.put', put],
    ['config.delete', del],
    ['config.list', list],
    ['config.get_all', getAll],
    ['config.put_all', putAll],
    ['config.reload_module', reload],
    ['config.install_guardian_dialplan', installGuardian],
    ['get_config', get],
    ['put_config', put],
    ['delete_config', del],
    ['get_all_configs', getAll],
    ['put_all_configs', putAll],
    ['asterisk.get_config', get],
    ['asterisk.put_config', put],
    ['asterisk.delete_config', del],
    ['asterisk.get_all_configs', getAll],
    ['asterisk.put_all_configs', putAll],
    ['asterisk.reload_module', reload],
  ]);
}
