/**
 * recording.get_file with the module's mp3 parameters, through the real `lame` from Debian (the
 * package recommends it; .ci/run installs it): a recording as Asterisk's MixMonitor writes it
 * (RIFF WAVE, 16-bit signed linear, 8 kHz, mono) is converted; a file lame cannot read (a voicemail
 * in GSM WAV49) goes to Odoo as it is.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startOdooBridge } from '../src/odoo/index.js';
import { FakeOdoo, FakeAmi, FakeBans } from './helpers/fake-odoo.js';

const TOKEN = 'mp3-test-token-0123456789abcdef';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-mp3-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** `seconds` of a two-tone call at 8 kHz, 16-bit mono, in a canonical 44-byte RIFF header. */
function slin8kWav(seconds: number): Buffer {
  const rate = 8000;
  const n = rate * seconds;
  const pcm = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    pcm.writeInt16LE(Math.round(8000 * Math.sin(2 * Math.PI * 440 * t) + 4000 * Math.sin(2 * Math.PI * 1209 * t)), i * 2);
  }
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + pcm.length, 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([h, pcm]);
}

/** MPEG audio frames: bitrate (kbps) and sample rate of each; MPEG-2.5 layer III tables. */
function mp3Frames(b: Buffer): Array<{ kbps: number; rate: number }> {
  const kbps25 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
  const frames: Array<{ kbps: number; rate: number }> = [];
  let i = 0;
  if (b.subarray(0, 3).toString() === 'ID3') i = 10 + ((b[6]! << 21) | (b[7]! << 14) | (b[8]! << 7) | b[9]!);
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff || (b[i + 1]! & 0xe0) !== 0xe0) break;
    const version = (b[i + 1]! >> 3) & 3; // 0: MPEG-2.5
    const kbps = kbps25[(b[i + 2]! >> 4) & 15]!;
    const rate = [11025, 12000, 8000][(b[i + 2]! >> 2) & 3]!;
    const pad = (b[i + 2]! >> 1) & 1;
    assert.equal(version, 0, 'an 8 kHz recording stays 8 kHz (MPEG-2.5)');
    frames.push({ kbps, rate });
    i += Math.floor((72 * kbps * 1000) / rate) + pad;
  }
  return frames;
}

test('recording.get_file converts a MixMonitor wav with the module\'s parameters (mp3_bitrate 64 or "64", mp3_quality 4); an unreadable one is sent as it is', async () => {
  assert.ok(fs.existsSync('/usr/bin/lame'), 'lame is installed (apt install lame; .ci/run installs it)');
  const rec = path.join(tmp, 'monitor');
  fs.mkdirSync(path.join(rec, '2026/12/02'), { recursive: true });
  const wav = path.join(rec, '2026/12/02/1796191368.20.wav');
  fs.writeFileSync(wav, slin8kWav(3));
  // what Asterisk's voicemail writes as WAV49 is GSM in a RIFF wrapper; lame cannot read it
  const vm = path.join(rec, 'msg0001.WAV');
  fs.writeFileSync(
    vm,
    Buffer.concat([Buffer.from('RIFF\x00\x10\x00\x00WAVEfmt \x14\x00\x00\x00\x31\x00\x01\x00\x40\x1f\x00\x00', 'latin1'), Buffer.alloc(4096, 0x5a)]),
  );
  const odoo = new FakeOdoo();
  await odoo.start();
  const bridge = await startOdooBridge({
    config: {
      url: odoo.url,
      db: odoo.db,
      user: odoo.user,
      password: odoo.password,
      agentToken: TOKEN,
      listen: { enabled: true, host: '127.0.0.1', port: 0 },
      recordingDirs: [rec],
    },
    ami: new FakeAmi(),
    bans: new FakeBans(),
    db: new Database(':memory:'),
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    stateDir: path.join(tmp, 'state'),
    reloadConfig: () => undefined,
  });
  const post = (body: unknown) =>
    new Promise<number>((resolve, reject) => {
      const data = JSON.stringify(body);
      const req = https.request(
        {
          host: '127.0.0.1',
          port: bridge.agentAddress!.port,
          path: '/app/asterisk_plus/agent',
          method: 'POST',
          rejectUnauthorized: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'x-token': TOKEN },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  try {
    // the module's own kwargs: get_all_recording_data sends an int, update_mvm_duration the setting's string
    const job = (method: string, file: string, bitrate: unknown) => ({
      fun: 'recording.get_file',
      args: file,
      kwargs: {
        recordings_access: 'local',
        recordings_access_url: 'http://localhost:8088/static/monitor/',
        file_format: 'mp3',
        mp3_bitrate: bitrate,
        mp3_quality: 4,
      },
      res_model: 'asterisk_plus.recording',
      res_method: method,
      pass_back: { call_id: 1, file_path: file },
    });
    assert.equal(await post(job('upload_recording', wav, 64)), 200);
    assert.equal(await post(job('upload_recording_str', wav, '64')), 200);
    assert.equal(await post(job('upload_voicemail', vm, '64')), 200);
    await odoo.waitFor(() => odoo.calls.filter((c) => c.model === 'asterisk_plus.recording').length === 3, 20_000, 'three uploads');
    for (const m of ['upload_recording', 'upload_recording_str']) {
      const r = odoo.callsTo('asterisk_plus.recording', m)[0]!.args[0] as Record<string, string>;
      assert.equal(r.error, undefined, m);
      assert.equal(r.file_name, '1796191368.20.mp3');
      assert.equal(r.recording_access, 'local');
      const mp3 = Buffer.from(r.file_data!, 'base64');
      const frames = mp3Frames(mp3);
      assert.ok(frames.length > 0, 'MPEG frames');
      assert.ok(
        frames.every((f) => f.kbps === 64 && f.rate === 8000),
        `${m}: 64 kbps at 8 kHz (${JSON.stringify(frames.slice(0, 2))})`,
      );
      const seconds = (frames.length * 576) / 8000;
      assert.ok(seconds >= 2.9 && seconds <= 3.3, `${m}: ${seconds} s of audio for 3 s recorded`);
      assert.ok(mp3.length < fs.statSync(wav).size / 1.8, 'half the wav: 64 kbps for 128 kbps of 8 kHz 16-bit');
    }
    const v = odoo.callsTo('asterisk_plus.recording', 'upload_voicemail')[0]!.args[0] as Record<string, string>;
    assert.equal(v.error, undefined);
    assert.equal(v.file_name, 'msg0001.WAV', 'sent as it is');
    assert.deepEqual(Buffer.from(v.file_data!, 'base64'), fs.readFileSync(vm));
  } finally {
    await bridge.close();
    await odoo.stop();
  }
});
