import { parseRemoteAddress } from '../ami/index.js';
import { formatNetwork, parseNetwork, type IpNetwork } from '../net/ip.js';

/** Where a security event comes from, resolved once. */
export interface Attacker {
  address: IpNetwork;
  /** what it is counted and banned under: the address (IPv4) or its IPv6 prefix */
  key: IpNetwork;
  keyText: string;
}

/**
 * Resolves an event's RemoteAddress text to its attacker: `keyOf` gives the key an address is
 * counted under. This runs for every security event, so the form Asterisk writes for IPv4
 * (`IPV4/UDP/203.0.113.7/5060`) is scanned in one pass; anything else (IPv6, other spellings)
 * goes through parseRemoteAddress. Both accept exactly the same texts (test/fuzz-address).
 */
export function resolveAttacker(remoteText: string, keyOf: (address: IpNetwork) => IpNetwork): Attacker | null {
  const fast = scanAsteriskIPv4(remoteText);
  if (fast !== undefined) return fast;
  const remote = parseRemoteAddress(remoteText);
  const address = remote ? parseNetwork(remote.address) : null;
  if (!address) return null;
  const key = keyOf(address);
  return { address, key, keyText: formatNetwork(key) };
}

const C_SLASH = 47;
const C_DOT = 46;
const C_0 = 48;
const C_9 = 57;

/** Where the address starts after `IPV4/`: past an upper-case transport, or right there; -1 when
 *  the text is not in the fast form. */
function addressStart(s: string): number {
  if (!s.startsWith('IPV4/')) return -1;
  if (s.startsWith('UDP/', 5) || s.startsWith('TCP/', 5) || s.startsWith('TLS/', 5) || s.startsWith('WSS/', 5)) return 9;
  if (s.startsWith('WS/', 5)) return 8;
  const c = s.charCodeAt(5);
  return c >= C_0 && c <= C_9 ? 5 : -1;
}

/**
 * `IPV4/[TRANSPORT/]a.b.c.d/port` exactly as Asterisk writes it: the attacker (null when the
 * dotted quad or the port is invalid, as parseRemoteAddress would say), or undefined when the
 * text is in some other form. A dotted quad follows node:net's isIPv4 (no leading zeros).
 */
function scanAsteriskIPv4(s: string): Attacker | null | undefined {
  let i = addressStart(s);
  if (i < 0) return undefined;
  const n = s.length;
  let a = 0;
  let b = 0;
  let c = 0;
  let part = 0;
  let value = 0;
  let digits = 0;
  for (; i < n; i++) {
    const ch = s.charCodeAt(i);
    if (ch >= C_0 && ch <= C_9) {
      if (digits > 0 && value === 0) return null; // leading zero
      value = value * 10 + (ch - C_0);
      if (++digits > 3 || value > 255) return null;
    } else if (ch === C_DOT || ch === C_SLASH) {
      if (digits === 0) return null;
      if (ch === C_SLASH) {
        if (part !== 3) return null;
        break;
      }
      if (part === 0) a = value;
      else if (part === 1) b = value;
      else if (part === 2) c = value;
      else return null;
      part++;
      value = 0;
      digits = 0;
    } else {
      return undefined; // not the plain form (spaces, an IPv6 address after IPV4/, ...): the general parser decides
    }
  }
  if (i >= n) return undefined; // no port: the general parser decides
  const d = value;
  let port = 0;
  const portDigits = n - i - 1;
  if (portDigits < 1 || portDigits > 5) return null;
  for (let j = i + 1; j < n; j++) {
    const ch = s.charCodeAt(j);
    if (ch < C_0 || ch > C_9) return undefined; // e.g. trailing space: the general parser decides
    port = port * 10 + (ch - C_0);
  }
  if (port > 65535) return null;
  const address: IpNetwork = { family: 4, bytes: Uint8Array.of(a, b, c, d), prefix: 32 };
  return { address, key: address, keyText: `${a}.${b}.${c}.${d}` };
}
