/**
 * CrowdSec LAPI 1.4 data, parsed without trusting it: the decisions stream
 * (`{"new": [...] | null, "deleted": [...] | null}`, each decision `{id, origin, type, scope,
 * value, duration, scenario}`, duration in Go's format such as "3h59m58.205153073s"), and the
 * judgement of one remote decision against the allow-list, the ban scope limits and our own bans.
 */
import { AppError } from '../common/errors.js';
import type { RemoteBanJudge } from '../guard/types.js';
import { formatNetwork, isSingleAddress, parseNetwork, type Family, type IpNetwork } from '../net/ip.js';

/** The scenario prefix of every alert this guardian pushes: `pbx-guardian/<rule>`. */
export const SCENARIO_PREFIX = 'pbx-guardian/';

/** the rule of every manual, Odoo and API ban (Guardian.ban); its alert's scenario names the source instead */
const MANUAL_RULE = 'manual';
const MANUAL_SOURCES = ['manual', 'odoo', 'api'];

/** The scenario our alert carries for a ban: `pbx-guardian/<rule>`, `pbx-guardian/<source>` for a manual, Odoo or API one. */
export function scenarioOf(ban: { rule: string; source: string }): string {
  const name = ban.rule === MANUAL_RULE && MANUAL_SOURCES.includes(ban.source) ? ban.source : ban.rule;
  return SCENARIO_PREFIX + name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
}

/** Whether `scenario` is what our alert for a local ban of `rule` carries (scenarioOf, whatever its source). */
function isScenarioOf(scenario: string, rule: string): boolean {
  if (rule === MANUAL_RULE) return MANUAL_SOURCES.some((source) => scenario === scenarioOf({ rule, source }));
  return scenario === scenarioOf({ rule, source: 'rule' });
}

/** A remote decision whose expiry is this close to a local ban's is our own coming back. */
export const OWN_TOLERANCE_MS = 30_000;

/** Longest text kept of a field shown in a log line or status. */
const FIELD_MAX = 256;

export interface LapiDecision {
  id: number;
  origin: string;
  type: string;
  scope: string;
  value: string;
  /** remaining time in ms (may be negative on a deleted decision) */
  durationMs: number;
  scenario: string;
}

export interface StreamDelta {
  new: LapiDecision[];
  deleted: LapiDecision[];
  /** entries that were not a decision (missing or wrong-typed fields): skipped, counted */
  malformed: number;
}

/** A stream answer that is not the documented shape (code BAD_LAPI_ANSWER). */
export class LapiAnswerError extends AppError {
  constructor(message: string) {
    super(message, 'BAD_LAPI_ANSWER', 502);
  }
}

const GO_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.Duration text ("1h2m3.5s", "-18.29ms", "0s") in ms; null when it is not one. */
export function parseGoDuration(text: unknown): number | null {
  if (typeof text !== 'string' || text.length === 0 || text.length > 64) return null;
  let s = text;
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    sign = s[0] === '-' ? -1 : 1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * GO_UNITS[m[2]!]!;
    at = re.lastIndex;
  }
  return at === s.length && at > 0 ? sign * total : null;
}

/** ms → a duration LAPI accepts ("3599s"); at least one second. */
export function formatGoDuration(ms: number): string {
  return `${Math.max(1, Math.ceil(ms / 1000))}s`;
}

function field(o: Record<string, unknown>, k: string): string | null {
  const v = o[k];
  return typeof v === 'string' && v.length <= FIELD_MAX ? v : null;
}

function decisionOf(raw: unknown): LapiDecision | null {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return null;
  const o = raw as Record<string, unknown>;
  const id = o.id;
  const durationMs = parseGoDuration(o.duration);
  const origin = field(o, 'origin');
  const type = field(o, 'type');
  const scope = field(o, 'scope');
  const value = field(o, 'value');
  const scenario = field(o, 'scenario');
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || durationMs === null) return null;
  if (origin === null || type === null || scope === null || value === null) return null;
  return { id, origin, type, scope, value, durationMs, scenario: scenario ?? '' };
}

/** The two lists of one stream answer, not yet checked entry by entry. */
export interface RawStream {
  new: unknown[];
  deleted: unknown[];
}

function listOf(body: Record<string, unknown>, key: 'new' | 'deleted'): unknown[] {
  const v = body[key];
  if (v === null || v === undefined) return [];
  if (!Array.isArray(v)) throw new LapiAnswerError(`the decisions stream's "${key}" is not a list`);
  return v;
}

/** JSON.parse of one answer of GET /v1/decisions/stream; throws LapiAnswerError when it is not that shape. */
export function rawStream(text: string): RawStream {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new LapiAnswerError(`the decisions stream answered with something that is not JSON (${(e as Error).message.slice(0, 120)})`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new LapiAnswerError('the decisions stream answered with JSON that is not {"new", "deleted"}');
  return { new: listOf(body as Record<string, unknown>, 'new'), deleted: listOf(body as Record<string, unknown>, 'deleted') };
}

/** Entries [from, to) of a raw list as decisions, into `out`; returns how many were not one. */
export function decisionsOf(raw: unknown[], from: number, to: number, out: LapiDecision[]): number {
  let bad = 0;
  for (let i = from; i < Math.min(to, raw.length); i++) {
    const d = decisionOf(raw[i]);
    if (d) out.push(d);
    else bad++;
  }
  return bad;
}

/** One answer of GET /v1/decisions/stream. Throws LapiAnswerError when it is not JSON of that shape. */
export function parseStream(text: string): StreamDelta {
  const raw = rawStream(text);
  const delta: StreamDelta = { new: [], deleted: [], malformed: 0 };
  delta.malformed += decisionsOf(raw.new, 0, raw.new.length, delta.new);
  delta.malformed += decisionsOf(raw.deleted, 0, raw.deleted.length, delta.deleted);
  return delta;
}

/** What a decision bans in the kernel: a canonical address or CIDR. */
export interface FleetTarget {
  target: string;
  family: Family;
  isNetwork: boolean;
  net: IpNetwork;
}

export type Skip = 'type' | 'scope' | 'value';

/** The kernel target of an Ip or Range ban decision, or why it has none. */
export function targetOf(d: LapiDecision): FleetTarget | { skip: Skip } {
  if (d.type.toLowerCase() !== 'ban') return { skip: 'type' };
  const scope = d.scope.toLowerCase();
  if (scope !== 'ip' && scope !== 'range') return { skip: 'scope' };
  const net = parseNetwork(d.value);
  if (!net) return { skip: 'value' };
  // an Ip decision is one address; a Range one a CIDR (a /32 or /128 range is one address too)
  if (scope === 'ip' && (!isSingleAddress(net) || d.value.includes('/'))) return { skip: 'value' };
  if (scope === 'range' && !d.value.includes('/')) return { skip: 'value' };
  return { target: formatNetwork(net), family: net.family, isNetwork: !isSingleAddress(net), net };
}

/** What the guard says about a target: its allow-list, scope limits and own bans. */
export type FleetJudge = RemoteBanJudge;

export type Verdict = { enforce: true } | { enforce: false; why: 'allowed' | 'scope' | 'own'; message: string };

/**
 * Whether a remote decision goes into the fleet set: the allow-list always wins, then the scope
 * limits; a decision that is our own ban coming back (scenario pbx-guardian/<its rule>, same
 * target, same end within OWN_TOLERANCE_MS) is already in the local set: no double work.
 */
export function judge(d: LapiDecision, t: FleetTarget, j: FleetJudge, now: number): Verdict {
  const allowed = j.allowed(t.net);
  if (allowed !== null) return { enforce: false, why: 'allowed', message: `${t.target} is allow-listed (${allowed}): the fleet's decision is not enforced` };
  const refused = j.scopeRefusal(t.net);
  if (refused !== null) return { enforce: false, why: 'scope', message: refused };
  if (isOwn(d, t, j, now)) return { enforce: false, why: 'own', message: `${t.target}: our own ban, already enforced` };
  return { enforce: true };
}

export function isOwn(d: LapiDecision, t: FleetTarget, j: Pick<FleetJudge, 'localBan'>, now: number): boolean {
  if (!d.scenario.startsWith(SCENARIO_PREFIX)) return false;
  const local = j.localBan(t.target);
  if (!local || !isScenarioOf(d.scenario, local.rule)) return false;
  if (local.expiresAt === null) return true;
  return Math.abs(now + d.durationMs - local.expiresAt) <= OWN_TOLERANCE_MS;
}

/** A bounded one-line rendering of a value from the LAPI, for a log line. */
export function shown(text: string): string {
  return JSON.stringify(text.slice(0, 80));
}
