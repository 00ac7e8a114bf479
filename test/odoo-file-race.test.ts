/**
 * file.delete and recording.get_file against a path component that a local user flips between a
 * real directory inside the recording directory and a symlink to a directory outside it, while
 * the jobs run (issue 12, finding 11). Nothing outside may be deleted or read.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { JOB_FUNCTIONS, resolveOdooConfig, type JobFunction } from '../src/odoo/index.js';
import { FakeAmi, FakeBans } from './helpers/fake-odoo.js';

const FILES = 200;
const ATTEMPTS = 400;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-file-race-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Layout {
  rec: string;
  outside: string;
  swapper: ChildProcess;
}

/** rec/day flips: a real directory (rec/day.real) ↔ a symlink to `outside` (rec/day.link). */
function layout(name: string, content: (i: number, where: 'inside' | 'outside') => string): Layout {
  const base = path.join(tmp, name);
  const rec = path.join(base, 'rec');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(path.join(rec, 'day'), { recursive: true });
  fs.mkdirSync(outside);
  for (let i = 0; i < FILES; i++) {
    fs.writeFileSync(path.join(rec, 'day', `f${i}.wav`), content(i, 'inside'));
    fs.writeFileSync(path.join(outside, `f${i}.wav`), content(i, 'outside'));
  }
  fs.symlinkSync(outside, path.join(rec, 'day.link'));
  const code = `
    const fs = require('node:fs'); const p = (n) => ${JSON.stringify(rec)} + '/' + n;
    process.stdout.write('go\\n');
    for (;;) { fs.renameSync(p('day'), p('day.real')); fs.renameSync(p('day.link'), p('day'));
               fs.renameSync(p('day'), p('day.link')); fs.renameSync(p('day.real'), p('day')); }`;
  const swapper = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  return { rec, outside, swapper };
}

async function started(l: Layout): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    l.swapper.stdout!.once('data', () => resolve());
    l.swapper.once('exit', (c) => reject(new Error(`swapper exited ${c}`)));
  });
}

async function stop(l: Layout): Promise<void> {
  const gone = new Promise((r) => l.swapper.once('exit', r));
  l.swapper.kill('SIGKILL');
  await gone;
}

function ctx(rec: string) {
  return {
    ami: new FakeAmi(),
    bans: new FakeBans(),
    log: pino({ level: 'silent' }),
    config: resolveOdooConfig({ recordingDirs: [rec] }),
    reloadConfig: () => undefined,
    reloadEvents: async () => undefined,
    timeoutMs: 5000,
    hold: async () => ({ shrink: () => undefined, release: () => undefined }),
  } as unknown as Parameters<JobFunction>[2];
}

/** The bytes of a get_file result, whether it carries a base64 string or a streamed blob. */
async function fileData(r: Record<string, unknown>): Promise<string> {
  const d = r.file_data as unknown;
  if (typeof d === 'string') return Buffer.from(d, 'base64').toString();
  const parts: Buffer[] = [];
  for await (const c of (d as { chunks(): AsyncIterable<Buffer> }).chunks()) parts.push(c);
  await (d as { close(): Promise<void> }).close();
  return Buffer.concat(parts).toString();
}

test('file.delete under a symlink swapper deletes nothing outside the recording directory', async () => {
  const l = layout('delete', (i, w) => `${w} ${i}`);
  const del = JOB_FUNCTIONS.get('file.delete')!;
  const c = ctx(l.rec);
  let deleted = 0;
  try {
    await started(l);
    for (let i = 0; i < FILES; i++) {
      for (let a = 0; a < ATTEMPTS; a++) {
        const ok = await del(path.join(l.rec, 'day', `f${i}.wav`), {}, c).catch(() => false);
        if (ok === true) {
          deleted++;
          break;
        }
      }
    }
  } finally {
    await stop(l);
  }
  const outsideLeft = fs.readdirSync(l.outside).length;
  // the swapper was killed at any point of its cycle: the real directory is day or day.real
  const realDir = ['day', 'day.real'].find((n) => fs.lstatSync(path.join(l.rec, n), { throwIfNoEntry: false })?.isDirectory())!;
  const insideLeft = fs.readdirSync(path.join(l.rec, realDir)).length;
  console.log(
    `file.delete race: ${deleted} deletions reported, ${FILES - outsideLeft} of ${FILES} files OUTSIDE deleted, ${FILES - insideLeft} inside deleted`,
  );
  assert.equal(FILES - outsideLeft, 0, 'files outside the recording directory were deleted');
  assert.equal(insideLeft, 0, 'every file inside was deleted in the end');
});

test('recording.get_file under a symlink swapper never reads a file outside the recording directory', async () => {
  const l = layout('read', (i, w) => `${w} ${i}`);
  const get = JOB_FUNCTIONS.get('recording.get_file')!;
  const c = ctx(l.rec);
  let inside = 0;
  let outside = 0;
  try {
    await started(l);
    for (let i = 0; i < FILES; i++) {
      for (let a = 0; a < ATTEMPTS / 4; a++) {
        const r = (await get(path.join(l.rec, 'day', `f${i}.wav`), {}, c).catch(() => null)) as Record<string, unknown> | null;
        if (!r || r.file_data === undefined) continue;
        const text = await fileData(r);
        if (text.startsWith('outside')) outside++;
        else inside++;
        break;
      }
    }
  } finally {
    await stop(l);
  }
  console.log(`recording.get_file race: ${inside} reads inside, ${outside} reads of files OUTSIDE`);
  assert.equal(outside, 0, 'files outside the recording directory were read');
  assert.ok(inside > 0, 'some reads succeeded');
});

test('confinement: a recording directory that is itself a symlink works; a symlink or a FIFO below it is refused', async () => {
  const base = path.join(tmp, 'shapes');
  const real = path.join(base, 'real-monitor');
  fs.mkdirSync(path.join(real, '2026'), { recursive: true });
  fs.writeFileSync(path.join(real, '2026', 'a.wav'), 'inside a');
  fs.writeFileSync(path.join(real, '2026', 'b.wav'), 'inside b');
  fs.symlinkSync(path.join(real, '2026', 'a.wav'), path.join(real, '2026', 'alias.wav'));
  execFileSync('mkfifo', [path.join(real, '2026', 'pipe.wav')]);
  const link = path.join(base, 'monitor');
  fs.symlinkSync(real, link);
  const get = JOB_FUNCTIONS.get('recording.get_file')!;
  const del = JOB_FUNCTIONS.get('file.delete')!;
  const c = ctx(link);
  const read = async (p: string) => fileData((await get(p, {}, c)) as Record<string, unknown>);
  assert.equal(await read(path.join(link, '2026/a.wav')), 'inside a', 'under the configured (symlinked) path');
  assert.equal(await read(path.join(real, '2026/a.wav')), 'inside a', 'under its realpath');
  assert.equal(await read('2026/a.wav'), 'inside a', 'relative to it');
  await assert.rejects(get(path.join(link, '2026/alias.wav'), {}, c), /outside the recording directories \(odoo\.recordingDirs\)/);
  await assert.rejects(get(path.join(link, '2026/pipe.wav'), {}, c), /is not a regular file/);
  await assert.rejects(get(path.join(link, '2026/../../x.wav'), {}, c), /outside the recording directories/);
  await assert.rejects(del(path.join(link, '2026/alias.wav'), {}, c), /alias\.wav is a symbolic link/);
  await assert.rejects(del(path.join(link, '2026/pipe.wav'), {}, c), /is not a regular file/);
  await assert.rejects(del(path.join(link, '2026'), {}, c), /is not a regular file/);
  assert.equal(await del(path.join(link, '2026/b.wav'), {}, c), true);
  assert.deepEqual(fs.readdirSync(path.join(real, '2026')).sort(), ['a.wav', 'alias.wav', 'pipe.wav']);
});
