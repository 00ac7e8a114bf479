/**
 * The address sets' elements (ban4/ban6) over raw nfnetlink through the addon
 * (src/native/setelem-batch.c): keys as bytes and timeouts as numbers, no nft script to parse and
 * no JSON listing. Measured at 1M elements: libnftables spent ~3 s parsing the restore's scripts
 * and its listing came back as one 68 MB string; here a listing is a Buffer of fixed-size records
 * walked in slices, the event loop running between them.
 */
import { parseNetwork, formatNetwork } from '../net/ip.js';
import { isCanary } from './canary.js';
import { nftError, type ElemOp } from './nft-runner.js';
import type { CanonicalTarget } from './target.js';
import type { FirewallEntry } from './types.js';

export const RECORD = 32;
/** records turned into entries per event-loop turn */
const SLICE = 8192;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** errnos that mean "this kernel or socket cannot do it": the text path is used instead */
const UNSUPPORTED = new Set([95 /* EOPNOTSUPP */, 93 /* EPROTONOSUPPORT */, 97 /* EAFNOSUPPORT */, 38 /* ENOSYS */]);

export function isUnsupported(err: unknown): boolean {
  const n = (err as { errno?: unknown })?.errno;
  return typeof n === 'number' && UNSUPPORTED.has(n);
}

/** The addon's error as the runner's NftError (permission errors named as such). */
export function elemError(err: unknown): Error {
  const e = err as { message?: string; errno?: number };
  const out = nftError('addon', String(e?.message ?? err), e?.errno ?? 'netlink');
  return Object.assign(out, { errno: e?.errno });
}

/** The key bytes of a canonical single address, written at `off`. */
export function putKey(c: CanonicalTarget, buf: Buffer, off: number): void {
  if (c.family === 4) {
    // a canonical dotted quad (checkTarget made it): read in place, no split (1M per restore)
    const a = c.address;
    let v = 0;
    let k = off;
    for (let i = 0; i < a.length; i++) {
      const ch = a.charCodeAt(i);
      if (ch === 0x2e) {
        buf[k++] = v;
        v = 0;
      } else v = v * 10 + ch - 0x30;
    }
    buf[k] = v;
    return;
  }
  const net = parseNetwork(c.address);
  if (!net || net.bytes.length !== 16) throw new Error(`not an IPv6 address: ${c.address}`);
  buf.set(net.bytes, off);
}

/** Keys (and timeouts) of one op from canonical addresses of one family. */
export function elemOp(del: boolean, set: string, keyLen: 4 | 16, elems: { c: CanonicalTarget; timeoutMs: number }[], timed: boolean): ElemOp {
  const keys = Buffer.alloc(elems.length * keyLen);
  const t = timed ? new Float64Array(elems.length) : undefined;
  for (let i = 0; i < elems.length; i++) {
    putKey(elems[i]!.c, keys, i * keyLen);
    if (t) t[i] = elems[i]!.timeoutMs;
  }
  return t ? { del, set, keyLen, keys, timeoutsMs: t } : { del, set, keyLen, keys };
}

/**
 * A listing's records as firewall entries (canaries left out), SLICE at a time with the loop
 * running between slices; `prefix`: the set holds network addresses of that length (pfx6). `now`: taken before the dump (a remaining time is as of the dump).
 */
export async function recordsToEntries(buf: Buffer, family: 4 | 6, now: number, out: FirewallEntry[], prefix?: number): Promise<void> {
  const n = Math.floor(buf.length / RECORD);
  for (let i = 0; i < n; i++) {
    if (i > 0 && i % SLICE === 0) await yieldToLoop();
    const o = i * RECORD;
    const target =
      family === 4 ? `${buf[o]}.${buf[o + 1]}.${buf[o + 2]}.${buf[o + 3]}` : formatNetwork({ family: 6, bytes: buf.subarray(o, o + 16), prefix: 128 });
    if (isCanary(target)) continue;
    const timeout = buf.readDoubleLE(o + 16);
    const expiresAt = timeout > 0 ? now + buf.readDoubleLE(o + 24) : null;
    // a prefix set's key is the network address: the entry is that network
    out.push(prefix === undefined ? { target, family, isNetwork: false, expiresAt } : { target: `${target}/${prefix}`, family, isNetwork: true, expiresAt });
  }
}
