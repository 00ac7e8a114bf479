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
