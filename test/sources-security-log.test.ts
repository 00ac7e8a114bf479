/**
 * The security log as a detection source (src/sources/security-log.ts) and the seam around it:
 * real log lines (test/fixtures/asterisk-security.log) become observations that ban on their own,
 * the dedup mode (fallback / always) against AMI, rules limited to a `source:`, ambiguous lines,
 * and attachSources' wiring and per-source metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { splitTranscript, type AmiClient, type AmiHealth, type AmiMessage } from '../src/ami/index.js';
import { formatNetwork, parseRules, RuleError, type Observation } from '../src/guard/index.js';
import { judgeGuard } from '../src/health/index.js';
import { attachSources, type SecurityLogHealth, parseSecurityLogLine, logObservation, SecurityLogSource } from '../src/sources/index.js';
import { buildConfig, ConfigError, defaultConfig } from '../src/config/index.js';
import { readFixture } from './helpers/fixtures.js';
import { makeGuardian, shippedRules } from './helpers/guard.js';
import { waitFor } from './helpers/daemon.js';

const LOG = readFixture('asterisk-security.log').toString('utf8').split('\n');
/** the chan_sip failures of the fixture from 127.0.0.2 (lines 12-22 and set 2) */
const SIP_FAILURES = LOG.filter((l) => /Service="SIP"/.test(l) && /SecurityEvent="(InvalidPassword|ChallengeResponseFailed)"/.test(l));
const sipFrame = (): AmiMessage =>
  splitTranscript(readFixture('ami/security-sip-register-wrong-password.raw'))
    .map((f) => f.message)
    .find((m) => m.get('Event') === 'InvalidPassword')!;

test('a security-log line is observed with its parsed address, service, account and session', () => {
  const line = SIP_FAILURES[0]!;
  const { fields, ambiguous } = parseSecurityLogLine(line);
  const o: Observation = logObservation(fields!, ambiguous, 1234);
  assert.equal(o.source, 'security-log');
  assert.equal(o.event, 'InvalidPassword');
  assert.equal(o.service, 'SIP');
  assert.equal(formatNetwork(o.address!), '127.0.0.2');
  assert.equal(o.ambiguous, false);
  assert.equal(o.account, '100');
  assert.equal(o.session, '0x7f51fc001ec0');
  assert.equal(o.time, 1234);
  assert.equal(o.get('ReceivedHash'), '077b03d63f0eca85f99d6d7366c54960', 'other fields stay readable for a rule match');
});

test("security log alone: the fixture's SIP brute force bans 127.0.0.2 at the 5th failure", () => {
  assert.ok(SIP_FAILURES.length >= 6);
  const sources: string[] = [];
  const fresh = makeGuardian();
  fresh.guardian.on({ securityEvent: (_e, _s, source) => sources.push(source) });
  const src = new SecurityLogSource(
    fresh.guardian,
    'fallback',
    () => false,
    () => fresh.clock.now,
  );
  for (let i = 0; i < 4; i++) {
    fresh.clock.now += 3000;
    src.handleLines([SIP_FAILURES[i]!]);
    assert.equal(fresh.guardian.listBans().length, 0, `no ban after ${i + 1} failures`);
  }
  fresh.clock.now += 3000;
  src.handleLines([SIP_FAILURES[4]!]);
  const bans = fresh.guardian.listBans();
  assert.deepEqual(
    bans.map((b) => [b.target, b.rule, b.count]),
    [['127.0.0.2', 'auth-failure', 5]],
  );
  assert.equal(src.counts.observed, 5);
  assert.ok(sources.length > 0 && sources.every((s) => s === 'security-log'));
});

test('dedup, mode fallback: while AMI delivers security events the log counts nothing; when it stops, the log counts', () => {
  const { guardian, clock } = makeGuardian();
  let amiCovers = true;
  const log = new SecurityLogSource(
    guardian,
    'fallback',
    () => amiCovers,
    () => clock.now,
  );
  log.handleLines(SIP_FAILURES.slice(0, 5));
  assert.equal(log.counts.covered, 5);
  assert.equal(log.counts.observed, 0);
  assert.equal(guardian.status().totalFailed, 0, 'nothing counted twice: AMI counted these');
  amiCovers = false;
  clock.now += 1000;
  log.handleLines(SIP_FAILURES.slice(0, 5));
  assert.equal(log.counts.observed, 5);
  assert.equal(guardian.listBans()[0]?.target, '127.0.0.2');
});

test('dedup, mode always: the log counts while AMI delivers too (both sources count)', () => {
  const { guardian, clock } = makeGuardian();
  const log = new SecurityLogSource(
    guardian,
    'always',
    () => true,
    () => clock.now,
  );
  const frame = sipFrame();
  for (let i = 0; i < 2; i++) guardian.handleEvent(frame);
  log.handleLines(SIP_FAILURES.slice(0, 3));
  assert.equal(log.counts.covered, 0);
  assert.equal(guardian.listBans()[0]?.target, '127.0.0.2', '2 AMI + 3 log failures: banned');
});

test('a rule with source: counts only the observations of the sources it names; others any source', () => {
  const rules = parseRules(
    [
      'rules:',
      '  - { name: log-only, source: security-log, events: [InvalidPassword], windows: [{ count: 3, within: 10m }], ban: 1h }',
      '  - { name: ami-only, source: [ami], events: [InvalidPassword], windows: [{ count: 3, within: 10m }], ban: 2h }',
    ].join('\n'),
    'r.yaml',
  );
  assert.deepEqual([...rules[0]!.sources!], ['security-log']);
  assert.equal(shippedRules()[0]!.sources, null, 'no source: any source');
  // 2 AMI + 2 log failures: neither rule reaches 3
  const wrong = SIP_FAILURES.filter((l) => l.includes('SecurityEvent="InvalidPassword"'));
  const a = makeGuardian({ rules });
  const logA = new SecurityLogSource(
    a.guardian,
    'always',
    () => false,
    () => a.clock.now,
  );
  a.guardian.handleEvent(sipFrame());
  a.guardian.handleEvent(sipFrame());
  logA.handleLines(wrong.slice(0, 2));
  assert.equal(a.guardian.listBans().length, 0);
  // the third from the log: the log-only rule bans
  logA.handleLines([wrong[2]!]);
  assert.deepEqual(
    a.guardian.listBans().map((b) => b.rule),
    ['log-only'],
  );
  // three from AMI: the AMI-only rule
  const b = makeGuardian({ rules });
  for (let i = 0; i < 3; i++) b.guardian.handleEvent(sipFrame());
  assert.deepEqual(
    b.guardian.listBans().map((r) => r.rule),
    ['ami-only'],
  );
});

test("a rule with source: is reset (resetOn) only by its sources' events", () => {
  const rules = parseRules(
    'rules:\n  - { name: log-challenges, source: security-log, events: [InvalidPassword], resetOn: [SuccessfulAuth], windows: [{ count: 3, within: 10m }], ban: 1h }\n',
    'r.yaml',
  );
  const { guardian, clock } = makeGuardian({ rules });
  const log = new SecurityLogSource(
    guardian,
    'always',
    () => false,
    () => clock.now,
  );
  const wrong = SIP_FAILURES.filter((l) => l.includes('SecurityEvent="InvalidPassword"'));
  const success = wrong[0]!
    .replace('SecurityEvent="InvalidPassword"', 'SecurityEvent="SuccessfulAuth"')
    .replace('Severity="Error"', 'Severity="Informational"');
  const amiSuccess = {
    get: (k: string) => ({ Event: 'SuccessfulAuth', Service: 'SIP', Severity: 'Informational', RemoteAddress: 'IPV4/UDP/127.0.0.2/5060' })[k],
  };
  log.handleLines(wrong.slice(0, 2));
  guardian.handleEvent(amiSuccess); // AMI's: not this rule's source, no reset
  log.handleLines([wrong[2]!]);
  assert.equal(guardian.listBans().length, 1, 'the AMI SuccessfulAuth did not reset the log rule');
  const b = makeGuardian({ rules });
  const logB = new SecurityLogSource(
    b.guardian,
    'always',
    () => false,
    () => b.clock.now,
  );
  logB.handleLines([...wrong.slice(0, 2), success, wrong[2]!]);
  assert.equal(b.guardian.listBans().length, 0, "the log's SuccessfulAuth reset it");
});

test('a rule naming an unknown source is refused with its key', () => {
  assert.throws(
    () => parseRules('rules:\n  - { name: x, source: sip-proxy, events: [A], windows: [{ count: 1, within: 1m }], ban: 1h }\n', 'r.yaml'),
    (err: Error) => {
      assert.ok(err instanceof RuleError);
      assert.match(err.message, /r\.yaml rules\[0\] \(x\)\.source\[0\]: "sip-proxy" is not a source \(one of ami, security-log, http\)/);
      return true;
    },
  );
  assert.throws(
    () => parseRules('rules:\n  - { name: x, source: [], events: [A], windows: [{ count: 1, within: 1m }], ban: 1h }\n', 'r.yaml'),
    /\(x\)\.source: must be a source name/,
  );
});

test('an ambiguous log line (a forged RemoteAddress inside another field) is observed as ambiguous, never counted', () => {
  const { guardian, clock } = makeGuardian();
  const ignored: string[] = [];
  guardian.on({ ignored: (why) => ignored.push(why) });
  const log = new SecurityLogSource(
    guardian,
    'always',
    () => false,
    () => clock.now,
  );
  const forged = SIP_FAILURES[0]!.replace('AccountID="100"', 'AccountID="x",RemoteAddress="IPV4/UDP/198.51.100.9/5060"');
  assert.equal(parseSecurityLogLine(forged).ambiguous, true);
  for (let i = 0; i < 6; i++) log.handleLines([forged]);
  assert.deepEqual(ignored, Array(6).fill('ambiguous'));
  assert.equal(guardian.status().totalFailed, 0);
});

test('sources config: defaults, and each error names its key', () => {
  const d = defaultConfig().sources;
  assert.deepEqual(d.securityLog, { enabled: false, path: '/var/log/asterisk/security', mode: 'fallback', pollInterval: '1s' });
  assert.doesNotThrow(() => buildConfig({ sources: d }));
  const bad = { sources: { securityLog: { enabled: true, path: 'var/log/security', mode: 'sometimes', pollInterval: '5ms' } } };
  const err = (() => {
    try {
      buildConfig(bad);
    } catch (e) {
      return e as Error;
    }
    return null;
  })();
  assert.ok(err instanceof ConfigError);
  const lines = err.message.split('\n').slice(1);
  assert.equal(lines.length, 3, err.message);
  assert.ok(
    lines.some((l) => /sources\.securityLog\.mode: "sometimes" is not one of fallback, always/.test(l)),
    err.message,
  );
  assert.ok(
    lines.some((l) => /sources\.securityLog\.path: .*absolute path/.test(l)),
    err.message,
  );
  assert.ok(
    lines.some((l) => /sources\.securityLog\.pollInterval: "5ms"/.test(l)),
    err.message,
  );
});

/** An AMI client as attachSources sees it: events and health. */
class FakeAmi extends EventEmitter {
  state: AmiHealth['state'] = 'connected';
  security: AmiHealth['security'] = 'verified';
  health(): AmiHealth {
    return { state: this.state, security: this.security } as AmiHealth;
  }
}

test('attachSources: AMI events reach the guard; http and AMI observations are counted per source', async () => {
  const { guardian } = makeGuardian();
  const ami = new FakeAmi();
  const registry = new Registry();
  const srcs = attachSources({
    sink: guardian,
    ami: ami as unknown as AmiClient,
    config: defaultConfig().sources,
    logger: pino({ level: 'silent' }),
    registry,
  });
  assert.equal(srcs.securityLog(), null, 'the log is off by default');
  for (let i = 0; i < 3; i++) ami.emit('event', sipFrame());
  ami.emit('event', splitTranscript(readFixture('ami/action-corestatus.raw'))[0]!.message); // no security event
  guardian.observeExternal('HttpAuthFailure', '198.51.100.7', 'rest');
  assert.equal(guardian.status().totalFailed, 4, '3 from AMI, 1 from http');
  const text = await registry.metrics();
  assert.match(text, /pbx_guardian_observations_total\{source="ami"\} 3/);
  assert.match(text, /pbx_guardian_observations_total\{source="http"\} 1/);
  assert.match(text, /pbx_guardian_observations_total\{source="security-log"\} 0/);
  await srcs.stop();
});

test('attachSources, mode fallback: the followed log is covered while AMI is verified, counted once AMI is blind', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-srclog-'));
  const path = join(dir, 'security');
  writeFileSync(path, LOG.slice(0, 20).join('\n') + '\n'); // there before start: not read
  const { guardian, clock } = makeGuardian();
  const ami = new FakeAmi();
  const registry = new Registry();
  const config = { securityLog: { enabled: true, path, mode: 'fallback' as const, pollInterval: '100ms' } };
  const srcs = attachSources({ sink: guardian, ami: ami as unknown as AmiClient, config, logger: pino({ level: 'silent' }), registry, clock: () => clock.now });
  try {
    await srcs.start();
    assert.equal(srcs.securityLog()?.following, true);
    assert.equal(srcs.securityLog()?.amiCovers, true);
    appendFileSync(path, SIP_FAILURES.slice(0, 5).join('\n') + '\n');
    await waitFor('5 covered lines', () => srcs.securityLog()!.counts.covered === 5);
    assert.equal(guardian.status().totalFailed, 0);
    ami.security = 'missing'; // blind: the log counts
    assert.equal(srcs.securityLog()?.amiCovers, false);
    appendFileSync(path, SIP_FAILURES.slice(0, 5).join('\n') + '\n');
    await waitFor('a ban from the log', () => guardian.listBans().length === 1);
    assert.equal(guardian.listBans()[0]!.target, '127.0.0.2');
    const text = await registry.metrics();
    assert.match(text, /pbx_guardian_observations_total\{source="security-log"\} 5/);
    assert.match(text, /pbx_guardian_security_log_lines_total\{outcome="covered"\} 5/);
    assert.match(text, /pbx_guardian_security_log_following 1/);
  } finally {
    await srcs.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('health: a followed security log keeps the guard from being blind while AMI is down; a log not followed is a problem', () => {
  const now = Date.parse('2026-11-22T10:00:00Z');
  const guard = { rules: 7, tracked: 0, maxTracked: 1000, activeBans: 0 };
  const down = { state: 'disconnected', security: 'unknown', username: 'guardian', since: now - 60_000 } as AmiHealth;
  const log = (over: Partial<SecurityLogHealth> = {}): SecurityLogHealth => ({
    following: true,
    bytesRead: 0,
    lines: 0,
    longLines: 0,
    rotations: 0,
    truncations: 0,
    lastLineAt: null,
    lastError: null,
    path: '/var/log/asterisk/security',
    mode: 'fallback',
    amiCovers: false,
    counts: { other: 0, unwatched: 0, observed: 0, covered: 0 },
    ...over,
  });
  assert.equal(judgeGuard(guard, down, now).healthy, false, 'without the log: blind');
  const followed = judgeGuard({ ...guard, securityLog: log() }, down, now);
  assert.equal(followed.healthy, true, followed.problems.join('; '));
  assert.match(
    followed.summary,
    /AMI BLIND: not logged in to AMI; reads the security log \/var\/log\/asterisk\/security: counted \(fallback: AMI does not deliver\)/,
  );
  const lost = judgeGuard({ ...guard, securityLog: log({ following: false, lastError: '/var/log/asterisk/security does not exist (yet)' }) }, null, now);
  assert.equal(lost.healthy, false);
  assert.match(lost.problems[0]!, /the security log is not followed \(\/var\/log\/asterisk\/security does not exist \(yet\)\).*sources\.securityLog\.path/);
});
