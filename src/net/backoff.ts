/**
 * The one retry delay: capped exponential. `failures` failed attempts so far (0 for the first
 * retry) give firstMs, 2*firstMs, 4*firstMs, ... up to maxMs. The exponent stops at 30 so a long
 * outage cannot overflow to Infinity. Callers that add jitter do it on top (ami/client-options.ts,
 * odoo/rpc.ts) and say why there.
 */
export function backoffMs(failures: number, firstMs: number, maxMs: number): number {
  return Math.min(maxMs, firstMs * 2 ** Math.min(Math.max(failures, 0), 30));
}
