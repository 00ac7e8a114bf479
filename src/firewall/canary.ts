/**
 * Canary elements: one permanent element of ours in every set, so that the watchdog learns that a
 * set was emptied (`nft flush set`, `ipset flush`) by looking one element up instead of listing
 * them all. They can never be a real source nor a ban target:
 * - 255.255.255.255 (limited broadcast): the kernel drops a packet with this source as a martian
 *   before the input hook (ip_route_input_slow), and guard/scope.ts refuses any ban in 240.0.0.0/4;
 * - ff0f::ffff (multicast): ip6_rcv_core drops a packet with a multicast source, and guard/scope.ts
 *   refuses any ban in ff00::/8.
 * Listings leave them out: the store never sees them and reconcile never removes them.
 */
export const CANARY4 = '255.255.255.255';
export const CANARY6 = 'ff0f::ffff';

/** network-order bytes, for the addon's single-element lookup */
export const CANARY4_KEY = Buffer.from([255, 255, 255, 255]);
export const CANARY6_KEY = Buffer.from([0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** true for a canary address (as listed: plain, or as a /32 or /128 network) */
export function isCanary(target: string): boolean {
  return target === CANARY4 || target === CANARY6 || target === `${CANARY4}/32` || target === `${CANARY6}/128`;
}
