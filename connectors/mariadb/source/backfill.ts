/**
 * What the MariaDB source provides for backfills (src/capture/backfill.ts has the algorithm; ADR 0020).
 *
 *  - Watermarks and signals: MariaDB has no logical messages, so each is a row written into a small
 *    signal table in the source's connection database, `syncline_signals` (as Debezium's MySQL
 *    incremental snapshots use a signal data collection). One transaction inserts the row and deletes
 *    it again: the binlog holds the insert (with the whole row: binlog_row_image=FULL), the table
 *    stays empty. The binlog reader (./mariadb-source.ts) recognises inserts into the table, hands
 *    those of its own stream to the capture (handler.watermark / handler.signal) at their commit, in
 *    binlog order with the changes, and never forwards them as data. Rows carry the stream id
 *    (`mariadb_<pipeline>`): pipelines sharing a database ignore each other's.
 *    Needs INSERT and DELETE on the table, and CREATE on the database once (the first write creates
 *    the table when it is missing; or create it by hand: SIGNAL_TABLE_SQL).
 *  - Chunks: `SELECT cols FROM t WHERE (k1 > ?) OR (k1 = ? AND k2 > ?) … AND (where) ORDER BY k1, k2
 *    LIMIT n` on a connection of its own, in a READ ONLY transaction (the `where` is the operator's
 *    SQL; mysql2 sends one statement only), session time zone UTC, values made canonical like the
 *    snapshot's (./types.ts). The expanded key condition (not a row constructor) lets the range
 *    optimiser use the primary key on every MariaDB version. Resume keys are kept as text: integer and
 *    decimal keys are written back as numeric literals (exact; a quoted value would compare as a
 *    double), binary keys as hex, anything else as a quoted string.
 */
import type mysql from 'mysql2/promise';
import type { Row } from '../../../src/core/envelope.js';
import type { BackfillSupport, SourceTable } from '../../../src/capture/source.js';
import { errorMessage, fatal } from '../../../src/core/errors.js';
import type { ColumnType } from '../../../src/core/types.js';
import type { MariadbSourceConfig } from './spec.js';
import { classifyMysqlError, connectMysql, where as whereOf } from './prepare.js';
import { canonicalValue, quoteId, selectExpression } from './types.js';

export const SIGNAL_TABLE = 'syncline_signals';

export const signalTableSql = (db: string): string =>
  `CREATE TABLE IF NOT EXISTS ${quoteId(db)}.${SIGNAL_TABLE} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, stream VARCHAR(190) NOT NULL, kind VARCHAR(16) NOT NULL, body TEXT NOT NULL, created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`;

/** What an account needs for backfills, as statements to run. */
export const signalGrantHint = (db: string, user: string): string =>
  `GRANT INSERT, DELETE ON ${quoteId(db)}.${SIGNAL_TABLE} TO '${user}'@'%'; and either the table (${signalTableSql(db)};) or GRANT CREATE ON ${quoteId(db)}.* TO '${user}'@'%'; to let the first backfill create it`;

export type SignalKind = 'watermark' | 'signal';

/** A signal-table row as the binlog carries it (zongji: column name → value; TEXT may come as bytes). */
export function signalOf(row: Record<string, unknown>): { stream: string; kind: SignalKind; body: string } | null {
  const text = (v: unknown) => (Buffer.isBuffer(v) ? v.toString('utf8') : typeof v === 'string' ? v : null);
  const stream = text(row.stream);
  const kind = text(row.kind);
  const body = text(row.body);
  if (stream === null || body === null || (kind !== 'watermark' && kind !== 'signal')) return null;
  return { stream, kind, body };
}

const NUMBER = /^[+-]?\d+(\.\d+)?$/;

/** The resume key's text of a raw chunk value (mysql2: numbers, exact strings, Buffers). */
export function keyText(v: unknown): string {
  if (v === null || v === undefined) return '';
  return Buffer.isBuffer(v) ? v.toString('hex') : String(v);
}

/**
 * The condition "key > after" in key order, expanded ((k1 > a) OR (k1 = a AND k2 > b) …), with its
 * parameters: numeric keys inline as literals (checked), binary keys as Buffers, others as strings.
 */
export function afterCondition(key: string[], types: ColumnType[], after: string[]): { sql: string; params: unknown[] } {
  if (after.length !== key.length) throw fatal('BACKFILL_RESUME_KEY', `the stored resume key has ${after.length} values for a key of ${key.length} columns (${key.join(', ')}): the table's key changed; cancel the backfill and start it again`);
  const params: unknown[] = [];
  const lit = (i: number): string => {
    const t = types[i]!;
    const v = after[i]!;
    if (t.kind === 'int' || t.kind === 'long' || t.kind === 'decimal') {
      if (!NUMBER.test(v)) throw fatal('BACKFILL_RESUME_KEY', `the stored resume key value ${JSON.stringify(v)} of ${key[i]} is not a number`);
      return v;
    }
    params.push(t.kind === 'bytes' ? Buffer.from(v, 'hex') : v);
    return '?';
  };
  const ors: string[] = [];
  for (let i = 0; i < key.length; i++) {
    const ands: string[] = [];
    for (let j = 0; j < i; j++) ands.push(`${quoteId(key[j]!)} = ${lit(j)}`);
    ands.push(`${quoteId(key[i]!)} > ${lit(i)}`);
    ors.push(`(${ands.join(' AND ')})`);
  }
  return { sql: `(${ors.join(' OR ')})`, params };
}

export class MariadbBackfill implements BackfillSupport {
  private client?: Promise<mysql.Connection>;

  /** Tables added to the config later are backfilled, unless the pipeline wants no snapshot at all. */
  readonly addedTables: boolean;

  constructor(
    private readonly config: MariadbSourceConfig,
    private readonly pipeline: string,
    /** The stream id signal rows carry (the capture-offsets key, `mariadb_<pipeline>`). */
    readonly stream: string,
    private readonly onZeroDate?: () => void,
  ) {
    this.addedTables = config.snapshot !== 'never';
  }

  private conn(): Promise<mysql.Connection> {
    this.client ??= (async () => {
      const c = await connectMysql(this.config.connection, `pipeline ${this.pipeline} backfill`);
      await c.query(`SET SESSION time_zone = '+00:00'`);
      return c;
    })();
    const p = this.client;
    p.catch(() => {
      if (this.client === p) this.client = undefined;
    });
    return p;
  }

  watermark(id: string): Promise<void> {
    return this.write('watermark', id);
  }

  signal(text: string): Promise<void> {
    return this.write('signal', text);
  }

  /** Insert the row and delete it in one transaction: the binlog carries it, the table stays empty. */
  private async write(kind: SignalKind, body: string): Promise<void> {
    const db = this.config.connection.database;
    const t = `${quoteId(db)}.${SIGNAL_TABLE}`;
    const c = await this.conn();
    const once = async () => {
      await c.query('START TRANSACTION');
      await c.query(`INSERT INTO ${t} (stream, kind, body) VALUES (?, ?, ?)`, [this.stream, kind, body]);
      await c.query(`DELETE FROM ${t} WHERE id = LAST_INSERT_ID()`);
      await c.query('COMMIT');
    };
    try {
      try {
        await once();
      } catch (err) {
        if ((err as { errno?: number }).errno !== 1146) throw err;
        // No signal table yet: create it (needs CREATE on the database once), then write again.
        await c.query('ROLLBACK').catch(() => undefined);
        await c.query(signalTableSql(db));
        await once();
      }
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      await this.close();
      const context = `pipeline ${this.pipeline}: cannot write a backfill ${kind} into ${db}.${SIGNAL_TABLE} at ${whereOf(this.config.connection)}`;
      if ([1044, 1142, 1227].includes((err as { errno?: number }).errno ?? 0)) {
        throw fatal('MARIADB_PRIVILEGE', `${context}: ${errorMessage(err)}; backfills need: ${signalGrantHint(db, this.config.connection.user)}`, err);
      }
      throw classifyMysqlError(err, this.config.connection, context);
    }
  }

  async chunk(table: SourceTable, after: string[] | null, limit: number, where?: string): Promise<{ rows: Row[]; last: string[] | null }> {
    const c = await this.conn();
    const types = table.key.map((k) => table.columns.find((col) => col.name === k)!.type);
    const conds: string[] = [];
    let params: unknown[] = [];
    if (after) {
      const a = afterCondition(table.key, types, after);
      conds.push(a.sql);
      params = a.params;
    }
    if (where) conds.push(`(${where})`);
    const sql = `SELECT ${table.columns.map((col) => selectExpression(col.name, col.type)).join(', ')} FROM ${quoteId(table.schema)}.${quoteId(table.table)}` +
      `${conds.length > 0 ? ` WHERE ${conds.join(' AND ')}` : ''} ORDER BY ${table.key.map(quoteId).join(', ')} LIMIT ${Number(limit)}`;
    let raws: unknown[][];
    try {
      // Read-only: `where` is the operator's SQL.
      await c.query('START TRANSACTION READ ONLY');
      const [r] = await c.query({ sql, rowsAsArray: true }, params);
      await c.query('COMMIT');
      raws = r as unknown[][];
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      await this.close();
      throw classifyMysqlError(err, this.config.connection, `pipeline ${this.pipeline}: backfill chunk of ${table.schema}.${table.table} failed`);
    }
    const keyIdx = table.key.map((k) => table.columns.findIndex((col) => col.name === k));
    const rows: Row[] = [];
    let last: string[] | null = null;
    for (const raw of raws) {
      const row: Row = {};
      for (let i = 0; i < table.columns.length; i++) row[table.columns[i]!.name] = canonicalValue(raw[i], table.columns[i]!.type, this.onZeroDate);
      rows.push(row);
      last = keyIdx.map((i) => keyText(raw[i]));
    }
    return { rows, last };
  }

  async count(table: SourceTable, where?: string): Promise<number> {
    const c = await this.conn();
    try {
      await c.query('START TRANSACTION READ ONLY');
      const [r] = await c.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${quoteId(table.schema)}.${quoteId(table.table)}${where ? ` WHERE (${where})` : ''}`);
      await c.query('COMMIT');
      return Number(r[0]!.n);
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw classifyMysqlError(err, this.config.connection, `pipeline ${this.pipeline}: cannot count the rows of ${table.schema}.${table.table}${where ? ` where ${where}` : ''}`);
    }
  }

  async checkWhere(table: SourceTable, where: string): Promise<void> {
    const c = await this.conn();
    // EXPLAIN parses and plans: a syntax error or an unknown column is refused here, with MariaDB's words.
    await c.query(`EXPLAIN SELECT 1 FROM ${quoteId(table.schema)}.${quoteId(table.table)} WHERE (${where})`);
  }

  async close(): Promise<void> {
    const p = this.client;
    this.client = undefined;
    if (p) await (await p.catch(() => undefined))?.end().catch(() => undefined);
  }
}
