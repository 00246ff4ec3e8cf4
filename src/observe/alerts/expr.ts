/**
 * The alert expression language: a small subset of PromQL, so that one rule text is evaluated here
 * (over the process's own Registry, sampled in memory, see ./samples.ts) and exported unchanged to
 * Prometheus (prometheus/alerts.yml, see ./export.ts).
 *
 *   condition  := arith CMP number                     CMP: > < >= <= == !=
 *   arith      := term (('+'|'-') term)*
 *   term       := primary (('*'|'/') primary)*
 *   primary    := number | '(' arith ')' | aggregate | range | selector
 *   aggregate  := AGG [by (l, ...)] '(' arith ')' [by (l, ...)]    AGG: sum max min avg count
 *   range      := ('rate'|'increase') '(' selector '[' duration ']' ')'
 *   selector   := metric_name ['{' label OP "value", ... '}']      OP: = != =~ !~
 *   duration   := PromQL duration: 30s, 5m, 1h30m (units ms s m h d w y)
 *   number     := 10000, 0.01, 1e9 (plain numbers, no unit suffixes)
 *
 * Semantics follow PromQL: a selector gives one element per series; arithmetic between two vectors
 * matches elements with identical label sets (one-to-one, no on()/ignoring()), so a ratio of two
 * metrics with different labels needs `sum by (...)` on both sides; a vector and a number combine
 * element-wise; the comparison keeps the elements for which it holds, each becoming one alert
 * (labels: the element's). Differences, documented: increase() is the counter growth between the
 * last sample at or before the window start (else the first in the window) and the newest one, with
 * counter resets handled but without Prometheus' extrapolation; rate() = increase() / window seconds.
 */

export type Matcher = { label: string; op: '=' | '!=' | '=~' | '!~'; value: string; re?: RegExp };
export type Node =
  | { t: 'num'; v: number }
  | { t: 'sel'; name: string; matchers: Matcher[] }
  | { t: 'range'; fn: 'rate' | 'increase'; sel: { name: string; matchers: Matcher[] }; windowMs: number }
  | { t: 'agg'; op: 'sum' | 'max' | 'min' | 'avg' | 'count'; by?: string[]; arg: Node }
  | { t: 'bin'; op: '+' | '-' | '*' | '/'; l: Node; r: Node };
export type Cmp = '>' | '<' | '>=' | '<=' | '==' | '!=';

export interface Condition {
  text: string;
  expr: Node;
  cmp: Cmp;
  threshold: number;
}

export type Labels = Record<string, string>;
export interface Element {
  labels: Labels;
  value: number;
}

/** What the evaluator reads: the newest sample of each series, and the samples of a range. */
export interface SampleSource {
  instant(name: string): Element[];
  range(name: string, windowMs: number, now: number): { labels: Labels; points: [number, number][] }[];
}

export class ExprError extends Error {}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, y: 31_536_000_000 };
const DURATION = /^(?:\d+(?:ms|s|m|h|d|w|y))+$/;

/** A PromQL duration ('90s', '2m', '1h30m') in ms; throws ExprError when it is not one. */
export function parseDuration(text: string): number {
  if (!DURATION.test(text)) throw new ExprError(`invalid duration '${text}' (expected e.g. 30s, 5m, 1h30m)`);
  let ms = 0;
  for (const m of text.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
  return ms;
}
export const isDuration = (text: string) => DURATION.test(text);

type Tok = { k: 'id' | 'num' | 'str' | 'dur' | 'p'; v: string; at: number };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) { i++; continue; }
    const rest = src.slice(i);
    let m: RegExpExecArray | null;
    if (out.at(-1)?.v === '[' && (m = /^\d+(?:ms|s|m|h|d|w|y)(?:\d+(?:ms|s|m|h|d|w|y))*/.exec(rest))) {
      out.push({ k: 'dur', v: m[0], at: i }); i += m[0].length; continue;
    }
    if ((m = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(rest))) {
      if (/^[A-Za-z_]/.test(rest.slice(m[0].length))) throw new ExprError(`at ${i + 1}: a number with a unit ('${rest.slice(0, m[0].length + 2)}…') is not supported: write a plain number`);
      out.push({ k: 'num', v: m[0], at: i }); i += m[0].length; continue;
    }
    if ((m = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(rest))) { out.push({ k: 'id', v: m[0], at: i }); i += m[0].length; continue; }
    if (c === '"' || c === "'") {
      let j = i + 1;
      let s = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) { s += src[j + 1]; j += 2; } else s += src[j++];
      }
      if (j >= src.length) throw new ExprError(`at ${i + 1}: unterminated string`);
      out.push({ k: 'str', v: s, at: i }); i = j + 1; continue;
    }
    if ((m = /^(?:!=|=~|!~|>=|<=|==|[(){}[\],=<>+\-*/])/.exec(rest))) { out.push({ k: 'p', v: m[0], at: i }); i += m[0].length; continue; }
    throw new ExprError(`at ${i + 1}: unexpected '${c}'`);
  }
  return out;
}

const AGGS = new Set(['sum', 'max', 'min', 'avg', 'count']);
const CMPS = new Set(['>', '<', '>=', '<=', '==', '!=']);
const LABEL = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Parse a rule expression; throws ExprError with the position of the mistake. */
export function parseCondition(text: string): Condition {
  const toks = tokenize(text);
  let p = 0;
  const peek = () => toks[p];
  const where = () => (peek() ? `at ${peek()!.at + 1}` : 'at the end');
  const eat = (v: string) => {
    const t = peek();
    if (!t || t.v !== v || t.k === 'str') throw new ExprError(`${where()}: expected '${v}'${t ? `, found '${t.v}'` : ''}`);
    p++;
  };
  const labels = (): string[] => {
    eat('(');
    const out: string[] = [];
    while (peek()?.v !== ')') {
      const t = peek();
      if (!t || t.k !== 'id' || !LABEL.test(t.v)) throw new ExprError(`${where()}: expected a label name`);
      out.push(t.v); p++;
      if (peek()?.v === ',') p++; else break;
    }
    eat(')');
    return out;
  };
  const selector = (): { name: string; matchers: Matcher[] } => {
    const t = peek();
    if (!t || t.k !== 'id') throw new ExprError(`${where()}: expected a metric name`);
    p++;
    const matchers: Matcher[] = [];
    if (peek()?.v === '{') {
      p++;
      while (peek()?.v !== '}') {
        const l = peek();
        if (!l || l.k !== 'id' || !LABEL.test(l.v)) throw new ExprError(`${where()}: expected a label name`);
        p++;
        const op = peek();
        if (!op || !['=', '!=', '=~', '!~'].includes(op.v) || op.k !== 'p') throw new ExprError(`${where()}: expected =, !=, =~ or !~`);
        p++;
        const v = peek();
        if (!v || v.k !== 'str') throw new ExprError(`${where()}: expected a quoted label value`);
        p++;
        const m: Matcher = { label: l.v, op: op.v as Matcher['op'], value: v.v };
        if (m.op === '=~' || m.op === '!~') {
          try { m.re = new RegExp(`^(?:${v.v})$`); } catch (err) { throw new ExprError(`invalid regular expression ${JSON.stringify(v.v)}: ${(err as Error).message}`); }
        }
        matchers.push(m);
        if (peek()?.v === ',') p++; else break;
      }
      eat('}');
    }
    return { name: t.v, matchers };
  };
  const primary = (): Node => {
    const t = peek();
    if (!t) throw new ExprError('unexpected end of expression');
    if (t.k === 'num') { p++; return { t: 'num', v: Number(t.v) }; }
    if (t.v === '(' && t.k === 'p') { p++; const e = arith(); eat(')'); return e; }
    if (t.k === 'id' && AGGS.has(t.v) && (toks[p + 1]?.v === '(' || toks[p + 1]?.v === 'by')) {
      p++;
      let by: string[] | undefined;
      if (peek()?.v === 'by') { p++; by = labels(); }
      eat('(');
      const arg = arith();
      eat(')');
      if (peek()?.v === 'by' && !by) { p++; by = labels(); }
      return { t: 'agg', op: t.v as 'sum', by, arg };
    }
    if (t.k === 'id' && (t.v === 'rate' || t.v === 'increase') && toks[p + 1]?.v === '(') {
      p += 2;
      const sel = selector();
      eat('[');
      const d = peek();
      if (!d || d.k !== 'dur') throw new ExprError(`${where()}: expected a duration like 5m`);
      p++;
      eat(']');
      eat(')');
      return { t: 'range', fn: t.v, sel, windowMs: parseDuration(d.v) };
    }
    if (t.k === 'id') {
      if (toks[p + 1]?.v === '(') throw new ExprError(`at ${t.at + 1}: unknown function '${t.v}' (have rate, increase, sum, max, min, avg, count)`);
      return { t: 'sel', ...selector() };
    }
    throw new ExprError(`${where()}: unexpected '${t.v}'`);
  };
  const term = (): Node => {
    let l = primary();
    while (peek()?.k === 'p' && (peek()!.v === '*' || peek()!.v === '/')) { const op = peek()!.v as '*'; p++; l = { t: 'bin', op, l, r: primary() }; }
    return l;
  };
  const arith = (): Node => {
    let l = term();
    while (peek()?.k === 'p' && (peek()!.v === '+' || peek()!.v === '-')) { const op = peek()!.v as '+'; p++; l = { t: 'bin', op, l, r: term() }; }
    return l;
  };
  const expr = arith();
  const c = peek();
  if (!c || c.k !== 'p' || !CMPS.has(c.v)) throw new ExprError(`${where()}: expected a comparison with a number (> < >= <= == !=)`);
  p++;
  const n = peek();
  if (!n || n.k !== 'num') throw new ExprError(`${where()}: expected a number after '${c.v}'`);
  p++;
  if (peek()) throw new ExprError(`${where()}: unexpected '${peek()!.v}' after the comparison`);
  if (!hasVector(expr)) throw new ExprError('the expression reads no metric');
  return { text, expr, cmp: c.v as Cmp, threshold: Number(n.v) };
}

function hasVector(n: Node): boolean {
  return n.t === 'sel' || n.t === 'range' || n.t === 'agg' || (n.t === 'bin' && (hasVector(n.l) || hasVector(n.r)));
}

/** Metric names a condition reads: instant selectors, and range selectors with their longest window. */
export function referencedMetrics(c: Condition): { instant: Set<string>; ranges: Map<string, number> } {
  const instant = new Set<string>();
  const ranges = new Map<string, number>();
  const walk = (n: Node): void => {
    if (n.t === 'sel') instant.add(n.name);
    else if (n.t === 'range') ranges.set(n.sel.name, Math.max(ranges.get(n.sel.name) ?? 0, n.windowMs));
    else if (n.t === 'agg') walk(n.arg);
    else if (n.t === 'bin') { walk(n.l); walk(n.r); }
  };
  walk(c.expr);
  return { instant, ranges };
}

const matches = (labels: Labels, ms: Matcher[]) => ms.every((m) => {
  const v = labels[m.label] ?? '';
  switch (m.op) {
    case '=': return v === m.value;
    case '!=': return v !== m.value;
    case '=~': return m.re!.test(v);
    case '!~': return !m.re!.test(v);
  }
});

export const signature = (l: Labels) => JSON.stringify(Object.keys(l).sort().map((k) => [k, l[k]]));

/** Counter growth over the points (resets handled, no extrapolation); undefined with fewer than 2 points. */
export function counterIncrease(points: [number, number][]): number | undefined {
  if (points.length < 2) return undefined;
  let inc = 0;
  for (let i = 1; i < points.length; i++) {
    const d = points[i]![1] - points[i - 1]![1];
    inc += d >= 0 ? d : points[i]![1];
  }
  return inc;
}

type Val = number | Element[];

function evalNode(n: Node, src: SampleSource, now: number): Val {
  switch (n.t) {
    case 'num': return n.v;
    case 'sel': return src.instant(n.name).filter((e) => matches(e.labels, n.matchers)).map((e) => ({ labels: { ...e.labels }, value: e.value }));
    case 'range': {
      const out: Element[] = [];
      for (const s of src.range(n.sel.name, n.windowMs, now)) {
        if (!matches(s.labels, n.sel.matchers)) continue;
        const inc = counterIncrease(s.points);
        if (inc === undefined) continue;
        out.push({ labels: { ...s.labels }, value: n.fn === 'rate' ? inc / (n.windowMs / 1000) : inc });
      }
      return out;
    }
    case 'agg': {
      const arg = evalNode(n.arg, src, now);
      if (typeof arg === 'number') throw new ExprError(`${n.op}() needs a metric, not a number`);
      const groups = new Map<string, { labels: Labels; values: number[] }>();
      for (const e of arg) {
        const labels: Labels = {};
        for (const l of n.by ?? []) if (e.labels[l] !== undefined && e.labels[l] !== '') labels[l] = e.labels[l]!;
        const sig = signature(labels);
        let g = groups.get(sig);
        if (!g) groups.set(sig, (g = { labels, values: [] }));
        g.values.push(e.value);
      }
      return [...groups.values()].map((g) => ({ labels: g.labels, value: aggregate(n.op, g.values) }));
    }
    case 'bin': {
      const l = evalNode(n.l, src, now);
      const r = evalNode(n.r, src, now);
      const f = (a: number, b: number) => (n.op === '+' ? a + b : n.op === '-' ? a - b : n.op === '*' ? a * b : a / b);
      if (typeof l === 'number' && typeof r === 'number') return f(l, r);
      if (typeof l === 'number') return (r as Element[]).map((e) => ({ labels: e.labels, value: f(l, e.value) }));
      if (typeof r === 'number') return l.map((e) => ({ labels: e.labels, value: f(e.value, r) }));
      const right = new Map(r.map((e) => [signature(e.labels), e]));
      const out: Element[] = [];
      for (const e of l) {
        const o = right.get(signature(e.labels));
        if (o) out.push({ labels: e.labels, value: f(e.value, o.value) });
      }
      return out;
    }
  }
}

function aggregate(op: string, vs: number[]): number {
  switch (op) {
    case 'sum': return vs.reduce((a, b) => a + b, 0);
    case 'max': return Math.max(...vs);
    case 'min': return Math.min(...vs);
    case 'avg': return vs.reduce((a, b) => a + b, 0) / vs.length;
    default: return vs.length;
  }
}

export function compare(cmp: Cmp, a: number, b: number): boolean {
  switch (cmp) {
    case '>': return a > b;
    case '<': return a < b;
    case '>=': return a >= b;
    case '<=': return a <= b;
    case '==': return a === b;
    case '!=': return a !== b;
  }
}

/** The elements for which the condition holds now (each one is an alert instance). */
export function evaluateCondition(c: Condition, src: SampleSource, now: number): Element[] {
  const v = evalNode(c.expr, src, now);
  if (typeof v === 'number') return [];
  return v.filter((e) => compare(c.cmp, e.value, c.threshold));
}

/** The reason an expression is refused, or undefined when it parses (used by the config spec). */
export function alertExprError(text: string): string | undefined {
  try {
    parseCondition(text);
    return undefined;
  } catch (err) {
    if (err instanceof ExprError) return err.message;
    throw err;
  }
}
