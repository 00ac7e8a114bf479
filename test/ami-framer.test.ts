import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { AmiFramer, parseFrame, parseRemoteAddress, splitTranscript, type AmiFrameDrop, type AmiFramerOptions } from '../src/ami/index.js';
import { fixturePath, readFixture } from './helpers/fixtures.js';

interface Collected {
  greeting: string[];
  frames: string[];
  drops: AmiFrameDrop[];
}

function framer(opts: AmiFramerOptions = {}): { f: AmiFramer; out: Collected } {
  const out: Collected = { greeting: [], frames: [], drops: [] };
  const f = new AmiFramer({ frame: (t) => out.frames.push(t), drop: (d) => out.drops.push(d), greeting: (l) => out.greeting.push(l) }, opts);
  return { f, out };
}

/** Reference split: the obvious (non-streaming) algorithm on the whole buffer. */
function referenceFrames(bytes: Buffer): { greeting: string; frames: string[] } {
  const text = bytes.toString('utf8');
  const nl = text.indexOf('\r\n');
  const greeting = text.slice(0, nl);
  const frames = text
    .slice(nl + 2)
    .split('\r\n\r\n')
    .filter((f) => f.length > 0);
  return { greeting, frames };
}

const full = readFixture('ami/session-recorder-full.raw');

test('session-recorder-full.raw: one-shot framing matches the reference split', () => {
  const ref = referenceFrames(full);
  const { f, out } = framer({ expectGreeting: true });
  f.push(full);
  assert.deepEqual(out.greeting, ['Asterisk Call Manager/9.0.0']);
  assert.equal(out.frames.length, ref.frames.length);
  assert.ok(out.frames.length > 50, `expected a long stream, got ${out.frames.length} frames`);
  assert.deepEqual(out.frames, ref.frames);
  assert.equal(f.bufferedBytes, 0);
});

test('session-recorder-full.raw: identical frames for EVERY 2-chunk split point', () => {
  const { f: f0, out: one } = framer({ expectGreeting: true });
  f0.push(full);
  for (let cut = 0; cut <= full.length; cut++) {
    const { f, out } = framer({ expectGreeting: true });
    f.push(full.subarray(0, cut));
    f.push(full.subarray(cut));
    if (out.frames.length !== one.frames.length || out.greeting[0] !== one.greeting[0]) {
      assert.fail(`split at ${cut}: ${out.frames.length} frames, greeting ${out.greeting[0]}`);
    }
    for (let i = 0; i < out.frames.length; i++) {
      if (out.frames[i] !== one.frames[i]) assert.fail(`split at ${cut}: frame ${i} differs`);
    }
  }
});

test('session-recorder-full.raw: identical frames for random multi-chunk splits (incl. 1-byte chunks)', () => {
  const { f: f0, out: one } = framer({ expectGreeting: true });
  f0.push(full);
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let run = 0; run < 200; run++) {
    const { f, out } = framer({ expectGreeting: true });
    const maxChunk = [1, 2, 3, 4, 5, 7, 64, 500, 4096][run % 9]!;
    let p = 0;
    while (p < full.length) {
      const n = 1 + rnd(maxChunk);
      f.push(full.subarray(p, p + n));
      p += n;
    }
    assert.deepEqual(out.greeting, one.greeting);
    assert.deepEqual(out.frames, one.frames, `run ${run} (chunks <= ${maxChunk})`);
  }
  // every byte on its own
  const { f, out } = framer({ expectGreeting: true });
  for (let i = 0; i < full.length; i++) f.push(full.subarray(i, i + 1));
  assert.deepEqual(out.frames, one.frames);
});

test('a multibyte UTF-8 character split across chunks is decoded once, correctly', () => {
  const frame = 'Event: UserEvent\r\nCallerIDName: Zoë Ünal 日本語 🎉\r\nData: é\r\n\r\n';
  const bytes = Buffer.from(frame, 'utf8');
  const start = bytes.indexOf(Buffer.from('ë'));
  const emoji = bytes.indexOf(Buffer.from('🎉'));
  for (const cut of [start + 1, emoji + 1, emoji + 2, emoji + 3, bytes.length - 5]) {
    const { f, out } = framer();
    f.push(bytes.subarray(0, cut));
    f.push(bytes.subarray(cut));
    assert.equal(out.frames.length, 1);
    assert.equal(parseFrame(out.frames[0]!).get('CallerIDName'), 'Zoë Ünal 日本語 🎉', `cut ${cut}`);
    assert.equal(parseFrame(out.frames[0]!).get('Data'), 'é');
  }
});

test('split inside the terminator at each of its positions', () => {
  const bytes = Buffer.from('Event: A\r\nX: 1\r\n\r\nEvent: B\r\n\r\n');
  const t = bytes.indexOf('\r\n\r\n');
  for (let k = 0; k <= 4; k++) {
    const { f, out } = framer();
    f.push(bytes.subarray(0, t + k));
    f.push(bytes.subarray(t + k));
    assert.deepEqual(out.frames, ['Event: A\r\nX: 1', 'Event: B'], `cut at terminator+${k}`);
  }
  // three chunks around the terminator
  const { f, out } = framer();
  f.push(bytes.subarray(0, t + 1));
  f.push(bytes.subarray(t + 1, t + 2));
  f.push(bytes.subarray(t + 2, t + 3));
  f.push(bytes.subarray(t + 3));
  assert.deepEqual(out.frames, ['Event: A\r\nX: 1', 'Event: B']);
});

test('oversized: 2 MiB of headers in one frame is dropped once, and the next frame parses', () => {
  const line = 'Output: ' + 'x'.repeat(56) + '\r\n'; // 66 bytes
  const big = Buffer.from('Response: Success\r\n' + line.repeat(Math.ceil((2 * 1048576) / line.length)) + '\r\n');
  const next = readFixture('ami/security-ami-invalid-password.raw');
  for (const chunkSize of [65536, 7000, big.length + next.length]) {
    const { f, out } = framer();
    const all = Buffer.concat([big, next]);
    for (let p = 0; p < all.length; p += chunkSize) f.push(all.subarray(p, p + chunkSize));
    assert.equal(out.drops.length, 1, `one drop (chunk ${chunkSize})`);
    assert.equal(out.drops[0]!.reason, 'oversized');
    assert.ok(out.drops[0]!.bytes > 1048576);
    assert.equal(out.frames.length, 1);
    assert.equal(parseFrame(out.frames[0]!).get('Event'), 'InvalidPassword');
    assert.ok(f.bufferedBytes <= 1048576);
  }
});

test('oversized: 2 MiB with no terminator is skipped without buffering, then parsing resumes', () => {
  const { f, out } = framer();
  const junk = Buffer.alloc(65536, 'A'.charCodeAt(0));
  let maxHeld = 0;
  for (let i = 0; i < 32; i++) {
    f.push(junk);
    maxHeld = Math.max(maxHeld, f.bufferedBytes);
  }
  assert.equal(out.drops.length, 1);
  assert.equal(out.drops[0]!.reason, 'oversized');
  assert.ok(f.isSkipping);
  assert.ok(maxHeld <= 1048576, `held at most ${maxHeld} bytes`);
  assert.equal(f.bufferedBytes, 0, 'skipped bytes are not buffered');
  // the terminator of the junk frame, split across chunks, then a real frame
  f.push(Buffer.from('AAAA\r\n\r'));
  f.push(Buffer.from('\nEvent: After\r\nRemoteAddress: IPV4/UDP/127.0.0.2/5062\r\n\r\n'));
  assert.equal(out.drops.length, 1);
  assert.equal(out.frames.length, 1);
  assert.equal(parseFrame(out.frames[0]!).get('Event'), 'After');
});

test('too many headers: dropped with reason too-many-headers, next frame parses', () => {
  const { f, out } = framer({ maxHeaders: 100 });
  f.push(Buffer.from('Event: Big\r\n' + 'K: v\r\n'.repeat(200) + '\r\nEvent: Small\r\nA: b\r\n\r\n'));
  assert.deepEqual(out.drops, [{ reason: 'too-many-headers', bytes: 12 + 6 * 200 - 2 }]);
  assert.deepEqual(out.frames, ['Event: Small\r\nA: b']);
  // exactly at the limit is accepted
  const { f: g, out: o2 } = framer({ maxHeaders: 100 });
  g.push(Buffer.from('Event: Ok\r\n' + 'K: v\r\n'.repeat(99) + '\r\n'));
  assert.equal(o2.drops.length, 0);
  assert.equal(parseFrame(o2.frames[0]!).getAll('K').length, 99);
});

test('a frame of exactly maxFrameBytes is accepted, one byte more is dropped', () => {
  const body = (n: number) => 'Event: X\r\nD: ' + 'y'.repeat(n - 13);
  for (const [n, dropped] of [
    [1000, false],
    [1001, true],
  ] as const) {
    const { f, out } = framer({ maxFrameBytes: 1000 });
    const b = Buffer.from(body(n) + '\r\n\r\nEvent: Next\r\n\r\n');
    assert.equal(Buffer.byteLength(body(n)), n);
    f.push(b.subarray(0, 500));
    f.push(b.subarray(500));
    assert.equal(out.drops.length, dropped ? 1 : 0, `size ${n}`);
    assert.equal(out.frames.at(-1), 'Event: Next');
  }
});

test('duplicate keys kept in order (Command Output lines) and colon values kept whole', () => {
  const frames = splitTranscript(readFixture('ami/action-command-core-show-channels.raw'));
  assert.equal(frames.length, 1);
  const m = frames[0]!.message;
  assert.deepEqual(m.getAll('Output'), [
    'Channel                                                          Location                         State   Application(Data)             ',
    '0 active channels',
    '0 active calls',
    '0 calls processed',
  ]);
  assert.equal(m.get('Message'), 'Command output follows');
  const peers = splitTranscript(readFixture('ami/action-command-sip-show-peers.raw'))[0]!.message;
  assert.equal(peers.getAll('output').length, 3, 'case-insensitive');
  assert.equal(peers.getAll('Output')[2], '1 sip peers [Monitored: 0 online, 0 offline Unmonitored: 1 online, 0 offline]');
  // a value with colons, from the real stream
  const bad = splitTranscript(readFixture('ami/security-ami-request-not-allowed.raw'))[0]!.message;
  assert.equal(bad.get('RequestType'), 'Action: Command');
  assert.equal(bad.get('EventTV')?.startsWith('2026-11-22T'), true);
  const ts = splitTranscript(readFixture('ami/security-ami-invalid-password-timestamp-systemname.raw'))[0]!.message;
  assert.equal(ts.get('EventTV'), ts.toObject()['EventTV']);
  assert.match(ts.get('EventTV')!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$/);
});

test('parser edge cases: no colon, empty value, colon without space, hostile keys', () => {
  const m = parseFrame('Event: Weird\r\nNoColonHere\r\nEmpty:\r\nTight:value\r\nA: b: c\r\n__proto__: x\r\nconstructor: y\r\nhasOwnProperty: z\r\nA: second');
  assert.equal(m.get('NoColonHere'), '');
  assert.equal(m.get('Empty'), '');
  assert.equal(m.get('Tight'), 'value');
  assert.equal(m.get('A'), 'b: c');
  assert.deepEqual(m.getAll('a'), ['b: c', 'second']);
  assert.equal(m.get('__proto__'), 'x');
  assert.equal(m.get('constructor'), 'y');
  assert.equal(m.get('missing'), undefined);
  assert.deepEqual(m.getAll('missing'), []);
  const o = m.toObject();
  assert.equal(Object.getPrototypeOf(o), null);
  assert.equal(o['__proto__'], 'x');
  assert.equal(o['constructor'], 'y');
  assert.equal(o['hasOwnProperty'], 'z');
  assert.equal(o['A'], 'b: c', 'first value wins');
  assert.equal(({} as Record<string, unknown>)['x'], undefined, 'Object.prototype untouched');
  assert.deepEqual(m.headers[1], ['NoColonHere', '']);
  assert.equal(m.headers.length, 9);
  // colon-less lines in bulk: the header after them is still found (how long that takes, and
  // that it grows linearly, is the `worst-case` benchmark's row, not a timed assertion here)
  const many = parseFrame('Event: X\r\n' + 'nocolon\r\n'.repeat(50000) + 'Last: one');
  assert.equal(many.get('Last'), 'one');
});

// Expected per security fixture: [Event, Service, family, transport, address, port] of every security event.
const SECURITY_EVENTS = new Set([
  'InvalidPassword',
  'ChallengeResponseFailed',
  'FailedACL',
  'InvalidAccountID',
  'SuccessfulAuth',
  'ChallengeSent',
  'RequestBadFormat',
  'RequestNotAllowed',
  'RequestNotSupported',
]);
type Row = [string, 'AMI' | 'SIP', 4 | 6, string, string, number];
const EXPECTED: Record<string, Row[]> = {
  'security-ami-challenge-response-failed.raw': [['ChallengeResponseFailed', 'AMI', 4, 'TCP', '127.0.0.2', 35155]],
  'security-ami-failed-acl-ipv6-not-covered.raw': [['SuccessfulAuth', 'AMI', 6, 'TCP', '::1', 42383]],
  'security-ami-failed-acl.raw': [['FailedACL', 'AMI', 4, 'TCP', '127.0.0.2', 36827]],
  'security-ami-invalid-account.raw': [['InvalidAccountID', 'AMI', 4, 'TCP', '127.0.0.2', 41359]],
  'security-ami-invalid-password-bindaddr-any.raw': [['InvalidPassword', 'AMI', 4, 'TCP', '127.0.0.2', 43183]],
  'security-ami-invalid-password-ipv6.raw': [['InvalidPassword', 'AMI', 6, 'TCP', '::1', 46311]],
  'security-ami-invalid-password-timestamp-systemname.raw': [['InvalidPassword', 'AMI', 4, 'TCP', '127.0.0.2', 45599]],
  'security-ami-invalid-password.raw': [['InvalidPassword', 'AMI', 4, 'TCP', '127.0.0.2', 33281]],
  'security-ami-request-bad-format.raw': [
    ['SuccessfulAuth', 'AMI', 4, 'TCP', '127.0.0.2', 36091],
    ['RequestBadFormat', 'AMI', 4, 'TCP', '127.0.0.2', 36091],
  ],
  'security-ami-request-not-allowed.raw': [['RequestNotAllowed', 'AMI', 4, 'TCP', '127.0.0.2', 40431]],
  'security-sip-invite-no-extension.raw': [
    ['ChallengeSent', 'SIP', 4, 'UDP', '127.0.0.2', 5062],
    ['FailedACL', 'SIP', 4, 'UDP', '127.0.0.2', 5062],
  ],
  'security-sip-invite-unknown-no-alwaysauthreject.raw': [['InvalidPassword', 'SIP', 4, 'UDP', '127.0.0.2', 5062]],
  'security-sip-invite-unknown.raw': [
    ['ChallengeSent', 'SIP', 4, 'UDP', '127.0.0.2', 5062],
    ['InvalidPassword', 'SIP', 4, 'UDP', '127.0.0.2', 5062],
  ],
  'security-sip-register-acl-denied.raw': [
    ['FailedACL', 'SIP', 4, 'UDP', '127.0.0.2', 46094],
    ['FailedACL', 'SIP', 4, 'UDP', '127.0.0.2', 46094],
  ],
  'security-sip-register-success.raw': [
    ['ChallengeSent', 'SIP', 4, 'UDP', '127.0.0.2', 57580],
    ['SuccessfulAuth', 'SIP', 4, 'UDP', '127.0.0.2', 57580],
  ],
  'security-sip-register-unknown-peer-no-alwaysauthreject.raw': [['InvalidAccountID', 'SIP', 4, 'UDP', '127.0.0.2', 42216]],
  'security-sip-register-unknown-peer.raw': [
    ['ChallengeSent', 'SIP', 4, 'UDP', '127.0.0.2', 54761],
    ['InvalidPassword', 'SIP', 4, 'UDP', '127.0.0.2', 54761],
  ],
  'security-sip-register-username-mismatch.raw': [
    ['ChallengeSent', 'SIP', 4, 'UDP', '127.0.0.2', 32981],
    ['ChallengeResponseFailed', 'SIP', 4, 'UDP', '127.0.0.2', 32981],
  ],
  'security-sip-register-wrong-password-bindaddr-any.raw': [
    ['ChallengeSent', 'SIP', 4, 'UDP', '127.0.0.2', 38324],
    ['InvalidPassword', 'SIP', 4, 'UDP', '127.0.0.2', 38324],
  ],
  'security-sip-register-wrong-password-ipv6.raw': [
    ['ChallengeSent', 'SIP', 6, 'UDP', '::1', 60036],
    ['InvalidPassword', 'SIP', 6, 'UDP', '::1', 60036],
  ],
  'security-sip-register-wrong-password-no-alwaysauthreject.raw': [
    ['ChallengeSent', 'SIP', 4, 'UDP', '127.0.0.2', 44519],
    ['InvalidPassword', 'SIP', 4, 'UDP', '127.0.0.2', 44519],
  ],
  'security-sip-register-wrong-password-tcp.raw': [
    ['ChallengeSent', 'SIP', 4, 'TCP', '127.0.0.2', 56925],
    ['InvalidPassword', 'SIP', 4, 'TCP', '127.0.0.2', 56925],
  ],
  'security-sip-register-wrong-password.raw': [
    ['ChallengeSent', 'SIP', 4, 'UDP', '127.0.0.2', 36778],
    ['InvalidPassword', 'SIP', 4, 'UDP', '127.0.0.2', 36778],
  ],
};

test('every security-*.raw fixture: security events parse and RemoteAddress gives the right address', () => {
  const files = readdirSync(fixturePath('ami')).filter((f) => /^security-.*\.raw$/.test(f) && !/\.(client|request)\.raw$/.test(f));
  assert.deepEqual(files.sort(), Object.keys(EXPECTED).sort(), 'the table covers every security fixture');
  for (const file of files) {
    const got: Row[] = [];
    for (const { message: m } of splitTranscript(readFixture(`ami/${file}`))) {
      const ev = m.get('Event');
      if (ev === undefined || !SECURITY_EVENTS.has(ev)) continue;
      assert.equal(m.get('Privilege'), 'security,all', file);
      const ra = parseRemoteAddress(m.get('RemoteAddress')!);
      assert.ok(ra, `${file}: RemoteAddress ${m.get('RemoteAddress')} parses`);
      assert.ok(parseRemoteAddress(m.get('LocalAddress')!), `${file}: LocalAddress parses`);
      got.push([ev, m.get('Service') as 'AMI' | 'SIP', ra.family, ra.transport!, ra.address, ra.port!]);
    }
    assert.deepEqual(got, EXPECTED[file], file);
  }
});

test('parseRemoteAddress: formats, validation, garbage', () => {
  assert.deepEqual(parseRemoteAddress('IPV4/UDP/127.0.0.2/5062'), { family: 4, transport: 'UDP', address: '127.0.0.2', port: 5062 });
  assert.deepEqual(parseRemoteAddress('IPV6/UDP/::1/60036'), { family: 6, transport: 'UDP', address: '::1', port: 60036 });
  assert.deepEqual(parseRemoteAddress('IPV6/TCP/::/5038'), { family: 6, transport: 'TCP', address: '::', port: 5038 });
  assert.deepEqual(parseRemoteAddress('IPV6/UDP/2001:db8::1/5060'), { family: 6, transport: 'UDP', address: '2001:db8::1', port: 5060 });
  assert.deepEqual(parseRemoteAddress('IPV6/WSS/fe80::1%eth0/8089'), { family: 6, transport: 'WSS', address: 'fe80::1', scope: 'eth0', port: 8089 });
  assert.deepEqual(parseRemoteAddress('IPV4/10.0.0.1/5060'), { family: 4, address: '10.0.0.1', port: 5060 }, 'no transport');
  assert.deepEqual(parseRemoteAddress('IPV6/TLS/::ffff:192.0.2.7/5061'), { family: 4, transport: 'TLS', address: '192.0.2.7', port: 5061 });
  assert.deepEqual(parseRemoteAddress('127.0.0.2'), { family: 4, address: '127.0.0.2' });
  assert.deepEqual(parseRemoteAddress('::1'), { family: 6, address: '::1' });
  assert.deepEqual(parseRemoteAddress('[2001:DB8::2]'), { family: 6, address: '2001:db8::2' });
  for (const bad of [
    '',
    'garbage',
    'IPV4/UDP/999.0.0.1/5060',
    'IPV4/UDP/::1/5060',
    'IPV6/UDP/127.0.0.1/5060',
    'IPV4/FOO/1.2.3.4/5060',
    'IPV4/UDP/1.2.3.4/70000',
    'IPV4/UDP/1.2.3.4/x',
    'IPV7/UDP/1.2.3.4/1',
    'IPV4/UDP/1.2.3.4',
    'a/b/c/d/e',
    'IPV4/UDP/1.2.3.4%eth0/5060',
    'IPV6/UDP/fe80::1%/5060',
    'x'.repeat(10000),
    'IPV4/UDP/1.2.3.4/5060\r\nEvil: 1',
  ]) {
    assert.equal(parseRemoteAddress(bad), null, JSON.stringify(bad.slice(0, 40)));
  }
  assert.equal(parseRemoteAddress(undefined as unknown as string), null);
  assert.equal(parseRemoteAddress(42 as unknown as string), null);
});

test('splitTranscript skips the greeting and reports drops', () => {
  const frames = splitTranscript(readFixture('ami/login-success.client.raw'));
  assert.deepEqual(
    frames.map((f) => f.message.get('Response') ?? f.message.get('Event')),
    ['Success', 'FullyBooted', 'SuccessfulAuth'],
  );
  const drops: AmiFrameDrop[] = [];
  const out = splitTranscript('Event: A\r\n' + 'x'.repeat(2000) + '\r\n\r\nEvent: B\r\n\r\n', { maxFrameBytes: 1000, onDrop: (d) => drops.push(d) });
  assert.equal(drops.length, 1);
  assert.deepEqual(
    out.map((f) => f.raw),
    ['Event: B'],
  );
});

test('get(): the unindexed fast path and the indexed path agree on every header of every fixture', () => {
  const files = readdirSync(fixturePath('ami')).filter((f) => f.endsWith('.raw'));
  let checked = 0;
  for (const file of files) {
    for (const { raw } of splitTranscript(readFixture(`ami/${file}`))) {
      const indexed = parseFrame(raw);
      const pairs = indexed.headers; // builds the index
      for (const [k] of pairs) {
        for (const key of [k, k.toLowerCase(), k.toUpperCase()]) {
          assert.equal(parseFrame(raw).get(key), indexed.get(key), `${file}: ${key}`);
        }
        checked++;
      }
    }
  }
  assert.ok(checked > 1000);
  // mixed-case duplicates: the first line wins on both paths
  const raw = 'event: first\r\nEvent: second\r\nKeyOnly\r\nX:\r\nY: \r\nY: two';
  const idx = parseFrame(raw);
  void idx.headers;
  for (const m of [parseFrame(raw), idx]) {
    assert.equal(m.get('Event'), 'first');
    assert.equal(m.get('EVENT'), 'first');
    assert.equal(m.get('KeyOnly'), '');
    assert.equal(m.get('Key'), undefined);
    assert.equal(m.get('X'), '');
    assert.equal(m.get('Y'), '');
    assert.equal(m.get('Even'), undefined);
    assert.equal(m.get('vent'), undefined);
  }
  assert.equal(parseFrame('\r\nEvent: x').get('Event'), 'x');
});
