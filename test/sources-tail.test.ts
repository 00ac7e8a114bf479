/**
 * The security log's tailer (src/sources/tail.ts), driven by poll() (no timers, no fs.watch):
 * start at the end, appends, partial lines, rotation (rename + new file), truncation, the line
 * and chunk bounds, a file that appears later.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileTail, type TailOptions } from '../src/sources/index.js';

function tailOf(path: string, over: Partial<TailOptions> = {}) {
  const calls: string[][] = [];
  const tail = new FileTail({ path, pollMs: 0, watch: false, onLines: (l) => calls.push(l), ...over });
  return { tail, calls, lines: () => calls.flat() };
}

function tmp(): { dir: string; path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-tail-'));
  return { dir, path: join(dir, 'security'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('tail: starts at the end, reads appended lines, joins a line written in two parts, strips CR', async () => {
  const t = tmp();
  try {
    writeFileSync(t.path, 'old 1\nold 2\n');
    const { tail, lines } = tailOf(t.path);
    await tail.start();
    await tail.poll();
    assert.deepEqual(lines(), [], 'what was there before start is not read');
    appendFileSync(t.path, 'new 1\nnew 2\r\nhalf');
    await tail.poll();
    assert.deepEqual(lines(), ['new 1', 'new 2']);
    appendFileSync(t.path, ' and rest\n');
    await tail.poll();
    assert.deepEqual(lines(), ['new 1', 'new 2', 'half and rest']);
    assert.equal(tail.stats.lines, 3);
    assert.equal(tail.stats.following, true);
    await tail.stop();
  } finally {
    t.done();
  }
});

test('tail: started inside a line being written, its rest is not taken for a line', async () => {
  const t = tmp();
  try {
    writeFileSync(t.path, 'done\nSecurityEvent="Invalid');
    const { tail, lines } = tailOf(t.path);
    await tail.start();
    appendFileSync(t.path, 'Password",RemoteAddress="IPV4/UDP/192.0.2.1/5060"\nnext\n');
    await tail.poll();
    assert.deepEqual(lines(), ['next']);
    await tail.stop();
  } finally {
    t.done();
  }
});

test('tail: rotation (renamed away, a new file) reads the old file to its end, then the new one from its start', async () => {
  const t = tmp();
  try {
    writeFileSync(t.path, '');
    const { tail, lines } = tailOf(t.path);
    await tail.start();
    appendFileSync(t.path, 'a\n');
    await tail.poll();
    appendFileSync(t.path, 'b (written just before the rotation)\n');
    renameSync(t.path, `${t.path}.0`);
    await tail.poll(); // renamed, no new file yet: the old one is still read
    appendFileSync(`${t.path}.0`, 'c (late write to the old file)\n');
    writeFileSync(t.path, 'd (first line of the new file)\n');
    await tail.poll();
    appendFileSync(t.path, 'e\n');
    await tail.poll();
    assert.deepEqual(lines(), ['a', 'b (written just before the rotation)', 'c (late write to the old file)', 'd (first line of the new file)', 'e']);
    assert.equal(tail.stats.rotations, 1);
    await tail.stop();
  } finally {
    t.done();
  }
});

test('tail: truncation (copytruncate) reads again from the start', async () => {
  const t = tmp();
  try {
    writeFileSync(t.path, 'x'.repeat(100) + '\n');
    const { tail, lines } = tailOf(t.path);
    await tail.start();
    appendFileSync(t.path, 'before\n');
    await tail.poll();
    truncateSync(t.path, 0);
    appendFileSync(t.path, 'after 1\nafter 2\n');
    await tail.poll();
    assert.deepEqual(lines(), ['before', 'after 1', 'after 2']);
    assert.equal(tail.stats.truncations, 1);
    assert.equal(tail.stats.rotations, 0);
    await tail.stop();
  } finally {
    t.done();
  }
});

test('tail: a line longer than maxLineBytes is dropped and counted, the next one is read; reads are chunkBytes each', async () => {
  const t = tmp();
  try {
    writeFileSync(t.path, '');
    const { tail, calls, lines } = tailOf(t.path, { maxLineBytes: 100, chunkBytes: 64 });
    await tail.start();
    const short = Array.from({ length: 20 }, (_, i) => `line ${i}`);
    appendFileSync(t.path, `${short.slice(0, 10).join('\n')}\n${'L'.repeat(500)}\n${'M'.repeat(101)}\n${short.slice(10).join('\n')}\n`);
    await tail.poll();
    assert.deepEqual(lines(), short);
    assert.equal(tail.stats.longLines, 2);
    assert.ok(calls.length > 3, `${calls.length} calls: one per 64-byte read`);
    for (const c of calls) assert.ok(c.join('\n').length <= 64, 'one call covers at most one chunk');
    await tail.stop();
  } finally {
    t.done();
  }
});

test('tail: a file absent at start is read from its start once it appears; the error says the path', async () => {
  const t = tmp();
  try {
    const { tail, lines } = tailOf(t.path);
    await tail.start();
    assert.equal(tail.stats.following, false);
    assert.match(tail.stats.lastError ?? '', /security does not exist/);
    writeFileSync(t.path, 'first\n');
    await tail.poll();
    assert.deepEqual(lines(), ['first']);
    assert.equal(tail.stats.following, true);
    assert.equal(tail.stats.lastError, null);
    await tail.stop();
  } finally {
    t.done();
  }
});

test('tail: polls during a pass are folded into it, and every appended line is read once', async () => {
  const t = tmp();
  try {
    writeFileSync(t.path, '');
    const { tail, lines } = tailOf(t.path, { chunkBytes: 32 });
    await tail.start();
    const want: string[] = [];
    const polls: Array<Promise<void>> = [];
    for (let i = 0; i < 50; i++) {
      want.push(`line number ${i}`);
      appendFileSync(t.path, `line number ${i}\n`);
      polls.push(tail.poll());
    }
    await Promise.all(polls);
    await tail.poll();
    assert.deepEqual(lines(), want);
    await tail.stop();
  } finally {
    t.done();
  }
});
