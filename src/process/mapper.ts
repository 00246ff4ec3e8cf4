/**
 * Maps a decoded change (source names) to a SinkRecord (target table and column names) and
 * computes the canonical content hash used for delta detection.
 */
import type { ChangeEvent, Row, Value } from '../core/envelope.js';
import { eventPosition, setColumn } from '../core/envelope.js';
import { rowHash } from '../core/hash.js';
import { SynclineError } from '../core/errors.js';
import type { TableConfig } from '../core/config/schema.js';
import type { SinkRecord } from '../sink/sink.js';
import { compileTransforms, type TableTransform } from './transform/compile.js';
import { compileRoute, type CompiledRoute } from './transform/route.js';

export interface TableMapping {
  source: string;
  target: string;
  rename: (col: string) => string;
  /**
   * Field encryption (src/security/crypto/pipeline.ts): the row hash of this table's records, with
   * each encrypted value replaced by the keyed HMAC of its plaintext. Absent: rowHash.
   */
  hash?: (values: Row, key: Row) => string;
  /** The table's transform chain (tables[].transform), compiled; absent without one (a routed table always has one, maybe empty). */
  transform?: TableTransform;
  /** Content-based routing (tables[].route): each change's target table; `target` is then the source name (dead letters). */
  route?: CompiledRoute;
  /**
   * Field encryption: the table's encrypted columns (target names), a transient copy of a row with
   * them decrypted (validation reads the plaintext), and the ciphertext of a value coerced by
   * validation. Absent: the table has no encrypted column.
   */
  encrypted?: { columns: ReadonlySet<string>; open: (values: Row, key: Row) => Row; seal: (column: string, value: Value, key: Row) => Value };
}

/** The rename of a table without column renames: renameRow() returns the row itself. */
const sameName = (c: string) => c;

/** What tableMappings needs of a pipeline's field encryption (PipelineCrypto has it). */
export interface RowHashers {
  hasherFor(targetTable: string, strict: boolean): ((row: Row, key: Row) => string) | undefined;
  encryptedColumns?(targetTable: string): ReadonlySet<string> | undefined;
  openRow?(targetTable: string, row: Row, key: Row, columns?: Iterable<string>): Row;
  sealValue?(targetTable: string, column: string, value: Value, key: Row): Value;
}

export function tableMappings(tables: TableConfig[], crypto?: RowHashers): Map<string, TableMapping> {
  const out = new Map<string, TableMapping>();
  for (const t of tables) {
    // A Map: a column named like an inherited property (toString, __proto__) is not renamed to Object.prototype's.
    const renames = new Map(Object.entries(t.columns ?? {}));
    const target = t.target ?? t.source;
    const m: TableMapping = { source: t.source, target, rename: renames.size === 0 ? sameName : (c) => renames.get(c) ?? c };
    const h = crypto?.hasherFor(target, true);
    if (h) m.hash = h;
    if ((t.transform && t.transform.length > 0) || t.route) {
      // Checked at load (checkTableTransforms): a problem here is a config built without the loader.
      const r = compileTransforms(t.transform ?? [], { table: target, key: t.key?.map(m.rename), keepBefore: t.route !== undefined });
      if (!r.transform) throw new SynclineError('fatal', 'CONFIG_INVALID', r.problems.map((p) => p.message).join('; '));
      m.transform = r.transform;
    }
    if (t.route) {
      const r = compileRoute(t.route, { table: t.source });
      if (!r.route) throw new SynclineError('fatal', 'CONFIG_INVALID', r.problems.map((p) => p.message).join('; '));
      m.route = r.route;
    }
    const enc = crypto?.encryptedColumns?.(target);
    if (enc && enc.size > 0 && crypto?.openRow && crypto.sealValue) {
      const c = crypto as Required<RowHashers>;
      m.encrypted = { columns: enc, open: (values, key) => c.openRow(target, values, key), seal: (column, value, key) => c.sealValue(target, column, value, key) };
    }
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
  for (const k of Object.keys(row)) setColumn(out, rename(k), row[k]!);
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
