/**
 * What a RabbitMQ message means, pure (no I/O): a message body → the change it stands for, every
 * column converted to syncline's canonical value of its configured type (src/core/types.ts), or a
 * poison error naming what is wrong. ./source.ts does the consuming, the hand-off and the acks.
 *
 * Two formats (source.format):
 *  - syncline: the body the RabbitMQ target publishes (../message.ts, format 1), tagged JSON
 *    (src/core/tagged-json.ts: {"$n"} bigints, {"$b"} bytes, {"$f"} non-finite floats):
 *      {"format":1,"op":"upsert","table":"public.items","key":{"id":{"$n":"7"}},
 *       "values":{"id":{"$n":"7"},"name":"pen"},"keep":[],"position":"00000000016b3748:00000002","sourceTsMs":1795608000123}
 *    op upsert → 'u' with `values` as the row; delete → 'd' with `key` as the before row; truncate → 't'.
 *    `position` ('<16 hex>:<8 hex>', the upstream change's commit position and index) becomes the
 *    change's own position: the commit position 'X/Y' and idx, so eventPosition() gives back the
 *    same string and a message delivered twice has the same position twice (the applier's version
 *    check makes the second a no-op).
 *  - row: the body is the row itself, a JSON object (an upsert); the AMQP `type` property `delete`
 *    makes it the delete of the row of its key columns. No position: the source numbers it.
 */
import type { Row } from '../../../src/core/envelope.js';
import { bigIntToPosition, setColumn } from '../../../src/core/envelope.js';
import { poison } from '../../../src/core/errors.js';
import { canonicalTableName } from '../../../src/core/names.js';
import { parseTagged } from '../../../src/core/tagged-json.js';
import type { SourceTable } from '../../../src/capture/source.js';
import { columnValue } from '../../kafka-topic/envelope.js';

export interface Decoded {
  /** The configured table's canonical name. */
  table: string;
  op: 'u' | 'd' | 't';
  before: Row | null;
  after: Row | null;
  unchangedToast: string[];
  /** The message's own position (format syncline). */
  position?: { commitPos: string; idx: number };
  tsMs: number | null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = typeof v === 'bigint' ? v.toString() : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s;
}

function json(body: Buffer, tagged: boolean): unknown {
  const text = body.toString('utf8');
  try {
    return tagged ? parseTagged(text) : JSON.parse(text);
  } catch (err) {
    throw poison('RABBITMQ_NOT_JSON', `the message body is not JSON: ${(err as Error).message}`);
  }
}

/** '<16 hex>:<8 hex>' → the commit position 'X/Y' and the index (what core/envelope.ts position() turns back into the same string). */
export function positionParts(p: unknown): { commitPos: string; idx: number } {
  const m = typeof p === 'string' ? /^([0-9a-f]{16}):([0-9a-f]{8})$/.exec(p) : null;
  if (!m) throw poison('RABBITMQ_MESSAGE_INVALID', `position ${describe(p)} is not a syncline position (16 hex digits ':' 8 hex digits)`);
  return { commitPos: bigIntToPosition(BigInt('0x' + m[1])), idx: parseInt(m[2]!, 16) };
}

/** Only the configured columns, each converted; absent columns stay absent. */
function rowOf(t: SourceTable, v: unknown, where: string, only?: string[]): Row {
  if (!isObject(v)) throw poison('RABBITMQ_MESSAGE_INVALID', `the ${where} is not an object: ${describe(v)}`);
  const row: Row = {};
  for (const col of t.columns) {
    if (only && !only.includes(col.name)) continue;
    if (!Object.hasOwn(v, col.name)) continue;
    setColumn(row, col.name, columnValue(v[col.name], col, undefined, 'micros', where));
  }
  return row;
}

function checkKey(t: SourceTable, row: Row, where: string): Row {
  const missing = t.key.filter((k) => row[k] === null || row[k] === undefined);
  if (missing.length > 0) throw poison('RECORD_KEY_MISSING', `the ${where} has no value for key column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${t.schema}.${t.table}`);
  return row;
}

/** A body the RabbitMQ target published (format 1) → its change; `tables` by canonical name. */
export function decodeSyncline(body: Buffer, tables: Map<string, SourceTable>): Decoded {
  const m = json(body, true);
  if (!isObject(m)) throw poison('RABBITMQ_MESSAGE_INVALID', `a syncline message is an object with format, op, table, key; got ${describe(m)}`);
  if (m.format !== 1) throw poison('RABBITMQ_MESSAGE_INVALID', `message format ${describe(m.format)} is not understood (this version reads format 1)`);
  if (typeof m.table !== 'string') throw poison('RABBITMQ_MESSAGE_INVALID', `the message has no table (got ${describe(m.table)})`);
  let name: string;
  try {
    name = canonicalTableName(m.table);
  } catch {
    throw poison('RABBITMQ_TABLE_UNKNOWN', `table ${describe(m.table)} is not a table name`);
  }
  const t = tables.get(name);
  if (!t) throw poison('RABBITMQ_TABLE_UNKNOWN', `table ${m.table} is not one of the source's tables (${[...tables.keys()].join(', ')})`);
  const position = positionParts(m.position);
  const tsMs = typeof m.sourceTsMs === 'number' && Number.isFinite(m.sourceTsMs) ? m.sourceTsMs : null;
  switch (m.op) {
    case 'upsert': {
      const keep = Array.isArray(m.keep) ? m.keep.filter((c): c is string => typeof c === 'string') : [];
      const after = checkKey(t, { ...rowOf(t, m.key ?? {}, 'key', t.key), ...rowOf(t, m.values, 'values') }, 'message');
      return { table: name, op: 'u', before: null, after, unchangedToast: keep.filter((c) => t.columns.some((x) => x.name === c)), position, tsMs };
    }
    case 'delete':
      return { table: name, op: 'd', before: checkKey(t, rowOf(t, m.key, 'key', t.key), 'key'), after: null, unchangedToast: [], position, tsMs };
    case 'truncate':
      return { table: name, op: 't', before: null, after: null, unchangedToast: [], position, tsMs };
    default:
      throw poison('RABBITMQ_MESSAGE_INVALID', `op ${describe(m.op)} is not upsert, delete or truncate`);
  }
}

/** A plain JSON row of `t` (AMQP type `delete`: the delete of its key's row). */
export function decodeRow(body: Buffer, t: SourceTable, name: string, del: boolean, tsMs: number | null): Decoded {
  const v = json(body, false);
  if (del) return { table: name, op: 'd', before: checkKey(t, rowOf(t, v, 'row', t.key), 'row'), after: null, unchangedToast: [], tsMs };
  return { table: name, op: 'u', before: null, after: checkKey(t, rowOf(t, v, 'row'), 'row'), unchangedToast: [], tsMs };
}
