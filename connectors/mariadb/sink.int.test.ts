/**
 * Integration tests of MariadbSink against the real MariaDB at 127.0.0.1:3306 (root, no password).
 * Each test works in a database of its own (syncline_t_<random>), dropped at its end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { pino } from 'pino';
import { MariadbSink } from './sink.js';
import type { MariadbSinkConfig } from './spec.js';
import { keyString, type SinkRecord } from '../../src/sink/sink.js';
import type { Row } from '../../src/core/envelope.js';
import { rowHash } from '../../src/core/hash.js';
import { SynclineError } from '../../src/core/errors.js';

const log = pino({ level: 'silent' });
const base = { host: '127.0.0.1', port: 3306, user: 'root' };

type Over = Partial<Omit<MariadbSinkConfig, 'connection'>> & Partial<MariadbSinkConfig['connection']>;
const CONNECTION_KEYS = new Set(['host', 'port', 'user', 'password', 'database', 'ssl', 'sslVerify', 'sslCaFile']);
/** A sink config; `over` may set connection fields and sink fields alike. */
const cfg = (database: string, over: Over = {}): MariadbSinkConfig => {
  const connection: Record<string, unknown> = { ...base, database, ssl: false, sslVerify: true };
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(over)) (CONNECTION_KEYS.has(k) ? connection : rest)[k] = v;
  return { type: 'mariadb', connection: connection as MariadbSinkConfig['connection'], poolSize: 4, autoCreate: true, autoEvolve: true, lockTimeoutS: 10, ...rest };
};

interface Ctx {
  db: string;
  sink: MariadbSink;
  admin: mysql.Connection;
  /** Rows of an SQL query as plain objects (strings as the server prints them). */
  sql(text: string): Promise<Record<string, unknown>[]>;
}

/** A test in a database of its own, with a sink (autoCreate on) and an admin connection. */
async function inDb(fn: (c: Ctx) => Promise<void>, over: Partial<MariadbSinkConfig> = {}): Promise<void> {
  const db = `syncline_t_${randomBytes(4).toString('hex')}`;
  const admin = await mysql.createConnection({ ...base, multipleStatements: true, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true });
  await admin.query(`CREATE DATABASE ${db}`);
  await admin.query(`USE ${db}`);
  const sink = new MariadbSink(cfg(db, over), { pipeline: 'test', log });
  try {
    await sink.connect();
    await fn({ db, sink, admin, sql: async (text) => (await admin.query(text))[0] as Record<string, unknown>[] });
  } finally {
    await sink.close();
    await admin.query(`DROP DATABASE IF EXISTS ${db}`);
    await admin.end();
  }
}

let seq = 0;
function rec(table: string, op: SinkRecord['op'], key: Row, values: Row | null = null, extra: Partial<SinkRecord> = {}): SinkRecord {
  seq++;
  return {
    table,
    op,
    key,
    values: op === 'upsert' ? { ...key, ...values } : null,
    keep: [],
    position: seq.toString(16).padStart(16, '0') + ':00000000',
    hash: null,
    sourceTsMs: Date.now(),
    origin: { topic: 't', partition: 0, offset: String(seq) },
    ...extra,
  };
}

/** Every mapped source type, as the changes carry them. */
const TYPES: Record<string, string> = {
  id: 'int8',
  i2: 'int2',
  i4: 'int4',
  i8: 'int8',
  n38: 'numeric(38,0)',
  n38s: 'numeric(38,10)',
  n2: 'numeric(12,2)',
  nv: 'numeric',
  f4: 'float4',
  f8: 'float8',
  b: 'bool',
  t: 'text',
  vc: 'varchar(20)',
  ch: 'char(5)',
  by: 'bytea',
  d: 'date',
  tm: 'time(6)',
  ts: 'timestamp',
  tz: 'timestamptz(6)',
  u: 'uuid',
  j: 'json',
  jb: 'jsonb',
  ai: 'int4[]',
  a8: 'int8[]',
  at: 'text[]',
  af: 'float8[]',
  ab: 'bool[]',
  iv: 'interval',
};

/** Canonical values (src/core/types.ts) at the edges of each type. */
const FULL: Row = {
  i2: -32768,
  i4: 2147483647,
  i8: 9223372036854775807n,
  n38: '99999999999999999999999999999999999999',
  n38s: '-1234567890123456789012345678.0123456789',
  n2: '12.50',
  nv: '3.14159',
  f4: Math.fround(0.1),
  f8: 0.30000000000000004,
  b: true,
  t: "it's \\ \"quoted\" — 🐘 emoji 𝄞 and\nnewline",
  vc: 'Ünïcødé',
  ch: 'ab   ',
  by: Buffer.from([0, 1, 2, 0xfe, 0xff, 0x27, 0x5c]),
  d: '2024-02-29',
  tm: '23:59:59.999999',
  ts: '2024-01-02T03:04:05.123456',
  tz: '1999-12-31T23:59:59.000001Z',
  u: '55b1927f-dafe-f39c-48e5-b73b5d61ea60', // variant bits not RFC 4122's: PostgreSQL takes it, MariaDB's UUID type would not
  j: '{"b": 1,  "a": [true, null]}',
  jb: '{"a": [true, null], "b": 1}',
  ai: [1, -2, null, 2147483647],
  a8: [-9223372036854775808n, 0n, null],
  at: ['a', 'b c', '', null, '"q"', '🐘'],
  af: [1.5, -0.25, 1e-300],
  ab: [true, false, null],
  iv: '1 year 2 mons 3 days 04:05:06.7',
};

test('every mapped type round-trips: written, read back with readRows as the same canonical values (same hash); NULLs too; deletes remove', async () => {
  await inDb(async ({ db, sink, sql }) => {
    const table = `${db}.types`;
    const nulls: Row = Object.fromEntries(Object.keys(FULL).map((k) => [k, null]));
    const small: Row = { ...FULL, i8: -9223372036854775808n, n38: '-99999999999999999999999999999999999999', f4: Math.fround(3.4028234663852886e38), f8: -5e-324, b: false, tm: '00:00:00', ts: '0001-01-01T00:00:00.000000', tz: '9999-12-31T23:59:59.999999Z', d: '1000-01-01', nv: '42' };
    const batch = [
      rec(table, 'upsert', { id: 1n }, FULL, { columnTypes: TYPES }),
      rec(table, 'upsert', { id: 2n }, nulls, { columnTypes: TYPES }),
      rec(table, 'upsert', { id: 3n }, small, { columnTypes: TYPES }),
    ];
    const res = await sink.writeBatch(batch);
    assert.deepEqual(res.failed.map((f) => f.error.message), []);
    const read = await sink.readRows(table, [{ id: 1n }, { id: 2n }, { id: 3n }, { id: 4n }]);
    assert.equal(read.size, 3);
    for (const r of batch) {
      const got = read.get(keyString(r.key))!;
      assert.deepEqual(got, r.values, `row ${keyString(r.key)}`);
      assert.equal(rowHash(got), rowHash(r.values!));
    }
    // The table as created: types from the mapping, the source type in each comment, key as primary key.
    const cols = await sql(`SELECT COLUMN_NAME AS c, COLUMN_TYPE AS t, COLUMN_COMMENT AS m FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '${db}' AND TABLE_NAME = 'types' ORDER BY ORDINAL_POSITION`);
    const byName = Object.fromEntries(cols.map((c) => [c.c, [c.t, c.m]]));
    assert.deepEqual(byName.id, ['bigint(20)', 'pg:int8']);
    assert.deepEqual(byName.n38s, ['decimal(38,10)', 'pg:numeric(38,10)']);
    assert.deepEqual(byName.tz, ['datetime(6)', 'pg:timestamptz(6)']);
    assert.deepEqual(byName.u, ['char(36)', 'pg:uuid']);
    assert.equal(byName.ch![0], 'varchar(5)');
    // Stored as MariaDB users expect to see them: UTC datetimes, numbers as numbers, arrays as JSON.
    const [row] = await sql(`SELECT CAST(tz AS CHAR) AS tz, CAST(i8 AS CHAR) AS i8, CAST(ai AS CHAR) AS ai, CAST(a8 AS CHAR) AS a8, HEX(\`by\`) AS hx, b FROM types WHERE id = 1`);
    assert.deepEqual(row, { tz: '1999-12-31 23:59:59.000001', i8: '9223372036854775807', ai: '[1,-2,null,2147483647]', a8: '["-9223372036854775808","0",null]', hx: '000102FEFF275C', b: 1 });

    await sink.writeBatch([rec(table, 'delete', { id: 2n }), rec(table, 'delete', { id: 99n })]);
    assert.deepEqual([...(await sink.readRows(table, [{ id: 1n }, { id: 2n }])).keys()], ['["1"]']);
  });
});

test('the same batch written twice gives the same result; several records of one key collapse to the last', async () => {
  await inDb(async ({ db, sink, sql }) => {
    const table = `${db}.kv`;
    const ct = { columnTypes: { k: 'text', v: 'int4' } };
    const batch = [
      rec(table, 'upsert', { k: 'a' }, { v: 1 }, ct),
      rec(table, 'upsert', { k: 'b' }, { v: 2 }, ct),
      rec(table, 'upsert', { k: 'a' }, { v: 3 }, ct),
      rec(table, 'delete', { k: 'b' }),
      rec(table, 'upsert', { k: 'A' }, { v: 4 }, ct), // binary collation: not the key 'a'
      rec(table, 'upsert', { k: 'a ' }, { v: 5 }, ct), // no-pad collation: not the key 'a' either
    ];
    await sink.writeBatch(batch);
    const once = await sql('SELECT k, v FROM kv ORDER BY k');
    await sink.writeBatch(batch);
    assert.deepEqual(await sql('SELECT k, v FROM kv ORDER BY k'), once);
    assert.deepEqual(once, [{ k: 'A', v: 4 }, { k: 'a', v: 3 }, { k: 'a ', v: 5 }]);
  });
});

test('bad records (too long, CHECK, duplicate on a unique index, a value MariaDB cannot hold) end in failed with their code; the rest commits', async () => {
  await inDb(async ({ db, sink, sql }) => {
    await sql(`CREATE TABLE bad (id BIGINT PRIMARY KEY, short VARCHAR(5), n INT, email VARCHAR(50) UNIQUE, f DOUBLE, CONSTRAINT n_nonneg CHECK (n >= 0))`);
    const t = `${db}.bad`;
    const up = (id: number, v: Row) => rec(t, 'upsert', { id: BigInt(id) }, { short: 'ok', n: 1, email: `e${id}@x`, f: 1, ...v });
    const res = await sink.writeBatch([up(1, {}), up(2, { short: 'too long' }), up(3, {}), up(4, { n: -1 }), up(5, {}), up(6, { email: 'e1@x', short: 'six' }), up(7, { f: NaN }), up(8, {})]);
    const failed = Object.fromEntries(res.failed.map((f) => [keyString(f.record.key), [f.error.kind, f.error.code, f.error.column]]));
    assert.deepEqual(failed, {
      '["2"]': ['poison', 'MARIADB_1406', 'short'],
      '["4"]': ['poison', 'MARIADB_4025', undefined],
      '["6"]': ['poison', 'MARIADB_1062', undefined],
      '["7"]': ['poison', 'MARIADB_UNREPRESENTABLE', 'f'],
    });
    assert.match(res.failed.find((f) => f.error.code === 'MARIADB_4025')!.error.message, /n_nonneg/);
    assert.match(res.failed.find((f) => f.error.code === 'MARIADB_1406')!.error.message, /bad key \["2"\]/);
    // The unique index is not sidestepped by ON DUPLICATE KEY UPDATE: row 1 kept its own values.
    assert.deepEqual((await sql('SELECT id, short, email FROM bad ORDER BY id')).map((r) => [r.id, r.short, r.email]), [['1', 'ok', 'e1@x'], ['3', 'ok', 'e3@x'], ['5', 'ok', 'e5@x'], ['8', 'ok', 'e8@x']]);
    assert.equal(sink.stats.isolations, 1);
  });
});

test('keep columns keep the target value, or the value an earlier upsert of the key in the batch carried', async () => {
  await inDb(async ({ db, sink, sql }) => {
    const t = `${db}.toast`;
    const ct = { columnTypes: { id: 'int4', big: 'text', small: 'int4' } };
    await sink.writeBatch([rec(t, 'upsert', { id: 1 }, { big: 'large value', small: 1 }, ct), rec(t, 'upsert', { id: 2 }, { big: 'two', small: 1 }, ct)]);
    await sink.writeBatch([
      rec(t, 'upsert', { id: 1 }, { small: 2 }, { ...ct, keep: ['big'] }),
      rec(t, 'upsert', { id: 2 }, { big: 'new two', small: 2 }, ct),
      rec(t, 'upsert', { id: 2 }, { small: 3 }, { ...ct, keep: ['big'] }),
    ]);
    assert.deepEqual(await sql('SELECT id, big, small FROM toast ORDER BY id'), [{ id: 1, big: 'large value', small: 2 }, { id: 2, big: 'new two', small: 3 }]);
  });
});

test('truncate removes the rows written before it in the batch, not those after', async () => {
  await inDb(async ({ db, sink, sql }) => {
    const t = `${db}.tr`;
    const ct = { columnTypes: { id: 'int4' } };
    await sink.writeBatch([rec(t, 'upsert', { id: 1 }, {}, ct), rec(t, 'upsert', { id: 2 }, {}, ct)]);
    await sink.writeBatch([rec(t, 'upsert', { id: 3 }, {}, ct), rec(t, 'truncate', {}), rec(t, 'upsert', { id: 4 }, {}, ct)]);
    assert.deepEqual(await sql('SELECT id FROM tr'), [{ id: 4 }]);
  });
});

test('a guarded write reads the rows locked: a concurrent edit waits until the decided write commits', async () => {
  await inDb(async ({ db, sink, sql }) => {
    const t = `${db}.g`;
    await sql('CREATE TABLE g (id INT PRIMARY KEY, v TEXT)');
    await sql("INSERT INTO g VALUES (1, 'start')");
    const other = await mysql.createConnection({ ...base, database: db });
    let theirs: Promise<unknown> | undefined;
    let theirsDone = false;
    try {
      await sink.writeGuarded({
        reads: new Map([[t, [{ id: 1 }]]]),
        decide: async (rows) => {
          assert.deepEqual(rows.get(t)!.get('[1]'), { id: 1, v: 'start' });
          theirs = other.query("UPDATE g SET v = 'theirs' WHERE id = 1").then(() => (theirsDone = true));
          await new Promise((r) => setTimeout(r, 400));
          assert.equal(theirsDone, false, 'the concurrent UPDATE waits for our row lock');
          return [rec(t, 'upsert', { id: 1 }, { v: 'ours' })];
        },
      });
      await theirs;
      assert.deepEqual(await sql('SELECT v FROM g'), [{ v: 'theirs' }], 'their edit ran after our commit, not lost under it');
    } finally {
      await other.end();
    }
  });
});

test('an absent upsert does not overwrite a row inserted since the read: retriable SINK_ROW_APPEARED, nothing stays; the retry goes through', async () => {
  await inDb(async ({ db, sink, sql }) => {
    const t = `${db}.users`;
    await sql('CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT)');
    const reads = new Map([[t, [{ id: 1n }, { id: 2n }, { id: 3n }]]]);
    let calls = 0;
    const write = () =>
      sink.writeGuarded({
        reads,
        decide: async (rows) => {
          calls++;
          const batch = [1, 2, 3].map((id) => rec(t, 'upsert', { id: BigInt(id) }, { name: 'ours' }));
          for (const r of batch) if (!rows.get(t)!.has(keyString(r.key))) r.absent = true;
          if (calls === 1) await sql("INSERT INTO users VALUES (2, 'theirs')");
          return batch;
        },
      });
    await assert.rejects(write(), (err: SynclineError) => err.code === 'SINK_ROW_APPEARED' && err.kind === 'retriable');
    assert.deepEqual(await sql('SELECT id, name FROM users ORDER BY id'), [{ id: '2', name: 'theirs' }]);
    await write();
    assert.deepEqual((await sql('SELECT name FROM users ORDER BY id')).map((r) => r.name), ['ours', 'ours', 'ours']);
  });
});

test('concurrent writeBatch calls on different keys (4 at once, as for 4 partitions) all commit', async () => {
  await inDb(async ({ db, sink, sql }) => {
    const t = `${db}.par`;
    const ct = { columnTypes: { id: 'int8', part: 'int4', v: 'text' } };
    // The table is created by the first batches at once: GET_LOCK lets one create it.
    const batches = [0, 1, 2, 3].map((part) => Array.from({ length: 500 }, (_, i) => rec(t, 'upsert', { id: BigInt(i * 4 + part) }, { part, v: `v${i}` }, ct)));
    const results = await Promise.all(batches.map((b) => sink.writeBatch(b)));
    assert.deepEqual(results.map((r) => r.failed.length), [0, 0, 0, 0]);
    // And again, with deletes interleaved: disjoint keys take no locks on each other (READ COMMITTED).
    const again = [0, 1, 2, 3].map((part) => Array.from({ length: 500 }, (_, i) => (i % 2 ? rec(t, 'delete', { id: BigInt(i * 4 + part) }) : rec(t, 'upsert', { id: BigInt(i * 4 + part) }, { part, v: 'w' }, ct))));
    await Promise.all(again.map((b) => sink.writeBatch(b)));
    assert.deepEqual(await sql('SELECT part, COUNT(*) AS n, MIN(v) AS v FROM par GROUP BY part ORDER BY part'), [0, 1, 2, 3].map((part) => ({ part, n: '250', v: 'w' })));
  });
});

test('autoCreate creates a missing table (and database) from the column types; a new source column is added (ALTER TABLE ADD COLUMN); an end-of-snapshot marker creates an empty table', async () => {
  await inDb(async ({ db, sink, sql }) => {
    const other = `${db}_other`;
    try {
      const t = `${other}.items`;
      await sink.writeBatch([rec(t, 'upsert', { sku: 'a-1', n: 1 }, { price: '9.99' }, { columnTypes: { sku: 'text', n: 'int4', price: 'numeric(10,2)' } })]);
      assert.deepEqual(await sink.tableMeta(t), { columns: [{ name: 'sku', dataType: 'varchar' }, { name: 'n', dataType: 'int' }, { name: 'price', dataType: 'decimal' }], primaryKey: ['sku', 'n'] });
      await sink.writeBatch([rec(t, 'upsert', { sku: 'a-2', n: 1 }, { price: '1.00', seen: '2024-05-06T07:08:09.500000Z' }, { columnTypes: { sku: 'text', n: 'int4', price: 'numeric(10,2)', seen: 'timestamptz' } })]);
      assert.equal(sink.stats.columnsAdded, 1);
      const read = await sink.readRows(t, [{ sku: 'a-1', n: 1 }, { sku: 'a-2', n: 1 }]);
      assert.deepEqual(read.get('["a-1",1]'), { sku: 'a-1', n: 1, price: '9.99', seen: null });
      assert.deepEqual(read.get('["a-2",1]'), { sku: 'a-2', n: 1, price: '1.00', seen: '2024-05-06T07:08:09.500000Z' });
      // A delete of a table that does not exist is done (nothing to remove); reading it finds nothing.
      assert.deepEqual((await sink.writeBatch([rec(`${db}.ghost`, 'delete', { id: 1 })])).failed, []);
      assert.equal((await sink.readRows(`${db}.ghost`, [{ id: 1 }])).size, 0);
      // The end-of-snapshot marker of an empty source table.
      await sink.ensureTable({ ...rec(`${db}.empty`, 'sweep', {}), keyColumns: ['k'], columnTypes: { k: 'uuid', v: 'jsonb' } });
      assert.deepEqual(await sink.tableMeta(`${db}.empty`), { columns: [{ name: 'k', dataType: 'char' }, { name: 'v', dataType: 'longtext' }], primaryKey: ['k'] });
    } finally {
      await sql(`DROP DATABASE IF EXISTS ${other}`);
    }
  });
});

test('without autoCreate a missing table is fatal', async () => {
  await inDb(
    async ({ db, sink }) => {
      await assert.rejects(sink.writeBatch([rec(`${db}.nope`, 'upsert', { id: 1 }, {}, { columnTypes: { id: 'int4' } })]), (e: SynclineError) => e.kind === 'fatal' && e.code === 'SINK_TABLE_MISSING');
    },
    { autoCreate: false },
  );
});

test('ping fails (retriable) when nothing listens on the port', async () => {
  const sink = new MariadbSink(cfg('mysql', { port: 1 }), { pipeline: 'test', log });
  try {
    await assert.rejects(sink.ping(), (e: SynclineError) => e.kind === 'retriable' && e.code === 'NET_ECONNREFUSED');
    await assert.rejects(sink.connect(), /cannot connect to MariaDB root@127.0.0.1:1\/mysql/);
  } finally {
    await sink.close();
    await sink.close(); // safe twice, and after a failed connect
  }
});

test('access denied is fatal: a user without privileges, and a wrong password', async () => {
  await inDb(async ({ db, sql }) => {
    const user = `syncline_t_${randomBytes(3).toString('hex')}`;
    await sql(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'; CREATE USER '${user}'@'localhost' IDENTIFIED BY 'pw'`);
    try {
      const noRights = new MariadbSink(cfg(db, { user, password: 'pw' }), { pipeline: 'test', log });
      await assert.rejects(noRights.connect(), (e: SynclineError) => e.kind === 'fatal' && e.code === 'MARIADB_1044');
      await noRights.close();
      const wrong = new MariadbSink(cfg(db, { user, password: 'wrong' }), { pipeline: 'test', log });
      await assert.rejects(wrong.ping(), (e: SynclineError) => e.kind === 'fatal' && e.code === 'MARIADB_1045');
      await wrong.close();
      // Connected, but without rights on the table: writing is fatal too (1142), not a poison record.
      await sql(`GRANT SELECT ON ${db}.* TO '${user}'@'%'; GRANT SELECT ON ${db}.* TO '${user}'@'localhost'; CREATE TABLE ro (id INT PRIMARY KEY)`);
      const readOnly = new MariadbSink(cfg(db, { user, password: 'pw' }), { pipeline: 'test', log });
      await readOnly.connect();
      await assert.rejects(readOnly.writeBatch([rec(`${db}.ro`, 'upsert', { id: 1 })]), (e: SynclineError) => e.kind === 'fatal' && e.code === 'MARIADB_1142');
      await readOnly.close();
    } finally {
      await sql(`DROP USER IF EXISTS '${user}'@'%'; DROP USER IF EXISTS '${user}'@'localhost'`);
    }
  });
});

test('connections killed under the sink: the write fails retriably (nothing half-written), the retry gets a fresh connection and commits', async () => {
  await inDb(async ({ db, sink, sql }) => {
    const t = `${db}.k`;
    const ct = { columnTypes: { id: 'int4', v: 'text' } };
    await sink.writeBatch([rec(t, 'upsert', { id: 1 }, { v: 'a' }, ct)]);
    const ids = (await sql(`SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = '${db}' AND ID <> CONNECTION_ID()`)).map((r) => r.id);
    assert.ok(ids.length > 0);
    for (const id of ids) await sql(`KILL CONNECTION ${id}`);
    const batch = Array.from({ length: 50 }, (_, i) => rec(t, 'upsert', { id: i + 2 }, { v: 'b' }, ct));
    const kinds: string[] = [];
    for (let attempt = 0; attempt < 6; attempt++) {
      try {
        assert.deepEqual((await sink.writeBatch(batch)).failed, []);
        break;
      } catch (err) {
        kinds.push(`${(err as SynclineError).kind}:${(err as SynclineError).code}`);
        assert.equal((err as SynclineError).kind, 'retriable', String(err));
        assert.deepEqual(await sql('SELECT COUNT(*) AS n FROM k'), [{ n: '1' }], 'a failed write left nothing');
      }
    }
    assert.deepEqual(await sql('SELECT COUNT(*) AS n FROM k'), [{ n: '51' }], `committed after ${kinds.join(', ') || 'no'} retriable failures`);
  });
});

test('ssl on against a server without TLS is fatal (a config error, not something a retry fixes)', async () => {
  const sink = new MariadbSink(cfg('mysql', { ssl: true }), { pipeline: 'test', log });
  try {
    await assert.rejects(sink.connect(), (e: SynclineError) => e.kind === 'fatal' && e.code === 'MARIADB_HANDSHAKE_NO_SSL_SUPPORT' && /ssl: false/.test(e.message));
  } finally {
    await sink.close();
  }
});

test('a decided delete whose row changed meanwhile: an older row still loses to it, a later one is kept and re-published (two-way, multi-way)', async () => {
  await inDb(async ({ db, admin, sql }) => {
    await admin.query(`CREATE TABLE decided (id INT PRIMARY KEY, v TEXT, updated_at TIMESTAMP(6) NOT NULL)`);
    await admin.query(`SET time_zone = '+00:00'`);
    const two = new MariadbSink(cfg(db), { pipeline: 'decided', log, origin: `syncline:tsink${randomBytes(3).toString('hex')}:decided` });
    await two.connect();
    try {
      const deleteAt = Date.parse('2026-06-01T12:00:00.500Z');
      // Read when the delete was decided: each row at 12:00:00.100; since then all but 4 changed.
      await admin.query(`INSERT INTO decided VALUES (1, 'older', '2026-06-01 12:00:00.300000'), (2, 'later', '2026-06-01 12:00:00.600000'), (3, 'same ms', '2026-06-01 12:00:00.500999'), (4, 'unchanged', '2026-06-01 12:00:00.100000')`);
      const guard = { updated_at: '2026-06-01T12:00:00.100000Z' };
      const kept = await two.republishDelete(`${db}.decided`, [1, 2, 3, 4].map((id) => ({ key: { id }, guard })), deleteAt);
      assert.deepEqual((await sql(`SELECT id, v FROM decided ORDER BY id`)).map((r) => [Number(r.id), r.v]), [[2, 'later'], [3, 'same ms']], 'the row changed to an earlier time than the delete is deleted; later ones (and a tie) stay');
      assert.deepEqual(kept.map((k) => k.id), [2, 3], 'the kept rows are re-published');
    } finally {
      await two.close();
    }
  });
});
