/**
 * Why capture cannot carry a change, told as a dead letter must tell it: the table, the key and the
 * column, and the reason in the column type's own words (not avsc's `invalid ["null","bytes"]: …`).
 * Pure, error path only: the key and the rows are encoded field by field to find the column.
 */
import type avsc from 'avsc';
import type { ChangeEvent, Row, Value } from '../core/envelope.js';
import { encodeFailure, envelopeToAvro, isSpecialDecimal } from '../core/avro.js';
import { errorMessage, poison, SynclineError } from '../core/errors.js';
import { keyStringOf } from '../sink/sink.js';

const OP_NAMES: Record<string, string> = { c: 'insert', u: 'update', d: 'delete', r: 'snapshot row', t: 'truncate', m: 'snapshot end' };

/** A NaN/±Infinity of a decimal column, or an array holding one. */
export function holdsSpecial(v: Value | undefined): boolean {
  return isSpecialDecimal(v) || (Array.isArray(v) && v.some(isSpecialDecimal));
}

/**
 * The poison error of a change that `keyType`/`valueType` refused with `err`: code of the underlying
 * reason (AVRO_DECIMAL_NAN, AVRO_MULTIDIM_ARRAY, …; AVRO_ENCODE when none), `column` set when one
 * column is to blame, message `cannot encode the <op> of <table> key <key> column <c>: <why>`.
 */
export function encodeRefusal(o: { source: string; key: Row; event: ChangeEvent; err: unknown; keyType?: avsc.Type; valueType?: avsc.Type }): SynclineError {
  let column = o.err instanceof SynclineError ? o.err.column : undefined;
  let inKey = false;
  let cause = o.err;
  let detail = '';
  if (column === undefined) {
    // The key's columns first (its failure stops the change before the rows), then the rows'.
    const inKeyFailure = o.keyType ? encodeFailure(o.keyType, o.key) : undefined;
    let f = inKeyFailure;
    if (!f && o.valueType) {
      try {
        f = encodeFailure(o.valueType, envelopeToAvro(o.event, true));
      } catch (err) {
        f = { path: [], error: err };
      }
    }
    if (f) {
      inKey = f === inKeyFailure && f.path.length > 0;
      const inRow = f.path[0] === 'before' || f.path[0] === 'after';
      column = inKey ? f.path[0] : inRow ? f.path[1] : undefined;
      const rest = f.path.slice(inKey ? 1 : 2).join('');
      if (rest) detail = ` element ${rest}`;
      cause = f.error;
    }
  }
  const code = cause instanceof SynclineError ? cause.code : 'AVRO_ENCODE';
  // rowToAvro's message starts with the table and the column, which this one names already.
  let why = errorMessage(cause);
  for (const prefix of [`${o.source}: `, `column "${column}" `]) if (why.startsWith(prefix)) why = why.slice(prefix.length);
  const hint = inKey && holdsSpecial(o.key[column!]) ? ' (a key column cannot carry NaN/Infinity: the key schema keeps the plain decimal)' : '';
  const where = `${o.source} key ${keyStringOf(Object.values(o.key))}${column !== undefined ? ` column ${column}${detail}` : ''}`;
  const error = poison(code, `cannot encode the ${OP_NAMES[o.event.op] ?? o.event.op} of ${where}: ${why}${hint}`, o.err);
  if (column !== undefined) error.column = column;
  return error;
}

/** Bytes a value takes in a message (text as UTF-8), roughly: for naming the largest columns. */
function valueBytes(v: Value | undefined): number {
  if (v === null || v === undefined) return 0;
  if (Buffer.isBuffer(v)) return v.length;
  if (typeof v === 'string') return Buffer.byteLength(v);
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + valueBytes(x), 0);
  return 8;
}

/**
 * The poison error of a change whose message is larger than its change topic takes (the topic's
 * max.message.bytes): Kafka would refuse it on every attempt. Names the table, the key, the size,
 * the limit and the largest columns (`column` set to the largest), and what to do.
 */
export function oversizeRefusal(o: { source: string; topic: string; key: Row; event: ChangeEvent; bytes: number; limit: number }): SynclineError {
  const row: Row = o.event.after ?? o.event.before ?? {};
  const largest = Object.keys(row).map((c) => [c, valueBytes(row[c])] as const).sort((a, b) => b[1] - a[1]).slice(0, 3).filter(([, n]) => n > 0);
  const error = poison(
    'KAFKA_MESSAGE_TOO_LARGE',
    `cannot produce the ${OP_NAMES[o.event.op] ?? o.event.op} of ${o.source} key ${keyStringOf(Object.values(o.key))}: its message is ${o.bytes} bytes` +
      `${largest.length > 0 ? ` (largest columns: ${largest.map(([c, n]) => `${c} ${n} bytes`).join(', ')})` : ''}, over the max.message.bytes of its change topic ${o.topic} (${o.limit}). ` +
      `The row is not in this dead letter (it would not fit either). Raise the topic's max.message.bytes (and, if smaller, the brokers' replica.fetch.max.bytes), ` +
      `re-emit the row from the source (an UPDATE of the row), then discard this letter`,
  );
  if (largest[0]) error.column = largest[0][0];
  return error;
}
