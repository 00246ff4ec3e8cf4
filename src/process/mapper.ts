/**
 * Maps a decoded change (source names) to a SinkRecord (target table and column names) and
 * computes the canonical content hash used for delta detection.
 */
import type { ChangeEvent, Row } from '../core/envelope.js';
import { eventPosition } from '../core/envelope.js';
import { rowHash } from '../core/hash.js';
import type { TableConfig } from '../core/config/schema.js';
import type { SinkRecord } from '../sink/sink.js';

export interface TableMapping {
  source: string;
  target: string;
  rename: (col: string) => string;
  /**
   * Field encryption (src/security/crypto/pipeline.ts): the row hash of this table's records, with
   * each encrypted value replaced by the keyed HMAC of its plaintext. Absent: rowHash.
   */
  hash?: (values: Row, key: Row) => string;
}

/** The rename of a table without column renames: renameRow() returns the row itself. */
const sameName = (c: string) => c;

/** What tableMappings needs of a pipeline's field encryption (PipelineCrypto has it). */
export interface RowHashers {
  hasherFor(targetTable: string, strict: boolean): ((row: Row, key: Row) => string) | undefined;
}

export function tableMappings(tables: TableConfig[], crypto?: RowHashers): Map<string, TableMapping> {
  const out = new Map<string, TableMapping>();
  for (const t of tables) {
    const cols = t.columns ?? {};
    const target = t.target ?? t.source;
    const m: TableMapping = { source: t.source, target, rename: Object.keys(cols).length === 0 ? sameName : (c) => cols[c] ?? c };
    const h = crypto?.hasherFor(target, true);
    if (h) m.hash = h;
    out.set(t.source, m);
  }
  return out;
}

/** The row with its columns renamed; the row itself when nothing is renamed (rows are decoded afresh for each change, so it is not shared). */
/** The `keep` of an upsert that keeps nothing (shared: never changed). */
const NO_KEEP: string[] = Object.freeze([]) as unknown as string[];

export function renameRow(row: Row, rename: (c: string) => string): Row {
  if (rename === sameName) return row;
  const out: Row = {};
  for (const k of Object.keys(row)) out[rename(k)] = row[k]!;
  return out;
}

/**
 * `opts.hash: false` leaves `hash` null so that the caller can change the values first (validation
 * coerces) and then call hashRecord(). `opts.mappedKey`: the key row already renamed (renameRow),
 * `opts.position`: eventPosition(e) already computed (the processor's staleness check needs both first).
 */
export function toSinkRecord(e: ChangeEvent, keyRow: Row, m: TableMapping, origin: SinkRecord['origin'], opts: { hash?: boolean; mappedKey?: Row; position?: string } = {}): SinkRecord {
  const key = opts.mappedKey ?? renameRow(keyRow, m.rename);
  const position = opts.position ?? eventPosition(e);
  const table = m.target;
  const sourceTsMs = e.source.tsMs;
  if (e.op === 't') return { table, op: 'truncate', key: {}, values: null, keep: [], position, hash: null, sourceTsMs, origin };
  if (e.op === 'm') return { table, op: 'sweep', key: {}, values: null, keep: [], position, hash: null, sourceTsMs, origin, keyColumns: e.unchangedToast.map(m.rename) };
  if (e.op === 'd') return { table, op: 'delete', key, values: null, keep: [], position, hash: null, sourceTsMs, origin };
  const values = renameRow(e.after ?? {}, m.rename);
  const keep = e.unchangedToast.length === 0 ? NO_KEEP : e.unchangedToast.map(m.rename);
  for (const k of keep) delete values[k];
  const record: SinkRecord = { table, op: 'upsert', key, values, keep, position, hash: null, sourceTsMs, origin };
  if (e.op === 'u') record.update = true;
  return opts.hash === false ? record : hashRecord(record, m);
}

/** Sets the content hash of an upsert (none when some values were not sent: `keep`). */
export function hashRecord(record: SinkRecord, m?: TableMapping): SinkRecord {
  record.hash = record.op === 'upsert' && record.values !== null && record.keep.length === 0 ? (m?.hash ? m.hash(record.values, record.key) : rowHash(record.values)) : null;
  return record;
}
