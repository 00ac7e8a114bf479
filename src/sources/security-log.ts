import type { EventView, Observation, ObservationSink } from '../guard/index.js';
import { asteriskObservation } from './asterisk-event.js';

/** A parsed security-log line's fields, read by their Asterisk names (case-insensitive). */
export class FieldView implements EventView {
  constructor(private readonly fields: Map<string, string>) {}
  get(key: string): string | undefined {
    return this.fields.get(key.toLowerCase());
  }
}

const LOG_FIELD = /(?:^|,)([A-Za-z]+)="(.*?)"(?=,[A-Za-z]+="|\s*$)/g;

/**
 * Parses one line of Asterisk's security log (res_security_log). A line whose fields appear
 * twice with different values is "ambiguous": an attacker-chosen value (AccountID, SessionID,
 * ReceivedHash) can imitate `",RemoteAddress="...`, so such a line is never trusted.
 * The same parser serves `pbx-guardian check` and the daemon's security-log source.
 */
export function parseSecurityLogLine(text: string): { fields: Map<string, string> | null; ambiguous: boolean } {
  const start = text.indexOf('SecurityEvent="');
  if (start < 0) return { fields: null, ambiguous: false };
  const fields = new Map<string, string>();
  let ambiguous = false;
  for (const m of text.slice(start).matchAll(LOG_FIELD)) {
    const key = m[1]!.toLowerCase();
    const prev = fields.get(key);
    if (prev !== undefined && prev !== m[2]) ambiguous = true;
    fields.set(key, m[2]!);
  }
  const event = fields.get('securityevent');
  if (event === undefined) return { fields: null, ambiguous: false };
  fields.set('event', event);
  return { fields, ambiguous };
}

/** The line's EventTV (epoch ms), or `fallback` when it has none that parses. */
export function logTime(fields: Map<string, string>, fallback: number): number {
  const tv = fields.get('eventtv');
  const t = tv ? Date.parse(tv) : NaN;
  return Number.isFinite(t) ? t : fallback;
}

/** The observation of one parsed line seen at `now` (check replays at the line's EventTV). */
export function logObservation(fields: Map<string, string>, ambiguous: boolean, now: number): Observation {
  return asteriskObservation(new FieldView(fields), fields.get('event')!, 'security-log', now, ambiguous);
}

/** What the security-log source did with the lines it was given (metrics, status). */
export interface SecurityLogCounts {
  /** lines that are no security event (banners, other log output) */
  other: number;
  /** security events no rule watches */
  unwatched: number;
  /** watched events delivered to the guard */
  observed: number;
  /** watched events dropped because AMI delivers them (mode fallback) */
  covered: number;
}

export type SecurityLogMode = 'fallback' | 'always';

/**
 * The security log as a detection source. Mode `fallback` (default): its events count only while
 * AMI does not deliver security events (disabled, not logged in, or blind), else the same failure
 * would be counted twice; mode `always`: they always count (AMI's too, when it runs).
 * Lines are counted at arrival time: the guard's windows and bans run on one clock.
 */
export class SecurityLogSource {
  readonly counts: SecurityLogCounts = { other: 0, unwatched: 0, observed: 0, covered: 0 };

  constructor(
    private readonly sink: ObservationSink,
    private readonly mode: SecurityLogMode,
    /** true while AMI delivers security events */
    private readonly amiCovers: () => boolean,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Lines appended to the log, in order (one call per chunk the tailer read). */
  handleLines(lines: readonly string[]): void {
    let covered: boolean | undefined;
    for (const line of lines) {
      const { fields, ambiguous } = parseSecurityLogLine(line);
      if (!fields) {
        this.counts.other++;
        continue;
      }
      if (!this.sink.watches(fields.get('event')!)) {
        this.counts.unwatched++;
        continue;
      }
      covered ??= this.mode === 'fallback' && this.amiCovers();
      if (covered) {
        this.counts.covered++;
        continue;
      }
      this.counts.observed++;
      this.sink.observe(logObservation(fields, ambiguous, this.clock()));
    }
  }
}
