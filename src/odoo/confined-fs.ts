/**
 * Files inside odoo.recordingDirs, opened and deleted without a resolve-then-walk race.
 *
 * Resolving a path (realpath) and then using it walks the path twice: a local user who can
 * rename a directory inside the recording tree can swap a component for a symlink in between.
 * Node has no openat/unlinkat, so the walk opens each directory from the configured root downward
 * with O_DIRECTORY | O_NOFOLLOW through /proc/self/fd/<parent>/<name>: the magic link pins the
 * directory already verified, and the last component is opened (O_NOFOLLOW) or unlinked (unlink
 * never follows a final symlink) in it. A symlink anywhere below the root is refused.
 */
import fs, { type FileHandle } from 'node:fs/promises';
import { constants as fsc, type Stats } from 'node:fs';
import path from 'node:path';
import { JobError } from './job-function.js';

const DIR_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
// O_NONBLOCK: opening a FIFO planted in the tree must not block a thread of the pool
const FILE_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;

interface Located {
  /** the configured root, resolved */
  root: string;
  /** the components below it (no ".", "..", or empty ones) */
  parts: string[];
}

function outside(p: string, why = ''): JobError {
  return new JobError(`refused: ${p} is outside the recording directories (odoo.recordingDirs)${why}`);
}

/** Which root `p` is under and its components below it, lexically (".." resolved first). */
async function locate(p: unknown, dirs: string[]): Promise<Located> {
  if (typeof p !== 'string' || !p) throw new JobError('a file path is required');
  if (p.includes('\0')) throw new JobError('refused: the file path contains NUL');
  if (p.length > 4096) throw new JobError('refused: the file path is too long');
  const roots: Array<{ given: string; real: string }> = [];
  for (const d of dirs) {
    try {
      roots.push({ given: path.resolve(d), real: await fs.realpath(d) });
    } catch {
      /* a missing dir confines nothing */
    }
  }
  if (roots.length === 0) throw new JobError(`no recording directory exists on this agent (odoo.recordingDirs: ${dirs.join(', ')})`);
  const abs = path.normalize(path.isAbsolute(p) ? p : path.join(roots[0]!.real, p));
  for (const r of roots) {
    for (const prefix of [r.real, r.given]) {
      const withSep = prefix.endsWith(path.sep) ? prefix : prefix + path.sep;
      if (abs.startsWith(withSep)) return { root: r.real, parts: abs.slice(withSep.length).split(path.sep).filter(Boolean) };
    }
  }
  throw outside(p);
}

/** Opens every directory of `loc` but the last component; returns the innermost one. */
async function openParent(p: string, loc: Located): Promise<{ dir: FileHandle; name: string }> {
  const name = loc.parts[loc.parts.length - 1];
  if (name === undefined) throw new JobError(`${p} is not a regular file`);
  let dir = await fs.open(loc.root, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    for (const part of loc.parts.slice(0, -1)) {
      const next = await fs.open(`/proc/self/fd/${dir.fd}/${part}`, DIR_FLAGS).catch((e: NodeJS.ErrnoException) => {
        throw walkError(p, part, e);
      });
      await dir.close();
      dir = next;
    }
    return { dir, name };
  } catch (e) {
    await dir.close().catch(() => undefined);
    throw e;
  }
}

function walkError(p: string, part: string, e: NodeJS.ErrnoException): JobError {
  if (e.code === 'ENOENT') return new JobError(`file not found: ${p}`);
  if (e.code === 'ENOTDIR' || e.code === 'ELOOP') return outside(p, `: ${part} is a symbolic link or not a directory`);
  return new JobError(`cannot open ${p}: ${e.code ?? e.message}`);
}

/** A regular file inside the recording directories, open for reading, and its size. */
export async function openConfinedFile(p: unknown, dirs: string[]): Promise<{ file: FileHandle; stat: Stats; name: string }> {
  const loc = await locate(p, dirs);
  const { dir, name } = await openParent(String(p), loc);
  let file: FileHandle;
  try {
    file = await fs.open(`/proc/self/fd/${dir.fd}/${name}`, FILE_FLAGS).catch((e: NodeJS.ErrnoException) => {
      throw walkError(String(p), name, e);
    });
  } finally {
    await dir.close();
  }
  try {
    const stat = await file.stat();
    if (!stat.isFile()) throw new JobError(`${String(p)} is not a regular file`);
    return { file, stat, name };
  } catch (e) {
    await file.close();
    throw e;
  }
}

/** Deletes a regular file inside the recording directories (only a name inside them is removed). */
export async function unlinkConfinedFile(p: unknown, dirs: string[]): Promise<void> {
  const loc = await locate(p, dirs);
  const { dir, name } = await openParent(String(p), loc);
  try {
    const at = `/proc/self/fd/${dir.fd}/${name}`;
    const st = await fs.lstat(at).catch((e: NodeJS.ErrnoException) => {
      throw walkError(String(p), name, e);
    });
    if (st.isSymbolicLink()) throw outside(String(p), `: ${name} is a symbolic link`);
    if (!st.isFile()) throw new JobError(`${String(p)} is not a regular file`);
    // if the name was swapped since lstat, unlink still removes a name in this verified directory
    await fs.unlink(at).catch((e: NodeJS.ErrnoException) => {
      throw walkError(String(p), name, e);
    });
  } finally {
    await dir.close();
  }
}
