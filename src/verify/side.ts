/**
 * The seam between verification (./verify.ts) and a database: what a source or target connector
 * provides so that `syncline verify` can compare the two sides of a pipeline in SQL, on each side,
 * without reading a table into memory (SourceRegistration.verify / SinkRegistration.verify).
 *
 * Canonical rendering (the same text on every system, so that equal values compare equal whatever
 * the column types on each side): per column, by the kind of the column's own type:
 *   integers          decimal digits ('-12')
 *   numeric/decimal   the value without trailing fractional zeros ('1.5' for 1.50, '2' for 2.000)
 *   float/double      the system's shortest round-trip text
 *   boolean           '1' / '0' (a MariaDB tinyint(1) holds a PostgreSQL boolean)
 *   timestamp         'YYYY-MM-DDTHH:MM:SS.ffffff'; with time zone: in UTC (a MariaDB datetime(6) holds it in UTC)
 *   date              'YYYY-MM-DD'
 *   json              the parsed document printed back (key order, spacing normalised)
 *   bytes             lower-case hex
 *   anything else     the system's text form
 * A row's rendering is its columns' renderings in the compared order, each 'v' + text or 'n' (NULL),
 * joined with U+001F; its hash is md5 of that. A range's digest is the row count and the sum of the
 * first 60 bits of each row's hash: order-independent, so each side computes it with one aggregate.
 */

/** A table on one side, with the columns compared (in the same order on both sides; names as on that side). */
export interface VerifyTable {
  schema: string;
  table: string;
  /** Key columns (a prefix of nothing: any of `columns`, in key order). */
  key: string[];
  /** Compared columns, key columns included. */
  columns: string[];
}

/** A key as canonical texts (one per key column); null as a bound: open (−∞ below, +∞ above). */
export type KeyText = string[];

export interface RangeDigest {
  count: number;
  /** Sum of the rows' 60-bit hash prefixes, decimal. */
  sum: string;
}

/** A row as canonical texts: its key and every compared column (null: SQL NULL). */
export interface CanonicalRow {
  key: KeyText;
  values: (string | null)[];
}

export interface VerifySide {
  /** The table's column names, in table order (missing table: throws a fatal error naming it). */
  columnsOf(schema: string, table: string): Promise<string[]>;
  /** The table's primary key columns ([] without one). */
  primaryKey(schema: string, table: string): Promise<string[]>;
  /** Digest of the rows whose key is in (lo, hi]. */
  digest(t: VerifyTable, lo: KeyText | null, hi: KeyText | null): Promise<RangeDigest>;
  /** The key of the (offset+1)-th row in key order within (lo, hi]; null when there are not that many. */
  keyAt(t: VerifyTable, lo: KeyText | null, hi: KeyText | null, offset: number): Promise<KeyText | null>;
  /** The rows in (lo, hi], in key order (the caller keeps the range small). */
  rows(t: VerifyTable, lo: KeyText | null, hi: KeyText | null): Promise<CanonicalRow[]>;
  /** The rows of these keys (those that exist). */
  rowsByKeys(t: VerifyTable, keys: KeyText[]): Promise<CanonicalRow[]>;
  close(): Promise<void>;
}
