import { test as nodeTest, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  AsteriskConfigFiles,
  ConfigFileError,
  configJobFunctions,
  defaultAsteriskConfigConfig,
  shippedGuardianDialplan,
} from '../src/asterisk-config/index.js';
import { FakeAmi, amiMessage } from './helpers/fake-odoo.js';
import { readFixtureText, repoPath } from './helpers/fixtures.js';

const SHIPPED = fs.readFileSync(repoPath('rules', 'extensions_guardian.conf'), 'utf8');
/** The real dialplan of the Asterisk 22 capture: the base file the include goes into. */
const FIXTURE_EXTENSIONS = readFixtureText('ami-asterisk22-calls/configs/extensions.conf');
const INCLUDE = '#include extensions_guardian.conf';

const top = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-guardian-dialplan-'));
after(() => fs.rmSync(top, { recursive: true, force: true }));
let n = 0;
let dir: string;
let ami: FakeAmi;
let files: AsteriskConfigFiles;

/** each test's own directory and AMI (a hook at the top would reach other files' tests in a shared unit-lane process) */
function fresh(): void {
  dir = path.join(top, String(++n));
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'extensions.conf'), FIXTURE_EXTENSIONS);
  ami = new FakeAmi();
  ami.handler = () => ({
    response: amiMessage([
      ['Response', 'Success'],
      ['Message', 'Module Reloaded'],
    ]),
    events: [],
  });
  files = new AsteriskConfigFiles({ ...defaultAsteriskConfigConfig(), dir }, ami);
}

/** node:test's test, each run in a fresh directory */
const test = (name: string, fn: () => void | Promise<void>): void => {
  void nodeTest(name, () => {
    fresh();
    return fn();
  });
};

const read = (name: string) => fs.readFileSync(path.join(dir, name), 'utf8');
const code = (c: string) => (e: unknown) => e instanceof ConfigFileError && e.code === c;

test('install: the shipped subroutine lands as extensions_guardian.conf and extensions.conf gets one #include; a second run writes nothing', async () => {
  assert.equal(shippedGuardianDialplan(), SHIPPED);
  const w1 = await files.installGuardianDialplan();
  assert.deepEqual(
    { changed: w1.changed, include: w1.include, bytes: w1.bytes },
    { changed: true, include: { base: 'extensions.conf', action: 'added' }, bytes: Buffer.byteLength(SHIPPED) },
  );
  assert.equal(read('extensions_guardian.conf'), SHIPPED);
  assert.equal(read('extensions.conf'), `${FIXTURE_EXTENSIONS}${INCLUDE}\n`);
  const mtime = fs.statSync(path.join(dir, 'extensions.conf')).mtimeMs;
  const ino = fs.statSync(path.join(dir, 'extensions_guardian.conf')).ino;

  const w2 = await files.installGuardianDialplan();
  assert.deepEqual(
    { changed: w2.changed, backup: w2.backup, include: w2.include },
    { changed: false, backup: null, include: { base: 'extensions.conf', action: 'present' } },
  );
  assert.equal(read('extensions.conf').split(INCLUDE).length - 1, 1);
  assert.equal(fs.statSync(path.join(dir, 'extensions.conf')).mtimeMs, mtime);
  assert.equal(fs.statSync(path.join(dir, 'extensions_guardian.conf')).ino, ino, 'an unchanged file is not rewritten');

  // a newer shipped file replaces the installed one, the old one is kept
  const w3 = await files.installGuardianDialplan(SHIPPED + '; local note\n');
  assert.equal(w3.changed, true);
  assert.equal(read('extensions_guardian.conf.bak'), SHIPPED);
  assert.deepEqual(w3.include, { base: 'extensions.conf', action: 'present' });
});

test('install: an #include written by hand counts; a missing extensions.conf is reported, not created', async () => {
  fs.writeFileSync(path.join(dir, 'extensions.conf'), `[general]\n#include "extensions_guardian.conf" ; by hand\n`);
  assert.deepEqual((await files.installGuardianDialplan()).include, { base: 'extensions.conf', action: 'present' });
  fs.rmSync(path.join(dir, 'extensions.conf'));
  const w = await files.installGuardianDialplan();
  assert.deepEqual(w.include, { base: 'extensions.conf', action: 'base-missing' });
  assert.equal(fs.existsSync(path.join(dir, 'extensions.conf')), false);
});

test('install is confined: a symlinked target, extensions not managed, bad content are refused and write nothing', async () => {
  const outside = path.join(top, `outside-${n}.conf`);
  fs.writeFileSync(outside, 'KEEP\n');
  fs.symlinkSync(outside, path.join(dir, 'extensions_guardian.conf'));
  await assert.rejects(files.installGuardianDialplan(), code('NOT_REGULAR'));
  assert.equal(fs.readFileSync(outside, 'utf8'), 'KEEP\n');
  assert.equal(read('extensions.conf'), FIXTURE_EXTENSIONS);
  fs.rmSync(path.join(dir, 'extensions_guardian.conf'));

  const noExtensions = new AsteriskConfigFiles({ ...defaultAsteriskConfigConfig(), dir, bases: ['pjsip'] }, ami);
  await assert.rejects(noExtensions.installGuardianDialplan(), code('NOT_MANAGED'));
  await assert.rejects(files.installGuardianDialplan('[x]\n\0'), code('BAD_CONTENT'));
  await assert.rejects(files.installGuardianDialplan(12 as unknown as string), code('BAD_CONTENT'));
  assert.equal(fs.existsSync(path.join(dir, 'extensions_guardian.conf')), false);
  // the fixed name opens no other door: the generic write still refuses it
  await assert.rejects(files.write('extensions_guardian.conf', '[x]\n'), code('NOT_MANAGED'));
  assert.equal(read('extensions.conf'), FIXTURE_EXTENSIONS);
});

test('the Odoo job config.install_guardian_dialplan installs, and reloads pbx_config on request', async () => {
  const job = configJobFunctions(files).get('config.install_guardian_dialplan')!;
  const r = (await job([], { reload: 'pbx_config' })) as { result: { include: unknown }; reload: { module: string } };
  assert.deepEqual(r.result.include, { base: 'extensions.conf', action: 'added' });
  assert.equal(r.reload.module, 'pbx_config');
  assert.deepEqual(ami.actions, [{ Action: 'Reload', Module: 'pbx_config' }]);
  assert.equal(read('extensions_guardian.conf'), SHIPPED);
});

// ---------------------------------------------------------------- the shipped subroutine, read as data

/** The dialplan lines of one context: [extension, priority, label, application, data]. */
function contextLines(conf: string, context: string): Array<{ exten: string; app: string; data: string; label: string | null }> {
  const out: Array<{ exten: string; app: string; data: string; label: string | null }> = [];
  let current: string | null = null;
  let exten = '';
  for (const raw of conf.split('\n')) {
    const line = raw.replace(/(^|[^\\]);.*$/, '$1').trim();
    if (line === '') continue;
    const head = /^\[([^\]]+)\]$/.exec(line);
    if (head) {
      current = head[1]!;
      continue;
    }
    if (current !== context) continue;
    const m = /^(?:exten => ([^,]+),|same => )(1|n)(?:\(([a-z]+)\))?,([A-Za-z]+)\((.*)\)$/.exec(line);
    assert.ok(m, `not an "exten =>" / "same =>" line in the fixture's style: ${line}`);
    if (m[1]) exten = m[1];
    out.push({ exten, label: m[3] ?? null, app: m[4]!, data: m[5]! });
  }
  return out;
}

test('the subroutine: the contract context, the AstDB key, Return() or Hangup(21)', () => {
  const lines = contextLines(SHIPPED, 'guardian-outbound-check');
  assert.ok(lines.length > 5);
  assert.ok(lines.every((l) => l.exten === 's'));
  assert.match(lines[0]!.data, /^LOCAL\(block\)=\$\{DB\(guardian-blocked\/\$\{CHANNEL\(endpoint\)\}\)\}$/);
  assert.deepEqual(
    lines.filter((l) => l.label).map((l) => [l.label, l.app, l.data]),
    [
      ['allowed', 'Return', ''],
      ['rejected', 'Log', 'NOTICE,pbx-guardian: outbound call of blocked account ${CHANNEL(endpoint)} rejected: ${mode}'],
    ],
  );
  assert.deepEqual(lines.at(-1), { exten: 's', label: null, app: 'Hangup', data: '21' });
  // every GotoIf jumps to a label of this context
  for (const l of lines.filter((x) => x.app === 'GotoIf')) assert.match(l.data, /\?(allowed|rejected)$/);
  assert.match(SHIPPED, /GUARDIAN_INTERNAL_MAX_DIGITS/);
  assert.match(SHIPPED, /Set\(LOCAL\(maxdigits\)=6\)/);
  // the GoSub line the docs tell the operator to add is the one the file's header shows
  const gosub = 'same => n,GoSub(guardian-outbound-check,s,1(${EXTEN}))';
  assert.ok(SHIPPED.includes(gosub));
  assert.ok(fs.readFileSync(repoPath('docs', 'fraud-dialplan.md'), 'utf8').includes(gosub));
});

test('the subroutine never uses the dialled number (ARG1) but inside LEN() and FILTER(0-9,...)', () => {
  const lines = contextLines(SHIPPED, 'guardian-outbound-check');
  let uses = 0;
  for (const l of lines) {
    const text = `${l.app}(${l.data})`;
    for (let at = text.indexOf('${ARG1}'); at >= 0; at = text.indexOf('${ARG1}', at + 1), uses++) {
      const before = text.slice(0, at);
      assert.ok(before.endsWith('${LEN(') || before.endsWith('${FILTER(0-9,'), text);
      assert.equal(text[at + '${ARG1}'.length], ')', text);
    }
  }
  assert.ok(uses >= 2);
  for (const l of lines) {
    assert.ok(!/^(Exec|Eval|Goto|Gosub|GoSub|Macro|System|TrySystem)$/.test(l.app) || !l.data.includes('ARG'), `${l.app}(${l.data})`);
    // inside $[...] only numbers (LEN results, ARGC) or the mode reduced to letters are compared as text
    for (const expr of l.data.match(/\$\[[^\]]*\]/g) ?? []) {
      for (const q of expr.match(/"[^"]*"/g) ?? []) assert.match(q, /^"(\$\{(mode|ARGC)\}|internal|1)"$/, expr);
    }
  }
  assert.match(SHIPPED, /LOCAL\(mode\)=\$\{FILTER\(a-z,/);
});
