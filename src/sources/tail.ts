import { watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';

export interface TailOptions {
  path: string;
  /** complete lines appended (no line end), in order; at most one chunk's worth per call */
  onLines(lines: string[]): void;
  /** a stat every this often finds rotation, truncation and appends fs.watch missed; 0: none
   *  (the caller calls poll()) */
  pollMs?: number;
  /** fs.watch the file too, for prompt reads (default true) */
  watch?: boolean;
  /** a longer line is dropped (counted in stats.longLines) */
  maxLineBytes?: number;
  /** bytes per read: the most one onLines call covers before the event loop runs again */
  chunkBytes?: number;
  /** an error other than the file being absent (permissions, I/O) */
  onError?(err: Error): void;
}

export interface TailStats {
  /** the file is open and followed */
  following: boolean;
  bytesRead: number;
  lines: number;
  longLines: number;
  rotations: number;
  truncations: number;
  /** epoch ms of the last line read, or null */
  lastLineAt: number | null;
  /** why the file is not followed (absent, unreadable), or null */
  lastError: string | null;
}

export const DEFAULT_MAX_LINE_BYTES = 16 * 1024;
export const DEFAULT_CHUNK_BYTES = 64 * 1024;
const LF = 10;

/**
 * Follows a file like `tail -F`: starts at its end, reads what is appended, and when the file is
 * renamed away (log rotation) reads the old one to its end and opens the new one from its start;
 * when it shrinks (copytruncate), reads again from the start. Reads are asynchronous and one chunk
 * at a time, so a large append never holds the event loop; memory is the chunk buffer plus at most
 * one partial line (maxLineBytes).
 */
export class FileTail {
  readonly stats: TailStats = { following: false, bytesRead: 0, lines: 0, longLines: 0, rotations: 0, truncations: 0, lastLineAt: null, lastError: null };
  private fh: FileHandle | null = null;
  private ino = -1;
  private dev = -1;
  private pos = 0;
  private partial: Buffer[] = [];
  private partialLen = 0;
  /** inside a line that is dropped (too long, or begun before the start) until its end */
  private skipping = false;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private watcher: FSWatcher | null = null;
  private readonly buf: Buffer;
  private readonly maxLine: number;

  constructor(private readonly o: TailOptions) {
    this.buf = Buffer.alloc(o.chunkBytes ?? DEFAULT_CHUNK_BYTES);
    this.maxLine = o.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  }

  /** Opens the file at its end (what is there already is not read) and starts following it. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.serial(() => this.openAt('end'));
    const every = this.o.pollMs ?? 1000;
    if (every > 0) {
      this.timer = setInterval(() => void this.poll(), every);
      this.timer.unref();
    }
  }

  /** One look: reopen after a rotation, rewind after a truncation, read what was appended. */
  poll(): Promise<void> {
    return this.serial(() => this.pass());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    await this.close();
  }

  /** Runs one pass at a time; a call during a pass makes it look once more before it resolves. */
  private serial(fn: () => Promise<unknown>): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = async () => {
      try {
        await fn();
        while (this.again && !this.stopped) {
          this.again = false;
          await this.pass();
        }
      } catch (err) {
        this.fail(err as Error);
      } finally {
        this.running = null;
      }
    };
    this.running = run();
    return this.running;
  }

  private async pass(): Promise<void> {
    if (this.stopped) return;
    if (!this.fh && !(await this.openAt('start'))) return;
    const now = await stat(this.o.path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (now && (now.ino !== this.ino || now.dev !== this.dev)) {
      // rotated: the rest of the old file first, then the new one from its start
      await this.drain();
      await this.close();
      this.stats.rotations++;
      if (!(await this.openAt('start'))) return;
    } else if ((await this.fh!.stat()).size < this.pos) {
      this.stats.truncations++;
      this.pos = 0;
      this.resetLine(false);
    }
    await this.drain();
  }

  /** Opens the path; false when it is absent or unreadable (tried again at the next poll). */
  private async openAt(where: 'start' | 'end'): Promise<boolean> {
    let fh: FileHandle;
    try {
      fh = await open(this.o.path, 'r');
    } catch (err) {
      this.fail(err as Error);
      return false;
    }
    const st = await fh.stat();
    this.fh = fh;
    this.ino = st.ino;
    this.dev = st.dev;
    this.pos = where === 'end' ? st.size : 0;
    this.resetLine(false);
    if (where === 'end' && st.size > 0) {
      // started inside a line (being written): its rest is no line of its own
      const { bytesRead } = await fh.read(this.buf, 0, 1, st.size - 1);
      this.skipping = bytesRead === 1 && this.buf[0] !== LF;
    }
    this.stats.following = true;
    this.stats.lastError = null;
    this.watchFile();
    return true;
  }

  private watchFile(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.o.watch === false) return;
    try {
      const w = watch(this.o.path, { persistent: false }, () => void this.poll());
      w.on('error', () => {
        w.close();
        if (this.watcher === w) this.watcher = null;
      });
      this.watcher = w;
    } catch {
      // no watch (file gone again, no inotify): the periodic poll still follows it
    }
  }

  private async close(): Promise<void> {
    this.watcher?.close();
    this.watcher = null;
    const fh = this.fh;
    this.fh = null;
    this.stats.following = false;
    await fh?.close().catch(() => {});
  }

  /** Reads from the position to the current end, one chunk per turn of the event loop. */
  private async drain(): Promise<void> {
    while (this.fh && !this.stopped) {
      const { bytesRead } = await this.fh.read(this.buf, 0, this.buf.length, this.pos);
      if (bytesRead === 0) return;
      this.pos += bytesRead;
      this.stats.bytesRead += bytesRead;
      const lines = this.split(this.buf.subarray(0, bytesRead));
      if (lines.length > 0) {
        this.stats.lines += lines.length;
        this.stats.lastLineAt = Date.now();
        this.o.onLines(lines);
      }
    }
  }

  private split(chunk: Buffer): string[] {
    const out: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(LF, start); nl >= 0; nl = chunk.indexOf(LF, start)) {
      this.endLine(chunk.subarray(start, nl), out);
      start = nl + 1;
    }
    if (start < chunk.length) this.keep(chunk.subarray(start));
    return out;
  }

  private endLine(tail: Buffer, out: string[]): void {
    if (this.skipping) return this.resetLine(false);
    if (this.partialLen + tail.length > this.maxLine) {
      this.stats.longLines++;
      return this.resetLine(false);
    }
    const bytes = this.partialLen > 0 ? Buffer.concat([...this.partial, tail]) : tail;
    const text = bytes.toString('utf8');
    out.push(text.endsWith('\r') ? text.slice(0, -1) : text);
    this.resetLine(false);
  }

  /** The start of a line whose end is not written yet (copied: the read buffer is reused). */
  private keep(part: Buffer): void {
    if (this.skipping) return;
    if (this.partialLen + part.length > this.maxLine) {
      this.stats.longLines++;
      return this.resetLine(true);
    }
    this.partial.push(Buffer.from(part));
    this.partialLen += part.length;
  }

  private resetLine(skipping: boolean): void {
    this.partial = [];
    this.partialLen = 0;
    this.skipping = skipping;
  }

  private fail(err: Error & { code?: string }): void {
    this.stats.following = this.fh !== null;
    const text = err.code === 'ENOENT' ? `${this.o.path} does not exist (yet)` : `${this.o.path}: ${err.message}`;
    const fresh = this.stats.lastError !== text;
    this.stats.lastError = text;
    if (fresh && err.code !== 'ENOENT') this.o.onError?.(err);
  }
}
