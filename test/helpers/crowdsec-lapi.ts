/**
 * A real CrowdSec Local API on loopback for the fleet tests: its own temporary config and SQLite
 * database (`crowdsec -c CFG -no-cs`: the LAPI alone, no log reading), a machine and a bouncer
 * registered with cscli, a `cscli` machine for `cscli decisions …`. `skipReason()` says why a test
 * cannot run (crowdsec not installed: .ci/run installs it).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function skipReason(): string | false {
  for (const bin of ['/usr/bin/crowdsec', '/usr/bin/cscli'])
    if (!fs.existsSync(bin)) return `${bin} is not installed (apt-get install crowdsec; .ci/run does it)`;
  return false;
}

export interface Lapi {
  url: string;
  machine: { login: string; password: string };
  bouncer: { apiKey: string };
  /** registers one more bouncer and returns its key (each bouncer needs its own: the LAPI keeps one stream position per bouncer) */
  addBouncer(name: string): string;
  /** runs cscli with this LAPI's config; returns stdout */
  cscli(args: string[]): string;
  /** cscli decisions list -a -o json, as parsed */
  decisions(): Array<{ decisions: Array<{ value: string; scope: string; scenario: string; duration: string; origin: string }> }>;
  stop(): Promise<void>;
  /** start again after stop() (same database) */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** `host`: the address it listens on (default 127.0.0.1; a veth address in the two-namespace test) */
export async function startLapi(port: number, host = '127.0.0.1'): Promise<Lapi> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-lapi-'));
  const cfg = path.join(dir, 'config.yaml');
  fs.mkdirSync(path.join(dir, 'data'));
  const url = `http://${host}:${port}`;
  fs.writeFileSync(
    cfg,
    [
      'common: { daemonize: false, log_media: file, log_level: info, log_dir: ' + dir + '/, working_dir: . }',
      'config_paths:',
      `  config_dir: ${dir}/`,
      `  data_dir: ${dir}/data/`,
      '  simulation_path: /etc/crowdsec/simulation.yaml',
      '  hub_dir: /var/lib/crowdsec/hub/',
      '  index_path: /var/lib/crowdsec/hub/.index.json',
      `  notification_dir: ${dir}/notifications/`,
      '  plugin_dir: /usr/lib/crowdsec/plugins/',
      'db_config:',
      '  type: sqlite',
      `  db_path: ${dir}/data/crowdsec.db`,
      'plugin_config: { user: nobody, group: nogroup }',
      'api:',
      '  client:',
      `    credentials_path: ${dir}/local_api_credentials.yaml`,
      '  server:',
      `    listen_uri: ${host}:${port}`,
      '    profiles_path: /etc/crowdsec/profiles.yaml',
      '    trusted_ips:',
      '      - 127.0.0.1',
      '      - "::1"',
      'prometheus: { enabled: false }',
      '',
    ].join('\n'),
  );
  const cscli = (args: string[]) => execFileSync('/usr/bin/cscli', ['-c', cfg, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const machine = { login: 'pbx1', password: 'secretpw123' };
  const bouncer = { apiKey: 'test-bouncer-key-12345678' };
  cscli(['machines', 'add', machine.login, '--password', machine.password, '-f', '/dev/null']);
  cscli(['machines', 'add', 'cscli', '--auto', '-f', path.join(dir, 'local_api_credentials.yaml'), '--url', url]);
  cscli(['bouncers', 'add', 'pbxg-test', '-k', bouncer.apiKey]);
  let child: ChildProcess | null = null;
  const start = async () => {
    // its stderr holds what the log file does not (the LAPI's login errors go through Go's log package)
    const stderr = fs.openSync(path.join(dir, 'stderr.log'), 'a');
    child = spawn('/usr/bin/crowdsec', ['-c', cfg, '-no-cs'], { stdio: ['ignore', 'ignore', stderr] });
    fs.closeSync(stderr);
    let last = '';
    for (let i = 0; i < 100; i++) {
      try {
        const r = await fetch(`${url}/v1/decisions/stream?startup=false`, { headers: { 'x-api-key': 'none' }, signal: AbortSignal.timeout(2000) });
        await r.body?.cancel();
        return;
      } catch (e) {
        last = String((e as { cause?: Error }).cause?.message ?? (e as Error).message);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const c = child as ChildProcess | null;
    c?.kill('SIGKILL');
    throw new Error(`crowdsec LAPI did not answer on ${url} within 10 s (last: ${last}; see ${dir}/crowdsec.log)`);
  };
  const stop = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  };
  await start();
  return {
    url,
    machine,
    bouncer,
    cscli,
    addBouncer(name: string) {
      const key = `${name}-key-${Math.random().toString(36).slice(2, 14)}`;
      cscli(['bouncers', 'add', name, '-k', key]);
      return key;
    },
    decisions: () => JSON.parse(cscli(['decisions', 'list', '-a', '-o', 'json'])) ?? [],
    stop,
    start,
    async close() {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
