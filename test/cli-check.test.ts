import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { fixturePath, repoPath } from './helpers/fixtures.js';

const CLI = repoPath('dist/src/cli/main.js');
const LOG = fixturePath('asterisk-security.log');
const FAIL2BAN_FILTER = '/etc/fail2ban/filter.d/asterisk.conf';
const FAIL2BAN_SAMPLE = '/usr/lib/python3/dist-packages/fail2ban/tests/files/logs/asterisk';

interface Report {
  matched: Array<{ line: number; event: string; text: string }>;
  bans: Array<{ target: string; rule: string }>;
  skipped: Array<{ line: number; outcome: string }>;
}

/** the rules alone (--rules-only): the fixtures were captured over loopback, which the automatic
 *  allow-list keeps from every ban (test/cli-check-formats.test.ts) */
function check(file: string): Report {
  return JSON.parse(execFileSync(process.execPath, [CLI, 'check', file, '--json', '--rules-only'], { encoding: 'utf8' })) as Report;
}

/** The lines fail2ban-regex matches in `file` with the Debian asterisk filter. */
function fail2banMatched(file: string): string[] {
  const out = execFileSync('/usr/bin/fail2ban-regex', ['--print-all-matched', file, FAIL2BAN_FILTER], { encoding: 'utf8' });
  const end = out.indexOf('Missed line(s):');
  return out
    .slice(out.indexOf('Matched line(s):'), end < 0 ? undefined : end)
    .split('\n')
    .filter((l) => l.startsWith('|  ['))
    .map((l) => l.slice(3).trim());
}

test("check on the shipped security log finds every line fail2ban's asterisk filter finds, plus RequestNotAllowed and RequestBadFormat", (t) => {
  const haveFail2ban = existsSync('/usr/bin/fail2ban-regex') && existsSync(FAIL2BAN_FILTER);
  if (!haveFail2ban && !process.env.CI) return t.skip('fail2ban is not installed (.ci/run installs it)');
  assert.ok(haveFail2ban, 'CI installs fail2ban; fail2ban-regex must be there');
  const out = execFileSync('/usr/bin/fail2ban-regex', ['--print-all-matched', LOG, FAIL2BAN_FILTER], { encoding: 'utf8' });
  const f2bLines = out
    .slice(out.indexOf('Matched line(s):'))
    .split('\n')
    .filter((l) => l.startsWith('|  ['))
    .map((l) => l.slice(3).trim());
  assert.ok(f2bLines.length >= 10, `fail2ban matched ${f2bLines.length} lines`);

  const ours = new Set(check(LOG).matched.map((m) => m.text.trim()));
  const missed = f2bLines.filter((l) => !ours.has(l));
  assert.deepEqual(missed, [], 'lines fail2ban matches that check missed');

  const extra = check(LOG).matched.filter((m) => !f2bLines.includes(m.text.trim()));
  const extraEvents = new Set(extra.map((m) => m.event));
  assert.ok(extraEvents.has('RequestNotAllowed'), 'RequestNotAllowed lines are matched');
  assert.ok(extraEvents.has('RequestBadFormat'), 'RequestBadFormat lines are matched');
});

test('check reports the addresses that would be banned, for logs and raw AMI transcripts', () => {
  const log = check(LOG);
  assert.ok(
    log.bans.some((b) => b.target === '127.0.0.2' && b.rule === 'auth-failure'),
    JSON.stringify(log.bans),
  );
  const transcript = check(fixturePath('ami/session-recorder-full.raw'));
  assert.ok(transcript.matched.length >= 10, `matched ${transcript.matched.length}`);
  assert.ok(transcript.bans.some((b) => b.target === '127.0.0.2'));
  const text = execFileSync(process.execPath, [CLI, 'check', LOG, '--rules-only'], { encoding: 'utf8' });
  assert.match(text, /Matched failures: \d+/);
  assert.match(text, /InvalidPassword \(SIP\): \d+/);
  assert.match(text, /Would be banned: \d+\n {2}127\.0\.0\.2 {2}rule auth-failure/);
});

test('a forged RemoteAddress inside an attacker-chosen log field is never trusted', () => {
  const dir = mkdtempSync('/tmp/pbxg-check-');
  const forged = Array.from({ length: 6 }, (_, i) =>
    `[Nov 22 10:17:2${i}] SECURITY[3223] res_security_log.c: SecurityEvent="InvalidAccountID",EventTV="2026-11-22T10:17:2${i}.000+0000",Severity="Error",Service="SIP",EventVersion="1",AccountID="x\\",RemoteAddress=\\"IPV4/UDP/8.8.8.8/5060",SessionID="0x1",LocalAddress="IPV4/UDP/127.0.0.1/5060",RemoteAddress="IPV4/UDP/203.0.113.50/5060"`.replace(
      /\\"/g,
      '"',
    ),
  ).join('\n');
  writeFileSync(`${dir}/forged.log`, forged + '\n');
  const report = check(`${dir}/forged.log`);
  assert.equal(
    report.bans.some((b) => b.target === '8.8.8.8'),
    false,
    'the forged address is not banned',
  );
  assert.equal(report.skipped.filter((s) => s.outcome === 'ambiguous').length, 6);
});

test('CLI usage errors exit 2 with a message; version prints the package version', () => {
  const bad = spawnSync(process.execPath, [CLI, 'frobnicate'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown command "frobnicate"/);
  const version = spawnSync(process.execPath, [CLI, 'version'], { encoding: 'utf8' });
  assert.equal(version.status, 0);
  assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+$/);
  const unreachable = spawnSync(process.execPath, [CLI, 'status', '--socket', '/tmp/pbxg-no-such.sock'], { encoding: 'utf8' });
  assert.equal(unreachable.status, 3);
  assert.match(unreachable.stderr, /cannot reach the pbx-guardian daemon/);
});

test("check on Asterisk's messages log matches every line fail2ban's asterisk filter matches; the only lines it does not count are forged (ambiguous)", (t) => {
  const haveFail2ban = existsSync('/usr/bin/fail2ban-regex') && existsSync(FAIL2BAN_FILTER);
  if (!haveFail2ban && !process.env.CI) return t.skip('fail2ban is not installed (.ci/run installs it)');
  assert.ok(haveFail2ban, 'CI installs fail2ban; fail2ban-regex must be there');
  // ours, and fail2ban's own sample of real Asterisk lines (chan_sip, PJSIP, IAX2, AMI; shipped with fail2ban)
  const files = [fixturePath('asterisk-messages.log'), FAIL2BAN_SAMPLE].filter((f) => existsSync(f));
  assert.ok(files.length >= 1);
  for (const file of files) {
    const f2b = fail2banMatched(file);
    const r = check(file);
    const counted = r.matched.map((m) => m.text.trim());
    const ambiguous = r.skipped.filter((s) => s.outcome === 'ambiguous').map((s) => s.line);
    const lines = readFileSync(file, 'utf8').split(/\r?\n/);
    const judged = new Set([...counted, ...ambiguous.map((n) => lines[n - 1]!.trim())]);
    assert.deepEqual(
      f2b.filter((l) => !judged.has(l)),
      [],
      `${file}: lines fail2ban matches that check neither counted nor refused as forged`,
    );
    const extra = counted.filter((l) => !f2b.includes(l));
    t.diagnostic(
      `${file}: fail2ban-regex matched ${f2b.length}; check counted ${counted.length}, refused ${ambiguous.length} as forged; ${extra.length} counted that fail2ban's file mode does not read`,
    );
    const forgedByF2b = f2b.filter((l) => !counted.includes(l)).length;
    assert.equal(counted.length - extra.length, f2b.length - forgedByF2b);
    if (file === FAIL2BAN_SAMPLE) {
      // its syslog and journal lines: fail2ban reads them only with its journal / syslog prefix options
      for (const l of extra) assert.match(l, /^(?:[A-Z][a-z]{2} +\d+ [\d:]+ \S+ asterisk\[\d+\]: |NOTICE\[\d+\]: )/, l);
    } else assert.deepEqual(extra, [], `${file}: lines check counts that fail2ban does not match`);
  }
});
