import { isIP } from 'node:net';
import { parseIPv4 } from '../net/ip.js';
import type { RemoteAddress } from './types.js';

const TRANSPORTS = new Set(['UDP', 'TCP', 'TLS', 'WS', 'WSS']);
const MAX_LEN = 200;

/** A port as Asterisk writes it: 1-5 digits, at most 65535. */
export function parsePort(s: string): number | null {
  const len = s.length;
  if (len === 0 || len > 5) return null;
  let n = 0;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return null;
    n = n * 10 + (c - 48);
  }
  return n <= 65535 ? n : null;
}

/** Split `addr%scope`; only IPv6 may carry a scope, and it must look like an interface name/index. */
function splitScope(addr: string): { address: string; scope?: string } | null {
  const p = addr.indexOf('%');
  if (p < 0) return { address: addr };
  const scope = addr.slice(p + 1);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(scope)) return null;
  return { address: addr.slice(0, p), scope };
}

function bare(text: string): RemoteAddress | null {
  let s = text;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const sc = splitScope(s);
  if (!sc) return null;
  const fam = isIP(sc.address);
  if (fam === 4) return sc.scope === undefined ? { family: 4, address: sc.address } : null;
  if (fam === 6) return mapped(sc.address, sc.scope);
  return null;
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is reported as IPv4. */
function mapped(address: string, scope?: string): RemoteAddress | null {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (m && isIP(m[1]!) === 4) return scope === undefined ? { family: 4, address: m[1]! } : null;
  const out: RemoteAddress = { family: 6, address: address.toLowerCase() };
  if (scope !== undefined) out.scope = scope;
  return out;
}

/**
 * Parse an Asterisk security-event address: `IPV4|IPV6/` + optional transport
 * (`UDP|TCP|TLS|WS|WSS/`) + `address/port`, e.g. `IPV4/UDP/127.0.0.2/5062`, `IPV6/UDP/::1/60036`
 * (IPv6 without brackets, link-local possibly with `%scope`). Also accepts a bare address
 * (`127.0.0.2`, `::1`, `[::1]`). Returns null for anything else; never throws.
 * The address is validated with node:net isIP and must match the stated family, except that an
 * IPv4-mapped IPv6 address is returned as IPv4.
 */
export function parseRemoteAddress(text: string): RemoteAddress | null {
  if (typeof text !== 'string') return null;
  const s = text.trim();
  if (s.length === 0 || s.length > MAX_LEN) return null;
  const parts = s.split('/');
  if (parts.length === 1) return bare(s);
  if (parts.length !== 3 && parts.length !== 4) return null;
  const famText = parts[0]!.toUpperCase();
  if (famText !== 'IPV4' && famText !== 'IPV6') return null;
  let transport: string | undefined;
  if (parts.length === 4) {
    transport = parts[1]!.toUpperCase();
    if (!TRANSPORTS.has(transport)) return null;
  }
  const port = parsePort(parts[parts.length - 1]!);
  if (port === null) return null;
  const addressText = parts[parts.length - 2]!;
  let out: RemoteAddress | null;
  if (famText === 'IPV4') {
    if (!parseIPv4(addressText)) return null;
    out = { family: 4, address: addressText };
  } else {
    const sc = splitScope(addressText);
    if (!sc || isIP(sc.address) !== 6) return null;
    out = mapped(sc.address, sc.scope);
    if (!out) return null;
  }
  if (transport !== undefined) out.transport = transport;
  out.port = port;
  return out;
}
