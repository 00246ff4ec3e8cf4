/**
 * The imaginary "acme" client library, so that the skeleton type-checks. A real connector imports
 * the system's own driver instead and has no such file. What it models: an Acme server keeps a
 * change log addressed by (file, offset), written in commit order, like a binlog; it keeps no
 * reading position for its readers, so the source saves its own in `<prefix>.capture.offsets`.
 */

export interface AcmeClientOptions {
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
  /** undefined: no TLS. */
  tls?: { ca?: string; rejectUnauthorized: boolean };
  connectTimeoutMs: number;
  /** Shown by the server in its session list. */
  application: string;
}

/** A log position: file number and byte offset in it (each below 2^32). */
export interface AcmeLogPosition {
  file: number;
  offset: number;
}

export interface AcmeTableInfo {
  /** Columns in table order, with the server's type names ('int32', 'decimal(12,2)', …). */
  columns: { name: string; type: string }[];
  primaryKey: string[];
}

export type AcmeLogEvent =
  /** `commitAt`: where the transaction's commit record is in the log (the server announces it up front). */
  | { kind: 'begin'; txId: number; commitAt: AcmeLogPosition; tsMs: number; origin?: string }
  | { kind: 'row'; op: 'insert' | 'update' | 'delete'; schema: string; table: string; at: AcmeLogPosition; before: unknown[] | null; after: unknown[] | null }
  | { kind: 'truncate'; schema: string; table: string; at: AcmeLogPosition }
  | { kind: 'columns'; schema: string; table: string; columns: { name: string; type: string }[] }
  /** `next`: the position just after the commit record, where reading resumes. */
  | { kind: 'commit'; next: AcmeLogPosition };

export interface AcmeLogReader extends AsyncIterable<AcmeLogEvent> {
  close(): Promise<void>;
}

/** A consistent read view of the database and the log position it is consistent with. */
export interface AcmeSnapshot {
  /** Every transaction committed before `at` is in the view, none after. */
  at: AcmeLogPosition;
  rows(schema: string, table: string, columns: string[]): AsyncIterable<unknown[]>;
  close(): Promise<void>;
}

export interface AcmeWrite {
  table: string;
  op: 'upsert' | 'delete' | 'truncate';
  key: Record<string, unknown>;
  values?: Record<string, unknown>;
  /** Columns an upsert must leave as they are. */
  keep?: string[];
}

export interface AcmeClient {
  ping(): Promise<void>;
  tableInfo(schema: string, table: string): Promise<AcmeTableInfo | null>;
  head(): Promise<AcmeLogPosition>;
  logStatus(): Promise<{ head: AcmeLogPosition; retainedBytes: number; readers: string[] }>;
  snapshot(): Promise<AcmeSnapshot>;
  readLog(from: AcmeLogPosition, readerName: string): AcmeLogReader;
  /** All writes in one server transaction; rejects with `rejected[i]` set for each write the server refused. */
  write(writes: AcmeWrite[]): Promise<void>;
  select(table: string, keyColumns: string[], keys: unknown[][]): Promise<Record<string, unknown>[]>;
  /** Any statement in Acme's SQL dialect (DDL, admin; the contract fixtures use it). */
  query(sql: string): Promise<{ rows: Record<string, unknown>[]; columns: { name: string; type: string }[]; rowCount: number }>;
  close(): Promise<void>;
}

/** What write() rejects with when the server refused some writes (the others were not applied). */
export class AcmeWriteError extends Error {
  constructor(readonly rejected: { index: number; code: string; message: string; column?: string }[]) {
    super(`${rejected.length} write(s) refused`);
  }
}

/** Errors of the library carry the server's code ('AUTH_FAILED', 'NO_SUCH_TABLE', 'BUSY', …) or Node's (ECONNREFUSED, TLS codes). */
export function openAcmeClient(_options: AcmeClientOptions): Promise<AcmeClient> {
  return Promise.reject(new Error('acme is imaginary: a real connector uses its system\'s client library'));
}
