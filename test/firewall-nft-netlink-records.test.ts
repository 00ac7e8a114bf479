/** The JS half of the netlink element path: keys written from canonical addresses, and a
 *  listing's records read back as firewall entries (no kernel: the records are built here). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { elemOp, putKey, recordsToEntries, RECORD } from '../src/firewall/nft-netlink.js';
import { checkTarget } from '../src/firewall/target.js';
import type { FirewallEntry } from '../src/firewall/types.js';

const c = (target: string) => checkTarget({ target, family: target.includes(':') ? 6 : 4, isNetwork: false });

test('putKey: IPv4 and IPv6 keys in network byte order', () => {
  const b = Buffer.alloc(4 + 16);
  putKey(c('203.0.113.255'), b, 0);
  putKey(c('2001:db8::a:1'), b, 4);
  assert.deepEqual([...b.subarray(0, 4)], [203, 0, 113, 255]);
  assert.equal(b.subarray(4).toString('hex'), '20010db80000000000000000000a0001');
  const op = elemOp(
    false,
    'ban4',
    4,
    [
      { c: c('10.0.0.1'), timeoutMs: 5 },
      { c: c('0.0.0.0'), timeoutMs: 0 },
    ],
    true,
  );
  assert.equal(op.keys.toString('hex'), '0a00000100000000');
  assert.deepEqual([...op.timeoutsMs!], [5, 0]);
  assert.equal(elemOp(true, 'ban4', 4, [{ c: c('10.0.0.1'), timeoutMs: 0 }], false).timeoutsMs, undefined, 'a delete carries no timeouts');
});

test('recordsToEntries: targets, expiry from the remaining time, no timeout, canaries left out', async () => {
  const rec = (key: number[], timeout: number, remaining: number) => {
    const r = Buffer.alloc(RECORD);
    r.set(key, 0);
    r.writeDoubleLE(timeout, 16);
    r.writeDoubleLE(remaining, 24);
    return r;
  };
  const now = 1_000_000;
  const v4: FirewallEntry[] = [];
  await recordsToEntries(Buffer.concat([rec([192, 0, 2, 1], 60_000, 59_000), rec([255, 255, 255, 255], 0, 0), rec([192, 0, 2, 2], 0, 0)]), 4, now, v4);
  assert.deepEqual(v4, [
    { target: '192.0.2.1', family: 4, isNetwork: false, expiresAt: now + 59_000 },
    { target: '192.0.2.2', family: 4, isNetwork: false, expiresAt: null },
  ]);
  const v6: FirewallEntry[] = [];
  const k6 = [...Buffer.from('20010db8000000000000000000000001', 'hex')];
  const canary6 = [...Buffer.from('ff0f000000000000000000000000ffff', 'hex')];
  await recordsToEntries(Buffer.concat([rec(k6, 1000, 500), rec(canary6, 0, 0)]), 6, now, v6);
  assert.deepEqual(v6, [{ target: '2001:db8::1', family: 6, isNetwork: false, expiresAt: now + 500 }]);
});

test('recordsToEntries: 20k records in slices, all of them, in order', async () => {
  const n = 20_000;
  const b = Buffer.alloc(n * RECORD);
  for (let i = 0; i < n; i++) b.writeUInt32BE(0x0a000000 + i, i * RECORD);
  const out: FirewallEntry[] = [];
  await recordsToEntries(b, 4, 0, out);
  assert.equal(out.length, n);
  assert.equal(out[n - 1]!.target, '10.0.78.31');
  assert.ok(out.every((e) => e.expiresAt === null));
});
