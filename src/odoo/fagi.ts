/**
 * FastAGI server for Asterisk Plus (default 127.0.0.1:44574).
 * Reads the AGI environment (`agi_*: value` lines, then a blank line), finds the FAGI handlers
 * of the events map whose name is the AGI script (agi://host:port/<name>), calls
 * model.method(request) in Odoo (asterisk_plus.user.fagi_request), then sends each returned AGI
 * command to Asterisk and reads its `200 result=...` answer. The pseudo-command
 * `PJSIP_DIAL_CONTACTS ep1,ep2 <dial options>` is expanded into the endpoints' contacts and a Dial.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { OdooMetrics } from './metrics.js';
import type { OdooCaller } from './rpc.js';
import type { EventHandler } from './forwarder.js';
import type { DialplanPolicy } from '../ami/dialplan-policy.js';
import { judgeAgiCommand } from '../ami/agi-policy.js';
import { BoundedQueue } from '../common/bounded-queue.js';

export const FAGI_MAX_LINE = 8192;
export const FAGI_MAX_ENV_LINES = 200;
export const FAGI_MAX_COMMANDS = 100;
/** lines received and not yet read: Asterisk sends its environment, then one answer per command */
export const FAGI_MAX_QUEUED_LINES = 2 * FAGI_MAX_ENV_LINES;
const ENV_TIMEOUT_MS = 5000;
const CMD_RE = /^[A-Za-z][A-Za-z ]{0,40}/;

export interface FagiOptions {
  host: string;
  port: number;
  rpc: OdooCaller;
  handlers: (script: string) => EventHandler[];
  /** every AGI command is judged by it before it is written (src/ami/agi-policy.ts) */
  actionPolicy: DialplanPolicy;
  log: Logger;
  metrics?: OdooMetrics | null;
  systemName?: string;
  maxConnections?: number;
}

class LineReader {
  private buf = '';
  private readonly lines = new BoundedQueue<string>(FAGI_MAX_QUEUED_LINES);
  private waiters: Array<{ resolve: (l: string | null) => void; reject: (e: Error) => void }> = [];
  private ended = false;
  private error: Error | null = null;

  constructor(sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).replace(/\r$/, '');
        this.buf = this.buf.slice(i + 1);
        if (!this.push(line)) {
          this.fail(new Error(`more than ${FAGI_MAX_QUEUED_LINES} AGI lines received and not read`));
          sock.destroy();
          return;
        }
      }
      if (this.buf.length > FAGI_MAX_LINE) {
        this.fail(new Error(`AGI line longer than ${FAGI_MAX_LINE} bytes`));
        sock.destroy();
      }
    });
    sock.on('end', () => {
      this.ended = true;
      this.flush();
    });
    sock.on('close', () => {
      this.ended = true;
      this.flush();
    });
    sock.on('error', (e) => this.fail(e));
  }
  /** false when the line finds the queue full */
  private push(line: string): boolean {
    const w = this.waiters.shift();
    if (w) w.resolve(line);
    else return this.lines.push(line) === 'queued';
    return true;
  }
  private fail(e: Error): void {
    this.error = e;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
  private flush(): void {
    if (this.lines.length === 0) for (const w of this.waiters.splice(0)) w.resolve(null);
  }
  /** next line, or null at end of stream */
  read(timeoutMs?: number): Promise<string | null> {
    if (this.error) return Promise.reject(this.error);
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      let t: NodeJS.Timeout | undefined;
      const w = {
        resolve: (x: string | null) => {
          if (t) clearTimeout(t);
          resolve(x);
        },
        reject: (e: Error) => {
          if (t) clearTimeout(t);
          reject(e);
        },
      };
      if (timeoutMs)
        t = setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error('AGI read timed out'));
        }, timeoutMs);
      this.waiters.push(w);
    });
  }
}

/** Script name from agi_network_script or agi_request (agi://host:port/route_did?x=y). */
export function fagiScript(env: Record<string, string>): string {
  let s = env.agi_network_script ?? '';
  if (!s && env.agi_request) {
    const m = /^agi:\/\/[^/]*\/([^?]*)/.exec(env.agi_request);
    s = m ? m[1]! : '';
  }
  return s.split('?')[0]!.replace(/^\/+/, '');
}

function toCommands(result: unknown): string[] {
  if (result === false || result === null || result === undefined) return [];
  const raw = Array.isArray(result) ? result : [result];
  const out: string[] = [];
  for (const r of raw) {
    if (typeof r !== 'string') continue;
    for (const line of r.split(/\r?\n/)) if (line.trim()) out.push(line.trim());
  }
  return out;
}

export class FagiServer {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  readonly counters = { requests: 0, commands: 0, errors: 0 };

  constructor(private readonly opts: FagiOptions) {}

  async start(): Promise<{ host: string; port: number }> {
    const srv = net.createServer((sock) => void this.handle(sock));
    srv.maxConnections = this.opts.maxConnections ?? 256;
    this.server = srv;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(this.opts.port, this.opts.host, () => {
        srv.off('error', reject);
        resolve();
      });
    });
    const a = srv.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = null;
  }

  private async handle(sock: net.Socket): Promise<void> {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => undefined);
    const reader = new LineReader(sock);
    const log = this.opts.log;
    this.counters.requests++;
    let outcome = 'ok';
    try {
      const env: Record<string, string> = {};
      for (let n = 0; ; n++) {
        if (n > FAGI_MAX_ENV_LINES) throw new Error(`more than ${FAGI_MAX_ENV_LINES} AGI environment lines`);
        const line = await reader.read(ENV_TIMEOUT_MS);
        if (line === null) throw new Error('connection closed while reading the AGI environment');
        if (line === '') break;
        const i = line.indexOf(':');
        if (i <= 0) continue;
        const k = line.slice(0, i).trim();
        if (!/^agi_[a-z0-9_]{1,60}$/i.test(k)) continue;
        env[k] = line.slice(i + 1).trim();
      }
      const script = fagiScript(env);
      const handlers = this.opts.handlers(script);
      if (handlers.length === 0) {
        outcome = 'no_handler';
        log.debug({ script }, 'FastAGI request with no FAGI handler in the events map');
        return;
      }
      const request: Record<string, string> = { ...env };
      if (this.opts.systemName) request.SystemName = this.opts.systemName;
      for (const h of handlers) {
        const res = await this.opts.rpc.executeKw(h.model, h.method, [request], {}, { retries: 1, paramNames: ['request'], timeoutMs: 10_000 });
        const cmds = toCommands(res);
        if (cmds.length > FAGI_MAX_COMMANDS) throw new Error(`Odoo returned more than ${FAGI_MAX_COMMANDS} AGI commands`);
        for (const c of cmds) {
          if (!(await this.runCommand(sock, reader, c))) return;
        }
      }
    } catch (e) {
      outcome = 'error';
      this.counters.errors++;
      log.warn({ err: (e as Error).message }, 'FastAGI request failed; the call continues in the dialplan');
    } finally {
      this.opts.metrics?.fagiRequests.inc({ outcome });
      if (!sock.destroyed) sock.end();
    }
  }

  /** send one AGI command and read its answer; false when the channel hung up */
  private async send(sock: net.Socket, reader: LineReader, cmd: string): Promise<{ code: number; result: string; data: string } | null> {
    if (/[\r\n\0]/.test(cmd) || cmd.length > FAGI_MAX_LINE) throw new Error('refused an AGI command with CR/LF/NUL or over-long');
    if (!CMD_RE.test(cmd)) throw new Error(`not an AGI command: ${cmd.slice(0, 60)}`);
    judgeAgiCommand(cmd, this.opts.actionPolicy);
    this.counters.commands++;
    sock.write(cmd + '\n');
    for (;;) {
      const line = await reader.read();
      if (line === null || line === 'HANGUP') return null;
      let m = /^(\d{3})-/.exec(line);
      if (m) {
        // multi-line answer (520-...) until "520 End of proper usage."
        for (;;) {
          const l = await reader.read();
          if (l === null) return null;
          if (l.startsWith(`${m[1]} `)) break;
        }
        return { code: Number(m[1]), result: '', data: '' };
      }
      m = /^(\d{3})\s*(?:result=(-?\S*))?\s*(?:\((.*)\))?/.exec(line);
      if (m) return { code: Number(m[1]), result: m[2] ?? '', data: m[3] ?? '' };
      // unexpected noise: keep reading (bounded by the line reader)
    }
  }

  private async runCommand(sock: net.Socket, reader: LineReader, cmd: string): Promise<boolean> {
    const m = /^PJSIP_DIAL_CONTACTS\s+(\S+)(?:\s+(.*))?$/i.exec(cmd);
    if (!m) return (await this.send(sock, reader, cmd)) !== null;
    // the module lists an endpoint once per channel of the user ("101,101" for a user with two
    // channels on one endpoint): each endpoint is asked once, each contact dialled once
    const endpoints = [
      ...new Set(
        m[1]!
          .split(/[,&]/)
          .map((e) => e.trim())
          .filter((e) => /^[A-Za-z0-9_.@+-]{1,80}$/.test(e)),
      ),
    ];
    const dialOpts = (m[2] ?? '').trim();
    const contacts = new Set<string>();
    for (const ep of endpoints.slice(0, 50)) {
      const r = await this.send(sock, reader, `GET FULL VARIABLE \${PJSIP_DIAL_CONTACTS(${ep})}`);
      if (r === null) return false;
      if (r.code === 200 && r.result === '1' && r.data) for (const c of r.data.split('&')) if (c.trim()) contacts.add(c.trim());
    }
    if (contacts.size === 0) {
      this.opts.log.info({ endpoints }, 'PJSIP_DIAL_CONTACTS: no registered contact; not dialing');
      const r = await this.send(sock, reader, 'SET VARIABLE DIALSTATUS CHANUNAVAIL');
      return r !== null;
    }
    const dialArgs = [[...contacts].join('&'), ...(dialOpts ? dialOpts.split(/\s*,\s*/) : [])].join(',');
    const r = await this.send(sock, reader, `EXEC Dial ${dialArgs.includes(' ') ? `"${dialArgs}"` : dialArgs}`);
    return r !== null;
  }
}
