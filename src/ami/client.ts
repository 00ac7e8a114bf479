import { EventEmitter } from 'node:events';
import net from 'node:net';
import pino, { type Logger } from 'pino';
import { actionName, buildAction } from './action.js';
import { reconnectDelay, resolveClientOptions, type AmiActionOptions, type AmiClientOptions, type ResolvedAmiClientOptions } from './client-options.js';
import { AmiActionError, AmiLoginError, notSentError } from './errors.js';
import { AmiFramer } from './framer.js';
import { AmiFrame } from './message.js';
import { PendingActions } from './pending.js';
import { SecurityWatch, watchOptions } from './security-check.js';
import type { AmiActionFields, AmiClientEvents, AmiClientStats, AmiConnectionState, AmiFrameDrop, AmiHealth, AmiLoginErrorKind, AmiResponse } from './types.js';

export type { AmiActionOptions, AmiClientOptions } from './client-options.js';
export { legacyCommandOutput } from './pending.js';

export type { AmiClientEvents } from './types.js';

const GREETING_PREFIX = 'Asterisk Call Manager/';
/** libuv's read size: a chunk this large means the socket had more */
const FULL_READ = 65536;

/**
 * A small, strict AMI client: one TCP connection, kept up with capped exponential backoff
 * (equal jitter; reset only after a successful login), keepalive Ping with a pong timeout,
 * counter ActionIDs, per-action timeouts, event-list collection, bounded frames.
 * The socket is always read (paused for one loop turn at most, after a full read); all work per
 * chunk is bounded.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- the typed listener overloads below
export class AmiClient extends EventEmitter {
  readonly stats: AmiClientStats = {
    bytesReceived: 0,
    framesReceived: 0,
    eventsReceived: 0,
    framesDropped: 0,
    reconnects: 0,
    loginFailures: 0,
    actionsTimedOut: 0,
  };
  /** the greeting line of the current/last connection, e.g. `Asterisk Call Manager/9.0.0` */
  greeting: string | undefined;

  private readonly o: ResolvedAmiClientOptions;
  private readonly log: Logger;
  private st: AmiConnectionState = 'disconnected';
  private socket: net.Socket | null = null;
  private stopped = true;
  private attempts = 0;
  private failures = 0;
  private lastLoggedKind: AmiLoginErrorKind | undefined;
  private lastLoggedAt = 0;
  private tcpUp = false;
  private lastError: (Error & { code?: string }) | undefined;
  private loginId: string | undefined;
  private stageTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private pingInFlight = false;
  private readonly pending: PendingActions;
  private readonly watch: SecurityWatch;
  /** the next teardown is a deliberate re-login: reconnect at once, no "connection lost" */
  private reloginNow = false;
  /** when the chunk being framed arrived (epoch ms) */
  private chunkAt = 0;

  constructor(opts: AmiClientOptions) {
    super();
    const o = resolveClientOptions(opts);
    this.o = o;
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.pending = new PendingActions({
      where: this.where(),
      maxFrameBytes: o.maxFrameBytes,
      onTimeout: () => this.stats.actionsTimedOut++,
    });
    this.watch = new SecurityWatch(
      watchOptions(
        o,
        this.log,
        () => this.relogin(),
        (f, opt) => this.action(f, opt),
      ),
    );
  }

  /** What this client knows about its session now (see AmiHealth); cheap, no I/O. */
  health(): AmiHealth {
    return this.watch.health(this.st);
  }

  get state(): AmiConnectionState {
    return this.st;
  }

  /** Connect and keep the connection up until stop(). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  /** Log off, close, and stop reconnecting. Pending actions are rejected. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const sock = this.socket;
    if (!sock) {
      this.setState('disconnected');
      return;
    }
    const closed = new Promise<void>((resolve) => {
      if (sock.destroyed) resolve();
      else sock.once('close', () => resolve());
    });
    const graceful = this.st === 'connected';
    if (graceful) {
      try {
        sock.write(buildAction({ Action: 'Logoff' }, this.pending.nextId()));
      } catch {
        /* ignore */
      }
    }
    this.teardown(sock, 'client stopped', undefined, graceful);
    await closed;
  }

  /**
   * Send an action and wait for its response (and, for event lists, every item and the
   * ...Complete event). Rejects with AmiActionError: 'invalid' (bad key, or CR/LF/NUL in a key or
   * value; nothing is written), 'not-connected', 'write-buffer-full', 'timeout', 'disconnected'.
   * Any ActionID in `fields` is replaced by the client's own `pbxg-<n>`.
   */
  action(fields: AmiActionFields, opts: AmiActionOptions = {}): Promise<AmiResponse> {
    const id = this.pending.nextId();
    let text: string;
    try {
      text = buildAction(fields, id);
    } catch (e) {
      return Promise.reject(e);
    }
    const name = actionName(fields)!;
    const sock = this.socket;
    if (this.st !== 'connected' || !sock) return Promise.reject(notSentError(name, this.where(), this.st));
    if (sock.writableLength > this.o.maxWriteBufferBytes) return Promise.reject(notSentError(name, this.where(), this.st, sock.writableLength));
    return this.send(sock, text, id, name, opts.timeoutMs ?? this.o.actionTimeoutMs);
  }

  // ---------------------------------------------------------------------------------------------

  private where(): string {
    return `${this.o.host}:${this.o.port}`;
  }

  private setState(s: AmiConnectionState): void {
    if (s === this.st) return;
    this.st = s;
    this.watch.onStateChange();
    this.emit('state', s);
  }

  private send(sock: net.Socket, text: string, id: string, name: string, timeoutMs: number): Promise<AmiResponse> {
    const answer = this.pending.add(id, name, timeoutMs);
    sock.write(text);
    return answer;
  }

  private nextDelay(kind?: AmiLoginErrorKind): number {
    return reconnectDelay(this.o, this.failures++, kind);
  }

  private connect(): void {
    if (this.stopped) return;
    this.reconnectTimer = undefined;
    if (this.attempts++ > 0) this.stats.reconnects++;
    this.tcpUp = false;
    this.lastError = undefined;
    this.loginId = undefined;
    this.greeting = undefined;
    this.setState('connecting');
    const sock = net.connect({ host: this.o.host, port: this.o.port });
    this.socket = sock;
    const framer = new AmiFramer(
      {
        frame: (t) => this.onFrame(sock, t),
        drop: (d) => this.onDrop(sock, d),
        greeting: (line, complete) => this.onGreeting(sock, line, complete),
      },
      { maxFrameBytes: this.o.maxFrameBytes, maxHeaders: this.o.maxHeaders, expectGreeting: true },
    );
    this.stageTimer = setTimeout(() => {
      const what = this.tcpUp ? 'sent no AMI greeting' : 'did not accept the TCP connection';
      this.teardown(sock, 'connect timeout', {
        kind: 'timeout',
        text: `AMI at ${this.where()} ${what} within ${this.o.connectTimeoutMs} ms; check the host, the port (manager.conf, default 5038) and any firewall in between`,
      });
    }, this.o.connectTimeoutMs);
    sock.setNoDelay(true);
    sock.setKeepAlive(true, 30000);
    sock.on('connect', () => {
      this.tcpUp = true;
    });
    sock.on('data', (chunk: Buffer) => {
      if (sock !== this.socket) return;
      this.stats.bytesReceived += chunk.length;
      this.chunkAt = Date.now(); // one clock read per chunk (~180 events), not per event
      framer.push(chunk);
      // A full read means more is waiting: libuv would read up to 32 more in this same turn
      // (2 MB of a burst, ~60 ms), starving the timers that flush bans to the kernel. Stop for
      // one turn only, so the kernel buffer never fills on our account.
      if (chunk.length >= FULL_READ && !sock.isPaused()) {
        sock.pause();
        setImmediate(() => sock.resume());
      }
    });
    sock.on('error', (err) => {
      this.lastError = err;
    });
    sock.on('close', () => this.onClose(sock));
  }

  private onClose(sock: net.Socket): void {
    if (sock !== this.socket) return;
    const err = this.lastError;
    const cause = err ? (err.code ? `${err.code}: ${err.message}` : err.message) : 'closed by the peer';
    if (this.st === 'connecting') {
      const text = this.tcpUp
        ? `AMI at ${this.where()} accepted the TCP connection but closed it before sending the greeting (${cause}); ` +
          'Asterisk may be at its authlimit or restarting'
        : `AMI at ${this.where()} is unreachable (${cause}); check that Asterisk runs and that manager.conf has enabled = yes on this address and port`;
      this.teardown(sock, cause, { kind: 'unreachable', text });
    } else if (this.st === 'authenticating') {
      this.teardown(sock, cause, {
        kind: 'unreachable',
        text: `AMI at ${this.where()} closed the connection during login as "${this.o.username}" without an answer (${cause})`,
      });
    } else {
      this.teardown(sock, cause);
    }
  }

  /**
   * Drop `sock` (if it is the current one): reject pending actions, report a login failure when
   * given, emit state/disconnected, and schedule the next attempt unless stopped.
   */
  private teardown(sock: net.Socket, reason: string, loginError?: { kind: AmiLoginErrorKind; text: string }, graceful = false): void {
    if (sock !== this.socket) return;
    this.socket = null;
    clearTimeout(this.stageTimer);
    clearInterval(this.pingTimer);
    this.stageTimer = undefined;
    this.pingTimer = undefined;
    this.pingInFlight = false;
    if (graceful) {
      sock.end();
      setTimeout(() => sock.destroy(), 500).unref();
    } else {
      sock.destroy();
    }
    const wasConnected = this.st === 'connected';
    const relogin = this.reloginNow;
    this.reloginNow = false;
    this.watch.onLogout();
    this.pending.rejectAll(reason);
    const delay = this.stopped ? undefined : relogin ? 0 : this.nextDelay(loginError?.kind);
    const retry = delay === undefined ? 'not retrying (client stopped)' : `retrying in ${(delay / 1000).toFixed(1)}s`;
    if (loginError) {
      this.stats.loginFailures++;
      const err = new AmiLoginError(loginError.kind, `${loginError.text}; ${retry}`, delay);
      this.watch.onLoginFailed(err.kind, err.message, loginError.text);
      // One line per kind of failure, then one a minute while it lasts (an outage is not a flood).
      const now = Date.now();
      if (loginError.kind !== this.lastLoggedKind || now - this.lastLoggedAt >= 60_000) {
        this.log.error({ kind: err.kind, host: this.o.host, port: this.o.port, retryInMs: delay, attempts: this.failures }, err.message);
        this.lastLoggedKind = loginError.kind;
        this.lastLoggedAt = now;
      }
      this.emit('loginError', err);
    } else if (wasConnected && !this.stopped && !relogin) {
      this.log.warn(
        { host: this.o.host, port: this.o.port, reason, retryInMs: delay },
        `AMI connection to ${this.where()} lost (${reason}); events are missed until it is back; ${retry}`,
      );
    }
    this.setState('disconnected');
    this.emit('disconnected', reason);
    if (delay !== undefined && !this.stopped) {
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    }
  }

  private onGreeting(sock: net.Socket, line: string, complete: boolean): void {
    if (sock !== this.socket) return;
    if (!complete || !line.startsWith(GREETING_PREFIX)) {
      const shown = JSON.stringify(line.length > 80 ? line.slice(0, 80) + '…' : line);
      this.teardown(sock, 'not AMI', {
        kind: 'not-ami',
        text:
          `${this.where()} is not an Asterisk Manager Interface: it sent ${shown} instead of "${GREETING_PREFIX}<version>"; ` +
          'check the AMI host and port (manager.conf [general] port, default 5038)',
      });
      return;
    }
    this.greeting = line;
    clearTimeout(this.stageTimer);
    this.setState('authenticating');
    const id = this.pending.nextId();
    this.loginId = id;
    this.stageTimer = setTimeout(() => {
      this.teardown(sock, 'login timeout', {
        kind: 'timeout',
        text: `AMI login to ${this.where()} as "${this.o.username}" got no answer within ${this.o.actionTimeoutMs} ms; Asterisk may be overloaded`,
      });
    }, this.o.actionTimeoutMs);
    sock.write(buildAction({ Action: 'Login', Username: this.o.username, Secret: this.o.secret, Events: this.o.events }, id));
  }

  private onLoginResponse(sock: net.Socket, msg: AmiFrame): void {
    clearTimeout(this.stageTimer);
    this.stageTimer = undefined;
    this.loginId = undefined;
    const resp = (msg.get('Response') ?? '').toLowerCase();
    if (resp !== 'success') {
      const said = msg.get('Message') ?? msg.get('Response') ?? '';
      this.teardown(sock, 'login refused', {
        kind: 'auth',
        text:
          `AMI login to ${this.where()} as "${this.o.username}" was refused (${JSON.stringify(said)}): wrong username or secret, ` +
          "or this host is not permitted by the user's deny/permit (check manager.conf)",
      });
      return;
    }
    this.failures = 0;
    this.lastLoggedKind = undefined;
    this.setState('connected');
    this.watch.onLogin();
    this.log.info({ host: this.o.host, port: this.o.port, greeting: this.greeting }, `AMI connected to ${this.where()} as "${this.o.username}"`);
    if (this.o.pingIntervalMs > 0) {
      this.pingTimer = setInterval(() => this.ping(sock), this.o.pingIntervalMs);
      this.pingTimer.unref();
    }
    this.emit('connected');
  }

  /** Log off and in again at once: Asterisk gives a session the user's read permissions at login. */
  private relogin(): void {
    const sock = this.socket;
    if (!sock || this.st !== 'connected' || this.stopped) return;
    sock.write(buildAction({ Action: 'Logoff' }, this.pending.nextId()));
    this.reloginNow = true;
    this.teardown(sock, 'logging in again to pick up changed AMI read permissions', undefined, true);
  }

  private ping(sock: net.Socket): void {
    if (this.pingInFlight || sock !== this.socket || this.st !== 'connected') return;
    this.pingInFlight = true;
    const sentAt = Date.now();
    this.action({ Action: 'Ping' }, { timeoutMs: this.o.pongTimeoutMs }).then(
      () => {
        if (sock === this.socket) this.pingInFlight = false;
      },
      (err: unknown) => {
        if (sock !== this.socket) return;
        this.pingInFlight = false;
        // Bytes arrived since the Ping: Asterisk is there and its Pong is queued behind them (an
        // attack's burst takes seconds to read). Dropping the socket then would blind the guard
        // in the middle of the attack and lose the rest of the burst.
        if (err instanceof AmiActionError && err.kind === 'timeout' && this.chunkAt < sentAt) {
          this.log.warn({ host: this.o.host, port: this.o.port }, `AMI at ${this.where()} did not answer Ping within ${this.o.pongTimeoutMs} ms; reconnecting`);
          this.teardown(sock, `no Pong within ${this.o.pongTimeoutMs} ms`);
        }
      },
    );
  }

  private onDrop(sock: net.Socket, d: AmiFrameDrop): void {
    if (sock !== this.socket) return;
    this.stats.framesDropped++;
    this.log.error(
      { reason: d.reason, bytes: d.bytes, maxFrameBytes: this.o.maxFrameBytes, maxHeaders: this.o.maxHeaders },
      `AMI frame from ${this.where()} dropped (${d.reason}, ${d.bytes} bytes; limits ${this.o.maxFrameBytes} bytes / ${this.o.maxHeaders} headers): ` +
        'its content is lost and parsing resumes at the next frame; raise maxFrameBytes/maxHeaders if large Command output is expected',
    );
    this.emit('frameDropped', d);
  }

  private onFrame(sock: net.Socket, text: string): void {
    if (sock !== this.socket) return;
    this.stats.framesReceived++;
    const msg = new AmiFrame(text);
    if (this.pending.takeLegacyFrame(text)) return;
    if (text.startsWith('Event:')) this.onEvent(msg);
    else if (text.startsWith('Response:')) this.onResponse(sock, msg);
    else if (msg.get('Event') !== undefined) this.onEvent(msg);
    else if (msg.get('Response') !== undefined) this.onResponse(sock, msg);
    else this.log.debug({ frame: text.slice(0, 200) }, 'AMI frame that is neither an event nor a response ignored');
  }

  private onEvent(msg: AmiFrame): void {
    this.stats.eventsReceived++;
    this.watch.onEventFrame(msg.raw, this.chunkAt);
    if (this.pending.takeListEvent(msg)) return;
    this.emit('event', msg);
  }

  private onResponse(sock: net.Socket, msg: AmiFrame): void {
    const id = msg.get('ActionID');
    if (id !== undefined && id === this.loginId) {
      this.onLoginResponse(sock, msg);
      return;
    }
    if (!this.pending.takeResponse(msg)) {
      this.log.debug({ actionId: id }, 'AMI response for no pending action ignored (late, after a timeout?)');
    }
  }
}

// typed listener overloads
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface AmiClient {
  on<K extends keyof AmiClientEvents>(event: K, listener: (...args: AmiClientEvents[K]) => void): this;
  once<K extends keyof AmiClientEvents>(event: K, listener: (...args: AmiClientEvents[K]) => void): this;
  off<K extends keyof AmiClientEvents>(event: K, listener: (...args: AmiClientEvents[K]) => void): this;
  emit<K extends keyof AmiClientEvents>(event: K, ...args: AmiClientEvents[K]): boolean;
}
