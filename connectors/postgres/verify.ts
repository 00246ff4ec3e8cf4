/**
 * PostgreSQL side of `syncline verify` (src/verify/side.ts has the canonical rendering): one
 * connection of its own, every query a single statement in a READ ONLY transaction, so nothing is
 * locked beyond what a plain SELECT takes. Digests are one aggregate per key range
 * (`count(*)`, `sum(('x' || left(md5(row), 15))::bit(60)::bigint)`), so memory stays flat however
 * big the table; rows are only fetched for small ranges that differ.
 *
 * Text keys are compared and ordered with COLLATE "C" on both sides (byte order), so that a range
 * means the same rows on two databases with different collations.
 */
import type pg from 'pg';
import type { PgConnection } from './spec.js';
import { fatal } from '../../src/core/errors.js';
import { classifyPgError } from './errors.js';
import { connectSource, quoteIdent, quoteTable } from './source/prepare.js';
import type { CanonicalRow, KeyText, RangeDigest, VerifySide, VerifyTable } from '../../src/verify/side.js';

interface ColInfo {
  type: string;
  /** Canonical text expression of the column (`$` is the column reference). */
  expr: string;
  /** Ordered and compared with COLLATE "C". */
  text: boolean;
}

/** The canonical text expression of a column of this type (format_type, typcategory). */
export function canonicalExpr(col: string, type: string, category: string): { expr: string; text: boolean } {
  const t = type.toLowerCase();
  if (t.startsWith('numeric')) return { expr: `trim_scale(${col})::text`, text: false };
  if (t.startsWith('timestamp') && t.includes('with time zone')) return { expr: `coalesce(to_char(${col} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), ${col}::text)`, text: false };
  if (t.startsWith('timestamp')) return { expr: `coalesce(to_char(${col}, 'YYYY-MM-DD"T"HH24:MI:SS.US'), ${col}::text)`, text: false };
  if (t === 'date') return { expr: `coalesce(to_char(${col}, 'YYYY-MM-DD'), ${col}::text)`, text: false };
  if (t === 'json' || t === 'jsonb') return { expr: `${col}::jsonb::text`, text: false };
  if (t === 'bytea') return { expr: `encode(${col}, 'hex')`, text: false };
  if (t === 'boolean') return { expr: `${col}::int::text`, text: false };
  if (t === 'uuid') return { expr: `${col}::text`, text: false };
  return { expr: `${col}::text`, text: category === 'S' };
}

export class PgVerifySide implements VerifySide {
  private client?: Promise<pg.Client>;
  private readonly info = new Map<string, Map<string, ColInfo>>();

  constructor(private readonly connection: PgConnection, private readonly what: string) {}

  private conn(): Promise<pg.Client> {
    this.client ??= connectSource(this.connection, this.what);
    const p = this.client;
    p.catch(() => {
      if (this.client === p) this.client = undefined;
    });
    return p;
  }

  private async query(text: string, values: unknown[], context: string): Promise<pg.QueryResult> {
    const c = await this.conn();
    try {
      await c.query('begin read only');
      const r = await c.query({ text, values });
      await c.query('commit');
      return r;
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      throw classifyPgError(err, `${this.what}: ${context}`);
    }
  }

  private async cols(schema: string, table: string): Promise<Map<string, ColInfo>> {
    const name = quoteTable(schema, table);
    const known = this.info.get(name);
    if (known) return known;
    const r = await this.query(
      `select a.attname, format_type(a.atttypid, a.atttypmod) as type, t.typcategory as cat
         from pg_attribute a join pg_type t on t.oid = a.atttypid
        where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped order by a.attnum`,
      [name], `cannot read the columns of ${schema}.${table}`,
    );
    if (r.rows.length === 0) throw fatal('VERIFY_TABLE_MISSING', `${this.what}: table ${schema}.${table} does not exist`);
    const m = new Map<string, ColInfo>();
    for (const row of r.rows as { attname: string; type: string; cat: string }[]) {
      m.set(row.attname, { type: row.type, ...canonicalExpr(`t.${quoteIdent(row.attname)}`, row.type, row.cat) });
    }
    this.info.set(name, m);
    return m;
  }

  async columnsOf(schema: string, table: string): Promise<string[]> {
    return [...(await this.cols(schema, table)).keys()];
  }

  async primaryKey(schema: string, table: string): Promise<string[]> {
    const r = await this.query(
      `select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
        where i.indrelid = to_regclass($1) and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)`,
      [quoteTable(schema, table)], `cannot read the primary key of ${schema}.${table}`,
    );
    return (r.rows as { attname: string }[]).map((x) => x.attname);
  }

  /** SQL pieces of a table: its name, key tuple (collated), canonical row and key expressions. */
  private async parts(t: VerifyTable) {
    const m = await this.cols(t.schema, t.table);
    const col = (c: string) => {
      const i = m.get(c);
      if (!i) throw fatal('VERIFY_COLUMN_MISSING', `${this.what}: table ${t.schema}.${t.table} has no column ${c}`);
      return i;
    };
    const keyRef = t.key.map((k) => `t.${quoteIdent(k)}${col(k).text ? ' collate "C"' : ''}`);
    const bound = (start: number) => `(${t.key.map((k, i) => `$${start + i}::${col(k).type}${col(k).text ? ' collate "C"' : ''}`).join(', ')})`;
    const canon = t.columns.map((c) => col(c).expr);
    const row = `concat_ws(chr(31), ${canon.map((e) => `coalesce('v' || ${e}, 'n')`).join(', ')})`;
    const keyExprs = t.key.map((k) => col(k).expr);
    return { name: quoteTable(t.schema, t.table), keyTuple: `(${keyRef.join(', ')})`, order: keyRef.join(', '), bound, canon, row, keyExprs };
  }

  private range(p: Awaited<ReturnType<PgVerifySide['parts']>>, lo: KeyText | null, hi: KeyText | null): { where: string; values: string[] } {
    const conds: string[] = [];
    const values: string[] = [];
    if (lo) {
      conds.push(`${p.keyTuple} > ${p.bound(values.length + 1)}`);
      values.push(...lo);
    }
    if (hi) {
      conds.push(`${p.keyTuple} <= ${p.bound(values.length + 1)}`);
      values.push(...hi);
    }
    return { where: conds.length ? ` where ${conds.join(' and ')}` : '', values };
  }

  async digest(t: VerifyTable, lo: KeyText | null, hi: KeyText | null): Promise<RangeDigest> {
    const p = await this.parts(t);
    const { where, values } = this.range(p, lo, hi);
    const r = await this.query(
      `select count(*)::text as n, coalesce(sum(('x' || left(md5(${p.row}), 15))::bit(60)::bigint), 0)::text as s from ${p.name} t${where}`,
      values, `cannot checksum ${t.schema}.${t.table}`,
    );
    const row = r.rows[0] as { n: string; s: string };
    return { count: Number(row.n), sum: row.s };
  }

  async keyAt(t: VerifyTable, lo: KeyText | null, hi: KeyText | null, offset: number): Promise<KeyText | null> {
    const p = await this.parts(t);
    const { where, values } = this.range(p, lo, hi);
    const r = await this.query(
      `select ${p.keyExprs.map((e, i) => `${e} as k${i}`).join(', ')} from ${p.name} t${where} order by ${p.order} offset ${Math.max(0, Math.floor(offset))} limit 1`,
      values, `cannot read the keys of ${t.schema}.${t.table}`,
    );
    const row = r.rows[0] as Record<string, string> | undefined;
    return row ? t.key.map((_k, i) => row[`k${i}`]!) : null;
  }

  private toRows(t: VerifyTable, rows: Record<string, string | null>[]): CanonicalRow[] {
    return rows.map((row) => ({ key: t.key.map((_k, i) => row[`k${i}`] ?? ''), values: t.columns.map((_c, i) => row[`c${i}`] ?? null) }));
  }

  async rows(t: VerifyTable, lo: KeyText | null, hi: KeyText | null): Promise<CanonicalRow[]> {
    const p = await this.parts(t);
    const { where, values } = this.range(p, lo, hi);
    const r = await this.query(
      `select ${[...p.keyExprs.map((e, i) => `${e} as k${i}`), ...p.canon.map((e, i) => `${e} as c${i}`)].join(', ')} from ${p.name} t${where} order by ${p.order}`,
      values, `cannot read rows of ${t.schema}.${t.table}`,
    );
    return this.toRows(t, r.rows as Record<string, string | null>[]);
  }

  async rowsByKeys(t: VerifyTable, keys: KeyText[]): Promise<CanonicalRow[]> {
    if (keys.length === 0) return [];
    const p = await this.parts(t);
    const values: string[] = [];
    const tuples = keys.map((k) => {
      const b = p.bound(values.length + 1);
      values.push(...k);
      return b;
    });
    const r = await this.query(
      `select ${[...p.keyExprs.map((e, i) => `${e} as k${i}`), ...p.canon.map((e, i) => `${e} as c${i}`)].join(', ')} from ${p.name} t where ${p.keyTuple} in (${tuples.join(', ')})`,
      values, `cannot read rows of ${t.schema}.${t.table} by key`,
    );
    return this.toRows(t, r.rows as Record<string, string | null>[]);
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await (await c?.catch(() => undefined))?.end().catch(() => undefined);
  }
}
