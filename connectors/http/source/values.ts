/**
 * JSON values of an API's records → the pipeline's canonical values (src/core/types.ts), by the
 * column types the config declares (pure; ./source.test.ts). A value that does not fit its column
 * throws a poison error naming the column; the source dead-letters the record (./http-source.ts).
 */
import type { Value } from '../../../src/core/envelope.js';
import { errorMessage, poison } from '../../../src/core/errors.js';
import { canonicalTimestamp, type ColumnType } from '../../../src/core/types.js';
import type { HTTP_COLUMN_TYPES } from './spec.js';
import { stringifyJsonExact } from '../../../src/core/json-exact.js';

export type HttpColumnType = (typeof HTTP_COLUMN_TYPES)[number];

export const columnType = (t: HttpColumnType): ColumnType => {
  switch (t) {
    case 'string': return { kind: 'string', pgType: 'text' };
    case 'int': return { kind: 'int', pgType: 'int4' };
    case 'long': return { kind: 'long', pgType: 'int8' };
    case 'double': return { kind: 'double', pgType: 'float8' };
    case 'decimal': return { kind: 'vdecimal', pgType: 'numeric' };
    case 'bool': return { kind: 'bool', pgType: 'bool' };
    case 'timestamptz': return { kind: 'timestamptz', pgType: 'timestamptz' };
    case 'date': return { kind: 'date', pgType: 'date' };
    case 'json': return { kind: 'json', pgType: 'jsonb' };
  }
};

const DECIMAL = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;
const INTEGER = /^-?\d+$/;

const wrong = (col: string, t: HttpColumnType, v: unknown, why = ''): Error =>
  poison('HTTP_VALUE_TYPE', `column ${col} (${t}): ${stringifyJsonExact(v)?.slice(0, 100) ?? String(v)} is not ${t === 'int' || t === 'long' ? 'an integer' : `a ${t}`} value${why ? ` (${why})` : ''}`);

/** A record's value (undefined: missing) → the canonical value of a column of type `t`. */
export function canonicalValue(col: string, t: HttpColumnType, v: unknown): Value {
  if (v === undefined || v === null) return null;
  switch (t) {
    case 'string':
      if (typeof v === 'string') return v;
      if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
      throw wrong(col, t, v);
    case 'int':
      if (typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) return v;
      if (typeof v === 'string' && INTEGER.test(v) && Number(v) >= -2147483648 && Number(v) <= 2147483647) return Number(v);
      throw wrong(col, t, v);
    case 'long': {
      let b: bigint | undefined;
      if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
      else if (typeof v === 'bigint') b = v;
      else if (typeof v === 'string' && INTEGER.test(v)) b = BigInt(v);
      if (b === undefined || b < -(2n ** 63n) || b >= 2n ** 63n) throw wrong(col, t, v);
      return b;
    }
    case 'double':
      if (typeof v === 'number') return v;
      if (typeof v === 'bigint') return Number(v);
      if (typeof v === 'string' && DECIMAL.test(v)) return Number(v);
      throw wrong(col, t, v);
    case 'decimal':
      if (typeof v === 'number' && Number.isFinite(v)) return String(v);
      if (typeof v === 'bigint') return String(v);
      if (typeof v === 'string' && DECIMAL.test(v)) return v;
      throw wrong(col, t, v);
    case 'bool':
      if (typeof v === 'boolean') return v;
      throw wrong(col, t, v);
    case 'timestamptz':
      if (typeof v !== 'string') throw wrong(col, t, v);
      try {
        return canonicalTimestamp(v, true);
      } catch (err) {
        throw wrong(col, t, v, errorMessage(err));
      }
    case 'date':
      if (typeof v === 'string' && /^\d{4}-\d\d-\d\d$/.test(v) && !Number.isNaN(Date.parse(v + 'T00:00:00Z')) && new Date(v + 'T00:00:00Z').toISOString().startsWith(v)) return v;
      throw wrong(col, t, v);
    case 'json':
      return stringifyJsonExact(v);
  }
}

/** Milliseconds since the epoch of a canonical timestamptz ('2026-12-05T10:00:00.123456Z'), rounded down. */
export function timestampMs(canonical: string): number {
  return Date.parse(canonical.slice(0, 23) + 'Z');
}

/** The incremental parameter's value: the watermark minus the overlap, in the configured format. */
export function sinceValue(mode: 'timestamp' | 'version', watermark: string, overlap: number, format: 'iso' | 'epoch-ms' | 'epoch-s'): string {
  if (mode === 'version') return (BigInt(watermark) - BigInt(overlap)).toString();
  const ms = timestampMs(watermark) - overlap;
  if (format === 'epoch-ms') return String(ms);
  if (format === 'epoch-s') return String(Math.floor(ms / 1000));
  return new Date(ms).toISOString();
}

/** Whether watermark `a` is below `b` (canonical timestamptz texts or long texts). */
export function below(mode: 'timestamp' | 'version', a: string, b: string): boolean {
  return mode === 'version' ? BigInt(a) < BigInt(b) : a < b;
}
