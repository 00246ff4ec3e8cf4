/**
 * What a polling source needs from one database system: its SQL spelling, its connection and its
 * values. Implemented per system next to its connector (connectors/postgres/poll/,
 * connectors/mariadb/poll/), reusing that connector's connection builder and type mapping; the
 * tracking logic (modes, overlap, chunked hash compare, passes and positions) is ./poll-source.ts.
 *
 * Every query the source runs reads one relation aliased `__p` (a table, a view, or `(query) __p`).
 */
import type { SourceColumn, TableRequest } from '../source.js';
import type { Value } from '../../core/envelope.js';
import type { SynclineError } from '../../core/errors.js';

export const ALIAS = '__p';

export interface PollRelation {
  schema: string;
  table: string;
  key: string[];
  columns: SourceColumn[];
  /** The FROM item, aliased ALIAS: `"public"."users" __p`, `(select …) __p`. */
  from: string;
}

export interface PollDialect {
  /** 'PostgreSQL', 'MariaDB', for messages. */
  readonly system: string;
  /** Where the source reads, for messages ('127.0.0.1:5432/shop'). */
  readonly where: string;
  /** The database name a change's `source.db` carries. */
  readonly database: string;
  connect(): Promise<void>;
  close(): Promise<void>;
  /** Columns and key of a table, a view or `query`; fatal errors name the table (SOURCE_TABLE_MISSING, POLL_KEY_REQUIRED). */
  describe(req: TableRequest, query: string | undefined, pipeline: string): Promise<PollRelation>;
  /** A quoted identifier. */
  id(name: string): string;
  /** The placeholder of the n-th parameter (1-based) holding a value of `col` as the driver returned it. */
  param(n: number, col?: SourceColumn): string;
  /** How a column is read (text forms the canonical parser takes). */
  select(col: SourceColumn): string;
  /** The content hash of a row of ALIAS as 32 lower-case hex digits (md5), computed by the database. */
  rowHash(columns: SourceColumn[]): string;
  /** Aggregate over rows: the sum of the first 15 hex digits of `hash` as an exact decimal text ('0' for no row). */
  hashSum(hash: string): string;
  /** `colExpr` later than `wm` minus `overlapParam` (timestamp: milliseconds; version: units). */
  after(colExpr: string, col: SourceColumn, mode: 'timestamp' | 'version', wm: string, overlap: string | null): string;
  /** Rows as arrays of raw driver values, in select order. */
  query(sql: string, params: unknown[]): Promise<unknown[][]>;
  /** A raw driver value of a column → its canonical value (src/core/types.ts). */
  canonical(raw: unknown, col: SourceColumn): Value;
  /** An error of the driver onto the taxonomy, with `context`. */
  classify(err: unknown, context: string): SynclineError;
}
