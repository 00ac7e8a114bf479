import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { DeferredBackend, defaultFirewallConfig, Enforcer, MemoryBackend } from '../src/firewall/index.js';

test('a backend that cannot be built at start (no CAP_NET_ADMIN) is retried; queued bans arrive after recovery', async () => {
  const memory = new MemoryBackend();
  let attempts = 0;
  const deferred = new DeferredBackend(async () => {
    attempts++;
    if (attempts <= 2) throw new Error('nft: Operation not permitted — pbx-guardian needs CAP_NET_ADMIN');
    return memory;
  });
  const failures: string[] = [];
  let recovered = false;
  const enforcer = new Enforcer(deferred, () => [], { ...defaultFirewallConfig, retryInitialMs: 20, retryMaxMs: 40 }, pino({ level: 'silent' }), {
    onFailure: (err) => failures.push(err.message),
    onRecovered: () => (recovered = true),
  });
  await enforcer.start();
  assert.equal(deferred.name, 'unavailable');
  const banned = enforcer.ban({ target: '203.0.113.4', family: 4, isNetwork: false, expiresAt: Date.now() + 60_000 });
  for (let i = 0; i < 100 && !recovered; i++) await new Promise((r) => setTimeout(r, 20));
  await banned;
  assert.ok(failures.length >= 1 && failures.every((m) => /CAP_NET_ADMIN/.test(m)), JSON.stringify(failures));
  assert.equal(recovered, true);
  assert.equal(enforcer.healthy, true);
  assert.equal(deferred.name, 'memory');
  assert.deepEqual(
    (await memory.list()).map((e) => e.target),
    ['203.0.113.4'],
  );
  await enforcer.stop();
});
