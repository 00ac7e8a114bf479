import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import {
  intersectMasks,
  maskHas,
  parseEventMask,
  parseReadPerms,
  showUserOutput,
  successfulAuthFrame,
  type EventMask,
  type SimulatedUser,
} from './ami-users.js';

export { parseEventMask, parseReadPerms, type SimulatedUser, type EventMask } from './ami-users.js';

/**
 * A real TCP AMI peer on 127.0.0.1 that behaves like Asterisk 20 as recorded in the fixtures
 * (test/fixtures/ami): the real greeting bytes, Login (accepted or refused after a delay, then
 * closed, as Asterisk does), Ping, Logoff, and every other action answered by replaying the
 * recorded response frames of `action-*.raw` with the request's ActionID. Used as the AMI peer in
 * tests and by the demo. Requests are parsed here independently of the client's parser.
 * manager.conf users and their `read` permissions are honoured as manager.c does (ami-users.ts):
 * a session receives its login mask ∩ its user's read permissions at login, and every login is
 * reported as SuccessfulAuth to each session that may read security, the new one included.
 */
export interface AmiSimulatorOptions {
  /** directory holding greeting.raw and action-*.raw / action-*.request.raw */
  fixturesDir: string;
  /** default 0 (ephemeral); see .port after listen() */
  port?: number;
  /** the primary user (default 'guardian' / 'guardian-secret', read = all) */
  username?: string;
  secret?: string;
  /** the primary user's manager.conf `read` (default 'all') */
  read?: string;
  /** manager.conf users besides (or including) the primary one */
  users?: Record<string, SimulatedUser>;
  /** delay before refusing a wrong login, ms (Asterisk: 1000) */
  loginFailDelayMs?: number;
  /** the greeting bytes (default: fixturesDir/greeting.raw) */
  greeting?: Buffer;
  /** answers an action of a logged-in session before the recorded replies (true: answered) */
  onAction?: (req: SimulatedRequest, reply: (text: string) => void) => boolean;
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

interface Session {
  sock: net.Socket;
  buf: string;
  loggedIn: boolean;
  /** the user logged in as */
  user: string;
  /** send_events: the login's Events mask ∩ the user's read permissions at login */
  events: EventMask;
  /** writeperm copied at login (undefined: not configured, every action allowed) */
  write?: EventMask;
}

/** The frames of `text` a session with this mask receives: Asterisk sends an event only when
 *  every class of its category is in the mask ((send_events & category) == category). */
function framesFor(text: string, mask: ReadonlySet<string>): string {
  let out = '';
  for (const frame of text.split('\r\n\r\n')) {
    if (frame.trim() === '') continue;
    const m = /(?:^|\r\n)Privilege: ([^\r\n]*)/i.exec(frame);
    const classes = m
      ? m[1]!
          .split(',')
          .map((c) => c.trim().toLowerCase())
          .filter((c) => c !== 'all' && c !== '')
      : [];
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
  loginFailDelayMs: number;

  private readonly fixturesDir: string;
  private readonly greeting: Buffer;
  private readonly onAction: AmiSimulatorOptions['onAction'];
  private readonly recorded = new Map<string, Recorded[]>();
  private readonly sessions = new Set<Session>();
  private server: net.Server | null = null;
  private _port: number;
  private users = new Map<string, SimulatedUser>();
  private primary: string;
  private sessionIds = 0;

  constructor(opts: AmiSimulatorOptions) {
    this.fixturesDir = opts.fixturesDir;
    this._port = opts.port ?? 0;
    this.users = new Map(Object.entries(opts.users ?? {}));
    this.primary = opts.username ?? (opts.users ? Object.keys(opts.users)[0] : undefined) ?? 'guardian';
    if (!this.users.has(this.primary)) this.users.set(this.primary, { secret: opts.secret ?? 'guardian-secret', read: opts.read ?? 'all' });
    this.loginFailDelayMs = opts.loginFailDelayMs ?? 1000;
    this.greeting = opts.greeting ?? readFileSync(join(this.fixturesDir, 'greeting.raw'));
    this.onAction = opts.onAction;
    this.loadRecorded();
  }

  /** the primary user's name and secret (settable: a test fixes a wrong secret "on the server") */
  get username(): string {
    return this.primary;
  }
  set username(name: string) {
    const u = this.users.get(this.primary)!;
    this.users.delete(this.primary);
    this.primary = name;
    this.users.set(name, u);
  }
  get secret(): string {
    return this.users.get(this.primary)?.secret ?? '';
  }
  set secret(secret: string) {
    this.users.set(this.primary, { ...this.users.get(this.primary), secret });
  }

  /**
   * `manager reload` with a new manager.conf user list. As manager.c: the user table is replaced,
   * and live sessions keep the read permissions they copied at login (authenticate(): "the session
   * parameters are not changed"), so a grant reaches only sessions that log in afterwards.
   */
  managerReload(users: Record<string, SimulatedUser>): void {
    this.users = new Map(Object.entries(users));
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
    const s: Session = { sock, buf: '', loggedIn: false, user: '', events: new Set() };
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
      this.login(s, get('username') ?? '', get('secret'), get('events'), idLine);
      return;
    }
    if (!s.loggedIn && action !== 'challenge') {
      this.write(s, crlf(['Response: Error', ...idLine, 'Message: Permission denied']));
      return;
    }
    if (this.onAction?.(req, (text) => this.write(s, text))) return;
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
    const mayCommand = s.write === undefined || maskHas(s.write, 'command');
    if (action === 'listcommands') {
      const list = [
        'Ping: Keepalive command. (Priv: <none>)',
        'Logoff: Logoff Manager. (Priv: <none>)',
        'ListCommands: List available manager commands. (Priv: <none>)',
      ];
      if (mayCommand) list.push('Command: Execute Asterisk CLI Command. (Priv: command,all)');
      this.write(s, crlf(['Response: Success', ...idLine, ...list]));
      return;
    }
    if (action === 'command' && !mayCommand) {
      this.write(s, crlf(['Response: Error', ...idLine, 'Message: Permission denied']));
      return;
    }
    const show = action === 'command' ? /^manager show user (\S+)$/.exec(get('command') ?? '') : null;
    if (show) {
      const out = showUserOutput(show[1]!, this.users.get(show[1]!));
      this.write(s, crlf(['Response: Success', ...idLine, 'Message: Command output follows', ...out.map((l) => `Output: ${l}`)]));
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
    const exact = candidates.find((c) => c.request.size === fields.size && [...c.request].every(([k, v]) => fields.get(k) === v));
    this.write(s, withActionId((exact ?? candidates[0]!).response, id));
  }

  private login(s: Session, name: string, secret: string | undefined, events: string | undefined, idLine: string[]): void {
    if (s.loggedIn) {
      this.write(s, crlf(['Response: Success', ...idLine, 'Message: Already authenticated']));
      return;
    }
    const user = this.users.get(name);
    const refuse = (message: string) =>
      setTimeout(() => {
        this.write(s, crlf(['Response: Error', ...idLine, `Message: ${message}`]));
        s.sock.end();
      }, this.loginFailDelayMs);
    if (user && user.allowMultipleLogin === false && [...this.sessions].some((o) => o.loggedIn && o.user === name)) {
      refuse('Login Already In Use');
      return;
    }
    if (!user || secret !== user.secret) {
      refuse('Authentication failed');
      return;
    }
    s.loggedIn = true;
    s.user = name;
    s.write = user.write === undefined ? undefined : parseReadPerms(user.write);
    const read = parseReadPerms(user.read);
    s.events = events === undefined || events.trim() === '' ? read : intersectMasks(parseEventMask(events), read);
    this.logins++;
    this.write(s, crlf(['Response: Success', ...idLine, 'Message: Authentication accepted']));
    if (maskHas(s.events, 'system')) {
      this.write(s, crlf(['Event: FullyBooted', 'Privilege: system,all', 'Uptime: 8', 'LastReload: 8', 'Status: Fully Booted']));
    }
    this.broadcast(
      successfulAuthFrame({
        accountId: name,
        sessionId: `0x7f18${(0x60001460 + 0x100 * ++this.sessionIds).toString(16)}`,
        localAddress: s.sock.localAddress ?? '127.0.0.1',
        localPort: s.sock.localPort ?? this._port,
        remoteAddress: s.sock.remoteAddress ?? '127.0.0.1',
        remotePort: s.sock.remotePort ?? 0,
        startedAt: Date.now(),
      }),
    );
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
