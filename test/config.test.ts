import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { buildConfig, ConfigError, loginEventMask } from '../src/config/index.js';
import { parseDuration, formatDuration } from '../src/common/duration.js';
import { parseRules, RuleError } from '../src/guard/index.js';
import { repoPath } from './helpers/fixtures.js';

test('the commented example config is valid and equals the defaults', () => {
  const doc = parse(readFileSync(repoPath('config/guardian.example.yaml'), 'utf8'));
  const cfg = buildConfig(doc);
  assert.deepEqual(cfg, buildConfig({}));
  assert.equal(cfg.ami.port, 5038);
  assert.equal(cfg.firewall.backend, 'auto');
});

test('config errors name the key', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ ami: { prot: 5038 } }, /ami\.prot: unknown key/],
    [{ ami: { port: 'x' } }, /ami\.port: expected a number/],
    [{ ami: { port: 70000 } }, /ami\.port: 70000 is not a TCP port/],
    [{ guard: { trackTtl: 'soon' } }, /guard\.trackTtl: "soon" is not a duration/],
    [{ firewall: { backend: 'pf' } }, /firewall\.backend: "pf" is not one of/],
    [{ firewall: { ports: ['sip'] } }, /firewall\.ports: expected a list of numbers/],
    [{ ami: { secret: 'a\r\nAction: Originate' } }, /line breaks/],
    [['list'], /top level/],
  ];
  for (const [doc, re] of cases)
    assert.throws(
      () => buildConfig(doc),
      (err: Error) => err instanceof ConfigError && re.test(err.message),
      String(re),
    );
});

test('environment variables of the seed docs override the file', () => {
  const cfg = buildConfig(
    { ami: { host: '10.0.0.1' } },
    {
      ASTERISK_AMI_HOST: '127.0.0.1',
      ASTERISK_AMI_PORT: '5039',
      ASTERISK_AMI_USER: 'u',
      ASTERISK_AMI_PASSWORD: 'p',
      ODOO_URL: 'https://odoo.example.com',
      ODOO_DB: 'db',
    },
  );
  assert.equal(cfg.ami.host, '127.0.0.1');
  assert.equal(cfg.ami.port, 5039);
  assert.equal(cfg.ami.username, 'u');
  assert.equal(cfg.ami.secret, 'p');
  assert.equal(cfg.odoo.url, 'https://odoo.example.com');
  assert.equal(cfg.odoo.enabled, true);
});

test('durations', () => {
  assert.equal(parseDuration('90'), 90);
  assert.equal(parseDuration('10m'), 600);
  assert.equal(parseDuration('1h30m'), 5400);
  assert.equal(parseDuration('7d'), 604800);
  assert.equal(parseDuration('1x'), null);
  assert.equal(parseDuration('-5'), null);
  assert.equal(formatDuration(5400), '1h30m');
  assert.equal(formatDuration(null), 'permanent');
});

test('rule errors name the file, rule and key', () => {
  assert.throws(
    () => parseRules('rules:\n  - name: x\n    events: [InvalidPassword]\n    windows: [{count: 0, within: 1m}]\n    ban: 1h\n', 'r.yaml'),
    (e: Error) => e instanceof RuleError && /r\.yaml rules\[0\] \(x\)\.windows\[0\]\.count/.test(e.message),
  );
  assert.throws(
    () => parseRules('rules:\n  - name: x\n    events: ["Bad Event"]\n    windows: [{count: 1, within: 1m}]\n    ban: 1h\n', 'r.yaml'),
    /not an AMI event name/,
  );
  assert.throws(() => parseRules('rules:\n  - name: x\n    events: [A]\n    windws: []\n', 'r.yaml'), /windws: unknown key/);
  assert.throws(() => parseRules('rules: [', 'r.yaml'), /not valid YAML/);
  const [rule] = parseRules(
    'rules:\n  - name: pjsip-only\n    events: ChallengeResponseFailed\n    match: { Service: [PJSIP] }\n    weight: 2\n    windows: [{count: 4, within: 1m}, {count: 10, within: 1h}]\n    ban: 2h\n',
    'r.yaml',
  );
  assert.equal(rule!.ringSize, 10);
  assert.equal(rule!.banSec, 7200);
  assert.deepEqual([...rule!.match[0]![1]], ['pjsip']);
});

test('ami.events auto: security alone for a guard, plus call and cdr with the fraud guard, everything when Odoo or webhooks forward events', () => {
  const base = { stateDir: '/tmp/x' };
  assert.equal(loginEventMask(buildConfig({ ...base, fraud: { enabled: false } })), 'security');
  assert.equal(loginEventMask(buildConfig(base)), 'security,call,cdr');
  assert.equal(loginEventMask(buildConfig({ ...base, ami: { events: 'security,call' } })), 'security,call');
  assert.equal(
    loginEventMask(buildConfig({ ...base, webhooks: [{ name: 'w', url: 'http://127.0.0.1:9/x', events: ['Hangup'], secret: 'a-secret-of-16-chars' }] })),
    'on',
  );
  assert.throws(() => buildConfig({ ...base, ami: { events: 'security;call' } }), /ami\.events: "security;call" is not auto, on, off or a comma list/);
});
