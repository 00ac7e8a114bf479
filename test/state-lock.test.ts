/**
 * The state directory lock (src/store/lock.ts) and the state directory itself (src/store/dirs.ts),
 * in process, on real files. The cross-process cases (a second `run`, a SIGKILLed daemon) are in
 * startup.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireStateLock, AlreadyRunningError, LOCK_FILE, makeDirs, prepareStateDir, StateDirError } from '../src/store/index.js';
import { processStartTicks } from '../src/store/lock.js';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-lock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const lockOf = (dir: string) => JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as { pid: number; token: string; startTicks: number | null };

test("the lock names this process; a second lock on the same directory is refused with the holder's pid; release frees it", (t) => {
  const dir = tempDir(t);
  const lock = acquireStateLock(dir);
  assert.equal(lockOf(dir).pid, process.pid);
  assert.equal(lockOf(dir).startTicks, processStartTicks(process.pid));
  assert.equal(lock.tookOver, null);
  assert.throws(
    () => acquireStateLock(dir),
    (err: Error) => err instanceof AlreadyRunningError && err.message.includes(`pid ${process.pid}`),
  );
  assert.deepEqual(readdirSync(dir), [LOCK_FILE], 'no temporary file left behind');
  lock.release();
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
  acquireStateLock(dir).release();
});

test('a lock whose pid now belongs to another process (start time differs) is stale', (t) => {
  const dir = tempDir(t);
  // pid 1 runs, but it is not the process that wrote this lock: its start time differs
  const ticks = processStartTicks(1);
  assert.notEqual(ticks, null, '/proc/1/stat is readable');
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, startTicks: ticks! + 12345, at: Date.now(), token: 'x', argv: [] }));
  const lock = acquireStateLock(dir);
  assert.match(lock.tookOver?.why ?? '', /pid 1 now belongs to another process/);
  assert.equal(lockOf(dir).pid, process.pid);
  lock.release();
});

test('a lock held by a live process (same start time) is not stale', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, startTicks: processStartTicks(1), at: Date.now(), token: 'x', argv: [] }));
  assert.throws(() => acquireStateLock(dir), /another pbx-guardian \(pid 1,/);
  assert.equal(lockOf(dir).token, 'x', 'the live lock is left as it was');
});

test('a lock written before this boot, or an unreadable one, is stale', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, startTicks: processStartTicks(1), at: 1_000_000, token: 'x', argv: [] }));
  const a = acquireStateLock(dir);
  assert.match(a.tookOver?.why ?? '', /before this boot/);
  a.release();
  writeFileSync(join(dir, LOCK_FILE), '');
  const b = acquireStateLock(dir);
  assert.match(b.tookOver?.why ?? '', /empty or unreadable/);
  b.release();
});

test("a lock with this process's pid that this process does not hold is stale (pid reuse after a reboot)", (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, startTicks: null, at: Date.now(), token: 'old', argv: [] }));
  const lock = acquireStateLock(dir);
  assert.match(lock.tookOver?.why ?? '', /this process's pid, left by an earlier process/);
  lock.release();
});

test('a dead pid is stale', (t) => {
  const dir = tempDir(t);
  const dead = spawnSync('/bin/true').pid!;
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: dead, startTicks: null, at: Date.now(), token: 'x', argv: [] }));
  const lock = acquireStateLock(dir);
  assert.equal(lock.tookOver?.why, `process ${dead} is gone`);
  assert.equal(lock.tookOver?.holder?.pid, dead);
  lock.release();
});

test('release removes only its own lock (one taken over meanwhile stays)', (t) => {
  const dir = tempDir(t);
  const lock = acquireStateLock(dir);
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, startTicks: null, at: Date.now(), token: 'someone-else', argv: [] }));
  lock.release();
  assert.equal(lockOf(dir).token, 'someone-else');
});

test('a directory that cannot be written: StateDirError naming it', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'not-a-dir');
  writeFileSync(file, '');
  assert.throws(
    () => prepareStateDir(join(file, 'state')),
    (err: Error) => err instanceof StateDirError && err.message.includes(`${file}/state (config key stateDir)`),
  );
  assert.throws(() => acquireStateLock('/proc'), StateDirError);
});

test("makeDirs makes every missing level and fails at once under /proc (Node 20's recursive mkdir spins there)", (t) => {
  const dir = tempDir(t);
  makeDirs(join(dir, 'a', 'b', 'c'), 0o750);
  assert.ok(existsSync(join(dir, 'a', 'b', 'c')));
  makeDirs(join(dir, 'a', 'b', 'c'), 0o750); // exists: fine
  assert.throws(
    () => makeDirs('/proc/nope/deeper', 0o750),
    (err: NodeJS.ErrnoException) => err.code === 'ENOENT',
  );
});
