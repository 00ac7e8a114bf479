/** The attacker-controlled text the accounts stage keeps, checked and cut to size. */
import { parseNetwork, isSingleAddress, type IpNetwork } from '../net/ip.js';

export const SIGNALS = ['new-network', 'new-user-agent', 'distant-networks'] as const;
export type Signal = (typeof SIGNALS)[number];

/** A PJSIP endpoint name as the fraud stage's AstDB keys take it (fraud-contract.md). */
const ACCOUNT = /^[A-Za-z0-9_.-]{1,80}$/;

export function isAccountName(text: string): boolean {
  return ACCOUNT.test(text);
}

const MAX_AGENT_CHARS = 120;

/** A User-Agent without control characters, at most 120 characters ('' when nothing is left). */
export function cleanAgent(ua: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it takes out
  const plain = ua.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return plain.trim().slice(0, MAX_AGENT_CHARS);
}

/** The host of a contact URI (sip:102@198.51.100.77:5060, sip:102@[2001:db8:77::77]:5060;x=y), or null. */
export function contactAddress(uri: string): IpNetwork | null {
  const m = /^sips?:(?:[^@]*@)?(\[[0-9a-fA-F:.]+\]|[0-9.]+)(?::\d+)?(?:[;?].*)?$/.exec(uri.slice(0, 300));
  if (!m) return null;
  const net = parseNetwork(m[1]!.replace(/^\[|\]$/g, ''));
  return net && isSingleAddress(net) ? net : null;
}
