/**
 * The Asterisk 22 captures (test/fixtures/ami-asterisk22-pjsip/): each frame of `<name>.raw` with
 * its receive time from `<name>.times`, and paced replays built from those real frames.
 */
import { parseFrame, type AmiFrame } from '../../src/ami/index.js';
import { readFixtureText } from './fixtures.js';

export interface CapturedFrame {
  /** receive time, epoch ms */
  at: number;
  text: string;
  frame: AmiFrame;
}

const DIR = 'ami-asterisk22-pjsip';

/** Every frame of a capture after the greeting line, with its time. */
export function loadCapture(name: string): CapturedFrame[] {
  const raw = readFixtureText(`${DIR}/${name}.raw`);
  const body = raw.slice(raw.indexOf('\r\n') + 2);
  const texts = body.split('\r\n\r\n').filter((t) => t.trim() !== '');
  const times = readFixtureText(`${DIR}/${name}.times`)
    .trim()
    .split('\n')
    .map((l) => Number(l.split(' ')[0]));
  if (times.length !== texts.length) throw new Error(`${name}: ${texts.length} frames but ${times.length} times`);
  return texts.map((text, i) => ({ at: times[i]!, text, frame: parseFrame(text) }));
}

/** The security events from `address` (RemoteAddress contains it). */
export function eventsFrom(frames: CapturedFrame[], address: string): CapturedFrame[] {
  return frames.filter((f) => f.frame.get('Privilege')?.startsWith('security') && (f.frame.get('RemoteAddress') ?? '').includes(`/${address}/`));
}

/** The attempts of a capture: PJSIP frames grouped by SessionID (each attempt has its own Call-ID
 *  there), other services one event per attempt. */
export function attemptsOf(frames: CapturedFrame[]): CapturedFrame[][] {
  const out: CapturedFrame[][] = [];
  const bySession = new Map<string, CapturedFrame[]>();
  for (const f of frames) {
    if (f.frame.get('Service') !== 'PJSIP') {
      out.push([f]);
      continue;
    }
    const id = f.frame.get('SessionID') ?? '';
    let group = bySession.get(id);
    if (!group) {
      group = [];
      bySession.set(id, group);
      out.push(group);
    }
    group.push(f);
  }
  return out;
}

/** The frame's text with another SessionID (a new Call-ID, or the attacker's one reused). */
export function withSession(text: string, sessionId: string): AmiFrame {
  return parseFrame(text.replace(/^SessionID: .*$/m, `SessionID: ${sessionId}`));
}
