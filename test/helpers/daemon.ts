/**
 * A real daemon (startDaemon) on a temporary state directory, with an AmiSimulator as its AMI peer
 * and, optionally, a FakeOdoo as its Odoo. Logs are kept in memory (JSON lines) so tests can assert
 * on what a person would read. Used by the fault tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { buildConfig, type GuardianConfig } from '../../src/config/index.js';
import { MemoryBackend, type FirewallBackend } from '../../src/firewall/index.js';
import { startDaemon, type Daemon } from '../../src/main.js';
import { AmiSimulator } from '../../src/demo/ami-simulator.js';
import { loadTemplate, replayBytes } from '../../src/demo/attack.js';
import { FakeOdoo } from './fake-odoo.js';
import { fixturePath } from './fixtures.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every 10 ms; throws naming `what` after timeoutMs. Bounded. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<number> {
  const t0 = Date.now();
  const end = t0 + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return Date.now() - t0;
    await sleep(10);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Captures pino output as parsed JSON records. */
export class LogCapture {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly logger: Logger;
  constructor(level = 'info') {
    const sink = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        for (const l of chunk.toString('utf8').split('\n')) {
          if (!l.trim()) continue;
          try {
            this.lines.push(JSON.parse(l) as Record<string, unknown>);
          } catch {
            this.lines.push({ msg: l });
          }
        }
        cb();
      },
    });
    this.logger = pino({ level }, sink);
  }
  /** records at level >= 50 (error) */
  errors(): Array<Record<string, unknown>> {
    return this.lines.filter((l) => typeof l.level === 'number' && l.level >= 50);
  }
  messages(): string[] {
    return this.lines.map((l) => String(l.msg ?? ''));
  }
}

/** Bytes of one replay of a recorded attack transcript, rewritten to come from `address`. */
export function attackBytes(address: string, transcript = 'security-sip-register-wrong-password.raw'): string {
  return replayBytes(loadTemplate(fixturePath('ami'), transcript), address);
}

export interface TestDaemonOptions {
  /** config overrides (merged over the test defaults with buildConfig) */
  config?: Record<string, unknown>;
  /** start a FakeOdoo and enable the bridge (listen off) */
  odoo?: FakeOdoo | boolean;
  backend?: FirewallBackend;
  /** false: no AmiSimulator, ami.enabled false */
  ami?: boolean;
  /** the simulated AMI user's manager.conf `read` (default all) */
  amiRead?: string;
  logLevel?: string;
  /** bind the admin socket (default off), e.g. for pbx-guardian status */
  adminSocket?: boolean;
}

export interface TestDaemon {
  daemon: Daemon;
  sim: AmiSimulator | null;
  odoo: FakeOdoo | null;
  backend: FirewallBackend;
  log: LogCapture;
  dir: string;
  config: GuardianConfig;
  /** stop the daemon, the simulator, Odoo, remove the temp dir (idempotent) */
  close(): Promise<void>;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)) {
      out[k] = deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>);
    } else out[k] = v;
  }
  return out;
}

export async function startTestDaemon(opts: TestDaemonOptions = {}): Promise<TestDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-fault-'));
  const useAmi = opts.ami !== false;
  const sim = useAmi
    ? new AmiSimulator({ fixturesDir: fixturePath('ami'), username: 'guardian', secret: 's3cret', read: opts.amiRead, loginFailDelayMs: 10 })
    : null;
  if (sim) await sim.listen();
  let odoo: FakeOdoo | null = null;
  if (opts.odoo) {
    odoo = opts.odoo instanceof FakeOdoo ? opts.odoo : new FakeOdoo();
    if (!odoo.url) await odoo.start();
  }
  const base: Record<string, unknown> = {
    stateDir: join(dir, 'state'),
    logLevel: 'silent',
    ami: sim ? { port: sim.port, secret: 's3cret' } : { enabled: false },
    firewall: { backend: 'memory' },
    admin: { socket: join(dir, 'admin.sock') },
    metrics: { enabled: false },
  };
  if (odoo) {
    base.odoo = {
      enabled: true,
      url: odoo.url,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      agentToken: 'tok',
      listen: { enabled: false },
      rpcRetries: 0,
      systemName: 'pbx-test',
    };
  }
  const config = buildConfig(deepMerge(base, opts.config ?? {}));
  const log = new LogCapture(opts.logLevel ?? 'info');
  const backend = opts.backend ?? new MemoryBackend();
  let daemon: Daemon;
  try {
    daemon = await startDaemon({ config, backend, logger: log.logger, adminSocket: opts.adminSocket ?? false });
  } catch (e) {
    await sim?.close();
    await odoo?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let closed = false;
  return {
    daemon,
    sim,
    odoo,
    backend,
    log,
    dir,
    config,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await daemon.stop();
      } finally {
        await sim?.close();
        await odoo?.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
