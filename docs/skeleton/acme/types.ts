/**
 * Acme's column types onto the pipeline's ColumnType, and its values onto the canonical forms of
 * src/core/types.ts (what the Avro schemas carry and every sink writes). The source uses both; the
 * sink's readRows returns canonical values too. Compare connectors/postgres/pgtypes.ts.
 */
import type { Value } from '../../../src/core/envelope.js';
import { poison } from '../../../src/core/errors.js';
import { canonicalTimestamp, type ColumnType } from '../../../src/core/types.js';

/** `pgType`: the type as a PostgreSQL CREATE TABLE spells it (targets that create tables map from it). */
export function columnType(acmeType: string): ColumnType {
  const decimal = /^decimal\((\d+),(\d+)\)$/.exec(acmeType);
  if (decimal) return { kind: 'decimal', pgType: `numeric(${decimal[1]},${decimal[2]})`, precision: Number(decimal[1]), scale: Number(decimal[2]) };
  const varchar = /^varchar\((\d+)\)$/.exec(acmeType);
  if (varchar) return { kind: 'string', pgType: `character varying(${varchar[1]})` };
  switch (acmeType) {
    case 'int32': return { kind: 'int', pgType: 'integer' };
    case 'int64': return { kind: 'long', pgType: 'bigint' };
    case 'float32': return { kind: 'float', pgType: 'real' };
    case 'float64': return { kind: 'double', pgType: 'double precision' };
    case 'string': return { kind: 'string', pgType: 'text' };
    case 'bool': return { kind: 'bool', pgType: 'boolean' };
    case 'date': return { kind: 'date', pgType: 'date' };
    case 'timestamp': return { kind: 'timestamp', pgType: 'timestamp without time zone' };
    case 'timestamptz': return { kind: 'timestamptz', pgType: 'timestamp with time zone' };
    case 'uuid': return { kind: 'uuid', pgType: 'uuid' };
    case 'json': return { kind: 'json', pgType: 'jsonb' };
    case 'bytes': return { kind: 'bytes', pgType: 'bytea' };
    default: return { kind: 'text', pgType: 'text' }; // its text form, kept exactly
  }
}

/** One value as the driver returns it → its canonical form. A value that cannot be is poison (the change is dead-lettered). */
export function canonical(raw: unknown, t: ColumnType): Value {
  if (raw === null || raw === undefined) return null;
  switch (t.kind) {
    case 'int': return Number(raw);
    case 'long': return BigInt(String(raw));
    case 'float': return Math.fround(Number(raw));
    case 'double': return Number(raw);
    case 'bool': return raw === true || raw === 'true';
    case 'timestamp': return canonicalTimestamp(String(raw), false);
    case 'timestamptz': return canonicalTimestamp(String(raw), true);
    case 'uuid': return String(raw).toLowerCase();
    case 'bytes':
      if (Buffer.isBuffer(raw)) return raw;
      throw poison('ACME_BAD_VALUE', `expected bytes, got ${typeof raw}`);
    default: return String(raw); // decimal as printed, string, date 'YYYY-MM-DD', json as printed, text
  }
}
