/**
 * AMI decode benchmark: 1M InvalidPassword events (359 bytes each, 10k distinct remote IPs),
 * served by a local TCP server in a worker thread and written in 3.6 MB blocks, read by:
 *   1. a raw socket (bytes counted only): the ceiling;
 *   2. our AmiClient end to end (login, framing, lazy parse; the handler reads Event and RemoteAddress);
 *   3. asterisk-manager 0.2.0 (its 'managerevent', reading .event and .remoteaddress).
 * Plus the framer + lazy parse on an in-memory stream (no socket), for reference.
 *
 * Run: node dist/bench/ami-decode.js [events]
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AmiClient, AmiFrame, AmiFramer } from '../src/ami/index.js';
import type { BenchResult } from './types.js';

const FRAME_BYTES = 359;
const DISTINCT = 10000;

function frame(i: number, pad: number): string {
  const b = Math.floor(i / 100) % 100;
  const c = i % 100;
  return (
    'Event: InvalidPassword\r\n' +
    'Privilege: security,all\r\n' +
    'EventTV: 2026-11-22T10:17:12.098+0000\r\n' +
    'Severity: Error\r\n' +
    'Service: SIP\r\n' +
    'EventVersion: 2\r\n' +
    `AccountID: ${'1'.padStart(pad, '0')}\r\n` +
    'SessionID: 0x7f51fc001ec0\r\n' +
    'LocalAddress: IPV4/UDP/127.0.0.1/5060\r\n' +
    `RemoteAddress: IPV4/UDP/10.1.${100 + b}.${100 + c}/5060\r\n` +
    'Challenge: 746d9a41\r\n' +
    'ReceivedChallenge: 746d9a41\r\n' +
    'ReceivedHash: 077b03d63f0eca85f99d6d7366c54960\r\n' +
    '\r\n'
  );
}

/** 10k distinct frames of exactly 359 bytes: one 3.59 MB block. */
export function makeBlock(): Buffer {
  const base = Buffer.byteLength(frame(0, 1));
  const pad = 1 + FRAME_BYTES - base;
  if (pad < 1) throw new Error(`frame template is ${base} bytes, more than ${FRAME_BYTES}`);
  const parts: string[] = [];
  for (let i = 0; i < DISTINCT; i++) parts.push(frame(i, pad));
  const block = Buffer.from(parts.join(''), 'latin1');
  if (block.length !== FRAME_BYTES * DISTINCT) throw new Error(`block is ${block.length} bytes`);
  return block;
}

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const block = Buffer.from(workerData.block);
const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  sock.on('error', () => {});
  sock.write('Asterisk Call Manager/9.0.0\\r\\n');
  let buf = '';
  let started = false;
  sock.on('data', (d) => {
    if (started) return;
    buf += d.toString('latin1');
    const i = buf.indexOf('\\r\\n\\r\\n');
    if (i < 0) return;
    started = true;
    const m = /actionid: *([^\\r\\n]*)/i.exec(buf.slice(0, i));
    sock.write('Response: Success\\r\\n' + (m ? 'ActionID: ' + m[1] + '\\r\\n' : '') + 'Message: Authentication accepted\\r\\n\\r\\n');
    let left = workerData.blocks;
    const pump = () => {
      while (left > 0) {
        left--;
        if (!sock.write(block)) { sock.once('drain', pump); return; }
      }
    };
    pump();
  });
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
parentPort.on('message', (m) => { if (m === 'close') server.close(() => process.exit(0)); });
`;

async function withServer<T>(block: Buffer, blocks: number, fn: (port: number) => Promise<T>): Promise<T> {
  const w = new Worker(WORKER, { eval: true, workerData: { block, blocks } });
  const port = await new Promise<number>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  try {
    return await fn(port);
  } finally {
    w.postMessage('close');
    await new Promise((r) => w.once('exit', r));
  }
}

async function rawRead(port: number, events: number): Promise<number> {
  const want = events * FRAME_BYTES;
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    let got = 0;
    let header = -1;
    let t0 = 0;
    sock.on('connect', () => {
      t0 = performance.now();
      sock.write('Action: Login\r\nActionID: 1\r\nUsername: x\r\nSecret: y\r\n\r\n');
    });
    sock.on('data', (d: Buffer) => {
      got += d.length;
      if (header < 0) {
        // greeting (29) + login response (64): everything after is events
        header = 29 + 'Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n'.length;
      }
      if (got - header >= want) {
        const dt = (performance.now() - t0) / 1000;
        sock.destroy();
        resolve(events / dt);
      }
    });
    sock.on('error', reject);
  });
}

/**
 * CPU time of the calling thread in ns (Linux /proc/thread-self/schedstat: time on a CPU), or
 * undefined elsewhere. Wall time on a shared machine counts the time other processes held the
 * core; this counts only the decoding thread's own (GC helper threads excluded).
 */
function threadCpuNs(): number | undefined {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]);
  } catch {
    return undefined;
  }
}

async function ownClient(port: number, events: number): Promise<{ rate: number; cpuRate: number | undefined; sum: number }> {
  const c = new AmiClient({ host: '127.0.0.1', port, username: 'x', secret: 'y', events: 'security', pingIntervalMs: 0 });
  let n = 0;
  let sum = 0;
  let cpu1: number | undefined;
  const t0 = performance.now();
  const cpu0 = threadCpuNs();
  const done = new Promise<number>((resolve, reject) => {
    c.on('loginError', reject);
    c.on('event', (m) => {
      const ev = m.get('Event');
      const ra = m.get('RemoteAddress');
      if (ev === 'InvalidPassword' && ra !== undefined) {
        sum += ra.length;
        if (++n === events) {
          cpu1 = threadCpuNs();
          resolve(performance.now());
        }
      }
    });
  });
  c.start();
  const t1 = await done;
  await c.stop();
  const cpuRate = cpu0 !== undefined && cpu1 !== undefined && cpu1 > cpu0 ? events / ((cpu1 - cpu0) / 1e9) : undefined;
  return { rate: events / ((t1 - t0) / 1000), cpuRate, sum };
}

async function asteriskManager(port: number, events: number): Promise<{ rate: number; sum: number }> {
  const require = createRequire(import.meta.url);
  type AM = {
    on(ev: string, fn: (e: Record<string, string>) => void): void;
    disconnect(): void;
  };
  const Manager = require('asterisk-manager') as (port: number, host: string, user: string, pass: string, events: boolean) => AM;
  let n = 0;
  let sum = 0;
  const t0 = performance.now();
  let ami: AM | undefined;
  const t1 = await new Promise<number>((resolve) => {
    ami = Manager(port, '127.0.0.1', 'x', 'y', true);
    ami.on('managerevent', (e) => {
      const ev = e['event'];
      const ra = e['remoteaddress'];
      if (ev === 'InvalidPassword' && ra !== undefined) {
        sum += ra.length;
        if (++n === events) resolve(performance.now());
      }
    });
  });
  ami!.disconnect();
  return { rate: events / ((t1 - t0) / 1000), sum };
}

/** Framer + lazy parse on an in-memory stream pushed in 64 KiB chunks (no socket). */
function inMemory(block: Buffer, events: number): number {
  let n = 0;
  let sum = 0;
  const f = new AmiFramer({
    frame: (t) => {
      const m = new AmiFrame(t);
      if (m.get('Event') === 'InvalidPassword') n++;
      sum += m.get('RemoteAddress')!.length;
    },
  });
  const t0 = performance.now();
  const blocks = Math.ceil(events / DISTINCT);
  for (let b = 0; b < blocks; b++) for (let p = 0; p < block.length; p += 65536) f.push(block.subarray(p, p + 65536));
  const dt = (performance.now() - t0) / 1000;
  if (n !== blocks * DISTINCT || sum === 0) throw new Error(`in-memory decode counted ${n}`);
  return n / dt;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(opts: { events?: number; runs?: number; skipAsteriskManager?: boolean } = {}): Promise<BenchResult[]> {
  const events = Math.max(DISTINCT, Math.round((opts.events ?? 1_000_000) / DISTINCT) * DISTINCT);
  const runs = opts.runs ?? 3;
  const blocks = events / DISTINCT;
  const block = makeBlock();
  const note = `${events} events x ${FRAME_BYTES} B, ${DISTINCT} distinct IPs, 3.59 MB blocks from a worker-thread TCP server`;

  const raw: number[] = [];
  const own: number[] = [];
  const ownCpu: number[] = [];
  const mem: number[] = [];
  for (let r = 0; r < runs; r++) {
    raw.push(await withServer(block, blocks, (port) => rawRead(port, events)));
    const o = await withServer(block, blocks, (port) => ownClient(port, events));
    own.push(o.rate);
    if (o.cpuRate !== undefined) ownCpu.push(o.cpuRate);
    mem.push(inMemory(block, events));
  }
  const ownRate = median(own);
  const results: BenchResult[] = [
    { name: 'ami: raw socket read (ceiling)', value: Math.round(median(raw)), unit: 'events/s', note: `median of ${runs}; ${note}` },
    {
      name: 'ami: AmiClient end to end (Event + RemoteAddress read)',
      value: Math.round(ownRate),
      unit: 'events/s',
      target: '>= 400000',
      ok: ownRate >= 400000,
      note: `median of ${runs}`,
    },
    { name: 'ami: framer + lazy parse, in memory (no socket)', value: Math.round(median(mem)), unit: 'events/s', note: `median of ${runs}` },
  ];
  if (ownCpu.length > 0) {
    const cpuRate = median(ownCpu);
    results.splice(2, 0, {
      name: 'ami: AmiClient end to end, per CPU-second of its thread',
      value: Math.round(cpuRate),
      unit: 'events/s',
      target: '>= 2000000',
      ok: cpuRate >= 2_000_000,
      note: `median of ${ownCpu.length} (${ownCpu.map((x) => Math.round(x / 1000)).join(', ')} k); the decoding thread's own CPU time (schedstat), not the wall clock`,
    });
  }
  if (!opts.skipAsteriskManager) {
    const am = await withServer(block, blocks, (port) => asteriskManager(port, events));
    results.push({ name: 'ami: asterisk-manager 0.2.0 (same stream)', value: Math.round(am.rate), unit: 'events/s', note: '1 run' });
    const ratio = ownRate / am.rate;
    results.push({
      name: 'ami: AmiClient / asterisk-manager',
      value: Math.round(ratio * 10) / 10,
      unit: 'x',
      target: '>= 10',
      ok: ratio >= 10,
    });
  }
  return results;
}

export function printTable(results: BenchResult[]): void {
  const rows = results.map((r) => [
    r.name,
    r.value.toLocaleString('en-US'),
    r.unit,
    r.target ?? '',
    r.ok === undefined ? '' : r.ok ? 'ok' : 'MISSED',
    r.note ?? '',
  ]);
  const head = ['benchmark', 'value', 'unit', 'target', '', 'note'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 1 ? c.padStart(w[i]!) : c.padEnd(w[i]!)))
      .join('  ')
      .trimEnd();
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) console.log(line(r));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const n = process.argv[2] ? Number(process.argv[2]) : undefined;
  run({ events: n }).then(printTable, (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
