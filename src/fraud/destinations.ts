/**
 * Destination classes and call rates by number prefix (rules/fraud-destinations.yaml,
 * rules/fraud-rates.yaml; docs/fraud-destinations.md).
 *
 * classify() runs on every outbound call with a dialled string that the caller chose, so it is
 * bounded and total: it never throws on the string, reads at most MAX_DIALLED characters, keeps at
 * most MAX_DIGITS digits, and walks a digit trie once (O(length), whatever the number of prefixes).
 * Every digit of the string counts, wherever it is: separators, letters, `*`, `#` or CR/LF between
 * digits cannot hide a number from the check (the dialplan, not this module, decides what the
 * trunk receives).
 */
import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { AppError, StartupError } from '../common/errors.js';

export interface DialingPlan {
  /** E.164 country code digits of the PBX's own country, e.g. "49" */
  country: string;
  /** "0" (most of Europe), "1" (NANP), "" where there is none */
  nationalPrefix: string;
  /** ["00", "+"] or ["011", "+"]; a leading "+" is E.164 whether listed or not */
  internationalPrefixes: string[];
  /** numbers of at most this many digits are extensions, e.g. 6 */
  internalMaxDigits: number;
}

export interface Destination {
  kind: 'internal' | 'national' | 'international';
  /** "+" and digits; null for an extension or a bare prefix */
  e164: string | null;
  /** the matched class of the destination file, plus 'international' when kind is international */
  classes: string[];
  /** the matched class prefix, e.g. "+49900" */
  prefix: string | null;
}

export interface DestinationPlan {
  classify(dialled: string, plan: DialingPlan): Destination;
  /** the file's class names in file order, then 'international' */
  classNames(): string[];
}

export interface RateTable {
  /** price per minute of the longest matching prefix; null when no prefix matches or e164 is not "+digits" */
  perMinute(e164: string): number | null;
  currency: string;
}

/** A refused destination or rate file; the message names the file and the entry. Read at start
 *  (and by `check`), so it stops the start like a bad detection rule (exit status 2). */
export class FraudRulesError extends StartupError {
  constructor(message: string) {
    super(message, 'RULES_INVALID');
  }
}

/** Characters read from a dialled string: Asterisk's own extensions stop at 80 (AST_MAX_EXTENSION); longer input is cut, never rejected. */
const MAX_DIALLED = 256;
/** E.164 has at most 15 digits; with an international prefix and slack for junk digits, 32 decide. */
const MAX_DIGITS = 32;
/** A carrier hot-list of MAX_ENTRIES prefixes fits (about 15 bytes a prefix). */
const MAX_FILE_BYTES = 4 * 1024 * 1024;
const MAX_CLASSES = 32;
const MAX_ENTRIES = 100_000;
const PREFIX_RE = /^\+[0-9]{1,15}$/;
const CLASS_RE = /^[a-z][a-z0-9-]{0,31}$/;
const RESERVED_CLASSES = new Set(['international', 'national', 'internal']);
const CLASS_KEYS = ['description', 'sources', 'prefixes'];
const RATE_KEYS = ['prefix', 'perMinute'];

// ---------------------------------------------------------------- the digit trie

interface TrieNode<T> {
  next: Array<TrieNode<T> | undefined>;
  value: T | undefined;
}

const node = <T>(): TrieNode<T> => ({ next: new Array<TrieNode<T> | undefined>(10), value: undefined });

/** Longest-prefix map over decimal digit strings. */
class DigitTrie<T> {
  private readonly root = node<T>();

  /** Returns the value already stored at exactly these digits, if any (nothing is replaced then). */
  insert(digits: string, value: T): T | undefined {
    let n = this.root;
    for (let i = 0; i < digits.length; i++) {
      const d = digits.charCodeAt(i) - 48;
      n = n.next[d] ??= node<T>();
    }
    if (n.value !== undefined) return n.value;
    n.value = value;
    return undefined;
  }

  /** The value of the longest stored prefix of `digits` (digits only), or undefined. */
  longest(digits: string): T | undefined {
    let n: TrieNode<T> | undefined = this.root;
    let best: T | undefined;
    for (let i = 0; i < digits.length && n; i++) {
      n = n.next[digits.charCodeAt(i) - 48];
      if (n?.value !== undefined) best = n.value;
    }
    return best;
  }
}

// ---------------------------------------------------------------- dialing plans

interface CompiledPlan {
  country: string;
  nationalPrefix: string;
  /** digit prefixes, longest first ("+" is handled apart) */
  international: string[];
  internalMaxDigits: number;
}

/** Config errors of a dialing plan (for the stage's config check); [] when it is valid. */
export function validateDialingPlan(plan: DialingPlan, where = 'dialingPlan'): string[] {
  const errors: string[] = [];
  if (typeof plan.country !== 'string' || !/^([1-9][0-9]{0,2})?$/.test(plan.country))
    errors.push(`${where}.country: the E.164 country code of the PBX's country, 1-3 digits without "+" (e.g. "49", "1", "33"), or "" when not known`);
  if (typeof plan.nationalPrefix !== 'string' || !/^[0-9]{0,3}$/.test(plan.nationalPrefix))
    errors.push(`${where}.nationalPrefix: the trunk prefix, 0-3 digits ("0" in most of Europe, "1" in the NANP, "" where there is none)`);
  if (!Array.isArray(plan.internationalPrefixes) || plan.internationalPrefixes.length === 0 || plan.internationalPrefixes.length > 8) {
    errors.push(`${where}.internationalPrefixes: a list of 1-8 prefixes such as ["00", "+"] or ["011", "+"]`);
  } else {
    plan.internationalPrefixes.forEach((p, i) => {
      if (typeof p !== 'string' || !/^(\+|[0-9]{1,4})$/.test(p)) errors.push(`${where}.internationalPrefixes[${i}]: "+" or 1-4 digits, like "00" or "011"`);
    });
  }
  if (!Number.isInteger(plan.internalMaxDigits) || plan.internalMaxDigits < 1 || plan.internalMaxDigits > 15)
    errors.push(`${where}.internalMaxDigits: the longest extension number, 1-15 digits`);
  return errors;
}

/** Plans are compiled once per object: classify() is called with the same config object every time. */
const compiledPlans = new WeakMap<DialingPlan, CompiledPlan>();

function compilePlan(plan: DialingPlan): CompiledPlan {
  const cached = compiledPlans.get(plan);
  if (cached) return cached;
  const errors = validateDialingPlan(plan);
  if (errors.length) throw new AppError(`invalid dialing plan: ${errors.join('; ')}`, 'CONFIG_INVALID', 400);
  const c: CompiledPlan = {
    country: plan.country,
    nationalPrefix: plan.nationalPrefix,
    international: [...new Set(plan.internationalPrefixes.filter((p) => p !== '+'))].sort((a, b) => b.length - a.length),
    internalMaxDigits: plan.internalMaxDigits,
  };
  compiledPlans.set(plan, c);
  return c;
}

/** The digits of a dialled string (bounded), and whether a "+" came before the first digit ("(+53)", "tel:+53" are E.164). */
function digitsOf(dialled: unknown): { plus: boolean; digits: string } {
  if (typeof dialled !== 'string') return { plus: false, digits: '' };
  const s = dialled.length > MAX_DIALLED ? dialled.slice(0, MAX_DIALLED) : dialled;
  let plus = false;
  let digits = '';
  for (let i = 0; i < s.length && digits.length < MAX_DIGITS; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) digits += s[i];
    else if (c === 43 /* + */ && digits === '') plus = true;
  }
  return { plus, digits };
}

const internal = (): Destination => ({ kind: 'internal', e164: null, classes: [], prefix: null });

// ---------------------------------------------------------------- destination plans

interface ClassEntry {
  name: string;
  prefix: string;
}

class Destinations implements DestinationPlan {
  constructor(
    private readonly trie: DigitTrie<ClassEntry>,
    private readonly names: readonly string[],
  ) {}

  classNames(): string[] {
    return [...this.names, 'international'];
  }

  classify(dialled: string, plan: DialingPlan): Destination {
    const p = compilePlan(plan);
    const { plus, digits } = digitsOf(dialled);
    if (digits === '' && !plus) return internal();
    let e164Digits: string;
    if (plus) {
      e164Digits = digits;
    } else if (digits.length <= p.internalMaxDigits) {
      return internal();
    } else {
      const intl = p.international.find((x) => digits.startsWith(x));
      if (intl !== undefined) e164Digits = digits.slice(intl.length);
      // the country is not configured (the default): a number without an international prefix is
      // national, and its national ranges (premium 0900 ...) cannot be told apart
      else if (p.country === '') return { kind: 'national', e164: null, classes: [], prefix: null };
      else if (p.nationalPrefix !== '' && digits.startsWith(p.nationalPrefix)) e164Digits = p.country + digits.slice(p.nationalPrefix.length);
      // no prefix at all: a national number dialled without the trunk prefix (NANP 10-digit dialling, a local number)
      else e164Digits = p.country + digits;
    }
    const kind = p.country !== '' && e164Digits.startsWith(p.country) ? 'national' : 'international';
    if (e164Digits === '' || (p.country !== '' && e164Digits === p.country)) {
      // a bare prefix ("00", "+", "0049"): nothing to classify, but never mistaken for an extension
      return { kind, e164: null, classes: kind === 'international' ? ['international'] : [], prefix: null };
    }
    const hit = this.trie.longest(e164Digits);
    const classes = hit ? [hit.name] : [];
    if (kind === 'international') classes.push('international');
    return { kind, e164: `+${e164Digits}`, classes, prefix: hit ? hit.prefix : null };
  }
}

function fail(where: string, message: string): never {
  throw new FraudRulesError(`${where}: ${message}`);
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseDocument(text: string, name: string): unknown {
  if (typeof text !== 'string') fail(name, 'the content must be text');
  if (Buffer.byteLength(text, 'utf8') > MAX_FILE_BYTES) fail(name, `larger than ${MAX_FILE_BYTES} bytes`);
  try {
    return parseYaml(text);
  } catch (err) {
    return fail(name, `not valid YAML: ${(err as Error).message}`);
  }
}

function onlyKeys(o: Record<string, unknown>, keys: readonly string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${where}.${k}`, `unknown key (expected ${keys.join(', ')})`);
}

/** One prefix as written in a file: a quoted "+digits" string. */
function prefixOf(v: unknown, where: string): string {
  if (typeof v === 'number') fail(where, `write it quoted, like "+${v}": unquoted, YAML reads +${v} as the number ${v}`);
  if (typeof v !== 'string' || !PREFIX_RE.test(v)) fail(where, `"${String(v).slice(0, 40)}" is not an E.164 prefix ("+" then 1-15 digits, e.g. "+49900")`);
  return v;
}

function stringList(v: unknown, where: string, what: string): string[] {
  if (!Array.isArray(v) || v.length === 0) fail(where, `must be a non-empty list of ${what}`);
  return v.map((s, i) => {
    if (typeof s !== 'string' || s.trim() === '') fail(`${where}[${i}]`, `must be a non-empty string (${what})`);
    return s;
  });
}

/** Parses the text of a destination file; `name` (the file) is named in every error. */
export function parseDestinationPlan(text: string, name: string): DestinationPlan {
  const doc = parseDocument(text, name);
  if (!isMapping(doc)) fail(name, 'expected a mapping with a top-level "classes:" key');
  onlyKeys(doc, ['classes'], name);
  const classes = doc.classes;
  if (!isMapping(classes) || Object.keys(classes).length === 0) fail(`${name} classes`, 'must be a mapping of class name: {description, sources, prefixes}');
  if (Object.keys(classes).length > MAX_CLASSES) fail(`${name} classes`, `at most ${MAX_CLASSES} classes`);
  const trie = new DigitTrie<ClassEntry>();
  const names: string[] = [];
  let entries = 0;
  for (const [cls, body] of Object.entries(classes)) {
    const at = `${name} classes.${cls}`;
    if (!CLASS_RE.test(cls)) fail(at, 'a class name is 1-32 lower-case letters, digits or "-", starting with a letter');
    if (RESERVED_CLASSES.has(cls)) fail(at, `"${cls}" is reserved: it is what the dialing plan decides, not a list of prefixes`);
    if (!isMapping(body)) fail(at, 'must be a mapping with description, sources and prefixes');
    onlyKeys(body, CLASS_KEYS, at);
    if (typeof body.description !== 'string' || body.description.trim() === '') fail(`${at}.description`, 'must be a non-empty string');
    stringList(body.sources, `${at}.sources`, 'where the ranges come from: a numbering plan, a regulator, a published list');
    if (!Array.isArray(body.prefixes) || body.prefixes.length === 0) fail(`${at}.prefixes`, 'must be a non-empty list of E.164 prefixes like "+49900"');
    entries += body.prefixes.length;
    if (entries > MAX_ENTRIES) fail(`${at}.prefixes`, `more than ${MAX_ENTRIES} prefixes in the file`);
    body.prefixes.forEach((raw, i) => {
      const prefix = prefixOf(raw, `${at}.prefixes[${i}]`);
      const before = trie.insert(prefix.slice(1), { name: cls, prefix });
      if (before)
        fail(
          `${at}.prefixes[${i}]`,
          before.name === cls ? `"${prefix}" is listed twice` : `"${prefix}" is already in class "${before.name}" (a prefix belongs to one class)`,
        );
    });
    names.push(cls);
  }
  return new Destinations(trie, names);
}

function readRulesFile(file: string): string {
  try {
    const st = statSync(file);
    if (!st.isFile()) fail(file, 'not a regular file');
    if (st.size > MAX_FILE_BYTES) fail(file, `${st.size} bytes, more than ${MAX_FILE_BYTES}`);
    return readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof FraudRulesError) throw err;
    return fail(file, `cannot read it: ${(err as Error).message}`);
  }
}

/** Loads rules/fraud-destinations.yaml (or the operator's copy); throws FraudRulesError (RULES_INVALID). */
export function loadDestinationPlan(file: string): DestinationPlan {
  return parseDestinationPlan(readRulesFile(file), file);
}

// ---------------------------------------------------------------- rate tables

class Rates implements RateTable {
  constructor(
    private readonly trie: DigitTrie<number>,
    readonly currency: string,
  ) {}

  perMinute(e164: string): number | null {
    if (typeof e164 !== 'string' || e164.length > MAX_DIGITS + 1 || !/^\+[0-9]+$/.test(e164)) return null;
    return this.trie.longest(e164.slice(1)) ?? null;
  }
}

/** Parses the text of a rate table ({currency, rates: [{prefix, perMinute}]}); longest prefix wins. */
export function parseRateTable(text: string, name: string): RateTable {
  const doc = parseDocument(text, name);
  if (!isMapping(doc)) fail(name, 'expected a mapping with "currency:" and "rates:"');
  onlyKeys(doc, ['currency', 'rates'], name);
  if (typeof doc.currency !== 'string' || !/^[A-Z]{3}$/.test(doc.currency)) fail(`${name} currency`, 'an ISO 4217 code such as "EUR" or "USD"');
  if (!Array.isArray(doc.rates) || doc.rates.length === 0) fail(`${name} rates`, 'must be a non-empty list of {prefix, perMinute}');
  if (doc.rates.length > MAX_ENTRIES) fail(`${name} rates`, `at most ${MAX_ENTRIES} entries`);
  const trie = new DigitTrie<number>();
  const seen = new Map<string, number>();
  doc.rates.forEach((r, i) => {
    const at = `${name} rates[${i}]`;
    if (!isMapping(r)) fail(at, 'must be a mapping {prefix, perMinute}');
    onlyKeys(r, RATE_KEYS, at);
    const prefix = prefixOf(r.prefix, `${at}.prefix`);
    const price = r.perMinute;
    if (typeof price !== 'number' || !Number.isFinite(price) || price < 0 || price > 1000)
      fail(`${at}.perMinute`, `must be a price per minute between 0 and 1000 ${doc.currency as string}`);
    const first = seen.get(prefix);
    if (first !== undefined) fail(`${at}.prefix`, `"${prefix}" is already priced in rates[${first}]`);
    seen.set(prefix, i);
    trie.insert(prefix.slice(1), price);
  });
  return new Rates(trie, doc.currency);
}

/** Loads rules/fraud-rates.yaml (or the operator's copy); throws FraudRulesError (RULES_INVALID). */
export function loadRateTable(file: string): RateTable {
  return parseRateTable(readRulesFile(file), file);
}
