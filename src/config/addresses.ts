/**
 * Checks of every address, host and listener in the config, so that a typo is a ConfigError at
 * load time (exit 2) and never a failure after the daemon has touched the kernel.
 */
import { parseNetwork } from '../net/ip.js';

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
/** what node and the guard take for an address literal rather than a name */
const LOOKS_LITERAL = /^[0-9./]+$|:/;

/** Problems in a list of addresses or CIDRs, each naming the key and the entry. */
export function addressListErrors(key: string, items: readonly string[]): string[] {
  const errors: string[] = [];
  items.forEach((item, i) => {
    if (parseNetwork(item) === null)
      errors.push(`${key}[${i}]: "${String(item).slice(0, 80)}" is not an IPv4/IPv6 address or CIDR (e.g. 192.0.2.10, 198.51.100.0/24, 2001:db8::/48)`);
  });
  return errors;
}

/** A host to connect to or listen on: an address literal (no prefix) or a DNS name. */
export function hostError(key: string, host: string): string | null {
  if (typeof host !== 'string' || host === '') return `${key}: empty: set an address (e.g. 127.0.0.1) or a host name`;
  if (LOOKS_LITERAL.test(host)) {
    const net = parseNetwork(host.replace(/^\[|\]$/g, ''));
    if (net === null || host.includes('/')) return `${key}: "${host.slice(0, 80)}" is not an IPv4/IPv6 address`;
    return null;
  }
  return HOSTNAME.test(host) ? null : `${key}: "${host.slice(0, 80)}" is neither an IP address nor a host name`;
}

export interface TcpListener {
  /** config key prefix, e.g. "metrics" or "odoo.listen" */
  key: string;
  host: string;
  port: number;
}

/** Whether two listen hosts can collide on one port: the same host, "::" (every address, both
 *  families on Linux) with anything, "0.0.0.0" with any IPv4 address. */
function overlap(a: string, b: string): boolean {
  if (a === b || a === '::' || b === '::') return true;
  const v4 = (h: string) => parseNetwork(h)?.family === 4;
  return (a === '0.0.0.0' && v4(b)) || (b === '0.0.0.0' && v4(a));
}

/** Enabled TCP listeners with a bad host, or two on one port (the second would fail to bind). */
export function listenerErrors(listeners: readonly TcpListener[]): string[] {
  const errors: string[] = [];
  for (const l of listeners) {
    const h = hostError(`${l.key}.host`, l.host);
    if (h) errors.push(h);
    if (!Number.isInteger(l.port) || l.port < 0 || l.port > 65535) errors.push(`${l.key}.port: ${l.port} is not a TCP port (0-65535)`);
  }
  listeners.forEach((a, i) => {
    for (const b of listeners.slice(i + 1)) {
      if (a.port === 0 || a.port !== b.port) continue;
      if (overlap(a.host, b.host)) {
        errors.push(`${b.key}.port: ${b.port} is also ${a.key}.port (${a.host} and ${b.host} overlap): give each listener its own port`);
      }
    }
  });
  return errors;
}
