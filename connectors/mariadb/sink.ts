/**
 * MariaDB sink: applies a batch of SinkRecords with a few set-based statements in one
 * transaction (./plan.ts says which).
 *
 * Lifecycle: owned by the sink stage of one pipeline. The constructor creates a mysql2 pool (no
 * connection yet); connect() checks the target answers; writeBatch()/writeGuarded()/readRows() many
 * times, writeBatch concurrently for batches of different Kafka partitions (their keys never overlap;
 * each takes its own pooled connection); close() ends the pool, also after a failed connect().
 * Every session runs with time_zone '+00:00', a strict sql_mode (STRICT_ALL_TABLES: a bad value is an
 * error, never a silent truncation; NO_BACKSLASH_ESCAPES: literals double their quotes only), NAMES
 * utf8mb4, READ COMMITTED (no gap locks between the disjoint key sets of concurrent batches) and
 * innodb_lock_wait_timeout = lockTimeoutS.
 *
 * Buffers: nothing across calls but table metadata (columns, their read types, primary key), loaded
 * once per table from information_schema, reloaded when a record carries a column the cache lacks, and
 * before the next write of a table one of whose records failed (an operator may fix the table).
 *
 * Crash/replay: every statement is an upsert by key, a delete by key or a delete of all rows
 * (truncate), so the same batch written again leaves the target identical. When writeBatch returns,
 * every record not in `failed` is committed.
 *
 * Failures: a poison error (./errors.ts: a value or constraint the target refuses) rolls the batch back
 * and writes it again in one transaction, each table's records bisected under SAVEPOINTs down to the
 * single bad records, which are returned in `failed` naming table, key, code (MARIADB_1406) and the
 * column where the server's message names it; everything else commits. Retriable errors (deadlock,
 * lock timeout, connection) and fatal ones (access denied, unknown database) are thrown.
 *
 * DDL (autoCreate, autoEvolve) runs outside the write transactions (MariaDB commits implicitly
 * before DDL) under GET_LOCK on the table's name, so sink processes and concurrent batches that find
 * the same table missing take turns; CREATE TABLE / ADD COLUMN IF NOT EXISTS make the second a no-op.
 *
 * Two-way sync (ctx.origin; ./origins.ts): every pooled session runs with `SET SESSION server_id`
 * = the id registered for `<origin>:0` in `syncline_origins`, so the MariaDB source of the peer
 * pipeline reads that id on each of these transactions' GTID, finds the name and skips them.
 * republish() re-emits rows from a session tagged `republishOrigin(origin, over):0`; since MariaDB
 * logs no row event for an UPDATE that changes nothing, it changes every integer and DATETIME/
 * TIMESTAMP column (not key, not generated) by one and back in one transaction (the source folds
 * the two updates of a key in a tagged transaction into one). republishDelete() deletes from the
 * `…/republish:0` session with `SET TIMESTAMP` = the delete's commit time (the binlog keeps whole
 * seconds) and the milliseconds in a comment the binlog's annotate event carries to the source.
 */
import { createHash } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { Logger } from 'pino';
import { republishOrigin, setColumn, type Decided, type Row } from '../../src/core/envelope.js';
import { fatal, poison, retriable, SynclineError } from '../../src/core/errors.js';
import type { ConnectorContext } from '../../src/core/registry.js';
import { keyString, type FailedRecord, type GuardedWrite, type Sink, type SinkRecord, type TargetRows, type WriteResult } from '../../src/sink/sink.js';
import { addColumnsSql, columnOf, createDatabaseSql, createTableSql, lockName, newTableColumns, quoteIdent, quoteTable, splitTable } from './ddl.js';
import { classifyMariaError, isRecordError } from './errors.js';
import { byTable, cut, insertSql, keyIn, plan, prepare, withLiterals, type Prepared, type Stmt, type TableMeta } from './plan.js';
import type { MariadbSinkConfig } from './spec.js';
import { mariadbOptions } from './connection.js';
import { fromMaria, inferKind, literal, pgTypeOfComment, quoteString, readTypeOf, TEMPORAL_TYPES } from './types.js';
import { registerOrigin } from './origins.js';

const SQL_MODE = 'STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO';
const SAVEPOINT = 'syncline_iso';
/** How long a DDL statement waits for another process creating or altering the same table. */
const DDL_LOCK_S = 60;

type Conn = mysql.PoolConnection;
const INTEGER_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'bigint']);
type RawRow = Record<string, Buffer | null>;

/**
 * Target columns for a SELECT read as arrays (qa): each named by its position (`c0`, `c1`…: a column
 * named `__proto__` is refused by mysql2 under its own name); FLOAT as DOUBLE (FLOAT prints rounded
 * to 6 digits; as DOUBLE it prints exactly).
 */
function selectList(cols: { name: string; dataType: string }[]): string {
  return cols.map((col, i) => `${col.dataType === 'float' ? `CAST(${quoteIdent(col.name)} AS DOUBLE)` : quoteIdent(col.name)} AS c${i}`).join(',');
}

/** Every value arrives as raw bytes; ./types.ts fromMaria makes it canonical by the column's read type. */
const rawBytes = (field: { buffer(): Buffer | null }): Buffer | null => field.buffer();

export class MariadbSink implements Sink {
  /** Round trips, batches written, batches that needed isolation, DDL done. */
  readonly stats = { queries: 0, batches: 0, isolations: 0, columnsAdded: 0, tablesCreated: 0 };
  private readonly pool: mysql.Pool;
  private readonly meta = new Map<string, TableMeta>();
  /** Tables whose metadata is reloaded before their next write (a record of theirs failed). */
  private readonly staleMeta = new Set<string>();
  /** Sessions already set up (time zone, sql_mode, …). */
  private readonly ready = new WeakSet<object>();
  private readonly log: Logger;
  private closed = false;
  /** Two-way sync: the pipeline's origin (see ConnectorContext.origin and ./origins.ts). */
  private readonly origin?: string;
  /** One single-connection pool per kind of re-published change (its server id says which). */
  private readonly republishPools = new Map<Decided, mysql.Pool>();
  /** Server ids of origin names, registered in syncline_origins once per process. */
  private readonly originIds = new Map<string, Promise<number>>();

  constructor(
    private readonly cfg: MariadbSinkConfig,
    ctx: ConnectorContext,
  ) {
    this.log = ctx.log;
    this.origin = ctx.origin;
    this.pool = this.newPool(cfg.poolSize);
  }

  private newPool(size: number): mysql.Pool {
    const pool = mysql.createPool(mariadbOptions(this.cfg.connection, {
      connectionLimit: size,
      connectTimeout: 15_000,
      enableKeepAlive: true,
      typeCast: rawBytes as unknown as mysql.PoolOptions['typeCast'],
    }));
    // An idle connection that breaks emits here; the next checkout gets a fresh one.
    (pool as unknown as { on(e: string, f: (err: Error) => void): void }).on('error', (err) => this.log.warn({ err: err.message }, 'sink.mariadb.idle_connection_error'));
    return pool;
  }

  private get where(): string {
    return `mariadb sink ${this.cfg.connection.host}:${this.cfg.connection.port}`;
  }

  async connect(): Promise<void> {
    try {
      await this.ping();
    } catch (err) {
      const e = err as SynclineError;
      e.message = `cannot connect to MariaDB ${this.cfg.connection.user}@${this.cfg.connection.host}:${this.cfg.connection.port}/${this.cfg.connection.database}: ${e.message}`;
      throw e;
    }
  }

  async ping(): Promise<void> {
    await this.withConn('ping', async (c) => {
      await this.q(c, 'SELECT 1');
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const pool of this.republishPools.values()) await pool.end().catch(() => undefined);
    await this.pool.end().catch((err: Error) => this.log.warn({ err: err.message }, 'sink.mariadb.close_failed'));
  }

  // ---------------------------------------------------------------------------------------------
  // writeBatch

  async writeBatch(batch: SinkRecord[]): Promise<WriteResult> {
    const failed: FailedRecord[] = [];
    const all = prepare(batch, failed, this.where);
    const ensured = all.length > 0 ? await this.ensureTables(all, batch) : [];
    const ready = withLiterals(ensured, (t) => this.meta.get(t)!, failed, (p, e) => this.recordError(p, e));
    if (ready.length === 0) return this.report(failed);
    this.stats.batches++;
    await this.withConn(`batch of ${ready.length} records`, async (c) => {
      await this.q(c, 'START TRANSACTION');
      try {
        for (const s of plan(ready, (t) => this.meta.get(t)!)) await this.run(c, s);
        await this.q(c, 'COMMIT');
        return;
      } catch (err) {
        const e = classifyMariaError(err, `${this.where}: batch of ${ready.length} records`);
        if (!isRecordError(e)) throw e;
        await this.q(c, 'ROLLBACK');
      }
      await this.q(c, 'START TRANSACTION');
      await this.isolate(c, ready, failed);
      await this.q(c, 'COMMIT');
    });
    return this.report(failed);
  }

  /** Read (FOR UPDATE), decide and write in one transaction; see GuardedWrite. */
  async writeGuarded(g: GuardedWrite): Promise<WriteResult> {
    const failed: FailedRecord[] = [];
    for (const table of g.reads.keys()) if (!this.meta.has(table)) await this.loadMeta([table]);
    const ddlFirst: { batch?: SinkRecord[] } = {};
    await this.withConn('guarded write', async (c) => {
      await this.q(c, 'START TRANSACTION');
      const rows: TargetRows = new Map();
      // A table that does not exist yet (autoCreate) has no rows to read.
      for (const [table, keys] of g.reads) rows.set(table, this.meta.has(table) ? await this.selectRows(c, table, keys, true) : new Map());
      const batch = await g.decide(rows);
      const prepared = withoutAbsentDeletes(prepare(batch, failed, this.where), g.reads, rows);
      const unknown = [...new Set(prepared.map((p) => p.table))].filter((t) => !this.meta.has(t));
      if (unknown.length > 0) await this.loadMeta(unknown);
      // DDL would commit this transaction and release the locks: roll back, do it, decide again.
      if (this.needsDdl(prepared)) {
        ddlFirst.batch = batch;
        await this.q(c, 'ROLLBACK');
        return;
      }
      const present = prepared.filter((p) => this.meta.has(p.table)); // deletes of a missing table: done
      const ready = withLiterals(present, (t) => this.meta.get(t)!, failed, (p, e) => this.recordError(p, e));
      if (ready.length > 0) {
        this.stats.batches++;
        await this.q(c, `SAVEPOINT ${SAVEPOINT}`);
        try {
          for (const s of plan(ready, (t) => this.meta.get(t)!)) await this.run(c, s);
        } catch (err) {
          const e = classifyMariaError(err, `${this.where}: guarded batch of ${ready.length} records`);
          if (!isRecordError(e)) throw e;
          await this.q(c, `ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
          await this.isolate(c, ready, failed);
        }
      }
      await this.q(c, 'COMMIT');
    });
    if (ddlFirst.batch) {
      await this.ensureTables(prepare(ddlFirst.batch, [], this.where), ddlFirst.batch);
      return this.writeGuarded(g);
    }
    return this.report(failed);
  }

  /** Some record needs a table created, reloaded or a column added before it can be written. */
  private needsDdl(records: Prepared[]): boolean {
    for (const p of records) {
      const m = this.meta.get(p.table);
      if (!m) {
        if (p.rec.op === 'upsert') return true;
        continue;
      }
      if (this.staleMeta.has(p.table)) return true;
      for (const c of p.row ? p.row.keys() : p.keyCols) if (!m.columns.has(c)) return true;
    }
    return false;
  }

  /** Run one statement; upserts per ./plan.ts, absent rows and tables with other unique indexes checked. */
  private async run(c: Conn, s: Stmt): Promise<void> {
    if (s.kind === 'sql') {
      await this.q(c, s.sql);
      return;
    }
    if (s.absent) {
      try {
        await this.q(c, insertSql(s.meta, s.cols, s.keyCols, s.rows, false));
      } catch (err) {
        const e = err as { errno?: number; sqlMessage?: string };
        if (e.errno === 1062 && /for key '(?:[^']*\.)?PRIMARY'/.test(e.sqlMessage ?? '')) {
          throw retriable('SINK_ROW_APPEARED', `${this.where}: a row of ${s.meta.table} was inserted by someone else after the conflict check found none there; checking again`, err);
        }
        throw err;
      }
      return;
    }
    if (!s.meta.otherUnique) {
      await this.q(c, insertSql(s.meta, s.cols, s.keyCols, s.rows, true));
      return;
    }
    // ON DUPLICATE KEY UPDATE fires on any unique index: a new row whose value clashes on a non-key
    // unique index would overwrite that other row. Rows whose key exists (locked here) are upserted,
    // the others inserted plainly, so such a clash fails (1062, poison) instead.
    const n = s.keyCols.length;
    const found = await this.qa(c, `SELECT ${selectList(s.keyCols.map((k) => s.meta.columns.get(k)!))} FROM ${s.meta.ident} WHERE ${keyIn(s.keyCols, s.rows.map((r) => ({ text: n === 1 ? r[0]! : '(' + r.slice(0, n).join(',') + ')' })))} FOR UPDATE`);
    const keyCols = s.keyCols.map((k) => s.meta.columns.get(k)!);
    const existing = new Set(found.map((r) => keyCols.map((k, i) => literal(fromMaria(r[i] ?? null, k.read), k)).join(',')));
    const upd = s.rows.filter((r) => existing.has(r.slice(0, n).join(',')));
    const ins = s.rows.filter((r) => !existing.has(r.slice(0, n).join(',')));
    if (upd.length > 0) await this.q(c, insertSql(s.meta, s.cols, s.keyCols, upd, true));
    if (ins.length > 0) await this.q(c, insertSql(s.meta, s.cols, s.keyCols, ins, false));
  }

  /** Find the bad records of a batch that failed: each table's records bisected on their own. */
  private async isolate(c: Conn, prepared: Prepared[], failed: FailedRecord[]): Promise<void> {
    this.stats.isolations++;
    this.log.warn({ records: prepared.length }, 'sink.isolate: batch hit a bad record; isolating');
    for (const part of byTable(prepared).values()) await this.bisect(c, part, failed);
  }

  /** Apply `part` under a savepoint; on a poison error roll it back and split it, down to single records. */
  private async bisect(c: Conn, part: Prepared[], failed: FailedRecord[]): Promise<void> {
    if (part.length === 0) return;
    await this.q(c, `SAVEPOINT ${SAVEPOINT}`);
    try {
      for (const s of plan(part, (t) => this.meta.get(t)!)) await this.run(c, s);
      await this.q(c, `RELEASE SAVEPOINT ${SAVEPOINT}`);
      return;
    } catch (err) {
      const e = classifyMariaError(err, `${this.where}: isolating ${part.length} records`);
      if (!isRecordError(e)) throw e;
      await this.q(c, `ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
      if (part.length === 1) {
        failed.push({ record: part[0]!.rec, error: this.recordError(part[0]!, err) });
        return;
      }
    }
    const mid = part.length >> 1;
    await this.bisect(c, part.slice(0, mid), failed);
    await this.bisect(c, part.slice(mid), failed);
  }

  /** The poison error of one record: names table, key, the server's code and, where told, the column. */
  private recordError(p: Prepared, err: unknown): SynclineError {
    const what = p.rec.op === 'truncate' ? `truncate ${p.table}` : `${p.rec.op} ${p.table} key ${keyString(p.rec.key)}`;
    const c = classifyMariaError(err, `${this.where}: ${what}`);
    const out = c.kind === 'poison' ? c : poison(c.code, c.message, err);
    if (c.column !== undefined) out.column = c.column;
    if (err instanceof SynclineError && err !== c) out.message = `${this.where}: ${what}: ${err.message}`;
    return out;
  }

  /** Failed records are never silent: one warn line each (the caller dead-letters them). */
  private report(failed: FailedRecord[]): WriteResult {
    for (const f of failed) {
      if (typeof f.record.table === 'string') this.staleMeta.add(f.record.table);
      this.log.warn({ table: f.record.table, op: f.record.op, position: f.record.position, code: f.error.code, column: f.error.column, err: f.error.message }, 'sink.record.failed');
    }
    return { failed };
  }

  // ---------------------------------------------------------------------------------------------
  // readRows

  async readRows(table: string, keys: Row[]): Promise<Map<string, Row>> {
    if (keys.length === 0) return new Map();
    if (!this.meta.has(table) && (await this.loadMeta([table])).length > 0) return new Map(); // not created yet: no rows
    let out = new Map<string, Row>();
    await this.withConn(`reading ${keys.length} rows of ${table}`, async (c) => {
      out = await this.selectRows(c, table, keys, false);
    });
    return out;
  }

  /**
   * SELECT the rows of these keys (FOR UPDATE: locked until the transaction ends) as canonical values,
   * keyed by the caller's keyString: a row's key is matched to the asked key by the literals both
   * write as (a key asked as 'A1B2…' finds the uuid stored as 'a1b2…').
   */
  private async selectRows(c: Conn, table: string, keys: Row[], forUpdate: boolean): Promise<Map<string, Row>> {
    const meta = this.meta.get(table)!;
    const keyCols = Object.keys(keys[0]!);
    const unknown = keyCols.filter((k) => !meta.columns.has(k));
    if (unknown.length > 0) throw fatal('SINK_UNKNOWN_COLUMN', `${this.where}: target table ${table} has no key column ${unknown.join(', ')}`);
    const kc = keyCols.map((k) => meta.columns.get(k)!);
    const wanted = new Map<string, string>();
    const tuples: { text: string }[] = [];
    for (const k of keys) {
      let lits: string[];
      try {
        lits = kc.map((col) => literal(k[col.name] ?? null, col));
      } catch {
        continue; // a key MariaDB cannot hold has no row
      }
      wanted.set(lits.join(','), keyString(k));
      tuples.push({ text: lits.length === 1 ? lits[0]! : '(' + lits.join(',') + ')' });
    }
    const cols = [...meta.columns.values()];
    const select = selectList(cols);
    const out = new Map<string, Row>();
    for (const part of cut(tuples)) {
      const res = await this.qa(c, `SELECT ${select} FROM ${meta.ident} WHERE ${keyIn(keyCols, part)}${forUpdate ? ' FOR UPDATE' : ''}`);
      for (const raw of res) {
        const row: Row = {};
        for (let i = 0; i < cols.length; i++) setColumn(row, cols[i]!.name, fromMaria(raw[i] ?? null, cols[i]!.read));
        const lits = kc.map((col) => literal(row[col.name], col)).join(',');
        out.set(wanted.get(lits) ?? keyString(Object.fromEntries(keyCols.map((k) => [k, row[k] ?? null]))), row);
      }
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // Two-way sync (./origins.ts)

  /** Tag a fresh session's transactions with the server id of origin `name` (registered on first use). */
  private async tagSession(c: Conn, name: string): Promise<void> {
    let id = this.originIds.get(name);
    if (!id) {
      id = (async () => {
        const own = (await this.q(c, 'SELECT @@server_id AS id')) as RawRow[];
        return registerOrigin((sql) => this.q(c, sql), this.cfg.connection.database, name, Number(own[0]?.id?.toString() ?? 0));
      })();
      this.originIds.set(name, id);
      id.catch(() => this.originIds.delete(name));
    }
    const serverId = await id;
    try {
      await this.q(c, `SET SESSION server_id = ${serverId}`);
    } catch (err) {
      if ((err as { errno?: number }).errno === 1227) {
        throw fatal('SINK_ORIGIN_DENIED', `${this.where}: two-way sync tags the sink's writes with a session server_id, which needs SUPER or: GRANT BINLOG REPLAY ON *.* TO ${quoteString(this.cfg.connection.user)}`, err);
      }
      throw err;
    }
  }

  /** One transaction on the session of re-published changes of kind `over` (tagged `republishOrigin(origin, over):0`). */
  private async inRepublishSession(over: Decided, what: string, fn: (c: Conn) => Promise<void>, tsMs?: number): Promise<void> {
    let pool = this.republishPools.get(over);
    if (!pool) this.republishPools.set(over, (pool = this.newPool(1)));
    await this.withConn(what, async (c) => {
      // The whole transaction, COMMIT included (its GTID event takes the COMMIT's time), at tsMs.
      if (tsMs !== undefined) await this.q(c, `SET TIMESTAMP = ${(tsMs / 1000).toFixed(3)}`);
      try {
        await this.q(c, 'START TRANSACTION');
        await fn(c);
        await this.q(c, 'COMMIT');
      } finally {
        if (tsMs !== undefined) await this.q(c, 'ROLLBACK').then(() => this.q(c, 'SET TIMESTAMP = DEFAULT'));
      }
    }, pool, republishOrigin(this.origin!, over) + ':0');
  }

  /**
   * MariaDB writes no row event for an UPDATE that changes nothing, so re-emitting a row means
   * changing it and changing it back in the same transaction: every integer column by one (even up,
   * odd down) and every DATETIME/TIMESTAMP column by one second (even second up, odd down), key and
   * generated columns excepted; the same statement twice is the identity. Timestamp columns are set
   * explicitly, so ON UPDATE CURRENT_TIMESTAMP does not fire. The source folds the two updates into
   * one (before: the row, after: the row).
   */
  private flipSql(meta: TableMeta, where: string): string {
    const set: string[] = [];
    for (const col of meta.columns.values()) {
      if (col.generated || meta.primaryKey.includes(col.name)) continue;
      const c = quoteIdent(col.name);
      if (INTEGER_TYPES.has(col.dataType)) set.push(`${c} = IF(${c} % 2 = 0, ${c} + 1, ${c} - 1)`);
      else if (col.dataType === 'datetime' || col.dataType === 'timestamp') set.push(`${c} = IF(SECOND(${c}) % 2 = 0, ${c} + INTERVAL 1 SECOND, ${c} - INTERVAL 1 SECOND)`);
    }
    if (set.length === 0) {
      throw fatal('SINK_REPUBLISH_NO_COLUMN', `${this.where}: two-way sync re-publishes rows of ${meta.table} by changing an integer or DATETIME/TIMESTAMP column and back (MariaDB logs no unchanged row), and it has none besides its key`);
    }
    return `UPDATE ${meta.ident} SET ${set.join(', ')} WHERE ${where}`;
  }

  /** The key columns' literals of each key, as `keyIn` tuples (keys MariaDB cannot hold have no row: left out). */
  private keyTuples(meta: TableMeta, keys: Row[]): { cols: string[]; tuples: { text: string }[] } {
    const cols = Object.keys(keys[0]!);
    const kc = cols.map((k) => {
      const col = meta.columns.get(k);
      if (!col) throw fatal('SINK_UNKNOWN_COLUMN', `${this.where}: target table ${meta.table} has no key column ${k}`);
      return col;
    });
    const tuples: { text: string }[] = [];
    for (const k of keys) {
      try {
        const lits = kc.map((col) => literal(k[col.name] ?? null, col));
        tuples.push({ text: lits.length === 1 ? lits[0]! : '(' + lits.join(',') + ')' });
      } catch {
        continue;
      }
    }
    return { cols, tuples };
  }

  private async metaOf(table: string): Promise<TableMeta | undefined> {
    if (!this.meta.has(table)) await this.loadMeta([table], true);
    return this.meta.get(table);
  }

  /** Two-way: re-emit these rows as changes the peer carries back, tagged as decided over `over` (Sink.republish). */
  async republish(table: string, keys: Row[], over: Decided): Promise<void> {
    if (keys.length === 0 || this.origin === undefined) return;
    const meta = await this.metaOf(table);
    if (!meta) return; // no table: no row to re-publish
    const { cols, tuples } = this.keyTuples(meta, keys);
    if (tuples.length === 0) return;
    await this.inRepublishSession(over, `re-publishing ${keys.length} rows of ${table}`, async (c) => {
      for (const part of cut(tuples)) {
        const sql = this.flipSql(meta, keyIn(cols, part));
        await this.q(c, sql);
        await this.q(c, sql);
      }
    });
  }

  /**
   * Two-way: delete rows as a decision the peer carries back (Sink.republishDelete), from the
   * `…/republish:0` session, in one transaction whose binlog time is the delete's commit time
   * (`SET TIMESTAMP`, whole seconds in the event headers; the milliseconds ride in a comment the
   * annotate event carries). A row whose guard columns changed since they were read stays, and is
   * re-published in the same transaction instead.
   */
  async republishDelete(table: string, rows: { key: Row; guard: Row }[], tsMs: number): Promise<Row[]> {
    const keptKeys: Row[] = [];
    if (rows.length === 0 || this.origin === undefined) return keptKeys;
    const meta = await this.metaOf(table);
    if (!meta) return keptKeys;
    await this.inRepublishSession('delete', `deleting ${rows.length} rows of ${table} as decided for the peer`, async (c) => {
      for (const { key, guard } of rows) {
        const { cols, tuples } = this.keyTuples(meta, [key]);
        if (tuples.length === 0) continue;
        const keyWhere = keyIn(cols, tuples);
        const where = [keyWhere];
        for (const [col, v] of Object.entries(guard)) {
          const info = meta.columns.get(col);
          if (info) where.push(`${quoteIdent(col)} <=> ${literal(v ?? null, info)}`);
        }
        const res = (await this.q(c, `DELETE /* syncline-ts:${Math.trunc(tsMs)} */ FROM ${meta.ident} WHERE ${where.join(' AND ')}`)) as { affectedRows?: number };
        if (res.affectedRows !== 0 || Object.keys(guard).length === 0) continue;
        // Changed after the decision. A row whose time is still earlier than the delete's (the delete
        // counts at the end of its millisecond; a tie keeps the row) loses to it like any other: in a
        // mesh another node's pipeline may have written an older row here meanwhile, which every other
        // node deletes by the same rule (PostgresSink.republishDelete).
        const field = Object.keys(guard).find((col) => TEMPORAL_TYPES.has(meta.columns.get(col)?.dataType ?? ''));
        if (field !== undefined) {
          const deleteTime = literal(new Date(tsMs).toISOString().replace('Z', '999Z'), meta.columns.get(field)!);
          const older = (await this.q(c, `DELETE /* syncline-ts:${Math.trunc(tsMs)} */ FROM ${meta.ident} WHERE ${keyWhere} AND ${quoteIdent(field)} < ${deleteTime}`)) as { affectedRows?: number };
          if (older.affectedRows) continue;
        }
        // A later change (a local edit, typically) wins over the delete; re-published here (decided
        // over a delete), the peer writes it where the delete left no row.
        const sql = this.flipSql(meta, keyWhere);
        const kept = (await this.q(c, sql)) as { affectedRows?: number };
        await this.q(c, sql);
        if (kept.affectedRows) {
          keptKeys.push(key);
          this.log.info({ table, key: keyString(key) }, 'sink.republish_delete.changed: the row changed after the delete was decided; re-published instead');
        }
      }
    }, tsMs);
    return keptKeys;
  }

  // ---------------------------------------------------------------------------------------------
  // Metadata, autoCreate, autoEvolve

  /**
   * Make sure every table of the records exists with every column they write: metadata reloaded
   * where it lacks a table or column, a missing table created (autoCreate) from its first upsert's key
   * and the column types the records carry, missing columns added (autoEvolve). Returns the records to
   * write: without deletes and truncates of a table that does not exist (nothing to remove there).
   */
  private async ensureTables(records: Prepared[], batch: SinkRecord[]): Promise<Prepared[]> {
    const needed = new Map<string, Set<string>>();
    for (const p of records) {
      let s = needed.get(p.table);
      if (!s) needed.set(p.table, (s = new Set()));
      for (const c of p.row ? p.row.keys() : p.keyCols) s.add(c);
    }
    const missingOf = (t: string) => [...needed.get(t)!].filter((c) => !this.meta.get(t)?.columns.has(c));
    const stale = [...needed.keys()].filter((t) => !this.meta.has(t) || this.staleMeta.has(t) || missingOf(t).length > 0);
    if (stale.length === 0) return records;
    const types = columnTypesOf(batch);
    const absent = new Set(await this.loadMeta(stale));
    for (const table of [...absent]) {
      const upsert = records.find((p) => p.table === table && p.rec.op === 'upsert');
      if (!upsert) continue;
      const t = types.get(table);
      if (!t) throw fatal('SINK_TABLE_MISSING', `${this.where}: target table ${table} does not exist, and the changes for it carry no column types to create it from (autoCreate): create it, or fix the table mapping`);
      await this.createTable(table, upsert.keyCols, t, needed.get(table)!);
      absent.delete(table);
    }
    for (const table of stale) {
      if (absent.has(table)) continue;
      const missing = missingOf(table);
      if (missing.length === 0) continue;
      if (!this.cfg.autoEvolve) throw fatal('SINK_UNKNOWN_COLUMN', `${this.where}: target table ${table} has no column ${missing.join(', ')} (autoEvolve is off: add the column or map it away)`);
      const hinted = types.get(table) ?? {};
      const cols = missing.map((c) => columnOf(c, hinted[c], false));
      await this.underDdlLock(table, `adding column(s) ${missing.join(', ')} to ${table}`, async (c) => {
        await this.q(c, addColumnsSql(table, cols));
      });
      this.stats.columnsAdded += missing.length;
      this.log.warn({ table, columns: cols.map((x) => `${x.name} ${x.type}`) }, 'sink.evolve: added target columns');
      await this.loadMeta([table], false);
      const still = missingOf(table);
      if (still.length > 0) throw fatal('SINK_UNKNOWN_COLUMN', `${this.where}: target table ${table} still has no column ${still.join(', ')} after ALTER TABLE`);
    }
    return absent.size === 0 ? records : records.filter((p) => !absent.has(p.table));
  }

  /** autoCreate for a record without a row (a table's end-of-snapshot marker): an empty source table gets its table too. */
  async ensureTable(record: SinkRecord): Promise<void> {
    if (!this.cfg.autoCreate || this.meta.has(record.table)) return;
    const key = record.keyColumns ?? Object.keys(record.key ?? {});
    if (key.length === 0 || !record.columnTypes) return;
    if ((await this.loadMeta([record.table])).length === 0) return;
    await this.createTable(record.table, key, record.columnTypes, []);
  }

  private async createTable(table: string, key: string[], types: Record<string, string>, written: Iterable<string>): Promise<void> {
    const ddl = createTableSql(table, newTableColumns(key, types, written), key);
    const n = splitTable(table);
    let created = false;
    await this.underDdlLock(table, `creating target table ${table} (autoCreate)`, async (c) => {
      // Who waited for the lock finds the table the holder created: nothing to do, nothing to log.
      const found = (await this.q(c, `SELECT 1 AS x FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${quoteString(n.database)} AND TABLE_NAME = ${quoteString(n.table)}`)) as RawRow[];
      if (found.length > 0) return;
      await this.q(c, createDatabaseSql(n.database));
      await this.q(c, ddl);
      created = true;
    });
    if (created) {
      this.stats.tablesCreated++;
      this.log.warn({ table, primaryKey: key }, 'sink.create: created the target table (autoCreate)');
    }
    if ((await this.loadMeta([table])).length > 0) throw fatal('SINK_TABLE_MISSING', `${this.where}: target table ${table} is still missing after CREATE TABLE`);
  }

  /** DDL on `table` while holding GET_LOCK on its name (other sinks creating or altering it wait). */
  private async underDdlLock(table: string, what: string, fn: (c: Conn) => Promise<void>): Promise<void> {
    const lock = quoteString(lockName(table, (s) => createHash('sha1').update(s).digest('hex')));
    await this.withConn(what, async (c) => {
      const got = (await this.q(c, `SELECT GET_LOCK(${lock}, ${DDL_LOCK_S}) AS ok`)) as RawRow[];
      if (got[0]?.ok?.toString() !== '1') throw retriable('SINK_DDL_LOCK', `${this.where}: ${what}: another process held the lock on ${table} for ${DDL_LOCK_S} s`);
      try {
        await fn(c);
      } catch (err) {
        const e = classifyMariaError(err, `${this.where}: ${what}`);
        if (e.code === 'MARIADB_1142' || e.code === 'MARIADB_1044') {
          e.message += ` — grant it: GRANT CREATE, ALTER ON ${quoteIdent(splitTable(table).database)}.* TO ${quoteString(this.cfg.connection.user)}; or create the table yourself, or set autoCreate: false`;
        }
        throw e;
      } finally {
        await this.q(c, `SELECT RELEASE_LOCK(${lock})`).catch(() => undefined);
      }
    });
  }

  /**
   * Load columns and unique indexes of these tables (two information_schema queries). Returns the
   * tables that do not exist; a missing table is fatal instead unless `allowMissing` (autoCreate).
   */
  private async loadMeta(tables: string[], allowMissing = this.cfg.autoCreate): Promise<string[]> {
    const pairs = tables.map((t) => {
      const n = splitTable(t);
      return `(${quoteString(n.database)},${quoteString(n.table)})`;
    });
    const nameOf = new Map(tables.map((t) => [JSON.stringify(Object.values(splitTable(t))), t]));
    let cols: RawRow[] = [];
    let idx: RawRow[] = [];
    await this.withConn(`reading the columns of ${tables.join(', ')}`, async (c) => {
      cols = (await this.q(
        c,
        `SELECT TABLE_SCHEMA AS db, TABLE_NAME AS tbl, COLUMN_NAME AS name, DATA_TYPE AS data_type, COLUMN_TYPE AS column_type, COLUMN_COMMENT AS comment, EXTRA AS extra
           FROM information_schema.COLUMNS WHERE (TABLE_SCHEMA, TABLE_NAME) IN (${pairs.join(',')}) ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`,
      )) as RawRow[];
      idx = (await this.q(
        c,
        `SELECT TABLE_SCHEMA AS db, TABLE_NAME AS tbl, INDEX_NAME AS idx, COLUMN_NAME AS name
           FROM information_schema.STATISTICS WHERE NON_UNIQUE = 0 AND (TABLE_SCHEMA, TABLE_NAME) IN (${pairs.join(',')}) ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`,
      )) as RawRow[];
    });
    const s = (b: Buffer | null | undefined) => (b ? b.toString('utf8') : '');
    const fresh = new Map<string, TableMeta>();
    for (const r of cols) {
      const table = nameOf.get(JSON.stringify([s(r.db), s(r.tbl)]));
      if (!table) continue;
      let m = fresh.get(table);
      if (!m) fresh.set(table, (m = { table, ident: quoteTable(table), columns: new Map(), primaryKey: [], otherUnique: false }));
      const pgType = pgTypeOfComment(s(r.comment));
      const dataType = s(r.data_type).toLowerCase();
      m.columns.set(s(r.name), {
        name: s(r.name),
        dataType,
        read: pgType !== undefined ? readTypeOf(pgType) : inferKind(dataType, s(r.column_type)),
        generated: /GENERATED/i.test(s(r.extra)),
      });
    }
    for (const r of idx) {
      const m = fresh.get(nameOf.get(JSON.stringify([s(r.db), s(r.tbl)])) ?? '');
      if (!m) continue;
      if (s(r.idx) === 'PRIMARY') m.primaryKey.push(s(r.name));
      else m.otherUnique = true;
    }
    const missing: string[] = [];
    for (const table of tables) {
      const m = fresh.get(table);
      if (!m) {
        this.meta.delete(table);
        if (!allowMissing) throw fatal('SINK_TABLE_MISSING', `${this.where}: target table ${table} does not exist (create it, fix the table mapping, or set autoCreate: true on the target)`);
        missing.push(table);
        continue;
      }
      this.meta.set(table, m);
      this.staleMeta.delete(table);
    }
    return missing;
  }

  /** Cached metadata of a table, for tests: columns with their MariaDB type, primary key. */
  async tableMeta(table: string): Promise<{ columns: { name: string; dataType: string }[]; primaryKey: string[] }> {
    if (!this.meta.has(table)) await this.loadMeta([table], false);
    const m = this.meta.get(table)!;
    return { columns: [...m.columns.values()].map((c) => ({ name: c.name, dataType: c.dataType })), primaryKey: [...m.primaryKey] };
  }

  // ---------------------------------------------------------------------------------------------

  private async q(c: Conn, sql: string): Promise<unknown> {
    this.stats.queries++;
    const [rows] = await c.query(sql);
    return rows;
  }

  /**
   * Rows as arrays, in the order of the SELECT list. mysql2 refuses a result with a column named
   * `__proto__` (even as arrays): the SELECT lists that read target columns name each one by
   * position (`AS c0`, `c1`…, see selectList).
   */
  private async qa(c: Conn, sql: string): Promise<(Buffer | null)[][]> {
    this.stats.queries++;
    const [rows] = await c.query({ sql, rowsAsArray: true });
    return rows as unknown as (Buffer | null)[][];
  }

  /**
   * A pooled connection, set up on first use, for `fn`. On failure the connection is rolled back
   * (a transaction left open would keep its locks) and destroyed if even that fails; errors leave
   * here classified.
   */
  private async withConn(what: string, fn: (c: Conn) => Promise<void>, pool = this.pool, tag = this.origin !== undefined ? `${this.origin}:0` : undefined): Promise<void> {
    let c: Conn;
    try {
      c = await pool.getConnection();
    } catch (err) {
      throw classifyMariaError(err, `${this.where}: connect`);
    }
    try {
      const raw = (c as unknown as { connection: object }).connection;
      if (!this.ready.has(raw)) {
        await this.q(c, `SET time_zone = '+00:00', sql_mode = '${SQL_MODE}', innodb_lock_wait_timeout = ${this.cfg.lockTimeoutS}`);
        await this.q(c, 'SET NAMES utf8mb4');
        await this.q(c, 'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
        if (tag !== undefined) await this.tagSession(c, tag);
        this.ready.add(raw);
      }
      await fn(c);
    } catch (err) {
      let broken = false;
      await c.query('ROLLBACK').catch(() => (broken = true));
      if (broken) c.destroy();
      else c.release();
      throw classifyMariaError(err, `${this.where}: ${what}`);
    }
    c.release();
  }
}

/**
 * A guarded write's deletes of keys its read found without a row (and no earlier record of the batch
 * wrote): there is nothing to delete, and a row there now was inserted by someone else after the read
 * (READ COMMITTED locks no missing key). Deleting it would remove a change nobody decided, and the
 * removal, made by a tagged session, would never reach the other side (two-way: the row stays there).
 * Left out, such a row flows as the change it is.
 */
export function withoutAbsentDeletes(records: Prepared[], reads: Map<string, Row[]>, found: TargetRows): Prepared[] {
  const asked = new Set<string>();
  for (const [table, keys] of reads) for (const k of keys) asked.add(table + '\u0000' + keyString(k));
  const written = new Set<string>();
  return records.filter((p) => {
    const ks = p.rec.op === 'truncate' || p.rec.op === 'sweep' ? null : p.table + '\u0000' + keyString(p.rec.key);
    if (ks === null) return true;
    const absent = p.rec.op === 'delete' && asked.has(ks) && found.get(p.table)?.has(keyString(p.rec.key)) === false && !written.has(ks);
    written.add(ks);
    return !absent;
  });
}

/** Column types carried by the records themselves (from the source schema), per target table. */
function columnTypesOf(batch: SinkRecord[]): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const r of batch) if (r.columnTypes) out.set(r.table, { ...out.get(r.table), ...r.columnTypes });
  return out;
}

