/**
 * PRIVATE STAND-IN for src/fraud/destinations.ts (helper C's module, issue 16 contract): the same
 * exports, so the engine can be built and tested before C's branch lands. Deleted at integration;
 * the imports of './destinations-stub.js' then become './destinations.js'.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { AppError } from '../common/errors.js';

export interface DialingPlan {
  country: string;
  nationalPrefix: string;
  internationalPrefixes: string[];
  internalMaxDigits: number;
}
export interface Destination {
  kind: 'internal' | 'national' | 'international';
  e164: string | null;
  classes: string[];
  prefix: string | null;
}
export interface DestinationPlan {
  classify(dialled: string, plan: DialingPlan): Destination;
  classNames(): string[];
}
export interface RateTable {
  perMinute(e164: string): number | null;
  currency: string;
}

function invalid(name: string, what: string): AppError {
  return new AppError(`${name}: ${what}`, 'RULES_INVALID', 500);
}

export function parseDestinationPlan(text: string, name: string): DestinationPlan {
  const doc = parseYaml(text) as { classes?: Record<string, { prefixes?: unknown }> } | null;
  const classes = doc?.classes;
  if (!classes || typeof classes !== 'object') throw invalid(name, 'classes: expected a mapping of class name to {prefixes}');
  const byPrefix: Array<[string, string]> = [];
  for (const [cls, v] of Object.entries(classes)) {
    if (!Array.isArray(v?.prefixes)) throw invalid(name, `classes.${cls}.prefixes: expected a list`);
    for (const p of v.prefixes) {
      if (typeof p !== 'string' || !/^\+\d{1,15}$/.test(p)) throw invalid(name, `classes.${cls}.prefixes: "${String(p)}" is not + and digits`);
      byPrefix.push([p, cls]);
    }
  }
  byPrefix.sort((a, b) => b[0].length - a[0].length);
  return {
    classNames: () => Object.keys(classes),
    classify(dialled, plan) {
      const d = dialled.replace(/[\s-]/g, '');
      let e164: string | null = null;
      const intl = [...plan.internationalPrefixes].sort((a, b) => b.length - a.length).find((p) => d.startsWith(p));
      const digits = d.replace(/^\+/, '');
      if (!/^\d+$/.test(digits)) return { kind: 'internal', e164: null, classes: [], prefix: null };
      if (intl !== undefined) e164 = '+' + d.slice(intl.length).replace(/^\+/, '');
      else if (digits.length <= plan.internalMaxDigits) return { kind: 'internal', e164: null, classes: [], prefix: null };
      else if (plan.nationalPrefix !== '' && d.startsWith(plan.nationalPrefix)) e164 = '+' + plan.country + d.slice(plan.nationalPrefix.length);
      else e164 = '+' + plan.country + d;
      const kind = plan.country !== '' && e164.startsWith('+' + plan.country) ? 'national' : 'international';
      const hits = byPrefix.filter(([p]) => e164.startsWith(p));
      const out = [...new Set(hits.map(([, c]) => c))];
      if (kind === 'international') out.push('international');
      return { kind, e164, classes: out, prefix: hits[0]?.[0] ?? null };
    },
  };
}

export function loadDestinationPlan(file: string): DestinationPlan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw invalid(file, `cannot be read (${(e as Error).message})`);
  }
  return parseDestinationPlan(text, file);
}

export function loadRateTable(file: string): RateTable {
  const doc = parseYaml(readFileSync(file, 'utf8')) as { currency?: string; rates?: Array<{ prefix: string; perMinute: number }> };
  const rates = [...(doc.rates ?? [])].sort((a, b) => b.prefix.length - a.prefix.length);
  return { currency: doc.currency ?? '', perMinute: (e164) => rates.find((r) => e164.startsWith(r.prefix))?.perMinute ?? null };
}
