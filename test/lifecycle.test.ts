import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lifecycle, type Component } from '../src/common/lifecycle.js';

/** A component that records its start and stop in `log`; `fail` makes one of them throw (or reject). */
function part(log: string[], name: string, fail?: 'start' | 'stop' | 'stop-async'): Component {
  return {
    name,
    start: () => {
      log.push(`start ${name}`);
      if (fail === 'start') throw new Error(`${name} cannot start`);
    },
    stop: async () => {
      log.push(`stop ${name}`);
      if (fail === 'stop') throw new Error(`${name} cannot stop`);
      if (fail === 'stop-async') await Promise.reject(new Error(`${name} rejected`));
    },
  };
}

test('lifecycle: components start in order and stop in reverse; a second stop stops nothing', async () => {
  const log: string[] = [];
  const life = new Lifecycle(() => assert.fail('no stop fails here'));
  for (const n of ['lock', 'store', 'listeners', 'ami']) await life.start(part(log, n));
  // a component without start() is one the caller already runs: only its stop is recorded
  await life.start({ name: 'built', stop: () => void log.push('stop built') });
  assert.deepEqual(life.names(), ['lock', 'store', 'listeners', 'ami', 'built']);
  await life.stop();
  assert.deepEqual(log, ['start lock', 'start store', 'start listeners', 'start ami', 'stop built', 'stop ami', 'stop listeners', 'stop store', 'stop lock']);
  await life.stop();
  assert.equal(log.length, 9);
  assert.deepEqual(life.names(), []);
});

test('lifecycle: a failed start stops only what started before it, in reverse; the failing one and later ones are not stopped', async () => {
  const log: string[] = [];
  const life = new Lifecycle(() => assert.fail('no stop fails here'));
  await life.start(part(log, 'lock'));
  await life.start(part(log, 'store'));
  await assert.rejects(life.start(part(log, 'listeners', 'start')), /listeners cannot start/);
  await life.stop();
  assert.deepEqual(log, ['start lock', 'start store', 'start listeners', 'stop store', 'stop lock']);
});

test('lifecycle: a stop that throws or rejects is reported and the rest still stop, the first component last', async () => {
  const log: string[] = [];
  const failed: Array<[string, string]> = [];
  const life = new Lifecycle((name, err) => failed.push([name, (err as Error).message]));
  await life.start(part(log, 'lock'));
  await life.start(part(log, 'store', 'stop'));
  await life.start(part(log, 'webhooks', 'stop-async'));
  await life.start(part(log, 'ami'));
  assert.deepEqual(await life.stop(), ['webhooks', 'store']);
  assert.deepEqual(
    log.filter((l) => l.startsWith('stop')),
    ['stop ami', 'stop webhooks', 'stop store', 'stop lock'],
  );
  assert.deepEqual(failed, [
    ['webhooks', 'webhooks rejected'],
    ['store', 'store cannot stop'],
  ]);
});
