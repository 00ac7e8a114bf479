// The import check itself (scripts/check-imports.mjs) on small synthetic trees: it must find a
// cycle, an upward and a sideways import, a stale allowance and a second copy of a helper, so
// `npm run lint` cannot silently pass everything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface Edge {
  from: string;
  to: string;
  why?: string;
}
interface Result {
  edges: number;
  wrongWay: Edge[];
  cycles: string[][];
  unplaced: string[];
  stale: Edge[];
  duplicates: { file: string; what: string }[];
}
interface CheckModule {
  checkImports(root: string, o?: { layers?: string[][]; allowed?: { from: string; to: string; reason: string }[]; once?: object[] }): Result;
}

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'check-imports.mjs');
const { checkImports } = (await import(pathToFileURL(script).href)) as CheckModule;

function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-imports-'));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

const layers = [['net'], ['ami', 'firewall'], ['guard'], ['main.ts']];

test('a tree that imports downward only passes', () => {
  const root = tree({
    'net/ip.ts': 'export const x = 1;\n',
    'ami/index.ts': "import { x } from '../net/ip.js';\nexport const y = x;\n",
    'guard/index.ts': "import { y } from '../ami/index.js';\nimport type { F } from '../firewall/types.js';\nexport const z = y;\n",
    'firewall/types.ts': 'export type F = number;\n',
    'main.ts': "import { z } from './guard/index.js';\nvoid z;\n",
  });
  const r = checkImports(root, { layers, allowed: [], once: [] });
  assert.equal(r.edges, 4);
  assert.deepEqual(r.wrongWay, []);
  assert.deepEqual(r.cycles, []);
  assert.deepEqual(r.unplaced, []);
});

test('an upward import, a sideways import and a cycle are found', () => {
  const root = tree({
    'net/ip.ts': "import { z } from '../guard/index.js';\nexport const x = z;\n",
    'ami/index.ts': "export { f } from '../firewall/index.js';\n",
    'firewall/index.ts': 'export const f = 1;\n',
    'guard/index.ts': "import { a } from './a.js';\nexport const z = a;\n",
    'guard/a.ts': "import type { z } from './index.js';\nexport const a = 1 as unknown as typeof z;\n",
  });
  const r = checkImports(root, { layers, allowed: [], once: [] });
  assert.deepEqual(r.wrongWay, [
    { from: 'ami/index.ts', to: 'firewall/index.ts', why: 'sideways' },
    { from: 'net/ip.ts', to: 'guard/index.ts', why: 'upward' },
  ]);
  assert.deepEqual(r.cycles, [['guard/a.ts', 'guard/index.ts']]);
});

test('an allowance hides its edge, and a stale one is reported', () => {
  const root = tree({
    'net/ip.ts': "import { z } from '../guard/index.js';\nexport const x = z;\n",
    'guard/index.ts': 'export const z = 1;\n',
  });
  const allowed = [
    { from: 'net/ip.ts', to: 'guard/index.ts', reason: 'test' },
    { from: 'ami/index.ts', to: 'guard/index.ts', reason: 'gone' },
  ];
  const r = checkImports(root, { layers, allowed, once: [] });
  assert.deepEqual(r.wrongWay, []);
  assert.deepEqual(
    r.stale.map((e) => e.from),
    ['ami/index.ts'],
  );
});

test('a file outside every layer is reported', () => {
  const root = tree({ 'odd/x.ts': "import '../net/ip.js';\n", 'net/ip.ts': '' });
  assert.deepEqual(checkImports(root, { layers, allowed: [], once: [] }).unplaced, ['odd/x.ts']);
});

test('a second copy of a one-definition helper is found', () => {
  const root = tree({
    'net/backoff.ts': 'export function backoffMs(n: number) { return 100 * 2 ** n; }\n',
    'ami/client.ts': 'export interface AmiPort { action(): void }\nconst d = (n: number) => 100 * 2 ** n;\n',
    'ami/types.ts': 'export interface AmiPort { action(): void }\n',
  });
  const once = [
    { name: 'AmiPort', in: 'ami/types.ts' },
    { pattern: /\* 2 \*\* /, what: 'backoff', in: 'net/backoff.ts' },
  ];
  const r = checkImports(root, { layers, allowed: [], once });
  assert.deepEqual(r.duplicates, [
    { file: 'ami/client.ts', what: 'AmiPort (defined in src/ami/types.ts)' },
    { file: 'ami/client.ts', what: 'backoff' },
  ]);
});

test('the project itself passes its own check', () => {
  const src = path.join(path.dirname(script), '..', 'src');
  const r = checkImports(src);
  assert.deepEqual(
    { wrongWay: r.wrongWay, cycles: r.cycles, unplaced: r.unplaced, stale: r.stale, duplicates: r.duplicates },
    { wrongWay: [], cycles: [], unplaced: [], stale: [], duplicates: [] },
  );
});

test('importing VERSION loads nothing of the program but paths.ts, and finds package.json', async () => {
  const src = path.join(path.dirname(script), '..', 'src');
  const { importEdges } = (await import(pathToFileURL(script).href)) as { importEdges(root: string): Edge[] };
  const edges = importEdges(src);
  const seen = new Set<string>();
  const visit = (f: string): void => {
    for (const e of edges)
      if (e.from === f && !seen.has(e.to)) {
        seen.add(e.to);
        visit(e.to);
      }
  };
  visit('version.ts');
  assert.deepEqual([...seen], ['paths.ts']);
  const { VERSION } = await import('../src/version.js');
  const pkg = JSON.parse(fs.readFileSync(path.join(src, '..', 'package.json'), 'utf8')) as { version: string };
  assert.equal(VERSION, pkg.version);
});
