/** The ban elements of one of our nftables tables, as `nft -j` lists them (the watchdog's canaries left out). */
import { execFileSync } from 'node:child_process';
import { isCanary } from '../../src/firewall/canary.js';

const NFT = '/usr/sbin/nft';

type Elem = string | { elem: { val: string | { prefix: { addr: string; len: number } } } };

/** Sorted addresses and CIDRs in the ban sets of `inet <table>`; in process `pid`'s network namespace when given. */
export function banElements(table: string, pid?: number): string[] {
  const args = ['-j', 'list', 'table', 'inet', table];
  const text = pid
    ? execFileSync('/usr/bin/nsenter', ['-t', String(pid), '-n', NFT, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })
    : execFileSync(NFT, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = JSON.parse(text) as { nftables: Array<{ set?: { name: string; elem?: Elem[] } }> };
  const vals: string[] = [];
  for (const it of out.nftables) {
    if (!it.set || !['ban4', 'ban6', 'net4', 'net6'].includes(it.set.name)) continue;
    for (const e of it.set.elem ?? []) {
      const v = typeof e === 'string' ? e : e.elem.val;
      const t = typeof v === 'string' ? v : `${v.prefix.addr}/${v.prefix.len}`;
      if (!isCanary(t)) vals.push(t);
    }
  }
  return vals.sort();
}
