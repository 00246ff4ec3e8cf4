/**
 * The expression language of cross-field rules (`check:` of `validate.rules[]`): parsed once at
 * start-up into an AST and compiled into closures; user text is never evaluated as JavaScript.
 *
 *   shipped_at >= ordered_at
 *   status != 'shipped' or shipped_at is not null
 *   total = sum(line_totals)
 *   abs(balance - credit) <= 1000.50 and len(name) > 0
 *
 * Grammar (keywords are case-insensitive):
 *   expr    := or
 *   or      := and (('or' | '||') and)*
 *   and     := not (('and' | '&&') not)*
 *   not     := ('not' | '!') not | cmp
 *   cmp     := sum (('=' | '==' | '!=' | '<>' | '<' | '<=' | '>' | '>=') sum)? | sum 'is' 'not'? 'null'
 *   sum     := term (('+' | '-') term)*
 *   term    := unary (('*' | '/' | '%') unary)*
 *   unary   := '-' unary | primary
 *   primary := number | 'text' ('' is a quote) | true | false | null | field | fn '(' args ')' | '(' expr ')'
 *   fn      := sum(array) | len(text or array) | abs(number) | coalesce(a, b, …)
 *
 * Semantics, as in an SQL CHECK constraint:
 *  - null (a missing or NULL field) propagates: `null > 1` is null, `null and false` is false,
 *    `null or true` is true; a check fails only when it evaluates to false. Use `is not null` (or the
 *    field's `required`) to insist on a value.
 *  - Numbers are exact: int (number), int8 (bigint) and numeric (decimal strings of numeric columns or
 *    of fields declared `type: number|integer`) are compared and added as decimals, so
 *    `9.99 + 9.99 + 9.99 = 29.97` holds. Division keeps 20 decimal places. A text operand of
 *    arithmetic must read as a number.
 *  - Dates and timestamps (canonical strings) compare by time, also against literals:
 *    `ordered_at >= '2020-01-01'`. Other text compares by code unit.
 *  - Comparing values of different kinds (text with a number, a boolean with a date) is an
 *    evaluation error: the rule fails with the reason, so a mistake in a rule is never silent.
 */
import type { Row, Value } from '../../core/envelope.js';
import { arith, codePoints, Dec, looksTemporal, numAbs, numCmp, type Num, parseDecimal, parseTemporal, sameCanonicalShape, cleanNumber } from './values.js';

/** A value during evaluation: a canonical value, or an exact decimal produced by arithmetic. */
export type EV = Value | Dec;

export interface EvalContext {
  /** SQL types of the record's columns (SinkRecord.columnTypes): tells numeric columns' decimal strings apart. */
  columnTypes?: Record<string, string>;
}

export type Evaluator = (row: Row, ctx: EvalContext) => EV;

/** A syntax or compile error; `pos` is the 0-based offset in the expression text. */
export class ExprError extends Error {
  constructor(
    message: string,
    readonly pos: number,
  ) {
    super(message);
    this.name = 'ExprError';
  }
}

/**
 * A failure while evaluating (kinds that cannot be compared, text in arithmetic, …). `safeMessage`
 * says the same without any value, for rules that read masked fields.
 */
export class EvalFailure extends Error {
  constructor(
    message: string,
    readonly safeMessage: string = message,
  ) {
    super(message);
    this.name = 'EvalFailure';
  }
}

/** An EvalFailure whose message names values (`d` = describe) and whose safe message names kinds only. */
function fail(make: (d: (v: EV) => string) => string): EvalFailure {
  return new EvalFailure(make(describe), make(kind));
}

// ---------------------------------------------------------------------------------------------
// Tokens

type TokKind = 'num' | 'str' | 'id' | 'op' | 'eof';
interface Tok {
  k: TokKind;
  v: string;
  pos: number;
}

const OPS = ['<=', '>=', '!=', '<>', '==', '&&', '||', '=', '<', '>', '+', '-', '*', '/', '%', '(', ')', ',', '!'];

function tokenize(text: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(text[i + 1] ?? ''))) {
      const m = /^(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/.exec(text.slice(i))!;
      i += m[0].length;
      if (/[A-Za-z_]/.test(text[i] ?? '')) throw new ExprError(`unexpected '${text[i]}' after the number ${m[0]}`, i);
      out.push({ k: 'num', v: m[0], pos: start });
      continue;
    }
    if (c === "'") {
      let s = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new ExprError('unterminated text literal (a quote inside is written twice: \'it\'\'s\')', start);
        if (text[i] === "'") {
          if (text[i + 1] === "'") {
            s += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        s += text[i++];
      }
      out.push({ k: 'str', v: s, pos: start });
      continue;
    }
    if (c === '"') throw new ExprError("text literals are written in single quotes: 'like this'", i);
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))!;
      i += m[0].length;
      out.push({ k: 'id', v: m[0], pos: start });
      continue;
    }
    const op = OPS.find((o) => text.startsWith(o, i));
    if (!op) throw new ExprError(`unexpected character '${c}'`, i);
    i += op.length;
    out.push({ k: 'op', v: op, pos: start });
  }
  out.push({ k: 'eof', v: '', pos: text.length });
  return out;
}

// ---------------------------------------------------------------------------------------------
// AST

type CmpOp = '=' | '!=' | '<' | '<=' | '>' | '>=';
type ArithOp = '+' | '-' | '*' | '/' | '%';
export type Node =
  | { k: 'lit'; v: EV; pos: number }
  | { k: 'ref'; name: string; pos: number }
  | { k: 'neg'; x: Node; pos: number }
  | { k: 'not'; x: Node; pos: number }
  | { k: 'logic'; op: 'and' | 'or'; a: Node; b: Node; pos: number }
  | { k: 'cmp'; op: CmpOp; a: Node; b: Node; pos: number }
  | { k: 'arith'; op: ArithOp; a: Node; b: Node; pos: number }
  | { k: 'isnull'; x: Node; negate: boolean; pos: number }
  | { k: 'call'; fn: string; args: Node[]; pos: number };

const KEYWORDS = new Set(['and', 'or', 'not', 'is', 'null', 'true', 'false']);
const FUNCTIONS: Record<string, { min: number; max: number; doc: string }> = {
  sum: { min: 1, max: 1, doc: 'sum(array)' },
  len: { min: 1, max: 1, doc: 'len(text or array)' },
  abs: { min: 1, max: 1, doc: 'abs(number)' },
  coalesce: { min: 1, max: 32, doc: 'coalesce(a, b, …)' },
};

const describeTok = (t: Tok) => (t.k === 'eof' ? 'the end' : t.k === 'str' ? `'${t.v}'` : `'${t.v}'`);

class Parser {
  private i = 0;
  constructor(private readonly toks: Tok[]) {}

  private peek(): Tok {
    return this.toks[this.i]!;
  }
  private next(): Tok {
    return this.toks[this.i++]!;
  }
  private isKw(t: Tok, kw: string): boolean {
    return t.k === 'id' && t.v.toLowerCase() === kw;
  }
  private isOp(t: Tok, ...ops: string[]): boolean {
    return t.k === 'op' && ops.includes(t.v);
  }

  parse(): Node {
    if (this.peek().k === 'eof') throw new ExprError('empty expression', 0);
    const n = this.or();
    const t = this.peek();
    if (t.k !== 'eof') throw new ExprError(`unexpected ${describeTok(t)} (expected an operator or the end)`, t.pos);
    return n;
  }

  private or(): Node {
    let a = this.and();
    for (;;) {
      const t = this.peek();
      if (!this.isKw(t, 'or') && !this.isOp(t, '||')) return a;
      this.next();
      a = { k: 'logic', op: 'or', a, b: this.and(), pos: t.pos };
    }
  }

  private and(): Node {
    let a = this.not();
    for (;;) {
      const t = this.peek();
      if (!this.isKw(t, 'and') && !this.isOp(t, '&&')) return a;
      this.next();
      a = { k: 'logic', op: 'and', a, b: this.not(), pos: t.pos };
    }
  }

  private not(): Node {
    const t = this.peek();
    if (this.isKw(t, 'not') || this.isOp(t, '!')) {
      this.next();
      return { k: 'not', x: this.not(), pos: t.pos };
    }
    return this.cmp();
  }

  private cmp(): Node {
    const a = this.sum();
    const t = this.peek();
    if (this.isOp(t, '=', '==', '!=', '<>', '<', '<=', '>', '>=')) {
      this.next();
      const op = (t.v === '==' ? '=' : t.v === '<>' ? '!=' : t.v) as CmpOp;
      const b = this.sum();
      const after = this.peek();
      if (this.isOp(after, '=', '==', '!=', '<>', '<', '<=', '>', '>=')) throw new ExprError(`comparisons do not chain: write 'a ${t.v} b and b ${after.v} c'`, after.pos);
      return { k: 'cmp', op, a, b, pos: t.pos };
    }
    if (this.isKw(t, 'is')) {
      this.next();
      let negate = false;
      if (this.isKw(this.peek(), 'not')) {
        this.next();
        negate = true;
      }
      const n = this.next();
      if (!this.isKw(n, 'null')) throw new ExprError(`expected 'null' after '${negate ? 'is not' : 'is'}', found ${describeTok(n)}`, n.pos);
      return { k: 'isnull', x: a, negate, pos: t.pos };
    }
    return a;
  }

  private sum(): Node {
    let a = this.term();
    for (;;) {
      const t = this.peek();
      if (!this.isOp(t, '+', '-')) return a;
      this.next();
      a = { k: 'arith', op: t.v as ArithOp, a, b: this.term(), pos: t.pos };
    }
  }

  private term(): Node {
    let a = this.unary();
    for (;;) {
      const t = this.peek();
      if (!this.isOp(t, '*', '/', '%')) return a;
      this.next();
      a = { k: 'arith', op: t.v as ArithOp, a, b: this.unary(), pos: t.pos };
    }
  }

  private unary(): Node {
    const t = this.peek();
    if (this.isOp(t, '-')) {
      this.next();
      return { k: 'neg', x: this.unary(), pos: t.pos };
    }
    if (this.isOp(t, '+')) {
      this.next();
      return this.unary();
    }
    return this.primary();
  }

  private primary(): Node {
    const t = this.next();
    if (t.k === 'num') {
      const n = cleanNumber(t.v);
      return { k: 'lit', v: n !== undefined ? n : (parseDecimal(t.v) as Dec), pos: t.pos };
    }
    if (t.k === 'str') return { k: 'lit', v: t.v, pos: t.pos };
    if (this.isOp(t, '(')) {
      const n = this.or();
      const close = this.next();
      if (!this.isOp(close, ')')) throw new ExprError(`expected ')', found ${describeTok(close)}`, close.pos);
      return n;
    }
    if (t.k === 'id') {
      const lower = t.v.toLowerCase();
      if (lower === 'true' || lower === 'false') return { k: 'lit', v: lower === 'true', pos: t.pos };
      if (lower === 'null') return { k: 'lit', v: null, pos: t.pos };
      if (this.isOp(this.peek(), '(')) {
        const fn = FUNCTIONS[lower];
        if (!fn) throw new ExprError(`unknown function '${t.v}' (functions: ${Object.values(FUNCTIONS).map((f) => f.doc).join(', ')})`, t.pos);
        this.next();
        const args: Node[] = [];
        if (!this.isOp(this.peek(), ')')) {
          for (;;) {
            args.push(this.or());
            const sep = this.next();
            if (this.isOp(sep, ')')) break;
            if (!this.isOp(sep, ',')) throw new ExprError(`expected ',' or ')' in the arguments of ${lower}(), found ${describeTok(sep)}`, sep.pos);
          }
        } else this.next();
        if (args.length < fn.min || args.length > fn.max) throw new ExprError(`${lower}() takes ${fn.min === fn.max ? fn.min : `${fn.min} or more`} argument${fn.max === 1 ? '' : 's'}: ${fn.doc}`, t.pos);
        return { k: 'call', fn: lower, args, pos: t.pos };
      }
      if (KEYWORDS.has(lower)) throw new ExprError(`unexpected '${t.v}' (expected a value)`, t.pos);
      return { k: 'ref', name: t.v, pos: t.pos };
    }
    throw new ExprError(`expected a value (a field, a number, 'text', true, false, null, a function or '('), found ${describeTok(t)}`, t.pos);
  }
}

export function parseExpression(text: string): Node {
  return new Parser(tokenize(text)).parse();
}

// ---------------------------------------------------------------------------------------------
// Static checks

type Shape = 'bool' | 'value' | 'any';
function shapeOf(n: Node): Shape {
  switch (n.k) {
    case 'lit':
      return typeof n.v === 'boolean' || n.v === null ? (n.v === null ? 'any' : 'bool') : 'value';
    case 'ref':
      return 'any';
    case 'not':
    case 'logic':
    case 'cmp':
    case 'isnull':
      return 'bool';
    case 'neg':
    case 'arith':
      return 'value';
    case 'call':
      return n.fn === 'coalesce' ? 'any' : 'value';
  }
}

function checkShapes(n: Node): void {
  const wantBool = (x: Node, what: string) => {
    if (shapeOf(x) === 'value') throw new ExprError(`${what} needs a condition (a comparison, and/or/not, is null), not a value`, x.pos);
  };
  const wantValue = (x: Node, what: string) => {
    if (shapeOf(x) === 'bool') throw new ExprError(`${what} needs a value, not a condition`, x.pos);
  };
  switch (n.k) {
    case 'not':
      wantBool(n.x, "'not'");
      checkShapes(n.x);
      return;
    case 'logic':
      wantBool(n.a, `'${n.op}'`);
      wantBool(n.b, `'${n.op}'`);
      checkShapes(n.a);
      checkShapes(n.b);
      return;
    case 'arith':
      wantValue(n.a, `'${n.op}'`);
      wantValue(n.b, `'${n.op}'`);
      checkShapes(n.a);
      checkShapes(n.b);
      return;
    case 'neg':
      wantValue(n.x, "'-'");
      checkShapes(n.x);
      return;
    case 'cmp':
      checkShapes(n.a);
      checkShapes(n.b);
      return;
    case 'isnull':
      checkShapes(n.x);
      return;
    case 'call':
      if (n.fn !== 'coalesce') for (const a of n.args) wantValue(a, `${n.fn}()`);
      for (const a of n.args) checkShapes(a);
      return;
    default:
      return;
  }
}

/** Field names an expression reads, in order of first use. */
export function fieldRefs(n: Node, out: string[] = []): string[] {
  switch (n.k) {
    case 'ref':
      if (!out.includes(n.name)) out.push(n.name);
      break;
    case 'neg':
    case 'not':
    case 'isnull':
      fieldRefs(n.x, out);
      break;
    case 'logic':
    case 'cmp':
    case 'arith':
      fieldRefs(n.a, out);
      fieldRefs(n.b, out);
      break;
    case 'call':
      for (const a of n.args) fieldRefs(a, out);
      break;
    default:
      break;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

const NUMERIC_TYPE = /^(numeric|decimal)\b/i;

export function describe(v: EV): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return `text '${v.length > 40 ? `${v.slice(0, 37)}...` : v}'`;
  if (typeof v === 'number' || typeof v === 'bigint') return `number ${String(v)}`;
  if (v instanceof Dec) return `number ${v.toString()}`;
  if (typeof v === 'boolean') return `boolean ${v}`;
  if (Buffer.isBuffer(v)) return 'bytes';
  return 'array';
}

export function kind(v: EV): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return 'text';
  if (typeof v === 'number' || typeof v === 'bigint' || v instanceof Dec) return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (Buffer.isBuffer(v)) return 'bytes';
  return 'array';
}

const isNum = (v: EV): v is Num => typeof v === 'number' || typeof v === 'bigint' || v instanceof Dec;

function toNumOrFail(v: EV, what: string): Num {
  if (isNum(v)) return v;
  if (typeof v === 'string') {
    const d = parseDecimal(v);
    if (d !== undefined) return d;
  }
  throw fail((d) => `${what}: ${d(v)} is not a number`);
}

/** Order of two non-null values; undefined when unordered (NaN). Throws EvalFailure for different kinds. */
export function compareValues(a: EV, b: EV): number | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : a === b ? 0 : undefined;
  if (typeof a === 'string' && typeof b === 'string') {
    if (sameCanonicalShape(a, b)) return a < b ? -1 : a > b ? 1 : 0;
    if (looksTemporal(a) && looksTemporal(b)) {
      const x = parseTemporal(a);
      const y = parseTemporal(b);
      if (x && y) return x.ms < y.ms ? -1 : x.ms > y.ms ? 1 : 0;
    }
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (isNum(a) || isNum(b)) {
    const x = isNum(a) ? a : typeof a === 'string' ? parseDecimal(a) : undefined;
    const y = isNum(b) ? b : typeof b === 'string' ? parseDecimal(b) : undefined;
    if (x === undefined || y === undefined) throw fail((d) => `cannot compare ${d(a)} with ${d(b)}`);
    return numCmp(x, y);
  }
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  throw fail((d) => `cannot compare ${d(a)} with ${d(b)}`);
}

function truth(v: EV, what: string): boolean | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v;
  throw fail((d) => `${what} needs true or false, got ${d(v)}`);
}


function compileNode(n: Node, numericFields: ReadonlySet<string>): Evaluator {
  switch (n.k) {
    case 'lit': {
      const v = n.v;
      return () => v;
    }
    case 'ref': {
      const name = n.name;
      const declared = numericFields.has(name);
      // A field named like a property every object has (toString, constructor, __proto__): read
      // only if the row has it, or a row without it would give Object.prototype's.
      const inherited = name in Object.prototype;
      return (row, ctx) => {
        const v = inherited && !Object.hasOwn(row, name) ? undefined : row[name];
        if (v === undefined || v === null) return null;
        if (typeof v === 'string' && (declared || (ctx.columnTypes !== undefined && NUMERIC_TYPE.test(ctx.columnTypes[name] ?? '')))) {
          const d = parseDecimal(v);
          if (d === undefined) throw fail((f) => `field ${name}: ${f(v)} is not a number`);
          return d;
        }
        return v;
      };
    }
    case 'neg': {
      const x = compileNode(n.x, numericFields);
      return (row, ctx) => {
        const v = x(row, ctx);
        if (v === null) return null;
        const num = toNumOrFail(v, "'-'");
        return typeof num === 'number' ? -num : typeof num === 'bigint' ? -num : new Dec(-num.m, num.s);
      };
    }
    case 'not': {
      const x = compileNode(n.x, numericFields);
      return (row, ctx) => {
        const v = truth(x(row, ctx), "'not'");
        return v === null ? null : !v;
      };
    }
    case 'logic': {
      const a = compileNode(n.a, numericFields);
      const b = compileNode(n.b, numericFields);
      if (n.op === 'and') {
        return (row, ctx) => {
          const x = truth(a(row, ctx), "'and'");
          if (x === false) return false;
          const y = truth(b(row, ctx), "'and'");
          if (y === false) return false;
          return x === null || y === null ? null : true;
        };
      }
      return (row, ctx) => {
        const x = truth(a(row, ctx), "'or'");
        if (x === true) return true;
        const y = truth(b(row, ctx), "'or'");
        if (y === true) return true;
        return x === null || y === null ? null : false;
      };
    }
    case 'cmp': {
      const a = compileNode(n.a, numericFields);
      const b = compileNode(n.b, numericFields);
      const op = n.op;
      const test: (c: number) => boolean =
        op === '=' ? (c) => c === 0 : op === '!=' ? (c) => c !== 0 : op === '<' ? (c) => c < 0 : op === '<=' ? (c) => c <= 0 : op === '>' ? (c) => c > 0 : (c) => c >= 0;
      return (row, ctx) => {
        const x = a(row, ctx);
        if (x === null) return null;
        const y = b(row, ctx);
        if (y === null) return null;
        if (Array.isArray(x) || Array.isArray(y) || Buffer.isBuffer(x) || Buffer.isBuffer(y)) throw fail((d) => `cannot compare ${d(x)} with ${d(y)}`);
        const c = compareValues(x, y);
        return c === undefined ? null : test(c);
      };
    }
    case 'arith': {
      const a = compileNode(n.a, numericFields);
      const b = compileNode(n.b, numericFields);
      const op = n.op;
      return (row, ctx) => {
        const x = a(row, ctx);
        if (x === null) return null;
        const y = b(row, ctx);
        if (y === null) return null;
        return arith(op, toNumOrFail(x, `'${op}'`), toNumOrFail(y, `'${op}'`));
      };
    }
    case 'isnull': {
      const x = compileNode(n.x, numericFields);
      const negate = n.negate;
      return (row, ctx) => {
        const v = x(row, ctx);
        return (v === null || v === undefined) !== negate;
      };
    }
    case 'call': {
      const args = n.args.map((a) => compileNode(a, numericFields));
      const first = args[0]!;
      switch (n.fn) {
        case 'sum':
          return (row, ctx) => {
            const v = first(row, ctx);
            if (v === null) return null;
            if (!Array.isArray(v)) throw fail((d) => `sum() needs an array, got ${d(v)}`);
            let total: Num = 0;
            for (const item of v) {
              if (item === null) continue;
              if (Array.isArray(item)) throw new EvalFailure('sum() of a nested array');
              total = arith('+', total, toNumOrFail(item, 'sum()'))!;
            }
            return total;
          };
        case 'len':
          return (row, ctx) => {
            const v = first(row, ctx);
            if (v === null) return null;
            if (typeof v === 'string') return codePoints(v);
            if (Array.isArray(v)) return v.length;
            throw fail((d) => `len() needs text or an array, got ${d(v)}`);
          };
        case 'abs':
          return (row, ctx) => {
            const v = first(row, ctx);
            return v === null ? null : numAbs(toNumOrFail(v, 'abs()'));
          };
        default: // coalesce
          return (row, ctx) => {
            for (const a of args) {
              const v = a(row, ctx);
              if (v !== null && v !== undefined) return v;
            }
            return null;
          };
      }
    }
  }
}

export interface CompiledCheck {
  /** true: holds; false: violated; null: unknown (a null operand), which passes like an SQL CHECK. */
  test: (row: Row, ctx: EvalContext) => boolean | null;
  /** Fields the expression reads. */
  refs: string[];
}

/**
 * Parse and compile a check. `numericFields`: fields declared `type: number|integer`, whose text
 * values read as numbers. Throws ExprError (with the position) when the text is not a condition.
 */
export function compileCheck(text: string, numericFields: ReadonlySet<string> = new Set()): CompiledCheck {
  const ast = parseExpression(text);
  if (shapeOf(ast) === 'value') throw new ExprError('a check must be a condition (a comparison, and/or/not, is null), not a value', ast.pos);
  checkShapes(ast);
  const fn = compileNode(ast, numericFields);
  return { test: (row, ctx) => truth(fn(row, ctx), 'a check'), refs: fieldRefs(ast) };
}

export interface CompiledExpression {
  /** The value of the expression (a condition gives true/false/null; arithmetic an exact number). */
  value: Evaluator;
  /** Fields the expression reads. */
  refs: string[];
}

/** Parse and compile an expression giving a value (computed columns of transforms). Throws ExprError. */
export function compileExpression(text: string, numericFields: ReadonlySet<string> = new Set()): CompiledExpression {
  const ast = parseExpression(text);
  checkShapes(ast);
  return { value: compileNode(ast, numericFields), refs: fieldRefs(ast) };
}
