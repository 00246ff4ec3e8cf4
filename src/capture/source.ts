/**
 * The capture stage's one source interface. A source connector (connectors/<system>/) implements
 * `Source` and registers a factory with `registerSource` (src/core/registry.ts); the capture stage
 * (./capture.ts) owns everything that is the same for every source: Kafka topics, Avro schemas in the
 * registry, the outbox and its back-pressure, acknowledgement after Kafka has the changes, resume
 * without duplicates, dead letters of changes no schema can carry.
 *
 * The source drives: run(handler) snapshots (if its stored state says so) and streams, calling the
 * handler in source order. Positions are the source's own, opaque to the stage:
 *  - `ChangeEvent.source.commitPos` / `pos` hold them as two hexadecimal numbers 'X/Y' (PostgreSQL:
 *    the WAL position; a binlog source: file number / offset), so core/envelope.ts position() gives
 *    every source the same fixed-width, totally ordered commit position (+ index within the
 *    transaction) for version state, replay and dead letters;
 *  - `commit(end)` hands back a token the stage returns, unread, to acknowledge(end) once Kafka holds
 *    every change up to that commit.
 */
import type { ChangeEvent, Row } from '../core/envelope.js';
import type { ColumnType } from '../core/types.js';
import type { LeaderLock } from './leadership.js';

/** A configured table as a source needs it: its name (canonical, core/names.ts) and the key the config sets, if any. */
export interface TableRequest {
  source: string;
  key?: string[];
}

/** A source stream's durable state in `<prefix>.capture.offsets` (./offsets.ts). */
export interface CaptureOffset {
  /** The stream's id, the record's key (PostgreSQL: the slot name). */
  slot: string;
  snapshot: 'started' | 'done' | 'skipped';
  /** The position the snapshot was consistent with (the stream starts after it). */
  consistentPoint: string;
  tables: string[];
  at: string;
  /** The last acknowledged stream position (sources without a server-side slot; the source's notation). */
  position?: string;
  /** The source's own durable state beside its position, JSON (a polling source: pass numbers, per-table watermarks and hash chunks). */
  state?: Record<string, unknown>;
}

export interface OffsetStore {
  read(id: string): Promise<CaptureOffset | null>;
  write(offset: CaptureOffset): Promise<void>;
}

/** A captured table as the source describes it (names as in the source, canonical via core/names.ts). */
export interface SourceTable {
  schema: string;
  table: string;
  /** Key columns used for Kafka keys and target upserts. */
  key: string[];
  /** Columns in table order with their types (what the Avro schemas are built from). */
  columns: SourceColumn[];
}

/** What a source knows of a schema change besides the new columns. */
export interface SchemaChangeInfo {
  /** Where the change takes effect: the commit position and index the next change of the table will have (absent: at its next change). */
  at?: { commitPos: string; idx: number };
  /** The table's key columns now, when the source reports them (PostgreSQL: the relation's replica identity columns). */
  key?: string[];
  /** The table's new name (the source keeps capturing it under its configured name and topic). */
  renamedTo?: { schema: string; table: string };
  /** The DDL statement, when the source knows it. */
  ddl?: string;
}

export interface SourceColumn {
  name: string;
  type: ColumnType;
}

/** What a source calls while it runs, in source order (implemented by the capture stage). */
/** A record a source cannot turn into a change (CaptureHandler.reject). */
export interface RejectedRecord {
  table: string;
  error: unknown;
  key: Buffer | string | null;
  value: Buffer | string | null;
  position?: string;
  origin?: { topic: string; partition: number; offset: string };
}

export interface CaptureHandler {
  /** Snapshot state that must outlive the process (`<prefix>.capture.offsets`, key = the source's stream id). */
  readonly offsets: OffsetStore;
  /** Start steps done: snapshot or stream comes next. */
  running(): void;
  /**
   * Streaming resumes from an acknowledged position that may be behind what Kafka already holds:
   * the stage reads the last position of each change-topic partition, so repeats are not produced.
   */
  resuming(): Promise<void>;
  /**
   * The table's columns, key or name changed (ALTER TABLE mid-stream): the stage classifies the
   * change (src/capture/schema-diff.ts), registers a new schema version and records the change
   * (src/capture/schema-changes.ts); a breaking one holds the table's apply until an operator decides.
   */
  columns(schema: string, table: string, columns: SourceColumn[], info?: SchemaChangeInfo): Promise<void>;
  /** A transaction begins; `origin` names who wrote it, where the source knows (two-way sync skips the peer's writes). */
  begin(tx: { origin?: string }): void;
  /** One change, snapshot row ('r'), truncate ('t') or end of a table's snapshot ('m'); resolves when buffered (back-pressure). */
  change(e: ChangeEvent): Promise<void>;
  /** The transaction ended at `end` (acknowledged once Kafka holds its changes). */
  commit(end: string): void;
  /**
   * A record the source read but cannot turn into a change (not JSON, no key, a value its column's
   * type does not take): dead-lettered as `invalid` and never dropped. `table`: the source table's
   * canonical name; `error`: a classified error whose message says where the record was read (URL and
   * page, file and line, topic partition and offset); `key`: the record's key as far as known
   * (a string also becomes the letter's key header); `value`: the record as the source had it;
   * `position` (a source position, part of the letter's id) and/or `origin` (a foreign topic's
   * partition and offset). Resolves once the dead-letter topic holds it; the source may then let the
   * record go (commit a transaction around it, or none). Optional: sources that cannot meet such
   * records do not call it.
   */
  reject?(r: RejectedRecord): Promise<void>;
  /** Produce everything buffered and wait for Kafka's acknowledgement (end of a snapshot). */
  flush(): Promise<void>;
  /** Nothing buffered or in flight: the source may move its acknowledged position to the server's. */
  idle(): boolean;
  /** stop() was called: a snapshot loop ends. */
  readonly stopped: boolean;
  /**
   * The stream reached a watermark this source wrote with `backfill.watermark(id)` (in stream order,
   * inside its transaction; `at` is where: the transaction's commit position and the message's own).
   * The backfill (./backfill.ts) opens or closes a chunk's window there; at a high watermark it
   * emits the chunk's remaining rows as snapshot reads before this resolves.
   */
  watermark?(id: string, at: { db: string; commitPos: string; pos: string; tsMs: number }): Promise<void>;
  /** The stream reached a control signal written with `backfill.signal(text)` (a backfill request, pause, …). */
  signal?(text: string): Promise<void>;
}

/**
 * What a source provides for backfills (re-reading a table in key order while streaming goes on;
 * ./backfill.ts). Optional: a source without it cannot backfill (`syncline backfill` says so).
 *  - PostgreSQL: watermarks and signals are `pg_logical_emit_message(true, 'syncline…', …)`, read
 *    back through pgoutput (`messages 'true'`): no table to create.
 *  - MariaDB (a binlog): a row inserted into and deleted from the signal table `syncline_signals`
 *    in one transaction (in the binlog like every change); the reader recognises those rows and
 *    never forwards them as data (connectors/mariadb/source/backfill.ts, ADR 0020).
 */
export interface BackfillSupport {
  /** Write a watermark into the change stream (the stream calls handler.watermark(id) when it reaches it). Resolves once committed. */
  watermark(id: string): Promise<void>;
  /** Write a control signal into the change stream (handler.signal(text) when the stream reaches it). Works from another process. */
  signal(text: string): Promise<void>;
  /**
   * The next chunk of `table` in key order: rows whose key is above `after` (null: from the start),
   * at most `limit`, restricted by `where` (the source's SQL), with `last` the last row's key in the
   * source's own notation (opaque to the framework, stored to resume; null when no row came).
   */
  chunk(table: SourceTable, after: string[] | null, limit: number, where?: string): Promise<{ rows: Row[]; last: string[] | null }>;
  /** How many rows the backfill will read (for progress and ETA); may be an estimate. */
  count(table: SourceTable, where?: string): Promise<number>;
  /**
   * Tables added to the config after the stream began are backfilled at the next start (or reload)
   * of the capture (PostgreSQL: unless its snapshot setting is `never`).
   */
  readonly addedTables: boolean;
  /** A `where` that the source cannot run is refused here (with the source's error), before any chunk. */
  checkWhere?(table: SourceTable, where: string): Promise<void>;
  /**
   * A backfill of exactly these keys (`syncline verify --repair`): the source's condition selecting
   * them (keys as text, one per key column, in `table.key` order). With keyRow, keys the chunk does
   * not find become deletes. Optional: a source without it cannot repair.
   */
  keysWhere?(table: SourceTable, keys: string[][]): string;
  /** The key row (every column present, non-key ones null) of a key given as text, typed as the stream types it. */
  keyRow?(table: SourceTable, key: string[]): Row;
}
export interface Source {
  /** Changes per Kafka produce batch, and how long to wait to fill one (the source's config). */
  readonly batchSize: number;
  readonly lingerMs: number;
  /**
   * The lock that makes one capture process of a pipeline the leader (./leadership.ts; ADR 0034),
   * taken before connect(). A source without one runs every capture process it is given.
   */
  leaderLock?(): LeaderLock;
  /** Open the connections the source needs to describe tables (once). */
  connect(): Promise<void>;
  /**
   * Check and describe the configured tables: each exists, its key is known. Fatal errors name the
   * table; a table that does not exist is `SOURCE_TABLE_MISSING` (a two-way peer may create it).
   */
  describe(tables: TableRequest[]): Promise<SourceTable[]>;
  /** Make the source ready to stream these tables (PostgreSQL: the publication). */
  prepare(tables: SourceTable[]): Promise<void>;
  /**
   * describe() and prepare() may be called again while run() streams, with tables a config reload
   * added (Capture.addTables): the source streams those too from then on (PostgreSQL: ALTER
   * PUBLICATION … ADD TABLE, seen by the running walsender; MariaDB: the binlog filter). Without it a
   * reload that adds tables restarts the pipeline's stages in the process instead.
   */
  readonly addsTablesWhileRunning?: boolean;
  /** Snapshot if needed, then stream into `handler` until stop() (resolves) or a failure (rejects, classified). */
  run(handler: CaptureHandler): Promise<void>;
  /** Kafka holds every change up to the commit that ended at `end`: the source may let it go. */
  acknowledge(end: string): void;
  /** The last acknowledged position, in the source's notation ('' before any). */
  readonly confirmed: string;
  /**
   * The source's end now (PostgreSQL: pg_current_wal_lsn; a binlog: its current file/offset; a
   * polling source: the position its next complete pass will end at or beyond). A bounded run
   * (scheduled or manual sync) ends once `confirmed` has reached the position asked at its start.
   * Compared with core/envelope.ts position(). Optional: a source without it runs only in realtime mode.
   */
  position?(): Promise<string>;
  /** Backfills (./backfill.ts): watermarks, signals and key-ordered chunks. Optional. */
  readonly backfill?: BackfillSupport;
  /**
   * Some columns of one row as they are at the source now (null: no such row), to fill values a
   * change left out (unchanged TOASTed values) for targets that need whole rows (./toast-fill.ts).
   * Called from within `handler.change`, between two changes of the stream. Optional.
   */
  reselect?(table: SourceTable, key: Row, columns: string[]): Promise<Row | null>;
  /** Stop taking changes from the source (the message being handled finishes). */
  quiesce(): Promise<void>;
  /** Acknowledge what was acknowledged last and close every connection. Safe after a failed connect(). */
  stop(): Promise<void>;
}

/**
 * Readiness and lag of a pipeline's source, for /ready, `syncline status` and the metrics, over one
 * lazily opened connection of its own (a broken one is dropped and opened again at the next call).
 */
export interface SourceMonitor {
  /** Resolves when the source answers; rejects with a message naming the server. */
  ping(): Promise<void>;
  /**
   * How far the pipeline's stream is behind the source (bytes of log not yet acknowledged, bytes
   * the source retains for it, whether a reader is attached); null when there is no stream yet.
   * `confirmed` is the capture's acknowledged position when it runs in this process ('' before
   * any): a source whose server keeps no position for its readers (a binlog) measures from it.
   */
  lag(confirmed?: string): Promise<SourceLag | null>;
  /**
   * The position the pipeline's capture has acknowledged (Kafka holds every change below it), as
   * the source keeps it (PostgreSQL: the slot's confirmed_flush_lsn), in the notation of
   * Source.position(); null when unknown. `syncline verify` waits for it. Optional.
   */
  acknowledged?(): Promise<string | null>;
  close(): Promise<void>;
}

export interface SourceLag {
  lagBytes: number | null;
  retainedBytes: number | null;
  active: boolean;
  /**
   * How old the newest complete picture of the source in Kafka is, in seconds (a polling source:
   * now − the start of its last acknowledged pass, ./poll/lag.ts). Absent for log-based sources,
   * whose lag is lagBytes.
   */
  lagSeconds?: number | null;
}
