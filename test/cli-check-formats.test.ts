import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectFormat, runCheck } from '../src/cli/check.js';
import { buildConfig } from '../src/config/index.js';
import { loadRulesDir } from '../src/guard/index.js';
import { parseMessagesLine, splitHost } from '../src/sources/index.js';
import { cli } from './helpers/cli.js';
import { fixturePath, readFixture, repoPath } from './helpers/fixtures.js';

const rules = loadRulesDir(repoPath('rules'));
const MESSAGES = fixturePath('asterisk-messages.log');
const SECURITY = fixturePath('asterisk-security.log');
const loopback = { automatic: [{ entry: '127.0.0.0/8', from: 'loopback' }] };

test('check names the format it read: security log, messages log, AMI transcript, call transcript', () => {
  assert.equal(detectFormat(readFixture('asterisk-security.log')), 'security-log');
  assert.equal(detectFormat(readFixture('asterisk-messages.log')), 'messages-log');
  assert.equal(detectFormat(readFixture('ami/session-recorder-full.raw')), 'ami');
  assert.equal(detectFormat(Buffer.from('\u0089PNG\r\n\u001a\n')), null);
  assert.equal(detectFormat(Buffer.from('')), null);
  const calls = runCheck(fixturePath('ami-asterisk22-calls/call-pjsip-internal-extension.raw'), rules, [], 64, buildConfig({}).fraud);
  assert.equal(calls.kind, 'call-transcript');
  assert.match(calls.format, /transcript of calls/);
  assert.equal(runCheck(fixturePath('ami/session-recorder-full.raw'), rules, []).kind, 'ami-transcript');
});

test('the messages log: chan_sip, PJSIP, IAX2 and manager NOTICE lines are counted; forged lines are ambiguous, never counted', () => {
  const r = runCheck(MESSAGES, rules, []);
  assert.equal(r.kind, 'messages-log');
  assert.match(r.format, /messages log/);
  assert.equal(r.matched.length, 22);
  assert.deepEqual(
    r.bans.map((b) => [b.target, b.rule, b.line]),
    [
      ['203.0.113.50', 'auth-failure', 7],
      ['198.51.100.7', 'auth-failure', 15],
    ],
  );
  assert.deepEqual(
    r.skipped.map((s) => [s.line, s.outcome]),
    [
      [25, 'ambiguous'],
      [26, 'ambiguous'],
    ],
  );
  const addresses = r.matched.map((m) => m.address).join(' ');
  assert.doesNotMatch(addresses, /8\.8\.8\.8|8\.8\.4\.4|203\.0\.113\.6[67]/, 'no address from a forged line');
  const byEvent = Object.fromEntries(
    ['InvalidPassword', 'InvalidAccountID', 'FailedACL', 'ChallengeResponseFailed', 'RequestNotAllowed'].map((e) => [
      e,
      r.matched.filter((m) => m.event === e).length,
    ]),
  );
  assert.deepEqual(byEvent, { InvalidPassword: 7, InvalidAccountID: 9, FailedACL: 2, ChallengeResponseFailed: 2, RequestNotAllowed: 2 });
});

test('messages lines: hosts with ports and brackets, the service by module, attacker text cannot move the address', () => {
  assert.deepEqual(splitHost('[2001:db8::1]:5060'), { address: '2001:db8::1', port: '5060' });
  assert.deepEqual(splitHost('2001:db8::1'), { address: '2001:db8::1', port: '0' });
  assert.deepEqual(splitHost('192.0.2.1:5060'), { address: '192.0.2.1', port: '5060' });
  assert.equal(splitHost('999.1.1.1'), null);
  assert.equal(splitHost('[192.0.2.0/24]'), null);
  const iax = parseMessagesLine("[Nov 22 10:20:20] NOTICE[3270] chan_iax2.c: Host 198.51.100.40 failed MD5 authentication for 'u' (e7df != 53ac)");
  assert.deepEqual(iax && [iax.event, iax.service, iax.address], ['ChallengeResponseFailed', 'IAX2', '198.51.100.40']);
  const ami = parseMessagesLine("[Nov 22 10:20:18] NOTICE[3260] manager.c: 192.0.2.77 failed to authenticate as 'admin'");
  assert.deepEqual(ami && [ami.event, ami.service], ['InvalidPassword', 'AMI']);
  // the user name is the attacker's: it imitates a second line's words and address
  const forged = parseMessagesLine("[Nov 22 10:20:18] NOTICE[3260] manager.c: 192.0.2.77 failed to authenticate as 'x': 8.8.8.8 failed to authenticate as 'y'");
  assert.equal(forged?.ambiguous, true);
  assert.equal(forged?.address, null);
  // many markers (a From header full of them): forged, named by the line's end, read in one pass
  const flood = parseMessagesLine(
    `[Nov 22 10:20:09] NOTICE[1]: res_pjsip/pjsip_distributor.c:676 log_failed_request: Request 'REGISTER' from '${"x' failed for '8.8.8.8:1' (callid: y".repeat(150)}' failed for '203.0.113.9:5060' (callid: z) - Failed to authenticate`,
  );
  assert.deepEqual(flood && [flood.event, flood.service, flood.address, flood.ambiguous], ['ChallengeResponseFailed', 'PJSIP', null, true]);
  // a reason Asterisk does not write, or a line that is no NOTICE / WARNING, is not a failure
  assert.equal(parseMessagesLine("[Nov 22 10:20:01] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '192.0.2.1' - Something else"), null);
  assert.equal(parseMessagesLine("[Nov 22 10:20:01] VERBOSE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '192.0.2.1' - Wrong password"), null);
});

test('the automatic allow-list applies to check and is shown: loopback, the host, guard.allow', async () => {
  const r = runCheck(MESSAGES, rules, ['198.51.100.0/25'], 64, undefined, loopback);
  assert.deepEqual(
    r.allowListed.map((a) => [a.address, a.from, a.lines]),
    [
      ['198.51.100.9', 'guard.allow', 1],
      ['198.51.100.20', 'guard.allow', 1],
      ['198.51.100.7', 'guard.allow', 5],
      ['198.51.100.30', 'guard.allow', 1],
      ['198.51.100.21', 'guard.allow', 1],
      ['198.51.100.40', 'guard.allow', 1],
      ['198.51.100.41', 'guard.allow', 1],
      ['127.0.0.1', 'loopback', 1],
    ],
  );
  assert.deepEqual(
    r.bans.map((b) => b.target),
    ['203.0.113.50'],
  );
  // the CLI applies the daemon's automatic list by default (loopback, this host's addresses)
  const text = await cli('check', SECURITY);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^Format: Asterisk security log \(res_security_log\) \(security-log\)/m);
  assert.match(text.stdout, /\n {2}127\.0\.0\.2: allow-listed \(loopback 127\.0\.0\.0\/8\), would not be banned \(\d+ lines\)\n/);
  assert.match(text.stdout, /\n {2}127\.0\.0\.1: allow-listed \(loopback 127\.0\.0\.0\/8\), would not be banned/);
  assert.match(text.stdout, /Would be banned: 0\n?$/);
  const rulesOnly = await cli('check', SECURITY, '--rules-only');
  assert.match(rulesOnly.stdout, /Would be banned: [1-9]\d*\n {2}127\.0\.0\.2 {2}rule auth-failure/);
});

test('check: a missing file, an unknown format or an empty file exit 2 with a clear message; no matching line exits 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-check-'));
  try {
    writeFileSync(join(dir, 'image.png'), Buffer.from('\u0089PNG\r\n\u001a\n\u0000\u0000'));
    writeFileSync(join(dir, 'empty.log'), '');
    writeFileSync(join(dir, 'quiet.log'), '[Nov 22 10:20:00] VERBOSE[3201] asterisk.c: Asterisk Ready.\n[Nov 22 10:20:08] NOTICE[3290] pbx.c: nothing here\n');
    const [missing, image, empty, quiet] = await Promise.all([
      cli('check', join(dir, 'nope.log')),
      cli('check', join(dir, 'image.png')),
      cli('check', join(dir, 'empty.log')),
      cli('check', join(dir, 'quiet.log')),
    ]);
    assert.equal(missing.status, 2);
    assert.equal(missing.stderr, `pbx-guardian: cannot read ${join(dir, 'nope.log')}: no such file\n`);
    assert.equal(image.status, 2);
    assert.match(
      image.stderr,
      /image\.png: not a format check reads \(first line: ".*"\): give an Asterisk security log, an Asterisk messages log, or a raw AMI \/ call transcript/,
    );
    assert.equal(empty.status, 2);
    assert.match(empty.stderr, /empty\.log: empty/);
    assert.equal(quiet.status, 1);
    assert.match(quiet.stdout, /Format: Asterisk messages log/);
    assert.match(quiet.stderr, /no line of .*quiet\.log matched a rule \(Asterisk messages log .*, 2 lines\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
