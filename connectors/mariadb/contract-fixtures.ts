/**
 * The MariaDB sink's contract fixture (test/contract/fixtures.ts SinkFixture): a MariaDB database of
 * its own per run (`syncline_t_<id>_dst`); rows are read back with information_schema's types and the
 * sink's own converter (./types.ts fromMaria), so "canonical" means what the sink's readRows returns.
 * `mariadbSink` is fed by the PostgreSQL source (its types are PostgreSQL's); `mariadbSinkFedByMariadb`
 * is the same sink with the MariaDB source's types (connectors/mariadb/source/contract-fixtures.ts).
 */
import mysql from 'mysql2/promise';
import type { Row } from '../../src/core/envelope.js';
import type { SinkFixture, SinkTarget, TableDef, TypeCase } from '../../test/contract/fixtures.js';
import { TABLE_OPTIONS, quoteIdent } from './ddl.js';
import { fromMaria, inferKind, pgTypeOfComment, readTypeOf, type ReadType } from './types.js';
import { MARIADB_SOURCE_TYPES } from './source/contract-fixtures.js';

export const MARIA = { host: '127.0.0.1', port: 3306, user: 'root' };

/**
 * PostgreSQL types with edge values MariaDB holds (NaN and infinities it does not: README, lossy
 * cases) and their canonical read-back. `targetType` is the column of the hand-made types table; where
 * one MariaDB type serves several source types, its comment names the source type, as autoCreate does.
 */
const TYPES: TypeCase[] = [
  { column: 'c_small', sourceType: 'smallint', targetType: 'SMALLINT', samples: [{ literal: '-32768', expect: -32768 }, { literal: '32767', expect: 32767 }] },
  { column: 'c_int', sourceType: 'integer', targetType: 'INT', samples: [{ literal: '-2147483648', expect: -2147483648 }, { literal: '2147483647', expect: 2147483647 }] },
  { column: 'c_big', sourceType: 'bigint', targetType: 'BIGINT', samples: [{ literal: '-9223372036854775808', expect: -9223372036854775808n }, { literal: '9223372036854775807', expect: 9223372036854775807n }] },
  { column: 'c_num', sourceType: 'numeric(20,6)', targetType: 'DECIMAL(20,6)', samples: [{ literal: '-99999999999999.999999', expect: '-99999999999999.999999' }, { literal: '0.000001', expect: '0.000001' }] },
  { column: 'c_num38', sourceType: 'numeric(38,0)', targetType: 'DECIMAL(38,0)', samples: [{ literal: '-99999999999999999999999999999999999999', expect: '-99999999999999999999999999999999999999' }, { literal: '0', expect: '0' }] },
  { column: 'c_numfree', sourceType: 'numeric', targetType: "DECIMAL(65,30) COMMENT 'pg:numeric'", samples: [{ literal: '123456789012345678901234567890.5', expect: '123456789012345678901234567890.5' }, { literal: '-0.000001', expect: '-0.000001' }] },
  { column: 'c_real', sourceType: 'real', targetType: 'FLOAT', samples: [{ literal: '-3.4028235e38', expect: Math.fround(-3.4028235e38) }, { literal: '1.1', expect: Math.fround(1.1) }] },
  { column: 'c_double', sourceType: 'double precision', targetType: 'DOUBLE', samples: [{ literal: '-1.7976931348623157e308', expect: -1.7976931348623157e308 }, { literal: '5e-324', expect: 5e-324 }] },
  { column: 'c_text', sourceType: 'text', targetType: 'LONGTEXT', samples: [{ literal: `'unicode ✓ 😀 "quotes" and ''single'' \\ back'`, expect: `unicode ✓ 😀 "quotes" and 'single' \\ back` }, { literal: "''", expect: '' }] },
  { column: 'c_varchar', sourceType: 'varchar(10)', targetType: 'VARCHAR(10)', samples: [{ literal: "'ten chars!'", expect: 'ten chars!' }, { literal: "'😀'", expect: '😀' }] },
  { column: 'c_bool', sourceType: 'boolean', targetType: 'BOOLEAN', samples: [{ literal: 'true', expect: true }, { literal: 'false', expect: false }] },
  { column: 'c_date', sourceType: 'date', targetType: 'DATE', samples: [{ literal: "'1000-01-01'", expect: '1000-01-01' }, { literal: "'9999-12-31'", expect: '9999-12-31' }] },
  { column: 'c_time', sourceType: 'time(6)', targetType: 'TIME(6)', samples: [{ literal: "'23:59:59.999999'", expect: '23:59:59.999999' }, { literal: "'00:00:00'", expect: '00:00:00' }] },
  { column: 'c_ts', sourceType: 'timestamp', targetType: 'DATETIME(6)', samples: [{ literal: "'1999-12-31 23:59:59.999999'", expect: '1999-12-31T23:59:59.999999' }, { literal: "'1970-01-01 00:00:00.000001'", expect: '1970-01-01T00:00:00.000001' }] },
  { column: 'c_tstz', sourceType: 'timestamptz', targetType: "DATETIME(6) COMMENT 'pg:timestamptz'", samples: [{ literal: "'2024-02-29 12:34:56.789012+05:30'", expect: '2024-02-29T07:04:56.789012Z' }, { literal: "'2038-01-19 03:14:08.000001+00'", expect: '2038-01-19T03:14:08.000001Z' }] },
  { column: 'c_uuid', sourceType: 'uuid', targetType: "CHAR(36) CHARACTER SET ascii COMMENT 'pg:uuid'", samples: [{ literal: "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", expect: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' }, { literal: "'55b1927f-dafe-f39c-48e5-b73b5d61ea60'", expect: '55b1927f-dafe-f39c-48e5-b73b5d61ea60' }] },
  { column: 'c_jsonb', sourceType: 'jsonb', targetType: 'JSON', samples: [{ literal: `'{"b": 1, "a": {"c": null, "e": "😀"}}'`, expect: '{"a": {"c": null, "e": "😀"}, "b": 1}' }, { literal: "'[]'", expect: '[]' }] },
  { column: 'c_bytea', sourceType: 'bytea', targetType: 'LONGBLOB', samples: [{ literal: "'\\x00ff00deadbeef27'", expect: Buffer.from('00ff00deadbeef27', 'hex') }, { literal: "'\\x'", expect: Buffer.alloc(0) }] },
  { column: 'c_int_arr', sourceType: 'integer[]', targetType: "JSON COMMENT 'pg:int4[]'", samples: [{ literal: "'{1,NULL,-3}'", expect: [1, null, -3] }, { literal: "'{}'", expect: [] }] },
  { column: 'c_big_arr', sourceType: 'bigint[]', targetType: "JSON COMMENT 'pg:int8[]'", samples: [{ literal: "'{-9223372036854775808,9223372036854775807}'", expect: [-9223372036854775808n, 9223372036854775807n] }, { literal: "'{NULL}'", expect: [null] }] },
  { column: 'c_text_arr', sourceType: 'text[]', targetType: "JSON COMMENT 'pg:text[]'", samples: [{ literal: `'{"a,b","c\\"d",NULL,"",😀}'`, expect: ['a,b', 'c"d', null, '', '😀'] }, { literal: "'{}'", expect: [] }] },
  { column: 'c_interval', sourceType: 'interval', targetType: 'LONGTEXT', samples: [{ literal: "'1 year 2 mons 3 days 04:05:06.789'", expect: '1 year 2 mons 3 days 04:05:06.789' }, { literal: "'-1 days'", expect: '-1 days' }] },
];

function ddl(database: string, t: TableDef): string {
  const cols = t.columns.map(([n, ty]) => `${quoteIdent(n)} ${ty}`);
  cols.push(`PRIMARY KEY (${t.key.map(quoteIdent).join(', ')})`);
  for (const c of t.constraints ?? []) cols.push(c);
  return `CREATE TABLE ${quoteIdent(database)}.${quoteIdent(t.name)} (${cols.join(', ')}) ${TABLE_OPTIONS}`;
}

async function withConn<T>(fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
  // Raw bytes, as the sink reads them (./sink.ts); fromMaria converts.
  const c = await mysql.createConnection({ ...MARIA, typeCast: ((f: { buffer(): Buffer | null }) => f.buffer()) as unknown as mysql.ConnectionOptions['typeCast'] });
  try {
    await c.query("SET time_zone = '+00:00'");
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Every row of a table as canonical values, sorted by key; [] when the table does not exist. */
export async function readMariadbTarget(database: string, table: string, key: string[]): Promise<Row[]> {
  return withConn(async (c) => {
    const s = (b: unknown) => (Buffer.isBuffer(b) ? b.toString('utf8') : '');
    const [cols] = await c.query(`SELECT COLUMN_NAME AS n, DATA_TYPE AS d, COLUMN_TYPE AS t, COLUMN_COMMENT AS m FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, [database, table]);
    const info = (cols as Record<string, Buffer>[]).map((r) => {
      const pg = pgTypeOfComment(s(r.m));
      return { name: s(r.n), float: s(r.d) === 'float', read: (pg !== undefined ? readTypeOf(pg) : inferKind(s(r.d), s(r.t))) as ReadType };
    });
    if (info.length === 0) return [];
    const select = info.map((i) => (i.float ? `CAST(${quoteIdent(i.name)} AS DOUBLE) AS ${quoteIdent(i.name)}` : quoteIdent(i.name))).join(', ');
    const [rows] = await c.query(`SELECT ${select} FROM ${quoteIdent(database)}.${quoteIdent(table)} ORDER BY ${key.map(quoteIdent).join(', ')}`);
    return (rows as Record<string, Buffer | null>[]).map((raw) => Object.fromEntries(info.map((i) => [i.name, fromMaria(raw[i.name] ?? null, i.read)])) as Row);
  });
}

export const mariadbSink: SinkFixture = {
  name: 'mariadb',
  basicTypes: { id: 'BIGINT', int: 'INT', text: 'LONGTEXT' },
  types: TYPES,
  rejected: { sourceType: 'text', targetType: 'VARCHAR(5)', good: "'fits'", bad: "'far too long for five'", code: 'MARIADB_1406', why: 'data too long for VARCHAR(5)' },
  autoCreate: true,
  async createTarget(id) {
    const database = `syncline_t_${id}_dst`;
    await withConn((c) => c.query(`CREATE DATABASE ${quoteIdent(database)}`));
    const target: SinkTarget = {
      database,
      config: () => ({ type: 'mariadb', connection: { ...MARIA, database }, autoCreate: true }),
      qualified: (table) => `${database}.${table}`,
      createTable: async (t) => void (await withConn((c) => c.query(ddl(database, t)))),
      readAll: (table, key) => readMariadbTarget(database, table, key),
      dropTable: async (table) => void (await withConn((c) => c.query(`DROP TABLE IF EXISTS ${quoteIdent(database)}.${quoteIdent(table)}`))),
      drop: async () => void (await withConn((c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)}`))),
    };
    return target;
  },
};


/**
 * Target column types for the MariaDB source's type cases: the source's own MariaDB type (a
 * MariaDB → MariaDB copy made by hand), with the source type in a `pg:` comment where the sink would
 * read that MariaDB type in another canonical form than the source carries (BIGINT UNSIGNED is
 * carried as an exact decimal string, BIT as bytes).
 */
const SAME_TYPE_OVERRIDES: Record<string, string> = {
  c_biu: "BIGINT UNSIGNED COMMENT 'pg:numeric(20,0)'",
  c_bit1: "BIT(1) COMMENT 'pg:bytea'",
  c_bit10: "BIT(10) COMMENT 'pg:bytea'",
  c_bit64: "BIT(64) COMMENT 'pg:bytea'",
};

/** The MariaDB sink fed by the MariaDB source: the same sink, the MariaDB source's types and literals. */
export const mariadbSinkFedByMariadb: SinkFixture = {
  ...mariadbSink,
  types: MARIADB_SOURCE_TYPES.map((t) => ({ ...t, targetType: SAME_TYPE_OVERRIDES[t.column] ?? t.sourceType })),
  // The same refusal; the literals are the same in MariaDB's SQL.
  rejected: { ...mariadbSink.rejected, sourceType: 'TEXT' },
};
