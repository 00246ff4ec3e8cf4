/**
 * The MariaDB source's contract fixture (test/contract/fixtures.ts SourceFixture): a MariaDB
 * database of its own per run (`syncline_t_<id>_src`, utf8mb4), written through mysql2 sessions,
 * read back exactly as the source's snapshot reads it: information_schema columns (./prepare.ts
 * readColumns, so the same ColumnType), the snapshot's SELECT expressions (FLOAT as DOUBLE), a
 * session in UTC, and ./types.ts canonicalValue. So "canonical" means what the pipeline carries.
 *
 * The type cases' `expect` values are what ./types.ts produces (its header lists the mapping);
 * the TIMESTAMP literals are written by a session in +05:30 (insertLiterals, updateLiterals), to
 * catch a zone shift in either read path.
 */
import mysql from 'mysql2/promise';
import type { Row } from '../../../src/core/envelope.js';
import type { BasicTypes, SourceDb, SourceFixture, SourceSession, TableDef, TypeCase, WriteOp } from '../../../test/contract/fixtures.js';
import { sortByKey } from '../../../test/contract/postgres-fixtures.js';
import { mariadbConnectionSpec } from '../connection.js';
import { mysqlOptions, readColumns } from './prepare.js';
import { canonicalValue, quoteId, selectExpression } from './types.js';

export const MARIA = { host: '127.0.0.1', port: 3306, user: 'root' };

/** Where the contract's writes run: a session whose TIMESTAMP literals mean +05:30 local time. */
const WRITE_ZONE = '+05:30';

async function connect(database?: string): Promise<mysql.Connection> {
  const c = await mysql.createConnection({ ...MARIA, database, charset: 'UTF8MB4_GENERAL_CI', multipleStatements: false });
  c.on('error', () => undefined);
  return c;
}

async function run(database: string | undefined, text: string, params: unknown[] = []): Promise<unknown> {
  const c = await connect(database);
  try {
    const [r] = await c.query(text, params);
    return r;
  } finally {
    await c.end();
  }
}

const q = (database: string, table: string) => `${quoteId(database)}.${quoteId(table)}`;

function ddl(database: string, t: TableDef): string {
  const cols = t.columns.map(([n, ty]) => `${quoteId(n)} ${ty}`);
  cols.push(`PRIMARY KEY (${t.key.map(quoteId).join(', ')})`);
  for (const c of t.constraints ?? []) cols.push(c);
  return `CREATE TABLE ${q(database, t.name)} (${cols.join(', ')}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`;
}

/** Every row of a table as the source's snapshot would emit it (canonical), sorted by key; [] if absent. */
export async function readMariadbSource(database: string, table: string, key: string[]): Promise<Row[]> {
  const conn = await mysql.createConnection(mysqlOptions(mariadbConnectionSpec.parse({ ...MARIA, database })));
  try {
    await conn.query(`SET SESSION time_zone = '+00:00'`);
    const columns = await readColumns(conn, database, table);
    if (!columns) return [];
    const [rows] = await conn.query<mysql.RowDataPacket[]>(`SELECT ${columns.map((c) => selectExpression(c.name, c.type)).join(', ')} FROM ${q(database, table)}`);
    const out = rows.map((raw) => Object.fromEntries(columns.map((c) => [c.name, canonicalValue(raw[c.name], c.type)])) as Row);
    return sortByKey(out, key);
  } finally {
    await conn.end();
  }
}

/** InnoDB may pick a writer as a deadlock victim (duplicate checks lock delete-marked records). */
const RETRY = new Set([1213, 1205]);

class MariaSession implements SourceSession {
  retries = 0;
  constructor(private readonly c: mysql.Connection, private readonly database: string) {}

  async transaction(ops: WriteOp[]): Promise<void> {
    // A transaction rolled back by the server as a deadlock victim committed nothing: it is run
    // again whole, so exactly one copy of it commits (the contract's model counts it once).
    for (let attempt = 0; ; attempt++) {
      try {
        await this.once(ops);
        return;
      } catch (err) {
        await this.c.query('ROLLBACK').catch(() => undefined);
        if (!RETRY.has((err as { errno?: number }).errno ?? 0) || attempt >= 10) throw err;
        this.retries++;
      }
    }
  }

  private async once(ops: WriteOp[]): Promise<void> {
    await this.c.query('START TRANSACTION');
    for (const op of ops) {
      const t = q(this.database, op.table);
      if (op.kind === 'insert') {
        const cols = Object.keys(op.row);
        await this.c.query(`INSERT INTO ${t} (${cols.map(quoteId).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`, cols.map((k) => op.row[k]));
      } else if (op.kind === 'update') {
        const sets = Object.keys(op.set);
        const keys = Object.keys(op.key);
        // No row count check: the sink contract updates and deletes keys that are gone (as SQL allows).
        await this.c.query(
          `UPDATE ${t} SET ${sets.map((k) => `${quoteId(k)} = ?`).join(', ')} WHERE ${keys.map((k) => `${quoteId(k)} = ?`).join(' AND ')}`,
          [...sets.map((k) => op.set[k]), ...keys.map((k) => op.key[k])],
        );
      } else {
        const keys = Object.keys(op.key);
        await this.c.query(`DELETE FROM ${t} WHERE ${keys.map((k) => `${quoteId(k)} = ?`).join(' AND ')}`, keys.map((k) => op.key[k]));
      }
    }
    await this.c.query('COMMIT');
  }

  async close(): Promise<void> {
    await this.c.end();
  }
}

const BASIC: BasicTypes = { id: 'BIGINT', int: 'INT', text: 'TEXT' };

const buf = (hex: string) => Buffer.from(hex, 'hex');

/**
 * Every MariaDB type the source declares (./types.ts header), with edge values and the canonical
 * value ./types.ts gives them. Literals are MariaDB SQL (backslash escapes on).
 *
 * TIME samples carry a non-zero fraction: the PostgreSQL target keeps TIME in an interval column,
 * which prints a zero fraction as nothing ('-838:59:59' for '-838:59:59.000000'); the value is kept,
 * but its text (the canonical form of kind 'text') differs, so such a sample compares unequal there.
 *
 * ENUM labels hold no 4-byte UTF-8 character (emoji): the binlog carries an ENUM as its ordinal, and
 * zongji takes the labels from information_schema.COLUMNS.COLUMN_TYPE, which MariaDB keeps in
 * utf8mb3 ('happy 😀' reads 'happy ?' there, and in SHOW CREATE TABLE). The snapshot reads the
 * label right, a streamed change gives 'happy ?' (found by this contract; README, Limits). Only a
 * server with binlog_row_metadata=FULL puts the labels in the binlog itself.
 */
export const MARIADB_SOURCE_TYPES: TypeCase[] = [
  { column: 'c_ti', sourceType: 'TINYINT', samples: [{ literal: '-128', expect: -128 }, { literal: '127', expect: 127 }] },
  { column: 'c_tiu', sourceType: 'TINYINT UNSIGNED', samples: [{ literal: '255', expect: 255 }, { literal: '0', expect: 0 }] },
  { column: 'c_si', sourceType: 'SMALLINT', samples: [{ literal: '-32768', expect: -32768 }, { literal: '32767', expect: 32767 }] },
  { column: 'c_siu', sourceType: 'SMALLINT UNSIGNED', samples: [{ literal: '65535', expect: 65535 }, { literal: '0', expect: 0 }] },
  { column: 'c_mi', sourceType: 'MEDIUMINT', samples: [{ literal: '-8388608', expect: -8388608 }, { literal: '8388607', expect: 8388607 }] },
  { column: 'c_miu', sourceType: 'MEDIUMINT UNSIGNED', samples: [{ literal: '16777215', expect: 16777215 }, { literal: '0', expect: 0 }] },
  { column: 'c_i', sourceType: 'INT', samples: [{ literal: '-2147483648', expect: -2147483648 }, { literal: '2147483647', expect: 2147483647 }] },
  { column: 'c_iu', sourceType: 'INT UNSIGNED', samples: [{ literal: '4294967295', expect: 4294967295n }, { literal: '0', expect: 0n }] },
  { column: 'c_bi', sourceType: 'BIGINT', samples: [{ literal: '-9223372036854775808', expect: -9223372036854775808n }, { literal: '9223372036854775807', expect: 9223372036854775807n }] },
  { column: 'c_biu', sourceType: 'BIGINT UNSIGNED', samples: [{ literal: '18446744073709551615', expect: '18446744073709551615' }, { literal: '0', expect: '0' }] },
  { column: 'c_dec', sourceType: 'DECIMAL(30,10)', samples: [{ literal: "'-12345678901234567890.0123456789'", expect: '-12345678901234567890.0123456789' }, { literal: "'0.0000000001'", expect: '0.0000000001' }] },
  { column: 'c_dec2', sourceType: 'DECIMAL(5,2)', samples: [{ literal: '999.99', expect: '999.99' }, { literal: '12.5', expect: '12.50' }] },
  { column: 'c_dec65', sourceType: 'DECIMAL(65,30)', samples: [{ literal: "'-99999999999999999999999999999999999.999999999999999999999999999999'", expect: '-99999999999999999999999999999999999.999999999999999999999999999999' }, { literal: '0', expect: '0.000000000000000000000000000000' }] },
  { column: 'c_f', sourceType: 'FLOAT', samples: [{ literal: '1.2345678', expect: Math.fround(1.2345678) }, { literal: '-3.4e38', expect: Math.fround(-3.4e38) }] },
  { column: 'c_d', sourceType: 'DOUBLE', samples: [{ literal: '-1.7976931348623157e308', expect: -1.7976931348623157e308 }, { literal: '0.1', expect: 0.1 }] },
  { column: 'c_ch', sourceType: 'CHAR(5)', samples: [{ literal: "'ab'", expect: 'ab' }, { literal: "'😀✓'", expect: '😀✓' }] },
  { column: 'c_vc', sourceType: 'VARCHAR(100)', samples: [{ literal: `'emoji 😀 ✓ "q" ''s'' \\\\ back'`, expect: `emoji 😀 ✓ "q" 's' \\ back` }, { literal: "''", expect: '' }] },
  { column: 'c_tx', sourceType: 'TEXT', samples: [{ literal: "'line\\nnext 🙂'", expect: 'line\nnext 🙂' }, { literal: "''", expect: '' }] },
  { column: 'c_ltx', sourceType: 'LONGTEXT', samples: [{ literal: "REPEAT('ab😀', 20000)", expect: 'ab😀'.repeat(20000) }, { literal: "'x'", expect: 'x' }] },
  { column: 'c_bin', sourceType: 'BINARY(4)', samples: [{ literal: "x'00ff'", expect: buf('00ff0000') }, { literal: "x'deadbeef'", expect: buf('deadbeef') }] },
  { column: 'c_vb', sourceType: 'VARBINARY(10)', samples: [{ literal: "x'000127'", expect: buf('000127') }, { literal: "x''", expect: Buffer.alloc(0) }] },
  { column: 'c_blob', sourceType: 'BLOB', samples: [{ literal: "x'00ff00deadbeef5c27'", expect: buf('00ff00deadbeef5c27') }, { literal: "x''", expect: Buffer.alloc(0) }] },
  { column: 'c_date', sourceType: 'DATE', samples: [{ literal: "'1000-01-01'", expect: '1000-01-01' }, { literal: "'9999-12-31'", expect: '9999-12-31' }] },
  { column: 'c_time', sourceType: 'TIME(6)', samples: [{ literal: "'-838:59:59.999999'", expect: '-838:59:59.999999' }, { literal: "'838:59:59.000001'", expect: '838:59:59.000001' }] },
  { column: 'c_dt', sourceType: 'DATETIME(6)', samples: [{ literal: "'9999-12-31 23:59:59.999999'", expect: '9999-12-31T23:59:59.999999' }, { literal: "'1000-01-01 00:00:00.000001'", expect: '1000-01-01T00:00:00.000001' }] },
  { column: 'c_dt0', sourceType: 'DATETIME', samples: [{ literal: "'2020-02-29 01:02:03'", expect: '2020-02-29T01:02:03.000000' }, { literal: "'1970-01-01 00:00:00'", expect: '1970-01-01T00:00:00.000000' }] },
  // Written in +05:30: 18:04:56 there is 12:34:56 UTC.
  { column: 'c_ts', sourceType: 'TIMESTAMP(6) NULL DEFAULT NULL', samples: [{ literal: "'2024-02-29 18:04:56.789012'", expect: '2024-02-29T12:34:56.789012Z' }, { literal: "'2038-01-19 08:44:07.999999'", expect: '2038-01-19T03:14:07.999999Z' }] },
  { column: 'c_year', sourceType: 'YEAR', samples: [{ literal: '2155', expect: 2155 }, { literal: '1901', expect: 1901 }] },
  // ENUM/SET labels: 3-byte UTF-8 (✓), not 4-byte (😀): see MARIADB_SOURCE_TYPES' comment.
  { column: 'c_enum', sourceType: "ENUM('sad','ok','happy ✓')", samples: [{ literal: "'happy ✓'", expect: 'happy ✓' }, { literal: "'sad'", expect: 'sad' }] },
  { column: 'c_set', sourceType: "SET('a','b','c')", samples: [{ literal: "'c,a'", expect: 'a,c' }, { literal: "''", expect: '' }] },
  { column: 'c_bit1', sourceType: 'BIT(1)', samples: [{ literal: "b'1'", expect: buf('01') }, { literal: "b'0'", expect: buf('00') }] },
  { column: 'c_bit10', sourceType: 'BIT(10)', samples: [{ literal: "b'1010101010'", expect: buf('02aa') }, { literal: "b'1'", expect: buf('0001') }] },
  { column: 'c_bit64', sourceType: 'BIT(64)', samples: [{ literal: `b'${'1'.repeat(64)}'`, expect: Buffer.alloc(8, 0xff) }, { literal: "b'0'", expect: Buffer.alloc(8) }] },
  { column: 'c_json', sourceType: 'JSON', samples: [{ literal: `'{"a": [1, 2.50, "x"], "b": null, "e": "😀"}'`, expect: '{"a": [1, 2.50, "x"], "b": null, "e": "😀"}' }, { literal: "'[]'", expect: '[]' }] },
];

/** A replica server id of this run's own (the default, a hash of the pipeline name, is the same for every run of the contract). */
export const serverIdOf = (prefix: string): number => 100000 + parseInt(prefix.slice(1, 7), 16);

export const mariadbSource: SourceFixture = {
  name: 'mariadb',
  basicTypes: BASIC,
  types: MARIADB_SOURCE_TYPES,
  async createSource(id) {
    const database = `syncline_t_${id}_src`;
    await run(undefined, `CREATE DATABASE ${quoteId(database)} CHARACTER SET utf8mb4`);
    const writeLiterals = async (text: string): Promise<mysql.ResultSetHeader> => {
      const c = await connect(database);
      try {
        await c.query(`SET time_zone = '${WRITE_ZONE}'`);
        const [r] = await c.query<mysql.ResultSetHeader>(text);
        return r;
      } finally {
        await c.end();
      }
    };
    const db: SourceDb = {
      database,
      config: (prefix) => ({ type: 'mariadb', connection: { ...MARIA, database }, serverId: serverIdOf(prefix), snapshot: 'initial', heartbeatMs: 500, lingerMs: 5 }),
      qualified: (table) => `${database}.${table}`,
      createTable: async (t) => void (await run(undefined, ddl(database, t))),
      insertLiterals: async (table, rows) => {
        for (const r of rows) {
          const cols = Object.keys(r);
          await writeLiterals(`INSERT INTO ${q(database, table)} (${cols.map(quoteId).join(', ')}) VALUES (${cols.map((c) => r[c]).join(', ')})`);
        }
      },
      updateLiterals: async (table, key, set) => {
        const r = await writeLiterals(`UPDATE ${q(database, table)} SET ${Object.entries(set).map(([c, v]) => `${quoteId(c)} = ${v}`).join(', ')} WHERE ${Object.entries(key).map(([c, v]) => `${quoteId(c)} = ${v}`).join(' AND ')}`);
        if (r.affectedRows !== 1) throw new Error(`update of ${table} ${JSON.stringify(key)} changed ${r.affectedRows} rows`);
      },
      session: async () => new MariaSession(await connect(database), database),
      readAll: (table, key) => readMariadbSource(database, table, key),
      // Nothing of the pipeline stays on the server (a binlog reader creates nothing): the database only.
      drop: async () => void (await run(undefined, `DROP DATABASE IF EXISTS ${quoteId(database)}`)),
    };
    return db;
  },
};
