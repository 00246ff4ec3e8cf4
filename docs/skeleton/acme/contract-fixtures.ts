/**
 * Sketch of the Acme connector's fixtures for the connector contract suites (test/contract/: the
 * interfaces in fixtures.ts, the PostgreSQL model in postgres-fixtures.ts). In a real connector this
 * is test/contract/acme-fixtures.ts; ./contract-test.ts shows the test file that runs both suites.
 *
 * Each run makes its own database `syncline_t_<id>_src|dst`, and readAll returns canonical values
 * (src/core/types.ts) converted by the connector's own converter, so source rows, target rows and
 * the declared expectations compare with one equality.
 */
import type { Row } from '../../../src/core/envelope.js';
import type { BasicTypes, SinkFixture, SinkTarget, SourceDb, SourceFixture, SourceSession, TableDef, TypeCase, WriteOp } from '../../../test/contract/fixtures.js';
import { sortByKey } from '../../../test/contract/postgres-fixtures.js';
import { connectAcme } from './connection.js';
import type { AcmeClient } from './driver.js';
import type { AcmeConnection } from './spec.js';
import { canonical, columnType } from './types.js';

/** The local stack's Acme server (scripts/stack.sh and docker-compose.yml would start it). */
const ACME = { host: '127.0.0.1', port: 7700, user: 'root', ssl: false, sslVerify: true };
const conn = (database: string): AcmeConnection => ({ ...ACME, database });
const q = (name: string) => '`' + name.replace(/`/g, '``') + '`';
const lit = (v: number | string | null) => (v === null ? 'NULL' : typeof v === 'number' ? String(v) : `'${v.replace(/'/g, "''")}'`);

async function withClient<T>(database: string, fn: (c: AcmeClient) => Promise<T>): Promise<T> {
  const c = await connectAcme(conn(database), 'contract fixture');
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

const ddl = (t: TableDef) =>
  `create table main.${q(t.name)} (${[...t.columns.map(([n, ty]) => `${q(n)} ${ty}`), `primary key (${t.key.map(q).join(', ')})`, ...(t.constraints ?? [])].join(', ')})`;

async function readAll(database: string, table: string, key: string[]): Promise<Row[]> {
  return withClient(database, async (c) => {
    if (!(await c.tableInfo('main', table))) return [];
    const r = await c.query(`select * from main.${q(table)}`);
    const types = new Map(r.columns.map((col) => [col.name, columnType(col.type)]));
    return sortByKey(r.rows.map((raw) => Object.fromEntries(Object.entries(raw).map(([n, v]) => [n, canonical(v, types.get(n)!)]))), key);
  });
}

async function createDatabase(name: string): Promise<void> {
  await withClient('system', (c) => c.query(`create database ${q(name)}`));
}

async function dropDatabase(name: string): Promise<void> {
  await withClient('system', (c) => c.query(`drop database if exists ${q(name)}`));
}

const BASIC: BasicTypes = { id: 'int64', int: 'int32', text: 'string' };

/**
 * Source fixture: `literal` in Acme's SQL, `expect` the canonical value the pipeline must carry.
 * Put the edges here: extremes, NULL, emoji, binary, microseconds, time zones.
 */
const ACME_TYPES: TypeCase[] = [
  { column: 'c_int', sourceType: 'int32', samples: [{ literal: '-2147483648', expect: -2147483648 }, { literal: '2147483647', expect: 2147483647 }] },
  { column: 'c_big', sourceType: 'int64', samples: [{ literal: '-9223372036854775808', expect: -9223372036854775808n }, { literal: '9223372036854775807', expect: 9223372036854775807n }] },
  { column: 'c_num', sourceType: 'decimal(20,6)', samples: [{ literal: '-99999999999999.999999', expect: '-99999999999999.999999' }, { literal: '0.000001', expect: '0.000001' }] },
  { column: 'c_text', sourceType: 'string', samples: [{ literal: `'unicode ✓ 😀'`, expect: 'unicode ✓ 😀' }, { literal: "''", expect: '' }] },
  { column: 'c_tstz', sourceType: 'timestamptz', samples: [{ literal: "'2024-02-29 12:34:56.789012+05:30'", expect: '2024-02-29T07:04:56.789012Z' }] },
  { column: 'c_bytes', sourceType: 'bytes', samples: [{ literal: "x'00ff'", expect: Buffer.from('00ff', 'hex') }] },
];

class AcmeSession implements SourceSession {
  constructor(private readonly c: AcmeClient) {}

  async transaction(ops: WriteOp[]): Promise<void> {
    const sql = ops.map((op) => {
      if (op.kind === 'insert') return `insert into main.${q(op.table)} (${Object.keys(op.row).map(q).join(', ')}) values (${Object.values(op.row).map(lit).join(', ')})`;
      const where = Object.entries(op.key).map(([k, v]) => `${q(k)} = ${v}`).join(' and ');
      if (op.kind === 'update') return `update main.${q(op.table)} set ${Object.entries(op.set).map(([k, v]) => `${q(k)} = ${lit(v)}`).join(', ')} where ${where}`;
      return `delete from main.${q(op.table)} where ${where}`;
    });
    await this.c.query(`begin; ${sql.join('; ')}; commit`);
  }

  close(): Promise<void> {
    return this.c.close();
  }
}

export const acmeSource: SourceFixture = {
  name: 'acme',
  basicTypes: BASIC,
  types: ACME_TYPES,
  async createSource(id) {
    const database = `syncline_t_${id}_src`;
    await createDatabase(database);
    const db: SourceDb = {
      database,
      config: (prefix, pipeline) => ({ type: 'acme', connection: conn(database), slot: `${prefix}_${pipeline}`, snapshot: 'initial', lingerMs: 5 }),
      qualified: (table) => `main.${table}`,
      createTable: (t) => withClient(database, async (c) => void (await c.query(ddl(t)))),
      insertLiterals: (table, rows) =>
        withClient(database, async (c) => {
          for (const r of rows) await c.query(`insert into main.${q(table)} (${Object.keys(r).map(q).join(', ')}) values (${Object.values(r).join(', ')})`);
        }),
      updateLiterals: (table, key, set) =>
        withClient(database, async (c) => {
          const where = Object.entries(key).map(([k, v]) => `${q(k)} = ${v}`).join(' and ');
          const r = await c.query(`update main.${q(table)} set ${Object.entries(set).map(([k, v]) => `${q(k)} = ${v}`).join(', ')} where ${where}`);
          if (r.rowCount !== 1) throw new Error(`update of ${table} ${JSON.stringify(key)} changed ${r.rowCount} rows`);
        }),
      session: async () => new AcmeSession(await connectAcme(conn(database), 'contract session')),
      readAll: (table, key) => readAll(database, table, key),
      drop: () => dropDatabase(database), // and anything the pipeline left in the server for `prefix` (Acme: nothing)
    };
    return db;
  },
};

/** Sink fixture: fed by the PostgreSQL source, so `literal` and `sourceType` are PostgreSQL's; `targetType` is Acme's. */
export const acmeSink: SinkFixture = {
  name: 'acme',
  basicTypes: BASIC,
  types: [
    { column: 'c_int', sourceType: 'integer', targetType: 'int32', samples: [{ literal: '-2147483648', expect: -2147483648 }, { literal: '2147483647', expect: 2147483647 }] },
    { column: 'c_big', sourceType: 'bigint', targetType: 'int64', samples: [{ literal: '9223372036854775807', expect: 9223372036854775807n }] },
    { column: 'c_tstz', sourceType: 'timestamptz', targetType: 'timestamptz', samples: [{ literal: "'2024-02-29 12:34:56.789012+05:30'", expect: '2024-02-29T07:04:56.789012Z' }] },
  ],
  rejected: { sourceType: 'text', targetType: 'varchar(5)', good: "'fits'", bad: "'far too long for five'", code: 'ACME_BAD_VALUE', why: 'value too long for varchar(5)' },
  autoCreate: false, // the contract creates the target tables with `targetType`
  async createTarget(id) {
    const database = `syncline_t_${id}_dst`;
    await createDatabase(database);
    const target: SinkTarget = {
      database,
      config: () => ({ type: 'acme', connection: conn(database) }),
      qualified: (table) => `main.${table}`,
      createTable: (t) => withClient(database, async (c) => void (await c.query(ddl(t)))),
      readAll: (table, key) => readAll(database, table, key),
      dropTable: (table) => withClient(database, async (c) => void (await c.query(`drop table if exists main.${q(table)}`))),
      drop: () => dropDatabase(database),
    };
    return target;
  },
};
