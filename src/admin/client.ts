import { request } from 'node:http';
import { AppError, CODE_PATTERN, StartupError } from '../common/errors.js';

/** The daemon answered with an error status: that status, the daemon's own code (DAEMON_ERROR
 *  when it sent none) and its message. */
export class DaemonError extends AppError {
  constructor(message: string, status: number, code: string) {
    super(message, CODE_PATTERN.test(code) ? code : 'DAEMON_ERROR', status);
  }
  get status(): number {
    return this.statusCode;
  }
}

/** The daemon's admin socket could not be reached. */
export class DaemonUnreachableError extends StartupError {
  constructor(message: string) {
    super(message, 'DAEMON_UNREACHABLE');
  }
}

/** One JSON request to the admin API over the unix socket. */
export function callDaemon<T>(socketPath: string, method: string, path: string, body?: unknown): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath,
        method,
        path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let data: unknown;
          try {
            data = text ? JSON.parse(text) : {};
          } catch {
            data = { error: text };
          }
          const status = res.statusCode ?? 0;
          if (status >= 400) {
            const d = data as { error?: string; code?: string; message?: string };
            reject(new DaemonError(d.error ?? d.message ?? `HTTP ${status}`, status, d.code ?? 'DAEMON_ERROR'));
          } else resolvePromise(data as T);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('the daemon did not answer within 10 s')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(
          new DaemonUnreachableError(`cannot reach the pbx-guardian daemon at ${socketPath} (${err.code}): is it running? (systemctl status pbx-guardian)`),
        );
      } else if (err.code === 'EACCES') {
        reject(new DaemonUnreachableError(`permission denied on ${socketPath}: run as root or as the pbx-guardian user`));
      } else reject(err);
    });
    if (payload) req.write(payload);
    req.end();
  });
}
