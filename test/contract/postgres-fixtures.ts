/**
 * The PostgreSQL connector's contract fixtures: `postgresSource` (logical replication, pgoutput) and
 * `postgresSink` (batched upserts). Each run gets its own database `syncline_t_<id>_src|dst`; the
 * source's slot and publication are `t<id>_<pipeline>` (scripts/test.sh drops inactive leftovers).
 *
 * Rows are read back as text (every type parser off) and converted with the processor's own
 * converter (connectors/postgres/pgtypes.ts parsePgText on the column's ColumnType), so "canonical" means
 * exactly what the pipeline would carry.
 */
import pg from 'pg';
import type { Row } from '../../src/core/envelope.js';
import { columnType, quoteIdent, parsePgText, TypeCatalog } from '../../connectors/postgres/pgtypes.js';
import { keyString } from '../../src/sink/sink.js';
import { PG, createDb, dropDb, dropSlots, sql } from '../helpers.js';
import type { BasicTypes, SinkFixture, SinkTarget, SourceDb, SourceFixture, SourceSession, TableDef, TypeCase, WriteOp } from './fixtures.js';

const TEXT_TYPES = { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig;

async function textClient(database: string): Promise<pg.Client> {
  const c = new pg.Client({ ...PG, database, types: TEXT_TYPES, options: '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3 -c bytea_output=hex' });
  await c.connect();
  return c;
}

/** A table of the fixtures' database: `name` in public, or a qualified `schema.name`. */
const q = (table: string) => {
  const dot = table.indexOf('.');
  return dot < 0 ? `public.${quoteIdent(table)}` : `${quoteIdent(table.slice(0, dot))}.${quoteIdent(table.slice(dot + 1))}`;
};

function ddl(t: TableDef): string {
  const cols = t.columns.map(([n, ty]) => `${quoteIdent(n)} ${ty}`);
  cols.push(`primary key (${t.key.map(quoteIdent).join(', ')})`);
  for (const c of t.constraints ?? []) cols.push(c);
  return `create table ${q(t.name)} (${cols.join(', ')})`;
}

async function readAll(database: string, table: string, key: string[]): Promise<Row[]> {
  const c = await textClient(database);
  try {
    const exists = await c.query(`select to_regclass($1) is not null as e`, [q(table)]);
    if (exists.rows[0].e !== 't' && exists.rows[0].e !== true) return [];
    const catalog = await TypeCatalog.load(c);
    const r = await c.query(`select * from ${q(table)}`);
    const types = r.fields.map((f) => columnType(f.dataTypeID, f.dataTypeModifier, catalog));
    const rows = r.rows.map((raw: Record<string, string | null>) => Object.fromEntries(r.fields.map((f, i) => [f.name, parsePgText(raw[f.name] ?? null, types[i]!)])) as Row);
    return sortByKey(rows, key);
  } finally {
    await c.end();
  }
}

export function sortByKey(rows: Row[], key: string[]): Row[] {
  const k = (r: Row) => key.map((c) => r[c]);
  return rows.sort((a, b) => {
    const [x, y] = [k(a), k(b)];
    for (let i = 0; i < x.length; i++) {
      const [p, s] = [x[i]!, y[i]!];
      if (p === s) continue;
      return p! < s! ? -1 : 1;
    }
    return 0;
  });
}

const BASIC: BasicTypes = { id: 'bigint', int: 'integer', text: 'text' };

/**
 * PostgreSQL types with their edge values and canonical read-back. Shared by both fixtures: the
 * source writes them with these literals; the sink is fed the same literals by the PostgreSQL source.
 */
const PG_TYPES: TypeCase[] = [
  { column: 'c_small', sourceType: 'smallint', samples: [{ literal: '-32768', expect: -32768 }, { literal: '32767', expect: 32767 }] },
  { column: 'c_int', sourceType: 'integer', samples: [{ literal: '-2147483648', expect: -2147483648 }, { literal: '2147483647', expect: 2147483647 }] },
  { column: 'c_big', sourceType: 'bigint', samples: [{ literal: '-9223372036854775808', expect: -9223372036854775808n }, { literal: '9223372036854775807', expect: 9223372036854775807n }] },
  { column: 'c_num', sourceType: 'numeric(20,6)', samples: [{ literal: '-99999999999999.999999', expect: '-99999999999999.999999' }, { literal: '0.000001', expect: '0.000001' }] },
  { column: 'c_numfree', sourceType: 'numeric', samples: [{ literal: '123456789012345678901234567890.5', expect: '123456789012345678901234567890.5' }, { literal: "'NaN'", expect: 'NaN' }] },
  { column: 'c_real', sourceType: 'real', samples: [{ literal: '-3.4028235e38', expect: Math.fround(-3.4028235e38) }, { literal: '1.1', expect: Math.fround(1.1) }] },
  { column: 'c_double', sourceType: 'double precision', samples: [{ literal: '-1.7976931348623157e308', expect: -1.7976931348623157e308 }, { literal: "'Infinity'", expect: Infinity }] },
  { column: 'c_text', sourceType: 'text', samples: [{ literal: `'unicode ✓ 😀 "quotes" and ''single'''`, expect: `unicode ✓ 😀 "quotes" and 'single'` }, { literal: "''", expect: '' }] },
  { column: 'c_varchar', sourceType: 'varchar(10)', samples: [{ literal: "'ten chars!'", expect: 'ten chars!' }, { literal: "'😀'", expect: '😀' }] },
  { column: 'c_bool', sourceType: 'boolean', samples: [{ literal: 'true', expect: true }, { literal: 'false', expect: false }] },
  { column: 'c_date', sourceType: 'date', samples: [{ literal: "'0001-01-01'", expect: '0001-01-01' }, { literal: "'9999-12-31'", expect: '9999-12-31' }] },
  { column: 'c_ts', sourceType: 'timestamp', samples: [{ literal: "'1999-12-31 23:59:59.999999'", expect: '1999-12-31T23:59:59.999999' }, { literal: "'1970-01-01 00:00:00.000001'", expect: '1970-01-01T00:00:00.000001' }] },
  { column: 'c_tstz', sourceType: 'timestamptz', samples: [{ literal: "'2024-02-29 12:34:56.789012+05:30'", expect: '2024-02-29T07:04:56.789012Z' }, { literal: "'2038-01-19 03:14:08.000001+00'", expect: '2038-01-19T03:14:08.000001Z' }] },
  { column: 'c_uuid', sourceType: 'uuid', samples: [{ literal: "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", expect: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' }, { literal: "'00000000-0000-0000-0000-000000000000'", expect: '00000000-0000-0000-0000-000000000000' }] },
  { column: 'c_jsonb', sourceType: 'jsonb', samples: [{ literal: `'{"b": 1, "a": {"c": null, "e": "😀"}}'`, expect: '{"a": {"c": null, "e": "😀"}, "b": 1}' }, { literal: "'[]'", expect: '[]' }] },
  { column: 'c_bytea', sourceType: 'bytea', samples: [{ literal: "'\\x00ff00deadbeef'", expect: Buffer.from('00ff00deadbeef', 'hex') }, { literal: "'\\x'", expect: Buffer.alloc(0) }] },
  { column: 'c_int_arr', sourceType: 'integer[]', samples: [{ literal: "'{1,NULL,-3}'", expect: [1, null, -3] }, { literal: "'{}'", expect: [] }] },
  { column: 'c_text_arr', sourceType: 'text[]', samples: [{ literal: `'{"a,b","c\\"d",NULL,"",😀}'`, expect: ['a,b', 'c"d', null, '', '😀'] }, { literal: "'{}'", expect: [] }] },
  { column: 'c_interval', sourceType: 'interval', samples: [{ literal: "'1 year 2 mons 3 days 04:05:06.789'", expect: '1 year 2 mons 3 days 04:05:06.789' }, { literal: "'-1 days'", expect: '-1 days' }] },
];

class PgSession implements SourceSession {
  constructor(private readonly c: pg.Client) {}

  async transaction(ops: WriteOp[]): Promise<void> {
    await this.c.query('begin');
    try {
      for (const op of ops) {
        if (op.kind === 'insert') {
          const cols = Object.keys(op.row);
          await this.c.query(`insert into ${q(op.table)} (${cols.map(quoteIdent).join(', ')}) values (${cols.map((_, i) => `$${i + 1}`).join(', ')})`, cols.map((k) => op.row[k]));
        } else if (op.kind === 'update') {
          const sets = Object.keys(op.set);
          const keys = Object.keys(op.key);
          await this.c.query(
            `update ${q(op.table)} set ${sets.map((k, i) => `${quoteIdent(k)} = $${i + 1}`).join(', ')} where ${keys.map((k, i) => `${quoteIdent(k)} = $${sets.length + i + 1}`).join(' and ')}`,
            [...sets.map((k) => op.set[k]), ...keys.map((k) => op.key[k])],
          );
        } else {
          const keys = Object.keys(op.key);
          await this.c.query(`delete from ${q(op.table)} where ${keys.map((k, i) => `${quoteIdent(k)} = $${i + 1}`).join(' and ')}`, keys.map((k) => op.key[k]));
        }
      }
      await this.c.query('commit');
    } catch (err) {
      await this.c.query('rollback').catch(() => undefined);
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.c.end();
  }
}

export const postgresSource: SourceFixture = {
  name: 'postgres',
  basicTypes: BASIC,
  types: PG_TYPES,
  async createSource(id) {
    const database = `syncline_t_${id}_src`;
    await createDb(database);
    const db: SourceDb = {
      database,
      config: (prefix, pipeline) => {
        const slot = `${prefix}_${pipeline.replace(/-/g, '_')}`;
        return { type: 'postgres', connection: { ...PG, database }, slot, publication: slot, snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 };
      },
      qualified: (table) => `public.${table}`,
      createTable: async (t) => void (await sql(database, ddl(t))),
      insertLiterals: async (table, rows) => {
        for (const r of rows) {
          const cols = Object.keys(r);
          await sql(database, `insert into ${q(table)} (${cols.map(quoteIdent).join(', ')}) values (${cols.map((c) => r[c]).join(', ')})`);
        }
      },
      updateLiterals: async (table, key, set) => {
        const r = await sql(database, `update ${q(table)} set ${Object.entries(set).map(([c, v]) => `${quoteIdent(c)} = ${v}`).join(', ')} where ${Object.entries(key).map(([c, v]) => `${quoteIdent(c)} = ${v}`).join(' and ')}`);
        if (r.rowCount !== 1) throw new Error(`update of ${table} ${JSON.stringify(key)} changed ${r.rowCount} rows`);
      },
      session: async () => {
        const c = new pg.Client({ ...PG, database });
        await c.connect();
        return new PgSession(c);
      },
      readAll: (table, key) => readAll(database, table, key),
      drop: async (prefix) => {
        await dropSlots(prefix);
        await dropDb(database);
      },
    };
    return db;
  },
};

export const postgresSink: SinkFixture = {
  name: 'postgres',
  basicTypes: BASIC,
  // The target columns have the source's types (a PostgreSQL target keeps every value exactly).
  types: PG_TYPES.map((t) => ({ ...t, targetType: t.sourceType })),
  rejected: {
    sourceType: 'text',
    targetType: 'varchar(5)',
    good: "'fits'",
    bad: "'far too long for five'",
    code: 'PG_22001',
    why: 'value too long for varchar(5)',
  },
  autoCreate: true,
  async createTarget(id) {
    const database = `syncline_t_${id}_dst`;
    await createDb(database);
    const target: SinkTarget = {
      database,
      config: () => ({ type: 'postgres', connection: { ...PG, database }, autoCreate: true }),
      qualified: (table) => `public.${table}`,
      createTable: async (t) => void (await sql(database, ddl(t))),
      readAll: (table, key) => readAll(database, table, key),
      // xmin: the id of the transaction that last wrote the row version; any rewrite changes it.
      writeMarks: async (table, key) => {
        const r = await sql(database, `select ${key.map(quoteIdent).join(', ')}, xmin::text as x from ${q(table)}`);
        return new Map(r.rows.map((row: Record<string, unknown>) => [keyString(Object.fromEntries(key.map((k) => [k, String(row[k])]))), String(row.x)]));
      },
      dropTable: async (table) => void (await sql(database, `drop table if exists ${q(table)}`)),
      drop: () => dropDb(database),
    };
    return target;
  },
};
