import { StartupError, type StartupCode } from '../common/errors.js';
import { DaemonError } from '../admin/client.js';

/** Exit codes a script (and systemd's RestartPreventExitStatus=) can rely on; documented in HELP,
 *  README and docs/startup.md. `run` refusing to start: usage (config), alreadyRunning, stateDir, listen. */
export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3, failed: 4, unhealthy: 5, alreadyRunning: 10, stateDir: 11, listen: 12 } as const;

/** The exit status for each startup code; a code not here (a defect found at start) is `failed`. */
const EXIT_BY_CODE: Readonly<Partial<Record<StartupCode, number>>> = {
  USAGE: EXIT.usage,
  CONFIG_INVALID: EXIT.usage,
  RULES_INVALID: EXIT.usage,
  ALREADY_RUNNING: EXIT.alreadyRunning,
  STATE_DIR_UNUSABLE: EXIT.stateDir,
  LISTEN_FAILED: EXIT.listen,
  DAEMON_UNREACHABLE: EXIT.unreachable,
};

/** The exit status for the error a command failed with: by its code, never by its class name. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof StartupError) return EXIT_BY_CODE[err.code] ?? EXIT.failed;
  // node's parseArgs: an unknown option, a missing value
  if ((err as { code?: unknown } | null)?.code?.toString().startsWith('ERR_PARSE_ARGS')) return EXIT.usage;
  // the daemon refused (4xx, its own code in the message): the request was wrong, not the CLI
  if (err instanceof DaemonError && err.status < 500) return EXIT.refused;
  return EXIT.failed;
}
