import net from 'node:net';
import { buildAction } from './action.js';
import { AmiFramer } from './framer.js';
import { AmiFrame } from './message.js';

/**
 * A short second AMI session that answers one question: may this user read the security class
 * now? It logs in with `Events: security`, waits for a security-class event (Asterisk sends the
 * session its own SuccessfulAuth right after login when it may: manager.c authenticate() →
 * report_auth_success()), logs off and closes. The main session keeps running meanwhile, so call
 * events keep reaching Odoo while the guard waits for a `manager reload`.
 */
export type ProbeResult =
  | { kind: 'verified' }
  | { kind: 'missing' }
  /** the user has allowmultiplelogin = no (manager.c answers "Login Already In Use") */
  | { kind: 'in-use' }
  | { kind: 'refused'; message: string }
  | { kind: 'unreachable'; message: string };

export interface ProbeOptions {
  host: string;
  port: number;
  username: string;
  secret: string;
  /** TCP connect + greeting + login answer, ms */
  loginTimeoutMs: number;
  /** how long to wait for a security event after the login, ms */
  securityTimeoutMs: number;
  /** bound on one probe frame (the probe receives only security events and one response) */
  maxFrameBytes?: number;
}

/** One probe session; always settles and always closes its socket (bounded by both timeouts). */
export function probeSecurity(o: ProbeOptions): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    let done = false;
    let loggedIn = false;
    const sock = net.connect({ host: o.host, port: o.port });
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (loggedIn && !sock.destroyed) {
        sock.end(buildAction({ Action: 'Logoff' }, 'pbxg-probe-2'));
        setTimeout(() => sock.destroy(), 500).unref();
      } else {
        sock.destroy();
      }
      resolve(r);
    };
    let timer = setTimeout(() => finish({ kind: 'unreachable', message: `no AMI login answer within ${o.loginTimeoutMs} ms` }), o.loginTimeoutMs);
    const framer = new AmiFramer(
      {
        greeting: (line, complete) => {
          if (!complete || !line.startsWith('Asterisk Call Manager/')) {
            finish({ kind: 'unreachable', message: 'the peer is not an Asterisk Manager Interface' });
            return;
          }
          sock.write(buildAction({ Action: 'Login', Username: o.username, Secret: o.secret, Events: 'security' }, 'pbxg-probe-1'));
        },
        frame: (text) => {
          const msg = new AmiFrame(text);
          if (!loggedIn && msg.get('ActionID') === 'pbxg-probe-1') {
            const resp = (msg.get('Response') ?? '').toLowerCase();
            const said = msg.get('Message') ?? '';
            if (resp !== 'success') {
              finish(/already in use/i.test(said) ? { kind: 'in-use' } : { kind: 'refused', message: JSON.stringify(said.slice(0, 100)) });
              return;
            }
            loggedIn = true;
            clearTimeout(timer);
            timer = setTimeout(() => finish({ kind: 'missing' }), o.securityTimeoutMs);
            return;
          }
          if (loggedIn && msg.get('Event') !== undefined && hasClass(msg.get('Privilege'), 'security')) finish({ kind: 'verified' });
        },
      },
      { maxFrameBytes: o.maxFrameBytes ?? 65536, maxHeaders: 256, expectGreeting: true },
    );
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => {
      if (!done) framer.push(chunk);
    });
    sock.on('error', (err: Error & { code?: string }) => finish({ kind: 'unreachable', message: err.code ?? err.message }));
    sock.on('close', () => finish({ kind: 'unreachable', message: 'closed by the peer' }));
  });
}

/** true when a Privilege header value (e.g. `security,all`) names `cls` */
export function hasClass(privilege: string | undefined, cls: string): boolean {
  if (!privilege) return false;
  for (const c of privilege.split(',')) if (c.trim().toLowerCase() === cls) return true;
  return false;
}
