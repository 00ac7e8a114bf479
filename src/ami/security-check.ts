import type { Logger } from 'pino';
import { probeSecurity, type ProbeOptions, type ProbeResult } from './probe.js';
import type { ResolvedAmiClientOptions } from './client-options.js';
import type { AmiActionFields, AmiConnectionState, AmiHealth, AmiLoginErrorKind, AmiResponse, AmiSecurityCheck } from './types.js';
import { backoffMs } from '../net/backoff.js';

/** manager.h: EVENT_FLAG_SECURITY, for a numeric login Events mask */
const EVENT_FLAG_SECURITY = 1 << 18;
/** classes kept for classesSeen (Asterisk has 19; a peer cannot grow the set beyond this) */
const MAX_CLASSES = 32;
const CLASS_RE = /^[a-z]{1,24}$/;
/** a probe that AMI refuses (secret changed, Asterisk down) backs off up to this */
const PROBE_BACKOFF_MAX_MS = 300_000;
/** "the guard is blind" is logged once, then at most once an hour while it lasts */
const MISSING_LOG_REPEAT_MS = 3_600_000;

/**
 * Whether a login `Events:` mask lets the security class through, read as manager.c
 * strings_to_mask() does: empty = the user's read permissions; digits = a bit mask; ast_false
 * words = nothing; ast_true words = everything; else a comma list (`all` = everything).
 */
export function maskReadsSecurity(events: string): boolean {
  const t = events.trim().toLowerCase();
  if (t === '') return true;
  if (/^\d+$/.test(t)) return (Number(t) & EVENT_FLAG_SECURITY) !== 0;
  if (['no', 'false', 'n', 'f', 'off'].includes(t)) return false;
  if (['yes', 'true', 'y', 't', 'on'].includes(t)) return true;
  return t.split(',').some((c) => c.trim() === 'security' || c.trim() === 'all');
}

/** The watch's options from the client's own. */
export function watchOptions(o: ResolvedAmiClientOptions, log: Logger, relogin: () => void, action: SecurityWatchOptions['action']): SecurityWatchOptions {
  return {
    host: o.host,
    port: o.port,
    username: o.username,
    secret: o.secret,
    events: o.events,
    checkTimeoutMs: o.securityCheckTimeoutMs,
    recheckIntervalMs: o.securityRecheckIntervalMs,
    loginTimeoutMs: o.connectTimeoutMs + o.actionTimeoutMs,
    log,
    relogin,
    action,
  };
}

/** a manager.conf section name we pass to `manager show user` (it is our config, but checked) */
const USER_NAME_RE = /^[A-Za-z0-9._@-]{1,80}$/;

/** The `read perm:` line of `manager show user <name>` (manager.c handle_showmanager). */
export function readPermOf(output: readonly string[] | undefined): string | null {
  for (const line of output ?? []) {
    const m = /^\s*read perm:\s*(.*?)\s*$/.exec(line);
    if (m) return m[1]!.slice(0, 200);
  }
  return null;
}

export interface SecurityWatchOptions {
  host: string;
  port: number;
  username: string;
  secret: string;
  /** the login Events mask the main session uses */
  events: string;
  /** after a login, how long to wait for a security-class event before calling it missing, ms */
  checkTimeoutMs: number;
  /** while missing, how often a probe session re-checks, ms (0: never) */
  recheckIntervalMs: number;
  /** bound on the probe's connect + greeting + login answer, ms */
  loginTimeoutMs: number;
  log: Logger;
  /** log the main session off and in again (a probe showed the user may now read security) */
  relogin: () => void;
  /** the main session's actions: `manager show user` (needs write = command) sharpens the advice */
  action?: (fields: AmiActionFields, opts: { timeoutMs: number }) => Promise<AmiResponse>;
  /** the probe (tests may swap it) */
  probe?: (o: ProbeOptions) => Promise<ProbeResult>;
}

/**
 * Verifies after every login that the main session receives the security class, and while it
 * does not, re-checks with a probe session. Asterisk copies the user's read permissions into the
 * session at login (manager.c authenticate(): `s->session->readperm = user->readperm`, "so that in
 * the event of a reload and a configuration change, the session parameters are not changed"), and
 * the Events action can only narrow to them (set_eventmask(): `readperm & maskint`): a `manager
 * reload` that grants security reaches only new sessions, so the main session logs in again.
 */
export class SecurityWatch {
  security: AmiSecurityCheck = 'unknown';
  advice: string | null = null;
  lastEventAt: number | null = null;
  lastSecurityEventAt: number | null = null;
  /** probe sessions started so far */
  probes = 0;
  /** epoch ms the client's connection state last changed */
  since = Date.now();
  lastLoginError: AmiHealth['lastLoginError'] = null;
  /** the last login error's text without the retry note: what to check */
  private loginAdvice: string | null = null;

  private readonly o: SecurityWatchOptions;
  private readonly classes = new Set<string>();
  private lastPrivilege: string | undefined;
  /** Privilege values seen on this session → names security (bounded) */
  private readonly privileges = new Map<string, boolean>();
  private lastPrivilegeSecurity = false;
  private checkTimer: NodeJS.Timeout | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;
  private generation = 0;
  private probing = false;
  private probeFailures = 0;
  /** the user has allowmultiplelogin = no: re-check by logging the main session in again */
  private probeInUse = false;
  private lastMissingLogAt = -Infinity;
  /** was reported blind, and has not been verified since (across re-logins) */
  private blind = false;

  constructor(o: SecurityWatchOptions) {
    this.o = o;
  }

  classesSeen(): string[] {
    return [...this.classes].sort();
  }

  /** The snapshot AmiClient.health() returns. */
  health(state: AmiConnectionState): AmiHealth {
    return {
      state,
      host: this.o.host,
      port: this.o.port,
      username: this.o.username,
      since: this.since,
      lastLoginError: this.lastLoginError && { ...this.lastLoginError },
      security: this.security,
      classesSeen: this.classesSeen(),
      lastEventAt: this.lastEventAt,
      lastSecurityEventAt: this.lastSecurityEventAt,
      advice: this.advice ?? (state === 'connected' ? null : this.loginAdvice),
    };
  }

  onStateChange(): void {
    this.since = Date.now();
  }

  /** a login of the main session failed: `message` as logged, `advice` what to check */
  onLoginFailed(kind: AmiLoginErrorKind, message: string, advice: string): void {
    this.lastLoginError = { kind, message, at: Date.now() };
    this.loginAdvice = advice;
  }

  /** the main session logged in */
  onLogin(): void {
    this.lastLoginError = null;
    this.loginAdvice = null;
    this.reset();
    this.classes.clear();
    this.privileges.clear();
    this.lastPrivilege = undefined;
    if (!maskReadsSecurity(this.o.events)) {
      this.markMissing('mask');
      return;
    }
    this.security = 'checking';
    this.checkTimer = setTimeout(() => {
      if (this.security === 'checking') this.markMissing('read');
    }, this.o.checkTimeoutMs);
    this.checkTimer.unref();
  }

  /** the main session is gone (or the client stopped) */
  onLogout(): void {
    this.reset();
    this.security = 'unknown';
    this.advice = null;
  }

  /** An event frame on the main session (its text). On the hot path: Asterisk writes
   *  `Privilege: ` right after the Event line, and it is one of a few strings again and again, so
   *  it is found with one indexOf and compared in place with the last one (no header parse). */
  onEventFrame(raw: string, now: number): void {
    this.lastEventAt = now;
    const at = raw.indexOf('\r\nPrivilege: ');
    if (at < 0) return;
    const start = at + 13;
    const last = this.lastPrivilege;
    let security: boolean;
    if (last !== undefined && raw.startsWith(last, start) && (raw.length === start + last.length || raw.charCodeAt(start + last.length) === 13)) {
      security = this.lastPrivilegeSecurity;
    } else {
      const end = raw.indexOf('\r\n', start);
      security = this.classify(raw.slice(start, end < 0 ? raw.length : end));
    }
    if (security) this.onSecurityEvent(now);
  }

  /** whether a Privilege value names security; records its classes (bounded cache and set) */
  private classify(privilege: string): boolean {
    let security = this.privileges.get(privilege);
    if (security === undefined) {
      security = false;
      for (const raw of privilege.split(',')) {
        const c = raw.trim().toLowerCase();
        if (c === 'all' || !CLASS_RE.test(c)) continue;
        if (c === 'security') security = true;
        if (this.classes.size < MAX_CLASSES) this.classes.add(c);
      }
      if (this.privileges.size < MAX_CLASSES) this.privileges.set(privilege, security);
    }
    this.lastPrivilege = privilege;
    this.lastPrivilegeSecurity = security;
    return security;
  }

  private onSecurityEvent(now: number): void {
    this.lastSecurityEventAt = now;
    if (this.security !== 'checking' && this.security !== 'missing') return;
    this.reset();
    this.security = 'verified';
    this.advice = null;
    if (this.blind) {
      this.blind = false;
      this.lastMissingLogAt = -Infinity;
      this.o.log.info(
        { host: this.o.host, port: this.o.port, username: this.o.username },
        `AMI user "${this.o.username}" at ${this.where()} now receives security events: the guard sees attacks again`,
      );
    }
  }

  private where(): string {
    return `${this.o.host}:${this.o.port}`;
  }

  private reset(): void {
    this.generation++;
    clearTimeout(this.checkTimer);
    clearTimeout(this.recheckTimer);
    this.checkTimer = undefined;
    this.recheckTimer = undefined;
  }

  private markMissing(why: 'mask' | 'read'): void {
    this.security = 'missing';
    this.blind = true;
    const u = this.o.username;
    let detail: string;
    if (why === 'mask') {
      this.advice =
        `the login Events mask is "${this.o.events}" (ami.events in the pbx-guardian config), which excludes the security class: ` +
        'set ami.events to auto, on, or a list that includes security, and restart pbx-guardian';
      detail = `AMI session at ${this.where()} as "${u}" receives no security events: ${this.advice}`;
      this.logMissing(why, detail);
      return;
    }
    this.advice = this.readAdvice(null);
    this.scheduleRecheck();
    const gen = this.generation;
    // readPerm never rejects (null on any failure); the check's result is only logged.
    void this.readPerm().then((perm) => {
      if (gen !== this.generation || this.security !== 'missing') return;
      this.advice = this.readAdvice(perm);
      const cause =
        perm !== null && /(^|,)\s*(security|all)\s*(,|$)/.test(perm)
          ? `the user's read perm is "${perm}", which has security, so an eventfilter in [${u}] must drop SuccessfulAuth and other security events`
          : perm !== null
            ? `the user's read perm is "${perm}": it lacks the security class`
            : 'so the user lacks read permission for the security class';
      this.logMissing(
        why,
        `AMI user "${u}" at ${this.where()} does not receive security events: no security event (not even this session's own SuccessfulAuth) arrived within ${this.o.checkTimeoutMs} ms of the login; ${cause}. Fix: ${this.advice}`,
      );
    });
  }

  /** `manager show user <name>`'s read perm, or null (no write = command, timeout, other name).
   *  ListCommands first (it lists only what the session may run): a refused Command would be a
   *  RequestNotAllowed security event that other AMI consumers see. */
  private async readPerm(): Promise<string | null> {
    const action = this.o.action;
    if (!action || !USER_NAME_RE.test(this.o.username)) return null;
    const timeoutMs = Math.min(5000, this.o.checkTimeoutMs * 2);
    try {
      const list = await action({ Action: 'ListCommands' }, { timeoutMs });
      if (list.response.get('Command') === undefined) return null;
      const r = await action({ Action: 'Command', Command: `manager show user ${this.o.username}` }, { timeoutMs });
      return readPermOf(r.output);
    } catch {
      return null;
    }
  }

  private readAdvice(perm: string | null): string {
    const u = this.o.username;
    const every =
      this.o.recheckIntervalMs > 0
        ? `; pbx-guardian re-checks every ${Math.round(this.o.recheckIntervalMs / 1000)}s and picks the change up without a restart`
        : '';
    const reload = `then run: asterisk -rx "manager reload"${every}`;
    if (perm !== null && /(^|,)\s*(security|all)\s*(,|$)/.test(perm)) {
      return `in manager.conf, section [${u}], let SuccessfulAuth and the other security events through its eventfilter lines (or remove them), ${reload}`;
    }
    const keep = perm !== null && perm !== '' && !/^\(?none\)?$/i.test(perm) ? `read = ${perm},security` : 'e.g. read = system,call,security';
    return `in manager.conf, section [${u}], add security to read, keeping what it has (${keep}), ${reload}`;
  }

  private logMissing(why: 'mask' | 'read', detail: string): void {
    const u = this.o.username;
    const now = Date.now();
    if (now - this.lastMissingLogAt >= MISSING_LOG_REPEAT_MS) {
      this.lastMissingLogAt = now;
      this.o.log.error(
        { host: this.o.host, port: this.o.port, username: u, security: 'missing', cause: why },
        `${detail}. The guard is blind until then: failed logins, REGISTER and INVITE attacks are neither seen nor banned`,
      );
    }
  }

  private scheduleRecheck(): void {
    if (this.o.recheckIntervalMs <= 0) return;
    const delay = backoffMs(this.probeFailures, this.o.recheckIntervalMs, PROBE_BACKOFF_MAX_MS);
    const gen = this.generation;
    clearTimeout(this.recheckTimer);
    this.recheckTimer = setTimeout(() => this.recheck(gen), delay);
    this.recheckTimer.unref();
  }

  private recheck(gen: number): void {
    if (gen !== this.generation || this.security !== 'missing' || this.probing) return;
    if (this.probeInUse) {
      this.o.relogin();
      return;
    }
    this.probing = true;
    this.probes++;
    const probe = this.o.probe ?? probeSecurity;
    const opts: ProbeOptions = {
      host: this.o.host,
      port: this.o.port,
      username: this.o.username,
      secret: this.o.secret,
      loginTimeoutMs: this.o.loginTimeoutMs,
      securityTimeoutMs: this.o.checkTimeoutMs,
    };
    probe(opts).then(
      (r) => this.onProbe(gen, r),
      (err: Error) => this.onProbe(gen, { kind: 'unreachable', message: err.message }),
    );
  }

  private onProbe(gen: number, r: ProbeResult): void {
    this.probing = false;
    if (gen !== this.generation || this.security !== 'missing') return;
    const u = this.o.username;
    switch (r.kind) {
      case 'verified':
        this.probeFailures = 0;
        this.o.log.info(
          { host: this.o.host, port: this.o.port, username: u },
          `AMI user "${u}" may now read security events (a probe session received its own SuccessfulAuth): logging the main session in again`,
        );
        this.o.relogin();
        return;
      case 'in-use':
        this.probeInUse = true;
        this.o.log.warn(
          { host: this.o.host, port: this.o.port, username: u },
          `AMI user "${u}" has allowmultiplelogin = no, so a probe session cannot log in beside the main one: the main session logs in again every re-check instead (call events are missed for a moment each time)`,
        );
        this.o.relogin();
        return;
      case 'missing':
        this.probeFailures = 0;
        break;
      default:
        this.probeFailures++;
        this.o.log.debug({ host: this.o.host, port: this.o.port, kind: r.kind, message: r.message }, 'AMI security probe failed; backing off');
    }
    this.scheduleRecheck();
  }
}
