/**
 * Fraud-stage test parts: an AMI peer stand-in that records every action as the bytes AmiClient
 * would write (buildAction) and answers with real response frames from the fixtures; timers run
 * by hand; a replay of a transcript's frames with a clock.
 */
import pino from 'pino';
import { buildAction, parseFrame, splitTranscript, type AmiActionFields, type AmiPort, type AmiResponse } from '../../src/ami/index.js';
import type { GuardianEvent } from '../../src/guard/index.js';
import { join } from 'node:path';
import { buildConfig } from '../../src/config/index.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { FraudEngine, loadDestinationPlan, type BlockStorePort, type FraudConfig, type Timers } from '../../src/fraud/index.js';
import { readFixture, readFixtureText } from './fixtures.js';

export const CALLS = 'ami-asterisk22-calls';

/** the shipped destination classes (rules/fraud-destinations.yaml, with their cited sources): what a default install classifies with */
export const SHIPPED_DESTINATIONS = join(PACKAGE_ROOT, 'rules', 'fraud-destinations.yaml');

/** the last frame of a fixture (a response), without its ActionID */
export function responseFrom(file: string): string {
  const frames = readFixtureText(`${CALLS}/${file}`)
    .split('\r\n\r\n')
    .filter((f) => f.trim() !== '');
  return frames.at(-1)!;
}
export const HANGUP_OK = responseFrom('action-hangup-fraud-call-exact.client.raw');
export const DBPUT_OK = readFixtureText(`${CALLS}/action-dbput-guardian.raw`).split('\r\n\r\n')[0]!;
export const DBDEL_OK = responseFrom('action-dbdel-guardian.raw');
export const REFUSED = responseFrom('action-dbget-guardian-missing.raw');

export class WireAmi implements AmiPort {
  /** every action as written on the wire */
  readonly wire: string[] = [];
  private n = 0;
  constructor(
    public answer: (fields: AmiActionFields, nth: number) => string | Error = (f) =>
      f.Action === 'Hangup' ? HANGUP_OK : f.Action === 'DBDel' ? DBDEL_OK : DBPUT_OK,
  ) {}
  action(fields: AmiActionFields): Promise<AmiResponse> {
    const id = `g-${++this.n}`;
    this.wire.push(buildAction(fields, id));
    const a = this.answer(fields, this.wire.filter((w) => w.startsWith(`Action: ${String(fields.Action)}\r\n`)).length);
    if (a instanceof Error) return Promise.reject(a);
    return Promise.resolve({ response: parseFrame(a.replace(/ActionID: [^\r]*\r\n/, `ActionID: ${id}\r\n`)), events: [] });
  }
  /** the actions named `name`, each as its header dict (ActionID left out) */
  sent(name: string): Array<Record<string, string>> {
    return this.wire
      .filter((w) => w.startsWith(`Action: ${name}\r\n`))
      .map((w) =>
        Object.fromEntries(
          w
            .trim()
            .split('\r\n')
            .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)])
            .filter(([k]) => k !== 'ActionID'),
        ),
      );
  }
}

export class ManualTimers implements Timers {
  private seq = 0;
  readonly due = new Map<number, { fn: () => void; ms: number }>();
  set(fn: () => void, ms: number): unknown {
    this.due.set(++this.seq, { fn, ms });
    return this.seq;
  }
  clear(h: unknown): void {
    this.due.delete(h as number);
  }
  /** runs what is scheduled now (not what those schedule) */
  runAll(): number {
    const now = [...this.due];
    this.due.clear();
    for (const [, t] of now) t.fn();
    return now.length;
  }
}

export const settle = () => new Promise((r) => setImmediate(r));

export function fraudConfig(over: Record<string, unknown> = {}): FraudConfig {
  return buildConfig({ fraud: { dialingPlan: { country: '49' }, ...over } }).fraud;
}

export interface Rig {
  engine: FraudEngine;
  ami: WireAmi;
  timers: ManualTimers;
  events: GuardianEvent[];
  clock: { now: number };
}

export function rig(
  store: BlockStorePort,
  cfg: FraudConfig = fraudConfig(),
  ami = new WireAmi(),
  bans: ConstructorParameters<typeof FraudEngine>[0]['bans'] = null,
  extra: Partial<Pick<ConstructorParameters<typeof FraudEngine>[0], 'plan' | 'logger' | 'rates'>> = {},
): Rig {
  const timers = new ManualTimers();
  const events: GuardianEvent[] = [];
  const clock = { now: Date.parse('2026-12-02T06:36:00Z') };
  const engine = new FraudEngine({
    config: cfg,
    plan: extra.plan ?? loadDestinationPlan(SHIPPED_DESTINATIONS),
    rates: extra.rates ?? null,
    ami,
    store,
    bans,
    emit: (ev) => events.push(ev),
    logger: extra.logger ?? pino({ level: 'silent' }),
    now: () => clock.now,
    timers,
  });
  return { engine, ami, timers, events, clock };
}

/** Feeds a transcript's frames to the engine, the clock advancing `stepMs` per frame. */
export function replay(r: Rig, file: string, stepMs = 4): number {
  let n = 0;
  for (const f of splitTranscript(readFixture(`${CALLS}/${file}`))) {
    r.clock.now += stepMs;
    r.engine.handleAmiEvent(f.message);
    n++;
  }
  return n;
}

/** the header values of every event `name` in a fixture */
export function fixtureValues(file: string, event: string, key: string): string[] {
  return splitTranscript(readFixture(`${CALLS}/${file}`))
    .filter((f) => f.message.get('Event') === event)
    .map((f) => f.message.get(key)!);
}

/** One row of the Odoo events map for a guardian event (asterisk_plus.security.<method>). */
export const securityEventRow = (id: number, name: string, method: string) => ({
  id,
  name,
  source: 'AMI',
  model: 'asterisk_plus.security',
  method,
  delay: 0,
  is_enabled: true,
  condition: false,
});
