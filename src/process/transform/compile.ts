/**
 * Per-table transformations (`tables[].transform`, ADR 0032): compiled once into a chain of
 * closures, run by the processor on each change after the column renames (`columns`) and before
 * validation, so steps and rules both name target columns.
 *
 * A change inside the chain is { op, key, before, after, keep }: `after` is the row to write (null
 * for a delete), `before` the old row when the source sent a full one (REPLICA IDENTITY FULL; null
 * otherwise), `keep` the columns whose value was not sent (unchanged TOASTed values). A step returns
 * the change (changed in place), null (dropped) or, the custom step only, a list of changes.
 *
 * Row filter (`where`), the rule (see docs/transforms.md and ADR 0032):
 *  - insert, snapshot row: passes → on; else dropped.
 *  - update: after passes → upsert (a row moving into the filter is created). Else it left the filter,
 *    or was never in it: with a full old row the filter is evaluated on it (after the same steps);
 *    passed before → delete (onLeave: delete, the default) or dropped (keep); did not pass → dropped.
 *    Without a full old row (REPLICA IDENTITY DEFAULT) it cannot be told: delete is sent
 *    (onLeave: delete; a no-op on a target without the row) or dropped (keep).
 *  - delete: dropped only when the filter is false on what is known (the old row or key, `_op`);
 *    a filter that reads columns the delete does not carry is unknown, and the delete is applied.
 *    With onLeave keep the old row is not used (a row that left the filter is still on the target
 *    and its delete must reach it): only the key and `_op` decide.
 * `_op` is 'insert' | 'update' | 'delete' | 'snapshot'. Null (unknown) does not pass, as in SQL WHERE.
 *
 * Every problem that can be seen without data is a compile problem (load time, with the step's path);
 * a change a step cannot transform (a value that does not cast, JSON that does not parse, a throw
 * or timeout of a custom function) throws a poison error: the change is dead-lettered as `invalid`.
 */
import { resolve } from 'node:path';
import { setColumn, type Row, type Value } from '../../core/envelope.js';
import type { TransformStep } from '../../core/config/schema.js';
import { poison, SynclineError } from '../../core/errors.js';
import { civilFromDays } from '../../core/types.js';
import { compileCheck, compileExpression, EvalFailure, ExprError, type EvalContext } from '../validation/expr.js';
import { COERCE, NO, type FieldType } from '../validation/compile.js';
import { Dec } from '../validation/values.js';
import { timeZoneProblem } from '../../sync/windows.js';
import { CustomTransformRunner } from './custom.js';

export type ChangeOp = 'insert' | 'update' | 'delete' | 'snapshot';

export interface Change {
  op: ChangeOp;
  key: Row;
  before: Row | null;
  after: Row | null;
  keep: string[];
}

export interface StepProblem {
  /** Path inside the table's `transform` list: [index, option, …]. */
  path: (string | number)[];
  message: string;
}

type StepResult = Change | null | Promise<Change[]>;
interface CompiledStep {
  run(c: Change, ctx: EvalContext): StepResult;
  /** Column types after the step, from those before it. */
  types?(t: Record<string, string>): void;
}

export interface TableTransform {
  /** Runs the chain; a list of 0..n changes (sync unless a custom step ran). Throws/rejects poison errors. */
  run(c: Change, ctx: EvalContext): Change[] | Promise<Change[]>;
  /** Column types of the output, from the source's (cached per input object). */
  types(input: Readonly<Record<string, string>>): Readonly<Record<string, string>>;
  /** Custom transform runners (started by ready(), stopped by close()). */
  runners: CustomTransformRunner[];
  ready(): Promise<void>;
  close(): Promise<void>;
}

export interface TransformCompileOptions {
  /** Target table name (for messages). */
  table: string;
  /** Key columns when the config names them (target names), to refuse excluding them at load. */
  key?: string[];
  /** Directory custom modules are relative to. */
  baseDir?: string;
  /** Build runners for custom steps (false at load-time checks: nothing is started). */
  runners?: boolean;
  /** Encrypted columns (target names): steps carry their ciphertext, so no step may read them. */
  encrypted?: string[];
  /** Carry the full old row through the chain even without a filter (a route reads it: ADR 0038). */
  keepBefore?: boolean;
}

const kindOf = (s: TransformStep): string => (['where', 'include', 'exclude', 'compute', 'set', 'cast', 'extract', 'map', 'timezone', 'custom'] as const).find((k) => s[k] !== undefined) ?? '?';

/** `step 2 (cast)`: how errors name a step (1-based, as people count). */
const stepLabel = (i: number, s: TransformStep) => `step ${i + 1} (${kindOf(s)})`;

const OP_COLUMN = '_op';

/**
 * The row an expression reads: with the pseudo-column `_op` when the expression reads it (a copy: the
 * row itself is not changed; not Object.create(row), which makes each row a prototype and costs
 * V8 ~20 µs a change), else the row itself.
 */
function rowFor(readsOp: boolean, row: Row, op: ChangeOp): Row {
  return readsOp ? { ...row, [OP_COLUMN]: op } : row;
}

/** The value a step reads; a column whose value was not sent (keep) cannot be read. */
function unknownValue(table: string, label: string, col: string): SynclineError {
  return poison('TRANSFORM_VALUE_UNKNOWN', `${table} ${label}: column ${col} was not sent by the source (an unchanged TOASTed value) and the old row is not known; set REPLICA IDENTITY FULL on the source table for transforms that read it`);
}

/** Canonical value of an expression result (exact decimals become their text, as numeric columns carry them). */
function toValue(v: unknown): Value {
  if (v instanceof Dec) return v.toString();
  return v as Value;
}

// ---------------------------------------------------------------------------------------------
// JSON paths: col->'a'->0->>'b'

interface JsonPath {
  column: string;
  steps: (string | number)[];
  text: boolean;
}

export function parseJsonPath(src: string): JsonPath {
  const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*/.exec(src);
  if (!m) throw new Error(`expected a column name first, as in payload->>'sku'`);
  let i = m[0].length;
  const steps: (string | number)[] = [];
  let text = false;
  while (i < src.length) {
    if (text) throw new Error(`->> gives text: it can only be the last step (at character ${i + 1})`);
    const op = src.startsWith('->>', i) ? '->>' : src.startsWith('->', i) ? '->' : undefined;
    if (!op) throw new Error(`expected -> or ->> at character ${i + 1}, found '${src.slice(i, i + 10)}'`);
    i += op.length;
    while (src[i] === ' ') i++;
    if (src[i] === "'") {
      let s = '';
      i++;
      for (;;) {
        if (i >= src.length) throw new Error('unterminated key (write it in single quotes, a quote inside twice)');
        if (src[i] === "'") {
          if (src[i + 1] === "'") {
            s += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        s += src[i++];
      }
      steps.push(s);
    } else {
      const n = /^\d+/.exec(src.slice(i));
      if (!n) throw new Error(`expected a 'key' or an array index after ${op} at character ${i + 1}`);
      steps.push(Number(n[0]));
      i += n[0].length;
    }
    while (src[i] === ' ') i++;
    text = op === '->>';
  }
  if (steps.length === 0) throw new Error(`expected -> or ->> after the column ${m[1]}, as in ${m[1]}->>'sku'`);
  return { column: m[1]!, steps, text };
}

function extractJson(v: Value, p: JsonPath, what: () => string): Value {
  if (v === null || v === undefined) return null;
  let doc: unknown;
  if (typeof v !== 'string') throw poison('TRANSFORM_FAILED', `${what()}: column ${p.column} is not JSON text`);
  try {
    doc = JSON.parse(v);
  } catch {
    throw poison('TRANSFORM_FAILED', `${what()}: column ${p.column} does not hold valid JSON`);
  }
  for (const s of p.steps) {
    if (doc === null || typeof doc !== 'object') return null;
    if (typeof s === 'number') {
      if (!Array.isArray(doc)) return null;
      doc = doc[s];
    } else {
      if (Array.isArray(doc) || !Object.prototype.hasOwnProperty.call(doc, s)) return null;
      doc = (doc as Record<string, unknown>)[s];
    }
    if (doc === undefined) return null;
  }
  if (doc === null) return null;
  if (p.text) return typeof doc === 'string' ? doc : typeof doc === 'object' ? JSON.stringify(doc) : String(doc);
  return JSON.stringify(doc);
}

// ---------------------------------------------------------------------------------------------
// Time zones

const zoneFormats = new Map<string, Intl.DateTimeFormat>();
function zoneFormat(zone: string): Intl.DateTimeFormat {
  let f = zoneFormats.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
    zoneFormats.set(zone, f);
  }
  return f;
}

/**
 * Offsets by zone and quarter hour (zones change their offset at quarter hours at most): Intl's
 * formatToParts costs ~25 µs a call, a Map hit well under 1 µs. Cleared when it grows large.
 */
const offsets = new Map<string, Map<number, number>>();
const QUARTER_MS = 15 * 60_000;

/** Offset (ms) of a zone at an instant (whole seconds). */
function zoneOffset(zone: string, ms: number): number {
  if (zone === 'UTC') return 0;
  let byQuarter = offsets.get(zone);
  if (!byQuarter) offsets.set(zone, (byQuarter = new Map()));
  const q = Math.floor(ms / QUARTER_MS);
  let off = byQuarter.get(q);
  if (off === undefined) {
    off = zoneOffsetNow(zone, q * QUARTER_MS);
    if (byQuarter.size > 100_000) byQuarter.clear();
    byQuarter.set(q, off);
  }
  return off;
}

function zoneOffsetNow(zone: string, ms: number): number {
  const parts: Record<string, number> = {};
  for (const p of zoneFormat(zone).formatToParts(new Date(ms))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const wall = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!);
  return wall - Math.floor(ms / 1000) * 1000;
}

const TS = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/** What follows the seconds (`YYYY-MM-DD HH:MM:SS`, 19 characters): the fraction and the offset of TS. */
const TS_TAIL = /^(?:\.(\d{1,6}))?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * The last conversion: its zones, the value's first 19 characters (to the second) and offset, and
 * the wall text it gave. The values of a batch mostly share their second (the rows of one
 * transaction, a burst of updates): a hit costs a short match of the rest instead of the whole parse,
 * two offset lookups and the formatting.
 */
let lastZone = { from: '', to: '', head: '', tz: undefined as string | undefined, wall: '' };

const fraction = (f: string | undefined): string => (f === undefined ? '000000' : f.length === 6 ? f : f.padEnd(6, '0'));

/** A timestamp (with an offset: an instant; without: wall time in `from`) as wall time in `to`. */
export function convertZone(v: string, from: string, to: string): string | undefined {
  if (v === 'infinity' || v === '-infinity') return v;
  const l = lastZone;
  if (l.from === from && l.to === to && v.length >= 19 && v.startsWith(l.head)) {
    const t = TS_TAIL.exec(v.slice(19));
    if (t && t[2] === l.tz) return l.wall + '.' + fraction(t[1]);
  }
  const m = TS.exec(v);
  if (!m) return undefined;
  let ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (Number(m[1]) < 100) return undefined; // Date.UTC maps years 0-99 to 1900-1999
  const tz = m[8];
  if (tz === undefined) {
    // Wall time in `from`: the instant whose wall time it is (the offset at a first guess, then again).
    const guess = ms - zoneOffset(from, ms);
    ms = ms - zoneOffset(from, guess);
  } else if (tz !== 'Z') {
    const sign = tz[0] === '-' ? -1 : 1;
    const d = tz.slice(1).replace(':', '');
    ms -= sign * (Number(d.slice(0, 2)) * 3600 + Number(d.slice(2, 4) || '0') * 60) * 1000;
  }
  const wall = wallText(ms + zoneOffset(to, ms));
  lastZone = { from, to, head: v.slice(0, 19), tz, wall };
  return wall + '.' + fraction(m[7]);
}

const TWO = Array.from({ length: 100 }, (_, i) => (i < 10 ? '0' : '') + i);

/**
 * `YYYY-MM-DDTHH:MM:SS` of epoch milliseconds (whole seconds, UTC), by integer arithmetic (civilFromDays): a Date and six padStart calls cost several times more, once per converted value.
 */
function wallText(ms: number): string {
  const secs = Math.floor(ms / 1000);
  const days = Math.floor(secs / 86400);
  const sod = secs - days * 86400;
  const [y, mo, d] = civilFromDays(days);
  const h = Math.floor(sod / 3600);
  const mi = Math.floor((sod - h * 3600) / 60);
  return `${y >= 1000 ? y : String(y).padStart(4, '0')}-${TWO[mo]}-${TWO[d]}T${TWO[h]}:${TWO[mi]}:${TWO[sod - h * 3600 - mi * 60]}`;
}

// ---------------------------------------------------------------------------------------------
// Casts

const CAST_TYPES: Record<string, string> = { string: 'text', number: 'numeric', integer: 'bigint', boolean: 'boolean' };
const isKind = (type: string, v: Value): boolean =>
  type === 'string' ? typeof v === 'string' : type === 'number' ? typeof v === 'number' || typeof v === 'bigint' : type === 'integer' ? (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint' : typeof v === 'boolean';

function describeValue(v: Value): string {
  if (typeof v === 'string') return `text '${v.length > 40 ? `${v.slice(0, 37)}...` : v}'`;
  if (typeof v === 'number' || typeof v === 'bigint') return `number ${String(v)}`;
  if (typeof v === 'boolean') return `boolean ${v}`;
  if (Buffer.isBuffer(v)) return 'bytes';
  return 'an array';
}

const constType = (v: unknown): string | undefined => (typeof v === 'string' ? 'text' : typeof v === 'number' ? (Number.isInteger(v) ? 'bigint' : 'numeric') : typeof v === 'boolean' ? 'boolean' : undefined);

// ---------------------------------------------------------------------------------------------
// Compilation

/** Apply `f` to the row to write and (when the chain needs it) the full old row. */
function eachRow(c: Change, f: (row: Row, isBefore: boolean) => void): void {
  if (c.after) f(c.after, false);
  if (c.before) f(c.before, true);
}

export function compileTransforms(steps: TransformStep[], opts: TransformCompileOptions): { transform?: TableTransform; problems: StepProblem[] } {
  const problems: StepProblem[] = [];
  const compiled: CompiledStep[] = [];
  const runners: CustomTransformRunner[] = [];
  const table = opts.table;
  const keySet = new Set(opts.key ?? []);

  const encrypted = new Set(opts.encrypted ?? []);
  steps.forEach((s, i) => {
    const label = stepLabel(i, s);
    const at = (...p: (string | number)[]) => [i, ...p];
    for (const [path, col] of readsOf(s)) {
      if (encrypted.has(col)) problems.push({ path: at(...path), message: `table ${table}, ${label}: reads ${col}, an encrypted column (steps see its ciphertext; it is decrypted only by the target)` });
    }
    const what = () => `${table} ${label}`;
    const checkKeep = (c: Change, cols: readonly string[]) => {
      if (c.keep.length === 0) return;
      for (const col of cols) if (c.keep.includes(col)) throw unknownValue(table, label, col);
    };

    if (s.where !== undefined) {
      let test: ReturnType<typeof compileCheck> | undefined;
      try {
        test = compileCheck(s.where);
      } catch (err) {
        if (!(err instanceof ExprError)) throw err;
        problems.push({ path: at('where'), message: `table ${table}, ${label}: ${err.message} (at character ${err.pos + 1} of "${s.where}")` });
        return;
      }
      const refs = test.refs.filter((r) => r !== OP_COLUMN);
      const readsOp = refs.length !== test.refs.length;
      const leave = s.onLeave ?? 'delete';
      const evaluate = (row: Row, op: ChangeOp, ctx: EvalContext): boolean | null => {
        try {
          return test.test(rowFor(readsOp, row, op), ctx);
        } catch (err) {
          if (err instanceof EvalFailure) throw poison('TRANSFORM_FAILED', `${what()}: ${err.safeMessage} (in "${s.where}")`);
          throw err;
        }
      };
      const knows = (row: Row) => refs.every((r) => Object.hasOwn(row, r));
      compiled.push({
        run(c, ctx) {
          if (c.op === 'delete') {
            // onLeave keep: a row that left the filter stays on the target, so its old row says nothing
            // about whether the target has it; only the key and `_op` decide.
            const row = c.before && leave === 'delete' ? { ...c.key, ...c.before } : c.key;
            return knows(row) && evaluate(row, 'delete', ctx) === false ? null : c;
          }
          checkKeep(c, refs);
          if (evaluate(c.after!, c.op, ctx) === true) return c;
          if (c.op !== 'update' || leave === 'keep') return null;
          // The update does not pass: did the row pass before?
          if (c.before && knows(c.before) && evaluate(c.before, 'update', ctx) !== true) return null;
          return { op: 'delete', key: c.key, before: c.before, after: null, keep: [] };
        },
      });
      return;
    }

    if (s.include !== undefined || s.exclude !== undefined) {
      const include = s.include !== undefined;
      const list = new Set(s.include ?? s.exclude!);
      if (!include) for (const k of list) if (keySet.has(k)) problems.push({ path: at('exclude'), message: `table ${table}, ${label}: ${k} is a key column of ${table} and cannot be dropped` });
      const drops = (col: string, c: Change) => (include ? !list.has(col) && !Object.hasOwn(c.key, col) : list.has(col));
      compiled.push({
        run(c) {
          if (c.op === 'delete') return c;
          if (!include) for (const k of list) if (k in c.key) throw poison('TRANSFORM_FAILED', `${what()}: ${k} is a key column and cannot be dropped`);
          eachRow(c, (row) => {
            for (const col of Object.keys(row)) if (drops(col, c)) delete row[col];
          });
          if (c.keep.length > 0) c.keep = c.keep.filter((k) => !drops(k, c));
          return c;
        },
        types(t) {
          for (const col of Object.keys(t)) if (include ? !list.has(col) : list.has(col)) delete t[col];
        },
      });
      return;
    }

    if (s.compute !== undefined) {
      const cols: { col: string; value: ReturnType<typeof compileExpression>['value']; refs: string[]; readsOp: boolean }[] = [];
      for (const [col, text] of Object.entries(s.compute)) {
        try {
          const e = compileExpression(text);
          cols.push({ col, value: e.value, refs: e.refs, readsOp: e.refs.includes(OP_COLUMN) });
        } catch (err) {
          if (!(err instanceof ExprError)) throw err;
          problems.push({ path: at('compute', col), message: `table ${table}, ${label}, column ${col}: ${err.message} (at character ${err.pos + 1} of "${text}")` });
        }
      }
      compiled.push({
        run(c, ctx) {
          if (c.op === 'delete') return c;
          for (const x of cols) {
            checkKeep(c, x.refs);
            eachRow(c, (row) => {
              try {
                setColumn(row, x.col, toValue(x.value(rowFor(x.readsOp, row, c.op), ctx)));
              } catch (err) {
                if (err instanceof EvalFailure) throw poison('TRANSFORM_FAILED', `${what()}, column ${x.col}: ${err.safeMessage}`);
                throw err;
              }
            });
          }
          return c;
        },
        types(t) {
          for (const x of cols) delete t[x.col]; // known only from the values
        },
      });
      return;
    }

    if (s.set !== undefined) {
      const entries = Object.entries(s.set);
      compiled.push({
        run(c) {
          if (c.op === 'delete') return c;
          for (const [col, v] of entries) {
            if (Object.hasOwn(c.key, col)) throw poison('TRANSFORM_FAILED', `${what()}: ${col} is a key column and cannot be set`);
            eachRow(c, (row) => setColumn(row, col, v));
            if (c.keep.length > 0) c.keep = c.keep.filter((k) => k !== col);
          }
          return c;
        },
        types(t) {
          for (const [col, v] of entries) {
            const ty = constType(v);
            if (ty) t[col] = ty;
          }
        },
      });
      return;
    }

    if (s.cast !== undefined) {
      const entries = Object.entries(s.cast);
      compiled.push({
        run(c) {
          if (c.op === 'delete') return c;
          checkKeep(c, entries.map(([col]) => col));
          eachRow(c, (row) => {
            for (const [col, type] of entries) {
              const v = row[col];
              if (v === null || v === undefined || isKind(type, v)) continue;
              const out = COERCE[type as FieldType]!(v);
              if (out === NO) throw poison('TRANSFORM_FAILED', `${what()}: column ${col}: ${describeValue(v)} does not convert to ${type}`);
              setColumn(row, col, out);
            }
          });
          return c;
        },
        types(t) {
          for (const [col, type] of entries) if (col in t) t[col] = CAST_TYPES[type]!;
        },
      });
      return;
    }

    if (s.extract !== undefined) {
      const paths: { col: string; path: JsonPath }[] = [];
      for (const [col, src] of Object.entries(s.extract)) {
        try {
          paths.push({ col, path: parseJsonPath(src) });
        } catch (err) {
          problems.push({ path: at('extract', col), message: `table ${table}, ${label}, column ${col}: ${(err as Error).message} (in "${src}")` });
        }
      }
      compiled.push({
        run(c) {
          if (c.op === 'delete') return c;
          checkKeep(c, paths.map((p) => p.path.column));
          eachRow(c, (row) => {
            for (const p of paths) setColumn(row, p.col, extractJson(row[p.path.column] ?? null, p.path, what));
          });
          return c;
        },
        types(t) {
          for (const p of paths) t[p.col] = p.path.text ? 'text' : 'jsonb';
        },
      });
      return;
    }

    if (s.map !== undefined) {
      const entries = Object.entries(s.map).map(([col, m]) => ({ col, values: new Map(Object.entries(m.values)), otherwise: m.otherwise ?? 'keep' }));
      compiled.push({
        run(c) {
          if (c.op === 'delete') return c;
          checkKeep(c, entries.map((e) => e.col));
          eachRow(c, (row) => {
            for (const e of entries) {
              const v = row[e.col];
              if (v === null || v === undefined) continue;
              const k = Buffer.isBuffer(v) || Array.isArray(v) ? undefined : String(v);
              const mapped = k === undefined ? undefined : e.values.get(k);
              if (mapped !== undefined) setColumn(row, e.col, mapped);
              else if (e.otherwise === 'null') setColumn(row, e.col, null);
              else if (e.otherwise === 'invalid') throw poison('TRANSFORM_FAILED', `${what()}: column ${e.col}: ${describeValue(v)} is not in the value map`);
            }
          });
          return c;
        },
        types(t) {
          for (const e of entries) {
            const kinds = new Set([...e.values.values()].map(constType).filter((x) => x !== undefined));
            if (kinds.size === 1 && e.otherwise !== 'keep') t[e.col] = [...kinds][0]!;
          }
        },
      });
      return;
    }

    if (s.timezone !== undefined) {
      const { columns, from = 'UTC', to } = s.timezone;
      const bad = [timeZoneProblem(from) && (['timezone', 'from'] as const), timeZoneProblem(to) && (['timezone', 'to'] as const)];
      if (bad[0]) problems.push({ path: at(...bad[0]), message: `table ${table}, ${label}: ${timeZoneProblem(from)}` });
      if (bad[1]) problems.push({ path: at(...bad[1]), message: `table ${table}, ${label}: ${timeZoneProblem(to)}` });
      if (bad[0] || bad[1]) return;
      compiled.push({
        run(c) {
          if (c.op === 'delete') return c;
          checkKeep(c, columns);
          eachRow(c, (row) => {
            for (const col of columns) {
              const v = row[col];
              if (v === null || v === undefined) continue;
              const out = typeof v === 'string' ? convertZone(v, from, to) : undefined;
              if (out === undefined) throw poison('TRANSFORM_FAILED', `${what()}: column ${col}: ${describeValue(v)} is not a timestamp that converts (years 100-9999, not BC)`);
              setColumn(row, col, out);
            }
          });
          return c;
        },
        types(t) {
          for (const col of columns) if (col in t) t[col] = 'timestamp without time zone';
        },
      });
      return;
    }

    if (s.custom !== undefined) {
      const fn = s.custom.function ?? 'transform';
      const timeoutMs = s.custom.timeoutMs ?? 1000;
      const path = resolve(opts.baseDir ?? '.', s.custom.module);
      if (opts.runners === false) {
        compiled.push({ run: (c) => c });
        return;
      }
      const runner = new CustomTransformRunner(path, fn, timeoutMs, `${table} ${label} ${s.custom.module}#${fn}`);
      runners.push(runner);
      compiled.push({
        run(c) {
          const input = { table, op: c.op, key: c.key, before: c.before, after: c.after };
          return runner.call(input).then((r) => customResult(r, c, what()));
        },
      });
      return;
    }
  });

  if (problems.length > 0) return { problems };
  const needsBefore = opts.keepBefore === true || steps.some((s) => s.where !== undefined || s.custom !== undefined);
  const typeSteps = compiled.filter((c) => c.types);
  const typesCache = new WeakMap<object, Readonly<Record<string, string>>>();

  const runFrom = (i: number, c: Change, ctx: EvalContext): Change[] | Promise<Change[]> => {
    for (; i < compiled.length; i++) {
      const r = compiled[i]!.run(c, ctx);
      if (r === null) return [];
      if (r instanceof Promise) {
        const next = i + 1;
        return r.then(async (list) => {
          const out: Change[] = [];
          for (const x of list) out.push(...(await runFrom(next, x, ctx)));
          return out;
        });
      }
      c = r;
    }
    return [c];
  };

  const transform: TableTransform = {
    run(c, ctx) {
      if (c.before && c.after && !Object.keys(c.after).every((k) => Object.hasOwn(c.before!, k))) c.before = null; // not a full old row
      if (c.keep.length > 0 && c.before && c.after && c.keep.every((k) => Object.hasOwn(c.before!, k))) {
        // The old row has the unsent values: they are the same now.
        for (const k of c.keep) setColumn(c.after, k, c.before[k]!);
        c.keep = [];
      }
      if (!needsBefore && c.after) c.before = null; // only filters and custom functions look at it
      if (c.before && c.after) c.before = { ...c.before };
      return runFrom(0, c, ctx);
    },
    types(input) {
      let out = typesCache.get(input);
      if (!out) {
        const t = { ...input };
        for (const s of typeSteps) s.types!(t);
        out = Object.freeze(t);
        typesCache.set(input, out);
      }
      return out;
    },
    runners,
    async ready() {
      await Promise.all(runners.map((r) => r.ready()));
    },
    async close() {
      await Promise.all(runners.map((r) => r.close()));
    },
  };
  return { transform, problems };
}

/** Columns a step reads, with the option that names them (for the encrypted-column check). */
function readsOf(s: TransformStep): [(string | number)[], string][] {
  const out: [(string | number)[], string][] = [];
  const refs = (text: string) => {
    try {
      return compileExpression(text).refs;
    } catch {
      return []; // reported by the step's own check
    }
  };
  if (s.where !== undefined) for (const r of refs(s.where)) out.push([['where'], r]);
  for (const [col, text] of Object.entries(s.compute ?? {})) for (const r of refs(text)) out.push([['compute', col], r]);
  for (const col of Object.keys(s.cast ?? {})) out.push([['cast', col], col]);
  for (const col of Object.keys(s.map ?? {})) out.push([['map', col], col]);
  for (const [col, src] of Object.entries(s.extract ?? {})) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)/.exec(src);
    if (m) out.push([['extract', col], m[1]!]);
  }
  for (const col of s.timezone?.columns ?? []) out.push([['timezone', 'columns'], col]);
  return out;
}

const OPS = new Set<ChangeOp>(['insert', 'update', 'delete', 'snapshot']);

/** A custom function's result → changes; anything else is a poison error naming what is wrong. */
function customResult(r: unknown, input: Change, what: string): Change[] {
  if (r === null || r === undefined) return [];
  const list = Array.isArray(r) ? r : [r];
  return list.map((x, n) => {
    const at = Array.isArray(r) ? ` (item ${n})` : '';
    if (x === null || typeof x !== 'object' || Array.isArray(x)) throw poison('TRANSFORM_BAD_RESULT', `${what} returned ${x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x}${at}: expected a change { op, key, after }, a list of them, or null`);
    const o = x as Record<string, unknown>;
    const op = (o.op ?? input.op) as ChangeOp;
    if (!OPS.has(op)) throw poison('TRANSFORM_BAD_RESULT', `${what} returned op '${String(o.op)}'${at}: expected insert, update, delete or snapshot`);
    const key = o.key === undefined ? input.key : o.key;
    if (key === null || typeof key !== 'object' || Array.isArray(key) || Object.keys(key).length === 0) throw poison('TRANSFORM_BAD_RESULT', `${what} returned a change without a key${at}`);
    const after = o.after === undefined ? (op === 'delete' ? null : input.after) : o.after;
    if (op !== 'delete' && (after === null || typeof after !== 'object' || Array.isArray(after))) throw poison('TRANSFORM_BAD_RESULT', `${what} returned an ${op} without an after row${at}`);
    return { op, key: buffers(key as Row), before: null, after: op === 'delete' ? null : buffers(after as Row), keep: op === 'delete' ? [] : input.keep.filter((k) => !(k in (after as Row))) };
  });
}

/** Uint8Arrays (Buffers after structured clone) back to Buffers. */
function buffers(row: Row): Row {
  for (const k of Object.keys(row)) {
    const v = row[k] as unknown;
    if (v instanceof Uint8Array && !Buffer.isBuffer(v)) setColumn(row, k, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }
  return row;
}

/** Load-time check of a table's transform list (raw config data): problems with their paths. */
export function checkTableTransforms(raw: unknown, opts: TransformCompileOptions): StepProblem[] {
  if (!Array.isArray(raw)) return [];
  // Only well-formed steps are compiled (the schema reports the others).
  const steps = raw.filter((s): s is TransformStep => s !== null && typeof s === 'object' && !Array.isArray(s));
  const idx = raw.map((s, i) => (s !== null && typeof s === 'object' && !Array.isArray(s) ? i : -1)).filter((i) => i >= 0);
  try {
    const r = compileTransforms(steps, { ...opts, runners: false });
    return r.problems.map((p) => ({ ...p, path: [idx[p.path[0] as number]!, ...p.path.slice(1)] }));
  } catch {
    return []; // a malformed step the schema reports
  }
}
