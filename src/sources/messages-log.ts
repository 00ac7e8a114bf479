/**
 * Asterisk's `messages` log (what Debian's fail2ban asterisk jail reads): the NOTICE / WARNING
 * lines chan_sip, res_pjsip, chan_iax2 and manager.c write for a refused request, as security
 * events. Every line fail2ban's asterisk filter (filter.d/asterisk.conf) matches is read; the
 * SECURITY lines some setups also log there go through the security-log parser.
 *
 * Attacker text sits in these lines (the From header, the dialled extension, the Call-ID, the
 * user name): every pattern is anchored at the end of the line, where Asterisk's own words are,
 * and a line where a pattern's marker appears twice is ambiguous (an attacker can write one
 * marker and a forged address into its own text) and never counted.
 */
import type { Observation } from '../guard/index.js';
import { parseNetwork } from '../net/ip.js';
import { asteriskObservation } from './asterisk-event.js';
import { FieldView } from './security-log.js';

/** host, host:port, [v6]:port, bare v6 */
const HOST = String.raw`(\[[0-9A-Fa-f:.]+\](?::\d+)?|[0-9A-Fa-f:.]+)`;

interface Pattern {
  /** anchored at the line start through Asterisk's own prefix ([^']*: no attacker text before
   *  the first quote), so a line is tried from one position only */
  re: RegExp;
  /** texts Asterisk writes once per line: more than one = forged. Counted before `re` runs: with
   *  one marker the `.*` of `re` backtracks once, so a line costs time linear in its length */
  markers: string[];
  /** Asterisk's words at the end of the line: names the event of a forged line */
  tail: RegExp;
  /** reason text → event name */
  event: (reason: string) => string | null;
  service: (line: string) => string;
}

const sipOrPjsip = (line: string) => (/res_pjsip|pjsip/.test(line) ? 'PJSIP' : 'SIP');

const REGISTRATION: Record<string, string> = {
  'Wrong password': 'InvalidPassword',
  'Username/auth name mismatch': 'InvalidAccountID',
  'No matching peer found': 'InvalidAccountID',
  'Not a local domain': 'InvalidAccountID',
  'Device does not match ACL': 'FailedACL',
  'ACL error (permit/deny)': 'FailedACL',
  'Peer is not supposed to register': 'RequestNotAllowed',
};

const PJSIP_REASON = String.raw`(No matching endpoint found|Not match Endpoint(?: Contact)? ACL|(?:Failed|Error) to authenticate)`;
const HOST_WORDS = String.raw`(failed to authenticate as|failed MD5 authentication for|tried to authenticate with nonexistent user)`;

const PATTERNS: Pattern[] = [
  {
    // chan_sip: Registration from '<From>' failed for '1.2.3.4:5060' - Wrong password
    re: new RegExp(String.raw`^[^']*Registration from '.*' failed for '${HOST}' - (.+?)\s*$`),
    markers: ["' failed for '"],
    tail: /' - ([A-Za-z/ ()]+?)\s*$/,
    event: (r) => REGISTRATION[r] ?? null,
    service: () => 'SIP',
  },
  {
    // res_pjsip: Request 'INVITE' from '<From>' failed for '1.2.3.4:5060' (callid: X) - No matching endpoint found
    re: new RegExp(String.raw`^[^']*Request (?:'[^']*' )?from '.*' failed for '${HOST}' \(callid: .*\) - ${PJSIP_REASON}\s*$`),
    markers: ["' failed for '"],
    tail: new RegExp(String.raw`\) - ${PJSIP_REASON}\s*$`),
    event: (r) => (r === 'No matching endpoint found' ? 'InvalidAccountID' : r.endsWith('ACL') ? 'FailedACL' : 'ChallengeResponseFailed'),
    service: () => 'PJSIP',
  },
  {
    // chan_sip / res_pjsip_session: Call from '<name>' (TCP:[1.2.3.4]:61470) to extension '<exten>' rejected because extension not found in context 'default'.
    re: new RegExp(
      String.raw`^[^']*Call from '.*' \((?:[A-Za-z]+:)?${HOST}\) to extension '.*' rejected because extension not found in context '[^']*'\.?\s*$`,
    ),
    markers: [") to extension '"],
    tail: /( )rejected because extension not found in context '[^']*'\.?\s*$/,
    event: () => 'RequestNotAllowed',
    service: sipOrPjsip,
  },
  {
    // chan_iax2 / manager.c: Host 1.2.3.4 failed to authenticate as 'x'; 1.2.3.4 tried to authenticate with nonexistent user 'x'
    re: new RegExp(String.raw`^[^']*?: (?:Host )?${HOST} ${HOST_WORDS} '.*'(?: \([0-9a-f]+ != [0-9a-f]+\))?\s*$`),
    markers: [" failed to authenticate as '", " failed MD5 authentication for '", " tried to authenticate with nonexistent user '"],
    tail: new RegExp(String.raw`^[^']*? ${HOST_WORDS} '`),
    event: (r) => (r.startsWith('failed MD5') ? 'ChallengeResponseFailed' : r.startsWith('tried') ? 'InvalidAccountID' : 'InvalidPassword'),
    service: (line) => (/manager\.c/.test(line) ? 'AMI' : 'IAX2'),
  },
  {
    // chan_iax2: No registration for peer 'x' (from 1.2.3.4)
    re: new RegExp(String.raw`^[^']*No registration for peer '.*' \(from ${HOST}\)\s*$`),
    markers: ["' (from "],
    tail: /' \(from( )\S+\)\s*$/,
    event: () => 'InvalidAccountID',
    service: () => 'IAX2',
  },
  {
    re: new RegExp(String.raw`^[^']*hacking attempt detected '${HOST}'\s*$`),
    markers: ["hacking attempt detected '"],
    tail: /hacking attempt detected( )'[^']*'\s*$/,
    event: () => 'RequestBadFormat',
    service: () => 'SIP',
  },
  {
    // a FreePBX dialplan's warning
    re: new RegExp(String.raw`"Rejecting unknown SIP connection from ${HOST}"\s*$`),
    markers: ['Rejecting unknown SIP connection from '],
    tail: /"Rejecting unknown SIP connection from( )[^"]*"\s*$/,
    event: () => 'RequestNotAllowed',
    service: () => 'SIP',
  },
];

/** "1.2.3.4", "1.2.3.4:5060", "[2001:db8::1]:5060", "2001:db8::1" → address and port. */
export function splitHost(token: string): { address: string; port: string } | null {
  let address = token;
  let port = '0';
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(token);
  if (bracket) {
    address = bracket[1]!;
    port = bracket[2] ?? '0';
  } else if (token.includes('.')) {
    const m = /^([0-9.]+)(?::(\d+))?$/.exec(token);
    if (!m) return null;
    address = m[1]!;
    port = m[2] ?? '0';
  }
  const net = parseNetwork(address);
  return net && net.prefix === net.bytes.length * 8 ? { address, port } : null;
}

export interface MessagesLine {
  event: string;
  service: string;
  /** null when the line is ambiguous (a marker twice) or its host is no address */
  address: string | null;
  port: string;
  ambiguous: boolean;
}

/** The security event of one messages-log line, or null when it is none. */
export function parseMessagesLine(line: string): MessagesLine | null {
  if (line.length > 8192 || !/(NOTICE|WARNING)/.test(line)) return null;
  for (const p of PATTERNS) {
    const markers = p.markers.reduce((n, m) => n + occurrences(line, m), 0);
    if (markers === 0) continue;
    if (markers > 1) {
      // forged: named by Asterisk's words at the end of the line, its address never read
      const t = p.tail.exec(line);
      const event = t ? p.event(t[1] ?? '') : null;
      if (event !== null) return { event, service: p.service(line), address: null, port: '0', ambiguous: true };
      continue;
    }
    const m = p.re.exec(line);
    if (!m) continue;
    const event = p.event(m[2] ?? '');
    if (event === null) continue;
    const host = splitHost(m[1]!);
    return { event, service: p.service(line), address: host ? host.address : null, port: host?.port ?? '0', ambiguous: false };
  }
  return null;
}

/** 0, 1 or 2 (more is still 2: forged) */
function occurrences(text: string, part: string): number {
  let n = 0;
  for (let i = text.indexOf(part); i >= 0 && n < 2; i = text.indexOf(part, i + part.length)) n++;
  return n;
}

/** The line's time: "[2026-11-22 10:17:20]", "[Nov 22 10:17:20]" (this year), a syslog "Nov  4 18:30:40"; else `fallback`. */
export function messagesTime(line: string, fallback: number, year = new Date(fallback || Date.now()).getUTCFullYear()): number {
  const iso = /^\[(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.\d+)?\]/.exec(line);
  if (iso) {
    const t = Date.parse(`${iso[1]}T${iso[2]}Z`);
    return Number.isFinite(t) ? t : fallback;
  }
  const short = /^\[?([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}:\d{2}:\d{2})\]?/.exec(line);
  if (short) {
    const t = Date.parse(`${short[1]} ${short[2]} ${year} ${short[3]} UTC`);
    return Number.isFinite(t) ? t : fallback;
  }
  return fallback;
}

/** The observation of one parsed messages line seen at `now` (as a log source: 'security-log'). */
export function messagesObservation(m: MessagesLine, now: number): Observation {
  const fields = new Map<string, string>([
    ['event', m.event],
    ['service', m.service],
    ['severity', 'Error'],
  ]);
  if (m.address !== null) fields.set('remoteaddress', `${m.address.includes(':') ? 'IPV6' : 'IPV4'}/UDP/${m.address}/${m.port}`);
  return asteriskObservation(new FieldView(fields), m.event, 'security-log', now, m.ambiguous || m.address === null);
}
