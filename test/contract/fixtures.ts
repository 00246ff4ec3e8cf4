/**
 * What a connector hands the contract suites (./sink-contract.ts, ./source-contract.ts): one fixture
 * object per connector, describing how to make, write and read its system. The suites know nothing
 * of any one system; a new connector passes the contract by writing a fixture and a five-line test
 * file (see ./postgres.int.test.ts and ./postgres-fixtures.ts).
 *
 * Values are compared in the canonical forms the processor itself uses (the `Value` of
 * src/core/envelope.ts, documented kind by kind in src/core/types.ts): int4 → number, int8 →
 * bigint, numeric → string as printed, timestamps → 'YYYY-MM-DDTHH:MM:SS.ffffff[Z]', bytes → Buffer,
 * arrays → Value[], … A fixture's `readAll` converts what its system returns into those forms, so
 * that source state, target state and the declared expectations compare with one equality.
 *
 * Every fixture makes its own database per test run, named `syncline_t_<id>_<suffix>` so that
 * scripts/test.sh can drop the leftovers of an interrupted run.
 */
import type { Row, Value } from '../../src/core/envelope.js';

/** A table the contract asks for: bare name (the fixture places it in its schema), columns in order. */
export interface TableDef {
  name: string;
  /** Column name → the fixture system's own SQL type (from `basicTypes`, `types[].sqlType`, …). */
  columns: [name: string, sqlType: string][];
  key: string[];
  /** Extra table constraints in the system's SQL (e.g. a CHECK), used by the rejected-record case. */
  constraints?: string[];
}

/** One change inside a transaction. Values are plain numbers/strings/null (the workload columns). */
export type WriteOp =
  | { kind: 'insert'; table: string; row: Record<string, number | string | null> }
  | { kind: 'update'; table: string; key: Record<string, number>; set: Record<string, number | string | null> }
  | { kind: 'delete'; table: string; key: Record<string, number> };

/** The SQL types a fixture uses for the contract's workload tables: (id key, v int, note text). */
export interface BasicTypes {
  /** A 64-bit or 32-bit integer usable as a primary key. */
  id: string;
  int: string;
  text: string;
}

/**
 * One declared type and its samples. `literal` is an SQL expression in the *writing* system's
 * dialect (for a source fixture: its own; for a sink fixture: PostgreSQL, the source that feeds it),
 * `expect` the canonical value read back. NULL, extremes, emoji, binary and microsecond timestamps
 * belong here.
 */
export interface TypeCase {
  /** Column name in the contract's types table. */
  column: string;
  /** Source column type (source fixture: its own SQL; sink fixture: the feeding PostgreSQL source's). */
  sourceType: string;
  /** Sink fixtures: the target column's type in the sink's SQL (absent: left to autoCreate). */
  targetType?: string;
  samples: { literal: string; expect: Value }[];
}

/** A record the target refuses; the rest of the stream must flow past it. */
export interface RejectedCase {
  /** The feeding source's column type and the target's narrower type or constraint. */
  sourceType: string;
  targetType: string;
  /** Target table constraints that make `bad` fail (optional: the type alone may refuse it). */
  constraints?: (column: string) => string[];
  /** A literal the target accepts and one it refuses (PostgreSQL source SQL). */
  good: string;
  bad: string;
  /** The error code the dead letter must carry, e.g. 'PG_22001'. */
  code: string;
  /** What the refusal is, for messages. */
  why: string;
}

// ---------------------------------------------------------------------------------------------------
// Sinks

export interface SinkFixture {
  /** Connector name, as in the config (`target.type`). */
  name: string;
  /** Make an empty target (its own database) for the run `id`. */
  createTarget(id: string): Promise<SinkTarget>;
  basicTypes: BasicTypes;
  types: TypeCase[];
  rejected: RejectedCase;
  /** The sink creates missing tables (then the contract also runs the type round trip on a table it did not create). */
  autoCreate: boolean;
}

export interface SinkTarget {
  /** Database (or equivalent) name, `syncline_t_<id>_…`. */
  database: string;
  /** The pipeline's `target` block. */
  config(): Record<string, unknown>;
  /** Canonical table name used in the pipeline's `tables[].target`, e.g. public.items. */
  qualified(table: string): string;
  createTable(t: TableDef): Promise<void>;
  /** Every row of a table, canonical values, sorted by key; [] if the table does not exist. */
  readAll(table: string, key: string[]): Promise<Row[]>;
  /**
   * Optional: an opaque per-row write mark that changes whenever a row is written, even with the same
   * values (PostgreSQL: xmin). With it the redelivery check also proves no row was rewritten.
   */
  writeMarks?(table: string, key: string[]): Promise<Map<string, string>>;
  dropTable(table: string): Promise<void>;
  /** Drop the database; safe to call twice. */
  drop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// Sources

export interface SourceFixture {
  /** Connector name, as in the config (`source.type`). */
  name: string;
  createSource(id: string): Promise<SourceDb>;
  basicTypes: BasicTypes;
  types: TypeCase[];
}

export interface SourceDb {
  database: string;
  /** The pipeline's `source` block; `prefix` is t<id>, `pipeline` the pipeline name (for slot names etc.). */
  config(prefix: string, pipeline: string): Record<string, unknown>;
  /** Canonical table name used in the pipeline's `tables[].source`, e.g. public.items. */
  qualified(table: string): string;
  createTable(t: TableDef): Promise<void>;
  /** Insert rows given as SQL literals of this system (the types round trip). */
  insertLiterals(table: string, rows: Record<string, string>[]): Promise<void>;
  /** Update the row with key `key` (literals) setting columns to literals, one transaction. */
  updateLiterals(table: string, key: Record<string, string>, set: Record<string, string>): Promise<void>;
  /** A session for writes; several may run concurrently. */
  session(): Promise<SourceSession>;
  readAll(table: string, key: string[]): Promise<Row[]>;
  /** Drop the database and whatever the pipeline left in the server (slots, publications) for `prefix`. */
  drop(prefix: string): Promise<void>;
}

export interface SourceSession {
  /** Run the ops in one transaction (committed when this resolves). */
  transaction(ops: WriteOp[]): Promise<void>;
  close(): Promise<void>;
}
