/**
 * Binding the daemon's listeners at start: every one binds before the firewall is touched (see
 * startDaemon), a failure names the listener, its address and its config keys, and requests that
 * arrive before the firewall is ready are held off.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { StartupError } from '../common/errors.js';

/** A listener the daemon opens, as a person configures it. */
export interface ListenerSpec {
  /** e.g. "metrics", "admin socket" */
  name: string;
  /** the config keys that set its address, e.g. "metrics.host / metrics.port" */
  keys: string;
  /** "127.0.0.1:9470" or a socket path */
  address: string;
  /** how to turn it off, e.g. "metrics.enabled: false" (null: it cannot be) */
  disable: string | null;
}

/** A listener could not bind: nothing else was started. */
export class ListenError extends StartupError {
  /** the system's reason, e.g. EADDRINUSE (UNKNOWN when it gave none) */
  readonly errno: string;
  constructor(
    readonly listener: ListenerSpec,
    cause: NodeJS.ErrnoException,
  ) {
    const code = cause.code ?? 'UNKNOWN';
    super(
      `cannot listen on ${listener.address} for the ${listener.name} (${listener.keys}): ${cause.message}. ${advice(code, listener)} ` +
        'pbx-guardian did not start: the firewall was not touched',
      'LISTEN_FAILED',
    );
    this.name = 'ListenError';
    this.errno = code;
  }
}

function advice(code: string, l: ListenerSpec): string {
  const off = l.disable ? `, or turn it off (${l.disable})` : '';
  switch (code) {
    case 'EADDRINUSE':
      return l.address.startsWith('/')
        ? `Another process listens there (another pbx-guardian with another stateDir?): stop it or set another ${l.keys}.`
        : `Another process holds that port (see: ss -ltnp 'sport = :${l.address.split(':').pop()}'): stop it, set another ${l.keys}${off}.`;
    case 'EACCES':
      return `Ports below 1024 need CAP_NET_BIND_SERVICE (see the drop-in at the top of the systemd unit); or choose another ${l.keys}${off}.`;
    case 'EADDRNOTAVAIL':
      return `That address is not one of this host's: set ${l.keys} to an address of a local interface (0.0.0.0 for all)${off}.`;
    default:
      return `Check ${l.keys}${off}.`;
  }
}

/** Runs `listen` and turns its failure into a ListenError naming the listener. */
export async function bindListener<T>(spec: ListenerSpec, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e instanceof ListenError || typeof e.code !== 'string' || e.syscall === undefined) throw err;
    throw new ListenError(spec, e);
  }
}

/** "host:port", with brackets around an IPv6 host. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

const STARTING_BODY = JSON.stringify({ error: 'pbx-guardian is starting: the firewall is not ready yet; try again in a second', code: 'STARTING' });

/**
 * Until open(), requests that could change something (every method but GET and HEAD) on the held
 * servers are answered 503 with Retry-After: the listeners are bound before the firewall is set
 * up, and a ban must not reach an enforcer that has no backend yet. Reads (status, metrics) pass.
 */
export class StartingGate {
  private isOpen = false;

  /** Call before the server accepts connections (fastify adds its handler when it is built). */
  hold(server: Server): void {
    const handlers = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (this.isOpen || req.method === 'GET' || req.method === 'HEAD') {
        for (const h of handlers) h.call(server, req, res);
        return;
      }
      res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1', 'content-length': Buffer.byteLength(STARTING_BODY) });
      res.end(STARTING_BODY);
    });
  }

  open(): void {
    this.isOpen = true;
  }

  get opened(): boolean {
    return this.isOpen;
  }
}
