/**
 * recording.get_file and file.delete, confined to odoo.recordingDirs (confined-fs.ts). A file is
 * never read into memory: the result carries it open (FileBlob) and the RPC client streams it
 * into the request to Odoo. An mp3 conversion is buffered, within a reservation of the jobs'
 * memory budget (odoo.jobMemoryMaxBytes) of odoo.recordingMaxBytes.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import path from 'node:path';
import { openConfinedFile, unlinkConfinedFile } from './confined-fs.js';
import { JobError, type JobFunction } from './job-function.js';
import { BufferBlob, FileBlob } from './json-body.js';

/** what one file being sent holds (read chunk, its base64, socket buffers); also bounds open files */
const STREAM_HOLD_BYTES = 1024 * 1024;

async function findExecutable(name: string, explicit?: string): Promise<string | null> {
  if (explicit) {
    try {
      await fs.access(explicit, fsc.X_OK);
      return explicit;
    } catch {
      return null;
    }
  }
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const f = path.join(dir, name);
    try {
      await fs.access(f, fsc.X_OK);
      return f;
    } catch {
      /* next */
    }
  }
  return null;
}

/** Runs a converter reading `stdinFd` (the confined file, already open); its output as chunks. */
function runToChunks(cmd: string, args: string[], stdinFd: number, maxBytes: number, timeoutMs: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [stdinFd, 'pipe', 'pipe'], shell: false });
    const chunks: Buffer[] = [];
    let size = 0;
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new JobError(`${path.basename(cmd)} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout!.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        child.kill('SIGKILL');
        clearTimeout(timer);
        reject(new JobError(`converted file is larger than ${maxBytes} bytes (odoo.recordingMaxBytes)`));
        return;
      }
      chunks.push(c);
    });
    child.stderr!.on('data', (c: Buffer) => {
      if (err.length < 2000) err += c.toString();
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new JobError(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(chunks);
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
  const { file, stat, name } = await openConfinedFile(p, ctx.config.recordingDirs);
  let sending = false;
  try {
    if (stat.size > ctx.config.recordingMaxBytes) {
      throw new JobError(`${String(p)} is ${stat.size} bytes, more than odoo.recordingMaxBytes (${ctx.config.recordingMaxBytes})`);
    }
    const base: Record<string, unknown> = { file_path: p };
    if (kwargs.recordings_access !== undefined) base.recording_access = kwargs.recordings_access;
    if (kwargs.recordings_access_url !== undefined) base.recording_access_url = kwargs.recordings_access_url;
    if (kwargs.file_format === 'mp3' && !name.toLowerCase().endsWith('.mp3')) {
      const mp3 = await toMp3(file.fd, String(p), kwargs, ctx);
      if (mp3) return { ...base, file_data: mp3, file_name: name.replace(/\.[^.]*$/, '') + '.mp3' };
      // as the earlier agents did: the recording as it is rather than none (Odoo stores either)
    }
    await ctx.hold(STREAM_HOLD_BYTES, `sending ${String(p)}`);
    sending = true;
    return { ...base, file_data: new FileBlob(file, stat.size, String(p)), file_name: name };
  } finally {
    if (!sending) await file.close();
  }
};

/** one warning per this long that recordings go out unconverted (a busy PBX records many calls) */
const WARN_EVERY_MS = 10 * 60_000;
let lastWarnAt = -Infinity;

/**
 * The recording as mp3, with the module's parameters (`mp3_bitrate` a number or a string such as
 * "64", `mp3_quality` 2-7); null when no encoder is installed or it cannot convert this file (a
 * voicemail in GSM WAV49, say): the caller then sends the file as it is.
 */
async function toMp3(fd: number, shown: string, kwargs: Record<string, unknown>, ctx: Parameters<JobFunction>[2]): Promise<BufferBlob | null> {
  const bitrate = Number(kwargs.mp3_bitrate ?? 96);
  const quality = Number(kwargs.mp3_quality ?? 4);
  const br = Number.isFinite(bitrate) && bitrate >= 8 && bitrate <= 320 ? Math.round(bitrate) : 96;
  const q = Number.isFinite(quality) && quality >= 0 && quality <= 9 ? Math.round(quality) : 4;
  const lame = await findExecutable('lame', ctx.config.lamePath);
  const ffmpeg = lame ? null : await findExecutable('ffmpeg', ctx.config.ffmpegPath);
  const unconverted = (why: string) => {
    const now = Date.now();
    if (now - lastWarnAt >= WARN_EVERY_MS) {
      lastWarnAt = now;
      ctx.log.warn({ file: shown }, `recordings are sent to Odoo as they are, not as mp3: ${why}`);
    }
    return null;
  };
  if (!lame && !ffmpeg) return unconverted('neither lame nor ffmpeg is installed on the agent host (apt install lame; the package recommends it)');
  const max = ctx.config.recordingMaxBytes;
  const hold = await ctx.hold(max, `converting ${shown} to mp3`);
  try {
    const parts = lame
      ? await runToChunks(lame, ['--quiet', '-b', String(br), '-q', String(q), '-', '-'], fd, max, ctx.timeoutMs)
      : await runToChunks(
          ffmpeg!,
          ['-nostdin', '-loglevel', 'error', '-i', 'pipe:0', '-codec:a', 'libmp3lame', '-b:a', `${br}k`, '-q:a', String(q), '-f', 'mp3', 'pipe:1'],
          fd,
          max,
          ctx.timeoutMs,
        );
    const data = new BufferBlob(parts);
    hold.shrink(data.byteLength);
    return data;
  } catch (e) {
    hold.release();
    return unconverted(`${(e as Error).message} (${shown})`);
  }
}

export const deleteFile: JobFunction = async (args, _k, ctx) => {
  await unlinkConfinedFile(pathArg(args), ctx.config.recordingDirs);
  return true;
};
