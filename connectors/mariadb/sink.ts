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
 * No two-way sync: no republish (a target without it is refused as a two-way peer at start).
 */
import { createHash } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { Logger } from 'pino';
import type { Row } from '../../src/core/envelope.js';
import { fatal, poison, retriable, SynclineError } from '../../src/core/errors.js';
import type { ConnectorContext } from '../../src/core/registry.js';
import { keyString, type FailedRecord, type GuardedWrite, type Sink, type SinkRecord, type TargetRows, type WriteResult } from '../../src/sink/sink.js';
import { addColumnsSql, columnOf, createDatabaseSql, createTableSql, lockName, newTableColumns, quoteIdent, quoteTable, splitTable } from './ddl.js';
import { classifyMariaError, isRecordError } from './errors.js';
import { byTable, cut, insertSql, keyIn, plan, prepare, withLiterals, type Prepared, type Stmt, type TableMeta } from './plan.js';
import type { MariadbSinkConfig } from './spec.js';
import { mariadbOptions } from './connection.js';
import { fromMaria, inferKind, literal, pgTypeOfComment, quoteString, readTypeOf } from './types.js';

const SQL_MODE = 'STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO';
const SAVEPOINT = 'syncline_iso';
/** How long a DDL statement waits for another process creating or altering the same table. */
const DDL_LOCK_S = 60;

type Conn = mysql.PoolConnection;
type RawRow = Record<string, Buffer | null>;

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

  constructor(
    private readonly cfg: MariadbSinkConfig,
    ctx: ConnectorContext,
  ) {
    this.log = ctx.log;
    this.pool = mysql.createPool(mariadbOptions(cfg.connection, {
      connectionLimit: cfg.poolSize,
      connectTimeout: 15_000,
      enableKeepAlive: true,
      typeCast: rawBytes as unknown as mysql.PoolOptions['typeCast'],
    }));
    // An idle connection that breaks emits here; the next checkout gets a fresh one.
    (this.pool as unknown as { on(e: string, f: (err: Error) => void): void }).on('error', (err) => this.log.warn({ err: err.message }, 'sink.mariadb.idle_connection_error'));
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
      const prepared = prepare(batch, failed, this.where);
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
    const found = await this.q(c, `SELECT ${s.keyCols.map(quoteIdent).join(',')} FROM ${s.meta.ident} WHERE ${keyIn(s.keyCols, s.rows.map((r) => ({ text: n === 1 ? r[0]! : '(' + r.slice(0, n).join(',') + ')' })))} FOR UPDATE`);
    const keyCols = s.keyCols.map((k) => s.meta.columns.get(k)!);
    const existing = new Set((found as RawRow[]).map((r) => keyCols.map((k) => literal(fromMaria(r[k.name] ?? null, k.read), k)).join(',')));
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
    // FLOAT prints rounded to 6 digits; as DOUBLE it prints exactly.
    const select = [...meta.columns.values()].map((col) => (col.dataType === 'float' ? `CAST(${quoteIdent(col.name)} AS DOUBLE) AS ${quoteIdent(col.name)}` : quoteIdent(col.name))).join(',');
    const out = new Map<string, Row>();
    for (const part of cut(tuples)) {
      const res = (await this.q(c, `SELECT ${select} FROM ${meta.ident} WHERE ${keyIn(keyCols, part)}${forUpdate ? ' FOR UPDATE' : ''}`)) as RawRow[];
      for (const raw of res) {
        const row: Row = {};
        for (const col of meta.columns.values()) row[col.name] = fromMaria(raw[col.name] ?? null, col.read);
        const lits = kc.map((col) => literal(row[col.name], col)).join(',');
        out.set(wanted.get(lits) ?? keyString(Object.fromEntries(keyCols.map((k) => [k, row[k] ?? null]))), row);
      }
    }
    return out;
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
   * A pooled connection, set up on first use, for `fn`. On failure the connection is rolled back
   * (a transaction left open would keep its locks) and destroyed if even that fails; errors leave
   * here classified.
   */
  private async withConn(what: string, fn: (c: Conn) => Promise<void>): Promise<void> {
    let c: Conn;
    try {
      c = await this.pool.getConnection();
    } catch (err) {
      throw classifyMariaError(err, `${this.where}: connect`);
    }
    try {
      const raw = (c as unknown as { connection: object }).connection;
      if (!this.ready.has(raw)) {
        await this.q(c, `SET time_zone = '+00:00', sql_mode = '${SQL_MODE}', innodb_lock_wait_timeout = ${this.cfg.lockTimeoutS}`);
        await this.q(c, 'SET NAMES utf8mb4');
        await this.q(c, 'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
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

/** Column types carried by the records themselves (from the source schema), per target table. */
function columnTypesOf(batch: SinkRecord[]): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const r of batch) if (r.columnTypes) out.set(r.table, { ...out.get(r.table), ...r.columnTypes });
  return out;
}

