import { callDaemon, DaemonUnreachableError } from '../admin/client.js';

/**
 * `pbx-guardian flush`: asks the running daemon to stop enforcing on purpose (it removes its own
 * table / sets, keeps deciding and storing bans, and says "paused" in its health). When no daemon
 * answers on the socket, removes the table / sets directly, as before.
 */
export async function flushCommand(socketPath: string, configPath: string | undefined): Promise<string> {
  try {
    const r = await callDaemon<{ reason: string; storeActive: number }>(socketPath, 'POST', '/firewall/flush');
    return [
      `the daemon stopped enforcing (${r.reason}): its firewall table / sets are removed and nothing is banned in the kernel.`,
      `Detection goes on and new bans are stored (${r.storeActive} active now); the watchdog leaves the firewall alone until`,
      'pbx-guardian resume (or a restart of the daemon) puts every stored ban back.',
    ].join('\n');
  } catch (err) {
    if (!(err instanceof DaemonUnreachableError)) throw err;
  }
  const { flushFirewall } = await import('./run.js');
  await flushFirewall(configPath);
  return `no daemon answered on ${socketPath}: removed the pbx-guardian firewall table / sets directly (the stored bans come back at the next start)`;
}

/** `pbx-guardian resume`: the daemon re-creates its table / sets and re-fills them from the store. */
export async function resumeCommand(socketPath: string): Promise<string> {
  const r = await callDaemon<{ resumed: boolean; restored: number }>(socketPath, 'POST', '/firewall/resume');
  return r.resumed
    ? `enforcing again: ${r.restored} stored bans are back in the kernel`
    : 'not paused: nothing to resume (pbx-guardian status shows the firewall state)';
}
