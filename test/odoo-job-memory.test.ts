/**
 * Memory bounds of Odoo jobs (issue 12, finding 5): concurrent recording.get_file jobs of large
 * files, the bridge in a child process with a small heap, against the fake Odoo; the job memory
 * budget (odoo.jobMemoryMaxBytes) and the request bytes bound (odoo.jobQueueMaxBytes).
 */
import { test, after } from 'node:test';
import { resolveActionPolicy } from '../src/ami/index.js';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { ByteBudget } from '../src/odoo/byte-budget.js';
import Database from 'better-sqlite3';
import { Registry } from 'prom-client';
import { JobRunner, resolveOdooConfig, startOdooBridge, type OdooConfigInput } from '../src/odoo/index.js';
import { FakeAmi, FakeBans, FakeOdoo } from './helpers/fake-odoo.js';
import type { BridgeChildReport } from './helpers/bridge-child.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'bridge-child.js');
const TOKEN = 'c0ffee00-5b2b-4c4e-9d7e-1234567890ab';
const MB = 1024 * 1024;
/** the child's heap: a quarter of what four 60 MB recordings took before (file, base64, body) */
const HEAP_MB = Number(process.env.PBXG_JOB_MEMORY_HEAP_MB ?? 128);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-job-memory-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function postJob(port: number, body: unknown): Promise<number> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
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
}

function startChild(config: OdooConfigInput): Promise<{ child: ChildProcess; port: number; exited: Promise<string> }> {
  const child = fork(CHILD, [], {
    execArgv: [`--max-old-space-size=${HEAP_MB}`],
    env: { ...process.env, PBXG_BRIDGE_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    if (stderr.length < 20_000) stderr += c.toString();
  });
  const exited = new Promise<string>((r) =>
    child.once('exit', (code, sig) => {
      const why = /FATAL ERROR.*|JavaScript heap out of memory.*/.exec(stderr)?.[0] ?? stderr.trim().slice(-600);
      r(`the bridge process died (exit ${code}, signal ${sig}): ${why}`);
    }),
  );
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve({ child, port: (m as { port: number }).port, exited }));
    void exited.then(reject);
  });
}

function report(child: ChildProcess): Promise<BridgeChildReport> {
  return new Promise((r) => {
    child.once('message', (m) => r(m as BridgeChildReport));
    child.send('report');
  });
}

test('four concurrent recording.get_file jobs of 60 MB files: the bridge survives a 128 MB heap, every file arrives intact', async () => {
  const rec = path.join(tmp, 'rec');
  fs.mkdirSync(rec);
  const FILES = 4;
  const SIZE = 60 * 1000 * 1000;
  const data = randomBytes(SIZE);
  const sums: string[] = [];
  for (let i = 0; i < FILES; i++) {
    data.writeUInt32BE(i, 0);
    fs.writeFileSync(path.join(rec, `call${i}.wav`), data);
    sums.push(createHash('sha256').update(data).digest('hex'));
  }
  const odoo = new FakeOdoo();
  // keep a digest, not 80 MB of base64, per call
  odoo.responders.set('asterisk_plus.recording.upload_recording', (c) => {
    const r = c.args[0] as Record<string, unknown>;
    if (typeof r.file_data === 'string') r.file_data = createHash('sha256').update(Buffer.from(r.file_data, 'base64')).digest('hex');
    return true;
  });
  await odoo.start();
  const { child, port, exited } = await startChild({
    url: odoo.url,
    db: odoo.db,
    user: odoo.user,
    password: odoo.password,
    agentToken: TOKEN,
    listen: { enabled: true, host: '127.0.0.1', port: 0 },
    recordingDirs: [rec],
    jobTimeoutMs: 60_000,
  });
  try {
    const before = await report(child);
    const statuses = await Promise.all(
      Array.from({ length: FILES }, (_, i) =>
        postJob(port, {
          fun: 'recording.get_file',
          args: [path.join(rec, `call${i}.wav`)],
          res_model: 'asterisk_plus.recording',
          res_method: 'upload_recording',
          pass_back: { n: i },
        }),
      ),
    );
    assert.deepEqual(statuses, Array(FILES).fill(200));
    const uploads = () => odoo.callsTo('asterisk_plus.recording', 'upload_recording');
    let died: string | null = null;
    void exited.then((m) => {
      died = m;
    });
    await odoo.waitFor(() => died !== null || uploads().length === FILES, 120_000, 'the uploads');
    assert.equal(died, null, died ?? '');
    for (const c of uploads()) {
      const r = c.args[0] as Record<string, unknown>;
      const n = c.kwargs.n as number;
      assert.equal(r.error, undefined, `job ${n}: ${String(r.error)}`);
      assert.equal(r.file_data, sums[n], `file ${n} arrived intact`);
      assert.equal(r.file_name, `call${n}.wav`);
    }
    // the daemon is still there and runs the next job
    assert.equal(await postJob(port, { fun: 'test.ping', res_model: 'm.x', res_method: 'pong' }), 200);
    await odoo.waitFor(() => odoo.callsTo('m.x', 'pong').length === 1);
    // every recording was closed once delivered
    const open = fs.readdirSync(`/proc/${child.pid}/fd`).map((fd) => {
      try {
        return fs.readlinkSync(`/proc/${child.pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    assert.deepEqual(
      open.filter((f) => f.startsWith(rec)),
      [],
    );
    const peak = await report(child);
    console.log(
      `4 x 60 MB get_file, heap limit ${HEAP_MB} MB: RSS ${Math.round(before.maxRssBytes / MB)} MB before, peak ${Math.round(peak.maxRssBytes / MB)} MB; ` +
        `peak heapUsed ${Math.round(peak.peakHeapUsedBytes / MB)} MB, peak external+arrayBuffers ${Math.round(peak.peakExternalBytes / MB)} MB`,
    );
    // less than one more copy of one file, for four files sent at once
    assert.ok(peak.maxRssBytes - before.maxRssBytes < SIZE, `peak RSS grew by ${peak.maxRssBytes - before.maxRssBytes} bytes`);
    assert.deepEqual(odoo.violations, []);
  } finally {
    child.kill('SIGKILL');
    await odoo.stop();
  }
});

function openFiles(under: string): string[] {
  return fs
    .readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((f) => f.startsWith(under));
}

test('a recording whose delivery fails is read again from the start on the retry, then closed', async () => {
  const rec = path.join(tmp, 'rec-retry');
  fs.mkdirSync(rec);
  const data = randomBytes(3 * MB + 1);
  fs.writeFileSync(path.join(rec, 'r.wav'), data);
  const odoo = new FakeOdoo();
  await odoo.start();
  odoo.mode = 'http503';
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
    stateDir: path.join(tmp, 'state-retry'),
    reloadConfig: () => undefined,
  });
  try {
    assert.equal(
      await postJob(bridge.agentAddress!.port, {
        fun: 'recording.get_file',
        args: [path.join(rec, 'r.wav')],
        res_model: 'asterisk_plus.recording',
        res_method: 'upload_recording',
      }),
      200,
    );
    await odoo.waitFor(() => bridge.jobs.counters.completed === 1, 5000, 'the job');
    assert.equal(openFiles(rec).length, 1, 'the file stays open while its delivery is retried');
    assert.ok(bridge.jobs.memory.inUse() > 0);
    odoo.mode = 'ok';
    await odoo.waitFor(() => odoo.callsTo('asterisk_plus.recording', 'upload_recording').length === 1, 20_000, 'the upload');
    const r = odoo.callsTo('asterisk_plus.recording', 'upload_recording')[0]!.args[0] as Record<string, string>;
    assert.ok(Buffer.from(r.file_data!, 'base64').equals(data), 'the retried body carries the whole file');
    await odoo.waitFor(() => openFiles(rec).length === 0 && bridge.jobs.memory.inUse() === 0, 5000, 'the file closed and the memory given back');
  } finally {
    await bridge.close();
    await odoo.stop();
  }
});

function runner(cfg: OdooConfigInput) {
  const config = resolveOdooConfig({ recordingDirs: [path.join(tmp, 'rec2')], ...cfg });
  const results: Array<{ method: string; result: unknown }> = [];
  const r = new JobRunner({
    ctx: {
      rpc: { executeKw: () => Promise.reject(new Error('no Odoo in this test')) },
      configSync: null,
      ami: new FakeAmi(),
      bans: new FakeBans(),
      config,
      log: pino({ level: 'silent' }),
      reloadConfig: () => undefined,
      reloadEvents: async () => undefined,
      actionPolicy: resolveActionPolicy(),
    },
    sink: {
      result: (_j, _m, method, result) => {
        results.push({ method, result });
      },
      notify: () => undefined,
    },
  });
  return { r, results };
}

test('an mp3 conversion reserves odoo.recordingMaxBytes of the job memory budget: a clear error when it cannot fit, the converter reads the confined file on stdin', async () => {
  const rec = path.join(tmp, 'rec2');
  fs.mkdirSync(rec);
  fs.writeFileSync(path.join(rec, 'a.wav'), 'RIFF-wave-bytes');
  // a converter that copies stdin to stdout (the real lame is given "-" "-")
  const fakeLame = path.join(tmp, 'fake-lame');
  fs.writeFileSync(fakeLame, `#!${process.execPath}\nprocess.stdin.pipe(process.stdout);\n`, { mode: 0o755 });
  const small = runner({ lamePath: fakeLame, recordingMaxBytes: 4 * MB, jobMemoryMaxBytes: 2 * MB });
  const fits = runner({ lamePath: fakeLame, recordingMaxBytes: 1 * MB, jobMemoryMaxBytes: 2 * MB });
  for (const { r } of [small, fits]) {
    r.submit({ fun: 'recording.get_file', args: [path.join(rec, 'a.wav')], kwargs: { file_format: 'mp3' }, res_model: 'm', res_method: 'mp3' });
    await r.whenIdle();
  }
  assert.match(
    String((small.results[0]!.result as Record<string, unknown>).error),
    /needs 4194304 bytes of memory, more than odoo\.jobMemoryMaxBytes \(2097152\)/,
  );
  const ok = fits.results[0]!.result as Record<string, unknown>;
  assert.equal(ok.file_name, 'a.mp3');
  assert.equal(JSON.stringify(ok.file_data), '"[15 bytes, streamed to Odoo only]"', 'a blob never serializes its bytes by accident');
  // the reservation is given back once the result is delivered
  await new Promise((r) => setImmediate(r));
  assert.equal(fits.r.memory.inUse(), 0);
});

test('odoo.jobQueueMaxBytes: job requests beyond the byte bound are refused (503), the others run', async () => {
  const { r } = runner({ jobQueueMaxBytes: 64 * 1024, jobConcurrency: 1 });
  const big = 'x'.repeat(30 * 1024);
  const out = [1, 2, 3].map(() => r.submit({ fun: 'test.ping', args: [big] }));
  assert.deepEqual(
    out.map((o) => o.ok),
    [true, true, false],
  );
  assert.equal((out[2] as { reason: string }).reason, 'queue_full');
  await r.whenIdle();
  assert.equal(r.counters.completed, 2);
  assert.equal(r.submit({ fun: 'test.ping', args: [big] }).ok, true, 'the bytes are given back when jobs end');
  await r.whenIdle();
});

test('ByteBudget: never grants more than its capacity, first come first served, a clear error when the wait ends', async () => {
  const b = new ByteBudget(100);
  const a1 = await b.acquire(60, 1000, 'job a');
  const waiting = b.acquire(50, 1000, 'job b');
  const small = b.acquire(10, 1000, 'job c');
  assert.equal(b.inUse(), 60, 'job c (fits) waits behind job b');
  a1.shrink(40);
  assert.equal(b.inUse(), 40 + 50 + 10);
  const [r2, r3] = await Promise.all([waiting, small]);
  await assert.rejects(b.acquire(101, 1000, 'huge'), /huge needs 101 bytes of memory, more than odoo\.jobMemoryMaxBytes \(100\)/);
  await assert.rejects(
    b.acquire(20, 20, 'late'),
    /late: no memory for it within 20 ms \(20 bytes needed, 100 of odoo\.jobMemoryMaxBytes=100 held by other jobs\)/,
  );
  r2.release();
  r2.release();
  r3.release();
  a1.release();
  assert.equal(b.inUse(), 0);
});
