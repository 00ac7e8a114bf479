/**
 * The security-log source end to end: 200k chan_sip InvalidPassword lines (distinct addresses,
 * 76 MiB) appended at once to a followed file, read by the tailer (src/sources/tail.ts), parsed
 * and counted by the guard. Reports lines/s and the longest event-loop gap while it reads (the
 * tailer reads 64 KiB per turn: a large append must not hold the loop).
 * Run: node dist/bench/security-log.js
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { PACKAGE_ROOT } from '../src/config/index.js';
import { Guardian, loadRulesDir } from '../src/guard/index.js';
import { FileTail, SecurityLogSource } from '../src/sources/index.js';
import { MemoryBanStore } from '../src/store/memory.js';
import type { BenchResult } from './types.js';

const N = 200_000;
const addr = (i: number) => `${10 + ((i >>> 16) & 0x7f)}.${(i >>> 8) & 255}.${i & 255}.${1 + (i % 250)}`;
const line = (i: number) =>
  `[Nov 22 10:17:12] SECURITY[3223] res_security_log.c: SecurityEvent="InvalidPassword",EventTV="2026-11-22T10:17:12.098+0000",Severity="Error",Service="SIP",EventVersion="2",AccountID="100",SessionID="0x7f51fc001ec0",LocalAddress="IPV4/UDP/127.0.0.1/5060",RemoteAddress="IPV4/UDP/${addr(i)}/36778",Challenge="746d9a41",ReceivedChallenge="746d9a41",ReceivedHash="077b03d63f0eca85f99d6d7366c54960"`;

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'pbxg-bench-seclog-'));
  const path = join(dir, 'security');
  try {
    const guardian = new Guardian(
      {
        rules: loadRulesDir(join(PACKAGE_ROOT, 'rules')),
        allow: [],
        automaticAllow: [],
        ipv6Prefix: 64,
        maxTracked: 1_000_000,
        trackTtlSec: 43200,
        escalation: { factor: 2, maxSec: 86400, lookbackSec: 86400 },
        recidive: null,
        host: { addresses: () => [] },
      },
      new MemoryBanStore(),
      { ban: async () => {}, unban: async () => {}, setAllow: async () => {} },
      pino({ level: 'silent' }),
    );
    const source = new SecurityLogSource(guardian, 'always', () => false);
    const tail = new FileTail({ path, pollMs: 0, watch: false, onLines: (l) => source.handleLines(l) });
    await tail.start(); // absent: read from its start once it appears
    const text = Array.from({ length: N }, (_, i) => line(i)).join('\n') + '\n';
    writeFileSync(path, text);
    let maxGap = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 1);
    const t0 = performance.now();
    await tail.poll();
    const ms = performance.now() - t0;
    clearInterval(ticker);
    await tail.stop();
    const mb = (text.length / 1048576).toFixed(0);
    return [
      {
        name: 'security log: lines read, parsed and counted',
        value: Math.round(N / (ms / 1000)),
        unit: 'lines/s',
        note: `${N} lines (${mb} MiB) appended at once; ${((ms * 1000) / N).toFixed(2)} µs/line; ${source.counts.observed} observed, ${guardian.status().totalFailed} failures counted`,
      },
      {
        name: 'security log: longest event-loop gap while reading',
        value: Number(maxGap.toFixed(1)),
        unit: 'ms',
        note: 'a 1 ms timer, during the read of the whole append',
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of await run()) console.log(`${r.name}: ${r.value} ${r.unit} (${r.note})`);
}
