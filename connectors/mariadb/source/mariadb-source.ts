/**
 * The MariaDB/MySQL source: row-based binlog CDC, read as a replica with @vlasky/zongji (which
 * speaks the replication protocol over mysql2 and decodes the row images exactly: DECIMAL as exact
 * strings, DATETIME(6)/TIMESTAMP(6)/TIME(6) with all six fractional digits through `dateStrings`,
 * 64-bit integers exactly, BIT as bytes, MariaDB GTID events, file/position resume, MariaDB 10.11 —
 * measured in ./throughput.ts; so no protocol reader of our own was needed).
 *
 *  - Start: check the server (binlog on, ROW, FULL row image, replication privileges) and the tables
 *    (exist, key known). Then, by the stored state in the capture offsets (key `mariadb_<pipeline>`):
 *    (a) snapshot: one transaction `START TRANSACTION WITH CONSISTENT SNAPSHOT` (no locks; MariaDB
 *        reports the binlog position that snapshot corresponds to in the status variables
 *        binlog_snapshot_file/binlog_snapshot_position), every table copied (op 'r', then the table's
 *        end marker 'm'), "snapshot done" recorded, and the binlog streamed from exactly that position:
 *        every transaction the snapshot saw ends at or before it, every later one after it (no gap, no
 *        duplicate);
 *    (b) resume from the acknowledged position stored there (`position`), when the binlog still holds it;
 *    (c) that position was purged (PURGE BINARY LOGS; the server's error 1236 when asked for it):
 *        warn and snapshot again (downstream version state and hash delta skip unchanged rows).
 *  - Positions: 'X/Y' = binlog file sequence number / offset, both hexadecimal; a change's commitPos is
 *    the end of its transaction's commit event (XID, or a COMMIT query for non-transactional tables),
 *    idx its index in the transaction. Snapshot rows carry the snapshot's position (idx 0; the end
 *    marker idx 1). Because the commit position is known only at the commit event, the changes of a
 *    transaction are held in memory until it (a transaction's size is bounded by memory).
 *  - Acknowledgement: the stage acknowledges the end of the last transaction Kafka holds; it is stored
 *    in the offsets topic at most once per second and at stop. kill -9 resumes from the last stored
 *    position: changes after it are read again and the stage drops those Kafka already holds.
 *  - DDL: ALTER TABLE on a captured table re-reads its columns (information_schema) and registers a
 *    new schema version; TRUNCATE is op 't'. The columns are read when the ALTER is reached in the
 *    binlog, so a restart far behind several ALTERs of one table decodes the older rows with the
 *    newest column list (no schema history topic yet).
 *  - Back-pressure: binlog events wait in `queue`; above 5,000 the binlog connection is paused.
 *  - Backfills (./backfill.ts, ADR 0020): inserts into `syncline_signals` (the connection database)
 *    carrying this stream's id are watermarks and signals, handed to the capture at their commit in
 *    binlog order and never forwarded as data.
 */
import ZongJi from '@vlasky/zongji';
import type mysql from 'mysql2/promise';
import type { Connection as CoreConnection } from 'mysql2';
import type { Logger } from 'pino';
import type { MariadbSourceConfig } from './spec.js';
import { defaultServerId } from './spec.js';
import type { ChangeEvent, Row, Value } from '../../../src/core/envelope.js';
import { bigIntToPosition, positionToBigInt, setColumn } from '../../../src/core/envelope.js';
import { errorMessage, fatal, retriable } from '../../../src/core/errors.js';
import type { TableConfig } from '../../../src/core/config/schema.js';
import type { CaptureHandler, Source, SourceTable } from '../../../src/capture/source.js';
import type { CaptureOffset } from '../../../src/capture/offsets.js';
import { formatTableName, parseTableName } from '../../../src/core/names.js';
import { sleep } from '../../../src/core/retry.js';
import { BINLOG_GONE, checkServer, classifyMysqlError, connectMysql, inspectTables, mysqlOptions, readColumns, readPrimaryKey, where, type MariadbTable } from './prepare.js';
import { canonicalValue, quoteId, selectExpression } from './types.js';
import { OriginNames } from '../origins.js';
import { keyStringOf } from '../../../src/sink/sink.js';
import { MariadbLeaderLock } from './leader-lock.js';
import { MariadbBackfill, SIGNAL_TABLE, signalOf, type SignalKind } from './backfill.js';

/** What zongji hands over (the fields used). */
interface BinlogEvent {
  getEventName(): string;
  nextPosition: number;
  timestamp: number;
  query?: string;
  schema?: string;
  seqNo?: number | string;
  /** MariaDB GTID event: the server id of the session that wrote the transaction. */
  serverId?: number;
  /** Annotate rows event: the statement's text. */
  statement?: string;
  tableId?: number;
  numberOfColumns?: number;
  tableMap?: Record<number, { parentSchema: string; tableName: string }>;
  rows?: Record<string, unknown>[] | { before: Record<string, unknown>; after: Record<string, unknown> }[];
}

interface Queued {
  evt: BinlogEvent;
  /** The binlog file the event is in (zongji's current file when it was emitted). */
  file: string;
}

interface OpenTx {
  tsMs: number;
  txId: number | null;
  changes: ChangeEvent[];
  /** Server id of the GTID event (two-way sync: a peer sink's tag, see ../origins.ts). */
  serverId?: number;
  /** Commit time in ms a peer sink wrote into the statement (republishDelete: `syncline-ts:<ms>`). */
  annotatedTsMs?: number;
  /** Backfill watermarks and signals of this stream (rows inserted into the signal table, ./backfill.ts). */
  signals?: { kind: SignalKind; body: string }[];
}

const ANNOTATED_TS = /^\s*DELETE \/\* syncline-ts:(\d+) \*\//;

/** A binlog position as 'X/Y': file sequence number / offset, hexadecimal. */
export function binlogLsn(file: string, offset: number): string {
  return bigIntToPosition((BigInt(fileNumber(file)) << 32n) | BigInt(offset));
}

export function fileNumber(file: string): number {
  const n = Number(file.slice(file.lastIndexOf('.') + 1));
  if (!Number.isInteger(n)) throw fatal('MARIADB_BINLOG_NAME', `binlog file name ${file} does not end in a sequence number`);
  return n;
}

const DDL_ALTER = /^\s*ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?((?:`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(?:`(?:[^`]|``)+`|[\w$]+))?)/i;
const DDL_TRUNCATE = /^\s*TRUNCATE\s+(?:TABLE\s+)?((?:`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(?:`(?:[^`]|``)+`|[\w$]+))?)/i;
const DDL_DROP_RENAME = /^\s*(?:DROP\s+TABLE|RENAME\s+TABLE)\b/i;
const NAME = '(?:`(?:[^`]|``)+`|[\\w$]+)(?:\\s*\\.\\s*(?:`(?:[^`]|``)+`|[\\w$]+))?';
/** RENAME TABLE a TO b[, c TO d]… (each pair). */
const DDL_RENAME_TABLE = /^\s*RENAME\s+TABLES?\s+/i;
const RENAME_PAIR = new RegExp(`(${NAME})\\s+TO\\s+(${NAME})`, 'gi');
/** ALTER TABLE a … RENAME [TO|AS] b (not RENAME COLUMN/INDEX/KEY). */
const ALTER_RENAME = new RegExp(`\\bRENAME\\s+(?:TO\\s+|AS\\s+)?(?!(?:COLUMN|INDEX|KEY|CONSTRAINT)\\b)(${NAME})`, 'i');

/** `db`.`t`, db.t or t (in `defaultDb`) as {schema, table}. */
export function ddlTarget(text: string, defaultDb: string): { schema: string; table: string } {
  const parts: string[] = [];
  const re = /`((?:[^`]|``)+)`|([\w$]+)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) parts.push(m[1] !== undefined ? m[1].replace(/``/g, '`') : m[2]!);
  return parts.length >= 2 ? { schema: parts[0]!, table: parts[1]! } : { schema: defaultDb, table: parts[0]! };
}

/** Rows queued from the binlog before the stream is paused, and below which it is resumed. */
const QUEUE_HIGH = 4000;
const QUEUE_LOW = 1000;
const rowsOf = (evt: { rows?: unknown[] }): number => evt.rows?.length ?? 1;

/** The key of a pipeline's record in the capture offsets topic. */
export const streamIdOf = (pipeline: string): string => `mariadb_${pipeline.replace(/-/g, '_')}`;

export class MariadbSource implements Source {
  readonly batchSize: number;
  readonly lingerMs: number;
  private meta?: mysql.Connection;
  private tables = new Map<string, MariadbTable>(); // canonical table name → table
  private handler!: CaptureHandler;
  private readonly streamId: string;
  private readonly serverId: number;

  private zongji?: ZongJi;
  private queue: Queued[] = [];
  /** Rows held in `queue` (a row event carries up to a few hundred): the back-pressure counts these, not events. */
  private queuedRows = 0;
  private pumping = false;
  private paused = false;
  private tx: OpenTx | null = null;
  private watermark = 0n;
  private lastServer = 0n;
  private stopping = false;
  private failure?: (err: Error) => void;
  private stopResolve?: () => void;
  private heartbeatTimer?: NodeJS.Timeout;
  private zeroDates = 0;
  private readonly drifted = new Set<number>();
  /** The server's own server_id (transactions with another one may be a two-way peer's). */
  private ownServerId = 0;
  private readonly origins = new OriginNames(() => this.meta!, () => [this.config.connection.database, ...[...this.tables.values()].map((t) => t.schema)]);

  // The stored record (offsets topic): snapshot state and the acknowledged position.
  private record?: Omit<CaptureOffset, 'at' | 'position'>;
  private storedPosition = '';
  private storeTimer?: NodeJS.Timeout;
  private lastStore = 0;
  private storing: Promise<void> = Promise.resolve();

  /** Backfills: watermarks and signals as rows of the signal table, key-ordered chunks (./backfill.ts). */
  readonly backfill: MariadbBackfill;

  constructor(private readonly config: MariadbSourceConfig, private readonly pipeline: string, private readonly log: Logger) {
    this.batchSize = config.batchSize;
    this.lingerMs = config.lingerMs;
    this.streamId = streamIdOf(pipeline);
    this.serverId = config.serverId ?? defaultServerId(pipeline);
    this.backfill = new MariadbBackfill(config, pipeline, this.streamId, this.zeroDate);
  }

  get confirmed(): string {
    return this.watermark === 0n ? '' : bigIntToPosition(this.watermark);
  }

  /** The capture lock: GET_LOCK on a connection of its own, named after the database and stream (./leader-lock.ts). */
  leaderLock(): MariadbLeaderLock {
    return new MariadbLeaderLock(this.config.connection, this.streamId, this.pipeline, this.config.standbyPollMs);
  }

  async connect(): Promise<void> {
    const c = this.config.connection;
    this.meta = await connectMysql(c, `pipeline ${this.pipeline} capture`);
    try {
      await checkServer(this.meta, c);
      const [rows] = await this.meta.query<mysql.RowDataPacket[]>('SELECT @@server_id AS id');
      this.ownServerId = Number(rows[0]?.id ?? 0);
    } catch (err) {
      throw classifyMysqlError(err, c, `pipeline ${this.pipeline} capture: checking MariaDB at ${where(c)}`);
    }
  }

  async describe(tables: TableConfig[]): Promise<SourceTable[]> {
    let found: MariadbTable[];
    try {
      found = await inspectTables(this.meta!, tables, this.pipeline);
    } catch (err) {
      throw classifyMysqlError(err, this.config.connection, `pipeline ${this.pipeline} capture: describing the source tables`);
    }
    for (const t of found) this.tables.set(formatTableName(t), t);
    for (const t of tables) if (t.key) this.configuredKeys.add(formatTableName(parseTableName(t.source)));
    return found.map((t) => ({ schema: t.schema, table: t.table, key: t.key, columns: t.columns }));
  }

  /**
   * Nothing to create on the server: a binlog reader needs no slot or publication. Called again
   * while streaming (tables added by a reload): the running reader's table filter takes them.
   */
  async prepare(): Promise<void> {
    const z = this.zongji as (ZongJi & { filters?: Record<string, unknown>; _filters?: (f: Record<string, unknown>) => void }) | undefined;
    if (z?._filters && z.filters) z._filters({ ...z.filters, includeSchema: this.includeSchema() });
  }

  /**
   * The binlog filter: the captured tables by name (a renamed one under both names), the names they
   * are being renamed to (renamesAhead), and the signal table (the backfill's watermarks and
   * signals, ./backfill.ts).
   */
  private includeSchema(): Record<string, string[]> {
    const includeSchema: Record<string, string[]> = {};
    for (const name of new Set([...this.tables.keys(), ...this.renamesAhead])) {
      const t = parseTableName(name);
      (includeSchema[t.schema] ??= []).push(t.table);
    }
    (includeSchema[this.config.connection.database] ??= []).push(SIGNAL_TABLE);
    return includeSchema;
  }

  /** New names of captured tables seen in a RENAME as zongji parsed it (before ddl() handles it). */
  private readonly renamesAhead = new Set<string>();

  /**
   * Called as zongji parses each event, before it parses the next: zongji filters rows when it
   * parses their table map, ahead of the statements this source handles in order, so the rows
   * written right after a RENAME of a captured table would be filtered out under the new name
   * before ddl() sees the rename (found by the schema-change test). The new name joins the filter here.
   */
  private renameAhead(evt: BinlogEvent): void {
    const q = evt.query;
    if (!q || !/\bRENAME\b/i.test(q)) return;
    const db = evt.schema ?? this.config.connection.database;
    const names: string[] = [];
    const alter = DDL_ALTER.exec(q);
    if (alter && this.tables.has(formatTableName(ddlTarget(alter[1]!, db)))) {
      const to = ALTER_RENAME.exec(q.slice(alter[0].length));
      if (to) names.push(formatTableName(ddlTarget(to[1]!, db)));
    } else if (DDL_RENAME_TABLE.test(q)) {
      for (const m of q.matchAll(RENAME_PAIR)) if (this.tables.has(formatTableName(ddlTarget(m[1]!, db)))) names.push(formatTableName(ddlTarget(m[2]!, db)));
    }
    if (names.length === 0) return;
    for (const n of names) this.renamesAhead.add(n);
    void this.prepare();
  }

  /** describe() and prepare() while streaming take tables added by a reload (prepare updates the filter). */
  readonly addsTablesWhileRunning = true;

  async run(handler: CaptureHandler): Promise<void> {
    this.handler = handler;
    const stored = await handler.offsets.read(this.streamId);
    const wantSnapshot = this.config.snapshot === 'initial';
    handler.running();
    let from: bigint | null = null;
    if (stored && (stored.snapshot === 'done' || stored.snapshot === 'skipped')) {
      this.record = { slot: stored.slot, snapshot: stored.snapshot, consistentPoint: stored.consistentPoint, tables: stored.tables };
      const pos = stored.position || stored.consistentPoint;
      this.storedPosition = pos;
      if (await this.inBinlog(pos)) {
        this.log.info({ stream: this.streamId, position: pos }, 'capture.resume');
        from = positionToBigInt(pos);
        await handler.resuming();
      } else if (wantSnapshot) {
        this.log.warn({ stream: this.streamId, position: pos }, 'capture.binlog.purged: the binlog no longer holds the acknowledged position (PURGE BINARY LOGS, expire_logs_days); re-snapshotting (hash delta skips unchanged rows)');
      } else {
        this.log.warn({ stream: this.streamId, position: pos }, 'capture.binlog.purged: the binlog no longer holds the acknowledged position and snapshot is never: changes made since are NOT captured; streaming from the binlog\'s end');
      }
    } else if (stored?.snapshot === 'started') {
      this.log.warn({ stream: this.streamId }, 'capture.snapshot.incomplete: snapshotting again');
    }
    if (from === null) from = wantSnapshot ? await this.snapshot() : await this.skipSnapshot();
    this.watermark = from;
    this.lastServer = from;
    if (handler.stopped) return;
    await this.stream(from);
  }

  /** The binlog files the server holds: name, sequence number and size. */
  private async binlogs(): Promise<{ name: string; n: number; size: number }[]> {
    try {
      const [rows] = await this.meta!.query<mysql.RowDataPacket[]>('SHOW BINARY LOGS');
      return rows.map((r) => ({ name: String(r.Log_name), n: fileNumber(String(r.Log_name)), size: Number(r.File_size) }));
    } catch (err) {
      throw classifyMysqlError(err, this.config.connection, `pipeline ${this.pipeline} capture: SHOW BINARY LOGS`);
    }
  }

  private async inBinlog(pos: string): Promise<boolean> {
    const p = positionToBigInt(pos);
    const n = Number(p >> 32n);
    const f = (await this.binlogs()).find((b) => b.n === n);
    return f !== undefined && BigInt(f.size) >= (p & 0xffffffffn);
  }

  private async fileName(n: number): Promise<string> {
    const f = (await this.binlogs()).find((b) => b.n === n);
    if (!f) throw retriable('MARIADB_BINLOG_PURGED', `binlog file number ${n} is no longer on the server (purged): the next start snapshots again`);
    return f.name;
  }

  /** The binlog's end now (SHOW MASTER STATUS, as 'file number/offset' like every position of this source). */
  async position(): Promise<string> {
    const [rows] = await this.meta!.query<mysql.RowDataPacket[]>('SHOW MASTER STATUS');
    const r = rows[0];
    if (!r) throw fatal('MARIADB_BINLOG_OFF', `MariaDB at ${where(this.config.connection)} reports no binlog position (SHOW MASTER STATUS is empty): is log_bin on?`);
    return binlogLsn(String(r.File), Number(r.Position));
  }

  private async skipSnapshot(): Promise<bigint> {
    const [rows] = await this.meta!.query<mysql.RowDataPacket[]>('SHOW MASTER STATUS');
    const r = rows[0];
    if (!r) throw fatal('MARIADB_BINLOG_OFF', `MariaDB at ${where(this.config.connection)} reports no binlog position (SHOW MASTER STATUS is empty): is log_bin on?`);
    const cp = binlogLsn(String(r.File), Number(r.Position));
    this.record = { slot: this.streamId, snapshot: 'skipped', consistentPoint: cp, tables: [...this.tables.keys()] };
    await this.handler.offsets.write({ ...this.record, at: new Date().toISOString(), position: cp });
    return positionToBigInt(cp);
  }

  /**
   * Copy every table inside one consistent-snapshot transaction, in UTC, and return its binlog
   * position. Rows are streamed from the server (mysql2 query stream: the connection pauses while the
   * stage holds the source), so memory does not grow with the table.
   */
  private async snapshot(): Promise<bigint> {
    const c = this.config.connection;
    const conn = await connectMysql(c, `pipeline ${this.pipeline} snapshot`);
    const startedMs = Date.now();
    let rows = 0;
    try {
      await conn.query(`SET SESSION time_zone = '+00:00'`);
      await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
      const [st] = await conn.query<mysql.RowDataPacket[]>(`SHOW STATUS LIKE 'binlog_snapshot_%'`);
      const status = new Map(st.map((r) => [String(r.Variable_name).toLowerCase(), String(r.Value)]));
      const file = status.get('binlog_snapshot_file');
      const position = status.get('binlog_snapshot_position');
      if (!file || !position) {
        throw fatal('MARIADB_SNAPSHOT_POSITION', `MariaDB at ${where(c)} reports no binlog_snapshot_file/binlog_snapshot_position: the snapshot needs MariaDB (MySQL servers are not supported for snapshot: initial yet; use snapshot: never)`);
      }
      const cp = binlogLsn(file, Number(position));
      const tables = [...this.tables.keys()];
      this.record = { slot: this.streamId, snapshot: 'started', consistentPoint: cp, tables };
      await this.handler.offsets.write({ ...this.record, at: new Date().toISOString() });
      this.log.info({ stream: this.streamId, consistentPoint: cp, file, position, tables }, 'capture.snapshot.start');
      for (const t of this.tables.values()) {
        const sql = `SELECT ${t.columns.map((col) => selectExpression(col.name, col.type)).join(', ')} FROM ${quoteId(t.schema)}.${quoteId(t.table)}`;
        const stream = (conn as unknown as { connection: CoreConnection }).connection.query({ sql, rowsAsArray: true }).stream({ highWaterMark: 1000 });
        const source = (idx: number) => ({ db: t.schema, schema: t.schema, table: t.table, pos: cp, commitPos: cp, txId: null, tsMs: startedMs, snapshot: true, idx });
        for await (const raw of stream as AsyncIterable<unknown[]>) {
          const after: Row = {};
          for (let i = 0; i < t.columns.length; i++) setColumn(after, t.columns[i]!.name, canonicalValue(raw[i], t.columns[i]!.type, this.zeroDate));
          await this.handler.change({ op: 'r', before: null, after, source: source(0), tsMs: Date.now(), unchangedToast: [] });
          rows++;
          if (this.handler.stopped) {
            stream.destroy();
            throw new Error('stopped during snapshot');
          }
        }
        // End of this table's snapshot (the sink deletes target rows the snapshot did not see).
        await this.handler.change({ op: 'm', before: null, after: null, source: source(1), tsMs: Date.now(), unchangedToast: [...t.key] });
      }
      await conn.query('COMMIT');
      await this.handler.flush();
      this.record = { ...this.record, snapshot: 'done' };
      await this.handler.offsets.write({ ...this.record, at: new Date().toISOString(), position: cp });
      this.storedPosition = cp;
      this.log.info({ stream: this.streamId, rows }, 'capture.snapshot.done');
      return positionToBigInt(cp);
    } catch (err) {
      throw classifyMysqlError(err, c, `pipeline ${this.pipeline} snapshot`);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  private readonly zeroDate = (): void => {
    if (this.zeroDates++ === 0) this.log.warn({ stream: this.streamId }, 'capture.value.zero-date: a zero date (0000-00-00, month or day 0) has no calendar value: carried as null (logged once per process)');
  };

  // ------------------------------------------------------------------ acknowledgement

  acknowledge(end: string): void {
    const p = positionToBigInt(end);
    if (p <= this.watermark) return;
    this.watermark = p;
    this.scheduleStore();
  }

  /** Store the acknowledged position at most once per second. */
  private scheduleStore(): void {
    if (this.storeTimer || this.stopping) return;
    const wait = Math.max(0, this.lastStore + 1000 - Date.now());
    this.storeTimer = setTimeout(() => {
      this.storeTimer = undefined;
      void this.store();
    }, wait);
  }

  private store(): Promise<void> {
    this.storing = this.storing.then(async () => {
      const position = this.confirmed;
      if (!this.record || position === '' || position === this.storedPosition) return;
      this.lastStore = Date.now();
      try {
        await this.handler.offsets.write({ ...this.record, at: new Date().toISOString(), position });
        this.storedPosition = position;
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, 'capture.position.store-failed: retried with the next acknowledgement');
      }
    });
    return this.storing;
  }

  private idle(): boolean {
    return this.tx === null && this.queue.length === 0 && this.handler.idle();
  }

  /** Nothing in flight: the position may move to what the server has sent (other tables' transactions). */
  private heartbeat(): void {
    if (this.idle() && this.lastServer > this.watermark) {
      this.watermark = this.lastServer;
      this.scheduleStore();
    }
  }

  // ------------------------------------------------------------------ streaming

  private async stream(from: bigint): Promise<void> {
    const c = this.config.connection;
    const filename = await this.fileName(Number(from >> 32n));
    const position = Number(from & 0xffffffffn);
    const done = new Promise<void>((resolve, reject) => {
      this.failure = reject;
      this.stopResolve = resolve;
    });
    const z = new ZongJi(mysqlOptions(c) as never);
    this.zongji = z;
    z.on('binlog', (evt: BinlogEvent) => {
      if (evt.query !== undefined) this.renameAhead(evt);
      this.queue.push({ evt, file: z.options.filename ?? filename });
      this.queuedRows += rowsOf(evt);
      this.pump();
    });
    z.on('error', (err: Error & { errno?: number }) => {
      if (this.stopping) return;
      if (err.errno === BINLOG_GONE) {
        this.failure?.(retriable('MARIADB_BINLOG_PURGED', `pipeline ${this.pipeline}: the binlog no longer holds position ${filename}:${position} (${errorMessage(err)}); the next start snapshots again`, err));
        return;
      }
      this.failure?.(classifyMysqlError(err, c, `pipeline ${this.pipeline}: binlog stream from MariaDB at ${where(c)}`));
    });
    const includeSchema = this.includeSchema();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.config.heartbeatMs);
    this.log.info({ stream: this.streamId, file: filename, position, serverId: this.serverId }, 'capture.stream.start');
    z.start({
      serverId: this.serverId,
      filename,
      position,
      includeEvents: ['mariadbgtid', 'gtid', 'tablemap', 'writerows', 'updaterows', 'deleterows', 'xid', 'query', 'annotaterows'],
      includeSchema,
      // Two-way sync: a peer sink's decided deletes carry their commit time in ms in the statement.
      requestAnnotateRows: true,
    });
    await done;
  }

  private pump(): void {
    // Paused above QUEUE_HIGH queued rows, resumed below QUEUE_LOW: memory follows the rows held
    // ahead of Kafka (the stage's outbox holds more behind them), not the backlog of the binlog.
    if (this.queuedRows > QUEUE_HIGH && !this.paused && this.zongji?.connection) {
      this.zongji.connection.pause();
      this.paused = true;
    }
    if (this.pumping) return;
    this.pumping = true;
    void (async () => {
      try {
        while (this.queue.length > 0 && !this.stopping) {
          const item = this.queue.shift()!;
          this.queuedRows -= rowsOf(item.evt);
          await this.handle(item);
          if (this.paused && this.queuedRows < QUEUE_LOW) {
            this.paused = false;
            this.zongji?.connection?.resume();
          }
        }
      } catch (err) {
        this.failure?.(err instanceof Error ? err : new Error(String(err)));
      } finally {
        this.pumping = false;
        if (this.queue.length > 0 && !this.stopping) this.pump();
      }
    })();
  }

  private async handle({ evt, file }: Queued): Promise<void> {
    const name = evt.getEventName();
    switch (name) {
      case 'mariadbgtid':
      case 'gtid':
        this.tx = { tsMs: evt.timestamp, txId: evt.seqNo === undefined ? null : Number(evt.seqNo), changes: [], ...(typeof evt.serverId === 'number' ? { serverId: evt.serverId } : {}) };
        return;
      case 'annotaterows': {
        const m = this.tx ? ANNOTATED_TS.exec(evt.statement ?? '') : null;
        if (m) this.tx!.annotatedTsMs = Number(m[1]);
        return;
      }
      case 'writerows':
      case 'updaterows':
      case 'deleterows':
        return this.rows(name, evt);
      case 'xid':
        return this.commit(binlogLsn(file, evt.nextPosition));
      case 'query': {
        const q = (evt.query ?? '').trim();
        if (/^BEGIN$/i.test(q)) {
          this.tx ??= { tsMs: evt.timestamp, txId: null, changes: [] };
          return;
        }
        if (/^COMMIT$/i.test(q)) return this.commit(binlogLsn(file, evt.nextPosition));
        if (evt.nextPosition > 0) await this.ddl(q, evt, binlogLsn(file, evt.nextPosition));
        return;
      }
      default:
        return;
    }
  }

  private async rows(name: string, evt: BinlogEvent): Promise<void> {
    const info = evt.tableMap?.[evt.tableId!];
    if (!info) return;
    if (info.tableName === SIGNAL_TABLE && info.parentSchema === this.config.connection.database) return this.signalRows(name, evt);
    const t = this.tables.get(formatTableName({ schema: info.parentSchema, table: info.tableName }));
    if (!t) return;
    if (evt.numberOfColumns !== undefined && evt.numberOfColumns !== t.columns.length && !this.drifted.has(evt.tableId!)) {
      // Rows written before an ALTER TABLE that information_schema no longer describes (a restart
      // behind the ALTER): decoded with today's column names (right for columns added at the end).
      this.drifted.add(evt.tableId!);
      this.log.warn({ table: formatTableName(t), binlogColumns: evt.numberOfColumns, columns: t.columns.length }, 'capture.schema.drift: binlog rows have another column count than the table has now (written before an ALTER TABLE); decoded by position with the current column names');
    }
    this.tx ??= { tsMs: evt.timestamp, txId: null, changes: [] };
    const tx = this.tx;
    const row = (r: Record<string, unknown>): Row => {
      const out: Row = {};
      for (const col of t.columns) setColumn(out, col.name, canonicalValue(Object.hasOwn(r, col.name) ? r[col.name] : undefined, col.type, this.zeroDate));
      return out;
    };
    const source = { db: t.schema, schema: t.schema, table: t.table, pos: '', commitPos: '', txId: tx.txId, tsMs: tx.tsMs, snapshot: false, idx: 0 };
    for (const r of evt.rows ?? []) {
      if (name === 'writerows') {
        tx.changes.push({ op: 'c', before: null, after: row(r as Record<string, unknown>), source: { ...source }, tsMs: 0, unchangedToast: [] });
      } else if (name === 'deleterows') {
        tx.changes.push({ op: 'd', before: row(r as Record<string, unknown>), after: null, source: { ...source }, tsMs: 0, unchangedToast: [] });
      } else {
        const u = r as { before: Record<string, unknown>; after: Record<string, unknown> };
        const before = row(u.before);
        const after = row(u.after);
        if (t.key.some((k) => !sameValue(before[k] ?? null, after[k] ?? null))) {
          // Key changed: a delete of the old key, then the new row (as the PostgreSQL source and Debezium do).
          tx.changes.push({ op: 'd', before, after: null, source: { ...source }, tsMs: 0, unchangedToast: [] });
          tx.changes.push({ op: 'c', before: null, after, source: { ...source }, tsMs: 0, unchangedToast: [] });
        } else {
          tx.changes.push({ op: 'u', before, after, source: { ...source }, tsMs: 0, unchangedToast: [] });
        }
      }
    }
  }

  /**
   * Rows of the signal table: inserts of this stream are watermarks or signals, kept with the
   * transaction and handed to the capture at its commit (never forwarded as data); the delete that
   * follows each insert, and other streams' rows, are ignored.
   */
  private signalRows(name: string, evt: BinlogEvent): void {
    if (name !== 'writerows') return;
    for (const r of evt.rows ?? []) {
      const s = signalOf(r as Record<string, unknown>);
      if (!s || s.stream !== this.streamId) continue;
      this.tx ??= { tsMs: evt.timestamp, txId: null, changes: [] };
      (this.tx.signals ??= []).push({ kind: s.kind, body: s.body });
    }
  }

  /** The transaction ended at `end`: its changes get their commit position and go to the stage. */
  private async commit(end: string): Promise<void> {
    const tx = this.tx;
    this.tx = null;
    const p = positionToBigInt(end);
    if (p > this.lastServer) this.lastServer = p;
    if (tx?.signals && tx.changes.length === 0) {
      // A backfill's watermark or signal (its own transaction): in binlog order with the changes.
      this.handler.begin({});
      await this.signalsAt(tx, end);
      this.handler.commit(end);
      return;
    }
    if (!tx || tx.changes.length === 0) {
      // Nothing of ours: with nothing in flight the acknowledged position follows the server.
      if (this.queue.length === 0 && this.handler.idle() && p > this.watermark) {
        this.watermark = p;
        this.scheduleStore();
      }
      return;
    }
    // Two-way sync: a transaction a peer pipeline's sink tagged with its server id (../origins.ts).
    const origin = await this.originOf(tx.serverId);
    let changes = tx.changes;
    if (origin !== undefined) changes = foldUpdates(changes, (e) => this.tables.get(formatTableName({ schema: e.source.schema, table: e.source.table }))?.key);
    if (origin !== undefined && tx.annotatedTsMs !== undefined) {
      for (const e of changes) e.source.tsMs = tx.annotatedTsMs;
    } else {
      // The binlog keeps whole seconds: a delete is timed at the end of its second, so that it is never
      // earlier than a row written before it in that second (latest-timestamp weighs deletes by their
      // commit time, src/sink/applier.ts); a row written on the other side in the same second loses to it.
      for (const e of changes) if (e.op === 'd') e.source.tsMs = Math.floor(e.source.tsMs / 1000) * 1000 + 999;
    }
    this.handler.begin(origin !== undefined ? { origin } : {});
    let idx = 0;
    const now = Date.now();
    for (const e of changes) {
      e.source.pos = end;
      e.source.commitPos = end;
      e.source.idx = idx++;
      e.tsMs = now;
      await this.handler.change(e);
    }
    if (tx.signals) await this.signalsAt(tx, end);
    this.handler.commit(end);
  }

  private async signalsAt(tx: OpenTx, end: string): Promise<void> {
    for (const s of tx.signals ?? []) {
      if (s.kind === 'watermark') {
        await this.handler.watermark?.(s.body, { db: this.config.connection.database, commitPos: end, pos: end, tsMs: tx.tsMs });
      } else {
        this.log.info({ signal: s.body.slice(0, 200) }, 'capture.signal');
        await this.handler.signal?.(s.body);
      }
    }
  }

  /** The origin name a peer sink registered for this server id (none for the server's own id). */
  private async originOf(serverId: number | undefined): Promise<string | undefined> {
    if (serverId === undefined || serverId === this.ownServerId) return undefined;
    try {
      return await this.origins.name(serverId);
    } catch (err) {
      throw classifyMysqlError(err, this.config.connection, `pipeline ${this.pipeline}: reading syncline_origins`);
    }
  }

  /** Tables renamed since they were described: configured name → the name in the source now. */
  private readonly current = new Map<string, { schema: string; table: string }>();
  /** Tables whose key the config sets (a primary key changed in the source does not change it). */
  private readonly configuredKeys = new Set<string>();

  /**
   * A captured table was renamed: its rows are read under the new name from here on and still
   * produced under its configured name and topic (the capture records the rename, a breaking change
   * held for an operator, ADR 0019); the binlog filter takes the new name.
   */
  private renamed(t: MariadbTable, to: { schema: string; table: string }): void {
    const name = formatTableName(to);
    this.current.set(formatTableName(t), to);
    this.tables.set(name, t);
    this.log.warn({ table: formatTableName(t), renamedTo: name }, 'capture.ddl.rename: the table is read under its new name');
    void this.prepare();
  }

  /** A statement that is its own transaction: ALTER TABLE (new columns), TRUNCATE (op 't'), DROP/RENAME (warned). */
  private async ddl(q: string, evt: BinlogEvent, end: string): Promise<void> {
    const serverId = this.tx?.serverId;
    this.tx = null;
    const p = positionToBigInt(end);
    if (p > this.lastServer) this.lastServer = p;
    const alter = DDL_ALTER.exec(q);
    const truncate = alter ? null : DDL_TRUNCATE.exec(q);
    const target = alter ?? truncate;
    const db = evt.schema ?? this.config.connection.database;
    const t = target ? this.tables.get(formatTableName(ddlTarget(target[1]!, db))) : undefined;
    if (t && alter) {
      // ALTER TABLE … RENAME TO: the table goes on under its new name (below, its columns are read there).
      const to = ALTER_RENAME.exec(q.slice(alter[0].length));
      if (to) this.renamed(t, ddlTarget(to[1]!, db));
      const now = this.current.get(formatTableName(t)) ?? t;
      const at = `${formatTableName(now)} after ALTER TABLE`;
      const [columns, pk] = await Promise.all([readColumns(this.meta!, now.schema, now.table), readPrimaryKey(this.meta!, now.schema, now.table)]).catch((err: unknown) => {
        throw classifyMysqlError(err, this.config.connection, `pipeline ${this.pipeline}: reading the columns of ${at}`);
      });
      if (!columns) throw fatal('SOURCE_TABLE_MISSING', `pipeline ${this.pipeline}: source table ${formatTableName(now)} is gone after ${q.slice(0, 200)}`);
      t.columns = columns;
      // The primary key now: another set of columns is a key change (the configured key, if any, stays the key).
      if (pk.length > 0 && !this.configuredKeys.has(formatTableName(t))) t.key = pk;
      this.log.info({ table: formatTableName(t), statement: q.slice(0, 200) }, 'capture.ddl.alter: columns read again');
      // Classified, checked and (when breaking) held from here by the capture stage (src/capture/capture.ts columns()).
      await this.handler.columns(t.schema, t.table, columns, { at: { commitPos: end, idx: 0 }, ddl: q.slice(0, 2000), ...(pk.length > 0 ? { key: pk } : {}), ...(now !== t ? { renamedTo: now } : {}) });
      return;
    }
    if (DDL_RENAME_TABLE.test(q)) {
      for (const m of q.matchAll(RENAME_PAIR)) {
        const from = this.tables.get(formatTableName(ddlTarget(m[1]!, db)));
        if (!from) continue;
        const to = ddlTarget(m[2]!, db);
        this.renamed(from, to);
        const columns = await readColumns(this.meta!, to.schema, to.table).catch((err: unknown) => {
          throw classifyMysqlError(err, this.config.connection, `pipeline ${this.pipeline}: reading the columns of ${formatTableName(to)} after RENAME TABLE`);
        });
        if (columns) from.columns = columns;
        await this.handler.columns(from.schema, from.table, from.columns, { at: { commitPos: end, idx: 0 }, ddl: q.slice(0, 2000), renamedTo: to });
      }
      return;
    }
    if (t && truncate) {
      const origin = await this.originOf(serverId);
      this.handler.begin(origin !== undefined ? { origin } : {});
      await this.handler.change({
        op: 't', before: null, after: null,
        source: { db: t.schema, schema: t.schema, table: t.table, pos: end, commitPos: end, txId: evt.seqNo === undefined ? null : Number(evt.seqNo), tsMs: evt.timestamp, snapshot: false, idx: 0 },
        tsMs: Date.now(), unchangedToast: [],
      });
      this.handler.commit(end);
      return;
    }
    if (DDL_DROP_RENAME.test(q) && [...this.tables.values()].some((x) => new RegExp(`\\b${x.table.replace(/[^\w$]/g, '.')}\\b`).test(q))) {
      this.log.warn({ statement: q.slice(0, 200) }, 'capture.ddl: a statement may drop or rename a captured table: its changes end here');
    }
  }

  async quiesce(): Promise<void> {
    this.stopping = true;
    clearInterval(this.heartbeatTimer);
    for (let i = 0; i < 100 && this.pumping; i++) await sleep(20);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.storeTimer);
    this.storeTimer = undefined;
    try {
      if (this.handler) await Promise.race([this.store(), sleep(5000)]);
    } finally {
      const z = this.zongji;
      if (z) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 2000);
          z.once('stopped', () => { clearTimeout(t); resolve(); });
          try { z.stop(); } catch { clearTimeout(t); resolve(); }
        });
      }
      await this.meta?.end().catch(() => undefined);
      await this.backfill.close();
      this.stopResolve?.();
    }
  }
}

/**
 * The changes of a transaction a peer sink wrote, with the updates of one key that follow each other
 * folded into one (first before, last after): the sink re-publishes a row by changing it and back
 * (MariaDB logs no unchanged row), which must reach the peer as one update of the row as it is.
 */
export function foldUpdates(changes: ChangeEvent[], keyOf: (e: ChangeEvent) => string[] | undefined): ChangeEvent[] {
  const out: ChangeEvent[] = [];
  const lastOf = new Map<string, number>();
  for (const e of changes) {
    const key = keyOf(e);
    const row = e.after ?? e.before;
    const ks = key && row ? `${e.source.schema}\u0000${e.source.table}\u0000${keyStringOf(key.map((k) => row[k] ?? null))}` : null;
    const at = ks !== null ? lastOf.get(ks) : undefined;
    const prev = at !== undefined ? out[at] : undefined;
    if (prev && prev.op === 'u' && e.op === 'u') {
      prev.after = e.after;
      continue;
    }
    if (ks !== null) lastOf.set(ks, out.length);
    out.push(e);
  }
  return out;
}

function sameValue(a: Value, b: Value): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return typeof a === 'bigint' || typeof b === 'bigint' ? String(a) === String(b) : a === b;
}
