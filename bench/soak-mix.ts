/**
 * The traffic of the daemon soak (bench/soak-daemon.ts): frames of the real Asterisk 22 PJSIP
 * transcripts (test/fixtures/ami-asterisk22-pjsip/), each rewritten to its own source address and
 * to the current EventTV, produced one frame at a time in a fixed 20-slot mix so that the stream is
 * even at any scale of time:
 *
 *   16 slots  attackers: a ring of `lanes` attackers, each advanced one frame per turn; an attacker
 *             that has written its whole script (5 attempts: the 5th counted failure is its
 *             last frame) is replaced by a new address, never reused:
 *               50 % PJSIP wrong password, IPv4   (ChallengeSent + ChallengeResponseFailed) × 5
 *               20 % PJSIP unknown user, IPv4     (InvalidAccountID, ChallengeSent,
 *                                                  InvalidAccountID, ChallengeResponseFailed) × 5
 *               15 % PJSIP wrong password, IPv6   as the first, each attacker its own /64
 *               15 % AMI wrong secret, IPv4       InvalidPassword × 5
 *    2 slots  a phone registering (ChallengeSent + SuccessfulAuth, back to back) from a fixed
 *             population of `phones` addresses, round robin
 *    1 slot   scanner noise: ChallengeSent alone (INVITE without credentials), 5 per address
 *    1 slot   unknown-user noise: one attempt (4 frames, 1 counted failure) per address
 * Neither noise nor phones may ever be banned; every attacker that wrote its script must be.
 */
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/config/index.js';
import { loadTemplate, retarget } from '../src/demo/attack.js';

export const PJSIP_FIXTURES = join(PACKAGE_ROOT, 'test', 'fixtures', 'ami-asterisk22-pjsip');
export const ATTEMPTS = 5; // rules/asterisk.yaml auth-failure: 5 within 10m

export type Kind = 'pjsip-wrong-password' | 'pjsip-unknown-user' | 'pjsip6-wrong-password' | 'ami-wrong-secret';
export const KINDS: Kind[] = ['pjsip-wrong-password', 'pjsip-unknown-user', 'pjsip6-wrong-password', 'ami-wrong-secret'];
/** the kind of attacker n: 10 in 20 wrong password v4, 4 unknown user, 3 IPv6, 3 AMI */
const KIND_OF = [0, 1, 0, 2, 0, 3, 0, 1, 0, 2, 0, 3, 0, 1, 0, 2, 0, 3, 0, 1] as const;
let ipv4Only = false;
/** a diagnostic mix: the IPv6 attackers (CIDR bans, the /64) replaced by IPv4 wrong password */
export function setIpv4Only(on: boolean): void {
  ipv4Only = on;
}
export const kindOf = (n: number): Kind => {
  const k = KINDS[KIND_OF[n % 20]!]!;
  return ipv4Only && k === 'pjsip6-wrong-password' ? 'pjsip-wrong-password' : k;
};

/** attacker n's source address; IPv6 attackers each their own /64 (what the guard bans) */
export function attackerAddress(n: number): string {
  if (kindOf(n) === 'pjsip6-wrong-password') return `2001:db8:${(0x1000 + (n >> 16)).toString(16)}:${(n & 0xffff).toString(16)}::5`;
  const m = n + 1; // never x.x.x.0
  return `10.${(m >> 16) & 255}.${(m >> 8) & 255}.${m & 255}`;
}
export const attackerTarget = (n: number): string => {
  const a = attackerAddress(n);
  return a.includes(':') ? a.replace(/::5$/, '::/64') : a;
};
export const phoneAddress = (i: number): string => `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;
const scannerAddress = (i: number): string => `100.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`;
const unknownNoiseAddress = (i: number): string => `172.${16 + ((i >> 16) & 15)}.${(i >> 8) & 255}.${i & 255}`;
/** which population a banned target belongs to, by its range */
export function population(target: string): 'attacker' | 'phone' | 'scanner noise' | 'unknown-user noise' | 'other' {
  if (target.startsWith('10.') || target.startsWith('2001:db8:')) return 'attacker';
  if (target.startsWith('198.18.') || target.startsWith('198.19.')) return 'phone';
  if (target.startsWith('100.')) return 'scanner noise';
  if (target.startsWith('172.')) return 'unknown-user noise';
  return 'other';
}

/** A frame split around its source address and its EventTV value. */
interface Piece {
  parts: string[]; // text, ADDR, text, TV, text … joined with the address / time between
  holes: Array<'a' | 't'>;
}
const A4 = '@A@';
const A6 = '@A:@';
const TV = /^EventTV: .*$/m;

function piece(frame: string, v6: boolean): Piece {
  const marked = retarget(frame, v6 ? A6 : A4).replace(TV, 'EventTV: @T@') + '\r\n\r\n';
  const parts: string[] = [];
  const holes: Array<'a' | 't'> = [];
  const re = /@A:?@|@T@/g;
  let from = 0;
  for (let m; (m = re.exec(marked));) {
    parts.push(marked.slice(from, m.index));
    holes.push(m[0] === '@T@' ? 't' : 'a');
    from = m.index + m[0].length;
  }
  parts.push(marked.slice(from));
  return { parts, holes };
}

function render(p: Piece, address: string, tv: string): string {
  let s = p.parts[0]!;
  for (let i = 0; i < p.holes.length; i++) s += (p.holes[i] === 'a' ? address : tv) + p.parts[i + 1]!;
  return s;
}

/** `attempts` attempts of `perAttempt` security frames each, from what a transcript's `source`
 *  sent, its recorded attempts used in turn (the unknown-user transcript recorded two). */
function script(file: string, source: string, perAttempt: number, attempts: number, v6 = false): Piece[] {
  const frames = loadTemplate(PJSIP_FIXTURES, file).filter((f) => f.includes(`RemoteAddress: IPV${v6 ? 6 : 4}/`) && f.includes(`/${source}/`));
  const recorded = Math.floor(frames.length / perAttempt);
  if (recorded < 1) throw new Error(`${file}: ${frames.length} frames from ${source}, ${perAttempt} per attempt`);
  const out: Piece[] = [];
  for (let k = 0; k < attempts; k++) for (const f of frames.slice((k % recorded) * perAttempt, ((k % recorded) + 1) * perAttempt)) out.push(piece(f, v6));
  return out;
}

function eventTv(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+0000');
}

interface Lane {
  n: number; // attacker number
  step: number;
}

export interface MixOptions {
  lanes: number;
  phones: number;
  /** called with attacker n when its last frame (the 5th counted failure) is produced */
  onThreshold: (n: number) => void;
}

/** The frame generator: next() gives the next frame of the mix. */
export class SoakMix {
  attackersStarted = 0;
  attackersCompleted = 0;
  phoneRegistrations = 0;
  scanners = 0;
  unknownNoise = 0;
  frames = 0;
  private readonly scripts: Record<Kind, Piece[]>;
  private readonly phone: Piece[];
  private readonly scan: Piece;
  private readonly unknown: Piece[];
  private readonly lanes: Lane[] = [];
  private lane = 0;
  private slot = 0;
  private phoneNext = 0;
  private phoneStep = 0;
  private scanStep = 0;
  private unknownStep = 0;
  private tv = '';
  private tvMs = -1;

  constructor(private readonly o: MixOptions) {
    this.scripts = {
      'pjsip-wrong-password': script('pjsip-udp-wrong-password.raw', '192.0.2.11', 2, ATTEMPTS),
      'pjsip-unknown-user': script('pjsip-udp-unknown-user.raw', '192.0.2.12', 4, ATTEMPTS),
      'pjsip6-wrong-password': script('pjsip-udp6-wrong-password.raw', '2001:db8:b::11', 2, ATTEMPTS, true),
      'ami-wrong-secret': script('ami-wrong-secret.raw', '192.0.2.17', 1, ATTEMPTS),
    };
    this.phone = script('legit-phones.raw', '198.51.100.50', 2, 1);
    this.scan = script('pjsip-udp-invite-noauth-known.raw', '192.0.2.15', 1, 1)[0]!;
    this.unknown = script('pjsip-udp-unknown-user.raw', '192.0.2.12', 4, 1);
    for (let i = 0; i < o.lanes; i++) this.lanes.push({ n: this.attackersStarted++, step: 0 });
  }

  /** the next `count` frames, stamped with the wall clock `nowMs` */
  take(count: number, nowMs: number): string {
    if (nowMs !== this.tvMs) {
      this.tvMs = nowMs;
      this.tv = eventTv(nowMs);
    }
    let out = '';
    for (let i = 0; i < count; i++) out += this.next();
    return out;
  }

  private next(): string {
    this.frames++;
    const slot = this.slot++ % 20;
    if (slot < 16) return this.attackerFrame();
    if (slot < 18) {
      const s = render(this.phone[this.phoneStep]!, phoneAddress(this.phoneNext), this.tv);
      if (++this.phoneStep === 2) {
        this.phoneStep = 0;
        this.phoneNext = (this.phoneNext + 1) % this.o.phones;
        this.phoneRegistrations++;
      }
      return s;
    }
    if (slot === 18) {
      const s = render(this.scan, scannerAddress(this.scanners), this.tv);
      if (++this.scanStep === ATTEMPTS) {
        this.scanStep = 0;
        this.scanners++;
      }
      return s;
    }
    const s = render(this.unknown[this.unknownStep]!, unknownNoiseAddress(this.unknownNoise), this.tv);
    if (++this.unknownStep === this.unknown.length) {
      this.unknownStep = 0;
      this.unknownNoise++;
    }
    return s;
  }

  private attackerFrame(): string {
    const l = this.lanes[this.lane]!;
    this.lane = (this.lane + 1) % this.lanes.length;
    const sc = this.scripts[kindOf(l.n)];
    const s = render(sc[l.step]!, attackerAddress(l.n), this.tv);
    if (++l.step === sc.length) {
      this.o.onThreshold(l.n);
      this.attackersCompleted++;
      l.n = this.attackersStarted++;
      l.step = 0;
    }
    return s;
  }
}
