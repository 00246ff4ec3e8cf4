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
