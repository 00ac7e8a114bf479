/**
 * `pbx-guardian check` on a call transcript: the fraud policies replayed on the real Asterisk 22
 * capture, listing the decisions and the AMI actions the daemon would send (nothing is sent).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildConfig } from '../src/config/index.js';
import { loadRulesDir } from '../src/guard/index.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { formatCheckReport, runCheck } from '../src/cli/check.js';
import { fixturePath } from './helpers/fixtures.js';
import { fixtureValues } from './helpers/fraud.js';

const rules = loadRulesDir(join(PACKAGE_ROOT, 'rules'));
const fraud = buildConfig({}).fraud;
const check = (file: string) => runCheck(fixturePath(`ami-asterisk22-calls/${file}`), rules, [], 64, fraud);

test('check on the fraud burst: the ten calls, the burst decision, the ten exact Hangups and the DBPut it would send', () => {
  const r = check('call-pjsip-burst-international.raw');
  assert.equal(r.kind, 'call-transcript');
  assert.ok(r.fraud, 'a transcript is replayed through the fraud policies');
  assert.equal(r.fraud.calls, 10);
  const burst = r.fraud.decisions.filter((d) => d.policy === 'burst' && !d.repeat);
  assert.equal(burst.length, 1, 'the burst window decides once');
  assert.equal(burst[0]!.account, '101');
  assert.deepEqual(burst[0]!.actions, ['hangup', 'block']);
  const channels = fixtureValues('call-pjsip-burst-international.raw', 'DialBegin', 'Channel');
  assert.equal(channels.length, 10);
  const hangups = r.fraud.actions.filter((a) => a.action.startsWith('Hangup ')).map((a) => a.action.slice(7));
  assert.deepEqual([...new Set(hangups)].sort(), [...channels].sort(), 'each burst channel by its exact name');
  const puts = r.fraud.actions.filter((a) => a.action.startsWith('DBPut '));
  assert.equal(puts.length, 1);
  assert.match(puts[0]!.action, /^DBPut guardian-blocked\/101 = all;\d+$/);
  const text = formatCheckReport(r);
  assert.match(text, /Fraud: 10 calls followed/);
  assert.match(text, /DBPut guardian-blocked\/101/);
});

test('check on ordinary calls: followed, no decision, no action', () => {
  for (const file of ['call-pjsip-internal-extension.raw', 'call-pjsip-trunk-busy.raw', 'call-pjsip-trunk-no-answer.raw']) {
    const r = check(file);
    assert.ok(r.fraud, file);
    assert.equal(r.fraud.calls, fixtureValues(file, 'DialBegin', 'Channel').length, file);
    assert.ok(r.fraud.calls >= 1, file);
    assert.deepEqual(r.fraud.decisions, [], file);
    assert.deepEqual(r.fraud.actions, [], file);
  }
});

test('check with fraud.enabled false (or on a security log) has no fraud part', () => {
  const off = runCheck(fixturePath('ami-asterisk22-calls/call-pjsip-burst-international.raw'), rules, [], 64, undefined);
  assert.equal(off.fraud, undefined);
});
