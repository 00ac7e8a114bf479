import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics } from '../src/metrics/index.js';
import { bindGuardMetrics } from '../src/metrics/bind.js';
import { VERSION } from '../src/version.js';
import { adminDaemon } from './helpers/admin-daemon.js';
import { cli, cliOnSocket, type CliResult } from './helpers/cli.js';
import { repoPath } from './helpers/fixtures.js';
import { colours } from '../src/cli/table.js';

const options = { automaticAllow: [{ entry: '127.0.0.0/8', from: 'loopback' }], allow: ['192.0.2.0/24'] };

test('--version and version print the version', async () => {
  const [flag, word] = await Promise.all([cli('--version'), cli('version')]);
  assert.equal(flag.stdout, `${VERSION}\n`);
  assert.equal(word.stdout, `${VERSION}\n`);
});

test('allow list|add|remove: runtime entries kept in the state directory; automatic and configured ones cannot be added or removed', async () => {
  const d = await adminDaemon(options);
  let dir = '';
  try {
    dir = d.dir;
    await d.guardian.ban({ target: '203.0.113.7', durationSec: 3600, source: 'manual' });
    const add = await cliOnSocket(d.socket, 'allow', 'add', '203.0.113.7', '198.51.100.0/24', '--reason', 'office');
    assert.equal(add.status, 0, add.stderr);
    assert.deepEqual(add.stdout.trim().split('\n'), ['allowed 203.0.113.7; ended the ban of 203.0.113.7', 'allowed 198.51.100.0/24']);
    assert.equal(d.guardian.isAllowListed('198.51.100.9'), true);
    assert.deepEqual(
      (JSON.parse(readFileSync(join(dir, 'allow-runtime.json'), 'utf8')) as { entries: Array<{ entry: string; note: string }> }).entries.map((e) => [
        e.entry,
        e.note,
      ]),
      [
        ['203.0.113.7', 'office'],
        ['198.51.100.0/24', 'office'],
      ],
    );

    const refused = await cliOnSocket(d.socket, 'allow', 'add', '127.0.0.0/8', '192.0.2.0/24', '0.0.0.0/0');
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /127\.0\.0\.0\/8: 127\.0\.0\.0\/8 is already allow-listed \(loopback\)/);
    assert.match(refused.stderr, /192\.0\.2\.0\/24 is already allow-listed \(guard\.allow\)/);
    assert.match(refused.stderr, /0\.0\.0\.0\/0 is wider than \/8/);
    const rm = await cliOnSocket(d.socket, 'allow', 'remove', '127.0.0.0/8', '192.0.2.0/24', '198.51.100.0/24');
    assert.equal(rm.status, 1);
    assert.match(rm.stderr, /127\.0\.0\.0\/8 is automatic \(loopback\): it follows the host and cannot be removed/);
    assert.match(rm.stderr, /192\.0\.2\.0\/24 comes from the config \(guard\.allow\): remove it there/);
    assert.equal(rm.stdout.trim(), 'removed 198.51.100.0/24 from the allow-list');
    assert.equal(d.guardian.isAllowListed('198.51.100.9'), false);

    const list = await cliOnSocket(d.socket, 'allow', 'list');
    const rows = list.stdout.trim().split('\n');
    assert.match(rows[0]!, /^ENTRY +KIND +ORIGIN$/);
    assert.match(list.stdout, /\n192\.0\.2\.0\/24 +config +guard\.allow/);
    assert.match(list.stdout, /\n203\.0\.113\.7 +runtime +allow add \S+ \S+: office\n/);
    assert.match(list.stdout, /\n127\.0\.0\.0\/8 +automatic +loopback/);
  } finally {
    await d.close(true);
  }
  // a new daemon on the same state directory has the runtime entry again
  const again = await adminDaemon(options, () => ({}), dir);
  try {
    assert.equal(again.guardian.isAllowListed('203.0.113.7'), true);
    assert.equal(again.guardian.isAllowListed('198.51.100.9'), false);
  } finally {
    await again.close();
  }
});

test('status RULE: that rule as loaded and its bans; an unknown rule exits 1 naming the rules', async () => {
  const d = await adminDaemon();
  try {
    await d.guardian.ban({ target: '203.0.113.7', durationSec: 3600, source: 'manual' });
    const [rule, manual, nope] = await Promise.all([
      cliOnSocket(d.socket, 'status', 'auth-failure'),
      cliOnSocket(d.socket, 'status', 'manual'),
      cliOnSocket(d.socket, 'status', 'nope'),
    ]);
    assert.equal(rule.status, 0, rule.stderr);
    assert.match(rule.stdout, /^Status for the rule: auth-failure\n/);
    assert.match(rule.stdout, /events: +InvalidPassword, ChallengeResponseFailed, InvalidAccountID/);
    assert.match(rule.stdout, /windows: +5 within 10m, 20 within 12h/);
    assert.match(rule.stdout, /Currently banned: 0\n\nno active bans/);
    assert.equal(nope.status, 1);
    assert.match(nope.stderr, /no rule named "nope" \(rules: auth-failure, acl-denied, /);
    assert.equal(manual.status, 1, 'manual bans have no rule to show');
  } finally {
    await d.close();
  }
});

test('metrics: a readable summary of the daemon scrape (histogram buckets and most process metrics left out)', async () => {
  const m = createMetrics();
  const d = await adminDaemon({}, (g) => {
    bindGuardMetrics(m, g);
    return { metrics: () => m.registry.metrics() };
  });
  try {
    await d.guardian.ban({ target: '203.0.113.7', durationSec: 3600, source: 'manual' });
    const r = await cliOnSocket(d.socket, 'metrics');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^METRIC +LABELS +VALUE\n/);
    assert.match(r.stdout, /\nbans_total +rule="manual",source="manual" +1\n/);
    assert.match(r.stdout, /\nPROCESS +VALUE\nprocess_cpu_seconds_total/);
    assert.doesNotMatch(r.stdout, /_bucket|nodejs_gc/);
    const json = JSON.parse((await cliOnSocket(d.socket, 'metrics', '-o', 'json')).stdout) as Array<{ name: string; value: number }>;
    assert.ok(json.some((s) => s.name === 'pbx_guardian_bans_total' && s.value === 1));
  } finally {
    await d.close();
  }
});

function run(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [repoPath('dist/src/cli/main.js'), ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

test('config show: every key with its origin (default, file, env); secrets masked', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-config-show-'));
  try {
    const file = join(dir, 'guardian.yaml');
    writeFileSync(
      file,
      'ami:\n  secret: hunter2-file\nguard:\n  ipv6Prefix: 56\nwebhooks:\n  - name: ops\n    url: https://hooks.example.com/x\n    secret: whsec-file-0123456789\n    events: [GuardianBan]\n',
    );
    const env = { PATH: process.env.PATH, ASTERISK_AMI_USER: 'guardian-env' };
    const text = await run(['config', 'show', '--config', file], env);
    assert.equal(text.status, 0, text.stderr);
    assert.doesNotMatch(text.stdout, /hunter2|whsec/);
    assert.match(text.stdout, /\nami\.secret +file +"\*{8}"\n/);
    assert.match(text.stdout, /\nami\.username +env +"guardian-env"\n/);
    assert.match(text.stdout, /\nguard\.ipv6Prefix +file +56\n/);
    assert.match(text.stdout, /\nguard\.maxTracked +default +1000000\n/);
    const json = JSON.parse((await run(['config', 'show', '--config', file, '-o', 'json'], env)).stdout) as Record<string, { value: unknown; origin: string }>;
    assert.deepEqual(json['guard.manualBanDuration'], { value: '1d', origin: 'default' });
    assert.equal((json.webhooks!.value as Array<{ secret: string }>)[0]!.secret, '********');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('colour only on a terminal, never with NO_COLOR or TERM=dumb', () => {
  assert.equal(colours({ isTTY: true }, {}).bold('x'), '\u001b[1mx\u001b[0m');
  assert.equal(colours({ isTTY: false }, {}).bold('x'), 'x');
  assert.equal(colours({ isTTY: true }, { NO_COLOR: '' }).bold('x'), 'x');
  assert.equal(colours({ isTTY: true }, { TERM: 'dumb' }).red('x'), 'x');
});
