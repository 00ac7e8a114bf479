/**
 * Builders for the config schema (TypeBox, i.e. JSON Schema objects). Each stage declares its own
 * section with these (src/<stage>/config-schema.ts); src/config/ assembles the sections, validates
 * a file against them and generates the example config and the README tables from them
 * (docs/config.md). Every key carries its default, bounds, a `description` (the doc line), a `unit`
 * and `reload`: 'live' when a reload applies it, else it waits for a restart.
 */
import { Type, type Static, type TLiteral, type TProperties, type TSchema, type TUnion } from '@sinclair/typebox';

export type { Static, TSchema };

export type Reload = 'live' | 'restart';

export interface KeyDoc {
  /** the doc line: the README table and the example config's comment */
  description: string;
  /** 'live': a reload applies it at once; default 'restart' */
  reload?: Reload;
  /** shown instead of the default when it depends on the host (the host name, the package path) */
  defaultText?: string;
  /** lines of an example shown commented out under the key in the example config */
  example?: string[];
}

/** What the validator and the generators read from a schema node (beyond JSON Schema). */
export interface SchemaMeta extends KeyDoc {
  unit?: string;
  /** a duration: its bounds in seconds, and whether 0 means "off" */
  minSeconds?: number;
  maxSeconds?: number;
  zeroOff?: boolean;
  /** what a valid value looks like, for the error of a pattern or a bound */
  shape?: string;
  /** the whole error of a value out of bounds, when it must read otherwise than '"v" must be <shape>' */
  boundsError?: string;
  absolutePath?: boolean;
  /** list items or map values checked by the stage's own code (their errors name the entry) */
  checkedBy?: string;
}

const meta = (doc: KeyDoc, extra: Partial<SchemaMeta> = {}) => ({ ...doc, ...extra });

export const Bool = (def: boolean, doc: KeyDoc) => Type.Boolean(meta(doc, { default: def } as object));

export const Str = (def: string, doc: KeyDoc, extra: { pattern?: string; shape?: string; unit?: string; absolutePath?: boolean } = {}) =>
  Type.String(meta(doc, { default: def, ...extra } as object));

/** A whole number from min to max (max undefined: no upper bound). */
export const Int = (def: number, min: number, max: number | undefined, doc: KeyDoc, unit?: string) =>
  Type.Integer(meta(doc, { default: def, minimum: min, ...(max === undefined ? {} : { maximum: max }), ...(unit ? { unit } : {}) } as object));

/** A number above 0 (fractions allowed). */
export const Positive = (def: number, doc: KeyDoc, unit?: string) =>
  Type.Number(meta(doc, { default: def, exclusiveMinimum: 0, ...(unit ? { unit } : {}) } as object));

export const Num = (def: number, min: number, max: number, doc: KeyDoc) => Type.Number(meta(doc, { default: def, minimum: min, maximum: max } as object));

export const Port = (def: number, doc: KeyDoc) => Type.Integer(meta(doc, { default: def, minimum: 0, maximum: 65535, unit: 'port' } as object));

/** A duration string ("30s", "10m", "1h", "7d"; a bare number is seconds). */
export const Duration = (
  def: string,
  doc: KeyDoc,
  bounds: { minSeconds?: number; maxSeconds?: number; zeroOff?: boolean; shape?: string; boundsError?: string } = {},
) => Type.String(meta(doc, { default: def, format: 'duration', unit: 'duration', ...bounds } as object));

export function Enum<const T extends readonly string[]>(values: T, def: T[number], doc: KeyDoc): TUnion<TLiteral<T[number]>[]> {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    meta(doc, { default: def } as object),
  ) as TUnion<TLiteral<T[number]>[]>;
}

export const StrList = (def: readonly string[], doc: KeyDoc, extra: { unit?: string; checkedBy?: string } = {}) =>
  Type.Array(Type.String(), meta(doc, { default: [...def], ...extra } as object));

export const IntList = (def: readonly number[], min: number, max: number, doc: KeyDoc, unit?: string) =>
  Type.Array(Type.Integer({ minimum: min, maximum: max }), meta(doc, { default: [...def], ...(unit ? { unit } : {}) } as object));

/** A list of mappings; the stage's own code checks each entry and fills its defaults. */
export const ObjList = <T extends TSchema>(item: T, doc: KeyDoc, checkedBy: string) => Type.Array(item, meta(doc, { default: [], checkedBy } as object));

/** A mapping whose keys are the user's own (event names, model.method), merged over the default. */
export const OpenMap = <T extends TSchema>(value: T, def: Record<string, Static<T>>, doc: KeyDoc, checkedBy?: string) =>
  Type.Record(Type.String(), value, meta(doc, { default: structuredClone(def), ...(checkedBy ? { checkedBy } : {}) } as object));

/** A section: its keys are the only ones allowed. */
export const Section = <T extends TProperties>(props: T, doc: KeyDoc) => Type.Object(props, meta(doc, { additionalProperties: false } as object));

// ------------------------------------------------------------------ reading a schema

export type Node = TSchema &
  SchemaMeta & {
    type?: string;
    properties?: Record<string, Node>;
    patternProperties?: Record<string, Node>;
    items?: Node;
    anyOf?: Node[];
    const?: unknown;
    default?: unknown;
    minimum?: number;
    maximum?: number;
    exclusiveMinimum?: number;
    pattern?: string;
    format?: string;
  };

export const isSection = (s: Node): boolean => s.type === 'object' && s.properties !== undefined;
export const isOpenMap = (s: Node): boolean => s.type === 'object' && s.patternProperties !== undefined;
/** the values of an enum, or undefined */
export const enumValues = (s: Node): string[] | undefined =>
  s.anyOf && s.anyOf.every((a) => typeof a.const === 'string') ? s.anyOf.map((a) => a.const as string) : undefined;

/** Every key's default, built from the schema (a fresh copy each call). */
export function defaultsOf<T extends TSchema>(schema: T): Static<T> {
  const s = schema as Node;
  if (isSection(s) && s.default === undefined) {
    return Object.fromEntries(Object.entries(s.properties!).map(([k, v]) => [k, defaultsOf(v)])) as Static<T>;
  }
  return structuredClone(s.default) as Static<T>;
}
