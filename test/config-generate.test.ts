/**
 * Issue 14: one schema, from which the example config, the README's reference table and the
 * reload plan come. The committed files must be what `npm run gen:config` writes from the schema.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { buildConfig, ConfigError, defaultConfig } from '../src/config/index.js';
import { EXAMPLE_PATH, README_PATH, exampleConfig, readmeTable, schemaKeys, withReadmeTable } from '../src/config/generate.js';
import { reloadPlan, schemaKeyOf } from '../src/config/reload-plan.js';
import { applierOf, applyReload, type ReloadTargets } from '../src/reload.js';

test('config/guardian.example.yaml is what the schema generates', () => {
  assert.ok(readFileSync(EXAMPLE_PATH, 'utf8') === exampleConfig(), 'config/guardian.example.yaml differs from the schema: run npm run gen:config');
});

test("the README's configuration reference is what the schema generates", () => {
  const readme = readFileSync(README_PATH, 'utf8');
  assert.ok(readme === withReadmeTable(readme), 'README.md (config:begin ... config:end) differs from the schema: run npm run gen:config');
  for (const { key } of schemaKeys()) assert.ok(readmeTable().includes(`| \`${key}\` |`), key);
});

test('the example config loads and holds exactly the defaults', () => {
  const cfg = buildConfig(parse(readFileSync(EXAMPLE_PATH, 'utf8')), {}, 'example');
  assert.deepEqual(cfg, defaultConfig());
});

test('every key of the schema has a description and a default', () => {
  const keys = schemaKeys();
  assert.ok(keys.length > 120, `${keys.length} keys`);
  for (const { key, node } of keys) {
    assert.ok((node.description ?? '').length > 3, `${key}: no description`);
    assert.ok(node.default !== undefined, `${key}: no default`);
  }
});

test('the schema bounds are checked and name the key', () => {
  const err = (doc: unknown) => {
    try {
      buildConfig(doc);
      return '';
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.message;
    }
  };
  assert.match(err({ guard: { recidive: { bans: 0 } } }), /guard\.recidive\.bans: 0 must be a whole number from 1 to 1000/);
  assert.match(err({ odoo: { jobQueueMax: -1 } }), /odoo\.jobQueueMax: -1 must be a positive number/);
  assert.match(err({ logLevel: 'loud' }), /logLevel: "loud" is not one of fatal, error/);
  assert.match(err({ admin: { socketMode: '999' } }), /admin\.socketMode: "999" must be an octal file mode like 0600/);
  assert.match(err({ firewall: { ports: [5060, 0] } }), /firewall\.ports\[1\]: 0 must be a whole number from 1 to 65535/);
  assert.match(err({ odoo: { outboxPolicy: [] } }), /odoo\.outboxPolicy: expected a mapping/);
  assert.deepEqual(
    buildConfig({ odoo: { outboxPolicy: { Cdr: { ttlSec: 5, priority: 1 } } } }).odoo.outboxPolicy.Hangup,
    defaultConfig().odoo.outboxPolicy.Hangup,
  );
});

test('reload plan: a changed key is live or waits for a restart, from the schema', () => {
  const a = defaultConfig();
  const b = structuredClone(a);
  b.logLevel = 'debug';
  b.rest.port = 1234;
  b.guard.ipv6Prefix = 56;
  b.guard.hostLookupInterval = '10m';
  b.odoo.outboxPolicy.Cdr!.ttlSec = 1;
  b.store.historyRetention = '120d';
  assert.deepEqual(reloadPlan(a, b), {
    live: ['logLevel', 'guard.ipv6Prefix', 'store.historyRetention'],
    restart: ['guard.hostLookupInterval', 'odoo.outboxPolicy', 'rest.port'],
  });
  assert.equal(schemaKeyOf('odoo.outboxPolicy.Cdr.ttlSec')?.key, 'odoo.outboxPolicy');
  assert.equal(schemaKeyOf('nope.x'), null);
});

test('every key the schema marks live has an apply step', () => {
  for (const { key, node } of schemaKeys()) if (node.reload === 'live') assert.ok(applierOf(key), `${key} is marked live but src/reload.ts has no APPLY entry`);
});

test('applyReload applies the live keys and names the others', async () => {
  const a = defaultConfig();
  const b = structuredClone(a);
  b.logLevel = 'warn';
  b.store.historyRetention = '100d';
  b.odoo.agentToken = 'a-new-agent-token-0123456789';
  b.rest.tokens = [{ name: 'crm', token: 'a-rest-token-0123456789', scopes: ['read'] }];
  b.metrics.port = 9999;
  const calls: string[] = [];
  const targets: ReloadTargets = {
    logger: { level: 'info' },
    restTokens: { replace: (e) => calls.push(`tokens ${e.length}`) },
    odoo: null,
    webhooks: null,
    historyRetention: (r) => calls.push(`retention ${r}`),
  };
  const r = await applyReload(a, b, targets);
  assert.equal(targets.logger.level, 'warn');
  assert.deepEqual(calls, ['retention 100d', 'tokens 1']);
  assert.deepEqual(r.applied, ['logLevel', 'store.historyRetention', 'rest.tokens']);
  assert.deepEqual(r.restartNeeded, ['metrics.port', 'odoo.agentToken (the job endpoint is not running)']);
});
