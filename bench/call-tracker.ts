/**
 * CPU time of the fraud stage on the AMI read path, per 1000 call events (user + system, minimum
 * of the runs): the real Asterisk 22 call transcripts (an answered trunk call, an internal call,
 * unanswered and busy trunk calls: every frame, CEL and VarSet included, as a session with
 * Events: on receives them), parsed once, replayed with new channel names through FraudEngine.
 * Run: node dist/bench/call-tracker.js
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { parseFrame, splitTranscript, type AmiPort } from '../src/ami/index.js';
import { buildConfig, PACKAGE_ROOT } from '../src/config/index.js';
import { FraudEngine, MemoryBlockStore, loadDestinationPlan } from '../src/fraud/index.js';
import type { BenchResult } from './types.js';

const FILES = ['call-pjsip-international-trunk.raw', 'call-pjsip-internal-extension.raw', 'call-pjsip-trunk-no-answer.raw', 'call-pjsip-trunk-busy.raw'];
/** the shipped destination classes: what a default install classifies every call with */
const DEST = join(PACKAGE_ROOT, 'rules', 'fraud-destinations.yaml');

export async function run(opts: { calls?: number; runs?: number } = {}): Promise<BenchResult[]> {
  const calls = opts.calls ?? 2000;
  const runs = opts.runs ?? 5;
  const texts = FILES.map((f) => splitTranscript(readFileSync(join(PACKAGE_ROOT, 'test', 'fixtures', 'ami-asterisk22-calls', f))).map((x) => x.raw));
  // new channel names per call, so every call is a new one for the tracker
  const frames = [];
  for (let i = 0; i < calls; i++) {
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    for (const raw of texts[i % texts.length]!)
      frames.push(parseFrame(raw.replace(/-0000000([0-9a-f])/g, (_m, d: string) => `-${hex(i * 16 + parseInt(d, 16))}`)));
  }
  const ami: AmiPort = { action: () => Promise.reject(new Error('bench')) };
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const engine = new FraudEngine({
      config: buildConfig({ fraud: { dialingPlan: { country: '49' } } }).fraud,
      plan: loadDestinationPlan(DEST),
      rates: null,
      ami,
      store: new MemoryBlockStore(),
      bans: null,
      emit: () => {},
      logger: pino({ level: 'silent' }),
      timers: { set: () => null, clear: () => {} },
    });
    const t0 = process.cpuUsage();
    for (const f of frames) engine.handleAmiEvent(f);
    const t = process.cpuUsage(t0);
    best = Math.min(best, (t.user + t.system) / 1000);
    engine.stop();
  }
  const perK = (best / frames.length) * 1000;
  return [
    {
      name: `fraud stage CPU per 1000 AMI call events (${frames.length} frames of ${calls} real calls)`,
      value: Math.round(perK * 1000) / 1000,
      unit: 'ms CPU',
      target: '<= 5',
      ok: perK <= 5,
      note: 'every frame a session with Events: on receives (VarSet, CEL, Newexten ...), most of them one Set lookup',
    },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) for (const r of await run()) console.log(`${r.name}: ${r.value} ${r.unit} (target ${r.target})`);
