import { closeSync, constants, fchownSync, fstatSync, openSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

/** entries looked at per pass: a state directory holds a handful (database, WAL, lock, notes, TLS key) */
const MAX_ENTRIES = 10_000;

/**
 * `pbx-guardian run` started by hand as root in a state directory that belongs to the service
 * user (the package's postinst makes /var/lib/pbx-guardian pbx-guardian:pbx-guardian 0750): what
 * root creates there (the SQLite database and its -wal/-shm, the lock, notes) would stay
 * root-owned, and the service, started next, could not open its own store. So the entries root
 * owns in it are given to the directory's owner once the daemon has started and again when it
 * stops. Not root, or a directory root owns: nothing to do.
 */
export class StateOwnership {
  private constructor(
    private readonly stateDir: string,
    readonly uid: number,
    readonly gid: number,
    private readonly logger?: Logger,
  ) {}

  /** null unless this process is root and the state directory belongs to another user */
  static of(stateDir: string, logger?: Logger): StateOwnership | null {
    if (process.getuid?.() !== 0) return null;
    let st;
    try {
      st = statSync(stateDir);
    } catch {
      return null;
    }
    return st.uid === 0 ? null : new StateOwnership(stateDir, st.uid, st.gid, logger);
  }

  /**
   * Gives every root-owned file directly in the state directory (the daemon makes no
   * subdirectories) to its owner; returns how many. The directory's owner can write in it, so each
   * entry is opened with O_NOFOLLOW and checked on the open descriptor (a regular file, root's, one
   * link) before fchown: a symlink or a hard link planted there to a file of root's is never given
   * away, nor one swapped in between the check and the chown.
   */
  adopt(): number {
    let changed = 0;
    let names: string[];
    try {
      names = readdirSync(this.stateDir).slice(0, MAX_ENTRIES);
    } catch {
      return 0;
    }
    for (const name of names) {
      const p = join(this.stateDir, name);
      let fd: number;
      try {
        fd = openSync(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
      } catch {
        continue; // a symlink (ELOOP), a socket (ENXIO), gone meanwhile: left as it is
      }
      try {
        const st = fstatSync(fd);
        if (st.isFile() && st.uid === 0 && st.nlink === 1) {
          fchownSync(fd, this.uid, st.gid === 0 ? this.gid : st.gid);
          changed++;
        }
      } catch (err) {
        this.logger?.warn({ err, path: p }, 'running as root: could not give this state file to the state directory owner');
      } finally {
        closeSync(fd);
      }
    }
    if (changed)
      this.logger?.info(
        { stateDir: this.stateDir, uid: this.uid, gid: this.gid, files: changed },
        `running as root: ${changed} state files given to uid ${this.uid}, the owner of ${this.stateDir}`,
      );
    return changed;
  }
}
