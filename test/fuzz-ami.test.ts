/**
 * Property tests of the AMI framer/parser (AmiFramer + AmiFrame) with fast-check, fixed seeds.
 * - any split of a real recorded transcript gives the same frames as one push;
 * - random bytes never throw, and the framer holds at most maxFrameBytes (+ the chunk) bytes;
 * - frames over the limit are dropped and parsing resumes with the next frame.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import fc from 'fast-check';
import { AmiFrame, AmiFramer, MAX_GREETING_BYTES, splitTranscript } from '../src/ami/index.js';
import { fixturePath, readFixture } from './helpers/fixtures.js';

const SEED = 20261122;
const transcripts = readdirSync(fixturePath('ami'))
  .filter((f) => f.endsWith('.raw'))
  .sort();

/** Cuts `buf` at the given (sorted, deduplicated) offsets. */
function cut(buf: Buffer, points: number[]): Buffer[] {
  const cuts = [...new Set(points.map((p) => p % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}

function frameAll(chunks: Buffer[], expectGreeting: boolean, maxFrameBytes?: number) {
  const frames: string[] = [];
  const drops: string[] = [];
  let greeting: string | undefined;
  const f = new AmiFramer(
    { frame: (t) => frames.push(t), drop: (d) => drops.push(d.reason), greeting: (l) => (greeting = l) },
    { expectGreeting, ...(maxFrameBytes ? { maxFrameBytes } : {}) },
  );
  for (const c of chunks) f.push(Buffer.from(c)); // copies: the framer may keep references
  return { frames, drops, greeting, framer: f };
}

test('fuzz AMI framer: random splits of every recorded transcript give identical frames and headers', (t) => {
  let runs = 0;
  let frameCount = 0;
  const bufs = transcripts.map((name) => ({ name, buf: readFixture(`ami/${name}`) }));
  fc.assert(
    fc.property(fc.integer({ min: 0, max: bufs.length - 1 }), fc.array(fc.nat(), { maxLength: 40 }), (i, points) => {
      runs++;
      const { name, buf } = bufs[i]!;
      const greeting = buf.subarray(0, 22).toString('latin1') === 'Asterisk Call Manager/';
      const want = splitTranscript(buf).map((f) => f.raw);
      const got = frameAll(cut(buf, points), greeting);
      assert.deepEqual(got.frames, want, name);
      assert.deepEqual(got.drops, []);
      for (let k = 0; k < want.length; k++) {
        assert.deepEqual(new AmiFrame(got.frames[k]!).headers, new AmiFrame(want[k]!).headers);
      }
      frameCount += want.length;
    }),
    { seed: SEED, numRuns: 600 },
  );
  // one-byte chunks, every transcript, once
  for (const { name, buf } of bufs) {
    const greeting = buf.subarray(0, 22).toString('latin1') === 'Asterisk Call Manager/';
    const bytes = Array.from({ length: buf.length }, (_, k) => buf.subarray(k, k + 1));
    assert.deepEqual(
      frameAll(bytes, greeting).frames,
      splitTranscript(buf).map((f) => f.raw),
      `${name} byte by byte`,
    );
  }
  t.diagnostic(`${runs} random splits (${frameCount} frames compared) + ${bufs.length} transcripts byte by byte`);
});

test('fuzz AMI framer: random bytes never throw; held bytes stay bounded; frames stay under the limit', (t) => {
  let runs = 0;
  let maxHeld = 0;
  const noise = fc.oneof(
    fc.uint8Array({ maxLength: 3000 }),
    // AMI-ish: lines, CRLFs, colons, stray terminators, invalid UTF-8
    fc
      .array(
        fc.constantFrom('\r\n', '\r\n\r\n', '\r', '\n', ':', ' ', 'Event: X', 'Response: Success', 'ActionID: 1', '\u00ff', '\u{1F600}', 'a'.repeat(300)),
        { maxLength: 200 },
      )
      .map((parts) => Buffer.from(parts.join(''), 'utf8')),
    fc.array(fc.constantFrom(0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x0d, 0x0a, 0x3a, 0x41), { maxLength: 2000 }).map((a) => Buffer.from(a)),
  );
  fc.assert(
    fc.property(
      noise,
      fc.array(fc.nat(), { maxLength: 30 }),
      fc.integer({ min: 16, max: 512 }),
      fc.boolean(),
      fc.integer({ min: 1, max: 64 }),
      (bytes, points, max, greet, maxHeaders) => {
        runs++;
        const frames: string[] = [];
        const f = new AmiFramer(
          { frame: (x) => frames.push(x), drop: () => undefined, greeting: () => undefined },
          { maxFrameBytes: max, maxHeaders, expectGreeting: greet },
        );
        for (const c of cut(Buffer.from(bytes), points)) {
          f.push(Buffer.from(c));
          const bound = (greet ? Math.max(max, MAX_GREETING_BYTES) : max) + c.length;
          maxHeld = Math.max(maxHeld, f.bufferedBytes);
          assert.ok(f.bufferedBytes <= bound, `held ${f.bufferedBytes} > ${bound}`);
        }
        for (const fr of frames) {
          assert.ok(Buffer.byteLength(fr, 'utf8') <= max * 3, 'frame within the limit (UTF-8 replacement chars may expand)');
          assert.ok(fr.length <= max, `frame of ${fr.length} chars > maxFrameBytes ${max}`);
          const m = new AmiFrame(fr);
          assert.ok(m.headerCount <= maxHeaders, 'no frame with more headers than maxHeaders');
          m.get('Event');
          m.getAll('Output');
          m.toObject();
        }
      },
    ),
    { seed: SEED + 1, numRuns: 1500 },
  );
  t.diagnostic(`${runs} random byte streams; largest held ${maxHeld} bytes`);
});

test('fuzz AMI framer: oversized / too-many-header frames are dropped and parsing resumes at the next frame', (t) => {
  let runs = 0;
  let dropped = 0;
  const MAX = 200;
  const frameSpec = fc.record({ kind: fc.constantFrom('ok', 'ok', 'big', 'hdrs'), n: fc.integer({ min: 1, max: 2000 }) });
  fc.assert(
    fc.property(fc.array(frameSpec, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (specs, points) => {
      runs++;
      const want: string[] = [];
      let wantDrops = 0;
      const text = specs
        .map((s, i) => {
          let fr: string;
          if (s.kind === 'ok') {
            fr = `Event: E${i}\r\nN: ${s.n % 100}`;
            want.push(fr);
          } else if (s.kind === 'big') {
            fr = `Event: Big${i}\r\nData: ${'x'.repeat(MAX + s.n)}`;
            wantDrops++;
          } else {
            fr = `Event: H${i}` + '\r\nA'.repeat(10 + (s.n % 50)); // > maxHeaders 8 lines, short
            wantDrops++;
          }
          return fr + '\r\n\r\n';
        })
        .join('');
      const frames: string[] = [];
      const drops: string[] = [];
      const f = new AmiFramer({ frame: (x) => frames.push(x), drop: (d) => drops.push(d.reason) }, { maxFrameBytes: MAX, maxHeaders: 8 });
      for (const c of cut(Buffer.from(text), points)) f.push(Buffer.from(c));
      assert.deepEqual(frames, want);
      assert.equal(drops.length, wantDrops);
      assert.equal(f.isSkipping, false);
      assert.equal(f.bufferedBytes, 0);
      dropped += wantDrops;
    }),
    { seed: SEED + 2, numRuns: 800 },
  );
  t.diagnostic(`${runs} streams; ${dropped} oversized/too-many-header frames dropped, every other frame kept in order`);
});
