import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { cli } from './helpers/cli.js';
import { FakeOdoo } from './helpers/fake-odoo.js';

test('odoo init stores the agent credentials in the config (0600, comments kept) and explains a refusal', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-init-'));
  const odoo = new FakeOdoo();
  const url = await odoo.start();
  try {
    const config = join(dir, 'guardian.yaml');
    writeFileSync(config, '# my PBX\nami:\n  secret: keep-me # AMI secret\n');
    const ok = await cli('odoo', 'init', '--url', url, '--db', 'testdb', '--config', config);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /credentials saved to .*guardian\.yaml \(mode 0600\)/);
    assert.equal(statSync(config).mode & 0o777, 0o600);
    const text = readFileSync(config, 'utf8');
    assert.match(text, /# my PBX/);
    assert.match(text, /# AMI secret/);
    const doc = parse(text) as { ami: { secret: string }; odoo: Record<string, unknown> };
    assert.equal(doc.ami.secret, 'keep-me');
    assert.deepEqual(doc.odoo, { enabled: true, url, db: 'testdb', user: odoo.user, password: odoo.password, agentToken: 'tok-123' });

    odoo.init = { status: 400, text: 'Agent is already initialized.' };
    const refused = await cli('odoo', 'init', '--url', url, '--db', 'testdb', '--config', config);
    assert.equal(refused.status, 4);
    assert.match(refused.stderr, /already initiali[sz]ed/i);
    assert.equal(parse(readFileSync(config, 'utf8')).odoo.agentToken, 'tok-123', 'the config is left as it was');
  } finally {
    await odoo.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
