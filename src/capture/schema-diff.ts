/**
 * What a table's schema change means for the targets, decided from the columns before and after
 * (pure; capture calls it when a source reports new columns, ./capture.ts).
 *
 *  - safe, applied automatically: an added column (every column is nullable with a null default in
 *    the value schema, so old readers and targets lose nothing: a target adds the column), and
 *    widening: int2 → int4 → int8, float4 → float8, varchar(n) → varchar(m ≥ n) or text,
 *    char(n)/varchar(n) → text, numeric(p,s) → numeric(q ≥ p, s) or unconstrained numeric.
 *  - breaking, held for an operator: a dropped column, any other type change (narrowing, another
 *    kind), a change of the key columns, a rename of the table.
 *
 * Example: [{name:'id', int4}, {name:'b', text}] → [{name:'id', int8}] gives
 *   { breaking: true, changes: [{kind:'widen', column:'id', from:'int4', to:'int8'}, {kind:'drop', column:'b', from:'text'}] }.
 */
import type { SourceColumn } from './source.js';

export type SchemaChangeKind = 'add' | 'widen' | 'drop' | 'retype' | 'key' | 'rename';

export interface ColumnChange {
  kind: SchemaChangeKind;
  /** The column (add, widen, drop, retype); absent for key and rename. */
  column?: string;
  /** Type, key columns or table name before; after. */
  from?: string;
  to?: string;
}

export interface SchemaDiff {
  changes: ColumnChange[];
  /** One change is not safe: the table's apply waits for an operator. */
  breaking: boolean;
}

export const SAFE_KINDS: ReadonlySet<SchemaChangeKind> = new Set(['add', 'widen']);

const INT_RANK: Record<string, number> = { int2: 1, smallint: 1, int4: 2, integer: 2, int: 2, int8: 3, bigint: 3 };
const FLOAT_RANK: Record<string, number> = { float4: 1, real: 1, float8: 2, 'double precision': 2 };

/** Is a column type change from `from` to `to` (pgType spellings, src/core/types.ts) a widening: every old value fits, unchanged? */
export function isWidening(from: string, to: string): boolean {
  const f = from.trim().toLowerCase();
  const t = to.trim().toLowerCase();
  if (f === t) return true;
  if (INT_RANK[f] !== undefined && INT_RANK[t] !== undefined) return INT_RANK[t]! > INT_RANK[f]!;
  if (FLOAT_RANK[f] !== undefined && FLOAT_RANK[t] !== undefined) return FLOAT_RANK[t]! > FLOAT_RANK[f]!;
  const sized = (s: string) => /^(varchar|character varying|char|character|bpchar)\((\d+)\)$/.exec(s);
  const fs = sized(f);
  if (fs) {
    if (t === 'text' || t === 'varchar' || t === 'character varying') return true;
    const ts = sized(t);
    // char(n) → varchar(m) drops char's blank padding from the values: only varchar → varchar widens.
    const isVar = (k: string) => k === 'varchar' || k === 'character varying';
    return ts !== null && isVar(fs[1]!) && isVar(ts[1]!) && Number(ts[2]) >= Number(fs[2]);
  }
  const num = (s: string) => /^(?:numeric|decimal)\((\d+),\s*(\d+)\)$/.exec(s);
  const fn = num(f);
  if (fn) {
    if (t === 'numeric' || t === 'decimal') return true;
    const tn = num(t);
    return tn !== null && Number(tn[2]) === Number(fn[2]) && Number(tn[1]) >= Number(fn[1]);
  }
  return false;
}

/**
 * The changes from `before` to `after` (columns by name), a key change when `keyBefore` and
 * `keyAfter` differ, a rename when `renamedTo` is given.
 */
export function diffColumns(before: SourceColumn[], after: SourceColumn[], opts: { keyBefore?: string[]; keyAfter?: string[]; renamedFrom?: string; renamedTo?: string } = {}): SchemaDiff {
  const changes: ColumnChange[] = [];
  const old = new Map(before.map((c) => [c.name, c]));
  const now = new Map(after.map((c) => [c.name, c]));
  for (const c of after) {
    const o = old.get(c.name);
    if (!o) changes.push({ kind: 'add', column: c.name, to: c.type.pgType });
    else if (o.type.pgType !== c.type.pgType) {
      changes.push({ kind: isWidening(o.type.pgType, c.type.pgType) ? 'widen' : 'retype', column: c.name, from: o.type.pgType, to: c.type.pgType });
    }
  }
  for (const o of before) if (!now.has(o.name)) changes.push({ kind: 'drop', column: o.name, from: o.type.pgType });
  const { keyBefore, keyAfter } = opts;
  if (keyBefore && keyAfter && keyBefore.join('\u0000') !== keyAfter.join('\u0000')) changes.push({ kind: 'key', from: keyBefore.join(','), to: keyAfter.join(',') });
  if (opts.renamedTo !== undefined) changes.push({ kind: 'rename', from: opts.renamedFrom, to: opts.renamedTo });
  return { changes, breaking: changes.some((c) => !SAFE_KINDS.has(c.kind)) };
}

/** One line per change, for logs, alerts and `syncline schema pending`: "drop column b (text); widen id int4 → int8". */
export function describeChanges(changes: ColumnChange[]): string {
  return changes.map((c) => {
    switch (c.kind) {
      case 'add': return `add column ${c.column} (${c.to})`;
      case 'drop': return `drop column ${c.column} (${c.from})`;
      case 'widen': return `widen ${c.column} ${c.from} → ${c.to}`;
      case 'retype': return `retype ${c.column} ${c.from} → ${c.to}`;
      case 'key': return `key (${c.from}) → (${c.to})`;
      case 'rename': return `rename table ${c.from ?? ''} → ${c.to}`;
    }
  }).join('; ');
}
