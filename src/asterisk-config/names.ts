/**
 * Which Asterisk config files config sync may touch.
 *
 * It writes and deletes only the files it owns: `<base>_<marker>.conf` (or
 * `<base>_<marker>_<anything>.conf`) for a base in asteriskConfig.bases, each #included from
 * `<base>.conf`. The bases below are refused whatever the config says, for every operation
 * (write, delete, the #include line, and read): each decides who can reach or control Asterisk,
 * what it loads, or what the guard sees, and some hold credentials.
 */

export const PROTECTED_BASES: ReadonlyMap<string, string> = new Map([
  ['asterisk', "Asterisk's directories, run user and execincludes"],
  ['modules', 'which modules Asterisk loads'],
  ['manager', 'AMI users, their secrets and permissions'],
  ['ari', 'ARI users and their passwords'],
  ['http', 'the HTTP server that serves AMI over HTTP and ARI, and its TLS key'],
  ['acl', 'named ACLs that manager.conf and the channel drivers refer to'],
  ['cli', 'CLI commands run at start-up'],
  ['cli_permissions', 'who may run which CLI command'],
  ['cli_aliases', 'CLI aliases (any harmless-looking name can stand for core stop)'],
  ['logger', "the logs, among them the security log and AMI's security events the guard relies on"],
  ['extconfig', 'which configuration Asterisk reads from a database instead (realtime)'],
  ['sorcery', 'where objects such as PJSIP endpoints and auths are loaded from'],
  ['res_odbc', 'database connections and their passwords'],
  ['res_pgsql', 'database connections and their passwords'],
  ['res_config_mysql', 'database connections and their passwords'],
]);

/** pjsip_wizard: Asterisk Plus generates its SIP peers as wizard sections (sip.get_peers) */
export const DEFAULT_BASES = ['extensions', 'pjsip', 'pjsip_wizard', 'queues', 'voicemail'];

const BASE_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** `s` matched literally inside a RegExp (the one escape of this stage; `-` too, for classes). */
export const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');

/** Why a file name (last path segment) belongs to a protected base, or null. */
export function protectedReason(file: string): string | null {
  const lower = file.toLowerCase();
  for (const [base, why] of PROTECTED_BASES) {
    if (lower === `${base}.conf` || (lower.startsWith(base) && /^[_-].*\.conf$/.test(lower.slice(base.length)))) {
      return `${base}.conf and the files it includes set ${why}`;
    }
  }
  return null;
}

/** The configured base a file name belongs to (extensions_odoo.conf → extensions), or null. */
export function managedBase(file: string, bases: readonly string[], marker: string): string | null {
  for (const base of bases) {
    if (new RegExp(`^${escapeRegExp(base)}[_-]${escapeRegExp(marker)}(?:[_-][A-Za-z0-9_.+-]*)?\\.conf$`).test(file)) return base;
  }
  return null;
}

/** Config errors of asteriskConfig.bases (a protected base is a hard refusal). */
export function validateBases(bases: unknown[]): string[] {
  const errors: string[] = [];
  bases.forEach((b, i) => {
    if (typeof b !== 'string' || !BASE_RE.test(b)) {
      errors.push(`asteriskConfig.bases[${i}]: a config file name without .conf, like extensions or pjsip (letters, digits, "_" or "-")`);
      return;
    }
    const why = PROTECTED_BASES.get(b.toLowerCase());
    if (why) {
      errors.push(
        `asteriskConfig.bases[${i}]: "${b}" is refused: ${b}.conf sets ${why}, so config sync never writes, includes into or reads it. Remove it from asteriskConfig.bases and edit that file by hand`,
      );
    }
  });
  return errors;
}
