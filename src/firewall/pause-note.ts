import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Enforcer } from './enforcer.js';

/**
 * A note in the state directory that enforcement was paused on purpose (pbx-guardian flush). A
 * pause lives in the running daemon only: a restart enforces again (a reboot or a crash must never
 * leave the host unprotected by surprise), and the note lets that start say so in its log.
 */
const FILE = 'firewall-paused.json';
const MAX_BYTES = 4096;

/** best effort: a read-only state directory loses only the log line at the next start */
export function notePaused(stateDir: string, reason: string): void {
  try {
    writeFileSync(join(stateDir, FILE), JSON.stringify({ reason }) + '\n', { mode: 0o600 });
  } catch {
    /* see above */
  }
}

export function clearPausedNote(stateDir: string): void {
  rmSync(join(stateDir, FILE), { force: true });
}

/** The reason of a pause the previous run ended in (and removes the note), or null. */
export function takePausedNote(stateDir: string): string | null {
  let text: string;
  try {
    text = readFileSync(join(stateDir, FILE), 'utf8').slice(0, MAX_BYTES);
  } catch {
    return null;
  }
  clearPausedNote(stateDir);
  try {
    const reason = (JSON.parse(text) as { reason?: unknown }).reason;
    return typeof reason === 'string' ? reason.slice(0, 200) : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Another set group that pauses with the local one (the fleet's sets). */
export interface Pausable {
  pause(reason: string): Promise<void>;
  resume(): Promise<void>;
}

/** pbx-guardian flush / resume of the running daemon (the admin routes): the enforcer's pause and
 *  resume, with the note kept in the state directory; `others` (the fleet's sets) follow. */
export function pauseControl(enforcer: Enforcer, stateDir: string, others: () => Pausable[] = () => []) {
  return {
    async pause(): Promise<{ reason: string; storeActive: number }> {
      const reason = `pbx-guardian flush at ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`;
      await enforcer.pause(reason);
      for (const o of others()) await o.pause(reason);
      notePaused(stateDir, reason);
      return { reason, storeActive: enforcer.health().storeActive };
    },
    async resume(): Promise<{ resumed: boolean; restored: number }> {
      const r = await enforcer.resume();
      for (const o of others()) await o.resume();
      clearPausedNote(stateDir);
      return r;
    },
  };
}
