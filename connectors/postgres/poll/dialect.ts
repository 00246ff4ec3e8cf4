/**
 * PostgreSQL for the polling source (src/capture/poll/): plain SQL over one connection of the
 * connector's builder (../connection.ts, session in UTC with exact text forms), columns typed by the
 * connector's catalog (../pgtypes.ts), values parsed by its text parser. Needs only SELECT on the
 * polled tables, views or query: no replication rights, no publication, no slot.
 */
import type pg from 'pg';
import type { PollDialect, PollRelation } from '../../../src/capture/poll/dialect.js';
import { ALIAS } from '../../../src/capture/poll/dialect.js';
import type { SourceColumn, TableRequest } from '../../../src/capture/source.js';
import type { Value } from '../../../src/core/envelope.js';
import { fatal, type SynclineError } from '../../../src/core/errors.js';
import { parseTableName } from '../../../src/core/names.js';
import { classifyPgError } from '../errors.js';
import { TypeCatalog, columnType, parsePgText } from '../pgtypes.js';
import { connectSource, quoteIdent, quoteTable } from '../source/prepare.js';
import type { PgConnection } from '../spec.js';

export class PgPollDialect implements PollDialect {
  readonly system = 'PostgreSQL';
  readonly where: string;
  readonly database: string;
  private client?: pg.Client;
  private catalog?: TypeCatalog;

  constructor(private readonly c: PgConnection, private readonly pipeline: string) {
    this.where = `${c.host}:${c.port}/${c.database}`;
    this.database = c.database;
  }

  async connect(): Promise<void> {
    this.client = await connectSource(this.c, `pipeline ${this.pipeline} poll`);
    this.catalog = await TypeCatalog.load(this.client);
  }

  async close(): Promise<void> {
    await this.client?.end().catch(() => undefined);
  }

  async describe(req: TableRequest, query: string | undefined, pipeline: string): Promise<PollRelation> {
    const { schema, table } = parseTableName(req.source);
    const client = this.client!;
    let cols: { name: string; oid: number; typmod: number }[];
    let pk: string[] = [];
    let from: string;
    try {
      if (query !== undefined) {
        from = `(${query}) ${ALIAS}`;
        const r = await client.query({ text: `SELECT * FROM ${from} LIMIT 0`, rowMode: 'array' });
        cols = r.fields.map((f) => ({ name: f.name, oid: f.dataTypeID, typmod: f.dataTypeModifier }));
      } else {
        from = `${quoteTable(schema, table)} ${ALIAS}`;
        const rel = await client.query<{ oid: string }>(
          `select c.oid::text as oid from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2 and c.relkind in ('r','p','v','m','f')`,
          [schema, table],
        );
        if (rel.rowCount === 0) throw fatal('SOURCE_TABLE_MISSING', `pipeline ${pipeline}: source table or view ${req.source} does not exist (PostgreSQL ${this.where})`);
        const oid = rel.rows[0]!.oid;
        const a = await client.query<{ attname: string; atttypid: string; atttypmod: string }>(
          `select attname, atttypid::int::text as atttypid, atttypmod::text as atttypmod from pg_attribute where attrelid = $1::oid and attnum > 0 and not attisdropped order by attnum`,
          [oid],
        );
        cols = a.rows.map((r) => ({ name: r.attname, oid: Number(r.atttypid), typmod: Number(r.atttypmod) }));
        const k = await client.query<{ attname: string }>(
          `select a.attname from pg_index i join lateral unnest(i.indkey) with ordinality k(attnum, ord) on true
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum where i.indrelid = $1::oid and i.indisprimary order by k.ord`,
          [oid],
        );
        pk = k.rows.map((r) => r.attname);
      }
      await this.catalog!.ensure(client, cols.map((c) => c.oid));
    } catch (err) {
      throw this.classify(err, `pipeline ${pipeline}: describing ${query !== undefined ? `the query of ${req.source}` : req.source}`);
    }
    const columns: SourceColumn[] = cols.map((c) => ({ name: c.name, type: columnType(c.oid, c.typmod, this.catalog!) }));
    const key = req.key ?? pk;
    if (key.length === 0) {
      throw fatal('POLL_KEY_REQUIRED', `pipeline ${pipeline}: ${req.source} has no primary key (a view or a query has none): set tables[].key to the columns that identify a row`);
    }
    const unknown = key.filter((k) => !columns.some((c) => c.name === k));
    if (unknown.length > 0) throw fatal('SOURCE_KEY_UNKNOWN', `pipeline ${pipeline}: key column(s) ${unknown.join(', ')} of ${req.source} do not exist`);
    return { schema, table, key, columns, from };
  }

  id(name: string): string {
    return quoteIdent(name);
  }

  param(n: number, col?: SourceColumn): string {
    return col ? `CAST($${n} AS ${col.type.pgType})` : `$${n}`;
  }

  select(col: SourceColumn): string {
    return `${ALIAS}.${quoteIdent(col.name)}`;
  }

  rowHash(): string {
    // The row's composite text: every column, NULL and empty apart, in the session's exact text forms.
    return `md5(ROW(${ALIAS}.*)::text)`;
  }

  hashSum(hash: string): string {
    return `coalesce(sum(('x' || substr(${hash}, 1, 15))::bit(60)::bigint), 0)::text`;
  }

  after(colExpr: string, _col: SourceColumn, mode: 'timestamp' | 'version', wm: string, overlap: string | null): string {
    if (overlap === null) return `${colExpr} > ${wm}`;
    return mode === 'timestamp' ? `${colExpr} > ${wm} - (${overlap}::float8 * interval '1 millisecond')` : `${colExpr} > ${wm} - ${overlap}::bigint`;
  }

  async query(sql: string, params: unknown[]): Promise<unknown[][]> {
    const r = await this.client!.query({ text: sql, values: params, rowMode: 'array' });
    return r.rows as unknown[][];
  }

  canonical(raw: unknown, col: SourceColumn): Value {
    return parsePgText((raw as string | null) ?? null, col.type);
  }

  classify(err: unknown, context: string): SynclineError {
    return classifyPgError(err, context);
  }
}
