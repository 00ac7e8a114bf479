import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { cli } from './helpers/cli.js';
import { FakeOdoo } from './helpers/fake-odoo.js';

test('odoo init stores the agent credentials in the config (comments kept) and explains a refusal', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-init-'));
  const odoo = new FakeOdoo();
  const url = await odoo.start();
  try {
    const config = join(dir, 'guardian.yaml');
    writeFileSync(config, '# my PBX\nami:\n  secret: keep-me # AMI secret\n', { mode: 0o600 });
    chmodSync(config, 0o600);
    const ok = await cli('odoo', 'init', '--url', url, '--db', 'testdb', '--config', config);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /credentials saved to .*guardian\.yaml \(mode 0600, owner \d+:\d+ kept\)/);
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

/** Issue 12, finding 10: 0640 root:pbx-guardian became 0600 root:root and the service could not read its config. */
test(
  "odoo init keeps the config file's owner, group and mode (atomic, never widened; a symlinked path stays a symlink)",
  { skip: process.getuid?.() !== 0 && 'needs root (chown)' },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pbxg-init-'));
    const odoo = new FakeOdoo();
    const url = await odoo.start();
    try {
      const config = join(dir, 'guardian.yaml');
      writeFileSync(config, 'ami:\n  secret: keep-me\n');
      chownSync(config, 0, 4242); // root:pbx-guardian, as the package installs it
      chmodSync(config, 0o640);
      const ino = statSync(config).ino;
      const ok = await cli('odoo', 'init', '--url', url, '--db', 'testdb', '--config', config);
      assert.equal(ok.status, 0, ok.stderr);
      let st = statSync(config);
      assert.deepEqual({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }, { uid: 0, gid: 4242, mode: 0o640 });
      assert.notEqual(st.ino, ino, 'replaced by rename, not rewritten in place');
      assert.match(ok.stdout, /mode 0640, owner 0:4242 kept/);
      assert.equal((parse(readFileSync(config, 'utf8')) as { odoo: { agentToken: string } }).odoo.agentToken, 'tok-123');

      // another owner and group, readable by everyone: owner and group kept, the "other" bits dropped
      chownSync(config, 3001, 3002);
      chmodSync(config, 0o644);
      const narrowed = await cli('odoo', 'init', '--url', url, '--db', 'testdb', '--config', config);
      assert.equal(narrowed.status, 0, narrowed.stderr);
      st = statSync(config);
      assert.deepEqual({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }, { uid: 3001, gid: 3002, mode: 0o640 });
      assert.match(narrowed.stdout, /mode narrowed from 0644 to 0640/);

      // a symlinked config path: the file it points to is replaced, the link stays
      const link = join(dir, 'link.yaml');
      symlinkSync(config, link);
      const viaLink = await cli('odoo', 'init', '--url', url, '--db', 'testdb', '--config', link);
      assert.equal(viaLink.status, 0, viaLink.stderr);
      assert.ok(lstatSync(link).isSymbolicLink());
      st = statSync(config);
      assert.deepEqual({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }, { uid: 3001, gid: 3002, mode: 0o640 });
      assert.equal(readFileSync(config, 'utf8').match(/agentToken/g)!.length, 1);
    } finally {
      await odoo.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
