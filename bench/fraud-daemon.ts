/**
 * The daemon side of bench/fraud.ts: `pbx-guardian run` in its own process (the build in dist/,
 * whatever stages it has), on the memory firewall backend (no root, no kernel set), logged in to
 * the CallTraffic PBX, with one webhook subscriber on 127.0.0.1 that counts the Guardian* events
 * it posts. Its CPU is read from /proc/<pid>/stat, so the traffic generator's own work is not in it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { buildConfig, PACKAGE_ROOT } from '../src/config/index.js';
import { procCpu } from './fail2ban/schedule.js';

export const GUARDIAN_EVENTS = ['GuardianFraud', 'GuardianAccountBlocked', 'GuardianAccountUnblocked', 'GuardianAccountAnomaly'];
const WEBHOOK_SECRET = 'bench-fraud-webhook-secret-0123456789';
const BODY_MAX = 1 << 20;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Counts the events the daemon's webhook dispatcher posts, by name. */
export class WebhookCounter {
  readonly counts = new Map<string, number>();
  /** GuardianFraud by its Policy and Action fields, e.g. "burst hangup,block" */
  readonly policies = new Map<string, number>();
  /** one Reason per policy, for the notes */
  readonly reasons = new Map<string, string>();
  private server: http.Server | null = null;
  port = 0;

  async listen(): Promise<number> {
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (b: Buffer) => {
        if (body.length < BODY_MAX) body += b.toString('utf8');
      });
      req.on('end', () => {
        try {
          const parsed = JSON.parse(body) as { event?: unknown; data?: Record<string, unknown> };
          const name = typeof parsed.event === 'string' ? parsed.event : '?';
          this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
          const policy = parsed.data?.Policy;
          if (name === 'GuardianFraud' && typeof policy === 'string') {
            const k = `${policy} ${String(parsed.data?.Action ?? '')}`;
            this.policies.set(k, (this.policies.get(k) ?? 0) + 1);
            if (!this.reasons.has(policy) && this.reasons.size < 20)
              this.reasons.set(policy, `${String(parsed.data?.Account ?? '')}: ${String(parsed.data?.Reason ?? '').slice(0, 160)}`);
          }
        } catch {
          this.counts.set('(not JSON)', (this.counts.get('(not JSON)') ?? 0) + 1);
        }
        res.writeHead(204).end();
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
    return this.port;
  }

  snapshot(): Map<string, number> {
    const m = new Map(this.counts);
    for (const [k, n] of this.policies) m.set(`GuardianFraud[${k}]`, n);
    return m;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}

export interface DaemonSetup {
  dir: string;
  amiPort: number;
  webhookPort: number;
  /** a `fraud:` section to add (from PBXG_BENCH_FRAUD_CONFIG); undefined: the build's defaults */
  fraud?: unknown;
}

/** The daemon's config, checked by this build's own loader first (a clear error, not a dead child). */
export function daemonConfig(s: DaemonSetup): Record<string, unknown> {
  const cfg: Record<string, unknown> = {
    stateDir: join(s.dir, 'state'),
    ami: { host: '127.0.0.1', port: s.amiPort, username: 'guardian', secret: 'bench-fraud' },
    firewall: { backend: 'memory' },
    metrics: { enabled: false },
    admin: { socket: join(s.dir, 'admin.sock') },
    webhooks: [{ name: 'bench', url: `http://127.0.0.1:${s.webhookPort}/hook`, events: GUARDIAN_EVENTS, secret: WEBHOOK_SECRET }],
  };
  if (s.fraud !== undefined) cfg.fraud = s.fraud;
  buildConfig(cfg); // throws ConfigError naming the key
  return cfg;
}

/** Does this build's config know a `fraud:` section? (main before issue 16 does not) */
export function buildHasFraudSection(): boolean {
  try {
    const c = buildConfig({ stateDir: '/nonexistent', ami: { enabled: false } }) as unknown as Record<string, unknown>;
    return typeof c.fraud === 'object' && c.fraud !== null;
  } catch {
    return false;
  }
}

/** `pbx-guardian run` as a child; stdout (JSON log lines) is drained, the last lines kept. */
export class DaemonProcess {
  readonly proc: ChildProcess;
  private tail: string[] = [];
  private stderr = '';
  /** log lines that name the fraud stage or a Guardian* event */
  fraudLogLines = 0;

  constructor(configPath: string) {
    const nodeArgs = (process.env.PBXG_BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const args = [...nodeArgs, join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js'), 'run', '--config', configPath];
    this.proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    this.proc.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (/fraud|Guardian(Fraud|Account)/i.test(line)) this.fraudLogLines++;
        this.tail.push(line.slice(0, 400));
        if (this.tail.length > 20) this.tail.shift();
      }
      if (buf.length > 1 << 20) buf = '';
    });
    this.proc.stderr!.on('data', (b: Buffer) => (this.stderr = (this.stderr + b.toString()).slice(-2000)));
  }

  static start(s: DaemonSetup): { daemon: DaemonProcess; config: Record<string, unknown> } {
    const config = daemonConfig(s);
    mkdirSync(s.dir, { recursive: true, mode: 0o700 });
    const path = join(s.dir, 'guardian.yaml');
    writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 }); // JSON is YAML
    return { daemon: new DaemonProcess(path), config };
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** CPU seconds (user + system) of the daemon process so far */
  cpuSeconds(): number {
    return procCpu(this.proc.pid!).own;
  }

  get lastOutput(): string {
    return [...this.tail.slice(-5), this.stderr].join('\n').slice(-1500);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000).then(() => this.proc.kill('SIGKILL'))]);
  }
}

/**
 * The `fraud:` section the daemon runs with: the file named by PBXG_BENCH_FRAUD_CONFIG (JSON) when
 * set; else, on a build with a fraud stage, only the PBX's country (the traffic dials national
 * numbers as 0 + area code, like the fixtures' German PBX: an operator sets it), if this build's
 * schema knows `fraud.dialingPlan.country`; else nothing (the build's defaults).
 */
export function fraudSection(hasFraud: boolean): { fraud: unknown; what: string } {
  const f = process.env.PBXG_BENCH_FRAUD_CONFIG;
  if (f) {
    const parsed = JSON.parse(readFileSync(f, 'utf8')) as { fraud?: unknown };
    return { fraud: parsed.fraud ?? parsed, what: `fraud: from ${f}` };
  }
  if (!hasFraud) return { fraud: undefined, what: 'no fraud: section' };
  const country = { dialingPlan: { country: BENCH_COUNTRY } };
  try {
    buildConfig({ stateDir: '/nonexistent', ami: { enabled: false }, fraud: country });
    return { fraud: country, what: `fraud: defaults + dialingPlan.country "${BENCH_COUNTRY}"` };
  } catch {
    return { fraud: undefined, what: 'fraud: defaults (this build has no fraud.dialingPlan.country)' };
  }
}

export const BENCH_COUNTRY = '49';
