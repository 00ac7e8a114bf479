/**
 * The test lanes cannot drift: every test file is in exactly one lane (test/lanes.ts), and a
 * unit-lane file (or a helper it imports) uses nothing that needs root, the kernel or a system
 * program. Reads the sources under test/, so it sees a new file the moment it exists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { FULL, UNIT, deal, laneOf } from './lanes.js';
import { repoPath } from './helpers/fixtures.js';

const TEST_DIR = repoPath('test');
const testFiles = () =>
  readdirSync(TEST_DIR)
    .filter((f) => f.endsWith('.test.ts'))
    .sort();

/** what only the full lane may use: a namespace, root, the kernel's tools, system programs */
const FULL_ONLY: Array<[RegExp, string]> = [
  [/helpers\/netns\.js/, 'a private network namespace (helpers/netns.ts)'],
  [/\bunshare\b/, 'unshare'],
  [/process\.getuid/, 'a root check'],
  [/['"`/](nft|ipset|iptables|ip6tables)['"`]|\/usr\/sbin\//, 'a kernel firewall tool'],
  [/fail2ban-regex|promtool|systemd-analyze|dpkg|\/usr\/bin\/(?:lame|crowdsec|cscli)/, 'a system program'],
];

/** the source of a test file and of every test/helpers module it imports, transitively */
function sourcesOf(file: string): Array<[string, string]> {
  const seen = new Map<string, string>();
  const visit = (rel: string) => {
    if (seen.has(rel)) return;
    const text = readFileSync(repoPath('test', rel), 'utf8');
    seen.set(rel, text);
    for (const m of text.matchAll(/from '\.\.?\/(?:helpers\/)?([a-z0-9-]+)\.js'/g)) {
      const helper = `helpers/${m[1]}.ts`;
      if (existsSync(repoPath('test', helper))) visit(helper);
    }
  };
  visit(file);
  return [...seen];
}

test('every test file is in exactly one lane, and every listed file exists', () => {
  const files = testFiles();
  assert.ok(files.length > 50, `found ${files.length} test files under ${TEST_DIR}`);
  const inNone = files.filter((f) => laneOf(f) === null);
  assert.deepEqual(inNone, [], 'test files in no lane: add each to UNIT or FULL in test/lanes.ts');
  const inBoth = UNIT.filter((f) => Object.hasOwn(FULL, f));
  assert.deepEqual(inBoth, [], 'test files in both lanes');
  const listed = [...UNIT, ...Object.keys(FULL)];
  assert.deepEqual(
    listed.filter((f) => !files.includes(f)),
    [],
    'listed in test/lanes.ts but not under test/',
  );
  assert.equal(new Set(UNIT).size, UNIT.length, 'a file listed twice in UNIT');
  for (const [f, why] of Object.entries(FULL)) assert.ok(why.trim().length > 0, `${f}: say why it is not a unit test`);
});

test('no unit-lane file needs root, a network namespace, a kernel tool or a system program', () => {
  const offences: string[] = [];
  // this file names the markers; it is the check, not a user of them
  for (const f of UNIT.filter((u) => u !== 'lanes.test.ts')) {
    for (const [rel, text] of sourcesOf(f)) {
      for (const [re, what] of FULL_ONLY) if (re.test(text)) offences.push(`${f}${rel === f ? '' : ` (via ${rel})`}: ${what} (${re})`);
    }
  }
  assert.deepEqual(offences, [], 'move these to FULL in test/lanes.ts, with the reason');
});

test('the check sees what it must: the kernel tests trip it', () => {
  // not vacuous: run on the files the full lane holds for root, it finds every one of them
  for (const f of Object.keys(FULL).filter((k) => FULL[k]!.startsWith('root:'))) {
    const hits = sourcesOf(f).some(([, text]) => FULL_ONLY.some(([re]) => re.test(text)));
    assert.ok(hits, `${f} is a kernel test but the unit-lane check would not have caught it`);
  }
});

/** a hook at a file's top level: in a process shared with other files, it runs around their tests too */
const ROOT_EACH_HOOK = /^(?:beforeEach|afterEach)\(/m;

test('no unit-lane file has a top-level beforeEach/afterEach (the lane runs many files in one process)', () => {
  assert.ok(ROOT_EACH_HOOK.test("import x from 'y';\nbeforeEach(() => {\n"), 'the check sees a top-level hook');
  assert.ok(!ROOT_EACH_HOOK.test("describe('d', () => {\n  beforeEach(() => {\n"), 'and not one inside a describe');
  const offences = UNIT.filter((f) => ROOT_EACH_HOOK.test(readFileSync(repoPath('test', f), 'utf8')));
  assert.deepEqual(offences, [], 'move the hook into a describe(), or call the setup from each test');
});

test('the unit lane deals its files slowest first, each to the least loaded process', () => {
  const shares = deal(['a', 'b', 'c', 'd', 'e'], { a: 5000, b: 4000, c: 3000, d: 2000 }, 2);
  // a(5) | b(4) → c to b (7) | d to a (7) | e, never measured (1 s), to the first of the least loaded
  assert.deepEqual(shares, [
    ['a', 'd', 'e'],
    ['b', 'c'],
  ]);
  assert.deepEqual(deal(['a', 'b'], {}, 4), [['a'], ['b']], 'no empty process');
  assert.deepEqual(deal(UNIT, {}, 3).flat().sort(), [...UNIT].sort(), 'every file in exactly one process');
});

test('npm test runs every file, npm run test:unit the unit lane', () => {
  const scripts = (JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  assert.match(scripts.test ?? '', /node --test .*dist\/test\/$/, 'npm test runs the whole dist/test/ directory');
  assert.match(scripts['test:unit'] ?? '', /node dist\/test\/lanes\.js unit$/);
});
