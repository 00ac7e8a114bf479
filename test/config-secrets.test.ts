/**
 * Issue 12, finding 14: `ami.secret: expected a string, got number (8675309123)`. A config error
 * names the key and the type of a secret, never its value, for every secret the config holds and
 * every validator (config merge, Odoo, REST tokens, webhooks, YAML syntax, environment).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import pino from 'pino';
import { buildConfig, ConfigError, loadConfig } from '../src/config/index.js';
import { amiMessage } from './helpers/fake-odoo.js';
import { WebhookDispatcher, resolveWebhooks } from '../src/webhooks/index.js';

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `a ConfigError, got ${String(e)}`);
    return e.message;
  }
  assert.fail('the config was accepted');
}

function assertHidden(message: string, secrets: string[]): void {
  for (const s of secrets) assert.ok(!message.includes(s), `the error shows the secret ${s}:\n${message}`);
}

test('wrong-typed and invalid secrets of every kind: the error names each key, shows none of the values', () => {
  const doc = {
    ami: { secret: 8675309123 },
    odoo: {
      enabled: true,
      url: 'ftp://agent:url-pass-9911@odoo.example',
      password: 4815162342,
      apiKey: ['api-key-value-3141'],
      agentToken: { nested: 'agent-token-value-2718' },
    },
    rest: {
      enabled: true,
      tokens: [
        // eslint-disable-next-line no-loss-of-precision -- a number where a token string belongs
        { token: 123456789012345678, scopes: ['admin'], name: 'a' },
        { token: 'short-tok-5150', scopes: ['read'], name: 'b' },
        { token: 'long-enough-token-value-6021', scopes: ['bogus'], name: 'c' },
      ],
    },
    webhooks: [
      { name: 'w1', url: 'https://crm.example/hook', events: ['Hangup'], secret: 7777777777777 },
      { name: 'w2', url: 'https://crm.example/hook', events: ['Hangup'], secret: 'short-hook-4242' },
      { name: 'w3', url: 'https://crm.example/hook', events: ['Hangup'], secret: ['hook-list-secret-9876543'] },
    ],
  };
  const message = errorOf(() => buildConfig(doc));
  for (const key of [
    'ami.secret',
    'odoo.url',
    'odoo.password',
    'odoo.apiKey',
    'odoo.agentToken',
    'rest.tokens[0].token',
    'rest.tokens[1].token',
    'webhooks[0].secret',
    'webhooks[1].secret',
    'webhooks[2].secret',
  ]) {
    assert.ok(message.includes(key), `the error names ${key}:\n${message}`);
  }
  assertHidden(message, [
    '8675309123',
    'url-pass-9911',
    '4815162342',
    'api-key-value-3141',
    'agent-token-value-2718',
    '1234567890123456',
    'short-tok-5150',
    'long-enough-token-value-6021',
    '7777777777777',
    'short-hook-4242',
    'hook-list-secret-9876543',
  ]);
  assert.match(message, /ami\.secret: expected a string, got number \(its value is not shown: a secret\)/);
  // a non-secret key still shows what was given
  assert.match(
    errorOf(() => buildConfig({ ami: { port: true } })),
    /ami\.port: expected a number, got boolean \(true\)/,
  );
});

test('secrets with line breaks, from the environment, and on a line the YAML parser rejects are not echoed', () => {
  assertHidden(
    errorOf(() => buildConfig({ ami: { secret: 'line-secret-1357\nAction: Originate' } })),
    ['line-secret-1357'],
  );
  assertHidden(
    errorOf(() => buildConfig({}, { ASTERISK_AMI_PASSWORD: 'env-secret-2468\r\nAction: Originate' })),
    ['env-secret-2468'],
  );
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-secret-'));
  try {
    const file = join(dir, 'guardian.yaml');
    for (const text of ['ami:\n  secret: yaml-secret-1122: x\n', 'ami:\n  secret: "yaml-secret-1122\n  port: 1\n', 'odoo: {agentToken: yaml-secret-1122\n']) {
      writeFileSync(file, text);
      const message = errorOf(() => loadConfig(file, {}));
      assertHidden(message, ['yaml-secret-1122']);
      assert.match(message, /is not valid YAML: .* \(line \d+, column \d+\)/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a webhook URL with a user and password is a config error; the log line of an unreachable webhook shows its URL without the token in its query', async () => {
  const lines: string[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(c, _e, cb) {
        lines.push(String(c));
        cb();
      },
    }),
  );
  const withUser = resolveWebhooks([
    { name: 'crm', url: 'http://hook-user:hook-pass-5566@127.0.0.1:1/hook', events: ['Newchannel'], secret: 'a-webhook-secret-of-32-characters!' },
  ]);
  assert.match(withUser.errors.join('\n'), /webhooks\[0\]\.url: a user or password in the URL is not supported/);
  assertHidden(withUser.errors.join('\n'), ['hook-pass-5566']);
  const { webhooks, errors } = resolveWebhooks([
    { name: 'crm', url: 'http://127.0.0.1:1/hook?token=hook-query-secret-7788', events: ['Newchannel'], secret: 'a-webhook-secret-of-32-characters!' },
  ]);
  assert.deepEqual(errors, []);
  const db = new Database(':memory:');
  const d = new WebhookDispatcher({ webhooks, db, logger });
  try {
    d.handleAmiEvent(
      amiMessage([
        ['Event', 'Newchannel'],
        ['Uniqueid', '1.1'],
      ]),
    );
    const end = Date.now() + 5000;
    while (!lines.some((l) => l.includes('unreachable')) && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    const line = lines.find((l) => l.includes('unreachable'));
    assert.ok(line, `an unreachable line: ${lines.join('')}`);
    assert.match(line, /127\.0\.0\.1:1\/hook\?…/);
    assertHidden(lines.join(''), ['hook-query-secret-7788', 'a-webhook-secret-of-32-characters!']);
  } finally {
    await d.close();
    db.close();
  }
});
