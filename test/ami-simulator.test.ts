/**
 * The AMI peer used by tests, the demo and the benchmarks honours the login's `Events:` mask as
 * Asterisk does: an event reaches a session only when every class of its Privilege is in the mask.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { AmiSimulator, parseEventMask } from '../src/demo/ami-simulator.js';
import { loadTemplate, replayBytes } from '../src/demo/attack.js';
import { fixturePath } from './helpers/fixtures.js';

/** A raw TCP session that logs in with `events` and collects the event names it receives. */
async function session(port: number, events: string): Promise<{ names: () => string[]; close: () => void }> {
  const sock = net.connect(port, '127.0.0.1');
  let text = '';
  sock.on('data', (b: Buffer) => (text += b.toString('latin1')));
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write(`Action: Login\r\nUsername: u\r\nSecret: s\r\nEvents: ${events}\r\n\r\n`);
  for (let i = 0; i < 100 && !text.includes('Authentication accepted'); i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(text, /Authentication accepted/);
  return { names: () => [...text.matchAll(/^Event: (\w+)/gm)].map((m) => m[1]!), close: () => sock.destroy() };
}

test('simulator: Events on / security / off / security,system deliver what Asterisk would', async () => {
  const sim = new AmiSimulator({ fixturesDir: fixturePath('ami'), username: 'u', secret: 's' });
  await sim.listen();
  try {
    const all = await session(sim.port, 'on');
    const security = await session(sim.port, 'security');
    const off = await session(sim.port, 'off');
    const both = await session(sim.port, 'security, System');
    const attack = replayBytes(loadTemplate(fixturePath('ami'), 'security-sip-register-wrong-password.raw'), '203.0.113.9');
    const prepared = sim.prepare(attack);
    sim.broadcast(prepared);
    sim.broadcast(attack);
    await new Promise((r) => setTimeout(r, 100));
    const twice = (xs: string[]) => [...xs, ...xs];
    // every login is a SuccessfulAuth (class security) to each session that reads security, itself included
    const auths = (n: number) => Array<string>(n).fill('SuccessfulAuth');
    assert.deepEqual(all.names(), ['FullyBooted', ...auths(4), ...twice(['ChallengeSent', 'InvalidPassword', 'PeerStatus'])]);
    assert.deepEqual(security.names(), [...auths(3), ...twice(['ChallengeSent', 'InvalidPassword'])], 'no FullyBooted, no PeerStatus (class system)');
    assert.deepEqual(off.names(), []);
    assert.deepEqual(both.names(), ['FullyBooted', ...auths(1), ...twice(['ChallengeSent', 'InvalidPassword', 'PeerStatus'])]);
    for (const s of [all, security, off, both]) s.close();
  } finally {
    await sim.close();
  }
});

test('simulator: parseEventMask reads Events: as manager.c does', () => {
  assert.equal(parseEventMask(undefined), 'all');
  assert.equal(parseEventMask('YES'), 'all');
  assert.deepEqual(parseEventMask('off'), new Set());
  assert.deepEqual(parseEventMask(' security , call '), new Set(['security', 'call']));
});

/** A raw session as `user`; returns the text received so far and the local port. */
async function rawLogin(port: number, user: string, secret: string, events = 'on') {
  const sock = net.connect(port, '127.0.0.1');
  let text = '';
  sock.on('data', (b: Buffer) => (text += b.toString('latin1')));
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write(`Action: Login\r\nUsername: ${user}\r\nSecret: ${secret}\r\nEvents: ${events}\r\n\r\n`);
  for (let i = 0; i < 100 && !/Authentication (accepted|failed)/.test(text); i++) await new Promise((r) => setTimeout(r, 10));
  return { text: () => text, localPort: sock.localPort!, close: () => sock.destroy() };
}

test('simulator: manager.conf read ∩ Events mask; every login a SuccessfulAuth; manager reload reaches only new sessions', async () => {
  const sim = new AmiSimulator({
    fixturesDir: fixturePath('ami'),
    users: { freepbx: { secret: 'a', read: 'system,call' }, guardian: { secret: 'b', read: 'all' } },
  });
  await sim.listen();
  try {
    const blind = await rawLogin(sim.port, 'freepbx', 'a');
    const seeing = await rawLogin(sim.port, 'guardian', 'b', 'security');
    await new Promise((r) => setTimeout(r, 50));
    assert.doesNotMatch(blind.text(), /SuccessfulAuth/, 'read = system,call: no security class, even with Events: on');
    assert.match(blind.text(), /Event: FullyBooted/);
    // the SuccessfulAuth of the guardian's own login, as Asterisk 22 writes it
    const own =
      /Event: SuccessfulAuth\r\nPrivilege: security,all\r\nEventTV: \S+\+0000\r\nSeverity: Informational\r\nService: AMI\r\nEventVersion: 1\r\nAccountID: guardian\r\nSessionID: 0x[0-9a-f]+\r\nLocalAddress: IPV4\/TCP\/127\.0\.0\.1\/(\d+)\r\nRemoteAddress: IPV4\/TCP\/127\.0\.0\.1\/(\d+)\r\nUsingPassword: 0\r\nSessionTV: \S+\r\n\r\n/.exec(
        seeing.text(),
      );
    assert.ok(own, seeing.text());
    assert.equal(Number(own[1]), sim.port);
    assert.equal(Number(own[2]), seeing.localPort, 'RemoteAddress carries the client port');
    sim.managerReload({ freepbx: { secret: 'a', read: 'system,call,security' }, guardian: { secret: 'b', read: 'all' } });
    const attack = replayBytes(loadTemplate(fixturePath('ami'), 'security-sip-register-wrong-password.raw'), '203.0.113.9');
    sim.broadcast(attack);
    const fresh = await rawLogin(sim.port, 'freepbx', 'a');
    sim.broadcast(attack);
    await new Promise((r) => setTimeout(r, 100));
    assert.doesNotMatch(blind.text(), /InvalidPassword|SuccessfulAuth/, 'a live session keeps the read permissions of its login');
    assert.match(fresh.text(), /AccountID: freepbx/, 'a session after the reload reads security: its own SuccessfulAuth');
    assert.match(fresh.text(), /InvalidPassword/);
    assert.equal((seeing.text().match(/Event: SuccessfulAuth/g) ?? []).length, 2, 'its own login and the fresh one');
    const wrong = await rawLogin(sim.port, 'guardian', 'nope');
    assert.match(wrong.text(), /Authentication failed/);
    for (const s of [blind, seeing, fresh, wrong]) s.close();
  } finally {
    await sim.close();
  }
});
