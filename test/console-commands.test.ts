import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import Fastify from 'fastify';
import { AmiClient, resolveActionPolicy } from '../src/ami/index.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';
import {
  AsteriskConsole,
  checkCommand,
  consoleJobFunctions,
  defaultConsoleConfig,
  registerConsoleRoute,
  tokenizeCli,
  ConsoleRefusedError,
} from '../src/console/index.js';
import { consoleCommand } from '../src/console/cli.js';
import { FakeAmi, amiMessage } from './helpers/fake-odoo.js';
import { fixturePath } from './helpers/fixtures.js';

const dialplan = resolveActionPolicy({ deniedApplications: ['System', 'TrySystem'] });
const policy = { ...defaultConsoleConfig(), dialplan };

test('Asterisk-style splitting: quotes and backslashes cannot hide a denied command', () => {
  assert.deepEqual(tokenizeCli('  core   show "channels concise" a\\ b'), ['core', 'show', 'channels concise', 'a b']);
  for (const c of [
    'core stop now',
    '"core" "stop" now',
    'co"re" st\\op gracefully',
    'CORE RESTART now',
    'module unload chan_sip.so',
    'dialplan save',
    'Dialplan Add extension 1,1,System(id) into default',
    'channel originate Local/1@default application System touch /tmp/x',
    'core set global X ${SHELL(id)}',
    '!ls /',
    'database put a b c',
    'core show channels\r\ncore stop now',
  ]) {
    assert.throws(() => checkCommand(c, policy), ConsoleRefusedError, c);
  }
  assert.deepEqual(checkCommand('core show channels', policy), ['core', 'show', 'channels']);
  assert.deepEqual(checkCommand('sip show peers', policy), ['sip', 'show', 'peers']);
  assert.throws(() => checkCommand('!ls', policy), /shell escapes are not supported/);
  // "core stopper" is not "core stop": prefixes match whole words
  assert.deepEqual(checkCommand('core stopper', policy), ['core', 'stopper']);
});

test('an allow-list admits only its prefixes (and the deny-list still applies)', () => {
  const p = { ...policy, allow: ['core show', 'sip show'], deny: ['core show hints'] };
  assert.deepEqual(checkCommand('core show version', p), ['core', 'show', 'version']);
  assert.throws(() => checkCommand('module reload', p), /not in console.allow/);
  assert.throws(() => checkCommand('core show hints', p), /console.deny/);
});

test('commands run through AMI Command against the simulator; denied ones never reach AMI', async () => {
  const sim = new AmiSimulator({ fixturesDir: fixturePath('ami'), loginFailDelayMs: 10 });
  await sim.listen();
  const ami = new AmiClient({ host: '127.0.0.1', port: sim.port, username: 'guardian', secret: 'guardian-secret', events: 'off' });
  ami.start();
  await once(ami, 'connected');
  try {
    const con = new AsteriskConsole(ami, defaultConsoleConfig(), dialplan);
    const r = await con.run('core   show channels');
    assert.equal(r.response, 'Success');
    assert.deepEqual(r.output.slice(1), ['0 active channels', '0 active calls', '0 calls processed']);
    const bad = await con.run('no such cli command');
    assert.equal(bad.response, 'Error');
    assert.match(bad.output[0]!, /No such command/);
    const n = sim.requests.length;
    await assert.rejects(con.run('core stop now'), /console\.deny/);
    await assert.rejects(con.run('"core" restart now'), /console\.deny/);
    assert.equal(sim.requests.slice(n).filter((q) => q.action === 'Command').length, 0);
    const cmd = sim.requests.filter((q) => q.action === 'Command').map((q) => q.headers.find(([k]) => k === 'Command')?.[1]);
    assert.deepEqual(cmd, ['core show channels', 'no such cli command']);

    // the Odoo job function
    const job = consoleJobFunctions(con).get('asterisk.console')!;
    const jr = (await job(['core show channels'], {})) as { output: string[] };
    assert.equal(jr.output[1], '0 active channels');
    await assert.rejects(job({ command: 'module unload res_pjsip.so' }, {}), /console\.deny/);
  } finally {
    await ami.stop();
    await sim.close();
  }
});

test('pbx-guardian console over the admin socket: one-shot and line by line; refusals exit 1', async () => {
  const ami = new FakeAmi();
  ami.handler = (f) => ({
    response: amiMessage([
      ['Response', 'Success'],
      ['Output', `ran ${String(f.Command)}`],
    ]),
    events: [],
    output: [`ran ${String(f.Command)}`],
  });
  const app = Fastify();
  registerConsoleRoute(app, new AsteriskConsole(ami, defaultConsoleConfig(), dialplan));
  app.setErrorHandler((err: Error & { statusCode?: number }, _q, reply) => reply.code(err.statusCode ?? 500).send({ error: err.message }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-console-'));
  const sock = path.join(dir, 'admin.sock');
  await app.listen({ path: sock });
  try {
    const io = () => {
      const out = new PassThrough();
      const err = new PassThrough();
      let o = '';
      let e = '';
      out.on('data', (c: Buffer) => (o += c));
      err.on('data', (c: Buffer) => (e += c));
      return { input: new PassThrough(), output: out, error: err, interactive: false, text: () => o, errText: () => e };
    };
    let x = io();
    assert.equal(await consoleCommand(sock, ['core show version'], x), 0);
    assert.equal(x.text(), 'ran core show version\n');
    x = io();
    assert.equal(await consoleCommand(sock, ['core', 'stop', 'now'], x), 1);
    assert.match(x.errText(), /console\.deny/);
    x = io();
    const done = consoleCommand(sock, [], x);
    x.input.end('core show uptime\n\n!sh\nsip show peers\nexit\ncore show never\n');
    assert.equal(await done, 0);
    assert.equal(x.text(), 'ran core show uptime\nran sip show peers\n');
    assert.match(x.errText(), /shell escapes/);
    assert.deepEqual(
      ami.actions.map((a) => a.Command),
      ['core show version', 'core show uptime', 'sip show peers'],
    );
  } finally {
    await app.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
