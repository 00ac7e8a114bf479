import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eachElemSlice } from '../src/firewall/nft-elems.js';
import { parseSetElems, type RawElem } from '../src/firewall/nft-json.js';
import { driftBetween } from '../src/firewall/drift.js';

const META = '{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}';
/** a `nft -j list set` line, in the shape nft 1.0.6 prints (captured from libnftables) */
function listing(name: string, elems: string[] | null): string {
  const head = `"family": "inet", "name": "${name}", "table": "pbxg", "type": "ipv4_addr", "handle": 2, "flags": ["timeout"]`;
  const body = elems === null ? head : `${head}, "elem": [${elems.join(', ')}]`;
  return `{"nftables": [${META}, {"set": {${body}}}]}\n`;
}
const timed = (ip: string, t: number) => `{"elem": {"val": "${ip}", "timeout": ${t}, "expires": ${t - 1}}}`;
const prefix = (ip: string, len: number) => `{"elem": {"val": {"prefix": {"addr": "${ip}", "len": ${len}}}, "timeout": 7200, "expires": 7199}}`;

async function sliced(text: string, set: string): Promise<{ elems: RawElem[]; slices: number }> {
  const elems: RawElem[] = [];
  let slices = 0;
  await eachElemSlice(text, set, (s) => {
    slices++;
    elems.push(...s);
  });
  return { elems, slices };
}

test('nft listing in slices: the same elements as one JSON.parse, in order, across many slices', async () => {
  const elems: string[] = [];
  for (let i = 0; i < 60_000; i++) {
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    elems.push(i % 3 === 0 ? `"${ip}"` : i % 7 === 0 ? prefix(ip, 32) : timed(ip, 3600 + i));
  }
  const text = listing('ban4', elems);
  const { elems: got, slices } = await sliced(text, 'ban4');
  assert.deepEqual(got, parseSetElems(text, 'ban4'));
  assert.equal(got.length, 60_000);
  assert.ok(slices > 5, `parsed in several slices (${slices})`);
});

test('nft listing in slices: an empty set, another set, or text not in nft shape give nothing', async () => {
  assert.deepEqual((await sliced(listing('ban4', null), 'ban4')).elems, []);
  assert.deepEqual((await sliced(listing('ban4', [timed('10.0.0.1', 60)]), 'ban6')).elems, []);
  assert.deepEqual((await sliced('', 'ban4')).elems, []);
  assert.deepEqual((await sliced('Error: No such file or directory', 'ban4')).elems, []);
  // cut short (a truncated listing): what cannot be parsed is left out, nothing throws
  const cut = listing('ban4', [timed('10.0.0.1', 60), timed('10.0.0.2', 60)]).slice(0, -30);
  assert.ok((await sliced(cut, 'ban4')).elems.length <= 1);
});

test('nft listing in slices: commas, brackets and quotes inside strings do not cut an element', async () => {
  const odd = ['"a,b]}"', '"q\\"],{x"', timed('10.0.0.9', 60)];
  const text = listing('ban4', odd);
  assert.deepEqual((await sliced(text, 'ban4')).elems, parseSetElems(text, 'ban4'));
  assert.equal((await sliced(text, 'ban4')).elems.length, 3);
});

test('drift: the kernel expiry is compared within the listing time as well as the tolerance', async () => {
  const now = 1_000_000;
  const want = [{ target: '10.0.0.1', family: 4 as const, isNetwork: false, expiresAt: now + 3_600_000 }];
  const kernel = (offMs: number) => [{ ...want[0]!, expiresAt: now + 3_600_000 - offMs }];
  assert.equal((await driftBetween(want, kernel(4_000), now)).add.length, 0, 'within the 5 s tolerance');
  assert.equal((await driftBetween(want, kernel(12_000), now)).add.length, 1, 'drifted');
  assert.equal((await driftBetween(want, kernel(12_000), now, undefined, 8_000)).add.length, 0, 'a listing of 8 s: 12 s is within it');
  assert.equal((await driftBetween(want, kernel(20_000), now, undefined, 8_000)).add.length, 1);
});
