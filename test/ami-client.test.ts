import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import pino from 'pino';
import {
  AmiActionError,
  AmiClient,
  AmiLoginError,
  type AmiActionFields,
  type AmiClientOptions,
  type AmiConnectionState,
  type AmiFrameDrop,
  type AmiMessage,
} from '../src/ami/index.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';
import { fixturePath, readFixture } from './helpers/fixtures.js';

async function sim(opts: Partial<ConstructorParameters<typeof AmiSimulator>[0]> = {}): Promise<AmiSimulator> {
  const s = new AmiSimulator({ fixturesDir: fixturePath('ami'), loginFailDelayMs: 20, ...opts });
  await s.listen();
  return s;
}

function logCapture(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

function client(port: number, extra: Partial<AmiClientOptions> = {}): AmiClient {
  return new AmiClient({
    host: '127.0.0.1',
    port,
    username: 'guardian',
    secret: 'guardian-secret',
    events: 'on',
    reconnectInitialMs: 20,
    reconnectMaxMs: 100,
    ...extra,
  });
}

/** A simulator and a client on it, both closed when the test ends. */
async function started(t: TestContext, extra: Partial<AmiClientOptions> = {}): Promise<{ s: AmiSimulator; c: AmiClient }> {
  const s = await sim();
  const c = client(s.port, extra);
  t.after(async () => {
    await c.stop();
    await s.close();
  });
  return { s, c };
}

async function connected(c: AmiClient): Promise<void> {
  if (c.state === 'connected') return;
  await once(c, 'connected');
}

function waitFor(pred: () => boolean, ms = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (pred()) resolve();
      else if (Date.now() - t0 > ms) reject(new Error('waitFor timed out'));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

test('login ok, then events flow (session transcript replayed), state changes reported', async (t) => {
  const { s, c } = await started(t);
  const states: AmiConnectionState[] = [];
  c.on('state', (st) => states.push(st));
  const events: AmiMessage[] = [];
  c.on('event', (m) => events.push(m));
  c.start();
  await connected(c);
  assert.deepEqual(states, ['connecting', 'authenticating', 'connected']);
  assert.equal(c.greeting, 'Asterisk Call Manager/9.0.0');
  const login = s.requests[0]!;
  assert.equal(login.action, 'Login');
  assert.match(login.actionId!, /^pbxg-\d+$/);
  assert.deepEqual(
    login.headers.filter(([k]) => k !== 'ActionID'),
    [
      ['Action', 'Login'],
      ['Username', 'guardian'],
      ['Secret', 'guardian-secret'],
      ['Events', 'on'],
    ],
  );
  await waitFor(() => events.length >= 1); // FullyBooted
  assert.equal(events[0]!.get('Event'), 'FullyBooted');
  s.replayFile('security-sip-register-wrong-password-ipv6.raw');
  await waitFor(() => events.length >= 4);
  const inv = events.find((e) => e.get('Event') === 'InvalidPassword')!;
  assert.equal(inv.get('RemoteAddress'), 'IPV6/UDP/::1/60036');
  // a whole transcript (minus the greeting line) arrives frame for frame
  const full = readFixture('ami/session-recorder-full.raw');
  const body = full.subarray(full.indexOf('\r\n') + 2);
  const before = c.stats.eventsReceived;
  const expected = body
    .toString('utf8')
    .split('\r\n\r\n')
    .filter((f) => f.startsWith('Event:')).length;
  s.broadcast(body);
  await waitFor(() => c.stats.eventsReceived - before === expected);
  assert.equal(c.stats.framesDropped, 0);
});

test('wrong secret: loginError kind auth with an actionable message, retried with backoff', async (t) => {
  const { s, c } = await started(t, { secret: 'wrong-secret' });
  const errs: AmiLoginError[] = [];
  c.on('loginError', (e) => errs.push(e));
  c.start();
  await waitFor(() => errs.length >= 2);
  assert.ok(errs[0] instanceof AmiLoginError);
  assert.equal(errs[0]!.kind, 'auth');
  assert.match(
    errs[0]!.message,
    /^AMI login to 127\.0\.0\.1:\d+ as "guardian" was refused \("Authentication failed"\): wrong username or secret.*check manager\.conf.*; retrying in \d+\.\ds$/,
  );
  assert.ok(!errs[0]!.message.includes('wrong-secret'), 'the secret is never shown');
  assert.equal(c.stats.loginFailures >= 2, true);
  assert.equal(s.logins, 0);
  // the backoff grows while failing (equal jitter: [base/2, base))
  assert.ok(errs[0]!.retryInMs! >= 10 && errs[0]!.retryInMs! < 20);
  assert.ok(errs[1]!.retryInMs! >= 20 && errs[1]!.retryInMs! < 40);
  // fix the secret on the server side: the next attempt logs in
  s.secret = 'wrong-secret';
  await connected(c);
});

test('nothing listening: loginError kind unreachable', async (t) => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const c = client(port);
  t.after(() => c.stop());
  c.start();
  const [err] = (await once(c, 'loginError')) as [AmiLoginError];
  assert.equal(err.kind, 'unreachable');
  assert.match(err.message, /unreachable \(ECONNREFUSED/);
  assert.match(err.message, /retrying in/);
  assert.equal(c.state === 'connected', false);
});

test('an HTTP server is reported as not-ami', async (t) => {
  const srv = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const c = client((srv.address() as net.AddressInfo).port);
  t.after(async () => {
    await c.stop();
    await new Promise<void>((r) => srv.close(() => r()));
  });
  c.start();
  const [err] = (await once(c, 'loginError')) as [AmiLoginError];
  assert.equal(err.kind, 'not-ami');
  assert.match(err.message, /is not an Asterisk Manager Interface: it sent "HTTP\/1\.1 400 Bad Request"/);
});

test('a silent server: loginError kind timeout', async (t) => {
  const socks: net.Socket[] = [];
  const srv = net.createServer((sock) => socks.push(sock));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const c = client((srv.address() as net.AddressInfo).port, { connectTimeoutMs: 50 });
  t.after(async () => {
    await c.stop();
    for (const s of socks) s.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  });
  c.start();
  const [err] = (await once(c, 'loginError')) as [AmiLoginError];
  assert.equal(err.kind, 'timeout');
  assert.match(err.message, /sent no AMI greeting within 50 ms/);
});

test('actions: Ping, SIPpeers event list, Command output, recorded responses with our ActionID', async (t) => {
  const { s, c } = await started(t);
  const events: AmiMessage[] = [];
  c.on('event', (m) => events.push(m));
  c.start();
  await connected(c);

  const ping = await c.action({ Action: 'Ping', ActionID: 'caller-chosen' });
  assert.equal(ping.response.get('Response'), 'Success');
  assert.equal(ping.response.get('Ping'), 'Pong');
  assert.match(ping.response.get('ActionID')!, /^pbxg-\d+$/, 'the caller may not choose the ActionID');
  assert.equal(s.requests.at(-1)!.actionId, ping.response.get('ActionID'));

  const peers = await c.action({ Action: 'SIPpeers' });
  assert.equal(peers.response.get('EventList'), 'start');
  assert.equal(peers.events.length, 1);
  assert.equal(peers.events[0]!.get('Event'), 'PeerEntry');
  assert.equal(peers.events[0]!.get('ObjectName'), '100');
  assert.equal(peers.events[0]!.get('IPaddress'), '127.0.0.2');
  assert.equal(peers.complete?.get('Event'), 'PeerlistComplete');
  assert.equal(peers.complete?.get('ListItems'), '1');
  assert.ok(!events.some((e) => e.get('Event') === 'PeerEntry'), 'list items are not emitted as events');

  const cmd = await c.action({ Action: 'Command', Command: 'core show channels' });
  assert.deepEqual(cmd.output, [
    'Channel                                                          Location                         State   Application(Data)             ',
    '0 active channels',
    '0 active calls',
    '0 calls processed',
  ]);
  const ver = await c.action({ Action: 'Command', Command: 'core show version' });
  assert.equal(ver.output?.length, 1);
  assert.match(ver.output![0]!, /^Asterisk 20\.20\.1 built by/);
  const bad = await c.action({ Action: 'Command', Command: 'no such cli command' });
  assert.equal(bad.response.get('Response'), 'Error');
  assert.match(bad.output![0]!, /^No such command/);

  const st = await c.action({ Action: 'CoreStatus' });
  assert.equal(st.response.get('Response'), 'Success');
  assert.equal(st.output, undefined);

  // concurrent actions get their own responses
  const [a, b, d] = await Promise.all([
    c.action({ Action: 'ExtensionState', Exten: '9999', Context: 'default' }),
    c.action({ Action: 'Ping' }),
    c.action({ Action: 'ExtensionState', Exten: 100, Context: 'default' }),
  ]);
  assert.equal(a.response.get('Status'), '-1');
  assert.equal(b.response.get('Ping'), 'Pong');
  assert.equal(d.response.get('Exten'), '100');

  const unknown = await c.action({ Action: 'NoSuchAction' });
  assert.equal(unknown.response.get('Response'), 'Error');
  await waitFor(() => events.some((e) => e.get('Event') === 'RequestBadFormat'));
});

test('legacy Asterisk 13 Command output (Response: Follows ... --END COMMAND--)', async (t) => {
  const srv = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.write('Asterisk Call Manager/2.10.6\r\n');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
        const req = buf.slice(0, i);
        buf = buf.slice(i + 4);
        const id = /ActionID: (.*)/.exec(req)![1]!.trim();
        if (/Action: Login/.test(req)) sock.write(`Response: Success\r\nActionID: ${id}\r\nMessage: Authentication accepted\r\n\r\n`);
        else sock.write(`Response: Follows\r\nPrivilege: Command\r\nActionID: ${id}\r\nline one: with colon\nline two\n\nafter blank\n--END COMMAND--\r\n\r\n`);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const c = client((srv.address() as net.AddressInfo).port);
  t.after(async () => {
    await c.stop();
    await new Promise<void>((r) => srv.close(() => r()));
  });
  c.start();
  await connected(c);
  const r = await c.action({ Action: 'Command', Command: 'sip show peers' });
  assert.deepEqual(r.output, ['line one: with colon', 'line two', '', 'after blank']);
});

test('action timeout rejects with a clear error; the connection stays up', async (t) => {
  const { s, c } = await started(t);
  c.start();
  await connected(c);
  s.ignoreActions.add('corestatus');
  await assert.rejects(c.action({ Action: 'CoreStatus' }, { timeoutMs: 50 }), (e: unknown) => {
    assert.ok(e instanceof AmiActionError);
    assert.equal(e.kind, 'timeout');
    assert.match(e.message, /^AMI action "CoreStatus" \(ActionID pbxg-\d+\) got no response within 50 ms from 127\.0\.0\.1:\d+; the connection stays up/);
    return true;
  });
  assert.equal(c.state, 'connected');
  assert.equal(c.stats.actionsTimedOut, 1);
  assert.equal((await c.action({ Action: 'Ping' })).response.get('Ping'), 'Pong');
});

test('pending actions are rejected on disconnect; actions while disconnected reject at once', async (t) => {
  const { s, c } = await started(t, { reconnectInitialMs: 5000, reconnectMaxMs: 5000 });
  c.start();
  await connected(c);
  s.ignoreActions.add('corestatus');
  s.ignoreActions.add('sippeers');
  const p1 = c.action({ Action: 'CoreStatus' });
  const p2 = c.action({ Action: 'SIPpeers', Extra: 'x' });
  await waitFor(() => s.requests.length >= 3);
  const reasons: string[] = [];
  c.on('disconnected', (r) => reasons.push(r));
  s.kill();
  for (const p of [p1, p2]) {
    await assert.rejects(
      p,
      (e: unknown) => e instanceof AmiActionError && e.kind === 'disconnected' && /closed .* before the response arrived/.test(e.message),
    );
  }
  assert.equal(c.state, 'disconnected');
  assert.equal(reasons.length, 1);
  await assert.rejects(
    c.action({ Action: 'Ping' }),
    (e: unknown) => e instanceof AmiActionError && e.kind === 'not-connected' && /not connected/.test(e.message),
  );
});

test('CR/LF/NUL in keys or values, and bad keys, are rejected before anything is written', async (t) => {
  const { s, c } = await started(t);
  c.start();
  await connected(c);
  await c.action({ Action: 'Ping' });
  const bytes = s.bytesReceived;
  const requests = s.requests.length;
  const bad: AmiActionFields[] = [
    { Action: 'Originate', Channel: 'SIP/100\r\nAction: Command' },
    { Action: 'Command', Command: 'core show version\nAction: Logoff' },
    { Action: 'Command', Command: 'x\ry' },
    { Action: 'Command', Command: 'nul\0byte' },
    { Action: 'Ping\r\n' },
    { Action: 'Originate', Variable: ['A=1', 'B=2\r\nEvil: 1'] },
    { Action: 'Ping', 'Bad Key': 'v' },
    { Action: 'Ping', 'Key:': 'v' },
    { Action: 'Ping', 'K\r\nEvil': 'v' },
    { Ping: 'no action field' },
  ];
  for (const fields of bad) {
    await assert.rejects(c.action(fields), (e: unknown) => e instanceof AmiActionError && e.kind === 'invalid', JSON.stringify(fields));
  }
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(s.bytesReceived, bytes, 'the simulator received nothing');
  assert.equal(s.requests.length, requests);
  await assert.rejects(c.action({ Action: 'Ping', X: 'a\nb' }), /contains CR, LF or NUL/);
  // arrays send one header per value
  await c.action({ Action: 'Ping', Variable: ['A=1', 'B=2'] });
  assert.deepEqual(
    s.requests
      .at(-1)!
      .headers.filter(([k]) => k === 'Variable')
      .map(([, v]) => v),
    ['A=1', 'B=2'],
  );
  assert.throws(() => client(s.port, { secret: 'x\r\nAction: Command' }), /without CR, LF or NUL/);
});

test('reconnect after the simulator is killed and restarted on the same port', async (t) => {
  const { s, c } = await started(t);
  const events: AmiMessage[] = [];
  c.on('event', (m) => events.push(m));
  const errs: AmiLoginError[] = [];
  c.on('loginError', (e) => errs.push(e));
  c.start();
  await connected(c);
  const port = s.port;
  s.kill();
  await once(c, 'disconnected');
  await waitFor(() => errs.some((e) => e.kind === 'unreachable'));
  await s.restart();
  assert.equal(s.port, port);
  await connected(c);
  assert.ok(c.stats.reconnects >= 1);
  assert.equal(s.logins, 2);
  s.replayFile('security-ami-invalid-password.raw');
  await waitFor(() => events.some((e) => e.get('Event') === 'InvalidPassword'));
});

test('no Pong within pongTimeoutMs: the socket is dropped and the client reconnects', async (t) => {
  const s = await sim();
  const { logger, lines } = logCapture();
  const c = client(s.port, { pingIntervalMs: 30, pongTimeoutMs: 40, logger });
  t.after(async () => {
    await c.stop();
    await s.close();
  });
  c.start();
  await connected(c);
  await waitFor(() => s.requests.some((r) => r.action === 'Ping'));
  s.ignoreActions.add('ping');
  const [reason] = (await once(c, 'disconnected')) as [string];
  assert.match(reason, /no Pong within 40 ms/);
  s.ignoreActions.delete('ping');
  await connected(c);
  assert.equal(s.logins, 2);
  assert.ok(lines.some((l) => /did not answer Ping within 40 ms; reconnecting/.test(String(l['msg']))));
});

test('no Pong while events keep arriving (a burst being read): the connection stays; once nothing arrives, it is dropped', async (t) => {
  const s = await sim();
  const c = client(s.port, { pingIntervalMs: 30, pongTimeoutMs: 40 });
  t.after(async () => {
    await c.stop();
    await s.close();
  });
  let events = 0;
  c.on('event', () => events++);
  let disconnects = 0;
  c.on('disconnected', () => disconnects++);
  c.start();
  await connected(c);
  s.ignoreActions.add('ping');
  const frame = readFixture('ami/security-ami-invalid-password.raw');
  const feed = setInterval(() => s.broadcast(frame), 10);
  try {
    await waitFor(() => s.requests.filter((r) => r.action === 'Ping').length >= 10); // ten Pongs missed, 300+ ms
  } finally {
    clearInterval(feed);
  }
  assert.equal(disconnects, 0, 'not dropped while bytes arrive');
  assert.equal(s.logins, 1);
  assert.ok(events >= 10, `events read meanwhile: ${events}`);
  const [reason] = (await once(c, 'disconnected')) as [string];
  assert.match(reason, /no Pong within 40 ms/);
});

test('client: an oversized frame is dropped with one error log line and frameDropped; the next event flows', async (t) => {
  const s = await sim();
  const { logger, lines } = logCapture();
  const c = client(s.port, { logger, maxFrameBytes: 65536 });
  t.after(async () => {
    await c.stop();
    await s.close();
  });
  const drops: AmiFrameDrop[] = [];
  c.on('frameDropped', (d) => drops.push(d));
  const events: AmiMessage[] = [];
  c.on('event', (m) => events.push(m));
  c.start();
  await connected(c);
  s.broadcast('Event: Huge\r\n' + 'Junk: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n'.repeat(50000) + '\r\n');
  s.replayFile('security-ami-invalid-password.raw');
  await waitFor(() => events.some((e) => e.get('Event') === 'InvalidPassword'));
  assert.equal(drops.length, 1);
  assert.equal(drops[0]!.reason, 'oversized');
  assert.equal(c.stats.framesDropped, 1);
  const errLines = lines.filter((l) => l['level'] === 50);
  assert.equal(errLines.length, 1);
  assert.match(String(errLines[0]!['msg']), /frame .* dropped \(oversized/);
  assert.equal(c.state, 'connected');
});

test('stop() logs off, closes, and no reconnect follows', async (t) => {
  const s = await sim();
  const c = client(s.port);
  t.after(() => s.close());
  c.start();
  await connected(c);
  await c.stop();
  assert.equal(c.state, 'disconnected');
  await waitFor(() => s.requests.some((r) => r.action === 'Logoff'));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(s.logins, 1);
  assert.equal(s.connections, 0);
});
