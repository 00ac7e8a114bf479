import type { FirewallBackend, FirewallBatch, FirewallEntry, FirewallTarget } from './types.js';

/** One element the kernel refused (a timeout out of its range, a CIDR it cannot hold, a full
 *  set), set aside so that the rest of its transaction could go in. */
export interface Refusal {
  target: string;
  op: 'add' | 'remove';
  error: Error;
}

/** Past this many refusals in one transaction it is the backend, not its elements, that fails
 *  (e.g. a full set): the caller's retry with backoff takes over. */
export const MAX_REFUSALS = 64;

type Item = { add: FirewallEntry } | { remove: FirewallTarget };

const toError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

function toBatch(items: Item[]): FirewallBatch {
  const batch: FirewallBatch = { add: [], remove: [] };
  for (const i of items) {
    if ('add' in i) batch.add.push(i.add);
    else batch.remove.push(i.remove);
  }
  return batch;
}

/**
 * Applies `batch` as one transaction. When the backend refuses it and still answers a listing,
 * the batch is split in halves and each half applied, recursively, until the refused elements
 * stand alone; each is tried alone once more (a passing failure is no refusal). Those are
 * returned; everything else is in the kernel. Every element is idempotent (an add refreshes, a
 * remove of an absent element is no error), so applying a half again is harmless. Throws the
 * backend's error when the backend itself fails: it does not list, no part of a batch of several
 * went in, or more than MAX_REFUSALS elements were refused.
 */
export async function applyIsolating(backend: FirewallBackend, batch: FirewallBatch): Promise<Refusal[]> {
  let first: Error;
  try {
    await backend.apply(batch);
    return [];
  } catch (err) {
    first = toError(err);
  }
  try {
    await backend.list();
  } catch {
    throw first;
  }
  const items: Item[] = [...batch.add.map((add) => ({ add })), ...batch.remove.map((remove) => ({ remove }))];
  const run = { refused: [] as Array<{ item: Item; error: Error }>, applied: 0 };
  await isolate(backend, items, first, run);
  if (run.applied === 0 && items.length > 1) throw first;
  const out: Refusal[] = [];
  for (const { item, error } of run.refused) {
    try {
      await backend.apply(toBatch([item]));
    } catch {
      out.push('add' in item ? { target: item.add.target, op: 'add', error } : { target: item.remove.target, op: 'remove', error });
    }
  }
  return out;
}

async function isolate(
  backend: FirewallBackend,
  items: Item[],
  err: Error,
  run: { refused: Array<{ item: Item; error: Error }>; applied: number },
): Promise<void> {
  if (items.length === 1) {
    if (run.refused.length >= MAX_REFUSALS) throw new Error(`more than ${MAX_REFUSALS} elements of one transaction refused (last: ${err.message})`);
    run.refused.push({ item: items[0]!, error: err });
    return;
  }
  const mid = items.length >> 1;
  for (const half of [items.slice(0, mid), items.slice(mid)]) {
    try {
      await backend.apply(toBatch(half));
      run.applied++;
    } catch (e) {
      await isolate(backend, half, toError(e), run);
    }
  }
}

/** Remembers which targets were refused before (bounded), so a repeat refusal logs at debug level. */
export interface RefusalLog {
  logger: { error(obj: object, msg: string): void; debug(obj: object, msg: string): void };
  seen: Set<string>;
  onRefused?(refusal: Refusal): void;
}

/** applyIsolating, with each refusal logged (the first time as an error) and reported. */
export async function applyReporting(backend: FirewallBackend, batch: FirewallBatch, during: string, log: RefusalLog): Promise<Refusal[]> {
  const refused = await applyIsolating(backend, batch);
  for (const r of refused) {
    const first = !log.seen.has(r.target);
    if (first && log.seen.size < 10_000) log.seen.add(r.target);
    const msg = `firewall (${during}): the kernel refused ${r.op === 'add' ? 'to add' : 'to remove'} ${r.target}: ${r.error.message}. It is set aside and the rest of the transaction applied; the ban stays in the store and reconcile tries it again`;
    if (first) log.logger.error({ target: r.target, op: r.op, err: r.error }, msg);
    else log.logger.debug({ target: r.target, op: r.op }, msg);
    try {
      log.onRefused?.(r);
    } catch {
      /* a hook never breaks enforcement */
    }
  }
  return refused;
}
