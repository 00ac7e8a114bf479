/**
 * Atomic replacement of a file that someone else reads (Asterisk's dialplan, the daemon's own
 * config): the new content goes to a fresh file beside the target, which gets the owner, group
 * and permission bits it must end up with BEFORE a byte is written, then fsync, rename, fsync of
 * the directory. Readers see the old file or the new one, never a partial one, and never a file
 * with other rights than the one it replaces.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AppError } from './errors.js';

/** What a written file must carry: its owner, group and permission bits (0o777 at most). */
export interface FileAttributes {
  uid: number;
  gid: number;
  mode: number;
}

/** The owner, group and permission bits of an existing file (setuid, setgid and sticky dropped). */
export function attributesOf(st: { uid: number; gid: number; mode: number }): FileAttributes {
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o777 };
}

/** The file could not be given the owner or group it must keep (the process may not chown). */
export class OwnershipError extends AppError {
  constructor(message: string) {
    super(message, 'OWNER_NOT_KEPT', 409);
  }
}

export async function writeFileAtomic(target: string, content: string | Buffer, attrs: FileAttributes): Promise<void> {
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  // O_EXCL: a planted file or symlink of that name is never opened; 0600 until the rights are set
  const fh = await fs.open(tmp, 'wx', 0o600);
  try {
    try {
      const own = await fh.stat();
      if (own.uid !== attrs.uid || own.gid !== attrs.gid) await fh.chown(attrs.uid, attrs.gid);
    } catch (e) {
      throw new OwnershipError(
        `cannot give the new ${target} its owner and group (uid ${attrs.uid}, gid ${attrs.gid}): ${(e as Error).message}. ` +
          'Nothing was changed. The daemon must run as that owner, or be allowed to chown (CAP_CHOWN).',
      );
    }
    // chmod after chown (chown may clear bits); fchmod is not subject to the umask
    await fh.chmod(attrs.mode & 0o777);
    await fh.writeFile(content);
    await fh.sync();
    await fh.close();
    await fs.rename(tmp, target);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fs.unlink(tmp).catch(() => undefined);
    throw e;
  }
  await syncDir(dir);
}

/** The rename itself is durable only once the directory is synced. */
async function syncDir(dir: string): Promise<void> {
  const d = await fs.open(dir, 'r').catch(() => null);
  if (!d) return;
  await d.sync().catch(() => undefined);
  await d.close();
}
