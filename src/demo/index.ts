import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildConfig, formatDuration, PACKAGE_ROOT } from '../config/index.js';
import { MemoryBackend } from '../firewall/index.js';
import { startDaemon } from '../main.js';
import { AmiSimulator } from './ami-simulator.js';
import { DEMO_SOURCES, loadTemplate, replayBytes } from './attack.js';

export interface DemoOptions {
  /** seconds; undefined = until Ctrl-C */
  durationSec?: number;
  metricsPort?: number;
  /** where output goes (tests capture it) */
  write?: (line: string) => void;
  fixturesDir?: string;
}

const TICK_MS = 100;

/**
 * `pbx-guardian demo`: the real daemon pipeline (AMI client → guard → store → enforcer, metrics,
 * admin socket) against an embedded AMI simulator that replays the real Asterisk transcripts as a
 * live attack. Enforcement uses the memory backend: nothing on this host is touched.
 */
export async function runDemo(opts: DemoOptions = {}): Promise<number> {
  const write = opts.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const fixturesDir = opts.fixturesDir ?? join(PACKAGE_ROOT, 'test', 'fixtures', 'ami');
  const stateDir = mkdtempSync(join(tmpdir(), 'pbx-guardian-demo-'));
  const simulator = new AmiSimulator({ fixturesDir, username: 'guardian', secret: 'demo-secret' });
  await simulator.listen();

  const makeConfig = (metricsPort: number) =>
    buildConfig({
      stateDir,
      logLevel: 'silent',
      ami: { host: '127.0.0.1', port: simulator.port, username: 'guardian', secret: 'demo-secret', pingIntervalMs: 5000 },
      guard: { allow: ['192.0.2.0/28'] },
      firewall: { backend: 'memory' },
      admin: { socket: join(stateDir, 'admin.sock') },
      metrics: { port: metricsPort },
    });
  const backend = new MemoryBackend();
  const logger = pino({ level: 'silent' });
  let daemon;
  try {
    daemon = await startDaemon({ config: makeConfig(opts.metricsPort ?? 9470), backend, logger });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    daemon = await startDaemon({ config: makeConfig(0), backend, logger });
  }

  const failures = new Map<string, number>();
  let allowPassed = 0;
  let events = 0;
  daemon.ami?.on('event', () => events++);
  daemon.guardian.on({
    failure: (_event, weight, key) => failures.set(key, (failures.get(key) ?? 0) + weight),
    ignored: (reason) => {
      if (reason === 'allow-listed') allowPassed++;
    },
    banned: ({ record }) => {
      const d = record.expiresAt === null ? null : (record.expiresAt - record.createdAt) / 1000;
      write(`  BAN    ${record.target.padEnd(22)} ${formatDuration(d).padEnd(6)} rule ${record.rule}: ${record.reason}`);
    },
  });

  write('pbx-guardian demo: the real pipeline against a simulated Asterisk replaying recorded attacks');
  write(`  AMI simulator 127.0.0.1:${simulator.port} · state ${stateDir} · enforcement: memory backend (host firewall untouched)`);
  write(`  metrics: ${daemon.metricsUrl}   admin socket: ${daemon.config.admin.socket}`);
  write(`  sources: ${DEMO_SOURCES.map((s) => `${s.address} (${s.role})`).join(', ')}`);
  write(opts.durationSec ? `  running for ${opts.durationSec} s (Ctrl-C ends it earlier)` : '  Ctrl-C ends it');
  write('');

  const templates = new Map(DEMO_SOURCES.map((s) => [s.transcript, loadTemplate(fixturesDir, s.transcript)]));
  const credit = new Map<string, number>();
  const ticker = setInterval(() => {
    if (daemon.ami?.state !== 'connected') return;
    for (const source of DEMO_SOURCES) {
      const c = (credit.get(source.address) ?? Math.random()) + (source.rate * TICK_MS) / 1000;
      const whole = Math.floor(c);
      credit.set(source.address, c - whole);
      for (let i = 0; i < whole; i++) simulator.broadcast(replayBytes(templates.get(source.transcript)!, source.address));
    }
  }, TICK_MS);

  let lastEvents = 0;
  let seconds = 0;
  const reporter = setInterval(() => {
    seconds++;
    const rate = events - lastEvents;
    lastEvents = events;
    const s = daemon.guardian.status();
    const top = [...failures.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([k, n]) => `${k}=${n}`)
      .join(' ');
    write(
      `  ${String(seconds).padStart(3)}s  ${String(rate).padStart(4)} ev/s  banned ${s.currentlyBanned}  allow-listed passed ${allowPassed}  failures: ${top || '-'}`,
    );
  }, 1000);

  await new Promise<void>((resolvePromise) => {
    const done = () => resolvePromise();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    if (opts.durationSec) setTimeout(done, opts.durationSec * 1000).unref();
  });
  clearInterval(ticker);
  clearInterval(reporter);

  const final = daemon.guardian.status();
  const kernel = await backend.list();
  write('');
  write(
    `done: ${events} AMI events, ${final.totalFailed} failures counted, ${final.currentlyBanned} bans (${kernel.length} in the enforcement set); allow-listed 192.0.2.10 never banned: ${!final.banned.some((b) => b.target === '192.0.2.10')}`,
  );
  await daemon.stop();
  await simulator.close();
  rmSync(stateDir, { recursive: true, force: true });
  return 0;
}
