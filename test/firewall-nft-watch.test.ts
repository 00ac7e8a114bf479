/**
 * The nftables watchdog check without a kernel: the shape comparison on nft's real terse output
 * (test/fixtures/nft-terse-ruleset.json: `nft -j -t list ruleset inet` right after our setup(),
 * captured with nft 1.0.6), and the `nft get element` fallback when the addon is not built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { NftWatch, shapeProblems, tableShape, FALLBACK_EVERY } from '../src/firewall/nft-watch.js';
import { NftError, type NftRunner } from '../src/firewall/nft-runner.js';
import { fixturePath } from './helpers/fixtures.js';

const TERSE = readFileSync(fixturePath('nft-terse-ruleset.json'), 'utf8');
type Item = Record<string, Record<string, unknown>>;
const items = (): Item[] => (JSON.parse(TERSE) as { nftables: Item[] }).nftables;
const render = (list: Item[]) => JSON.stringify({ nftables: list }) + '\n';

test('shape: our table, sets, chain and rules from the terse listing; handles do not matter; each change is named', () => {
  const expected = tableShape(TERSE, 'pbx_guardian')!;
  assert.deepEqual([...expected.keys()].sort(), [
    'chain input',
    'rules of chain input',
    'set allow4',
    'set allow6',
    'set ban4',
    'set ban6',
    'set net4',
    'set net6',
  ]);
  assert.equal(tableShape(TERSE, 'other_table'), null, 'another table: absent');

  const rehandled = items().map((it) => Object.fromEntries(Object.entries(it).map(([k, o]) => [k, { ...o, handle: 999 }])));
  assert.deepEqual(shapeProblems(expected, tableShape(render(rehandled), 'pbx_guardian')!), [], 're-created with new handles: intact');

  const noBan4 = items().filter((it) => it.set?.name !== 'ban4');
  assert.deepEqual(shapeProblems(expected, tableShape(render(noBan4), 'pbx_guardian')!), ['set ban4 missing']);

  const prio = items().map((it) => (it.chain ? { chain: { ...it.chain, prio: 0 } } : it));
  assert.deepEqual(shapeProblems(expected, tableShape(render(prio), 'pbx_guardian')!), ['chain input changed']);

  let dropped = false;
  const oneRuleLess = items().filter((it) => !(it.rule && !dropped && (dropped = true)));
  assert.deepEqual(shapeProblems(expected, tableShape(render(oneRuleLess), 'pbx_guardian')!), ['rules of chain input changed']);

  const noChain = items().filter((it) => !it.chain && !it.rule);
  assert.deepEqual(shapeProblems(expected, tableShape(render(noChain), 'pbx_guardian')!), ['chain input missing', 'rules of chain input missing']);

  const extra = [...items(), { set: { family: 'inet', name: 'theirs', table: 'pbx_guardian', type: 'ipv4_addr', handle: 50 } }];
  assert.deepEqual(shapeProblems(expected, tableShape(render(extra), 'pbx_guardian')!), [], 'an object someone added is not ours to repair');
});

test('fallback without the addon: canaries through `nft get element`, only every FALLBACK_EVERY-th check', async () => {
  const asked: string[] = [];
  let flushed = false;
  const runner: NftRunner = {
    kind: 'command',
    listTerse: async () => TERSE,
    run: async (script: string) => {
      asked.push(script);
      if (flushed && / ban4 /.test(script))
        throw new NftError('nft (command) failed (rc 1): Error: Could not process rule: No such file or directory', '', false);
      return '';
    },
  };
  const watch = new NftWatch(runner, 'pbx_guardian', null);
  await watch.recordShape();
  assert.deepEqual(await watch.inspect(), { tablePresent: true, problems: [] });
  assert.deepEqual(
    asked,
    ['ban4', 'ban6', 'net4', 'net6'].map((s) => `get element inet pbx_guardian ${s} { ${s.endsWith('6') ? 'ff0f::ffff' : '255.255.255.255'} }`),
  );
  flushed = true;
  asked.length = 0;
  for (let i = 1; i < FALLBACK_EVERY; i++) assert.deepEqual((await watch.inspect()).problems, [], `check ${i + 1}: no lookup`);
  assert.equal(asked.length, 0, 'the expensive lookups are not repeated on every check');
  assert.deepEqual((await watch.inspect()).problems, ['elements of set ban4 (its canary element is gone: the set was flushed)']);
  assert.equal(asked.length, 4);
});

test('with the addon lookup: every check, a lookup error is an error (not a repair)', async () => {
  const runner: NftRunner = { kind: 'addon', listTerse: async () => TERSE, run: async () => '' };
  let rc = [1, 1, 1, 1];
  const watch = new NftWatch(runner, 'pbx_guardian', async (_t, probes) => probes.map((_, i) => rc[i]!));
  await watch.recordShape();
  assert.deepEqual((await watch.inspect()).problems, []);
  rc = [1, 0, 1, 1];
  assert.deepEqual((await watch.inspect()).problems, ['elements of set ban6 (its canary element is gone: the set was flushed)']);
  rc = [1, -1, 1, 1];
  await assert.rejects(watch.inspect(), /canary element of set ban6 failed \(errno 1\)/);
});
