/** recording.get_file and file.delete, confined to odoo.recordingDirs. */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import path from 'node:path';
import { JobError, type JobFunction } from './job-function.js';

/** Resolve `p` inside one of `dirs` (realpath: no ../, no symlink escape). Throws JobError. */
export async function confinePath(p: unknown, dirs: string[]): Promise<string> {
  if (typeof p !== 'string' || !p) throw new JobError('a file path is required');
  if (p.includes('\0')) throw new JobError('refused: the file path contains NUL');
  if (p.length > 4096) throw new JobError('refused: the file path is too long');
  const roots: string[] = [];
  for (const d of dirs) {
    try { roots.push(await fs.realpath(d)); } catch { /* a missing dir confines nothing */ }
  }
  if (roots.length === 0) throw new JobError(`no recording directory exists on this agent (odoo.recordingDirs: ${dirs.join(', ')})`);
  const candidate = path.isAbsolute(p) ? p : path.join(roots[0]!, p);
  let real: string;
  try {
    real = await fs.realpath(candidate);
  } catch {
    throw new JobError(`file not found: ${p}`);
  }
  for (const r of roots) {
    if (real.startsWith(r.endsWith(path.sep) ? r : r + path.sep)) return real;
  }
  throw new JobError(`refused: ${p} is outside the recording directories (odoo.recordingDirs)`);
}

async function findExecutable(name: string, explicit?: string): Promise<string | null> {
  if (explicit) {
    try { await fs.access(explicit, fsc.X_OK); return explicit; } catch { return null; }
  }
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const f = path.join(dir, name);
    try { await fs.access(f, fsc.X_OK); return f; } catch { /* next */ }
  }
  return null;
}

function runToBuffer(cmd: string, args: string[], maxBytes: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    const chunks: Buffer[] = [];
    let size = 0;
    let err = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new JobError(`${path.basename(cmd)} did not finish within ${timeoutMs} ms`)); }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) { child.kill('SIGKILL'); clearTimeout(timer); reject(new JobError(`converted file is larger than ${maxBytes} bytes (odoo.recordingMaxBytes)`)); return; }
      chunks.push(c);
    });
    child.stderr.on('data', (c: Buffer) => { if (err.length < 2000) err += c.toString(); });
    child.on('error', (e) => { clearTimeout(timer); reject(new JobError(`cannot run ${cmd}: ${e.message}`)); });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(chunks));
      else reject(new JobError(`${path.basename(cmd)} failed (exit ${code}): ${err.trim().slice(-300)}`));
    });
  });
}

function pathArg(args: unknown): unknown {
  if (Array.isArray(args)) return args[0];
  if (args && typeof args === 'object') {
    const o = args as Record<string, unknown>;
    return o.file_path ?? o.path ?? o.file;
  }
  return args;
}

export const getFile: JobFunction = async (args, kwargs, ctx) => {
  const p = pathArg(args);
  const real = await confinePath(p, ctx.config.recordingDirs);
  const st = await fs.stat(real);
  if (!st.isFile()) throw new JobError(`${String(p)} is not a regular file`);
  if (st.size > ctx.config.recordingMaxBytes) {
    throw new JobError(`${String(p)} is ${st.size} bytes, more than odoo.recordingMaxBytes (${ctx.config.recordingMaxBytes})`);
  }
  const base: Record<string, unknown> = { file_path: p };
  if (kwargs.recordings_access !== undefined) base.recording_access = kwargs.recordings_access;
  if (kwargs.recordings_access_url !== undefined) base.recording_access_url = kwargs.recordings_access_url;
  if (kwargs.file_format === 'mp3' && !real.toLowerCase().endsWith('.mp3')) {
    const bitrate = Number(kwargs.mp3_bitrate ?? 96);
    const quality = Number(kwargs.mp3_quality ?? 4);
    const br = Number.isFinite(bitrate) && bitrate >= 8 && bitrate <= 320 ? Math.round(bitrate) : 96;
    const q = Number.isFinite(quality) && quality >= 0 && quality <= 9 ? Math.round(quality) : 4;
    const lame = await findExecutable('lame', ctx.config.lamePath);
    const ffmpeg = lame ? null : await findExecutable('ffmpeg', ctx.config.ffmpegPath);
    let data: Buffer;
    if (lame) data = await runToBuffer(lame, ['--quiet', '-b', String(br), '-q', String(q), real, '-'], ctx.config.recordingMaxBytes, ctx.timeoutMs);
    else if (ffmpeg) data = await runToBuffer(ffmpeg, ['-nostdin', '-loglevel', 'error', '-i', real, '-codec:a', 'libmp3lame', '-b:a', `${br}k`, '-q:a', String(q), '-f', 'mp3', 'pipe:1'], ctx.config.recordingMaxBytes, ctx.timeoutMs);
    else throw new JobError('mp3 conversion was requested but neither lame nor ffmpeg is installed on the agent host: install one (apt install lame) or turn off mp3 conversion in Odoo');
    return { ...base, file_data: data.toString('base64'), file_name: path.basename(real).replace(/\.[^.]*$/, '') + '.mp3' };
  }
  const data = await fs.readFile(real);
  return { ...base, file_data: data.toString('base64'), file_name: path.basename(real) };
};

export const deleteFile: JobFunction = async (args, _k, ctx) => {
  const real = await confinePath(pathArg(args), ctx.config.recordingDirs);
  const st = await fs.lstat(real);
  if (!st.isFile()) throw new JobError(`${String(pathArg(args))} is not a regular file`);
  await fs.unlink(real);
  return true;
};
