import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

/**
 * A real TCP AMI peer on 127.0.0.1 that behaves like Asterisk 20 as recorded in the fixtures
 * (test/fixtures/ami): the real greeting bytes, Login (accepted or refused after a delay, then
 * closed, as Asterisk does), Ping, Logoff, and every other action answered by replaying the
 * recorded response frames of `action-*.raw` with the request's ActionID. Used as the AMI peer in
 * tests and by the demo. Requests are parsed here independently of the client's parser.
 */
export interface AmiSimulatorOptions {
  /** directory holding greeting.raw and action-*.raw / action-*.request.raw */
  fixturesDir: string;
  /** default 0 (ephemeral); see .port after listen() */
  port?: number;
  username?: string;
  secret?: string;
  /** delay before refusing a wrong login, ms (Asterisk: 1000) */
  loginFailDelayMs?: number;
}

export interface SimulatedRequest {
  /** header pairs as received */
  headers: Array<[string, string]>;
  action: string;
  actionId: string | undefined;
  raw: string;
}

interface Recorded {
  request: Map<string, string>; // lower-case key -> value (ActionID excluded)
  response: string;
}

/** Which event classes a session receives: every class its user may read, or only these. */
type EventMask = 'all' | ReadonlySet<string>;

interface Session {
  sock: net.Socket;
  buf: string;
  loggedIn: boolean;
  events: EventMask;
}

/** Login's `Events:` as Asterisk reads it (manager.c strings_to_mask): on/yes/true → every
 *  class, off/no/false → none, else a comma list of classes (security, system, call, ...). */
export function parseEventMask(text: string | undefined): EventMask {
  const t = (text ?? 'on').trim().toLowerCase();
  if (t === '' || ['on', 'yes', 'true', 'y', 't', '1'].includes(t)) return 'all';
  if (['off', 'no', 'false', 'n', 'f', '0'].includes(t)) return new Set();
  return new Set(t.split(',').map((c) => c.trim()).filter(Boolean));
}

/** The frames of `text` a session with this mask receives: Asterisk sends an event only when
 *  every class of its category is in the mask ((send_events & category) == category). */
function framesFor(text: string, mask: ReadonlySet<string>): string {
  let out = '';
  for (const frame of text.split('\r\n\r\n')) {
    if (frame.trim() === '') continue;
    const m = /(?:^|\r\n)Privilege: ([^\r\n]*)/i.exec(frame);
    const classes = m ? m[1]!.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== 'all' && c !== '') : [];
    if (classes.every((c) => mask.has(c))) out += frame + '\r\n\r\n';
  }
  return out;
}

/** Events made ready for every logged-in session's mask (the filtering Asterisk does before it
 *  writes): see AmiSimulator.prepare. */
export class PreparedEvents {
  private readonly byMask = new Map<string, Buffer>();
  constructor(readonly bytes: Buffer) {}
  for(mask: EventMask): Buffer {
    if (mask === 'all') return this.bytes;
    const key = [...mask].sort().join(',');
    let b = this.byMask.get(key);
    if (!b) this.byMask.set(key, (b = Buffer.from(framesFor(this.bytes.toString('latin1'), mask), 'latin1')));
    return b;
  }
}

const crlf = (lines: string[]): string => lines.map((l) => l + '\r\n').join('') + '\r\n';

function parseRequest(raw: string): SimulatedRequest {
  const headers: Array<[string, string]> = [];
  for (const line of raw.split('\r\n')) {
    if (!line) continue;
    const c = line.indexOf(':');
    if (c < 0) headers.push([line, '']);
    else headers.push([line.slice(0, c), line.slice(c + 1).replace(/^ /, '')]);
  }
  const get = (k: string) => headers.find(([hk]) => hk.toLowerCase() === k)?.[1];
  return { headers, action: get('action') ?? '', actionId: get('actionid'), raw };
}

/** Rewrite (or remove, when the request had none) every `ActionID:` line of recorded frames. */
function withActionId(response: string, actionId: string | undefined): string {
  return response.replace(/^ActionID: [^\r\n]*\r\n/gim, actionId === undefined ? '' : `ActionID: ${actionId}\r\n`);
}

export class AmiSimulator {
  /** every request received, in order (all connections) */
  readonly requests: SimulatedRequest[] = [];
  /** bytes received from all clients */
  bytesReceived = 0;
  /** successful logins so far */
  logins = 0;
  /** action names (lower case) that get no answer at all, e.g. 'ping' for pong-timeout tests */
  readonly ignoreActions = new Set<string>();
  username: string;
  secret: string;
  loginFailDelayMs: number;

  private readonly fixturesDir: string;
  private readonly greeting: Buffer;
  private readonly recorded = new Map<string, Recorded[]>();
  private readonly sessions = new Set<Session>();
  private server: net.Server | null = null;
  private _port: number;

  constructor(opts: AmiSimulatorOptions) {
    this.fixturesDir = opts.fixturesDir;
    this._port = opts.port ?? 0;
    this.username = opts.username ?? 'guardian';
    this.secret = opts.secret ?? 'guardian-secret';
    this.loginFailDelayMs = opts.loginFailDelayMs ?? 1000;
    this.greeting = readFileSync(join(this.fixturesDir, 'greeting.raw'));
    this.loadRecorded();
  }

  /** the listening port (after listen()) */
  get port(): number {
    return this._port;
  }

  /** number of sessions logged in */
  get loggedIn(): number {
    let n = 0;
    for (const s of this.sessions) if (s.loggedIn) n++;
    return n;
  }

  /** number of connected sockets */
  get connections(): number {
    return this.sessions.size;
  }

  private loadRecorded(): void {
    for (const f of readdirSync(this.fixturesDir).sort()) {
      const m = /^(action-.+)\.request\.raw$/.exec(f);
      if (!m) continue;
      const reqText = readFileSync(join(this.fixturesDir, f), 'utf8');
      const reqs = reqText.split('\r\n\r\n').filter((r) => r.trim());
      if (reqs.length !== 1) continue; // multi-action scenarios are not replayable one by one
      const req = parseRequest(reqs[0]!);
      let response: string;
      try {
        response = readFileSync(join(this.fixturesDir, `${m[1]}.raw`), 'utf8');
      } catch {
        continue;
      }
      const fields = new Map<string, string>();
      for (const [k, v] of req.headers) if (k.toLowerCase() !== 'actionid') fields.set(k.toLowerCase(), v);
      const key = req.action.toLowerCase();
      const list = this.recorded.get(key) ?? [];
      list.push({ request: fields, response });
      this.recorded.set(key, list);
    }
  }

  async listen(): Promise<number> {
    if (this.server) return this._port;
    const server = net.createServer((sock) => this.onConnection(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this._port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this._port = (server.address() as net.AddressInfo).port;
    return this._port;
  }

  private onConnection(sock: net.Socket): void {
    const s: Session = { sock, buf: '', loggedIn: false, events: 'all' };
    this.sessions.add(s);
    sock.setNoDelay(true);
    sock.on('error', () => {});
    sock.on('close', () => this.sessions.delete(s));
    sock.write(this.greeting);
    sock.on('data', (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      s.buf += chunk.toString('utf8');
      let i: number;
      while ((i = s.buf.indexOf('\r\n\r\n')) >= 0) {
        const raw = s.buf.slice(0, i);
        s.buf = s.buf.slice(i + 4);
        if (raw.trim()) this.onRequest(s, parseRequest(raw));
      }
      // Asterisk caps lines at 1024 bytes and actions at 128 headers; a peer that never ends its
      // action is dropped rather than buffered without bound
      if (s.buf.length > 65536) sock.destroy();
    });
  }

  private write(s: Session, text: string): void {
    if (!s.sock.destroyed) s.sock.write(text);
  }

  private onRequest(s: Session, req: SimulatedRequest): void {
    this.requests.push(req);
    const action = req.action.toLowerCase();
    if (this.ignoreActions.has(action)) return;
    const id = req.actionId;
    const idLine = id === undefined ? [] : [`ActionID: ${id}`];
    const get = (k: string) => req.headers.find(([hk]) => hk.toLowerCase() === k)?.[1];
    if (action === 'login') {
      if (get('username') === this.username && get('secret') === this.secret) {
        s.loggedIn = true;
        s.events = parseEventMask(get('events'));
        this.logins++;
        this.write(s, crlf(['Response: Success', ...idLine, 'Message: Authentication accepted']));
        if (s.events === 'all' || s.events.has('system')) {
          this.write(s, crlf(['Event: FullyBooted', 'Privilege: system,all', 'Uptime: 8', 'LastReload: 8', 'Status: Fully Booted']));
        }
      } else {
        setTimeout(() => {
          this.write(s, crlf(['Response: Error', ...idLine, 'Message: Authentication failed']));
          s.sock.end();
        }, this.loginFailDelayMs);
      }
      return;
    }
    if (!s.loggedIn && action !== 'challenge') {
      this.write(s, crlf(['Response: Error', ...idLine, 'Message: Permission denied']));
      return;
    }
    if (action === 'ping') {
      const now = Date.now();
      const ts = `${Math.floor(now / 1000)}.${String((now % 1000) * 1000).padStart(6, '0')}`;
      this.write(s, crlf(['Response: Success', ...idLine, 'Ping: Pong', `Timestamp: ${ts}`]));
      return;
    }
    if (action === 'logoff') {
      this.write(s, crlf(['Response: Goodbye', ...idLine, 'Message: Thanks for all the fish.']));
      s.sock.end();
      return;
    }
    const candidates = this.recorded.get(action);
    if (!candidates || candidates.length === 0) {
      this.write(
        s,
        crlf(['Response: Error', ...idLine, `Message: Invalid/unknown command: ${req.action}. Use Action: ListCommands to show available commands.`]),
      );
      return;
    }
    const fields = new Map<string, string>();
    for (const [k, v] of req.headers) if (k.toLowerCase() !== 'actionid') fields.set(k.toLowerCase(), v);
    const exact = candidates.find(
      (c) => c.request.size === fields.size && [...c.request].every(([k, v]) => fields.get(k) === v),
    );
    this.write(s, withActionId((exact ?? candidates[0]!).response, id));
  }

  /** Event frames filtered now for each logged-in session's `Events:` mask, to broadcast later
   *  (a benchmark prepares before its clock starts: Asterisk filters as it generates). */
  prepare(bytes: Buffer | string): PreparedEvents {
    const prepared = new PreparedEvents(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes);
    for (const s of this.sessions) if (s.loggedIn) prepared.for(s.events);
    return prepared;
  }

  /** Write event frames (e.g. a whole transcript) to every logged-in client, each receiving the
   *  classes its login's `Events:` asked for. */
  broadcast(events: Buffer | string | PreparedEvents): void {
    const prepared = events instanceof PreparedEvents ? events : this.prepare(events);
    for (const s of this.sessions) {
      if (!s.loggedIn || (s.events !== 'all' && s.events.size === 0)) continue;
      const bytes = prepared.for(s.events);
      if (bytes.length > 0) s.sock.write(bytes);
    }
  }

  /** Broadcast a fixture file from fixturesDir. */
  replayFile(name: string): void {
    this.broadcast(readFileSync(join(this.fixturesDir, name)));
  }

  /** Fault injection: destroy every connection and stop listening (the port is kept for restart()). */
  kill(): void {
    for (const s of this.sessions) s.sock.destroy();
    this.sessions.clear();
    if (this.server) {
      this.server.close();
      this.server = null;
    }
  }

  /** Listen again on the same port after kill(). */
  async restart(): Promise<number> {
    return this.listen();
  }

  /** Close every connection and the listener. */
  async close(): Promise<void> {
    const server = this.server;
    for (const s of this.sessions) s.sock.destroy();
    this.sessions.clear();
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
