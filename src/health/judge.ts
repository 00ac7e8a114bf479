/**
 * The judges: pure functions from one stage's snapshot (and the clock) to that part's answer.
 * A part is healthy exactly when it has no problem; each problem says what is wrong, what it
 * affects and what to do. Nothing here reads a socket, a file or the time by itself.
 */
import type { AmiHealth } from '../ami/index.js';
import { formatDuration } from '../common/duration.js';
import type { OdooHealthSnapshot } from '../odoo/index.js';
import type { WebhookHealth } from '../webhooks/index.js';
import type { SecurityLogHealth } from '../sources/index.js';
import type { GuardSnapshot, HealthInputs, HealthReport, PartHealth, StoreSnapshot } from './types.js';
import { ago, disabled, iso, OUTBOX_FULL_RATIO, part } from './judge-parts.js';
import { judgeFleet } from './fleet.js';
import { judgeFeeds } from './feeds.js';

export { ago, OUTBOX_FULL_RATIO } from './judge-parts.js';

/** a store write error this recent still counts, even if later writes succeeded */
export const STORE_ERROR_RECENT_MS = 5 * 60_000;
/** the Odoo outbox's oldest undelivered call may wait this long (Odoo restarts, short outages) */
export const ODOO_OLDEST_MAX_MS = 5 * 60_000;
/** calls to Odoo may fail for this long before the bridge counts as down (retries absorb blips) */
export const ODOO_FAILING_MAX_MS = 60_000;
/** a webhook receiver may fail for this long (its events wait in its outbox meanwhile) */
export const WEBHOOK_FAILING_MAX_MS = 5 * 60_000;

const DEFAULT_SECURITY_ADVICE =
  'add "read = security" (keep the classes it already has, e.g. read = system,call,security) to this user\'s section of ' +
  '/etc/asterisk/manager.conf, then run "asterisk -rx \'manager reload\'"';

function withoutRetry(message: string): string {
  return message.replace(/; (retrying in [\d.]+s|not retrying \(client stopped\))$/, '');
}

export function judgeAmi(a: AmiHealth | null, now: number): PartHealth {
  if (!a) return disabled('ami', 'AMI disabled (ami.enabled: false): no security events reach the guard');
  const where = `${a.host}:${a.port}`;
  const detail = {
    state: a.state,
    host: a.host,
    port: a.port,
    username: a.username,
    since: iso(a.since),
    security: a.security,
    classesSeen: a.classesSeen,
    lastEventAt: iso(a.lastEventAt),
    lastSecurityEventAt: iso(a.lastSecurityEventAt),
    lastLoginError: a.lastLoginError ? { ...a.lastLoginError, at: iso(a.lastLoginError.at) } : null,
    advice: a.advice,
  };
  if (a.state === 'connected') {
    const classes = a.classesSeen.length > 0 ? a.classesSeen.join(',') : 'none yet';
    const summary =
      `connected to ${where} as "${a.username}" for ${formatDuration(Math.max(0, (now - a.since) / 1000))}; ` +
      `classes received: ${classes}; security ${a.security}; last security event ${ago(a.lastSecurityEventAt, now)}`;
    return part('ami', summary, [], detail);
  }
  const problems: string[] = [];
  const err = a.lastLoginError;
  if (err) {
    let text = `${withoutRetry(err.message)} (${ago(err.at, now)}; the daemon keeps retrying)`;
    if (err.kind === 'auth') text += '. Fix ami.username / ami.secret in the config (they must match the user in manager.conf), then restart pbx-guardian';
    if (a.advice) text += `. ${a.advice}`;
    problems.push(text);
  } else {
    problems.push(
      `not logged in to AMI at ${where} (${a.state} for ${formatDuration(Math.max(0, (now - a.since) / 1000))}): no security events reach the guard. ` +
        'If it lasts, check that Asterisk runs and that manager.conf has enabled = yes on this address and port',
    );
  }
  return part('ami', `not connected to ${where} as "${a.username}" (${a.state})`, problems, detail);
}

export function judgeGuard(g: GuardSnapshot, ami: AmiHealth | null, now: number): PartHealth {
  const problems: string[] = [];
  const log = g.securityLog ?? null;
  const detail = {
    rules: g.rules,
    tracked: g.tracked,
    maxTracked: g.maxTracked,
    activeBans: g.activeBans,
    amiSecurity: ami?.security ?? null,
    ...(log ? { securityLog: logDetail(log) } : {}),
  };
  if (g.rules === 0)
    problems.push(
      "no detection rules are loaded: nothing can be detected. Check guard.rulesDir (the shipped rules are in the package's rules/ folder), then pbx-guardian reload",
    );
  // a followed security log sees what AMI does not: then AMI being blind is no blind guard (the
  // ami part still says why AMI is down)
  const blindProblem = (text: string) => {
    if (!log?.following) problems.push(text);
  };
  const BLIND = log?.following ? 'AMI BLIND' : 'BLIND';
  let eyes: string;
  if (!ami) {
    eyes = 'AMI disabled: bans come only from the CLI, Odoo, REST and HTTP authentication failures';
  } else if (ami.security === 'verified') {
    eyes = 'receives AMI security events';
  } else if (ami.security === 'missing') {
    eyes = `${BLIND}: the AMI session receives no security events`;
    const advice = ami.advice
      ? ami.advice.charAt(0).toUpperCase() + ami.advice.slice(1)
      : `${DEFAULT_SECURITY_ADVICE.charAt(0).toUpperCase()}${DEFAULT_SECURITY_ADVICE.slice(1)}; the guard notices the change without a restart`;
    blindProblem(`blind: the AMI user "${ami.username}" does not receive security events, so no attack is seen and nothing is banned. ${advice}`);
  } else if (ami.security === 'checking') {
    eyes = 'checking that the AMI session receives security events';
    blindProblem(
      `not yet verified that the AMI user "${ami.username}" receives security events (logged in ${ago(ami.since, now)}): until then attacks may go unseen. ` +
        `Asterisk proves it at once with the session's own SuccessfulAuth; if this lasts, ${DEFAULT_SECURITY_ADVICE}`,
    );
  } else {
    eyes = `${BLIND}: not logged in to AMI`;
    blindProblem('blind: not logged in to AMI, so no security events reach the rules and nothing is banned automatically (see the ami line for the cause)');
  }
  const full = g.tracked >= g.maxTracked ? ` (at guard.maxTracked: the least recent are forgotten)` : '';
  const summary = `${g.rules} rules, ${g.tracked} addresses tracked${full}, ${g.activeBans} active bans; ${eyes}${log ? `; ${logEyes(log)}` : ''}`;
  if (log && !log.following) {
    problems.push(
      `the security log is not followed (${log.lastError ?? 'not open'}): its events are not seen. Check sources.securityLog.path and that ` +
        "Asterisk's logger.conf writes a security channel there (e.g. security => security); the file is opened when it appears",
    );
  }
  return part('guard', summary, problems, detail);
}

function logEyes(log: SecurityLogHealth): string {
  if (!log.following) return `security log ${log.path} NOT followed`;
  const counted = log.mode === 'always' ? 'counted' : log.amiCovers ? 'not counted while AMI delivers (fallback)' : 'counted (fallback: AMI does not deliver)';
  return `reads the security log ${log.path}: ${counted}`;
}

function logDetail(log: SecurityLogHealth): Record<string, unknown> {
  return {
    path: log.path,
    mode: log.mode,
    following: log.following,
    amiCovers: log.amiCovers,
    lastLineAt: iso(log.lastLineAt),
    lastError: log.lastError,
    rotations: log.rotations,
    truncations: log.truncations,
    longLines: log.longLines,
    counts: log.counts,
  };
}

export function judgeFirewall(input: HealthInputs['firewall'], now: number): PartHealth {
  const f = input.health;
  const detail = {
    configured: input.configured,
    ...f,
    kernelCountedAt: iso(f.kernelCountedAt),
    lastSuccessAt: iso(f.lastSuccessAt),
    lastError: f.lastError ? { ...f.lastError, at: iso(f.lastError.at) } : null,
  };
  const problems: string[] = [];
  const lastError = f.lastError ? `${f.lastError.message} (${ago(f.lastError.at, now)})` : 'no error recorded';
  if (f.state === 'failing') {
    problems.push(
      `enforcement is failing (backend ${f.backend}): ${lastError}. New bans are queued (${f.queued}) and detection goes on; it retries with backoff. ` +
        'Fix the cause (root or CAP_NET_ADMIN, nft or ipset installed; journalctl -u pbx-guardian)',
    );
  } else if (f.state === 'paused') {
    problems.push(
      `enforcement is paused on purpose${f.pausedReason ? ` (${f.pausedReason})` : ''}: no ban reaches the kernel. ` +
        `The ${f.storeActive} active bans stay in the store and go back into the kernel with "pbx-guardian resume" (or a restart)`,
    );
  } else if (f.state === 'starting') {
    const r = f.restoring;
    problems.push(
      r
        ? `enforcement is starting (backend ${f.backend}): restoring the stored bans into the kernel, ${r.done} of ${r.total} done; new bans go in meanwhile`
        : `enforcement is starting (backend ${f.backend}): the active bans are not all in the kernel yet`,
    );
  } else if (f.state === 'stopped') {
    problems.push('enforcement is stopped: the daemon is shutting down');
  }
  if (f.dryRun && input.configured !== 'memory') {
    problems.push(
      `firewall.backend is "${input.configured}" but the enforcer runs the memory backend: nothing reaches the kernel. Check the startup log for why, then restart`,
    );
  }
  // paused: the table is gone on purpose, the paused problem says so
  if (f.tablePresent === false && f.state !== 'paused') {
    problems.push(
      `our firewall table / sets are missing from the kernel (flushed by someone: nft flush ruleset, a firewalld or iptables-restore reload?): bans are not enforced until they are re-created`,
    );
  } else if (!f.dryRun && f.kernelElements === 0 && f.storeActive > 0 && f.state === 'enforcing') {
    problems.push(
      `the kernel holds no ban element but the store has ${f.storeActive} active bans (counted ${ago(f.kernelCountedAt, now)}): they are not enforced until the next repair or reconcile`,
    );
  }
  const kernel = f.kernelElements === null ? '' : `${f.kernelElements} elements in the kernel, `;
  let summary: string;
  if (f.dryRun) {
    summary = `DRY RUN (backend memory): ${f.storeActive} active bans are recorded but nothing reaches the kernel; set firewall.backend to auto to enforce`;
  } else if (f.state === 'enforcing') {
    summary = `enforcing with ${f.backend}: ${kernel}${f.storeActive} active bans in the store; last transaction ${ago(f.lastSuccessAt, now)}`;
  } else {
    summary = `${f.state} (backend ${f.backend}): ${kernel}${f.storeActive} active bans in the store, ${f.queued} changes queued`;
  }
  if (f.repairs > 0) summary += `; ${f.repairs} repairs since start`;
  return part('firewall', summary, problems, detail);
}

export function judgeStore(s: StoreSnapshot, now: number): PartHealth {
  const problems: string[] = [];
  const detail = { ...s, lastWriteError: s.lastWriteError ? { ...s.lastWriteError, at: iso(s.lastWriteError.at) } : null, lastWriteOkAt: iso(s.lastWriteOkAt) };
  if (!s.onDisk) {
    problems.push(
      `running on in-memory state: the state database in ${s.stateDir} could not be opened${s.openError ? ` (${s.openError})` : ''}. ` +
        'Bans are enforced but are lost at the next restart, and escalation forgets repeat offenders. Make the directory writable (mount, free space, permissions), then restart pbx-guardian',
    );
  }
  const e = s.lastWriteError;
  const stillFailing = e !== null && (s.lastWriteOkAt ?? 0) < e.at;
  if (e && (stillFailing || now - e.at < STORE_ERROR_RECENT_MS)) {
    problems.push(
      `${e.lost} state writes failed ${ago(e.at, now)} (${e.message})${stillFailing ? '' : '; writes succeed again since'}: ` +
        `those bans are in the kernel but may not survive a restart. Check free space and permissions of ${s.path}`,
    );
  }
  const summary = s.onDisk ? `state in ${s.path}` : `IN MEMORY ONLY (${s.stateDir} could not be opened)`;
  return part('store', summary, problems, detail);
}

export function judgeOdoo(o: OdooHealthSnapshot | null, now: number): PartHealth {
  if (!o) return disabled('odoo', 'Odoo bridge disabled (odoo.enabled: false)');
  const problems: string[] = [];
  const r = o.rpc;
  const detail = {
    ...o,
    oldestUndeliveredAt: iso(o.oldestUndeliveredAt),
    rpc: r
      ? { ...r, failingSince: iso(r.failingSince), lastOkAt: iso(r.lastOkAt), lastError: r.lastError ? { ...r.lastError, at: iso(r.lastError.at) } : null }
      : null,
  };
  if (r?.authError) problems.push(`Odoo refuses our login: ${r.authError}. Events wait in the outbox (${o.outboxDepth}) until it is fixed`);
  else if (r?.failingSince != null && now - r.failingSince > ODOO_FAILING_MAX_MS) {
    problems.push(
      `calls to Odoo at ${o.url} fail since ${ago(r.failingSince, now)} (${r.lastError?.message ?? 'no answer'}): events wait in the outbox (${o.outboxDepth}). ` +
        'Check that Odoo runs and that odoo.url is reachable from this host',
    );
  }
  if (o.oldestUndeliveredAt !== null && now - o.oldestUndeliveredAt > ODOO_OLDEST_MAX_MS) {
    problems.push(
      `the oldest undelivered event was queued ${ago(o.oldestUndeliveredAt, now)} (${o.outboxDepth} in the outbox): Odoo is down, slow or refusing calls, ` +
        'and events expire from the outbox after their odoo.outboxPolicy ttl. See the log (journalctl -u pbx-guardian) for the calls that fail',
    );
  }
  if (o.outboxDepth >= o.outboxMaxRows * OUTBOX_FULL_RATIO) {
    problems.push(`the outbox is nearly full (${o.outboxDepth} of odoo.outboxMaxRows ${o.outboxMaxRows}): the oldest low-priority events are dropped next`);
  }
  if (o.jobEndpoint === 'no-token') {
    problems.push(
      'the job endpoint is not running: odoo.agentToken is empty, so Odoo cannot send jobs (calls, bans, recordings). Run "pbx-guardian odoo init" or copy the token from the Asterisk Plus server form, then restart',
    );
  }
  const login = r === null ? 'RPC client injected' : r.loggedIn ? `logged in as ${o.user || '(api key)'}` : r.authError ? 'login REFUSED' : 'not logged in yet';
  const outbox = o.outboxDepth === 0 ? 'outbox empty' : `outbox ${o.outboxDepth} (oldest ${ago(o.oldestUndeliveredAt, now)})`;
  const summary = `${o.url} db ${o.db}: ${login}; ${outbox}; ${o.mode === 'direct' ? 'delivering directly' : 'draining the outbox'}; job endpoint ${o.jobEndpoint}`;
  return part('odoo', summary, problems, detail);
}

export function judgeWebhooks(list: WebhookHealth[] | null, now: number): PartHealth {
  if (!list) return disabled('webhooks', 'no webhooks configured');
  const problems: string[] = [];
  const lines: string[] = [];
  for (const w of list) {
    const failingLong = w.failingSince !== null && now - w.failingSince > WEBHOOK_FAILING_MAX_MS;
    if (failingLong) {
      problems.push(
        `webhook ${w.name} fails since ${ago(w.failingSince, now)} (${w.lastError ?? 'no answer'}): ${w.depth} events wait in its outbox, ` +
          'retried in order. Check that the receiver answers 2xx at its url',
      );
    }
    if (w.depth >= w.maxRows * OUTBOX_FULL_RATIO)
      problems.push(`webhook ${w.name}: its outbox is nearly full (${w.depth} of maxRows ${w.maxRows}): the oldest events are dropped next`);
    lines.push(`${w.name} ${w.failingSince === null ? 'delivering' : `FAILING since ${ago(w.failingSince, now)}`} (${w.depth} waiting)`);
  }
  const detail = { subscribers: list.map((w) => ({ ...w, oldestUndeliveredAt: iso(w.oldestUndeliveredAt), failingSince: iso(w.failingSince) })) };
  return part('webhooks', `${list.length} subscriber${list.length === 1 ? '' : 's'}: ${lines.join(', ')}`, problems, detail);
}

/** Every part judged from one set of snapshots. */
export function judgeHealth(inputs: HealthInputs, now: number): HealthReport {
  const parts = [
    judgeAmi(inputs.ami, now),
    judgeGuard(inputs.guard, inputs.ami, now),
    judgeFirewall(inputs.firewall, now),
    judgeStore(inputs.store, now),
    judgeOdoo(inputs.odoo, now),
    judgeWebhooks(inputs.webhooks, now),
    judgeFleet(inputs.fleet, now),
    judgeFeeds(inputs.feeds, now),
  ];
  return { healthy: parts.every((p) => !p.enabled || p.healthy), parts, checkedAt: new Date(now).toISOString() };
}
