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
}

export function tableMappings(tables: TableConfig[]): Map<string, TableMapping> {
  const out = new Map<string, TableMapping>();
  for (const t of tables) {
    const cols = t.columns ?? {};
    out.set(t.source, { source: t.source, target: t.target ?? t.source, rename: (c) => cols[c] ?? c });
  }
  return out;
}

export function renameRow(row: Row, rename: (c: string) => string): Row {
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
  const base = { table: m.target, key, position, sourceTsMs: e.source.tsMs, origin };
  if (e.op === 't') return { ...base, key: {}, op: 'truncate', values: null, keep: [], hash: null };
  if (e.op === 'm') return { ...base, key: {}, op: 'sweep', values: null, keep: [], hash: null, keyColumns: e.unchangedToast.map(m.rename) };
  if (e.op === 'd') return { ...base, op: 'delete', values: null, keep: [], hash: null };
  const values = renameRow(e.after ?? {}, m.rename);
  const keep = e.unchangedToast.map(m.rename);
  for (const k of keep) delete values[k];
  const record: SinkRecord = { ...base, op: 'upsert', values, keep, hash: null };
  if (e.op === 'u') record.update = true;
  return opts.hash === false ? record : hashRecord(record);
}

/** Sets the content hash of an upsert (none when some values were not sent: `keep`). */
export function hashRecord(record: SinkRecord): SinkRecord {
  record.hash = record.op === 'upsert' && record.values !== null && record.keep.length === 0 ? rowHash(record.values) : null;
  return record;
}
