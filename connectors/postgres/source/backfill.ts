/**
 * What the PostgreSQL source provides for backfills (src/capture/backfill.ts has the algorithm):
 *  - watermarks and signals: `pg_logical_emit_message(true, prefix, json)`, transactional, so they
 *    reach the slot in commit order with the changes; read back through pgoutput (`messages 'true'`,
 *    ./postgres-source.ts). Messages are database-wide: each carries the slot name, and a pipeline's
 *    stream ignores those of other slots. No signal table and no grant beyond what capture has.
 *  - chunks: `SELECT cols, key::text FROM t WHERE (k1,k2) > ($1::type1,$2::type2) AND (where)
 *    ORDER BY k1,k2 LIMIT n` on a connection of its own, in a READ ONLY transaction (the `where` is the
 *    operator's SQL), one statement (extended protocol),
 *    values in PostgreSQL's text form (parsed by ../pgtypes.ts like the stream's). The last key is kept
 *    in its text form (the resume point, stored opaque by the framework).
 */
import type pg from 'pg';
import type { PgSourceConfig } from '../spec.js';
import { setColumn, type Row } from '../../../src/core/envelope.js';
import type { BackfillSupport, SourceTable } from '../../../src/capture/source.js';
import { classifyPgError } from '../errors.js';
import { parsePgText } from '../pgtypes.js';
import { connectSource, quoteIdent, quoteTable } from './prepare.js';

export const WATERMARK_PREFIX = 'syncline.watermark';
export const SIGNAL_PREFIX = 'syncline.signal';

/** The JSON content of a syncline logical message. */
export interface PgSyncMessage {
  slot: string;
  /** A watermark's id. */
  id?: string;
  /** A signal's text. */
  text?: string;
}

export class PgBackfill implements BackfillSupport {
  private client?: Promise<pg.Client>;
  private readonly keyTypes = new Map<string, string[]>();

  /** Tables added to the config later are backfilled, unless the pipeline wants no snapshot at all. */
  readonly addedTables: boolean;

  constructor(private readonly config: PgSourceConfig, private readonly pipeline: string) {
    this.addedTables = config.snapshot !== 'never';
  }

  private conn(): Promise<pg.Client> {
    this.client ??= connectSource(this.config.connection, `pipeline ${this.pipeline} backfill`);
    const p = this.client;
    p.catch(() => {
      if (this.client === p) this.client = undefined;
    });
    return p;
  }

  async watermark(id: string): Promise<void> {
    await this.emit(WATERMARK_PREFIX, { slot: this.config.slot, id });
  }

  async signal(text: string): Promise<void> {
    await this.emit(SIGNAL_PREFIX, { slot: this.config.slot, text });
  }

  private async emit(prefix: string, body: PgSyncMessage): Promise<void> {
    const c = await this.conn();
    try {
      await c.query('select pg_logical_emit_message(true, $1, $2::text)', [prefix, JSON.stringify(body)]);
    } catch (err) {
      await this.drop();
      throw classifyPgError(err, `pipeline ${this.pipeline}: cannot write a ${prefix} message into the WAL of ${this.config.connection.database}`);
    }
  }

  async chunk(table: SourceTable, after: string[] | null, limit: number, where?: string): Promise<{ rows: Row[]; last: string[] | null }> {
    const c = await this.conn();
    const types = await this.keyTypesOf(c, table);
    const keys = table.key.map((k) => `t.${quoteIdent(k)}`);
    const params: string[] = after ?? [];
    const conds: string[] = [];
    if (after) conds.push(`(${keys.join(', ')}) > (${table.key.map((_k, i) => `$${i + 1}::${types[i]}`).join(', ')})`);
    if (where) conds.push(`(${where})`);
    const cols = table.columns.map((col) => `t.${quoteIdent(col.name)}`);
    const sql = `select ${[...cols, ...keys.map((k) => `${k}::text`)].join(', ')} from ${quoteTable(table.schema, table.table)} t` +
      `${conds.length > 0 ? ` where ${conds.join(' and ')}` : ''} order by ${keys.join(', ')} limit ${limit}`;
    let r: pg.QueryResult;
    try {
      // Read-only: `where` is the operator's SQL.
      await c.query('begin read only');
      r = await c.query({ text: sql, values: params, rowMode: 'array' });
      await c.query('commit');
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      await this.drop();
      throw classifyPgError(err, `pipeline ${this.pipeline}: backfill chunk of ${table.schema}.${table.table} failed`);
    }
    const rows: Row[] = [];
    let last: string[] | null = null;
    const n = table.columns.length;
    for (const raw of r.rows as (string | null)[][]) {
      const row: Row = {};
      for (let i = 0; i < n; i++) setColumn(row, table.columns[i]!.name, parsePgText(raw[i] ?? null, table.columns[i]!.type));
      rows.push(row);
      last = raw.slice(n).map((v) => v ?? '');
    }
    return { rows, last };
  }

  /** `(t."k1", t."k2") in (('1'::int8, 'a'::text), …)`: literals, so the condition can travel in a signal and sit in the backfill's state. */
  keysWhere(table: SourceTable, keys: string[][]): string {
    const types = table.key.map((k) => table.columns.find((c) => c.name === k)?.type.pgType ?? 'text');
    const lit = (v: string, i: number) => `'${v.replace(/'/g, "''")}'::${types[i]}`;
    return `(${table.key.map((k) => `t.${quoteIdent(k)}`).join(', ')}) in (${keys.map((k) => `(${k.map(lit).join(', ')})`).join(', ')})`;
  }

  keyRow(table: SourceTable, key: string[]): Row {
    const row: Row = {};
    for (const c of table.columns) {
      const i = table.key.indexOf(c.name);
      setColumn(row, c.name, i < 0 ? null : parsePgText(key[i] ?? null, c.type));
    }
    return row;
  }

  async count(table: SourceTable, where?: string): Promise<number> {
    const c = await this.conn();
    try {
      await c.query('begin read only');
      const r = await c.query<{ n: string }>(`select count(*)::text as n from ${quoteTable(table.schema, table.table)}${where ? ` where (${where})` : ''}`);
      await c.query('commit');
      return Number(r.rows[0]!.n);
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      throw classifyPgError(err, `pipeline ${this.pipeline}: cannot count the rows of ${table.schema}.${table.table}${where ? ` where ${where}` : ''}`);
    }
  }

  async checkWhere(table: SourceTable, where: string): Promise<void> {
    const c = await this.conn();
    // EXPLAIN parses and plans without reading: a syntax error or an unknown column is refused here.
    // Extended protocol (a parameter list): one statement only.
    await c.query({ text: `explain select 1 from ${quoteTable(table.schema, table.table)} where (${where})`, values: [] });
  }

  /** The key columns' SQL types (format_type), for the casts of the resume key's text. */
  private async keyTypesOf(c: pg.Client, table: SourceTable): Promise<string[]> {
    const name = `${table.schema}.${table.table}`;
    const known = this.keyTypes.get(name);
    if (known) return known;
    const r = await c.query<{ attname: string; type: string }>(
      `select attname, format_type(atttypid, atttypmod) as type from pg_attribute where attrelid = $1::regclass and attnum > 0 and not attisdropped`,
      [quoteTable(table.schema, table.table)],
    );
    const types = table.key.map((k) => r.rows.find((x) => x.attname === k)?.type ?? 'text');
    this.keyTypes.set(name, types);
    return types;
  }

  /** After a failure the connection is opened again at the next call (it may be the one that broke). */
  private async drop(): Promise<void> {
    await this.close();
  }

  async close(): Promise<void> {
    const p = this.client;
    this.client = undefined;
    if (p) await (await p.catch(() => undefined))?.end().catch(() => undefined);
  }
}
