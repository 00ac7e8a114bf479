import { AmiActionError } from './errors.js';
import { AmiFrame } from './message.js';
import type { AmiResponse } from './types.js';

interface Pending {
  id: string;
  name: string;
  isCommand: boolean;
  timeoutMs: number;
  resolve(r: AmiResponse): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  response?: AmiFrame;
  events: AmiFrame[];
  listing: boolean;
  /** legacy (Asterisk 13) Command output collected across frames */
  legacy?: string;
}

export interface PendingActionsOptions {
  /** `host:port`, for error messages */
  where: string;
  /** legacy Command output longer than this is dropped */
  maxFrameBytes: number;
  /** called when an action times out (before its promise is rejected) */
  onTimeout(): void;
}

function isListComplete(ev: AmiFrame): boolean {
  const el = ev.get('EventList');
  if (el !== undefined && el.toLowerCase() === 'complete') return true;
  const name = ev.get('Event');
  return name !== undefined && name.endsWith('Complete');
}

/** Output lines of a legacy `Response: Follows` ... `--END COMMAND--` frame (Asterisk 13). */
export function legacyCommandOutput(raw: string): string[] {
  const lines = raw.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  let i = 0;
  while (i < lines.length && /^(Response|Privilege|ActionID):/i.test(lines[i]!)) i++;
  const out: string[] = [];
  for (; i < lines.length; i++) {
    const l = lines[i]!;
    if (l === '--END COMMAND--') break;
    if (l.endsWith('--END COMMAND--')) {
      const rest = l.slice(0, -'--END COMMAND--'.length);
      if (rest) out.push(rest);
      break;
    }
    out.push(l);
  }
  while (out.length && out[out.length - 1] === '') out.pop();
  return out;
}

/**
 * The actions waiting for their answer on one AMI client: counter ActionIDs, per-action
 * timeouts, event-list collection and legacy Command output spread over several frames.
 * Not a FIFO queue (src/common/bounded-queue.ts): answers arrive in any order and are matched by
 * ActionID, so this is a Map; each entry leaves at its answer, its timeout or the disconnect.
 */
export class PendingActions {
  private seq = 0;
  private readonly byId = new Map<string, Pending>();
  private listing = 0;
  private legacy: Pending | undefined;

  constructor(private readonly o: PendingActionsOptions) {}

  nextId(): string {
    return `pbxg-${++this.seq}`;
  }

  /** Track action `id`; the caller writes it after this returns. */
  add(id: string, name: string, timeoutMs: number): Promise<AmiResponse> {
    return new Promise<AmiResponse>((resolve, reject) => {
      const p: Pending = {
        id,
        name,
        isCommand: name.toLowerCase() === 'command',
        timeoutMs,
        resolve,
        reject,
        events: [],
        listing: false,
        timer: setTimeout(() => this.onActionTimeout(p), timeoutMs),
      };
      this.byId.set(id, p);
    });
  }

  /** Feed `text` to a legacy Command whose output is still arriving; false when there is none. */
  takeLegacyFrame(text: string): boolean {
    const p = this.legacy;
    if (!p) return false;
    this.continueLegacy(p, text);
    return true;
  }

  /** Collect an event-list item or ...Complete event; false when the event belongs to no listing action. */
  takeListEvent(msg: AmiFrame): boolean {
    if (this.listing === 0) return false;
    const id = msg.get('ActionID');
    if (id === undefined) return false;
    const p = this.byId.get(id);
    if (!p || !p.listing) return false;
    if (isListComplete(msg)) {
      this.finish(p);
      p.resolve({ response: p.response!, events: p.events, complete: msg });
    } else {
      p.events.push(msg);
    }
    return true;
  }

  /** Settle (or start collecting for) the action `msg` answers; false when no action waits for it. */
  takeResponse(msg: AmiFrame): boolean {
    const id = msg.get('ActionID');
    const p = id === undefined ? undefined : this.byId.get(id);
    if (!p) return false;
    const resp = msg.get('Response') ?? '';
    if (resp.toLowerCase() === 'follows') {
      if (msg.raw.includes('--END COMMAND--')) {
        this.finish(p);
        p.resolve({ response: msg, events: [], output: legacyCommandOutput(msg.raw) });
      } else {
        p.response = msg;
        p.legacy = msg.raw;
        this.legacy = p;
      }
      return true;
    }
    const el = msg.get('EventList');
    if (el !== undefined && el.toLowerCase() === 'start') {
      p.response = msg;
      p.listing = true;
      this.listing++;
      return true;
    }
    this.finish(p);
    const r: AmiResponse = { response: msg, events: [] };
    if (p.isCommand || msg.get('Output') !== undefined) r.output = msg.getAll('Output');
    p.resolve(r);
    return true;
  }

  rejectAll(reason: string): void {
    const all = [...this.byId.values()];
    for (const p of all) {
      this.finish(p);
      p.reject(
        new AmiActionError(
          'disconnected',
          `AMI action "${p.name}" (ActionID ${p.id}) lost: the connection to ${this.o.where} closed (${reason}) ` +
            'before the response arrived; the action may or may not have run',
          p.id,
        ),
      );
    }
    this.listing = 0;
    this.legacy = undefined;
  }

  private finish(p: Pending): void {
    clearTimeout(p.timer);
    this.byId.delete(p.id);
    if (p.listing) this.listing--;
    if (this.legacy === p) this.legacy = undefined;
  }

  private onActionTimeout(p: Pending): void {
    if (this.byId.get(p.id) !== p) return;
    this.finish(p);
    this.o.onTimeout();
    const what = p.listing ? `got ${p.events.length} event-list items but no ...Complete event` : 'got no response';
    p.reject(
      new AmiActionError(
        'timeout',
        `AMI action "${p.name}" (ActionID ${p.id}) ${what} within ${p.timeoutMs} ms from ${this.o.where}; ` +
          'the connection stays up; if Asterisk is just slow, raise the timeout',
        p.id,
      ),
    );
  }

  /** Asterisk 13 Command output that contained a blank line spans several frames. */
  private continueLegacy(p: Pending, text: string): void {
    p.legacy = `${p.legacy}\r\n\r\n${text}`;
    if (text.includes('--END COMMAND--')) {
      this.finish(p);
      p.resolve({ response: new AmiFrame(p.legacy), events: [], output: legacyCommandOutput(p.legacy) });
    } else if (p.legacy.length > this.o.maxFrameBytes) {
      this.finish(p);
      p.reject(new AmiActionError('invalid', `AMI Command output (legacy form) exceeded ${this.o.maxFrameBytes} bytes and was dropped`, p.id));
    }
  }
}
