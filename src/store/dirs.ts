/**
 * Directories the daemon must own before it does anything else: the state directory (ban store,
 * lock, generated TLS pair) and the admin socket's directory.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { StartupError } from '../common/errors.js';

/** The state directory cannot be made, is not a directory, or cannot be written. */
export class StateDirError extends StartupError {
  constructor(
    readonly stateDir: string,
    reason: string,
  ) {
    super(
      `the state directory ${stateDir} (config key stateDir) cannot be used: ${reason}. It holds the ban store and the ` +
        'daemon lock, so nothing was started and the firewall was not touched. Make it a writable directory for the user ' +
        "pbx-guardian runs as (the systemd unit's StateDirectory= creates /var/lib/pbx-guardian), or set stateDir to one",
      'STATE_DIR_UNUSABLE',
    );
    this.name = 'StateDirError';
  }
}

/**
 * `mkdir -p` one level at a time. Not `mkdirSync(dir, { recursive: true })`: Node 20's recursive
 * mkdir spins forever at 100% CPU when a parent exists but cannot hold children (procfs answers
 * mkdir("/proc/nope") with ENOENT, so it steps back to "/proc", gets EEXIST, steps forward again).
 * Throws the first real error (ENOENT, EACCES, EROFS, ENOTDIR ...) with the path it concerns.
 */
export function makeDirs(dir: string, mode: number): void {
  const missing: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      if (!statSync(d).isDirectory()) throw Object.assign(new Error(`${d} exists and is not a directory`), { code: 'ENOTDIR', path: d });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.unshift(d);
      if (dirname(d) === d) break;
    }
  }
  for (const d of missing) {
    try {
      mkdirSync(d, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // made meanwhile by someone else: fine
    }
  }
}

/** Makes the state directory (0750) or throws StateDirError saying why not. */
export function prepareStateDir(stateDir: string): void {
  try {
    makeDirs(stateDir, 0o750);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new StateDirError(stateDir, `${e.code === 'ENOENT' ? 'it cannot be created there' : 'cannot create it'} (${e.message})`);
  }
}
