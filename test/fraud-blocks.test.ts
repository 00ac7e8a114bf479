/**
 * An operator is never told "blocked" while the dialplan still lets calls through: each blocked
 * account in the fraud view (GET /fraud, `pbx-guardian fraud [--json]`) says whether its AstDB key
 * is written, pending (DBPut in flight or being retried) or failed (given up; written again at the
 * next AMI login). The AMI refuses DBPut as a user without write=system does (the real
 * Response: Error frame of the captures).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBlockStore } from '../src/fraud/index.js';
import { formatFraud } from '../src/cli/fraud.js';
import { DBPUT_OK, HANGUP_OK, REFUSED, WireAmi, fraudConfig, replay, rig, settle, type Rig } from './helpers/fraud.js';

const BURST = 'call-pjsip-burst-international.raw';
const astdb = (r: Rig) => r.engine.snapshot().blocked.map((b) => [b.account, b.astdb.state, b.astdb.attempts, b.astdb.error]);

async function runRetries(r: Rig, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await settle();
    r.timers.runAll();
  }
  await settle();
}

test('AstDB refusing DBPut: the block is pending, then failed, and the view says the dialplan still lets calls through', async () => {
  const ami = new WireAmi((f) => (f.Action === 'Hangup' ? HANGUP_OK : REFUSED));
  const r = rig(new MemoryBlockStore(), fraudConfig({ block: { attempts: 3, retryMs: 10, maxRetryMs: 20 } }), ami);
  replay(r, BURST);
  assert.deepEqual(astdb(r), [['101', 'pending', 0, null]], 'DBPut in flight');
  let text = formatFraud(r.engine.snapshot());
  assert.match(text, /Blocked accounts: 1 \(1 NOT yet blocked by the dialplan: AstDB key not written\)/);
  assert.match(text, /101 {2}all {2}since .* {2}AstDB: PENDING since /);
  await runRetries(r, 4);
  assert.equal(ami.sent('DBPut').length, 3);
  const [row] = astdb(r);
  assert.deepEqual(row!.slice(0, 3), ['101', 'failed', 3]);
  assert.match(String(row![3]), /^AMI answered Error: /);
  text = formatFraud(r.engine.snapshot());
  assert.match(text, /AstDB: FAILED after 3 attempts \(AMI answered Error: .*\): the dialplan still lets calls through/);
  assert.match(text, /1 NOT yet blocked by the dialplan/);
  // --json is the snapshot as it is: the state is there for a script
  assert.equal(JSON.parse(JSON.stringify(r.engine.snapshot())).blocked[0].astdb.state, 'failed');

  // the next AMI login (now with write=system): written again, and only then "written"
  ami.answer = (f) => (f.Action === 'Hangup' ? HANGUP_OK : DBPUT_OK);
  r.engine.onConnected();
  assert.deepEqual(astdb(r), [['101', 'pending', 0, null]]);
  await settle();
  assert.deepEqual(astdb(r), [['101', 'written', 1, null]]);
  text = formatFraud(r.engine.snapshot());
  assert.match(text, /Blocked accounts: 1\n/);
  assert.match(text, /AstDB: written/);
  assert.doesNotMatch(text, /NOT yet|PENDING|FAILED/);
  r.engine.stop();
});

test('AstDB accepting at once: written; unblocked: gone from the view; a restriction (accounts stage) starts pending again', async () => {
  const r = rig(new MemoryBlockStore(), fraudConfig());
  replay(r, BURST);
  await settle();
  assert.deepEqual(astdb(r), [['101', 'written', 1, null]]);
  assert.equal(r.engine.unblock('101', 'cli'), true);
  await settle();
  assert.deepEqual(astdb(r), []);
  void r.engine.restrict('101', 'account 101 from 198.51.100.0/24, a network it has never used');
  assert.deepEqual(astdb(r), [['101', 'pending', 0, null]]);
  assert.equal(r.ami.sent('DBPut').at(-1)!.Val!.split(';')[0], 'internal');
  await settle();
  assert.deepEqual(astdb(r), [['101', 'written', 1, null]]);
  r.engine.stop();
});

test('a restart: stored blocks are pending until the AMI login writes them', async () => {
  const store = new MemoryBlockStore();
  const r = rig(store, fraudConfig());
  replay(r, BURST);
  await settle();
  r.engine.stop();
  const r2 = rig(store, fraudConfig({ block: { attempts: 2 } }), new WireAmi(() => new Error('AMI is not connected')));
  assert.deepEqual(astdb(r2), [['101', 'pending', 0, null]], 'not known to be in AstDB before the login');
  r2.engine.onConnected();
  await runRetries(r2, 6);
  assert.deepEqual(
    astdb(r2).map((x) => x.slice(0, 2)),
    [['101', 'failed']],
  );
  r2.engine.stop();
});
