import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from '../common/duration.js';
import { SOURCE_NAMES } from './observation.js';
import { StartupError } from '../common/errors.js';

export interface RuleWindow {
  count: number;
  withinMs: number;
}

export interface Rule {
  name: string;
  description: string;
  events: string[];
  /** field name → accepted values, lower-cased */
  match: Array<[string, Set<string>]>;
  weight: number;
  windows: RuleWindow[];
  banSec: number;
  resetOn: string[];
  /** the sources whose observations it counts (and is reset by); null: any source */
  sources: ReadonlySet<string> | null;
  /** the largest window count: how many hit times the detector keeps per address */
  ringSize: number;
}

export class RuleError extends StartupError {
  constructor(message: string) {
    super(message, 'RULES_INVALID');
  }
}

const MAX_COUNT = 10_000;
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const EVENT_RE = /^[A-Za-z0-9_]{1,64}$/;
const RULE_KEYS = new Set(['name', 'description', 'events', 'match', 'weight', 'windows', 'ban', 'resetOn', 'source']);

function fail(where: string, message: string): never {
  throw new RuleError(`${where}: ${message}`);
}

function eventList(value: unknown, where: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) fail(where, 'must be an event name or a non-empty list of them');
  return list.map((e, i) => {
    if (typeof e !== 'string' || !EVENT_RE.test(e)) fail(`${where}[${i}]`, `"${String(e)}" is not an AMI event name`);
    return e;
  });
}

function sourceList(value: unknown, where: string): Set<string> {
  const list = typeof value === 'string' ? [value] : value;
  const known: readonly string[] = SOURCE_NAMES;
  if (!Array.isArray(list) || list.length === 0) fail(where, `must be a source name or a non-empty list of them (${known.join(', ')})`);
  return new Set(
    list.map((s, i) => {
      if (typeof s !== 'string' || !known.includes(s)) fail(`${where}[${i}]`, `"${String(s).slice(0, 64)}" is not a source (one of ${known.join(', ')})`);
      return s;
    }),
  );
}

/** Validates one rule object as read from YAML. `where` names it in errors ("rules/x.yaml rules[2]"). */
export function compileRule(raw: unknown, where: string): Rule {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(where, 'must be a mapping');
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!RULE_KEYS.has(key)) fail(`${where}.${key}`, `unknown key (expected one of ${[...RULE_KEYS].join(', ')})`);
  if (typeof r.name !== 'string' || !NAME_RE.test(r.name)) fail(`${where}.name`, 'must be 1-64 letters, digits, "_", "-" or "."');
  const at = `${where} (${r.name})`;
  const events = eventList(r.events, `${at}.events`);
  const match: Array<[string, Set<string>]> = [];
  if (r.match !== undefined) {
    if (typeof r.match !== 'object' || r.match === null || Array.isArray(r.match)) fail(`${at}.match`, 'must be a mapping of field: value or field: [values]');
    for (const [field, value] of Object.entries(r.match)) {
      const values = Array.isArray(value) ? value : [value];
      if (values.length === 0 || values.some((v) => typeof v !== 'string' && typeof v !== 'number'))
        fail(`${at}.match.${field}`, 'must be a string or a list of strings');
      match.push([field, new Set(values.map((v) => String(v).toLowerCase()))]);
    }
  }
  const weight = r.weight === undefined ? 1 : r.weight;
  if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 1 || weight > 1000) fail(`${at}.weight`, 'must be a whole number from 1 to 1000');
  if (!Array.isArray(r.windows) || r.windows.length === 0) fail(`${at}.windows`, 'must be a non-empty list of { count, within }');
  const windows = r.windows.map((w: unknown, i: number): RuleWindow => {
    const wat = `${at}.windows[${i}]`;
    if (typeof w !== 'object' || w === null) fail(wat, 'must be { count: N, within: DURATION }');
    const { count, within } = w as Record<string, unknown>;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_COUNT)
      fail(`${wat}.count`, `must be a whole number from 1 to ${MAX_COUNT}`);
    const seconds = parseDuration(within);
    if (seconds === null || seconds <= 0) fail(`${wat}.within`, `"${String(within)}" is not a duration (e.g. 30s, 10m, 1h, 7d)`);
    return { count, withinMs: seconds * 1000 };
  });
  const banSec = parseDuration(r.ban);
  if (banSec === null || banSec <= 0) fail(`${at}.ban`, `"${String(r.ban)}" is not a duration (e.g. 10m, 1h, 7d)`);
  const resetOn = r.resetOn === undefined ? [] : eventList(r.resetOn, `${at}.resetOn`);
  const sources = r.source === undefined ? null : sourceList(r.source, `${at}.source`);
  return {
    name: r.name,
    description: typeof r.description === 'string' ? r.description : '',
    events,
    match,
    weight,
    windows,
    banSec,
    resetOn,
    sources,
    ringSize: Math.max(...windows.map((w) => w.count)),
  };
}

/** Parses one rules document (the text of a rules/*.yaml file). */
export function parseRules(text: string, file: string): Rule[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new RuleError(`${file}: not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return [];
  const rules = (doc as Record<string, unknown>).rules;
  if (!Array.isArray(rules)) throw new RuleError(`${file}: expected a top-level "rules:" list`);
  return rules.map((raw, i) => compileRule(raw, `${file} rules[${i}]`));
}

/** rules/fraud-*.yaml are the fraud stage's data (destination classes, rates), read by src/fraud/destinations.ts. */
const FRAUD_DATA_FILE = /^fraud-.*\.ya?ml$/;

/** Loads every *.yaml / *.yml file of a directory but fraud-*.yaml, in name order. Rule names must be unique. */
export function loadRulesDir(dir: string): Rule[] {
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f) && !FRAUD_DATA_FILE.test(f))
      .sort();
  } catch (err) {
    throw new RuleError(`cannot read the rules directory ${dir}: ${(err as Error).message}`);
  }
  const rules: Rule[] = [];
  const seen = new Set<string>();
  for (const f of files) {
    const path = join(dir, f);
    for (const rule of parseRules(readFileSync(path, 'utf8'), path)) {
      if (seen.has(rule.name)) throw new RuleError(`${path}: rule name "${rule.name}" is used twice`);
      seen.add(rule.name);
      rules.push(rule);
    }
  }
  if (rules.length === 0) throw new RuleError(`no rules found in ${dir} (expected *.yaml files with a "rules:" list)`);
  return rules;
}
