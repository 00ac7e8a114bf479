import { parsePort, parseRemoteAddress } from '../ami/index.js';
import type { EventView } from '../guard/index.js';
import { formatNetwork, parseIPv4, parseNetwork, type IpNetwork } from '../net/ip.js';

/** Where a security event comes from, resolved once. */
export interface Attacker {
  address: IpNetwork;
  /** what it is counted and banned under: the address (IPv4) or its IPv6 prefix */
  key: IpNetwork;
  keyText: string;
}

/**
 * The event's RemoteAddress text ('' when absent), or null when the event carries two different
 * ones: such an event is ambiguous and never counted (the live path and `pbx-guardian check`
 * both judge it here).
 */
export function remoteAddressOf(event: EventView): string | null {
  const v = event.getSingle ? event.getSingle('RemoteAddress') : event.get('RemoteAddress');
  return v === null ? null : (v ?? '');
}

/**
 * The address of an Asterisk security-event address text (`IPV4/UDP/203.0.113.7/5060`,
 * `IPV6/UDP/2001:db8::1/5060`, ...), or null. This runs for every watched security event, so the
 * form Asterisk writes for IPv4 is read without splitting or re-validating; anything else (IPv6,
 * other spellings, invalid text) goes through parseRemoteAddress. Both accept exactly the same
 * texts (test/fuzz-address).
 */
export function parseAsteriskAddress(remoteText: string): IpNetwork | null {
  const fast = scanAsteriskIPv4(remoteText);
  if (fast !== undefined) return fast;
  const remote = parseRemoteAddress(remoteText);
  return remote ? parseNetwork(remote.address) : null;
}

/** parseAsteriskAddress with the key it is counted under (`keyOf`), for tests and tools. */
export function resolveAttacker(remoteText: string, keyOf: (address: IpNetwork) => IpNetwork): Attacker | null {
  const address = parseAsteriskAddress(remoteText);
  if (!address) return null;
  const key = keyOf(address);
  return { address, key, keyText: formatNetwork(key) };
}

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
 * `IPV4/[TRANSPORT/]a.b.c.d/port` exactly as Asterisk writes it: the address, or undefined when
 * the text is in any other form or not valid (the general parser then decides).
 */
function scanAsteriskIPv4(s: string): IpNetwork | undefined {
  const start = addressStart(s);
  if (start < 0) return undefined;
  const slash = s.indexOf('/', start);
  if (slash < 0 || parsePort(s.slice(slash + 1)) === null) return undefined;
  const bytes = parseIPv4(s.slice(start, slash));
  if (!bytes) return undefined;
  return { family: 4, bytes, prefix: 32 };
}
