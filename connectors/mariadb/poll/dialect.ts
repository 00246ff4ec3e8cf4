/**
 * MariaDB/MySQL for the polling source (src/capture/poll/): plain SQL over one connection of the
 * connector's builder (../connection.ts through ../source/prepare.ts: exact text values, UTC), columns
 * typed as the binlog source types them (../source/types.ts), values made canonical the same way.
 * Needs only SELECT on the polled tables or views: no binlog, no replication privileges.
 */
import type mysql from 'mysql2/promise';
import type { PollDialect, PollRelation } from '../../../src/capture/poll/dialect.js';
import { ALIAS } from '../../../src/capture/poll/dialect.js';
import type { SourceColumn, TableRequest } from '../../../src/capture/source.js';
import type { Value } from '../../../src/core/envelope.js';
import { fatal, type SynclineError } from '../../../src/core/errors.js';
import { parseTableName } from '../../../src/core/names.js';
import { classifyMysqlError, connectMysql, readColumns, where } from '../source/prepare.js';
import { canonicalValue, quoteId, selectExpression } from '../source/types.js';
import type { MariadbConnection } from '../connection.js';

export class MariadbPollDialect implements PollDialect {
  readonly system = 'MariaDB';
  readonly where: string;
  readonly database: string;
  private conn?: mysql.Connection;
  private zeroDateWarned = false;

  constructor(private readonly c: MariadbConnection, private readonly pipeline: string, private readonly warn: (msg: string) => void) {
    this.where = where(c);
    this.database = c.database;
  }

  async connect(): Promise<void> {
    this.conn = await connectMysql(this.c, `pipeline ${this.pipeline} poll`);
    try {
      await this.conn.query(`SET SESSION time_zone = '+00:00'`);
    } catch (err) {
      throw this.classify(err, `pipeline ${this.pipeline} poll: setting the session time zone`);
    }
  }

  async close(): Promise<void> {
    await this.conn?.end().catch(() => undefined);
  }

  async describe(req: TableRequest, query: string | undefined, pipeline: string): Promise<PollRelation> {
    const { schema, table } = parseTableName(req.source);
    if (query !== undefined) {
      throw fatal('POLL_QUERY_UNSUPPORTED', `pipeline ${pipeline}: source.tables.${req.source}.query: the MariaDB polling source reads tables and views, not queries yet; create a view of the query (CREATE VIEW ${schema}.${table} AS …) and poll it with tables[].key`);
    }
    let columns: SourceColumn[] | null;
    let pk: string[];
    try {
      columns = await readColumns(this.conn!, schema, table);
      const [rows] = await this.conn!.query<mysql.RowDataPacket[]>(
        `SELECT COLUMN_NAME AS name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`,
        [schema, table],
      );
      pk = rows.map((r) => String(r.name));
    } catch (err) {
      throw this.classify(err, `pipeline ${pipeline}: describing ${req.source}`);
    }
    if (!columns) throw fatal('SOURCE_TABLE_MISSING', `pipeline ${pipeline}: source table or view ${req.source} does not exist (MariaDB ${this.where}: database ${schema}, table ${table})`);
    const key = req.key ?? pk;
    if (key.length === 0) throw fatal('POLL_KEY_REQUIRED', `pipeline ${pipeline}: ${req.source} has no primary key (a view has none): set tables[].key to the columns that identify a row`);
    const unknown = key.filter((k) => !columns!.some((c) => c.name === k));
    if (unknown.length > 0) throw fatal('SOURCE_KEY_UNKNOWN', `pipeline ${pipeline}: key column(s) ${unknown.join(', ')} of ${req.source} do not exist`);
    return { schema, table, key, columns, from: `${quoteId(schema)}.${quoteId(table)} ${ALIAS}` };
  }

  id(name: string): string {
    return quoteId(name);
  }

  param(): string {
    return '?';
  }

  select(col: SourceColumn): string {
    return selectExpression(col.name, col.type).replace(/^(CAST\()?`/, (m, cast) => `${cast ?? ''}${ALIAS}.\``);
  }

  rowHash(columns: SourceColumn[]): string {
    // QUOTE keeps NULL ('NULL') apart from the text 'NULL' ('\'NULL\'') and escapes the separator's quotes.
    return `MD5(CONCAT_WS(',', ${columns.map((c) => `QUOTE(${ALIAS}.${quoteId(c.name)})`).join(', ')}))`;
  }

  hashSum(hash: string): string {
    return `CAST(COALESCE(SUM(CAST(CONV(SUBSTR(${hash}, 1, 15), 16, 10) AS UNSIGNED)), 0) AS CHAR)`;
  }

  after(colExpr: string, _col: SourceColumn, mode: 'timestamp' | 'version', wm: string, overlap: string | null): string {
    if (overlap === null) return `${colExpr} > ${wm}`;
    return mode === 'timestamp' ? `${colExpr} > CAST(${wm} AS DATETIME(6)) - INTERVAL (${overlap} * 1000) MICROSECOND` : `${colExpr} > ${wm} - ${overlap}`;
  }

  async query(sql: string, params: unknown[]): Promise<unknown[][]> {
    const [rows] = await this.conn!.query<mysql.RowDataPacket[][]>({ sql, rowsAsArray: true }, params);
    return rows as unknown as unknown[][];
  }

  canonical(raw: unknown, col: SourceColumn): Value {
    return canonicalValue(raw, col.type, () => {
      if (this.zeroDateWarned) return;
      this.zeroDateWarned = true;
      this.warn('capture.value.zero-date: a zero date (0000-00-00, month or day 0) has no calendar value: carried as null (logged once per process)');
    });
  }

  classify(err: unknown, context: string): SynclineError {
    return classifyMysqlError(err, this.c, context);
  }
}
