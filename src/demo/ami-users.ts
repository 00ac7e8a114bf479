/**
 * manager.conf users for the AMI simulator, read the way Asterisk's manager.c does: a session's
 * delivered classes are its login `Events:` mask ∩ its user's `read` permissions copied at login.
 */

/** A manager.conf user section. */
export interface SimulatedUser {
  secret: string;
  /** manager.conf `read`, e.g. 'all', 'system,call,security' (default 'all') */
  read?: string;
  /** manager.conf `write`; checked for the Command action only (default: allowed) */
  write?: string;
  /** manager.conf allowmultiplelogin (default true) */
  allowMultipleLogin?: boolean;
}

/** Which event classes a session receives: every class, or only these. */
export type EventMask = 'all' | ReadonlySet<string>;

/** Login's `Events:` as Asterisk reads it (manager.c strings_to_mask): on/yes/true → every
 *  class, off/no/false → none, else a comma list of classes (security, system, call, ...). */
export function parseEventMask(text: string | undefined): EventMask {
  const t = (text ?? 'on').trim().toLowerCase();
  if (t === '' || ['on', 'yes', 'true', 'y', 't', '1'].includes(t)) return 'all';
  if (['off', 'no', 'false', 'n', 'f', '0'].includes(t)) return new Set();
  return new Set(
    t
      .split(',')
      .map((c) => c.trim())
      .filter(Boolean),
  );
}

/** manager.conf `read` (manager.c get_perm): a comma list; `all` is every class, `none` none. */
export function parseReadPerms(read: string | undefined): EventMask {
  const list = (read ?? 'all')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'none');
  return list.includes('all') ? 'all' : new Set(list);
}

/** set_eventmask(): `send_events = readperm & mask` (an empty Events header: readperm alone). */
export function intersectMasks(a: EventMask, b: EventMask): EventMask {
  if (a === 'all') return b;
  if (b === 'all') return a;
  return new Set([...a].filter((c) => b.has(c)));
}

export function maskHas(mask: EventMask, cls: string): boolean {
  return mask === 'all' || mask.has(cls);
}

/** manager.c's time format for EventTV / SessionTV: 2026-12-02T05:55:27.600+0000 */
function eventTv(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+0000');
}

export interface AuthSession {
  accountId: string;
  /** the session's id as Asterisk prints it (%p of the session struct) */
  sessionId: string;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  startedAt: number;
}

function amiAddress(address: string, port: number): string {
  const v6 = address.includes(':') && !address.startsWith('::ffff:');
  return `${v6 ? 'IPV6' : 'IPV4'}/TCP/${address.replace(/^::ffff:/, '')}/${port}`;
}

/** The SuccessfulAuth frame Asterisk 22 reports for an AMI login (manager.c report_auth_success;
 *  frame shape as recorded in ami-asterisk22-pjsip/pjsip-udp-wrong-password.raw). */
export function successfulAuthFrame(a: AuthSession): string {
  const tv = eventTv(a.startedAt);
  return (
    [
      'Event: SuccessfulAuth',
      'Privilege: security,all',
      `EventTV: ${tv}`,
      'Severity: Informational',
      'Service: AMI',
      'EventVersion: 1',
      `AccountID: ${a.accountId}`,
      `SessionID: ${a.sessionId}`,
      `LocalAddress: ${amiAddress(a.localAddress, a.localPort)}`,
      `RemoteAddress: ${amiAddress(a.remoteAddress, a.remotePort)}`,
      'UsingPassword: 0',
      `SessionTV: ${tv}`,
    ]
      .map((l) => l + '\r\n')
      .join('') + '\r\n'
  );
}

/** `manager show user <name>` as manager.c handle_showmanager prints it (no ACL lines). */
export function showUserOutput(name: string, user: SimulatedUser | undefined): string[] {
  if (!user) return [`There is no manager called ${name}`];
  const perms = (m: EventMask) => (m === 'all' ? 'all' : [...m].join(',') || '<none>');
  return [
    '',
    `          username: ${name}`,
    '            secret: <Set>',
    '               ACL: no',
    `         read perm: ${perms(parseReadPerms(user.read))}`,
    `        write perm: ${perms(parseReadPerms(user.write))}`,
    '   displayconnects: yes',
    `allowmultiplelogin: ${user.allowMultipleLogin === false ? 'no' : 'yes'}`,
    '         Variables: ',
  ];
}
