/**
 * One daemon per state directory: `<stateDir>/guardian.lock` names the daemon that holds it.
 *
 * Node has no flock(), so the lock is a file created atomically: the record is written to a
 * private temporary file, then link()ed to the lock name, which fails with EEXIST when a lock is
 * there (the lock never exists half-written). A lock whose process is gone is stale and taken
 * over: the pid is dead, or now belongs to another process (its start time in /proc differs from
 * the one recorded), or the lock was written before this boot.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { uptime } from 'node:os';
import { join } from 'node:path';
import { StateDirError } from './dirs.js';
import { StartupError } from '../common/errors.js';

export const LOCK_FILE = 'guardian.lock';

/** What the lock file holds. */
export interface LockRecord {
  pid: number;
  /** the process's start time in clock ticks since boot (/proc/<pid>/stat field 22); null off Linux */
  startTicks: number | null;
  /** epoch ms the lock was taken */
  at: number;
  /** this holder's own value: release() removes only its own lock */
  token: string;
  argv: string[];
}

/** Another daemon holds the state directory. */
export class AlreadyRunningError extends StartupError {
  constructor(
    readonly holder: LockRecord,
    readonly lockPath: string,
    readonly stateDir: string,
  ) {
    super(
      `another pbx-guardian (pid ${holder.pid}, running since ${new Date(holder.at).toISOString()}) holds the state directory ` +
        `${stateDir} (lock ${lockPath}): this one exits without touching the firewall, the admin socket or the listeners. ` +
        `Stop the running one first (systemctl stop pbx-guardian, or kill ${holder.pid}), or give this instance its own stateDir`,
      'ALREADY_RUNNING',
    );
    this.name = 'AlreadyRunningError';
  }
}

export interface StateLock {
  readonly path: string;
  readonly record: LockRecord;
  /** the stale lock this one replaced, if any (logged by the caller) */
  readonly tookOver: { holder: LockRecord | null; why: string } | null;
  /** removes the lock if it is still ours; idempotent */
  release(): void;
}

/** locks held by this process, by path: a second daemon in one process is refused too */
const heldHere = new Set<string>();

/** The start time of a process in clock ticks since boot, or null when /proc cannot tell. */
export function processStartTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) is in parentheses and may contain spaces: count from the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(fields[19]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

function readRecord(path: string): LockRecord | null {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockRecord>;
    if (!Number.isInteger(r.pid) || (r.pid as number) <= 0 || typeof r.at !== 'number') return null;
    return {
      pid: r.pid!,
      startTicks: typeof r.startTicks === 'number' ? r.startTicks : null,
      at: r.at,
      token: String(r.token ?? ''),
      argv: Array.isArray(r.argv) ? r.argv.map(String) : [],
    };
  } catch {
    return null;
  }
}

/** Why a held lock is stale, or null when its holder still runs. */
function staleReason(holder: LockRecord | null, path: string): string | null {
  if (!holder) return 'the lock file is empty or unreadable';
  if (holder.pid === process.pid) return heldHere.has(path) ? null : "it names this process's pid, left by an earlier process";
  const bootedAt = Date.now() - uptime() * 1000;
  if (holder.at < bootedAt - 60_000) return 'it was taken before this boot';
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return `process ${holder.pid} is gone`;
    // EPERM: it exists and belongs to another user; /proc may hide it (ProtectProc=invisible)
  }
  const ticks = processStartTicks(holder.pid);
  if (ticks !== null && holder.startTicks !== null && ticks !== holder.startTicks) return `pid ${holder.pid} now belongs to another process`;
  return null;
}

/**
 * Takes the lock of a state directory (which must exist), or throws AlreadyRunningError naming
 * the holder, or StateDirError when the directory cannot be written.
 */
export function acquireStateLock(stateDir: string): StateLock {
  const path = join(stateDir, LOCK_FILE);
  const record: LockRecord = {
    pid: process.pid,
    startTicks: processStartTicks(process.pid),
    at: Date.now(),
    token: randomBytes(8).toString('hex'),
    argv: process.argv.slice(1, 6),
  };
  const tmp = join(stateDir, `.${LOCK_FILE}.${process.pid}.${record.token}`);
  try {
    writeFileSync(tmp, JSON.stringify(record) + '\n', { flag: 'wx', mode: 0o640 });
  } catch (err) {
    throw new StateDirError(stateDir, `cannot write in it (${(err as Error).message})`);
  }
  let tookOver: StateLock['tookOver'] = null;
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, path);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StateDirError(stateDir, `cannot create the lock ${path} (${(err as Error).message})`);
      }
      const holder = readRecord(path);
      const why = staleReason(holder, path);
      if (why === null && holder) throw new AlreadyRunningError(holder, path, stateDir);
      if (attempt >= 3) throw new StateDirError(stateDir, `cannot take the lock ${path}: it keeps changing (several daemons starting at once?)`);
      // Move the stale lock aside under a name of our own, then check it is the one judged stale:
      // a daemon starting at the same moment may have replaced it with its live lock meanwhile.
      const aside = `${tmp}.stale`;
      try {
        renameSync(path, aside);
      } catch {
        continue; // someone else moved it: look again
      }
      const moved = readRecord(aside);
      const same = holder === null ? moved === null : moved?.token === holder.token;
      if (!same) {
        try {
          linkSync(aside, path); // not ours to remove: put it back
        } catch {
          /* a third one took the name: it is judged on the next attempt */
        }
      } else tookOver = { holder, why: why ?? 'stale' };
      unlinkSync(aside);
    }
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
  }
  heldHere.add(path);
  let released = false;
  return {
    path,
    record,
    tookOver,
    release() {
      if (released) return;
      released = true;
      heldHere.delete(path);
      if (readRecord(path)?.token !== record.token) return; // taken over meanwhile: not ours
      try {
        unlinkSync(path);
      } catch {
        /* already gone */
      }
    },
  };
}
