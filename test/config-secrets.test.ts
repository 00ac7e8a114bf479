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
import { buildConfig, ConfigError, loadConfig } from '../src/config/index.js';

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
  for (const key of ['ami.secret', 'odoo.url', 'odoo.password', 'odoo.apiKey', 'odoo.agentToken', 'rest.tokens[0].token', 'rest.tokens[1].token', 'webhooks[0].secret', 'webhooks[1].secret', 'webhooks[2].secret']) {
    assert.ok(message.includes(key), `the error names ${key}:\n${message}`);
  }
  assertHidden(message, ['8675309123', 'url-pass-9911', '4815162342', 'api-key-value-3141', 'agent-token-value-2718', '1234567890123456',
    'short-tok-5150', 'long-enough-token-value-6021', '7777777777777', 'short-hook-4242', 'hook-list-secret-9876543']);
  assert.match(message, /ami\.secret: expected a string, got number \(its value is not shown: a secret\)/);
  // a non-secret key still shows what was given
  assert.match(errorOf(() => buildConfig({ ami: { port: true } })), /ami\.port: expected a number, got boolean \(true\)/);
});

test('secrets with line breaks, from the environment, and on a line the YAML parser rejects are not echoed', () => {
  assertHidden(errorOf(() => buildConfig({ ami: { secret: 'line-secret-1357\nAction: Originate' } })), ['line-secret-1357']);
  assertHidden(errorOf(() => buildConfig({}, { ASTERISK_AMI_PASSWORD: 'env-secret-2468\r\nAction: Originate' })), ['env-secret-2468']);
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
