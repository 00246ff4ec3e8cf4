/**
 * The SQL of a pass, built from a dialect's pieces (pure: no I/O, unit-tested in ./queries.test.ts).
 * Every query reads one relation aliased ALIAS, pages by keyset (`(k1, k2) > (last1, last2) ORDER BY
 * k1, k2 LIMIT n`: no OFFSET, no cursor, no snapshot held open) and passes values as parameters in
 * the order their placeholders appear (MariaDB's '?' are positional).
 *
 * A key range is (lo, hi]: lo exclusive, hi inclusive, null for no bound; bounds are the key's raw
 * driver values as tagged JSON (./chunks.ts).
 */
import type { SourceColumn } from '../source.js';
import { parseTagged } from '../../core/tagged-json.js';
import { ALIAS, type PollDialect, type PollRelation } from './dialect.js';

export interface Query {
  sql: string;
  params: unknown[];
}

export interface KeyRange {
  lo: string | null;
  hi: string | null;
}

const col = (d: PollDialect, c: SourceColumn): string => `${ALIAS}.${d.id(c.name)}`;

/** `(a, b) op (p1, p2)` over `cols` with the raw values `vals`, appended to `params`. */
export function compare(d: PollDialect, cols: SourceColumn[], op: '>' | '<=', vals: unknown[], params: unknown[]): string {
  const left = cols.map((c) => col(d, c));
  const right = cols.map((c, i) => {
    params.push(vals[i]);
    return d.param(params.length, c);
  });
  return cols.length === 1 ? `${left[0]} ${op} ${right[0]}` : `(${left.join(', ')}) ${op} (${right.join(', ')})`;
}

function rangeWhere(d: PollDialect, keyCols: SourceColumn[], range: KeyRange, params: unknown[]): string[] {
  const where: string[] = [];
  if (range.lo !== null) where.push(compare(d, keyCols, '>', parseTagged(range.lo) as unknown[], params));
  if (range.hi !== null) where.push(compare(d, keyCols, '<=', parseTagged(range.hi) as unknown[], params));
  return where;
}

const whereText = (where: string[]): string => (where.length ? ` WHERE ${where.join(' AND ')}` : '');

/** Every column, then the row hash (the last value of each row). */
export const selectList = (d: PollDialect, rel: PollRelation): string => [...rel.columns.map((c) => d.select(c)), d.rowHash(rel.columns)].join(', ');

/** Row count and digest of a key range, both computed by the database. */
export function digestQuery(d: PollDialect, rel: PollRelation, keyCols: SourceColumn[], range: KeyRange): Query {
  const params: unknown[] = [];
  const where = rangeWhere(d, keyCols, range, params);
  return { sql: `SELECT count(*), ${d.hashSum(d.rowHash(rel.columns))} FROM ${rel.from}${whereText(where)}`, params };
}

/** One page of a key range in key order, after the key `after` (raw values) when given. */
export function keyPageQuery(d: PollDialect, rel: PollRelation, keyCols: SourceColumn[], range: KeyRange, after: unknown[] | null, pageSize: number): Query {
  const params: unknown[] = [];
  const where = rangeWhere(d, keyCols, range, params);
  if (after) where.push(compare(d, keyCols, '>', after, params));
  return { sql: `SELECT ${selectList(d, rel)} FROM ${rel.from}${whereText(where)} ORDER BY ${keyCols.map((c) => col(d, c)).join(', ')} LIMIT ${pageSize}`, params };
}

/**
 * One page of the rows whose tracking column is above `watermark` (raw value; null: every row with
 * the column set) minus `overlap`, in (column, key) order, after `after` = [column, ...key] when given.
 */
export function trackedPageQuery(
  d: PollDialect, rel: PollRelation, tracked: SourceColumn, keyCols: SourceColumn[], mode: 'timestamp' | 'version',
  watermark: unknown, overlap: number, after: unknown[] | null, pageSize: number,
): Query {
  const params: unknown[] = [];
  const where = [`${col(d, tracked)} IS NOT NULL`];
  if (watermark !== null) {
    params.push(watermark);
    const wm = d.param(params.length, tracked);
    let ov: string | null = null;
    if (overlap > 0) {
      params.push(overlap);
      ov = d.param(params.length);
    }
    where.push(d.after(col(d, tracked), tracked, mode, wm, ov));
  }
  const order = [tracked, ...keyCols];
  if (after) where.push(compare(d, order, '>', after, params));
  return { sql: `SELECT ${selectList(d, rel)} FROM ${rel.from}${whereText(where)} ORDER BY ${order.map((c) => col(d, c)).join(', ')} LIMIT ${pageSize}`, params };
}
