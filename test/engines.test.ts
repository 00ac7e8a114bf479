/**
 * `npm ci` on the documented Node (20) prints no EBADENGINE warning: every package in
 * package-lock.json declares an engines.node range that the Node running the tests satisfies, and
 * the production ones also Node 22 and 24 (the package Depends on nodejs >= 20, no upper bound).
 * cookie@2 (through fastify → light-my-request) wants Node >= 22: package.json `overrides` pins
 * cookie ^1.1.1 (same stringifySetCookie({name, value}) that light-my-request calls).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { repoPath } from './helpers/fixtures.js';

type V = [number, number, number];
const parse = (s: string): V => {
  const p = s.replace(/^v/, '').split('.');
  return [Number(p[0] ?? 0), Number(p[1] ?? 0), Number(p[2] ?? 0)];
};
const cmp = (a: V, b: V): number => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/** one comparator of an npm range: >=, >, <=, <, ^, =, an x-range (20, 20.x, 20.1.x) or * */
function comparator(c: string, v: V): boolean {
  if (c === '*' || c === '') return true;
  const m = /^(>=|<=|>|<|\^|~|=)?\s*v?([0-9x*]+(?:\.[0-9x*]+){0,2})$/.exec(c);
  if (!m) throw new Error(`range form not handled: ${c}`);
  const [, op, ver] = m;
  const parts = ver!.split('.');
  const wild = parts.findIndex((p) => p === 'x' || p === '*');
  const b = parse(parts.map((p) => (p === 'x' || p === '*' ? '0' : p)).join('.'));
  if (!op || op === '=') {
    const fixed = wild === -1 ? parts.length : wild;
    return v.slice(0, fixed).every((n, i) => n === b[i]);
  }
  if (op === '>=') return cmp(v, b) >= 0;
  if (op === '>') return cmp(v, b) > 0;
  if (op === '<=') return cmp(v, b) <= 0;
  if (op === '<') return cmp(v, b) < 0;
  if (op === '~') return cmp(v, b) >= 0 && v[0] === b[0] && v[1] === b[1];
  return cmp(v, b) >= 0 && (b[0] > 0 ? v[0] === b[0] : v[1] === b[1]); // ^
}

export function satisfies(version: string, range: string): boolean {
  const v = parse(version);
  return range.split('||').some((alt) =>
    alt
      .trim()
      .replace(/(>=|<=|>|<|\^|~|=)\s+/g, '$1')
      .split(/\s+/)
      .every((c) => comparator(c, v)),
  );
}

test('satisfies: the range forms package-lock.json uses', () => {
  assert.ok(satisfies('20.20.2', '>=20'));
  assert.ok(!satisfies('20.20.2', '>=22'));
  assert.ok(satisfies('20.20.2', '20 || >=22'));
  assert.ok(!satisfies('21.1.0', '20 || >=22'));
  assert.ok(satisfies('20.20.2', '^20.19.0 || ^22.13.0 || >=24'));
  assert.ok(!satisfies('20.18.0', '^20.19.0 || ^22.13.0 || >=24'));
  assert.ok(satisfies('22.1.0', '20.x || 22.x || 23.x'));
  assert.ok(satisfies('20.1.0', '>= 10.x'));
  assert.ok(satisfies('20.1.0', '*'));
});

test('package-lock.json: no engines.node the documented Node refuses (npm ci prints no EBADENGINE)', () => {
  const lock = JSON.parse(readFileSync(repoPath('package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string; dev?: boolean; engines?: { node?: string } }>;
  };
  const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { engines: { node: string }; overrides?: Record<string, string> };
  assert.equal(pkg.engines.node, '>=20');
  assert.equal(pkg.overrides?.cookie, '^1.1.1', 'cookie@2 requires Node >= 22');
  const refused: string[] = [];
  let checked = 0;
  for (const [path, p] of Object.entries(lock.packages)) {
    const range = p.engines?.node;
    if (!path || !range) continue;
    checked++;
    const versions = p.dev ? [process.versions.node] : [process.versions.node, '22.0.0', '24.0.0'];
    for (const v of versions) if (!satisfies(v, range)) refused.push(`${path}@${p.version}: engines.node ${range} refuses ${v}`);
  }
  assert.ok(checked > 20, `${checked} packages declare engines.node`);
  assert.deepEqual(refused, []);
});
