/**
 * JSON request bodies to Odoo with file data streamed into them. A recording travels as base64
 * inside the JSON-RPC body; building that as one string keeps the file, its base64 and the body
 * in memory at once (about 4x the file, per job). A Base64Blob is a value of the result that
 * jsonBody() leaves out of the string and writes base64-encoded, chunk by chunk, from its source
 * (an open file or the converter's output) while the request is sent. A retry reads it again.
 */
import { randomUUID } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';

/** raw bytes read per chunk: a multiple of 3, so each chunk's base64 has no padding inside */
const CHUNK = 3 * 16 * 1024;

export abstract class Base64Blob {
  abstract readonly byteLength: number;
  /** the raw bytes, from the start (each call reads anew) */
  abstract chunks(): AsyncIterable<Buffer>;
  /** frees the source (closes the file); idempotent */
  abstract close(): Promise<void>;

  get encodedLength(): number {
    return 4 * Math.ceil(this.byteLength / 3);
  }

  async *base64(): AsyncIterable<string> {
    let carry = Buffer.alloc(0);
    for await (const c of this.chunks()) {
      const buf = carry.length ? Buffer.concat([carry, c]) : c;
      const whole = buf.length - (buf.length % 3);
      if (whole) yield buf.subarray(0, whole).toString('base64');
      carry = Buffer.from(buf.subarray(whole));
    }
    if (carry.length) yield carry.toString('base64');
  }

  /** What JSON.stringify shows of a blob outside jsonBody() (logs, the outbox): never its bytes. */
  toJSON(): string {
    return `[${this.byteLength} bytes, streamed to Odoo only]`;
  }
}

/** An open regular file of known size (the size taken when it was opened and checked). */
export class FileBlob extends Base64Blob {
  private closed = false;
  constructor(
    private readonly file: FileHandle,
    readonly byteLength: number,
    private readonly shown: string,
  ) {
    super();
  }

  async *chunks(): AsyncIterable<Buffer> {
    let pos = 0;
    while (pos < this.byteLength) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, this.byteLength - pos));
      const { bytesRead } = await this.file.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) throw new Error(`${this.shown} shrank while being sent (${pos} of ${this.byteLength} bytes)`);
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.file.close().catch(() => undefined);
  }
}

/** Bytes already in memory (a converter's output), kept as the chunks that arrived. */
export class BufferBlob extends Base64Blob {
  readonly byteLength: number;
  constructor(private parts: Buffer[]) {
    super();
    this.byteLength = parts.reduce((n, b) => n + b.length, 0);
  }
  async *chunks(): AsyncIterable<Buffer> {
    yield* this.parts;
  }
  async close(): Promise<void> {
    this.parts = [];
  }
}

/** Every blob among the top-level values of a job result (where get_file puts its file_data). */
export function blobsOf(result: unknown): Base64Blob[] {
  if (result instanceof Base64Blob) return [result];
  if (!result || typeof result !== 'object') return [];
  return Object.values(result).filter((v): v is Base64Blob => v instanceof Base64Blob);
}

export interface JsonBody {
  /** bytes of the whole body (the content-length) */
  readonly length: number;
  /** the body when it holds no blob (sent in one write) */
  readonly text: string | null;
  /** writes the body and ends `out`; rejects when `out` fails or a blob cannot be read */
  writeTo(out: Writable): Promise<void>;
}

/** JSON.stringify(value), with every Base64Blob in it written as a base64 string while sending. */
export function jsonBody(value: unknown): JsonBody {
  const blobs: Base64Blob[] = [];
  const tag = `pbxg-blob-${randomUUID()}-`;
  const text = JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    const raw = this[key];
    if (raw instanceof Base64Blob) {
      blobs.push(raw);
      return tag + (blobs.length - 1);
    }
    return v;
  });
  if (blobs.length === 0)
    return {
      length: Buffer.byteLength(text),
      text,
      writeTo: async (out) => {
        out.end(text);
      },
    };
  // the tag holds a random UUID: text from Odoo or a caller cannot fake a blob reference
  const pieces = text.split(new RegExp(`"${tag}(\\d+)"`));
  let length = 0;
  pieces.forEach((s, i) => {
    length += i % 2 ? blobs[Number(s)]!.encodedLength + 2 : Buffer.byteLength(s);
  });
  return {
    length,
    text: null,
    async writeTo(out) {
      for (let i = 0; i < pieces.length; i++) {
        if (i % 2 === 0) {
          await write(out, pieces[i]!);
          continue;
        }
        await write(out, '"');
        for await (const s of blobs[Number(pieces[i])]!.base64()) await write(out, s);
        await write(out, '"');
      }
      out.end();
    },
  };
}

function write(out: Writable, s: string): Promise<void> {
  if (out.destroyed) return Promise.reject(new Error('the request was aborted'));
  if (out.write(s)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      out.off('drain', ok);
      out.off('close', closed);
      out.off('error', done);
      if (err) reject(err);
      else resolve();
    };
    const ok = () => done();
    const closed = () => done(new Error('the request was closed'));
    out.on('drain', ok);
    out.on('close', closed);
    out.on('error', done);
  });
}
