/**
 * CPU time per security event through the AMI source into Guardian.observe (user + system, minimum of 7 runs of
 * 100k events): wall-clock rates swing several-fold on a shared machine, CPU time much less, so
 * this is the figure to compare two builds with (run it in each checkout, one after the other).
 *   - SIP InvalidPassword from 100k distinct addresses (a new key per event);
 *   - PJSIP wrong-password attempts (ChallengeSent + ChallengeResponseFailed, a Call-ID each),
 *     25k addresses × 2 attempts: the attempt merge's path (src/guard/attempt.ts);
 *   - the same with the account memory on (src/accounts as the guard's AccountEvidence, 1,000
 *     office addresses with successes): an attacker with none costs one Map miss per failure.
 * Run: node dist/bench/guard-cpu.js
 */
import pino from 'pino';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFrame, type AmiFrame } from '../src/ami/index.js';
import { PACKAGE_ROOT } from '../src/config/index.js';
import { Guardian, loadRulesDir } from '../src/guard/index.js';
import { MemoryBanStore } from '../src/store/memory.js';
import { amiObserver } from '../src/sources/index.js';
import type { BenchResult } from './types.js';
import { AccountMemory } from '../src/accounts/index.js';
import { defaultAccountAware } from '../src/guard/index.js';
import { parseNetwork } from '../src/net/ip.js';

const N = 100_000;
const RUNS = 7;
const addr = (i: number) => `${10 + ((i >>> 16) & 0x7f)}.${(i >>> 8) & 255}.${i & 255}.${1 + (i % 250)}`;
const sip = (i: number) =>
  [
    'Event: InvalidPassword',
    'Privilege: security,all',
    'Severity: Error',
    'Service: SIP',
    'EventVersion: 2',
    'AccountID: 100',
    'SessionID: 0x7f51fc001ec0',
    'LocalAddress: IPV4/UDP/127.0.0.1/5060',
    `RemoteAddress: IPV4/UDP/${addr(i)}/36778`,
  ].join('\r\n');
const pjsip = (i: number, event: string, severity: string, round: number) =>
  [
    `Event: ${event}`,
    'Privilege: security,all',
    `Severity: ${severity}`,
    'Service: PJSIP',
    'EventVersion: 1',
    'AccountID: 100',
    `SessionID: cid${i}-${round}`,
    'LocalAddress: IPV4/UDP/192.0.2.1/5060',
    `RemoteAddress: IPV4/UDP/${addr(i)}/5060`,
  ].join('\r\n');

function guardian(clock: () => number): Guardian {
  return new Guardian(
    {
      rules: loadRulesDir(join(PACKAGE_ROOT, 'rules')),
      allow: [],
      automaticAllow: ['127.0.0.0/8'],
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
    clock,
  );
}

/** µs of CPU per event, frames parsed beforehand (the lazy parse still runs in the AMI source) */
function cpuPerEvent(texts: string[], withAccounts = false): number {
  let clock = 1_796_190_000_000;
  const g = guardian(() => clock);
  if (withAccounts) g.setAccountEvidence(officeMemory(clock), defaultAccountAware);
  const observe = amiObserver(g, () => clock);
  const frames: AmiFrame[] = texts.map(parseFrame);
  const c0 = process.cpuUsage();
  for (const f of frames) {
    clock += 1;
    observe(f);
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / frames.length;
}

/** 1,000 offices (198.18.x.y, outside the attackers' 10-137.x range), 3 phones each */
function officeMemory(now: number): AccountMemory {
  const m = new AccountMemory({
    maxAccounts: 10_000,
    maxNetworks: 16,
    maxAgents: 8,
    forgetAfterMs: 90 * 86400_000,
    recentSuccessMs: 7200_000,
    maxAddresses: 20_000,
  });
  for (let i = 0; i < 1000; i++) for (let p = 0; p < 3; p++) m.success(parseNetwork(`198.18.${i >> 8}.${i & 255}`)!, `${i}-${p}`, now);
  return m;
}

export async function run(): Promise<BenchResult[]> {
  const sipTexts = Array.from({ length: N }, (_, i) => sip(i));
  const pjsipTexts: string[] = [];
  for (let r = 0; r < 2; r++)
    for (let i = 0; i < N / 4; i++) pjsipTexts.push(pjsip(i, 'ChallengeSent', 'Informational', r), pjsip(i, 'ChallengeResponseFailed', 'Error', r));
  const s: number[] = [];
  const p: number[] = [];
  const a: number[] = [];
  for (let k = 0; k < RUNS; k++) {
    s.push(cpuPerEvent(sipTexts));
    p.push(cpuPerEvent(pjsipTexts));
    a.push(cpuPerEvent(pjsipTexts, true));
  }
  return [
    { name: 'guard: CPU per event, SIP from distinct addresses', value: Number(Math.min(...s).toFixed(2)), unit: 'µs', note: `min of ${RUNS} × ${N} events` },
    { name: 'guard: CPU per event, PJSIP wrong-password attempts', value: Number(Math.min(...p).toFixed(2)), unit: 'µs', note: `min of ${RUNS} × ${N} events` },
    {
      name: 'guard: CPU per event, PJSIP wrong-password attempts, account memory on',
      value: Number(Math.min(...a).toFixed(2)),
      unit: 'µs',
      note: `min of ${RUNS} × ${N} events; 1,000 office addresses with successes`,
    },
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of await run()) console.log(`${r.name}: ${r.value} ${r.unit} (${r.note})`);
}
