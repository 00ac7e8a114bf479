/**
 * Issue 12, finding 9: config sync is confined to the files it owns (<base>_odoo.conf for the
 * configured bases), never reaches Asterisk's own security files by any path (REST, Odoo jobs,
 * deletes, the #include line, a symlinked base), and keeps the owner, group and mode of what it
 * writes. Run as root (chown to arbitrary ids).
 */
import { resolveActionPolicy } from '../src/ami/index.js';
import { test, beforeEach, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AsteriskConfigFiles, configJobFunctions, defaultAsteriskConfigConfig, ConfigFileError } from '../src/asterisk-config/index.js';
import { buildConfig, ConfigError } from '../src/config/index.js';
import { createRestApp, defaultRestConfig } from '../src/rest/index.js';
import { FakeAmi, FakeBans } from './helpers/fake-odoo.js';

const top = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-confine-'));
after(() => fs.rmSync(top, { recursive: true, force: true }));
let n = 0;
let dir: string;
const ADMIN = 'admin-token-0123456789abcdef';

/** Every file of the directory with its content, owner, group and mode. */
function snapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir).sort()) {
    const st = fs.lstatSync(path.join(dir, f));
    out[f] =
      `${st.uid}:${st.gid}:${(st.mode & 0o7777).toString(8)}:${st.isSymbolicLink() ? `->${fs.readlinkSync(path.join(dir, f))}` : fs.readFileSync(path.join(dir, f), 'utf8')}`;
  }
  return out;
}
const attrs = (name: string) => {
  const st = fs.statSync(path.join(dir, name));
  return { uid: st.uid, gid: st.gid, mode: (st.mode & 0o777).toString(8) };
};
const code = (c: string) => (e: unknown) => e instanceof ConfigFileError && e.code === c;

function setup(cfg: Partial<ReturnType<typeof defaultAsteriskConfigConfig>> = {}) {
  const files = new AsteriskConfigFiles({ ...defaultAsteriskConfigConfig(), dir, ...cfg }, new FakeAmi());
  const app = createRestApp({
    config: { ...defaultRestConfig(), tokens: [{ token: ADMIN, scopes: ['admin'], name: 'ops' }] },
    ami: new FakeAmi(),
    bans: new FakeBans(),
    actionPolicy: resolveActionPolicy(),
    configFiles: files,
  });
  const rest = async (method: 'GET' | 'PUT' | 'DELETE', name: string, content?: string) => {
    const r = await app.inject({
      method,
      url: `/v1/configs/${name}`,
      headers: { authorization: `Bearer ${ADMIN}` },
      ...(content !== undefined ? { payload: { content } } : {}),
    });
    return { status: r.statusCode, body: JSON.parse(r.body) as Record<string, unknown> };
  };
  return { files, jobs: configJobFunctions(files), app, rest };
}

beforeEach(() => {
  dir = path.join(top, String(++n));
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'manager.conf'), '[general]\nenabled = yes\n[guardian]\nsecret = ami-secret-value\n');
  fs.writeFileSync(path.join(dir, 'asterisk.conf'), '[options]\nrunuser = asterisk\n');
  fs.writeFileSync(path.join(dir, 'modules.conf'), '[modules]\nautoload = yes\n');
  fs.writeFileSync(path.join(dir, 'ari.conf'), '[admin]\npassword = ari-pass\n');
  fs.writeFileSync(path.join(dir, 'extensions.conf'), '[general]\n');
  fs.writeFileSync(path.join(dir, 'sip.conf'), '[general]\n');
});

test("config sync never writes, deletes, includes into or reads Asterisk's own security files, by REST or by job", async () => {
  const { files, jobs, app, rest } = setup();
  const before = snapshot();
  // writes: the finding's manager_odoo.conf, the other protected bases, bases not configured, names without a base
  const refusedWrites = [
    'manager_odoo.conf',
    'Manager_odoo.conf',
    'asterisk_odoo.conf',
    'modules_odoo.conf',
    'ari_odoo.conf',
    'http_odoo.conf',
    'logger_odoo.conf',
    'cli_odoo.conf',
    'cli_aliases_odoo.conf',
    'manager_odoo_extensions.conf',
    'sip_odoo.conf',
    'odoo.conf',
    'odoo_users.conf',
    'myodoo.conf',
    'extensions_odoo.sh',
    'extensions_odoo.conf.bak',
    'extensions.conf',
  ];
  for (const name of refusedWrites) {
    await assert.rejects(files.write(name, '[x]\nsecret=y\n'), (e) => e instanceof ConfigFileError && e.statusCode === 403, `write ${name}`);
    await assert.rejects(jobs.get('put_config')!([name, '[x]\n'], {}), (e) => e instanceof ConfigFileError && e.statusCode === 403, `put_config ${name}`);
    await assert.rejects(jobs.get('delete_config')!([name], {}), (e) => e instanceof ConfigFileError && e.statusCode === 403, `delete_config ${name}`);
    const put = await rest('PUT', name, '[x]\n');
    assert.equal(put.status, 403, `PUT ${name}: ${JSON.stringify(put.body)}`);
    assert.equal((await rest('DELETE', name)).status, 403, `DELETE ${name}`);
  }
  const r = await rest('PUT', 'manager_odoo.conf', '[evil]\nsecret=x\nwrite=all\n');
  assert.equal(r.body.code, 'PROTECTED');
  assert.match(String(r.body.error), /manager\.conf .*AMI users/);
  // put_all_configs: one refused name writes none, not even the good ones before it
  await assert.rejects(jobs.get('put_all_configs')!([{ 'extensions_odoo.conf': '[odoo]\n', 'manager_odoo.conf': '[evil]\n' }], {}), code('PROTECTED'));
  // reads of protected files (they hold AMI and ARI secrets): refused, and left out of get_all_configs
  for (const name of ['manager.conf', 'asterisk.conf', 'modules.conf', 'ari.conf']) {
    await assert.rejects(files.read(name), code('PROTECTED'), name);
    assert.equal((await rest('GET', name)).status, 403, name);
  }
  const all = (await jobs.get('get_all_configs')!([], {})) as Record<string, string>;
  assert.deepEqual(Object.keys(all).sort(), ['extensions.conf', 'sip.conf']);
  assert.ok(!JSON.stringify(all).includes('ami-secret-value'));
  assert.deepEqual(snapshot(), before, 'nothing in the directory changed');
  await app.close();
});

test('a base file that is a symlink to a protected file, or a symlinked name, is refused before anything is written', async () => {
  fs.rmSync(path.join(dir, 'extensions.conf'));
  fs.symlinkSync('manager.conf', path.join(dir, 'extensions.conf'));
  fs.symlinkSync('manager.conf', path.join(dir, 'other.conf'));
  const { files, jobs, app, rest } = setup();
  const before = snapshot();
  await assert.rejects(files.write('extensions_odoo.conf', '[evil]\n'), code('PROTECTED'));
  await assert.rejects(jobs.get('put_config')!(['extensions_odoo.conf', '[evil]\n'], {}), code('PROTECTED'));
  assert.equal((await rest('PUT', 'extensions_odoo.conf', '[evil]\n')).status, 403);
  await assert.rejects(files.read('other.conf'), code('PROTECTED'));
  assert.deepEqual(snapshot(), before);
  await app.close();
});

test('asteriskConfig.bases: the defaults, a widened set, and a hard config error for a protected base', async () => {
  assert.deepEqual(defaultAsteriskConfigConfig().bases, ['extensions', 'pjsip', 'pjsip_wizard', 'queues', 'voicemail']);
  for (const bad of ['manager', 'asterisk', 'modules', 'Modules', 'ari', 'http', 'logger', 'cli_permissions']) {
    assert.throws(
      () => buildConfig({ asteriskConfig: { bases: ['extensions', bad] } }),
      (e) => e instanceof ConfigError && new RegExp(`asteriskConfig\\.bases\\[1\\]: "${bad}" is refused`).test(e.message),
      bad,
    );
  }
  assert.throws(() => buildConfig({ asteriskConfig: { bases: ['../x'] } }), /asteriskConfig\.bases\[0\]/);
  // sip added by the operator: sip_odoo.conf is owned, and #included into sip.conf
  const { files } = setup({ bases: ['extensions', 'sip'] });
  const w = await files.write('sip_odoo.conf', '[100]\n');
  assert.deepEqual(w.include, { base: 'sip.conf', action: 'added' });
  assert.equal(fs.readFileSync(path.join(dir, 'sip.conf'), 'utf8'), '[general]\n#include sip_odoo.conf\n');
  const listed = await files.list();
  assert.equal(listed.find((f) => f.name === 'sip_odoo.conf')!.managed, true);
  assert.equal(listed.find((f) => f.name === 'manager.conf')!.managed, false);
});

test(
  "written files keep their owner, group and mode under the unit's umask 0077; new files take their base file's (REST and job path)",
  { skip: process.getuid?.() !== 0 && 'needs root (chown)' },
  async () => {
    const oldUmask = process.umask(0o077);
    try {
      const { jobs, app, rest } = setup();
      const at = (f: string) => path.join(dir, f);
      fs.chownSync(at('extensions.conf'), 1234, 2345);
      fs.chmodSync(at('extensions.conf'), 0o640);
      // a new file: the base file's owner, group and mode (REST)
      let r = await rest('PUT', 'extensions_odoo.conf', '[odoo]\n');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(attrs('extensions_odoo.conf'), { uid: 1234, gid: 2345, mode: '640' });
      assert.deepEqual(attrs('extensions.conf'), { uid: 1234, gid: 2345, mode: '640' }, 'the base file with its new #include keeps its own');
      assert.deepEqual(attrs('extensions.conf.bak'), { uid: 1234, gid: 2345, mode: '640' });
      // a replaced file keeps its own, whatever the base file has (job path); its .bak too
      fs.chownSync(at('extensions_odoo.conf'), 3456, 4567);
      fs.chmodSync(at('extensions_odoo.conf'), 0o604);
      await jobs.get('put_config')!(['extensions_odoo.conf', '[odoo]\nexten => 1,1,NoOp\n'], {});
      assert.equal(fs.readFileSync(at('extensions_odoo.conf'), 'utf8'), '[odoo]\nexten => 1,1,NoOp\n');
      assert.deepEqual(attrs('extensions_odoo.conf'), { uid: 3456, gid: 4567, mode: '604' });
      assert.deepEqual(attrs('extensions_odoo.conf.bak'), { uid: 3456, gid: 4567, mode: '604' });
      // put_all_configs: queues.conf 0644 7000:7001 → queues_odoo.conf the same
      fs.writeFileSync(at('queues.conf'), '[general]\n');
      fs.chownSync(at('queues.conf'), 7000, 7001);
      fs.chmodSync(at('queues.conf'), 0o644);
      await jobs.get('put_all_configs')!([{ 'queues_odoo.conf': '[q]\n' }], {});
      assert.deepEqual(attrs('queues_odoo.conf'), { uid: 7000, gid: 7001, mode: '644' });
      assert.deepEqual(attrs('queues.conf'), { uid: 7000, gid: 7001, mode: '644' });
      // no base file: the directory's owner and group, mode 0640
      fs.chownSync(dir, 5555, 6666);
      r = await rest('PUT', 'pjsip_odoo.conf', '[100]\n');
      assert.equal(r.status, 200);
      assert.equal((r.body.include as { action: string }).action, 'base-missing');
      assert.deepEqual(attrs('pjsip_odoo.conf'), { uid: 5555, gid: 6666, mode: '640' });
      // delete (job and REST): the base file loses the #include line and keeps its owner, group and mode
      await jobs.get('delete_config')!(['queues_odoo.conf'], {});
      assert.equal(fs.readFileSync(at('queues.conf'), 'utf8'), '[general]\n');
      assert.deepEqual(attrs('queues.conf'), { uid: 7000, gid: 7001, mode: '644' });
      assert.deepEqual(attrs('queues_odoo.conf.bak'), { uid: 7000, gid: 7001, mode: '644' });
      assert.equal((await rest('DELETE', 'extensions_odoo.conf')).status, 200);
      assert.deepEqual(attrs('extensions.conf'), { uid: 1234, gid: 2345, mode: '640' });
      assert.deepEqual(
        fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')),
        [],
      );
      await app.close();
    } finally {
      process.umask(oldUmask);
    }
  },
);

test(
  'a daemon that may not chown refuses to replace a file owned by someone else, and changes nothing (409 OWNER_NOT_KEPT)',
  { skip: process.getuid?.() !== 0 && 'needs root (to run the child as another user)' },
  () => {
    const nobody = 65534;
    fs.chmodSync(top, 0o755);
    fs.chownSync(dir, nobody, nobody); // the service user may write the directory...
    for (const f of ['extensions.conf', 'extensions_odoo.conf']) {
      fs.writeFileSync(path.join(dir, f), f === 'extensions.conf' ? '[general]\n#include extensions_odoo.conf\n' : '[odoo]\n');
      fs.chownSync(path.join(dir, f), 1234, 2345); // ...but the files are Asterisk's
      fs.chmodSync(path.join(dir, f), 0o644);
    }
    const before = snapshot();
    const module = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'asterisk-config', 'index.js');
    const script = `import(${JSON.stringify(module)}).then(async (m) => {
    const files = new m.AsteriskConfigFiles({ ...m.defaultAsteriskConfigConfig(), dir: ${JSON.stringify(dir)} }, null);
    try { await files.write('extensions_odoo.conf', '[odoo]\\nexten => 1,1,NoOp\\n'); console.log(JSON.stringify({ ok: true })); }
    catch (e) { console.log(JSON.stringify({ code: e.code, statusCode: e.statusCode, message: e.message })); }
  });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { uid: nobody, gid: nobody, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { code: string; statusCode: number; message: string };
    assert.equal(out.code, 'OWNER_NOT_KEPT', r.stdout);
    assert.equal(out.statusCode, 409);
    assert.match(out.message, /uid 1234, gid 2345.*Nothing was changed.*CAP_CHOWN/);
    assert.deepEqual(snapshot(), before, 'no file changed, no temp file left');
  },
);
