import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AmiFramer, parseFrame, type AmiFrameDrop } from '../src/ami/index.js';
import { findTerminator } from '../src/ami/framer.js';

// The framer's fast paths (JS terminator scan, Latin-1 copy of ASCII chunks) and get()
// checked against the obvious algorithms.

function lcg(seed: number): (n: number) => number {
  return (n) => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return seed % n;
  };
}

/** Bytes drawn mostly from CR, LF and a few letters: every terminator neighbourhood shows up. */
function crlfHeavy(rnd: (n: number) => number, len: number): Buffer {
  const alphabet = [13, 10, 13, 10, 13, 10, 65, 58, 32, 0xc3, 0xa9];
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = alphabet[rnd(alphabet.length)]!;
  return b;
}

test('findTerminator agrees with Buffer#indexOf at every start and end offset on CR/LF-heavy bytes', () => {
  const rnd = lcg(7);
  const TERM = Buffer.from('\r\n\r\n');
  let found = 0;
  for (let run = 0; run < 300; run++) {
    const b = crlfHeavy(rnd, 1 + rnd(64));
    for (let from = 0; from <= b.length; from++) {
      const n = from + rnd(b.length - from + 1);
      const ref = b.subarray(0, n).indexOf(TERM, from);
      assert.equal(findTerminator(b, from, n), ref, `run ${run} from ${from} n ${n}: ${b.toString('hex')}`);
      if (ref >= 0) found++;
    }
  }
  assert.ok(found > 300, `only ${found} terminators seen`);
  // the edges: right at the start, right at the end, one byte short
  const t = Buffer.from('\r\n\r\n');
  assert.equal(findTerminator(t, 0, 4), 0);
  assert.equal(findTerminator(t, 0, 3), -1);
  assert.equal(findTerminator(t, 1, 4), -1);
  assert.equal(findTerminator(Buffer.from('\r\r\n\r\n'), 0, 5), 1);
  assert.equal(findTerminator(Buffer.from('\n\n\r\n\r\n'), 0, 6), 2);
});

interface Out {
  frames: string[];
  drops: AmiFrameDrop[];
}

function run(chunks: Buffer[], maxFrameBytes?: number): Out {
  const out: Out = { frames: [], drops: [] };
  const f = new AmiFramer({ frame: (t) => out.frames.push(t), drop: (d) => out.drops.push(d) }, { maxFrameBytes });
  for (const c of chunks) f.push(c);
  return out;
}

function reference(bytes: Buffer): string[] {
  return bytes
    .toString('utf8')
    .split('\r\n\r\n')
    .map((f) => f.replace(/^(\r\n)+/, ''))
    .filter((f, i, all) => f.length > 0 && i < all.length - 1);
}

test('UTF-8 caller names in an otherwise ASCII stream decode right, in one chunk and split at every byte', () => {
  const frames = [
    'Event: Newchannel\r\nCallerIDName: Zoë Ünal\r\nUniqueid: 1',
    'Event: InvalidPassword\r\nAccountID: 日本語\r\nRemoteAddress: IPV4/UDP/10.0.0.1/5060',
    'Event: UserEvent\r\nData: 🎉 plain',
    'Event: Hangup\r\nCause: 16',
  ];
  const bytes = Buffer.from(frames.map((f) => f + '\r\n\r\n').join(''), 'utf8');
  assert.deepEqual(run([bytes]).frames, frames);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const out = run([bytes.subarray(0, cut), bytes.subarray(cut)]);
    assert.deepEqual(out.frames, frames, `cut at ${cut}`);
  }
  assert.equal(parseFrame(run([bytes]).frames[1]!).get('AccountID'), '日本語');
});

test('an ASCII frame next to invalid UTF-8 bytes: both decoded as a per-frame UTF-8 decode would', () => {
  const ascii = Buffer.from('Event: A\r\nX: ' + 'y'.repeat(100) + '\r\n\r\n');
  const bad = Buffer.concat([Buffer.from('Event: B\r\nName: '), Buffer.from([0xff, 0xc3, 0x28, 0xe2, 0x82]), Buffer.from('\r\n\r\n')]);
  const latin1High = Buffer.concat([Buffer.from('Event: C\r\nName: '), Buffer.from([0xe9, 0xfc]), Buffer.from('\r\n\r\n')]);
  const all = Buffer.concat([ascii, bad, latin1High, ascii]);
  const want = reference(all);
  assert.equal(want.length, 4);
  assert.ok(want[1]!.includes('\ufffd'));
  assert.deepEqual(run([all]).frames, want);
  for (let cut = 0; cut <= all.length; cut++) assert.deepEqual(run([all.subarray(0, cut), all.subarray(cut)]).frames, want, `cut at ${cut}`);
});

test('random CR/LF-heavy streams in random chunks: frames and drops match the reference split', () => {
  const rnd = lcg(99);
  for (let r = 0; r < 120; r++) {
    const bytes = crlfHeavy(rnd, 50 + rnd(400));
    const want = reference(bytes);
    const chunks: Buffer[] = [];
    for (let p = 0; p < bytes.length;) {
      const n = 1 + rnd([1, 3, 8, 70, 500][r % 5]!);
      chunks.push(bytes.subarray(p, p + n));
      p += n;
    }
    const out = run(chunks);
    assert.deepEqual(out.frames, want, `run ${r}: ${bytes.toString('hex')}`);
    assert.deepEqual(out.drops, []);
  }
});

test('the bound holds on the fast path: a frame over maxFrameBytes inside one ASCII chunk is dropped, the next parses', () => {
  const big = 'Event: Big\r\nX: ' + 'x'.repeat(300) + '\r\n\r\n';
  const ok = 'Event: Ok\r\nY: 1\r\n\r\n';
  const out = run([Buffer.from(ok + big + ok)], 200);
  assert.deepEqual(out.frames, ['Event: Ok\r\nY: 1', 'Event: Ok\r\nY: 1']);
  assert.deepEqual(out.drops, [{ reason: 'oversized', bytes: big.length - 4 }]);
});

test('get() and getSingle(): the unindexed search answers exactly what the index answers, first line included', () => {
  const cases = [
    'Event: A\r\nEvent: B',
    'EventX: A\r\nEvent: B',
    'Event\r\nEvent: B',
    'Event',
    'Event:',
    'Event:x\r\nY: 1',
    'event: low\r\nEvent: up',
    'Event : spaced\r\nEvent: B',
    'Response: Success\r\nActionID: 7',
    'Eventually: no\r\nevent: yes',
    'Event\rX: lone CR\r\nEvent: B',
  ];
  for (const raw of cases) {
    const indexed = parseFrame(raw);
    void indexed.headers;
    for (const key of ['Event', 'event', 'Response', 'EventX', 'Eventually']) {
      assert.equal(parseFrame(raw).get(key), indexed.get(key), `${JSON.stringify(raw)} get ${key}`);
      assert.equal(parseFrame(raw).getSingle(key), indexed.getSingle(key), `${JSON.stringify(raw)} getSingle ${key}`);
    }
  }
  assert.equal(parseFrame('Event: A\r\nEvent: B').getSingle('Event'), null);
  assert.equal(parseFrame('Event: A\r\nevent: A').getSingle('Event'), 'A');
  assert.equal(parseFrame('Event\r\nX: 1').get('Event'), '');
});
