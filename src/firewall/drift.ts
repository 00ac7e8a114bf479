import type { FirewallBatch, FirewallEntry, FirewallTarget } from './types.js';
import { checkTarget } from './target.js';

/** An element whose kernel expiry differs from the store's by more than this is re-asserted. */
const TTL_TOLERANCE_MS = 5000;
/** the comparison lets the event loop run after this many entries */
const YIELD_EVERY = 1024;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The canonical target, or null when it is not a valid one (it is then never interpolated). */
export function safeKey(t: FirewallTarget): string | null {
  try {
    return checkTarget(t).target;
  } catch {
    return null;
  }
}

/**
 * What the kernel (`inKernel`, as listed) must gain and lose to hold exactly `active` at `now`:
 * missing or drifted elements are added, unknown ones removed. A ban longer than the backend's
 * maximum timeout (`maxTimeoutMs`) is re-asserted once less than half of it is left. Yields to
 * the event loop every 1,024 entries (4,096 let a cold diff stall ~20 ms at 100k): at 60k bans this is ~200 ms of work, and the AMI socket must
 * keep being read meanwhile. `slackMs`: how long the listing took (its expiry times are known
 * only that closely), added to the tolerance.
 */
export async function driftBetween(
  active: Iterable<FirewallEntry>,
  inKernel: FirewallEntry[],
  now: number,
  maxTimeoutMs?: number,
  slackMs = 0,
): Promise<FirewallBatch> {
  const want = new Map<string, FirewallEntry>();
  let n = 0;
  for (const e of active) {
    if (++n % YIELD_EVERY === 0) await yieldToLoop();
    if (e.expiresAt !== null && e.expiresAt <= now) continue;
    const c = safeKey(e);
    if (c) want.set(c, { ...e, target: c });
  }
  const have = new Map<string, FirewallEntry>();
  for (const e of inKernel) {
    if (++n % YIELD_EVERY === 0) await yieldToLoop();
    have.set(safeKey(e) ?? e.target, e);
  }
  const batch: FirewallBatch = { add: [], remove: [] };
  for (const [key, e] of want) {
    if (++n % YIELD_EVERY === 0) await yieldToLoop();
    const k = have.get(key);
    const capped = maxTimeoutMs !== undefined && e.expiresAt !== null && e.expiresAt > now + maxTimeoutMs;
    const stale = capped ? k?.expiresAt == null || k.expiresAt - now < maxTimeoutMs! / 2 : k ? drifted(k.expiresAt, e.expiresAt, slackMs) : true;
    if (!k || stale) batch.add.push(e);
  }
  for (const [key, e] of have) {
    if (++n % YIELD_EVERY === 0) await yieldToLoop();
    if (!want.has(key)) batch.remove.push({ target: e.target, family: e.family, isNetwork: e.isNetwork });
  }
  return batch;
}

/** The changes of `second` that `first` asked for too (what two listings agree on). */
export function confirmed(first: FirewallBatch, second: FirewallBatch): FirewallBatch {
  const adds = new Set(first.add.map((e) => e.target));
  const removes = new Set(first.remove.map((t) => t.target));
  return { add: second.add.filter((e) => adds.has(e.target)), remove: second.remove.filter((t) => removes.has(t.target)) };
}

function drifted(kernel: number | null, store: number | null, slackMs: number): boolean {
  if (kernel === null || store === null) return kernel !== store;
  return Math.abs(kernel - store) > TTL_TOLERANCE_MS + slackMs;
}

/**
 * What reconcile repairs: the drift between `active` and the kernel's listing, confirmed by a
 * second listing. A dump of a large kernel hash set can repeat some elements and leave out others
 * while the kernel resizes the set (seen with 60k elements just after they were added): repair
 * only what both listings agree on. Also returns how many elements the kernel holds once the
 * batch is applied (the last listing, less the removes, plus the adds it lacked).
 */
export async function confirmedDrift(
  list: () => Promise<FirewallEntry[]>,
  active: () => Iterable<FirewallEntry>,
  now: () => number,
  maxTimeoutMs?: number,
): Promise<{ batch: FirewallBatch; after: number }> {
  let inKernel: FirewallEntry[] = [];
  const drift = async () => {
    const t0 = now();
    inKernel = await list();
    const t1 = now();
    return driftBetween(active(), inKernel, t1, maxTimeoutMs, t1 - t0);
  };
  let batch = await drift();
  if (batch.add.length || batch.remove.length) batch = confirmed(batch, await drift());
  let after = inKernel.length - batch.remove.length;
  if (batch.add.length) {
    const have = new Set<string>();
    let n = 0;
    for (const e of inKernel) {
      if (++n % YIELD_EVERY === 0) await yieldToLoop();
      have.add(e.target);
    }
    for (const e of batch.add) if (!have.has(e.target)) after++;
  }
  return { batch, after };
}

/** The active entries still running at `now`, canonical, for a restore; invalid stored targets
 *  are reported and skipped. Yields to the event loop every 1,024 entries. */
export async function restoreEntries(active: Iterable<FirewallEntry>, now: number, invalid: (target: string) => void): Promise<FirewallEntry[]> {
  const add: FirewallEntry[] = [];
  let n = 0;
  for (const e of active) {
    if (++n % YIELD_EVERY === 0) await yieldToLoop();
    if (e.expiresAt !== null && e.expiresAt <= now) continue;
    const key = safeKey(e);
    if (key) add.push({ ...e, target: key });
    else invalid(String(e.target));
  }
  return add;
}
