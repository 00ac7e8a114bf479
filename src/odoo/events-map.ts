/** The events map (asterisk_plus.event rows): which AMI events / FastAGI scripts go to which Odoo method. */
import { compileCondition, ConditionError, type CompiledCondition } from './condition.js';

export type EventSource = 'AMI' | 'FAGI';

export interface EventHandler {
  id: number;
  name: string;
  source: EventSource;
  model: string;
  method: string;
  delayMs: number;
  condition: CompiledCondition | null;
}

export const EVENTS_MAP_FIELDS = ['name', 'source', 'model', 'method', 'delay', 'condition'];
export const EVENTS_MAP_DOMAIN = [
  ['is_enabled', '=', true],
  ['source', 'in', ['AMI', 'FAGI']],
];
const MAX_DELAY_MS = 3_600_000;
const NAME_RE = /^[A-Za-z0-9_.]{1,128}$/;

export interface CompiledEventsMap {
  /** handlers by AMI event name */
  ami: Map<string, EventHandler[]>;
  /** handlers by FastAGI script name */
  fagi: Map<string, EventHandler[]>;
  loaded: number;
  skipped: number;
}

/** A row left out of the map, and why. */
export interface SkippedEventsMapRow {
  /** identifies the row and its problem (to warn once per key) */
  key: string;
  fields: object;
  message: string;
  /** the row's condition is not supported by the safe evaluator */
  badCondition: boolean;
}

/** Compile rows as returned by search_read; bad rows are skipped and reported to onSkip. */
export function compileEventsMap(rows: unknown[], onSkip: (row: SkippedEventsMapRow) => void): CompiledEventsMap {
  const ami = new Map<string, EventHandler[]>();
  const fagi = new Map<string, EventHandler[]>();
  let loaded = 0;
  let skipped = 0;
  for (const raw of rows) {
    if (raw === null || typeof raw !== 'object') {
      skipped++;
      continue;
    }
    const r = raw as Record<string, unknown>;
    const id = typeof r.id === 'number' ? r.id : 0;
    const name = typeof r.name === 'string' ? r.name.trim() : '';
    const source = r.source === 'FAGI' ? 'FAGI' : r.source === 'AMI' || r.source === undefined ? 'AMI' : null;
    const model = typeof r.model === 'string' ? r.model : '';
    const method = typeof r.method === 'string' ? r.method : '';
    const delay = typeof r.delay === 'number' && Number.isFinite(r.delay) && r.delay > 0 ? Math.min(r.delay * 1000, MAX_DELAY_MS) : 0;
    if (!name || !source || !NAME_RE.test(model) || !NAME_RE.test(method)) {
      onSkip({
        key: `row:${id}:${name}:${model}:${method}`,
        fields: { id, name, model, method, source: r.source },
        message: 'events map row skipped: name, source, model or method missing or invalid',
        badCondition: false,
      });
      skipped++;
      continue;
    }
    let condition: CompiledCondition | null = null;
    const condText = typeof r.condition === 'string' ? r.condition.trim() : '';
    if (condText) {
      try {
        condition = compileCondition(condText);
      } catch (e) {
        if (!(e instanceof ConditionError)) throw e;
        onSkip({
          key: `cond:${id}:${condText}`,
          fields: { id, name, model, method, condition: condText, err: e.message },
          message: `events map row ${id} (${name} → ${model}.${method}) skipped: its condition is not supported by the safe evaluator (${e.message}); simplify it in Odoo (Asterisk Plus → Events)`,
          badCondition: true,
        });
        skipped++;
        continue;
      }
    }
    const h: EventHandler = { id, name, source, model, method, delayMs: Math.round(delay), condition };
    const m = source === 'AMI' ? ami : fagi;
    const list = m.get(name);
    if (list) list.push(h);
    else m.set(name, [h]);
    loaded++;
  }
  return { ami, fagi, loaded, skipped };
}
