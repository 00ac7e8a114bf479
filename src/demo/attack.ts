import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { splitTranscript } from '../ami/index.js';

/** One simulated source: who, which real transcript it replays, and how often. */
export interface DemoSource {
  address: string;
  /** what the terminal calls it */
  role: 'attacker' | 'office (allow-listed)' | 'phone';
  transcript: string;
  /** replays per second */
  rate: number;
}

/** Attackers (IPv4 and IPv6, SIP and AMI), an allow-listed office with typos, and real phones. */
export const DEMO_SOURCES: DemoSource[] = [
  { address: '203.0.113.5', role: 'attacker', transcript: 'security-sip-register-wrong-password.raw', rate: 2 },
  { address: '203.0.113.66', role: 'attacker', transcript: 'security-sip-register-unknown-peer.raw', rate: 1 },
  { address: '198.51.100.23', role: 'attacker', transcript: 'security-ami-invalid-password.raw', rate: 0.7 },
  { address: '198.51.100.24', role: 'attacker', transcript: 'security-ami-challenge-response-failed.raw', rate: 0.5 },
  { address: '2001:db8:bad:1::17', role: 'attacker', transcript: 'security-sip-register-wrong-password-ipv6.raw', rate: 1 },
  { address: '2001:db8:bad:1::42', role: 'attacker', transcript: 'security-ami-invalid-password-ipv6.raw', rate: 0.6 },
  { address: '203.0.113.99', role: 'attacker', transcript: 'security-ami-request-not-allowed.raw', rate: 0.3 },
  { address: '192.0.2.10', role: 'office (allow-listed)', transcript: 'security-sip-register-wrong-password.raw', rate: 1 },
  { address: '192.0.2.20', role: 'phone', transcript: 'security-sip-register-success.raw', rate: 1 },
  { address: '192.0.2.21', role: 'phone', transcript: 'security-sip-register-success.raw', rate: 1 },
  { address: '2001:db8:100::21', role: 'phone', transcript: 'security-sip-register-success.raw', rate: 0.5 },
];

const FAMILY_ADDRESS = /^(RemoteAddress: IPV)[46](\/(?:[A-Z]+\/)?)(.*)(\/\d+)$/;

/**
 * Rewrites a real recorded frame so that it comes from `address`: the RemoteAddress header (family
 * and address; transport and port kept) and the PeerStatus Address header.
 */
export function retarget(frame: string, address: string): string {
  const family = address.includes(':') ? '6' : '4';
  return frame
    .split('\r\n')
    .map((line) => {
      const m = FAMILY_ADDRESS.exec(line);
      if (m) return `${m[1]}${family}${m[2]}${address}${m[4]}`;
      if (line.startsWith('Address: ')) return `Address: ${address}`;
      return line;
    })
    .join('\r\n');
}

/** The frames of a recorded transcript, ready to be retargeted and sent. */
export function loadTemplate(fixturesDir: string, name: string): string[] {
  return splitTranscript(readFileSync(join(fixturesDir, name))).map((f) => f.raw);
}

/** Bytes of one replay of a source's transcript. */
export function replayBytes(template: string[], address: string): string {
  return template.map((f) => retarget(f, address) + '\r\n\r\n').join('');
}
