/**
 * Odoo bridge benchmark.
 *   1. events forwarded/s to a fake Odoo (separate process) answering at once, and with 20 ms latency;
 *   2. jobs accepted/s on the HTTPS job endpoint, from a keep-alive client loop in a child process
 *      (p50 / p99 accept latency);
 *   3. outbox drain rate after an outage (events written while Odoo is down, then Odoo comes back).
 *
 * Run: node dist/bench/odoo.js
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startOdooBridge, type OdooBridge, type OdooConfigInput } from '../src/odoo/index.js';
import { FakeOdoo, FakeAmi, FakeBans, amiMessage } from '../test/helpers/fake-odoo.js';
import type { BenchResult } from './types.js';

const SELF = fileURLToPath(import.meta.url);
const TOKEN = 'bench-token-0123456789';
const MAP = [
  {
    id: 1,
    name: 'Newchannel',
    source: 'AMI',
    model: 'asterisk_plus.channel',
    method: 'on_ami_new_channel',
    delay: 0,
    condition: "not event['Channel'].startswith('Local/')",
  },
];

// ------------------------------------------------------------------ child modes

async function childFakeOdoo(port: number, latency: number): Promise<void> {
  const odoo = new FakeOdoo({ eventsMap: MAP });
  odoo.latencyMs = latency;
  await odoo.start(port);
  // keep memory flat: forget recorded calls, report counts
  setInterval(() => {
    odoo.calls.length = 0;
  }, 1000).unref();
  process.send!({ url: odoo.url, violations: odoo.violations.length });
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'stop') void odoo.stop().then(() => process.exit(0));
  });
}

async function childJobClient(port: number, durationMs: number, concurrency: number): Promise<void> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: concurrency, rejectUnauthorized: false });
  const body = JSON.stringify({ fun: 'test.ping', args: [], kwargs: {}, res_model: null, res_method: null, pass_back: null });
  const lat: number[] = [];
  let ok = 0;
  let other = 0;
  const end = performance.now() + durationMs;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          path: '/app/asterisk_plus/agent',
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-token': TOKEN },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            lat.push(performance.now() - t0);
            if (res.statusCode === 200) ok++;
            else other++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        other++;
        resolve();
      });
      req.end(body);
    });
  // warm-up
  await Promise.all(Array.from({ length: concurrency }, () => one()));
  lat.length = 0;
  ok = 0;
  other = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? 0;
  process.send!({ ok, other, secs, p50: q(0.5), p99: q(0.99) });
  agent.destroy();
  process.exit(0);
}

// ------------------------------------------------------------------ helpers

function startFake(port: number, latency: number): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(SELF, ['--fake-odoo', String(port), String(latency)], { stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { url: string }) => resolve({ child, url: m.url }));
    child.once('error', reject);
  });
}

async function stopFake(child: ChildProcess): Promise<void> {
  child.send({ cmd: 'stop' });
  await new Promise((r) => child.once('exit', r));
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function bridgeFor(url: string, dir: string, cfg: OdooConfigInput = {}): Promise<{ bridge: OdooBridge; db: Database.Database }> {
  const db = new Database(path.join(dir, `bench-${Math.random().toString(36).slice(2)}.sqlite`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const fo = new FakeOdoo();
  const bridge = await startOdooBridge({
    config: { url, db: fo.db, user: fo.user, password: fo.password, agentToken: TOKEN, listen: { enabled: false }, systemName: 'bench', ...cfg },
    ami: new FakeAmi(),
    bans: new FakeBans(),
    db,
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    stateDir: dir,
    reloadConfig: () => undefined,
  });
  return { bridge, db };
}

const events = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    amiMessage([
      ['Event', 'Newchannel'],
      ['Privilege', 'call,all'],
      ['Channel', `PJSIP/${i % 500}-${i}`],
      ['ChannelState', '4'],
      ['ChannelStateDesc', 'Ring'],
      ['CallerIDNum', '100'],
      ['Exten', '200'],
      ['Context', 'from-internal'],
      ['Uniqueid', `1700000000.${i}`],
      ['Linkedid', `1700000000.${i}`],
    ]),
  );

async function waitMap(b: OdooBridge): Promise<void> {
  for (let i = 0; i < 500 && !b.forwarder.hasMap(); i++) await new Promise((r) => setTimeout(r, 10));
}

async function forwardRate(latency: number, n: number, dir: string): Promise<{ rate: number; handleUs: number }> {
  const port = await freePort();
  const { child, url } = await startFake(port, latency);
  const { bridge, db } = await bridgeFor(url, dir, { eventMemoryMax: n + 1000 });
  try {
    await waitMap(bridge);
    const evs = events(n);
    const base = bridge.forwarder.counters.forwarded;
    const t0 = performance.now();
    for (const e of evs) bridge.handleAmiEvent(e);
    const handleUs = ((performance.now() - t0) * 1000) / n;
    while (bridge.forwarder.counters.forwarded - base < n) await new Promise((r) => setTimeout(r, 5));
    const secs = (performance.now() - t0) / 1000;
    return { rate: n / secs, handleUs };
  } finally {
    await bridge.close();
    db.close();
    await stopFake(child);
  }
}

async function drainRate(latency: number, n: number, dir: string): Promise<{ rate: number; written: number }> {
  const port = await freePort();
  const { bridge, db } = await bridgeFor(`http://127.0.0.1:${port}`, dir, { rpcRetries: 0 });
  try {
    // the events map comes from the cache, as after a restart during an outage
    bridge.forwarder.setEventsMap(MAP);
    for (const e of events(n)) bridge.handleAmiEvent(e);
    while (bridge.status().events.outbox < n) await new Promise((r) => setTimeout(r, 10));
    const written = bridge.status().events.outbox;
    const { child } = await startFake(port, latency);
    const t0 = performance.now();
    const base = bridge.forwarder.counters.forwarded;
    while (bridge.forwarder.counters.forwarded - base < n) await new Promise((r) => setTimeout(r, 5));
    const secs = (performance.now() - t0) / 1000;
    await bridge.close();
    await stopFake(child);
    return { rate: n / secs, written };
  } finally {
    await bridge.close();
    db.close();
  }
}

async function jobRate(
  dir: string,
  durationMs: number,
  concurrency: number,
): Promise<{ rate: number; p50: number; p99: number; ok: number; other: number; cpuUs: number }> {
  const fo = new FakeOdoo();
  await fo.start();
  const db = new Database(':memory:');
  const bridge = await startOdooBridge({
    config: {
      url: fo.url,
      db: fo.db,
      user: fo.user,
      password: fo.password,
      agentToken: TOKEN,
      listen: { enabled: true, host: '127.0.0.1', port: 0 },
      jobQueueMax: 100_000,
    },
    ami: new FakeAmi(),
    bans: new FakeBans(),
    db,
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    stateDir: dir,
    reloadConfig: () => undefined,
  });
  try {
    const child = fork(SELF, ['--job-client', String(bridge.agentAddress!.port), String(durationMs), String(concurrency)], { stdio: 'inherit' });
    const cpu0 = process.cpuUsage();
    const r = await new Promise<{ ok: number; other: number; secs: number; p50: number; p99: number }>((resolve) =>
      child.once('message', resolve as (m: unknown) => void),
    );
    const cpu = process.cpuUsage(cpu0);
    // server-side CPU per accepted job (includes the warm-up requests: an upper bound)
    const cpuUs = (cpu.user + cpu.system) / Math.max(1, r.ok);
    return { rate: r.ok / r.secs, p50: r.p50, p99: r.p99, ok: r.ok, other: r.other, cpuUs };
  } finally {
    await bridge.close();
    await fo.stop();
  }
}

export async function run(only?: string): Promise<BenchResult[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbxg-bench-odoo-'));
  const out: BenchResult[] = [];
  try {
    if (only === 'jobs') {
      const j = await jobRate(dir, 5000, Number(process.env.BENCH_CONC ?? 8));
      out.push({ name: 'jobs accepted on the HTTPS endpoint', value: Math.round(j.rate), unit: 'jobs/s', target: '>= 5000', ok: j.rate >= 5000 });
      out.push({ name: 'job accept latency p99', value: Number(j.p99.toFixed(2)), unit: 'ms', target: '< 10', ok: j.p99 < 10 });
      out.push({ name: 'server CPU per accepted job', value: Math.round(j.cpuUs), unit: 'µs' });
      return out;
    }
    const f0 = await forwardRate(0, 20_000, dir);
    out.push({
      name: 'odoo events forwarded (Odoo answers at once)',
      value: Math.round(f0.rate),
      unit: 'events/s',
      note: '20k Newchannel, distinct calls, fake Odoo in a child process',
    });
    const f20 = await forwardRate(20, 20_000, dir);
    out.push({
      name: 'odoo events forwarded (Odoo 20 ms per call)',
      value: Math.round(f20.rate),
      unit: 'events/s',
      target: '>= 2000',
      ok: f20.rate >= 2000,
      note: `eventConcurrency 64 lanes`,
    });
    out.push({
      name: 'handleAmiEvent cost, mapped event with condition',
      value: Number(f0.handleUs.toFixed(2)),
      unit: 'µs/event',
      note: 'synchronous part on the AMI path',
    });
    const conc = Number(process.env.BENCH_CONC ?? 8);
    const j = await jobRate(dir, 5000, conc);
    out.push({
      name: 'jobs accepted on the HTTPS endpoint',
      value: Math.round(j.rate),
      unit: 'jobs/s',
      target: '>= 5000',
      ok: j.rate >= 5000,
      note: `test.ping, ${conc} keep-alive connections from a child process; ${j.other} non-200`,
    });
    out.push({ name: 'job accept latency p50', value: Number(j.p50.toFixed(2)), unit: 'ms' });
    out.push({ name: 'job accept latency p99', value: Number(j.p99.toFixed(2)), unit: 'ms', target: '< 10', ok: j.p99 < 10 });
    out.push({
      name: 'server CPU per accepted job',
      value: Math.round(j.cpuUs),
      unit: 'µs',
      note: `capacity ~${Math.round(1e6 / j.cpuUs)} jobs/s per core when the client is elsewhere`,
    });
    const d0 = await drainRate(0, 20_000, dir);
    out.push({
      name: 'outbox drain after outage (Odoo answers at once)',
      value: Math.round(d0.rate),
      unit: 'rows/s',
      note: `${d0.written} rows written during the outage`,
    });
    const d20 = await drainRate(20, 10_000, dir);
    out.push({ name: 'outbox drain after outage (Odoo 20 ms per call)', value: Math.round(d20.rate), unit: 'rows/s', note: `${d20.written} rows` });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

const argv = process.argv.slice(2);
if (argv[0] === '--fake-odoo') {
  void childFakeOdoo(Number(argv[1]), Number(argv[2]));
} else if (argv[0] === '--job-client') {
  void childJobClient(Number(argv[1]), Number(argv[2]), Number(argv[3]));
} else if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  const rows = await run(argv[0] === '--only' ? argv[1] : undefined);
  console.table(
    rows.map((r) => ({
      name: r.name,
      value: r.value,
      unit: r.unit,
      target: r.target ?? '',
      ok: r.ok === undefined ? '' : r.ok ? 'yes' : 'NO',
      note: r.note ?? '',
    })),
  );
  process.exit(0);
}
