import { test as nodeTest, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AsteriskConfigFiles, configJobFunctions, defaultAsteriskConfigConfig, ConfigFileError } from '../src/asterisk-config/index.js';
import { createRestApp, defaultRestConfig } from '../src/rest/index.js';
import { FakeAmi, FakeBans, amiMessage } from './helpers/fake-odoo.js';
import { resolveActionPolicy } from '../src/ami/index.js';

const top = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-astcfg-'));
after(() => fs.rmSync(top, { recursive: true, force: true }));
let n = 0;
let dir: string;
let outside: string;
let files: AsteriskConfigFiles;
let ami: FakeAmi;

/** each test's own directory and AMI (a hook at the top would reach other files' tests in a shared unit-lane process) */
function fresh(): void {
  const base = path.join(top, String(++n));
  dir = path.join(base, 'asterisk');
  outside = path.join(base, 'outside');
  fs.mkdirSync(dir, { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(dir, 'extensions.conf'), '[general]\nstatic=yes'); // no final newline
  fs.writeFileSync(path.join(dir, 'sip.conf'), '[general]\n');
  fs.writeFileSync(path.join(outside, 'secret_odoo.conf'), 'SECRET\n');
  fs.symlinkSync(path.join(outside, 'secret_odoo.conf'), path.join(dir, 'voicemail_odoo.conf'));
  fs.symlinkSync(path.join(outside, 'secret_odoo.conf'), path.join(dir, 'link.conf'));
  fs.symlinkSync(outside, path.join(dir, 'sub'));
  ami = new FakeAmi();
  ami.handler = () => ({
    response: amiMessage([
      ['Response', 'Success'],
      ['Message', 'Module Reloaded'],
    ]),
    events: [],
  });
  const defaults = defaultAsteriskConfigConfig();
  files = new AsteriskConfigFiles({ ...defaults, dir, bases: [...defaults.bases, 'sip'] }, ami);
}

/** node:test's test, each run in a fresh directory */
const test = (name: string, fn: () => void | Promise<void>): void => {
  void nodeTest(name, () => {
    fresh();
    return fn();
  });
};

const read = (name: string) => fs.readFileSync(path.join(dir, name), 'utf8');
const code = (c: string) => (e: unknown) => e instanceof ConfigFileError && e.code === c;

test('writing extensions_odoo.conf adds one #include to extensions.conf, once; atomic (new inode), .bak kept, no temp files', async () => {
  const w1 = await files.write('extensions_odoo.conf', '[odoo]\nexten => 100,1,Dial(SIP/100)\n');
  assert.deepEqual(w1.include, { base: 'extensions.conf', action: 'added' });
  assert.equal(read('extensions.conf'), '[general]\nstatic=yes\n#include extensions_odoo.conf\n');
  assert.equal(read('extensions.conf.bak'), '[general]\nstatic=yes');
  const ino = fs.statSync(path.join(dir, 'extensions_odoo.conf')).ino;
  const w2 = await files.write('extensions_odoo.conf', '[odoo]\nexten => 200,1,Dial(SIP/200)\n');
  assert.deepEqual(w2.include, { base: 'extensions.conf', action: 'present' });
  assert.equal(w2.backup, path.join(fs.realpathSync(dir), 'extensions_odoo.conf.bak'));
  assert.equal(read('extensions_odoo.conf.bak'), '[odoo]\nexten => 100,1,Dial(SIP/100)\n');
  assert.notEqual(fs.statSync(path.join(dir, 'extensions_odoo.conf')).ino, ino, 'replaced by rename, not rewritten in place');
  const w3 = await files.write('extensions_odoo.conf', '[odoo]\nexten => 200,1,Dial(SIP/200)\n');
  assert.equal(w3.changed, false);
  assert.equal(read('extensions.conf').match(/#include extensions_odoo\.conf/g)!.length, 1);
  // an include written by hand (quoted, with a comment) counts as present
  fs.writeFileSync(path.join(dir, 'sip.conf'), '[general]\n#include "sip_odoo.conf" ; by hand\n');
  assert.deepEqual((await files.write('sip_odoo.conf', '[100]\n')).include, { base: 'sip.conf', action: 'present' });
  assert.equal((await files.write('pjsip_odoo.conf', '')).include!.action, 'base-missing');
  assert.equal(fs.existsSync(path.join(dir, 'pjsip.conf')), false);
  assert.deepEqual(
    fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
  );
});

test('deleting removes the file and its #include line (a #include of a missing file breaks the base file)', async () => {
  await files.write('extensions_odoo.conf', '[odoo]\n');
  const r = await files.remove('extensions_odoo.conf');
  assert.equal(r.deleted, true);
  assert.deepEqual(r.include, { base: 'extensions.conf', action: 'removed' });
  assert.equal(read('extensions.conf'), '[general]\nstatic=yes\n');
  assert.equal(read('extensions_odoo.conf.bak'), '[odoo]\n');
  await assert.rejects(files.remove('extensions_odoo.conf'), code('NOT_FOUND'));
});

test('confinement: traversal, absolute paths, symlinks out, files without the marker are refused; nothing outside changes', async () => {
  for (const name of ['../outside/secret_odoo.conf', '/etc/passwd', 'a/../../x_odoo.conf', '..', '.hidden_odoo.conf', 'x_odoo.conf\0', 'a\\b_odoo.conf']) {
    await assert.rejects(files.write(name, 'x'), code('BAD_NAME'), name);
    await assert.rejects(files.read(name), code('BAD_NAME'), name);
  }
  await assert.rejects(files.write('sip.conf', 'x'), code('NOT_MANAGED'));
  await assert.rejects(files.remove('extensions.conf'), code('NOT_MANAGED'));
  await assert.rejects(files.read('link.conf'), code('OUTSIDE'));
  await assert.rejects(files.write('voicemail_odoo.conf', 'pwned'), code('NOT_REGULAR'));
  await assert.rejects(files.remove('voicemail_odoo.conf'), code('NOT_REGULAR'));
  await assert.rejects(files.write('sub/extensions_odoo.conf', 'pwned'), code('OUTSIDE'));
  await assert.rejects(files.read('sub/secret_odoo.conf'), code('OUTSIDE'));
  // a planted .bak symlink is replaced, never written through
  fs.writeFileSync(path.join(dir, 'queues_odoo.conf'), 'old\n');
  fs.symlinkSync(path.join(outside, 'secret_odoo.conf'), path.join(dir, 'queues_odoo.conf.bak'));
  await files.write('queues_odoo.conf', 'new\n');
  assert.equal(fs.lstatSync(path.join(dir, 'queues_odoo.conf.bak')).isSymbolicLink(), false);
  assert.equal(read('queues_odoo.conf.bak'), 'old\n');
  assert.deepEqual(fs.readdirSync(outside), ['secret_odoo.conf']);
  assert.equal(fs.readFileSync(path.join(outside, 'secret_odoo.conf'), 'utf8'), 'SECRET\n');
  await assert.rejects(files.write('queues_odoo_big.conf', 'x'.repeat(2 * 1024 * 1024)), code('TOO_LARGE'));
});

test('Salt-era job names: put_config, get_config, get_all_configs, put_all_configs, delete_config; reload through AMI', async () => {
  const jobs = configJobFunctions(files);
  await jobs.get('put_config')!(['extensions_odoo.conf', '[odoo]\n'], { reload: 'pbx_config' });
  assert.deepEqual(ami.actions, [{ Action: 'Reload', Module: 'pbx_config' }]);
  assert.deepEqual(await jobs.get('get_config')!({ filename: 'extensions_odoo.conf' }, {}), { name: 'extensions_odoo.conf', content: '[odoo]\n' });
  await jobs.get('put_all_configs')!([{ 'sip_odoo.conf': '[100]\n', 'queues_odoo.conf': '[q]\n' }], {});
  const all = (await jobs.get('get_all_configs')!([], {})) as Record<string, string>;
  assert.deepEqual(Object.keys(all).sort(), ['extensions.conf', 'extensions_odoo.conf', 'queues_odoo.conf', 'sip.conf', 'sip_odoo.conf']);
  assert.equal(all['sip.conf'], '[general]\n#include sip_odoo.conf\n');
  await jobs.get('delete_config')!(['sip_odoo.conf'], {});
  assert.equal(read('sip.conf'), '[general]\n');
  await assert.rejects(jobs.get('put_all_configs')!([[{ filename: '../x_odoo.conf', content: '' }]], {}), code('BAD_NAME'));
  await assert.rejects(jobs.get('config.reload_module')!(['pbx_config\r\nAction: Command'], {}), code('BAD_MODULE'));
  await jobs.get('config.reload_module')!([], {});
  assert.deepEqual(ami.actions.at(-1), { Action: 'Reload' });
});

test('REST routes (admin scope): list, read, write with reload, delete; refusals keep their status', async () => {
  const ADMIN = 'admin-token-0123456789abcdef';
  const READ = 'read-token-0123456789abcdef';
  const app = createRestApp({
    config: {
      ...defaultRestConfig(),
      tokens: [
        { token: ADMIN, scopes: ['admin'], name: 'ops' },
        { token: READ, scopes: ['read'], name: 'crm' },
      ],
    },
    ami,
    bans: new FakeBans(),
    actionPolicy: resolveActionPolicy(),
    configFiles: files,
  });
  const call = async (method: string, url: string, token: string, payload?: object) => {
    const r = await app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${token}` }, ...(payload ? { payload } : {}) });
    return { status: r.statusCode, body: JSON.parse(r.body) as Record<string, unknown> };
  };
  assert.equal((await call('PUT', '/v1/configs/extensions_odoo.conf', READ, { content: 'x' })).status, 403);
  let r = await call('PUT', '/v1/configs/extensions_odoo.conf', ADMIN, { content: '[odoo]\n', reload: 'pbx_config' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body.include as object, { base: 'extensions.conf', action: 'added' });
  assert.equal((r.body.reload as { module: string }).module, 'pbx_config');
  r = await call('GET', '/v1/configs/extensions_odoo.conf', ADMIN);
  assert.equal(r.body.content, '[odoo]\n');
  r = await call('GET', '/v1/configs', ADMIN);
  assert.ok((r.body.files as Array<{ name: string; managed: boolean }>).some((f) => f.name === 'extensions_odoo.conf' && f.managed));
  assert.equal((await call('PUT', '/v1/configs/sip.conf', ADMIN, { content: 'x' })).status, 403);
  assert.equal((await call('GET', '/v1/configs/link.conf', ADMIN)).status, 403);
  assert.equal((await call('GET', '/v1/configs/..%2F..%2Fetc%2Fpasswd', ADMIN)).status, 400);
  assert.equal((await call('GET', '/v1/configs/nothere.conf', ADMIN)).status, 404);
  assert.equal((await call('POST', '/v1/reload', ADMIN, { module: 'res_pjsip.so' })).status, 200);
  assert.equal((await call('DELETE', '/v1/configs/extensions_odoo.conf', ADMIN)).status, 200);
  assert.equal(read('extensions.conf'), '[general]\nstatic=yes\n');
  await app.close();
});
