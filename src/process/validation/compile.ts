/**
 * Compiles one table's `validate` section (src/core/config/schema.ts tableValidateSpec) into a
 * TableValidator: a list of closures, built once at start-up, that check a mapped record (target
 * column names, canonical values of src/core/types.ts) and return nothing when it is valid.
 *
 * Everything that can be decided at start-up is: a bad regular expression, a bound that cannot be
 * read, min > max, coerce without a type, an unparsable cross-field check, a custom function that
 * the module does not export. Those come back as CompileProblems with the path of the option inside
 * `validate`, which the config loader turns into FILE:LINE:COL (load.ts, validateRules()).
 *
 * Evaluation of one record, in order:
 *  1. each field: absent/null → `required` or nothing; `type` (with `coerce`: converted in place and
 *     recorded); then format, pattern, min, max, minLength, maxLength, enum, custom — every failure is
 *     reported, not only the first. A field whose type is wrong skips its other rules.
 *  2. each cross-field rule (on the coerced values); a rule reading a field with a wrong type is
 *     skipped (the type violation says it).
 * Columns PostgreSQL did not send (unchanged TOASTed values, `keep`) are not checked, nor are rules
 * that read them: their value is unknown here and was validated when it was written.
 *
 * Format checks come from ajv-formats (the definitions Ajv uses); the rest is plain closures: our
 * values (bigint, exact decimal strings, canonical timestamps) and the per-field coercion record do not
 * map onto JSON Schema, and closures are faster than a generic schema walk (see BENCHMARKS.md).
 */
import type { z } from 'zod';
import { fullFormats } from 'ajv-formats/dist/formats.js';
import { setColumn, type Row, type Value } from '../../core/envelope.js';
import { fieldRuleSpec, tableValidateSpec } from '../../core/config/schema.js';
import { compileCheck, EvalFailure, ExprError, type EvalContext } from './expr.js';
import {
  codePoints,
  addDuration,
  cleanNumber,
  Dec,
  fastDecimal,
  type Duration,
  formatDate,
  formatTime,
  numCmp,
  numKey,
  type Num,
  parseDecimal,
  parseDuration,
  parseTemporal,
  pow10,
  shortDecimal,
  startOfDay,
  type Temporal,
} from './values.js';

export type FieldRules = z.infer<typeof fieldRuleSpec>;
export type TableValidateConfig = z.infer<typeof tableValidateSpec>;
export type FieldType = NonNullable<FieldRules['type']>;

/** A value as shown in a violation: JSON-safe (bigint as text, bytes as '<N bytes>', long text cut). */
export type ShownValue = string | number | boolean | null | ShownValue[] | { [field: string]: ShownValue };

/**
 * One violated rule. `field`: the column (a cross-field rule: the columns it reads, comma-separated);
 * `rule`: required, type, format, pattern, min, max, minLength, maxLength, enum, custom, or the name of
 * a cross-field rule; `value`: the offending value ('***' for masked fields; a cross-field rule: the
 * values it read, by field), absent for `required`.
 */
export interface Violation {
  field: string;
  rule: string;
  message: string;
  value?: ShownValue;
}

/** A value converted by `coerce: true`: `from` is the JS kind it had, `to` the field's type. */
export interface Coercion {
  field: string;
  from: string;
  to: string;
}

/** A rule that cannot compile; `path` is relative to the table's `validate` section. */
export interface CompileProblem {
  path: (string | number)[];
  message: string;
  /** The problem is the key itself (a field name), not its value. */
  atKey?: boolean;
}

export interface ValidateOutcome {
  violations: Violation[];
  coerced: Coercion[];
}

export interface TableValidator {
  /** Target table (as records name it). */
  readonly table: string;
  /** Fields with rules, and fields read by cross-field rules. */
  readonly fields: readonly string[];
  /** Number of rules (each field option that checks something, plus each cross-field rule). */
  readonly ruleCount: number;
  /**
   * Checks `values` (and coerces in place). Returns undefined when the record is valid and nothing
   * was coerced. `columnTypes`: SQL types of the record's columns (tells numeric columns' decimal
   * strings and json columns apart); `keep`: columns whose value was not sent; `nowMs`: the
   * validation time relative bounds resolve against (default Date.now()).
   * Not reentrant (reuses its buffers); validation is synchronous.
   */
  validate(values: Row, columnTypes?: Record<string, string>, keep?: readonly string[], nowMs?: number): ValidateOutcome | undefined;
}

export interface CompileOptions {
  /** Target table name, for messages. */
  table: string;
  /** Columns masked in every table (pipeline `validation.mask`). */
  mask?: readonly string[];
  /** The table's column renames (source → target): a rule naming a renamed source column is a mistake. */
  columns?: Record<string, string>;
  /** Whether the pipeline names a validation module. */
  hasModule: boolean;
  /**
   * The module's exports. undefined: not loaded (the synchronous load-time check), so custom function
   * names are only checked for a module being configured.
   */
  functions?: Record<string, unknown>;
  /** How to name the module in messages. */
  moduleLabel?: string;
  /** "Did you mean" for an unknown custom function name (the loader's closest()). */
  suggest?: (word: string, candidates: readonly string[]) => string | undefined;
}

// ---------------------------------------------------------------------------------------------
// Runtime context

interface Ctx extends EvalContext {
  now: number;
  keep: readonly string[] | undefined;
}

class Out {
  violations: Violation[] | null = null;
  coerced: Coercion[] | null = null;
  badType: string[] | null = null;
  reset(): void {
    this.violations = null;
    this.coerced = null;
    this.badType = null;
  }
  add(v: Violation): void {
    (this.violations ??= []).push(v);
  }
}

type FieldFn = (values: Row, ctx: Ctx, out: Out) => void;
/** A check of a non-null value: a message when violated. */
type Check = (v: Value, ctx: Ctx, values: Row) => string | undefined;

const NUMERIC_TYPE = /^(numeric|decimal)\b/i;
const JSON_TYPE = /^jsonb?$/i;
const isNumericColumn = (ctx: Ctx, field: string) => ctx.columnTypes !== undefined && NUMERIC_TYPE.test(ctx.columnTypes[field] ?? '');

// ---------------------------------------------------------------------------------------------
// Rendering values (masked where asked)

export const MASK = '***';

export function shownValue(v: Value | undefined, depth = 0): ShownValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v.length > 200 ? `${v.slice(0, 197)}...` : v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'boolean') return v;
  if (Buffer.isBuffer(v)) return `<${v.length} bytes>`;
  if (depth > 3) return '[…]';
  const items = v.slice(0, 20).map((x) => shownValue(x, depth + 1));
  if (v.length > 20) items.push(`… ${v.length - 20} more`);
  return items;
}

function kindOf(v: Value): string {
  if (typeof v === 'string') return 'text';
  if (typeof v === 'number' || typeof v === 'bigint') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (Buffer.isBuffer(v)) return 'bytes';
  return 'array';
}

// ---------------------------------------------------------------------------------------------
// Types and coercion

export const NO = Symbol('no');
export type Coerced = Value | typeof NO;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function jsonShape(v: string, field: string, ctx: Ctx): 'object' | 'array' | 'other' | undefined {
  const t = ctx.columnTypes?.[field];
  if (t !== undefined && !JSON_TYPE.test(t)) return undefined; // a text column holding '{…}' is text
  const c = v.trimStart()[0];
  if (c !== '{' && c !== '[') return t !== undefined ? 'other' : undefined;
  try {
    const parsed: unknown = JSON.parse(v);
    return Array.isArray(parsed) ? 'array' : parsed !== null && typeof parsed === 'object' ? 'object' : 'other';
  } catch {
    return undefined;
  }
}

const TYPE_TESTS: Record<FieldType, (v: Value, field: string, ctx: Ctx) => boolean> = {
  string: (v) => typeof v === 'string',
  number: (v, f, ctx) => typeof v === 'number' || typeof v === 'bigint' || (typeof v === 'string' && isNumericColumn(ctx, f) && (fastDecimal(v) !== undefined || parseDecimal(v) !== undefined)),
  integer: (v, f, ctx) => {
    if (typeof v === 'number') return Number.isInteger(v);
    if (typeof v === 'bigint') return true;
    if (typeof v === 'string' && isNumericColumn(ctx, f)) {
      const d = parseDecimal(v);
      return d instanceof Dec && d.m % pow10(d.s) === 0n;
    }
    return false;
  },
  boolean: (v) => typeof v === 'boolean',
  date: (v) => {
    if (typeof v !== 'string') return false;
    const t = parseTemporal(v);
    return t !== undefined && (t.dateOnly || !Number.isFinite(t.ms));
  },
  datetime: (v) => {
    if (typeof v !== 'string') return false;
    const t = parseTemporal(v);
    return t !== undefined && !t.dateOnly;
  },
  uuid: (v) => typeof v === 'string' && UUID.test(v),
  object: (v, f, ctx) => typeof v === 'string' && jsonShape(v, f, ctx) === 'object',
  array: (v, f, ctx) => Array.isArray(v) || (typeof v === 'string' && jsonShape(v, f, ctx) === 'array'),
};

const TRUE_WORDS = new Set(['true', 't', 'yes', 'y', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'f', 'no', 'n', 'off', '0']);

/** Clean conversions only; anything lossy or ambiguous stays a violation. */
export const COERCE: Partial<Record<FieldType, (v: Value) => Coerced>> = {
  string: (v) => (typeof v === 'number' ? (Object.is(v, -0) ? '0' : String(v)) : typeof v === 'bigint' || typeof v === 'boolean' ? String(v) : NO),
  number: (v) => {
    if (typeof v !== 'string') return NO;
    const n = cleanNumber(v);
    return n === undefined ? NO : n;
  },
  integer: (v) => {
    if (typeof v !== 'string' || !/^[-+]?\d+(\.0*)?$/.test(v)) return NO;
    const digits = v.replace(/\.0*$/, '');
    const n = Number(digits);
    return Number.isSafeInteger(n) ? n : BigInt(digits);
  },
  boolean: (v) => {
    if (typeof v === 'string') {
      const w = v.trim().toLowerCase();
      return TRUE_WORDS.has(w) ? true : FALSE_WORDS.has(w) ? false : NO;
    }
    if (typeof v === 'number' || typeof v === 'bigint') return v == 1 ? true : v == 0 ? false : NO; // eslint-disable-line eqeqeq
    return NO;
  },
};

const TYPE_NAMES: Record<FieldType, string> = {
  string: 'text',
  number: 'a number',
  integer: 'an integer',
  boolean: 'a boolean',
  date: "a date ('YYYY-MM-DD')",
  datetime: "a date-time ('YYYY-MM-DDTHH:MM:SS[.ffffff][Z]')",
  uuid: 'a UUID',
  object: 'a JSON object',
  array: 'an array',
};

// ---------------------------------------------------------------------------------------------
// Formats (ajv-formats definitions)

type FormatName = NonNullable<FieldRules['format']>;

function formatTest(def: unknown): (s: string) => boolean {
  if (def instanceof RegExp) return (s) => def.test(s);
  if (typeof def === 'function') return (s) => Boolean((def as (s: string) => unknown)(s));
  const d = def as { validate?: unknown };
  if (d && (d.validate instanceof RegExp || typeof d.validate === 'function')) return formatTest(d.validate);
  throw new Error('unsupported format definition');
}

const E164 = /^\+[1-9]\d{1,14}$/;
const FORMATS: Record<FormatName, { test: (s: string) => boolean; what: string }> = {
  email: { test: formatTest(fullFormats.email), what: 'a valid email address' },
  phone: { test: (s) => E164.test(s), what: 'an E.164 phone number (+ and 2 to 15 digits, e.g. +14155550123)' },
  url: { test: formatTest(fullFormats.url), what: 'a valid URL (http, https or ftp, public host)' },
  uri: { test: formatTest(fullFormats.uri), what: 'a valid absolute URI' },
  uuid: { test: (s) => UUID.test(s), what: 'a valid UUID' },
  hostname: { test: formatTest(fullFormats.hostname), what: 'a valid host name' },
  ipv4: { test: formatTest(fullFormats.ipv4), what: 'a valid IPv4 address' },
  ipv6: { test: formatTest(fullFormats.ipv6), what: 'a valid IPv6 address' },
};

/** Text form a format or pattern is checked on (numbers are checked in their decimal form). */
const textOf = (v: Value): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean' ? String(v) : undefined);

// ---------------------------------------------------------------------------------------------
// Bounds

type Bound =
  | { kind: 'number'; n: number; dec: Dec | number; text: string }
  | { kind: 'time'; abs?: Temporal; rel?: Duration; text: string };

const BOUND_FORMS = "a number, a date ('2024-01-31'), a date-time ('2024-01-31T12:00:00Z'), a duration relative to now (-P1Y, P30D, -PT12H) or now";

function readBound(raw: number | string, type: FieldType | undefined): Bound | string {
  const temporalType = type === 'date' || type === 'datetime';
  if (typeof raw === 'number') {
    if (temporalType) return `a ${type} field needs a date bound ('2024-01-31') or a relative one (-P1Y), not the number ${raw}`;
    if (type && type !== 'number' && type !== 'integer') return `a number bound needs a numeric field, but type is ${type}${type === 'string' ? ' (use minLength/maxLength for the length of text)' : ''}`;
    return { kind: 'number', n: raw, dec: Number.isFinite(raw) ? (parseDecimal(String(raw)) ?? raw) : raw, text: String(raw) };
  }
  const text = raw.trim();
  if (text === 'now') return { kind: 'time', rel: { sign: 1, years: 0, months: 0, days: 0, timeMs: 0, text: 'now' }, text };
  const rel = parseDuration(text);
  const abs = rel ? undefined : parseTemporal(text);
  if (!rel && !abs) {
    const asNumber = parseDecimal(text);
    if (asNumber !== undefined && type !== 'date' && type !== 'datetime') return { kind: 'number', n: typeof asNumber === 'number' ? asNumber : Number(text), dec: asNumber, text };
    return `cannot read '${raw}': expected ${BOUND_FORMS}`;
  }
  if (type && !temporalType) return `a date or duration bound needs type date or datetime, but type is ${type}`;
  if (type === 'date' && abs && !abs.dateOnly && Number.isFinite(abs.ms)) return `a date field needs a date bound ('YYYY-MM-DD'), got the date-time '${raw}'`;
  return { kind: 'time', abs, rel, text };
}

function boundCheck(bound: Bound, isMin: boolean, type: FieldType | undefined, memo: { s: string | undefined; t: Temporal | undefined }): Check {
  const word = isMin ? '>=' : '<=';
  if (bound.kind === 'number') {
    const { n, dec, text } = bound;
    const fail = `must be ${word} ${text}`;
    const okCmp = (c: number | undefined) => c !== undefined && (isMin ? c >= 0 : c <= 0);
    const short = typeof dec !== 'number' && shortDecimal(n) && String(n) === dec.toString();
    return (v) => {
      if (typeof v === 'number') {
        // Two doubles compare exactly.
        if (isMin ? v >= n : v <= n) return undefined;
        return Number.isNaN(v) ? `${fail}, got NaN` : fail;
      }
      let x: Num | undefined;
      if (typeof v === 'bigint') x = v;
      else if (typeof v === 'string') {
        if (short) {
          const f = fastDecimal(v);
          if (f !== undefined) return (isMin ? f >= n : f <= n) ? undefined : fail;
        }
        const d = parseDecimal(v);
        x = d;
        if (d === undefined) return `${fail}, got text that is not a number`;
      } else return `${fail}, got ${kindOf(v)}`;
      return okCmp(numCmp(x!, dec)) ? undefined : fail;
    };
  }
  const { abs, rel, text } = bound;
  const dateField = type === 'date';
  const label = (ms: number, dateOnly: boolean) => (rel ? `${text} (${dateOnly ? formatDate(ms) : formatTime(ms)})` : text);
  const fail = (ms: number, dateOnly: boolean) => `must ${isMin ? 'not be before' : 'not be after'} ${label(ms, dateOnly)}`;
  // Relative bounds resolve against the validation time, once per millisecond.
  let lastNow = NaN;
  let lastMs = 0;
  return (v, ctx) => {
    if (typeof v !== 'string') return `must be ${dateField ? 'a date' : 'a date or date-time'} (${isMin ? 'min' : 'max'} ${text}), got ${kindOf(v)}`;
    let t: Temporal | undefined;
    if (memo.s === v) t = memo.t;
    else {
      t = parseTemporal(v);
      memo.s = v;
      memo.t = t;
    }
    if (!t) return `must be ${dateField ? 'a date' : 'a date or date-time'} (${isMin ? 'min' : 'max'} ${text}), got text that is not one`;
    let b: number;
    if (abs) b = abs.ms;
    else {
      if (ctx.now !== lastNow) {
        lastNow = ctx.now;
        lastMs = addDuration(ctx.now, rel!);
      }
      b = lastMs;
    }
    // A date compares with the day of a relative bound: `min: -P1Y` admits the whole day a year ago.
    const dateOnly = t.dateOnly && rel !== undefined;
    if (dateOnly) b = startOfDay(b);
    return (isMin ? t.ms >= b : t.ms <= b) ? undefined : fail(b, dateOnly);
  };
}


// ---------------------------------------------------------------------------------------------
// Compilation

type CustomFn = (value: unknown, record: Row) => unknown;

export function compileTable(spec: TableValidateConfig, opts: CompileOptions): { validator?: TableValidator; problems: CompileProblem[] } {
  const problems: CompileProblem[] = [];
  const problem = (path: (string | number)[], message: string, atKey?: boolean) => problems.push(atKey ? { path, message, atKey } : { path, message });
  const renamed = new Map<string, string>();
  const targets = new Set(Object.values(opts.columns ?? {}));
  for (const [src, dst] of Object.entries(opts.columns ?? {})) if (src !== dst && !targets.has(src)) renamed.set(src, dst);
  const renameHint = (name: string) => {
    const to = renamed.get(name);
    return to === undefined ? undefined : `'${name}' is a source column renamed to '${to}' (columns); validation runs on the mapped record: write '${to}'`;
  };
  const masked = new Set(opts.mask ?? []);
  const fields = spec.fields ?? {};
  for (const [name, r] of Object.entries(fields)) if (r.sensitive) masked.add(name);
  const numericFields = new Set(Object.entries(fields).filter(([, r]) => r.type === 'number' || r.type === 'integer').map(([n]) => n));

  const fieldFns: FieldFn[] = [];
  let ruleCount = 0;

  for (const [name, rules] of Object.entries(fields)) {
    const at = (...p: (string | number)[]) => ['fields', name, ...p];
    const hint = renameHint(name);
    if (hint) problem(['fields', name], hint, true);
    const isMasked = masked.has(name);
    const show = (v: Value): Violation['value'] => (isMasked ? MASK : shownValue(v));
    const type = rules.type;
    const checks: { rule: string; check: Check }[] = [];
    if (rules.required) ruleCount++;
    if (type) ruleCount++;

    if (rules.coerce && !type) problem(at('coerce'), 'coerce needs a type to convert to');
    else if (rules.coerce && type && !COERCE[type]) problem(at('coerce'), `coerce applies to types string, number, integer and boolean, not ${type}`);

    const textual = type === undefined || type === 'string' || type === 'uuid' || type === 'object' || type === 'array' || type === 'date' || type === 'datetime';
    if (rules.format) {
      const f = FORMATS[rules.format];
      if (!textual && type !== 'number' && type !== 'integer') problem(at('format'), `format applies to text, but type is ${type}`);
      else
        checks.push({
          rule: 'format',
          check: (v) => {
            const s = textOf(v);
            return s !== undefined && f.test(s) ? undefined : `must be ${f.what}`;
          },
        });
    }
    if (rules.pattern !== undefined) {
      let re: RegExp | undefined;
      try {
        re = new RegExp(rules.pattern, 'u');
      } catch (err) {
        problem(at('pattern'), `invalid regular expression: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`);
      }
      if (re) {
        const rx = re;
        const fail = `must match /${rules.pattern}/`;
        checks.push({
          rule: 'pattern',
          check: (v) => {
            const s = textOf(v);
            return s !== undefined && rx.test(s) ? undefined : fail;
          },
        });
      }
    }
    const memo = { s: undefined as string | undefined, t: undefined as Temporal | undefined };
    const bounds: Partial<Record<'min' | 'max', Bound>> = {};
    for (const key of ['min', 'max'] as const) {
      const raw = rules[key];
      if (raw === undefined) continue;
      const b = readBound(raw, type);
      if (typeof b === 'string') problem(at(key), b);
      else {
        bounds[key] = b;
        checks.push({ rule: key, check: boundCheck(b, key === 'min', type, memo) });
      }
    }
    const { min, max } = bounds;
    if (min && max) {
      if (min.kind !== max.kind) problem(at('max'), `min (${min.text}) and max (${max.text}) must both be numbers or both dates`);
      else if (min.kind === 'number' && max.kind === 'number' && (numCmp(min.dec, max.dec) ?? 0) > 0) problem(at('min'), `min ${min.text} is greater than max ${max.text}`);
      else if (min.kind === 'time' && max.kind === 'time' && min.abs && max.abs && min.abs.ms > max.abs.ms) problem(at('min'), `min ${min.text} is after max ${max.text}`);
    }
    for (const key of ['minLength', 'maxLength'] as const) {
      const n = rules[key];
      if (n === undefined) continue;
      if (type !== undefined && type !== 'string' && type !== 'array') {
        problem(at(key), `${key} applies to text and arrays, but type is ${type}`);
        continue;
      }
      const isMin = key === 'minLength';
      checks.push({
        rule: key,
        check: (v) => {
          if (typeof v === 'string') {
            // UTF-16 length bounds the code points from above and 2 × code points from below.
            const len = isMin ? (v.length >= 2 * n ? n : codePoints(v)) : v.length <= n ? v.length : codePoints(v);
            return (isMin ? len >= n : len <= n) ? undefined : `must be at ${isMin ? 'least' : 'most'} ${n} character${n === 1 ? '' : 's'} long`;
          }
          if (Array.isArray(v)) return (isMin ? v.length >= n : v.length <= n) ? undefined : `must have at ${isMin ? 'least' : 'most'} ${n} item${n === 1 ? '' : 's'}`;
          return `must be text or an array (${key} ${n}), got ${kindOf(v)}`;
        },
      });
    }
    if (rules.minLength !== undefined && rules.maxLength !== undefined && rules.minLength > rules.maxLength) problem(at('minLength'), `minLength ${rules.minLength} is greater than maxLength ${rules.maxLength}`);
    if (rules.enum) {
      const items = rules.enum;
      const strings = new Set<string>();
      const numbers = new Set<string>();
      const bools = new Set<boolean>();
      items.forEach((item, i) => {
        if (typeof item === 'string') {
          if (type !== undefined && type !== 'string' && type !== 'uuid' && type !== 'date' && type !== 'datetime') problem(at('enum', i), `'${item}' is text, but type is ${type}`);
          strings.add(item);
        } else if (typeof item === 'number') {
          if (type !== undefined && type !== 'number' && type !== 'integer') problem(at('enum', i), `${item} is a number, but type is ${type}`);
          numbers.add(numKey(item));
        } else {
          if (type !== undefined && type !== 'boolean') problem(at('enum', i), `${item} is a boolean, but type is ${type}`);
          bools.add(item);
        }
      });
      const list = items.map((x) => (typeof x === 'string' ? x : String(x))).join(', ');
      const fail = `must be one of: ${list}`;
      checks.push({
        rule: 'enum',
        check: (v, ctx) => {
          if (typeof v === 'string') {
            if (strings.has(v)) return undefined;
            if (numbers.size > 0 && (isNumericColumn(ctx, name) || numericFields.has(name))) {
              const d = parseDecimal(v);
              if (d !== undefined && numbers.has(numKey(d))) return undefined;
            }
            return fail;
          }
          if (typeof v === 'number') return numbers.has(Number.isSafeInteger(v) ? String(v) : numKey(v)) ? undefined : fail;
          if (typeof v === 'bigint') return numbers.has(v.toString()) ? undefined : fail;
          if (typeof v === 'boolean') return bools.has(v) ? undefined : fail;
          return fail;
        },
      });
    }
    if (rules.custom !== undefined) {
      const fnName = rules.custom;
      const where = opts.moduleLabel ?? 'the validation module';
      if (!opts.hasModule) problem(at('custom'), `custom function '${fnName}' needs the pipeline's validation.module (the ES module that exports it)`);
      else if (opts.functions !== undefined) {
        const fn = opts.functions[fnName];
        const exported = Object.keys(opts.functions).filter((k) => typeof opts.functions![k] === 'function');
        if (fn === undefined) {
          const guess = opts.suggest?.(fnName, exported);
          problem(at('custom'), `unknown custom function '${fnName}': ${where} exports ${exported.length ? exported.join(', ') : 'no functions'}${guess ? ` (did you mean '${guess}'?)` : ''}`);
        } else if (typeof fn !== 'function') problem(at('custom'), `'${fnName}' exported by ${where} is a ${typeof fn}, not a function`);
        else if (fn.constructor?.name === 'AsyncFunction') problem(at('custom'), `custom function '${fnName}' must be synchronous: return true, false or a message, not a Promise`);
        else {
          const f = fn as CustomFn;
          // A message written by user code may quote the value: not shown for a masked field.
          const hidden = masked.has(name) ? ' (its message is not shown: masked field)' : undefined;
          checks.push({
            rule: 'custom',
            check: (v, _ctx, values) => {
              let r: unknown;
              try {
                r = f(v, values);
              } catch (err) {
                return `custom function '${fnName}' threw${hidden ?? `: ${err instanceof Error ? err.message : String(err)}`}`;
              }
              if (r === true || r === undefined) return undefined;
              if (r === false || r === '') return `failed custom check '${fnName}'`;
              if (typeof r === 'string') return hidden ? `failed custom check '${fnName}'${hidden}` : r;
              return `custom function '${fnName}' returned ${r === null ? 'null' : typeof r}; expected true, false or a message`;
            },
          });
        }
      }
    }
    ruleCount += checks.length;

    const required = rules.required === true;
    const typeTest = type ? TYPE_TESTS[type] : undefined;
    const coerce = rules.coerce && type ? COERCE[type] : undefined;
    const typeFail = type ? `must be ${TYPE_NAMES[type]}` : '';
    const n = checks.length;
    const ruleNames = checks.map((c) => c.rule);
    const fns = checks.map((c) => c.check);
    fieldFns.push((values, ctx, out) => {
      let v = values[name];
      if (v === undefined || v === null) {
        if (required && !(v === undefined && ctx.keep !== undefined && ctx.keep.includes(name))) out.add({ field: name, rule: 'required', message: 'is required' });
        return;
      }
      if (typeTest !== undefined && !typeTest(v, name, ctx)) {
        const c = coerce !== undefined ? coerce(v) : NO;
        if (c === NO) {
          out.add({ field: name, rule: 'type', message: `${typeFail}, got ${kindOf(v)}${coerce ? ' that does not convert' : ''}`, value: show(v) });
          (out.badType ??= []).push(name);
          return;
        }
        (out.coerced ??= []).push({ field: name, from: typeof v, to: type! });
        values[name] = c;
        v = c;
      }
      for (let i = 0; i < n; i++) {
        const m = fns[i]!(v, ctx, values);
        if (m !== undefined) out.add({ field: name, rule: ruleNames[i]!, message: m, value: show(v) });
      }
    });
  }

  // Cross-field rules.
  const ruleFns: FieldFn[] = [];
  const ruleNames = new Map<string, number>();
  const readFields = new Set(Object.keys(fields));
  (spec.rules ?? []).forEach((rule, i) => {
    const prev = ruleNames.get(rule.name);
    if (prev !== undefined) problem(['rules', i, 'name'], `rule name '${rule.name}' is already used by rules[${prev}]`);
    else ruleNames.set(rule.name, i);
    let compiled;
    try {
      compiled = compileCheck(rule.check, numericFields);
    } catch (err) {
      if (!(err instanceof ExprError)) throw err;
      problem(['rules', i, 'check'], `cannot parse check at character ${err.pos + 1} (${pointAt(rule.check, err.pos)}): ${err.message}`);
      return;
    }
    for (const ref of compiled.refs) {
      const hint = renameHint(ref);
      if (hint) problem(['rules', i, 'check'], hint);
      readFields.add(ref);
    }
    ruleCount++;
    const { test, refs } = compiled;
    const ruleName = rule.name;
    const message = rule.message ?? `check failed: ${rule.check}`;
    const fieldList = refs.join(',');
    const anyMasked = refs.some((r) => masked.has(r));
    const valueOf = (values: Row) => {
      const o: Record<string, ShownValue> = {};
      for (const r of refs) setColumn(o, r, masked.has(r) ? MASK : shownValue(values[r]));
      return o;
    };
    ruleFns.push((values, ctx, out) => {
      if (ctx.keep !== undefined && ctx.keep.length > 0 && refs.some((r) => ctx.keep!.includes(r))) return;
      if (out.badType !== null && refs.some((r) => out.badType!.includes(r))) return;
      let ok: boolean | null;
      try {
        ok = test(values, ctx);
      } catch (err) {
        if (!(err instanceof EvalFailure)) throw err;
        out.add({ field: fieldList, rule: ruleName, message: `${message} (cannot evaluate: ${anyMasked ? err.safeMessage : err.message})`, value: valueOf(values) });
        return;
      }
      if (ok === false) out.add({ field: fieldList, rule: ruleName, message, value: valueOf(values) });
    });
  });

  if (problems.length > 0) return { problems };
  const out = new Out();
  const ctx: Ctx = { now: 0, keep: undefined, columnTypes: undefined };
  const nf = fieldFns.length;
  const nr = ruleFns.length;
  const validator: TableValidator = {
    table: opts.table,
    fields: [...readFields],
    ruleCount,
    validate(values, columnTypes, keep, nowMs) {
      ctx.columnTypes = columnTypes;
      ctx.keep = keep !== undefined && keep.length > 0 ? keep : undefined;
      ctx.now = nowMs ?? Date.now();
      out.reset();
      for (let i = 0; i < nf; i++) fieldFns[i]!(values, ctx, out);
      for (let i = 0; i < nr; i++) ruleFns[i]!(values, ctx, out);
      if (out.violations === null && out.coerced === null) return undefined;
      return { violations: out.violations ?? [], coerced: out.coerced ?? [] };
    },
  };
  return { validator, problems };
}

/** `text` with a marker before the character at `pos`: `shipped_at >= ⟨here⟩)`. */
function pointAt(text: string, pos: number): string {
  return `${text.slice(0, pos)}⟨here⟩${text.slice(pos)}`;
}

/**
 * The synchronous check run by the config loader: compiles a table's raw `validate` value (skipped
 * when the schema refuses it: the schema reports that) without loading custom functions.
 */
export function checkTableValidation(raw: unknown, opts: CompileOptions): CompileProblem[] {
  const parsed = tableValidateSpec.safeParse(raw);
  if (!parsed.success) return [];
  return compileTable(parsed.data, { ...opts, functions: undefined }).problems;
}
