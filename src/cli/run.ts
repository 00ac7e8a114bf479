import { loadConfig } from '../config/index.js';
import { flushFleetSets } from '../fleet/index.js';
import { flushFeedSets } from '../feeds/index.js';
import { createBackend } from '../firewall/index.js';
import { startDaemon, type Daemon } from '../main.js';
import pino from 'pino';

/**
 * `pbx-guardian run`: the daemon, until SIGTERM / SIGINT. SIGHUP reloads config and rules.
 * The signal handlers come first: the admin socket answers before the start has finished (the
 * firewall is set up after every listener is bound), and a SIGTERM in that window must stop the
 * daemon cleanly (lock released, sockets closed) rather than kill it.
 */
export async function runDaemon(configPath: string | undefined): Promise<number> {
  const config = loadConfig(configPath);
  let daemon: Daemon | null = null;
  let stopSignal: string | null = null;
  let stopped: Promise<number> | null = null;
  let wake: (() => void) | null = null;
  const stop = (d: Daemon, signal: string): Promise<number> => {
    stopped ??= (async () => {
      d.logger.info({ signal }, 'stopping');
      try {
        await d.stop();
        return 0;
      } catch (err) {
        d.logger.error({ err }, 'stop failed');
        return 4;
      }
    })();
    return stopped;
  };
  const onStop = (signal: string) => {
    stopSignal ??= signal;
    if (daemon) void stop(daemon, signal);
    wake?.();
  };
  const onTerm = () => onStop('SIGTERM');
  const onInt = () => onStop('SIGINT');
  const onHup = () => {
    daemon?.reload().catch((err: Error) => daemon?.logger.error({ err }, `reload refused, the running config stays: ${err.message}`));
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  try {
    const d = (daemon = await startDaemon({ config, configPath: configPath ?? undefined }));
    // a signal that came during the start: stop now that everything is open
    if (stopSignal === null) await new Promise<void>((resolve) => (wake = resolve));
    return await stop(d, stopSignal ?? 'SIGTERM');
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
  }
}

/** `pbx-guardian flush`: remove our table / sets without the daemon. */
export async function flushFirewall(configPath: string | undefined): Promise<void> {
  const config = loadConfig(configPath);
  const logger = pino({ level: 'warn' });
  const backend = await createBackend(config.firewall, logger);
  await backend.flush();
  await backend.close();
  // the fleet's table / sets too (a daemon that never followed a fleet has none: flushing is idempotent)
  await flushFleetSets(config.firewall, logger);
  // and each configured feed's
  await flushFeedSets(config.firewall, config.feeds, logger);
}
