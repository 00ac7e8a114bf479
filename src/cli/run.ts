import { loadConfig } from '../config/index.js';
import { createBackend } from '../firewall/index.js';
import { startDaemon } from '../main.js';
import pino from 'pino';

/** `pbx-guardian run`: the daemon, until SIGTERM / SIGINT. SIGHUP reloads config and rules. */
export async function runDaemon(configPath: string | undefined): Promise<number> {
  const config = loadConfig(configPath);
  const daemon = await startDaemon({ config, configPath: configPath ?? undefined });
  return new Promise<number>((resolvePromise) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      daemon.logger.info({ signal }, 'stopping');
      daemon.stop().then(
        () => resolvePromise(0),
        (err: Error) => {
          daemon.logger.error({ err }, 'stop failed');
          resolvePromise(4);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      daemon.reload().catch((err: Error) => daemon.logger.error({ err }, `reload refused, the running config stays: ${err.message}`));
    });
  });
}

/** `pbx-guardian flush`: remove our table / sets without the daemon. */
export async function flushFirewall(configPath: string | undefined): Promise<void> {
  const config = loadConfig(configPath);
  const backend = await createBackend(config.firewall, pino({ level: 'warn' }));
  await backend.flush();
  await backend.close();
}
