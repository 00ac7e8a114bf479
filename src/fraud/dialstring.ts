/**
 * The dialled number of a DialBegin's DialString. What Asterisk puts there is the Dial() argument
 * after the technology (`Dial(PJSIP/0044...@trunk)` → `0044...@trunk`), so it is whatever the
 * dialplan builds; the forms seen and accepted:
 *   0088123@trunk                    the number @ the endpoint (the real Asterisk 22 captures)
 *   101                              an extension (internal call)
 *   trunk/sip:+4420...@host[:port]   endpoint / SIP URI (PJSIP's "send to this URI via endpoint")
 *   sip:+4420...@host;user=phone     a bare SIP URI (sips: too)
 *   tel:+44-20-7946-0000             a tel URI (visual separators - . ( ) dropped)
 *   PJSIP/trunk/sip:0044...@x        the same with the technology left on
 * Anything else (letters, a regex, nested URIs, over MAX_LENGTH) is not a number: the caller
 * falls back (tracker.ts) and counts it. Never throws; linear in the string (one bounded regex).
 */

/** Asterisk's AST_MAX_EXTENSION is 80; a URI with host and parameters fits in this */
const MAX_LENGTH = 300;
/** [TECH/][endpoint/][scheme:]user[@host or ;params] */
const FORM_RE = /^(?:(?:PJSIP|SIP|IAX2)\/)?(?:([A-Za-z0-9_.-]{1,80})\/)?(?:(sips?|tel):)?([^@;/]{1,80})(?:([@;])(.*))?$/;
const ENDPOINT_RE = /^[A-Za-z0-9_.-]{1,80}$/;
const NUMBER_RE = /^\+?[0-9*#]{1,32}$/;
/** RFC 3966 visual separators, allowed in tel: and user=phone numbers */
const VISUAL_RE = /[-.()]/g;

export interface ParsedDial {
  number: string;
  /** the endpoint the string names: the one after '@' (number@endpoint) or before '/' (endpoint/URI) */
  endpoint: string | null;
}

/** The number and endpoint of a DialString, or null when it holds no number. */
export function parseDialString(dialString: string): ParsedDial | null {
  if (dialString.length === 0 || dialString.length > MAX_LENGTH) return null;
  const m = FORM_RE.exec(dialString);
  if (!m) return null;
  const [, prefixEndpoint, scheme, rawUser, sep, rest] = m;
  let user = rawUser!;
  if (scheme !== undefined) user = decodePlus(user).replace(VISUAL_RE, '');
  if (!NUMBER_RE.test(user)) return null;
  if (scheme === undefined) {
    // number@endpoint (or a bare extension); a ';' without a scheme is no form Asterisk builds
    if (prefixEndpoint !== undefined || sep === ';') return null;
    return { number: user, endpoint: rest !== undefined && ENDPOINT_RE.test(rest) ? rest : null };
  }
  return { number: user, endpoint: prefixEndpoint ?? null };
}

/** %2B is how a '+' is often written in a SIP URI user part; nothing else is decoded */
function decodePlus(user: string): string {
  return user.replace(/^%2[bB]/, '+');
}
