/**
 * The address sets' elements over raw netlink (addon applyElements / listElements) against real
 * kernel sets in a private network namespace: the test re-runs this file under `unshare -n`
 * (PBXG_SCENARIO set) and asserts on the JSON it reports. nft's own listing is the reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { assertPrivateNetns, netnsSkipReason, runInNetns, reportScenario } from './helpers/netns.js';
import { entryFactory } from './helpers/entries.js';
import { NftablesBackend } from '../src/firewall/nftables.js';
import { createAddonRunner, type NftAddonRunner } from '../src/firewall/nft-addon.js';
import { RECORD } from '../src/firewall/nft-netlink.js';
import { isCanary } from '../src/firewall/canary.js';
import type { ElemOp, NativeElements, NftRunner } from '../src/firewall/nft-runner.js';

const SELF = fileURLToPath(import.meta.url);
const NFT = '/usr/sbin/nft';
const TABLE = 'pbxg_nl';

interface Elem {
  val: string;
  timeout: number | null;
  expires: number | null;
}

/** One set as nft lists it: value, timeout and expires in seconds. */
function nftSet(table: string, set: string): Elem[] {
  const out = JSON.parse(execFileSync(NFT, ['-j', 'list', 'set', 'inet', table, set], { encoding: 'utf8', maxBuffer: 64 << 20 }));
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const s = out.nftables.find((x: any) => x.set)?.set;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const all: Elem[] = (s?.elem ?? []).map((e: any) => {
    const v = e.elem ? e.elem.val : e;
    return { val: typeof v === 'string' ? v : `${v.prefix.addr}/${v.prefix.len}`, timeout: e.elem?.timeout ?? null, expires: e.elem?.expires ?? null };
  });
  return all.filter((e) => !isCanary(e.val));
}
const vals = (l: Elem[]) => l.map((e) => e.val).sort();
const v4 = (...a: string[]) => Buffer.from(a.flatMap((x) => x.split('.').map(Number)));
function v6(last: number): Buffer {
  const b = Buffer.alloc(16);
  b.set([0x20, 0x01, 0x0d, 0xb8]);
  b.writeUInt16BE(last, 14);
  return b;
}
async function errorOf(p: Promise<unknown>): Promise<{ errno: unknown; message: string } | null> {
  try {
    await p;
    return null;
  } catch (err) {
    return { errno: (err as { errno?: unknown }).errno, message: (err as Error).message };
  }
}
function typeErrorOf(f: () => unknown): string {
  try {
    const p = f() as Promise<unknown>;
    p?.catch?.(() => undefined);
    return 'no throw';
  } catch (err) {
    return err instanceof TypeError ? 'TypeError' : `other: ${(err as Error).message}`;
  }
}

/** Distinct keys in a listing's records (a dump during a resize may repeat one). */
function distinctRecords(recs: Buffer): number {
  const keys = new Set<string>();
  for (let o = 0; o < recs.length; o += RECORD) keys.add(recs.subarray(o, o + 16).toString('hex'));
  return keys.size;
}

/** The count once it reaches `want`, or the last one seen after 5 listings 200 ms apart. */
async function settledCount(count: () => number | Promise<number>, want: number): Promise<number> {
  let got = await count();
  for (let i = 1; i < 5 && got !== want; i++) {
    await new Promise((res) => setTimeout(res, 200));
    got = await count();
  }
  return got;
}

async function scenario(): Promise<unknown> {
  assertPrivateNetns();
  const runner = createAddonRunner() as NftAddonRunner;
  const nl = runner.elements!;
  const backend = new NftablesBackend(runner, { table: TABLE, verdict: 'drop', ports: [], size: 1_048_576 });
  await backend.setup();
  const r: Record<string, unknown> = { hasElements: nl !== null };

  // add: per-element timeouts (0 = none), IPv6 with one timeout for all
  await nl.applyElements(TABLE, [
    { del: false, set: 'ban4', keyLen: 4, keys: v4('192.0.2.1', '192.0.2.2', '192.0.2.3'), timeoutsMs: new Float64Array([60_000, 0, 7_200_000]) },
    { del: false, set: 'ban6', keyLen: 16, keys: Buffer.concat([v6(1), v6(0xabcd)]), timeoutsMs: new Float64Array([90_000]) },
  ]);
  r.ban4 = nftSet(TABLE, 'ban4');
  r.ban6 = nftSet(TABLE, 'ban6');
  const recs = await nl.listElements(TABLE, 'ban4', 4, 100);
  const listed: { key: string; timeout: number; expires: number }[] = [];
  for (let o = 0; o < recs.length; o += RECORD)
    listed.push({ key: [...recs.subarray(o, o + 4)].join('.'), timeout: recs.readDoubleLE(o + 16), expires: recs.readDoubleLE(o + 24) });
  r.listed = listed.filter((x) => !isCanary(x.key)).sort((a, b) => a.key.localeCompare(b.key));
  r.recordLen = recs.length;

  // a refused element fails the whole batch: a set of size 4 holding 2, then a batch that adds one
  // to ban4 and three to the small set (over its size) — nothing of it stays
  execFileSync(NFT, ['add set inet', TABLE, 'small { type ipv4_addr; flags timeout; size 4; }'].join(' ').split(' '));
  await nl.applyElements(TABLE, [{ del: false, set: 'small', keyLen: 4, keys: v4('198.51.100.1', '198.51.100.2') }]);
  r.refused = await errorOf(
    nl.applyElements(TABLE, [
      { del: false, set: 'ban4', keyLen: 4, keys: v4('192.0.2.50'), timeoutsMs: new Float64Array([60_000]) },
      { del: false, set: 'small', keyLen: 4, keys: v4('198.51.100.3', '198.51.100.4', '198.51.100.5') },
    ]),
  );
  r.afterRefused = { ban4: vals(nftSet(TABLE, 'ban4')), small: vals(nftSet(TABLE, 'small')) };
  // over the kernel's limit (NFT_MAX_TIMEOUT_MS): the kernel refuses it (ERANGE), as with nft text
  r.overKernelMax = await errorOf(
    nl.applyElements(TABLE, [{ del: false, set: 'ban4', keyLen: 4, keys: v4('192.0.2.51'), timeoutsMs: new Float64Array([18_446_744_073_709]) }]),
  );
  r.atKernelMax = await errorOf(
    nl.applyElements(TABLE, [{ del: false, set: 'ban4', keyLen: 4, keys: v4('192.0.2.52'), timeoutsMs: new Float64Array([18_446_744_073_708]) }]),
  );
  await nl.applyElements(TABLE, [{ del: true, set: 'ban4', keyLen: 4, keys: v4('192.0.2.52') }]);
  r.noSuchSet = await errorOf(nl.applyElements(TABLE, [{ del: false, set: 'nosuch', keyLen: 4, keys: v4('192.0.2.9') }]));

  // delete: a bare delete of an absent element is refused by the kernel (ENOENT, like nft's
  // `delete element`); the backend's add-then-delete in one batch is absent-safe
  r.bareAbsentDelete = await errorOf(nl.applyElements(TABLE, [{ del: true, set: 'ban4', keyLen: 4, keys: v4('192.0.2.77') }]));
  const e = entryFactory(Date.now());
  await backend.apply({ add: [e('192.0.2.60', 600_000)], remove: [e('192.0.2.2', null), e('192.0.2.78', null), e('2001:db8::abcd', null)] });
  r.afterApply = { ban4: nftSet(TABLE, 'ban4'), ban6: vals(nftSet(TABLE, 'ban6')) };
  // a CIDR in the batch: the whole batch as one text transaction
  await backend.apply({ add: [e('203.0.113.0/24', 600_000), e('192.0.2.61', 600_000)], remove: [] });
  r.mixed = { ban4: vals(nftSet(TABLE, 'ban4')), net4: vals(nftSet(TABLE, 'net4')) };
  r.backendList = (await backend.list()).map((x) => ({ target: x.target, ttl: x.expiresAt === null ? null : Math.round((x.expiresAt - Date.now()) / 1000) }));

  // 100k elements in one batch, and listed back
  const n = 100_000;
  const keys = Buffer.alloc(n * 4);
  for (let i = 0; i < n; i++) keys.writeUInt32BE(0x0a000000 + i, i * 4);
  await nl.applyElements(TABLE, [{ del: false, set: 'ban4', keyLen: 4, keys, timeoutsMs: new Float64Array([3_600_000]) }]);
  // a dump of a hash set the kernel is still resizing (just after 100k adds) can repeat some
  // elements and leave out others (drift.ts confirms a repair by a second listing): count
  // distinct keys, and list again (up to 5 times) until the resize is over
  r.bigNft = await settledCount(
    () =>
      new Set(
        nftSet(TABLE, 'ban4')
          .filter((x) => x.val.startsWith('10.'))
          .map((x) => x.val),
      ).size,
    n,
  );
  r.bigListed = await settledCount(async () => distinctRecords(await nl.listElements(TABLE, 'ban4', 4, 1 << 20)), n + 4 + 1);
  r.bigBounded = await errorOf(nl.listElements(TABLE, 'ban4', 4, 1000));
  await nl.applyElements(TABLE, [{ del: true, set: 'ban4', keyLen: 4, keys }]);
  r.bigDeleted = nftSet(TABLE, 'ban4').filter((x) => x.val.startsWith('10.')).length;

  const op = (o: Partial<ElemOp>): ElemOp => ({ del: false, set: 'ban4', keyLen: 4, keys: v4('192.0.2.1'), ...o });
  const bad = (ops: unknown[], table = TABLE) => typeErrorOf(() => nl.applyElements(table, ops as ElemOp[]));
  r.typeErrors = {
    wrongBufferLength: bad([op({ keys: Buffer.alloc(6) })]),
    timeoutsMismatch: bad([op({ keys: v4('192.0.2.1', '192.0.2.2', '192.0.2.3'), timeoutsMs: new Float64Array(2) })]),
    negativeTimeout: bad([op({ timeoutsMs: new Float64Array([-1]) })]),
    nanTimeout: bad([op({ timeoutsMs: new Float64Array([NaN]) })]),
    overSafeTimeout: bad([op({ timeoutsMs: new Float64Array([2 ** 53]) })]),
    deleteWithTimeouts: bad([op({ del: true, timeoutsMs: new Float64Array([1]) })]),
    keyLen: bad([op({ keyLen: 8 as 4 })]),
    keysNotBuffer: bad([op({ keys: 'x' as unknown as Buffer })]),
    tableTooLong: bad([op({})], 't'.repeat(64)),
    setTooLong: bad([op({ set: 's'.repeat(64) })]),
    emptyTable: bad([op({})], ''),
    opsNotArray: typeErrorOf(() => nl.applyElements(TABLE, {} as ElemOp[])),
    tooManyOps: bad(Array.from({ length: 9 }, () => op({}))),
    listKeyLen: typeErrorOf(() => nl.listElements(TABLE, 'ban4', 5 as 4, 10)),
    listMax: typeErrorOf(() => nl.listElements(TABLE, 'ban4', 4, 0)),
    listSetTooLong: typeErrorOf(() => nl.listElements(TABLE, 'x'.repeat(70), 4, 10)),
  };

  // EOPNOTSUPP from netlink: the text path, logged once; an old addon (no elements): the text path
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => void warnings.push(JSON.parse(s).msg) });
  let calls = 0;
  const unsupported: NativeElements = {
    applyElements: () => (calls++, Promise.reject(Object.assign(new Error('nope'), { errno: 95 }))),
    listElements: () => (calls++, Promise.reject(Object.assign(new Error('nope'), { errno: 95 }))),
  };
  const wrap = (elements: NativeElements | null): NftRunner => ({
    kind: 'addon',
    elements,
    run: (s) => runner.run(s),
    listTerse: () => runner.listTerse(),
  });
  for (const [name, elements] of [
    ['fallback', unsupported],
    ['oldAddon', null],
  ] as const) {
    const be = new NftablesBackend(wrap(elements), { table: `pbxg_${name}`, verdict: 'drop', ports: [], size: 65_536 }, log);
    await be.setup();
    await be.apply({ add: [e('192.0.2.200', 600_000), e('2001:db8::200', null)], remove: [] });
    await be.apply({ add: [e('192.0.2.201', 600_000)], remove: [e('192.0.2.200', null)] });
    r[name] = {
      kernel: [...vals(nftSet(`pbxg_${name}`, 'ban4')), ...vals(nftSet(`pbxg_${name}`, 'ban6'))],
      listed: (await be.list()).map((x) => x.target).sort(),
    };
    await be.flush();
  }
  r.fallbackCalls = calls;
  r.fallbackWarnings = warnings.filter((w) => w.includes('netlink')).length;
  await backend.flush();
  await runner.close();
  return r;
}

if (process.env.PBXG_SCENARIO) {
  reportScenario(() => scenario());
} else {
  test('address-set elements over raw netlink against real kernel sets (private netns)', async (t) => {
    const skip = netnsSkipReason();
    if (skip) return t.skip(skip);
    const runner = createAddonRunner();
    if (!runner) return t.skip('build/Release/nftables.node not built (node-gyp rebuild with libnftables-dev)');
    await runner.close();
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const r = await runInNetns<any>(SELF, { PBXG_SCENARIO: '1' });
    assert.equal(r.hasElements, true, 'the addon exports applyElements/listElements');
    const b4 = new Map<string, Elem>(r.ban4.map((x: Elem) => [x.val, x]));
    assert.deepEqual([...b4.keys()].sort(), ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    assert.equal(b4.get('192.0.2.1')!.timeout, 60);
    assert.equal(b4.get('192.0.2.2')!.timeout, null, 'timeout 0: no timeout');
    assert.equal(b4.get('192.0.2.3')!.timeout, 7200);
    assert.ok(b4.get('192.0.2.3')!.expires! >= 7190 && b4.get('192.0.2.3')!.expires! <= 7200);
    assert.deepEqual(
      r.ban6.map((x: Elem) => [x.val, x.timeout]),
      [
        ['2001:db8::1', 90],
        ['2001:db8::abcd', 90],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    assert.equal(r.recordLen, 4 * 32, 'three and the canary');
    assert.deepEqual(
      r.listed.map((x: { key: string; timeout: number }) => [x.key, x.timeout]),
      [
        ['192.0.2.1', 60_000],
        ['192.0.2.2', 0],
        ['192.0.2.3', 7_200_000],
      ],
    );
    const rem = r.listed.find((x: { key: string }) => x.key === '192.0.2.3');
    assert.ok(rem.expires > 7_100_000 && rem.expires <= 7_200_000, `remaining ms ${rem.expires}`);

    assert.equal(r.refused?.errno, 23, `ENFILE (set full), got ${JSON.stringify(r.refused)}`);
    assert.match(r.refused.message, /add element of pbxg_nl small/);
    assert.deepEqual(
      r.afterRefused,
      { ban4: ['192.0.2.1', '192.0.2.2', '192.0.2.3'], small: ['198.51.100.1', '198.51.100.2'] },
      'nothing of the refused batch stays',
    );
    assert.equal(r.noSuchSet?.errno, 2);
    assert.equal(r.overKernelMax?.errno, 34, `ERANGE from the kernel, got ${JSON.stringify(r.overKernelMax)}`);
    assert.equal(r.atKernelMax, null, 'the longest timeout the kernel takes goes in');

    assert.equal(r.bareAbsentDelete?.errno, 2, 'the kernel refuses a bare delete of an absent element');
    const after4 = new Map<string, Elem>(r.afterApply.ban4.map((x: Elem) => [x.val, x]));
    assert.deepEqual([...after4.keys()].sort(), ['192.0.2.1', '192.0.2.3', '192.0.2.60'], 'removed, absent-safe, added');
    assert.ok(after4.get('192.0.2.60')!.timeout! >= 599 && after4.get('192.0.2.60')!.timeout! <= 600);
    assert.deepEqual(r.afterApply.ban6, ['2001:db8::1']);
    assert.deepEqual(r.mixed, { ban4: ['192.0.2.1', '192.0.2.3', '192.0.2.60', '192.0.2.61'], net4: ['203.0.113.0/24'] });
    const listed = new Map<string, number | null>(r.backendList.map((x: { target: string; ttl: number | null }) => [x.target, x.ttl]));
    assert.deepEqual([...listed.keys()].sort(), ['192.0.2.1', '192.0.2.3', '192.0.2.60', '192.0.2.61', '2001:db8::1', '203.0.113.0/24']);
    assert.ok(Math.abs(listed.get('192.0.2.60')! - 600) <= 2, `expiresAt from the dump: ${listed.get('192.0.2.60')}`);
    assert.ok(Math.abs(listed.get('2001:db8::1')! - 90) <= 2);

    assert.equal(r.bigNft, 100_000, '100k in one batch, as nft lists them');
    assert.equal(r.bigListed, 100_000 + 4 + 1, '100k + our 4 + the canary');
    assert.equal(r.bigBounded?.errno, 7, 'a listing over maxElems is refused (E2BIG), not grown without bound');
    assert.equal(r.bigDeleted, 0);

    for (const [k, v] of Object.entries(r.typeErrors)) assert.equal(v, 'TypeError', k);

    const want = ['192.0.2.201', '2001:db8::200'];
    assert.deepEqual(r.fallback, { kernel: want, listed: want }, 'EOPNOTSUPP: the text path');
    assert.equal(r.fallbackCalls, 1, 'netlink is not tried again after EOPNOTSUPP');
    assert.equal(r.fallbackWarnings, 1, 'logged once');
    assert.deepEqual(r.oldAddon, { kernel: want, listed: want });
  });
}
