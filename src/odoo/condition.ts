/**
 * A small, safe evaluator for the Python conditions of Asterisk Plus' events map.
 *
 * Tokenizer + recursive-descent parser → AST, evaluated over the event object. It never uses
 * eval / Function. Supported: `==`, `!=`, `in` / `not in` (list/tuple literals or strings),
 * `and` / `or` / `not`, parentheses, `event['X']`, `event.get('X')`, `event.get('X', default)`,
 * `.startswith(x)` / `.endswith(x)` (a string or a tuple of strings), string / number /
 * True / False / None literals. Any other name, attribute or call is rejected at compile time.
 * A missing key read with `event['X']` makes the whole condition false (Python: KeyError).
 */
import { AppError } from '../common/errors.js';

export const CONDITION_MAX_LENGTH = 2000;
export const CONDITION_MAX_DEPTH = 32;
export const CONDITION_MAX_TOKENS = 400;

/** A condition of Odoo's events map outside the supported subset (or over a bound). */
export class ConditionError extends AppError {
  constructor(message: string) {
    super(message, 'CONDITION_UNSUPPORTED', 400);
  }
}

type Value = string | number | boolean | null | Value[] | EventObj;
type EventObj = Record<string, unknown>;

type Node =
  | { t: 'lit'; v: string | number | boolean | null }
  | { t: 'list'; items: Node[] }
  | { t: 'event' }
  | { t: 'index'; obj: Node; key: Node }
  | { t: 'get'; obj: Node; key: Node; def?: Node }
  | { t: 'strfn'; fn: 'startswith' | 'endswith'; obj: Node; arg: Node }
  | { t: 'not'; e: Node }
  | { t: 'and'; l: Node; r: Node }
  | { t: 'or'; l: Node; r: Node }
  | { t: 'cmp'; op: '==' | '!=' | 'in' | 'not in'; l: Node; r: Node };

type Tok =
  | { k: 'str'; v: string; p: number }
  | { k: 'num'; v: number; p: number }
  | { k: 'name'; v: string; p: number }
  | { k: 'op'; v: string; p: number }
  | { k: 'end'; p: number };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    if (out.length >= CONDITION_MAX_TOKENS) throw new ConditionError(`condition has more than ${CONDITION_MAX_TOKENS} tokens`);
    const p = i;
    if (c === "'" || c === '"') {
      let s = '';
      i++;
      for (;;) {
        if (i >= n) throw new ConditionError(`unterminated string at ${p}`);
        const d = src[i]!;
        if (d === c) {
          i++;
          break;
        }
        if (d === '\n') throw new ConditionError(`newline in string at ${p}`);
        if (d === '\\') {
          const e = src[i + 1];
          if (e === undefined) throw new ConditionError(`unterminated string at ${p}`);
          const map: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
          const m = map[e];
          if (m === undefined) throw new ConditionError(`unsupported escape \\${e} at ${i}`);
          s += m;
          i += 2;
          continue;
        }
        s += d;
        i++;
      }
      out.push({ k: 'str', v: s, p });
      continue;
    }
    if ((c >= '0' && c <= '9') || (c === '-' && /[0-9]/.test(src[i + 1] ?? '') && prevAllowsUnary(out))) {
      const m = /^-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?/.exec(src.slice(i));
      if (!m) throw new ConditionError(`bad number at ${p}`);
      out.push({ k: 'num', v: Number(m[0]), p });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
      out.push({ k: 'name', v: m[0], p });
      i += m[0].length;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (two === '==' || two === '!=') {
      out.push({ k: 'op', v: two, p });
      i += 2;
      continue;
    }
    if ('()[],.'.includes(c)) {
      out.push({ k: 'op', v: c, p });
      i++;
      continue;
    }
    throw new ConditionError(`unsupported character ${JSON.stringify(c)} at ${p}`);
  }
  out.push({ k: 'end', p: n });
  return out;
}

function prevAllowsUnary(out: Tok[]): boolean {
  const last = out[out.length - 1];
  if (!last) return true;
  if (last.k === 'op') return last.v !== ')' && last.v !== ']';
  if (last.k === 'name') return ['and', 'or', 'not', 'in'].includes(last.v);
  return false;
}

class Parser {
  private i = 0;
  private depth = 0;
  constructor(private readonly toks: Tok[]) {}

  private peek(): Tok {
    return this.toks[this.i]!;
  }
  private next(): Tok {
    return this.toks[this.i++]!;
  }
  private isOp(v: string): boolean {
    const t = this.peek();
    return t.k === 'op' && t.v === v;
  }
  private isName(v: string): boolean {
    const t = this.peek();
    return t.k === 'name' && t.v === v;
  }
  private expectOp(v: string): void {
    const t = this.next();
    if (t.k !== 'op' || t.v !== v) throw new ConditionError(`expected "${v}" at ${t.p}`);
  }
  private enter(): void {
    if (++this.depth > CONDITION_MAX_DEPTH) throw new ConditionError(`condition nests deeper than ${CONDITION_MAX_DEPTH}`);
  }
  private leave(): void {
    this.depth--;
  }

  parseAll(): Node {
    const e = this.expr();
    const t = this.peek();
    if (t.k !== 'end') throw new ConditionError(`unexpected token at ${t.p}`);
    return e;
  }

  private expr(): Node {
    this.enter();
    let l = this.andExpr();
    while (this.isName('or')) {
      this.next();
      l = { t: 'or', l, r: this.andExpr() };
    }
    this.leave();
    return l;
  }
  private andExpr(): Node {
    let l = this.notExpr();
    while (this.isName('and')) {
      this.next();
      l = { t: 'and', l, r: this.notExpr() };
    }
    return l;
  }
  private notExpr(): Node {
    if (this.isName('not')) {
      this.next();
      this.enter();
      const e = this.notExpr();
      this.leave();
      return { t: 'not', e };
    }
    return this.cmp();
  }
  private cmp(): Node {
    const l = this.postfix();
    const t = this.peek();
    if (t.k === 'op' && (t.v === '==' || t.v === '!=')) {
      this.next();
      return { t: 'cmp', op: t.v, l, r: this.postfix() };
    }
    if (t.k === 'name' && t.v === 'in') {
      this.next();
      return { t: 'cmp', op: 'in', l, r: this.postfix() };
    }
    if (t.k === 'name' && t.v === 'not') {
      const after = this.toks[this.i + 1];
      if (after && after.k === 'name' && after.v === 'in') {
        this.i += 2;
        return { t: 'cmp', op: 'not in', l, r: this.postfix() };
      }
    }
    return l;
  }
  private postfix(): Node {
    let e = this.primary();
    for (;;) {
      if (this.isOp('[')) {
        const p = this.next().p;
        if (e.t !== 'event') throw new ConditionError(`subscript is only supported on event (at ${p})`);
        const key = this.expr();
        this.expectOp(']');
        e = { t: 'index', obj: e, key };
        continue;
      }
      if (this.isOp('.')) {
        const p = this.next().p;
        const name = this.next();
        if (name.k !== 'name') throw new ConditionError(`expected a method name at ${p}`);
        this.expectOp('(');
        const args: Node[] = [];
        if (!this.isOp(')')) {
          args.push(this.expr());
          while (this.isOp(',')) {
            this.next();
            args.push(this.expr());
          }
        }
        this.expectOp(')');
        if (name.v === 'get') {
          if (e.t !== 'event') throw new ConditionError(`.get() is only supported on event (at ${name.p})`);
          if (args.length < 1 || args.length > 2) throw new ConditionError(`event.get() takes 1 or 2 arguments (at ${name.p})`);
          e = { t: 'get', obj: e, key: args[0]!, ...(args[1] ? { def: args[1] } : {}) };
        } else if (name.v === 'startswith' || name.v === 'endswith') {
          if (args.length !== 1) throw new ConditionError(`.${name.v}() takes 1 argument (at ${name.p})`);
          e = { t: 'strfn', fn: name.v, obj: e, arg: args[0]! };
        } else {
          throw new ConditionError(`attribute .${name.v} is not supported (only get, startswith, endswith)`);
        }
        continue;
      }
      return e;
    }
  }
  private primary(): Node {
    const t = this.next();
    if (t.k === 'str') {
      // Python joins adjacent string literals
      let v = t.v;
      while (this.peek().k === 'str') v += (this.next() as { v: string }).v;
      return { t: 'lit', v };
    }
    if (t.k === 'num') return { t: 'lit', v: t.v };
    if (t.k === 'name') {
      if (t.v === 'True') return { t: 'lit', v: true };
      if (t.v === 'False') return { t: 'lit', v: false };
      if (t.v === 'None') return { t: 'lit', v: null };
      if (t.v === 'event') return { t: 'event' };
      throw new ConditionError(`name ${JSON.stringify(t.v)} is not supported (only event, True, False, None)`);
    }
    if (t.k === 'op' && t.v === '(') {
      if (this.isOp(')')) throw new ConditionError(`empty tuple at ${t.p}`);
      const first = this.expr();
      if (this.isOp(',')) return this.listTail(first, ')');
      this.expectOp(')');
      return first;
    }
    if (t.k === 'op' && t.v === '[') {
      if (this.isOp(']')) {
        this.next();
        return { t: 'list', items: [] };
      }
      return this.listTail(this.expr(), ']');
    }
    throw new ConditionError(t.k === 'end' ? 'unexpected end of condition' : `unexpected token at ${t.p}`);
  }
  private listTail(first: Node, close: string): Node {
    const items = [first];
    while (this.isOp(',')) {
      this.next();
      if (this.isOp(close)) break;
      items.push(this.expr());
    }
    this.expectOp(close);
    for (const it of items) if (it.t !== 'lit') throw new ConditionError('list items must be literals');
    return { t: 'list', items };
  }
}

// Control flow inside one evaluation, never seen outside test() (it makes the condition false,
// as Python's KeyError / TypeError would): not part of the error model.
class MissingKey extends Error {}
class TypeMismatch extends Error {}

function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false) return false;
  if (v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

function pyEq(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => pyEq(x, b[i]));
  if (typeof a === 'boolean' && typeof b === 'number') return (a ? 1 : 0) === b;
  if (typeof b === 'boolean' && typeof a === 'number') return (b ? 1 : 0) === a;
  return a === b;
}

function evalNode(n: Node, ev: EventObj): unknown {
  switch (n.t) {
    case 'lit':
      return n.v;
    case 'list':
      return n.items.map((x) => evalNode(x, ev));
    case 'event':
      return ev;
    case 'index': {
      const k = evalNode(n.key, ev);
      if (typeof k !== 'string') throw new MissingKey();
      if (!Object.prototype.hasOwnProperty.call(ev, k)) throw new MissingKey();
      return ev[k];
    }
    case 'get': {
      const k = evalNode(n.key, ev);
      if (typeof k === 'string' && Object.prototype.hasOwnProperty.call(ev, k)) return ev[k];
      return n.def ? evalNode(n.def, ev) : null;
    }
    case 'strfn': {
      const s = evalNode(n.obj, ev);
      const a = evalNode(n.arg, ev);
      if (typeof s !== 'string') throw new TypeMismatch();
      const pats = Array.isArray(a) ? a : [a];
      for (const p of pats) {
        if (typeof p !== 'string') throw new TypeMismatch();
        if (n.fn === 'startswith' ? s.startsWith(p) : s.endsWith(p)) return true;
      }
      return false;
    }
    case 'not':
      return !truthy(evalNode(n.e, ev));
    case 'and': {
      const l = evalNode(n.l, ev);
      return truthy(l) ? evalNode(n.r, ev) : l;
    }
    case 'or': {
      const l = evalNode(n.l, ev);
      return truthy(l) ? l : evalNode(n.r, ev);
    }
    case 'cmp': {
      const l = evalNode(n.l, ev);
      const r = evalNode(n.r, ev);
      if (n.op === '==') return pyEq(l, r);
      if (n.op === '!=') return !pyEq(l, r);
      let found: boolean;
      if (Array.isArray(r)) found = r.some((x) => pyEq(l, x));
      else if (typeof r === 'string' && typeof l === 'string') found = r.includes(l);
      else if (r !== null && typeof r === 'object' && typeof l === 'string') found = Object.prototype.hasOwnProperty.call(r, l);
      else throw new TypeMismatch();
      return n.op === 'in' ? found : !found;
    }
  }
}

export interface CompiledCondition {
  readonly source: string;
  /** true when the event matches; a missing key or a type error gives false (Python would raise) */
  test(event: EventObj): boolean;
}

/** Compile a condition; throws ConditionError for anything outside the supported subset. */
export function compileCondition(source: string): CompiledCondition {
  if (typeof source !== 'string') throw new ConditionError('condition is not a string');
  if (source.length > CONDITION_MAX_LENGTH) throw new ConditionError(`condition is longer than ${CONDITION_MAX_LENGTH} characters`);
  const ast = new Parser(tokenize(source)).parseAll();
  return {
    source,
    test(event: EventObj): boolean {
      try {
        return truthy(evalNode(ast, event));
      } catch (e) {
        if (e instanceof MissingKey || e instanceof TypeMismatch) return false;
        throw e;
      }
    },
  };
}

export type { Value as ConditionValue };
