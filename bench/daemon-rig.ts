/**
 * What the benchmarks that run the real `pbx-guardian run` (burst, soak-daemon) stand on: a
 * private network namespace with loopback up, an AmiSimulator replaying the recorded transcripts,
 * the kernel's set notifications (SetMonitor), a loop-lag probe preloaded into the daemon, and the
 * daemon's journal drained as systemd would. `PBXG_BENCH_DAEMON_NODE_ARGS` adds node flags (e.g.
 * `--cpu-prof --cpu-prof-dir=DIR`); `PBXG_BENCH_DAEMON_LOG=file` keeps its warnings and errors, and node's own output (`--trace-gc`).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { SetMonitor } from './set-monitor.js';
import { assertPrivateNetns } from './fail2ban/schedule.js';
import { PACKAGE_ROOT } from '../src/config/index.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';

export interface DaemonRig {
  dir: string;
  sim: AmiSimulator;
  mon: SetMonitor;
  lagFile: string;
  configPath: string;
}

/** The namespace's loopback, the simulator, the ban4 monitor and the daemon's config file. */
export async function daemonRig(prefix: string, config: (dir: string, amiPort: number) => Record<string, unknown>): Promise<DaemonRig> {
  assertPrivateNetns();
  await promisify(execFile)('/usr/sbin/ip', ['link', 'set', 'lo', 'up']);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const sim = new AmiSimulator({ fixturesDir: join(PACKAGE_ROOT, 'test', 'fixtures', 'ami'), username: 'guardian', secret: 'bench', loginFailDelayMs: 10 });
  await sim.listen();
  const mon = await SetMonitor.start('ban4');
  const lagFile = join(dir, 'lag.txt');
  writeFileSync(lagFile, '');
  const configPath = join(dir, 'guardian.yaml');
  const base = {
    stateDir: join(dir, 'state'),
    logLevel: 'info',
    ami: { host: '127.0.0.1', port: sim.port, username: 'guardian', secret: 'bench' },
    admin: { socket: join(dir, 'admin.sock') },
  };
  writeFileSync(configPath, JSON.stringify({ ...base, ...config(dir, sim.port) }), { mode: 0o600 });
  return { dir, sim, mon, lagFile, configPath };
}

/** `pbx-guardian run` with the loop-lag probe; its stdout (the JSON journal) goes to `journal`. */
export function spawnDaemon(rig: DaemonRig, journal: (chunk: Buffer) => void = () => undefined): ChildProcess {
  const nodeArgs = (process.env.PBXG_BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const probe = pathToFileURL(join(PACKAGE_ROOT, 'dist', 'bench', 'loop-lag-probe.js')).href;
  const args = [...nodeArgs, '--import', probe, join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js'), 'run', '--config', rig.configPath];
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PBXG_LOOP_LAG_FILE: rig.lagFile } });
  const keep = process.env.PBXG_BENCH_DAEMON_LOG ? createWriteStream(process.env.PBXG_BENCH_DAEMON_LOG) : null;
  p.stdout!.on('data', (b: Buffer) => {
    journal(b);
    // warn and above, and what is not the JSON log (node's own output: --trace-gc, warnings)
    if (keep)
      for (const line of b.toString('utf8').split('\n')) if (line && (!line.startsWith('{') || /"level":(40|50|60)/.test(line))) keep.write(line + '\n');
  });
  let err = '';
  p.stderr!.on('data', (b: Buffer) => {
    err = (err + b.toString()).slice(-2000);
    keep?.write(b);
  });
  p.on('exit', (code) => code && console.error(`daemon exited ${code}: ${err}`));
  return p;
}
