/**
 * A record read from a file → the table's row, its key text and content hash, or why it cannot be
 * one (pure; ./source.test.ts). Values are converted by the declared PostgreSQL type names as the
 * Kafka topic and RabbitMQ sources do (connectors/kafka-topic/envelope.ts columnValue); CSV fields are
 * text, so a boolean column also takes true/false/t/f/1/0/yes/no there.
 */
import { createHash } from 'node:crypto';
import { setColumn, type Row } from '../../../src/core/envelope.js';
import { errorMessage, poison, type SynclineError } from '../../../src/core/errors.js';
import { rowHash } from '../../../src/core/hash.js';
import { stringifyTagged } from '../../../src/core/tagged-json.js';
import type { SourceColumn } from '../../../src/capture/source.js';
import { columnValue } from '../../kafka-topic/envelope.js';
import type { FileRecord } from './read.js';

export type Converted = { ok: true; row: Row; kt: string; hash: string } | { ok: false; kt: string; mark: string; error: SynclineError };

const BOOL_TEXT: Record<string, boolean> = { true: true, t: true, '1': true, yes: true, y: true, false: false, f: false, '0': false, no: false, n: false };

/** `where` is the record's place, `<file>:<line>`; every error names it. */
export function convertRecord(rec: FileRecord, columns: SourceColumn[], key: string[], csv: boolean, where: string): Converted {
  const mark = 'x' + createHash('sha1').update(rec.raw).digest('hex');
  if ('bad' in rec) return { ok: false, kt: '!' + mark, mark, error: poison('FILE_RECORD_INVALID', `${where}: ${rec.bad}`) };
  const row: Row = {};
  let error: SynclineError | null = null;
  for (const col of columns) {
    let v = rec.fields[col.name];
    if (csv && col.type.kind === 'bool' && typeof v === 'string') v = BOOL_TEXT[v.trim().toLowerCase()] ?? v;
    try {
      setColumn(row, col.name, columnValue(v, col, undefined, 'micros', 'file'));
    } catch (err) {
      error ??= poison('FILE_VALUE_TYPE', `${where}: ${errorMessage(err)}`);
      setColumn(row, col.name, null);
    }
  }
  const keyVals = key.map((k) => row[k]);
  const missing = key.filter((k, i) => keyVals[i] === null || keyVals[i] === undefined);
  if (missing.length && !error) error = poison('FILE_KEY_MISSING', `${where}: no value for key column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  if (error) return { ok: false, kt: missing.length ? '!' + mark : stringifyTagged(keyVals), mark, error };
  return { ok: true, row, kt: stringifyTagged(keyVals), hash: rowHash(row) };
}
