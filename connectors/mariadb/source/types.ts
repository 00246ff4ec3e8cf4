/**
 * MariaDB/MySQL column types → the pipeline's ColumnType (src/core/types.ts), and the values the
 * snapshot (mysql2 text protocol) and the binlog reader (@vlasky/zongji) hand over → canonical values.
 * Both paths go through `canonicalValue`, so one row gives the same canonical values whichever way
 * it is read (connectors/mariadb/source/types.int.test.ts checks every type both ways).
 *
 * Mapping (pgType: the PostgreSQL-equivalent SQL type a PostgreSQL target auto-creates):
 *   TINYINT, SMALLINT, YEAR          int      smallint          (TINYINT/SMALLINT UNSIGNED: smallint / integer)
 *   MEDIUMINT [UNSIGNED], INT        int      integer
 *   INT UNSIGNED                     long     bigint            (up to 4294967295)
 *   BIGINT                           long     bigint
 *   BIGINT UNSIGNED                  decimal  numeric(20,0)     (up to 18446744073709551615: beyond int8; exact string)
 *   DECIMAL(p,s)                     decimal  numeric(p,s)      exact string as the server prints it ('12.50')
 *   FLOAT / DOUBLE                   float / double: real / double precision (the snapshot reads FLOAT as
 *                                    CAST(... AS DOUBLE): MariaDB prints FLOAT with 6 digits, which is not the stored value)
 *   CHAR(n), VARCHAR(n)              string   varchar(n)        (MariaDB strips CHAR padding, so no char(n))
 *   TINYTEXT … LONGTEXT              string   text              (utf8mb4 and any other character set, decoded)
 *   JSON (MariaDB: LONGTEXT with a json_valid CHECK)  json  json   (the text exactly as stored)
 *   BINARY(n), VARBINARY, BLOBs      bytes    bytea             (BINARY(n) with its zero padding)
 *   BIT(n)                           bytes    bytea             big-endian, ceil(n/8) bytes (b'1010101010' → 02 aa):
 *                                    bytes, not long, so BIT(64) needs no unsigned 64-bit type
 *   DATE                             date     date              'YYYY-MM-DD'
 *   TIME(n)                          text     interval          the server's text, '-838:59:59.000000' … '838:59:59.000000'
 *   DATETIME(n)                      timestamp timestamp        'YYYY-MM-DDTHH:MM:SS.ffffff' (no zone)
 *   TIMESTAMP(n)                     timestamptz timestamptz    UTC '…Z': the snapshot session runs with
 *                                    time_zone '+00:00'; the binlog holds seconds since the epoch, printed in UTC
 *   ENUM                             enum     text              the label
 *   SET                              string   text              'a,c' as the server prints it
 *   UUID (10.7+)                     uuid     uuid              INET4/INET6: text, inet
 * Zero dates ('0000-00-00', '2024-00-10', TIMESTAMP 0) have no value in any of these forms: they
 * become null (as Debezium's MySQL connector does), with a warning of the source.
 * Spatial types are refused at start (MARIADB_TYPE_UNSUPPORTED naming the column).
 */
import type { ColumnType } from '../../../src/core/types.js';
import { canonicalTimestamp } from '../../../src/core/types.js';
import type { Value } from '../../../src/core/envelope.js';
import { fatal } from '../../../src/core/errors.js';

/** One row of information_schema.COLUMNS (the fields used), plus whether a json_valid CHECK covers it. */
export interface MariadbColumnInfo {
  name: string;
  dataType: string; // DATA_TYPE, lower case: 'int', 'varchar', 'longtext', …
  columnType: string; // COLUMN_TYPE: 'int(10) unsigned', 'decimal(12,2)', "enum('a','b')", …
  precision: number | null; // NUMERIC_PRECISION
  scale: number | null; // NUMERIC_SCALE
  charLength: number | null; // CHARACTER_MAXIMUM_LENGTH
  json: boolean;
}

export interface MariadbColumnType extends ColumnType {
  /** The source's type as COLUMN_TYPE says it (for messages and the snapshot's SELECT). */
  sourceType: string;
}

export function columnTypeOf(table: string, c: MariadbColumnInfo): MariadbColumnType {
  const unsigned = /\bunsigned\b/i.test(c.columnType);
  const t = (kind: ColumnType['kind'], pgType: string, extra: Partial<ColumnType> = {}): MariadbColumnType => ({ kind, pgType, ...extra, sourceType: c.columnType });
  switch (c.dataType.toLowerCase()) {
    case 'tinyint':
      return t('int', 'smallint');
    case 'smallint':
      return t('int', unsigned ? 'integer' : 'smallint');
    case 'mediumint':
      return t('int', 'integer');
    case 'int':
    case 'integer':
      return unsigned ? t('long', 'bigint') : t('int', 'integer');
    case 'bigint':
      return unsigned ? t('decimal', 'numeric(20,0)', { precision: 20, scale: 0 }) : t('long', 'bigint');
    case 'decimal':
    case 'numeric': {
      const precision = c.precision ?? 10;
      const scale = c.scale ?? 0;
      return t('decimal', `numeric(${precision},${scale})`, { precision, scale });
    }
    case 'float':
      return t('float', 'real');
    case 'double':
    case 'real':
      return t('double', 'double precision');
    case 'char':
    case 'varchar':
      return t('string', c.charLength ? `varchar(${c.charLength})` : 'text');
    case 'tinytext':
    case 'text':
    case 'mediumtext':
    case 'longtext':
      return c.json ? t('json', 'json') : t('string', 'text');
    case 'json':
      return t('json', 'json');
    case 'binary':
    case 'varbinary':
    case 'tinyblob':
    case 'blob':
    case 'mediumblob':
    case 'longblob':
    case 'bit':
      return t('bytes', 'bytea');
    case 'date':
      return t('date', 'date');
    case 'time':
      return t('text', 'interval');
    case 'datetime':
      return t('timestamp', 'timestamp');
    case 'timestamp':
      return t('timestamptz', 'timestamptz');
    case 'year':
      return t('int', 'smallint');
    case 'enum':
      return t('enum', 'text');
    case 'set':
      return t('string', 'text');
    case 'uuid':
      return t('uuid', 'uuid');
    case 'inet4':
    case 'inet6':
      return t('text', 'inet');
    default:
      throw fatal('MARIADB_TYPE_UNSUPPORTED', `table ${table}: column ${c.name} has type ${c.columnType}, which the MariaDB source cannot carry (exclude the column from the pipeline)`);
  }
}

/** A DATE/DATETIME/TIMESTAMP value with a zero month or day ('0000-00-00 00:00:00'): no calendar date. */
export function isZeroDate(s: string): boolean {
  return /^\d{4}-00-|^\d{4}-\d{2}-00/.test(s);
}

/**
 * The canonical value of one column value as mysql2 (snapshot: dateStrings, bigNumberStrings) or
 * zongji (binlog: dateStrings, timezone 'Z') returns it. `onZeroDate` is told of a zero date made null.
 */
export function canonicalValue(v: unknown, t: ColumnType, onZeroDate?: () => void): Value {
  if (v === null || v === undefined) return null;
  switch (t.kind) {
    case 'int':
      return typeof v === 'number' ? v : Number(v);
    case 'long':
      return typeof v === 'bigint' ? v : BigInt(v as string | number);
    case 'decimal':
      return String(v);
    case 'float':
      return Math.fround(Number(v));
    case 'double':
      return Number(v);
    case 'bytes':
      return Buffer.isBuffer(v) ? v : Buffer.from(String(v), 'utf8');
    case 'uuid':
      return String(v).toLowerCase();
    case 'date':
    case 'timestamp':
    case 'timestamptz': {
      const s = String(v);
      if (isZeroDate(s)) {
        onZeroDate?.();
        return null;
      }
      if (t.kind === 'date') return s;
      return canonicalTimestamp(t.kind === 'timestamptz' ? s + 'Z' : s, t.kind === 'timestamptz');
    }
    default:
      // string, text (TIME), enum, json: the text.
      return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
  }
}

/** The snapshot's SELECT expression of a column (FLOAT as DOUBLE: its stored value, not 6 printed digits). */
export function selectExpression(name: string, t: ColumnType): string {
  const q = quoteId(name);
  return t.kind === 'float' ? `CAST(${q} AS DOUBLE) AS ${q}` : q;
}

export function quoteId(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}
