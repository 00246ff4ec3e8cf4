/**
 * The sink stage's one interface. A connector implements `Sink` and registers itself with
 * `registerSink({ type, description, spec, create })` (src/core/registry.ts) from its own folder under
 * connectors/; nothing central changes.
 *
 * Lifecycle: connect() once; writeBatch() many times (concurrently for batches of different Kafka
 * partitions, whose keys never overlap); close() once.
 * Guarantee asked of writeBatch: when it returns, every record not listed in `failed` is durably
 * committed in the target; a record listed in `failed` left no effect. Writes must be idempotent
 * (upsert/delete by key), since the same batch may be written again after a crash.
 */
import type { Decided, Row } from '../core/envelope.js';
import type { SynclineError } from '../core/errors.js';

/** How the applier decided a record, for the change history (src/history/history.ts lists the meanings). */
export type Decision =
  | 'applied'
  | 'conflict_source_won'
  | 'conflict_merged'
  | 'conflict_target_won'
  | 'conflict_parked'
  | 'resolved_source'
  | 'resolved_merged'
  | 'resolved_target'
  | 'baseline'
  | 'rolled_back';

/** Set on a SinkRecord by the applier: the record is to be recorded in the history, decided so. */
export interface HistoryNote {
  decision: Decision;
  strategy?: string;
  by?: string;
}

export interface SinkRecord {
  /** Target table, qualified, in canonical form (src/core/names.ts): 'public.users', '"My Schema".Orders'. */
  table: string;
  /** sweep: end of a table's snapshot; target rows the snapshot did not refresh are deleted (see Applier). */
  op: 'upsert' | 'delete' | 'truncate' | 'sweep';
  /** Target key columns → values (empty for truncate). */
  key: Row;
  /** Full target row for upserts (mapped column names); null for delete/truncate. */
  values: Row | null;
  /** Target columns whose current value must be kept (unchanged TOASTed source values). */
  keep: string[];
  /** Commit position of the source change (see core/envelope.ts position()). */
  position: string;
  /** Canonical hash of `values` (null for delete/truncate and when `keep` is non-empty). */
  hash: string | null;
  /** An update of an existing source row (not an insert or a snapshot read). */
  update?: true;
  /**
   * Set by the applier on upserts of a guarded write (writeGuarded) whose read found no row at the
   * key: the sink inserts it only if there is still none, and fails the write retriably if someone
   * inserted one since (the read could not lock a row that did not exist), so that the retry
   * decides against that row instead of overwriting it unchecked.
   */
  absent?: true;
  /** Two-way sync: a row the peer pipeline re-published because its conflict resolution kept it, and over what (DECIDED_HEADER). */
  decided?: Decided;
  /** Source commit time (ms), for latency and latest-timestamp. */
  sourceTsMs: number;
  /** SQL types of the record's target columns as the source declares them (for auto-creating and auto-evolving targets); upserts and end-of-snapshot markers carry them. */
  columnTypes?: Record<string, string>;
  /** Values converted by validation rules with `coerce: true` (already replaced in `values`; the key keeps the source value). */
  coerced?: { field: string; from: string; to: string }[];
  /** sweep: the table's key columns (target names), to turn stored keys back into key rows. */
  keyColumns?: string[];
  /** Where the change came from, for dead-letter headers. */
  origin: { topic: string; partition: number; offset: string };
  /**
   * A control record (truncate, sweep) in the apply topic of a split deployment: the processor
   * writes one copy to every partition (`of` of them), this one to `partition`, so each sink
   * consumer meets it after the records that came before it (see ApplyTopicWriter).
   */
  copy?: { partition: number; of: number };
  /** A control record (truncate, sweep): how many partitions of the change topic capture wrote it to (PARTITIONS_HEADER). */
  partitions?: number;
  /** Set by the applier when the record's table keeps a change history: how it was decided (src/history/). */
  history?: HistoryNote;
}

/**
 * A history store a sink may write in its own transaction (ADR 0031): when the store lives in the
 * target's database, the sink accepts it (Sink.historyInTx) and, in the transaction that writes the
 * target, reads the before images of the noted records' keys, writes, then runs `insert(entries)`
 * with the same session, so target and history commit together. The entries are src/history's
 * HistoryEntry (opaque here: the sink hands them on).
 */
export interface HistoryTx {
  /** PostgreSQL URL of the store's database (the sink compares server and database with its own). */
  readonly url: string;
  /** The statement that stores these entries (applied_at = the clock at that moment, in the write's transaction). */
  insertSql(entries: readonly unknown[]): { text: string; params: unknown[] };
  /** Make sure the day partitions the next writes need exist (outside any transaction). */
  ready(): Promise<void>;
}

export interface FailedRecord {
  record: SinkRecord;
  error: SynclineError;
}

export interface WriteResult {
  failed: FailedRecord[];
}

/** Target rows by table, then by keyString(key). */
export type TargetRows = Map<string, Map<string, Row>>;

/**
 * A conflict-checked write: the current rows of `reads` are read (locked against other writers until
 * the write commits, where the target can), `decide` says what to write given those rows, and that
 * is written in the same transaction. `decide` may be called again if the write is retried.
 */
export interface GuardedWrite {
  reads: Map<string, Row[]>;
  decide(rows: TargetRows): Promise<SinkRecord[]>;
}

export interface Sink {
  connect(): Promise<void>;
  writeBatch(batch: SinkRecord[]): Promise<WriteResult>;
  /**
   * Optional: GuardedWrite in one transaction with the rows locked (PostgreSQL: SELECT ... FOR UPDATE).
   * Without it the applier reads with readRows and writes with writeBatch (a concurrent edit between
   * the two can then go unnoticed).
   */
  writeGuarded?(g: GuardedWrite): Promise<WriteResult>;
  /**
   * Optional (two-way sync): make the target emit these rows again as changes that are NOT tagged as
   * this pipeline's writes, so the peer pipeline carries the target's version back to the other side.
   * `over`: what the rows were kept over (a delete or an update from the other side); tag the
   * writes with `republishOrigin(ctx.origin, over)` so the peer's capture can tell the two apart.
   */
  republish?(table: string, keys: Row[], over: Decided): Promise<void>;
  /**
   * Optional (two-way sync): delete these rows as a decision the peer carries back to the other side
   * — from a session tagged `republishOrigin(ctx.origin, 'delete')`, in one transaction recorded with
   * the commit time `tsMs` of the delete it carries out (the peer's capture reads that time, so the
   * peer weighs the delete exactly as this side did). A row whose `guard` columns no longer hold the
   * given values (changed since it was read) is left alone and re-published instead; those keys are
   * returned (the change history records the others as deleted). Idempotent: a row already gone
   * counts as deleted. Without it the applier writes such deletes in the batch like any other.
   */
  republishDelete?(table: string, rows: { key: Row; guard: Row }[], tsMs: number): Promise<Row[]>;
  /**
   * Optional (targets that create missing tables, e.g. PostgreSQL's autoCreate): make sure the
   * record's target table exists, created from the record's key columns (`keyColumns`, else its key)
   * and `columnTypes` when missing. The applier calls it with the end-of-snapshot marker of each table,
   * which carries no row, so that an empty source table gets its target table too; tables with rows
   * are created by writeBatch from their first records.
   */
  ensureTable?(record: SinkRecord): Promise<void>;
  /** Optional: take a history store into the write's transaction (see HistoryTx); true when the sink will. */
  historyInTx?(h: HistoryTx): boolean;
  /**
   * Optional, with historyInTx: the history baseline of `table` — in one transaction that holds off
   * the table's writers (PostgreSQL: LOCK ... IN SHARE MODE), every current row (key columns
   * `keyColumns`, default the primary key) and the instant, given to `statements`, whose statements
   * (the baseline entries and the table's coverage) run in that transaction. A missing table has no rows.
   */
  historyBaseline?(table: string, keyColumns: string[] | undefined, statements: (rows: { key: Row; row: Row }[], since: Date) => { text: string; params: unknown[] }[]): Promise<void>;
  /** Current target rows for these keys of one table, keyed by keyString(key). One round trip. */
  readRows(table: string, keys: Row[]): Promise<Map<string, Row>>;
  /** Health probe: throws if the target cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

const bigintAsString = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v);
/** Where a key row remembers its keyString (a non-enumerable property: spreads, entries and JSON never see it). */
const KEY_STRING = Symbol('syncline.keyString');

/**
 * Stable string for a key row (column order as given by the table's key definition). Computed once
 * per key object (key rows are never changed after mapping) and remembered with it: the applier
 * asks for it several times per record.
 */
export function keyString(key: Row): string {
  const known = (key as { [KEY_STRING]?: string })[KEY_STRING];
  if (known !== undefined) return known;
  const s = keyStringOf(Object.values(key));
  rememberKeyString(key, s);
  return s;
}

/** Give a key row the keyString already computed for a row with the same values in the same order. */
export function rememberKeyString(key: Row, s: string): void {
  Object.defineProperty(key, KEY_STRING, { value: s });
}

/**
 * The keyString of key values: the text of JSON.stringify(values) with bigints as strings (the
 * version-state keys in Redis are these strings, so the text must never change). Scalars are written
 * directly, which is several times faster than JSON.stringify with a replacer; anything else
 * (a Date, a Buffer, undefined) takes JSON.stringify.
 */
export function keyStringOf(values: unknown[]): string {
  let s = '[';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) s += ',';
    switch (typeof v) {
      case 'number':
        s += Number.isFinite(v) ? String(v) : 'null';
        break;
      case 'string':
        s += JSON.stringify(v);
        break;
      case 'bigint':
        s += '"' + v.toString() + '"';
        break;
      case 'boolean':
        s += v ? 'true' : 'false';
        break;
      default:
        if (v !== null) return JSON.stringify(values, bigintAsString);
        s += 'null';
    }
  }
  return s + ']';
}
