import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { AmiClient } from '../src/ami/index.js';
import { AmiSimulator } from '../src/demo/ami-simulator.js';
import { loadTemplate, replayBytes } from '../src/demo/attack.js';
import { fixturePath } from './helpers/fixtures.js';

// A burst written at once is read one 64 KB chunk per loop turn (the socket paused for that turn),
// so timers and immediates (the enforcer's flush, the store's) run while it is read; nothing is lost.
test('a 4 MB burst: every event arrives in order, and the loop turns between 64 KB reads', async (t) => {
  const s = new AmiSimulator({ fixturesDir: fixturePath('ami'), loginFailDelayMs: 20 });
  await s.listen();
  const c = new AmiClient({
    host: '127.0.0.1',
    port: s.port,
    username: 'guardian',
    secret: 'guardian-secret',
    events: 'on',
    reconnectInitialMs: 20,
    reconnectMaxMs: 100,
  });
  t.after(async () => {
    await c.stop();
    await s.close();
  });
  c.start();
  await once(c, 'connected');
  const fail = loadTemplate(fixturePath('ami'), 'security-sip-register-wrong-password.raw');
  const n = 6000;
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(replayBytes(fail, `198.18.${i >> 8}.${i & 255}`));
  const bytes = Buffer.from(parts.join(''), 'latin1');
  assert.ok(bytes.length > 4 * 1024 * 1024, `burst of ${bytes.length} bytes`);
  const perAddress = fail.filter((f) => f.startsWith('Event: InvalidPassword')).length;
  assert.ok(perAddress >= 1);

  let turns = 0;
  let spinning = true;
  const spin = () => {
    turns++;
    if (spinning) setImmediate(spin);
  };
  const seen: string[] = [];
  const turnOf: number[] = [];
  c.on('event', (m) => {
    if (m.get('Event') !== 'InvalidPassword') return;
    seen.push(m.get('RemoteAddress')!.split('/')[2]!);
    turnOf.push(turns);
  });
  setImmediate(spin);
  s.broadcast(s.prepare(bytes));
  const t0 = Date.now();
  while (seen.length < n * perAddress && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 5));
  spinning = false;
  assert.equal(seen.length, n * perAddress);
  const want = Array.from({ length: n }, (_, i) => `198.18.${i >> 8}.${i & 255}`).flatMap((a) => Array<string>(perAddress).fill(a));
  assert.deepEqual(seen, want);
  assert.equal(c.stats.framesDropped, 0);
  // events read in one turn: at most two 64 KB chunks' worth (a frame can straddle two reads)
  const perTurn = new Map<number, number>();
  for (const x of turnOf) perTurn.set(x, (perTurn.get(x) ?? 0) + 1);
  const frameBytes = bytes.length / (n * fail.length);
  const most = Math.max(...perTurn.values());
  assert.ok(most <= Math.ceil((2 * 65536) / frameBytes), `${most} events in one turn (frames of ~${Math.round(frameBytes)} B)`);
});
