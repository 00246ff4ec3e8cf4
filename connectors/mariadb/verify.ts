/**
 * MariaDB side of `syncline verify` as a target (src/verify/side.ts has the canonical rendering,
 * connectors/postgres/verify.ts the PostgreSQL side it is compared with): one connection of its own,
 * session time_zone '+00:00' (as the sink writes), READ ONLY transactions. Digests are
 * `count(*)` and `sum(conv(left(md5(row), 15), 16, 10))` per key range; text keys are ordered and
 * compared in utf8mb4_bin (byte order, as PostgreSQL's COLLATE "C" on the other side).
 */
import mysql from 'mysql2/promise';
import { fatal } from '../../src/core/errors.js';
import type { CanonicalRow, KeyText, RangeDigest, VerifySide, VerifyTable } from '../../src/verify/side.js';
import { mariadbOptions, type MariadbConnection } from './connection.js';
import { classifyMariaError } from './errors.js';
import { quoteIdent } from './ddl.js';

interface ColInfo {
  expr: string;
  /** The bound parameter's cast. */
  param: string;
  text: boolean;
}

const INTS = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);
const TEXTS = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set']);

/** The canonical text expression of a column of this DATA_TYPE (see side.ts). */
export function mariaCanonical(col: string, dataType: string): ColInfo {
  const t = dataType.toLowerCase();
  if (INTS.has(t)) return { expr: `cast(${col} as char)`, param: 'cast(? as decimal(65,0))', text: false };
  if (t === 'decimal') return { expr: `if(locate('.', cast(${col} as char)) > 0, trim(trailing '.' from trim(trailing '0' from cast(${col} as char))), cast(${col} as char))`, param: 'cast(? as decimal(65,30))', text: false };
  if (t === 'datetime' || t === 'timestamp') return { expr: `date_format(${col}, '%Y-%m-%dT%H:%i:%s.%f')`, param: 'cast(? as datetime(6))', text: false };
  if (t === 'date') return { expr: `date_format(${col}, '%Y-%m-%d')`, param: 'cast(? as date)', text: false };
  if (t === 'binary' || t === 'varbinary' || t.endsWith('blob')) return { expr: `lower(hex(${col}))`, param: 'unhex(?)', text: false };
  if (TEXTS.has(t)) return { expr: `cast(${col} as char character set utf8mb4)`, param: 'cast(? as char character set utf8mb4) collate utf8mb4_bin', text: true };
  return { expr: `cast(${col} as char character set utf8mb4)`, param: '?', text: false };
}

export class MariaVerifySide implements VerifySide {
  private conn?: Promise<mysql.Connection>;
  private readonly info = new Map<string, Map<string, ColInfo>>();

  constructor(private readonly connection: MariadbConnection, private readonly what: string) {}

  private async c(): Promise<mysql.Connection> {
    this.conn ??= (async () => {
      const c = await mysql.createConnection(mariadbOptions(this.connection, { supportBigNumbers: true, bigNumberStrings: true, dateStrings: true }));
      await c.query(`SET time_zone = '+00:00'`);
      c.on('error', () => undefined);
      return c;
    })();
    const p = this.conn;
    p.catch(() => {
      if (this.conn === p) this.conn = undefined;
    });
    return p;
  }

  private async query(sql: string, values: unknown[], context: string): Promise<Record<string, string | null>[]> {
    const c = await this.c();
    try {
      await c.query('START TRANSACTION READ ONLY');
      const [rows] = await c.query({ sql, values, rowsAsArray: false });
      await c.query('COMMIT');
      return rows as Record<string, string | null>[];
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw classifyMariaError(err, `${this.what}: ${context}`);
    }
  }

  private async cols(schema: string, table: string): Promise<Map<string, ColInfo>> {
    const name = `${schema}.${table}`;
    const known = this.info.get(name);
    if (known) return known;
    const rows = await this.query(
      'SELECT COLUMN_NAME AS n, DATA_TYPE AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
      [schema, table], `cannot read the columns of ${name}`,
    );
    if (rows.length === 0) throw fatal('VERIFY_TABLE_MISSING', `${this.what}: table ${name} does not exist`);
    const m = new Map<string, ColInfo>();
    for (const r of rows) m.set(r.n!, mariaCanonical(`t.${quoteIdent(r.n!)}`, r.t!));
    this.info.set(name, m);
    return m;
  }

  async columnsOf(schema: string, table: string): Promise<string[]> {
    return [...(await this.cols(schema, table)).keys()];
  }

  async primaryKey(schema: string, table: string): Promise<string[]> {
    const rows = await this.query(
      "SELECT COLUMN_NAME AS n FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
      [schema, table], `cannot read the primary key of ${schema}.${table}`,
    );
    return rows.map((r) => r.n!);
  }

  private async parts(t: VerifyTable) {
    const m = await this.cols(t.schema, t.table);
    const col = (c: string) => {
      const i = m.get(c);
      if (!i) throw fatal('VERIFY_COLUMN_MISSING', `${this.what}: table ${t.schema}.${t.table} has no column ${c}`);
      return i;
    };
    const keyRef = t.key.map((k) => `t.${quoteIdent(k)}${col(k).text ? ' collate utf8mb4_bin' : ''}`);
    const bound = `(${t.key.map((k) => col(k).param).join(', ')})`;
    const canon = t.columns.map((c) => col(c).expr);
    const row = `concat_ws(char(31 using utf8mb4), ${canon.map((e) => `coalesce(concat('v', ${e}), 'n')`).join(', ')})`;
    return { name: `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`, keyTuple: `(${keyRef.join(', ')})`, order: keyRef.join(', '), bound, canon, row, keyExprs: t.key.map((k) => col(k).expr) };
  }

  private range(p: Awaited<ReturnType<MariaVerifySide['parts']>>, lo: KeyText | null, hi: KeyText | null): { where: string; values: string[] } {
    const conds: string[] = [];
    const values: string[] = [];
    if (lo) {
      conds.push(`${p.keyTuple} > ${p.bound}`);
      values.push(...lo);
    }
    if (hi) {
      conds.push(`${p.keyTuple} <= ${p.bound}`);
      values.push(...hi);
    }
    return { where: conds.length ? ` WHERE ${conds.join(' AND ')}` : '', values };
  }

  async digest(t: VerifyTable, lo: KeyText | null, hi: KeyText | null): Promise<RangeDigest> {
    const p = await this.parts(t);
    const { where, values } = this.range(p, lo, hi);
    const [r] = await this.query(
      `SELECT cast(count(*) as char) AS n, cast(coalesce(sum(cast(conv(left(md5(${p.row}), 15), 16, 10) as unsigned)), 0) as char) AS s FROM ${p.name} t${where}`,
      values, `cannot checksum ${t.schema}.${t.table}`,
    );
    return { count: Number(r!.n), sum: r!.s! };
  }

  async keyAt(t: VerifyTable, lo: KeyText | null, hi: KeyText | null, offset: number): Promise<KeyText | null> {
    const p = await this.parts(t);
    const { where, values } = this.range(p, lo, hi);
    const [r] = await this.query(
      `SELECT ${p.keyExprs.map((e, i) => `${e} AS k${i}`).join(', ')} FROM ${p.name} t${where} ORDER BY ${p.order} LIMIT 1 OFFSET ${Math.max(0, Math.floor(offset))}`,
      values, `cannot read the keys of ${t.schema}.${t.table}`,
    );
    return r ? t.key.map((_k, i) => r[`k${i}`] ?? '') : null;
  }

  private toRows(t: VerifyTable, rows: Record<string, string | null>[]): CanonicalRow[] {
    return rows.map((row) => ({ key: t.key.map((_k, i) => row[`k${i}`] ?? ''), values: t.columns.map((_c, i) => row[`c${i}`] ?? null) }));
  }

  async rows(t: VerifyTable, lo: KeyText | null, hi: KeyText | null): Promise<CanonicalRow[]> {
    const p = await this.parts(t);
    const { where, values } = this.range(p, lo, hi);
    return this.toRows(t, await this.query(
      `SELECT ${[...p.keyExprs.map((e, i) => `${e} AS k${i}`), ...p.canon.map((e, i) => `${e} AS c${i}`)].join(', ')} FROM ${p.name} t${where} ORDER BY ${p.order}`,
      values, `cannot read rows of ${t.schema}.${t.table}`,
    ));
  }

  async rowsByKeys(t: VerifyTable, keys: KeyText[]): Promise<CanonicalRow[]> {
    if (keys.length === 0) return [];
    const p = await this.parts(t);
    return this.toRows(t, await this.query(
      `SELECT ${[...p.keyExprs.map((e, i) => `${e} AS k${i}`), ...p.canon.map((e, i) => `${e} AS c${i}`)].join(', ')} FROM ${p.name} t WHERE ${p.keyTuple} IN (${keys.map(() => p.bound).join(', ')})`,
      keys.flat(), `cannot read rows of ${t.schema}.${t.table} by key`,
    ));
  }

  async close(): Promise<void> {
    const c = this.conn;
    this.conn = undefined;
    await (await c?.catch(() => undefined))?.end().catch(() => undefined);
  }
}
