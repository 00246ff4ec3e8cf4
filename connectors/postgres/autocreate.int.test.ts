/**
 * autoCreate of PostgresSink against the real PostgreSQL, in a database of its own: tables created
 * from the records' key and column types (concurrently by two sinks and several batches at once),
 * deletes and truncates of a table that does not exist, the refusal without the CREATE right (a role
 * of its own, dropped after), and the type mapping shared with autoEvolve.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import { PostgresSink } from './sink.js';
import type { PgSinkConfig } from './spec.js';
import type { SinkRecord } from '../../src/sink/sink.js';
import type { Row } from '../../src/core/envelope.js';
import { SynclineError } from '../../src/core/errors.js';

const ID = randomBytes(4).toString('hex');
const DB = `syncline_t_${ID}_autocreate`;
const ROLE = `syncline_t_${ID}_nocreate`;
const conn = { host: '127.0.0.1', port: 5432, user: 'postgres', ssl: false, sslVerify: true };
const log = pino({ level: 'silent' });
let admin: pg.Pool;
const sinks: PostgresSink[] = [];

const sinkOf = (over: Partial<PgSinkConfig> = {}): PostgresSink => {
  const s = new PostgresSink({ type: 'postgres', connection: { ...conn, database: DB }, autoCreate: true, autoEvolve: true, poolSize: 3, lockTimeoutMs: 10000, ...over }, { pipeline: 'autocreate-test', log });
  sinks.push(s);
  return s;
};

before(async () => {
  const c = new pg.Client({ ...conn, database: 'postgres' });
  await c.connect();
  await c.query(`CREATE DATABASE ${DB}`);
  await c.query(`CREATE ROLE ${ROLE} LOGIN`);
  await c.end();
  admin = new pg.Pool({ ...conn, database: DB, max: 2 });
  // The teardown's DROP DATABASE … WITH (FORCE) ends what is still connected: not a failure of a test (CI saw it as an uncaught error).
  admin.on('error', () => undefined);
  await admin.query(`CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy')`);
});

after(async () => {
  await Promise.allSettled(sinks.map((s) => s.close()));
  await admin?.end();
  const c = new pg.Client({ ...conn, database: 'postgres' });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await c.query(`DROP ROLE IF EXISTS ${ROLE}`);
  await c.end();
});

let seq = 0;
function rec(table: string, op: SinkRecord['op'], key: Row, values: Row | null, columnTypes?: Record<string, string>): SinkRecord {
  seq++;
  return {
    table, op, key, values: op === 'upsert' ? { ...key, ...values } : null, keep: [],
    position: seq.toString(16).padStart(16, '0') + ':00000000', hash: null, sourceTsMs: Date.now(),
    origin: { topic: 't', partition: 0, offset: String(seq) }, ...(columnTypes ? { columnTypes } : {}),
  };
}

const TYPES = { id: 'int8', name: 'varchar(20)', price: 'numeric(10,2)', at: 'timestamptz(3)', tags: 'text[]', feeling: 'public.mood', other: 'public.no_such_type' };

async function columnsOf(table: string): Promise<[string, string, boolean][]> {
  const r = await admin.query(
    `SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [table],
  );
  return r.rows.map((x) => [x.attname, x.type, x.attnotnull]);
}

async function primaryKeyOf(table: string): Promise<string[]> {
  const r = await admin.query(
    `SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.ord`,
    [table],
  );
  return r.rows.map((x) => x.attname);
}

test('two sinks and concurrent batches create each missing table once, then write every row', async () => {
  const a = sinkOf();
  const b = sinkOf();
  const tables = ['public.races', '"Fresh Schema"."Räce ""1"""'];
  const batches: Promise<unknown>[] = [];
  for (let i = 0; i < 16; i++) {
    const sink = i % 2 === 0 ? a : b;
    const recs = tables.flatMap((t) => [0, 1, 2].map((j) => rec(t, 'upsert', { id: BigInt(i * 10 + j) }, { name: `n${i}-${j}`, price: '1.50', at: '2026-01-01T00:00:00.123000Z', tags: ['x', null], feeling: 'ok', other: 'anything' }, TYPES)));
    batches.push(sink.writeBatch(recs).then((r) => assert.deepEqual(r.failed, [])));
  }
  await Promise.all(batches);
  assert.equal(a.stats.tablesCreated + b.stats.tablesCreated, 2);
  for (const t of ['public.races', '"Fresh Schema"."Räce ""1"""']) {
    assert.equal(Number((await admin.query(`SELECT count(*) FROM ${t}`)).rows[0].count), 48, t);
    assert.deepEqual(await columnsOf(t), [
      ['id', 'bigint', true],
      ['name', 'character varying(20)', false],
      ['price', 'numeric(10,2)', false],
      ['at', 'timestamp(3) with time zone', false],
      ['tags', 'text[]', false],
      ['feeling', 'mood', false], // the target has public.mood
      ['other', 'text', false], // it has no public.no_such_type
    ]);
    assert.deepEqual(await primaryKeyOf(t), ['id']);
  }
  assert.deepEqual((await admin.query(`SELECT name, price::text, at::text, tags, feeling::text FROM public.races WHERE id = 11`)).rows, [
    { name: 'n1-1', price: '1.50', at: '2026-01-01 00:00:00.123+00', tags: ['x', null], feeling: 'ok' },
  ]);
});

test('deletes and truncates of a table that does not exist are no-ops; reads see no rows; a marker creates the empty table', async () => {
  const s = sinkOf();
  const r = await s.writeBatch([rec('public.ghost', 'delete', { id: 1 }, null), rec('public.ghost', 'truncate', {}, null)]);
  assert.deepEqual(r.failed, []);
  assert.equal((await admin.query(`SELECT to_regclass('public.ghost') AS t`)).rows[0].t, null);
  assert.equal((await s.readRows('public.ghost', [{ id: 1 }])).size, 0);
  // The end-of-snapshot marker of an empty source table: key columns and column types, no row.
  const marker: SinkRecord = { ...rec('public.ghost', 'sweep', {}, null, { k1: 'int4', k2: 'text', v: 'jsonb' }), keyColumns: ['k2', 'k1'] };
  await s.ensureTable(marker);
  assert.deepEqual(await columnsOf('public.ghost'), [['k1', 'integer', true], ['k2', 'text', true], ['v', 'jsonb', false]]);
  assert.deepEqual(await primaryKeyOf('public.ghost'), ['k2', 'k1']);
  assert.equal(Number((await admin.query('SELECT count(*) FROM public.ghost')).rows[0].count), 0);
});

test('a guarded write (conflict check) to a table that does not exist creates it and writes', async () => {
  const s = sinkOf();
  const types = { id: 'int4', v: 'text' };
  const r = await s.writeGuarded({
    reads: new Map([['public.guarded', [{ id: 1 }, { id: 2 }]]]),
    decide: async (rows) => {
      assert.equal(rows.get('public.guarded')?.size, 0);
      return [rec('public.guarded', 'upsert', { id: 1 }, { v: 'one' }, types), rec('public.guarded', 'delete', { id: 2 }, null)];
    },
  });
  assert.deepEqual(r.failed, []);
  assert.deepEqual((await admin.query('SELECT id, v FROM public.guarded')).rows, [{ id: 1, v: 'one' }]);
});

test('autoEvolve maps types as autoCreate does (a type the target lacks becomes text)', async () => {
  const s = sinkOf();
  await s.writeBatch([rec('public.evolving', 'upsert', { id: 1 }, { v: 'a' }, { id: 'int4', v: 'text' })]);
  const r = await s.writeBatch([rec('public.evolving', 'upsert', { id: 2 }, { v: 'b', feeling: 'happy', other: 'x', moods: ['sad'] }, { id: 'int4', v: 'text', feeling: 'public.mood', other: 'public.no_such_type', moods: 'public.no_such_type[]' })]);
  assert.deepEqual(r.failed, []);
  assert.deepEqual(await columnsOf('public.evolving'), [['id', 'integer', true], ['v', 'text', false], ['feeling', 'mood', false], ['other', 'text', false], ['moods', 'text[]', false]]);
});

test('without the CREATE right the refusal names the table, the right and the GRANT; with it the table is created', async () => {
  const s = sinkOf({ connection: { ...conn, database: DB, user: ROLE } });
  const check = (table: string, right: RegExp, grant: string) => (e: unknown) => {
    assert.ok(e instanceof SynclineError);
    assert.equal(e.kind, 'fatal');
    assert.equal(e.code, 'SINK_CREATE_DENIED');
    assert.ok(e.message.includes(`target table ${table} does not exist and autoCreate cannot create it`), e.message);
    assert.match(e.message, right);
    assert.ok(e.message.includes(grant), e.message);
    assert.match(e.message, /CREATE TABLE .* \("id" int4 NOT NULL, "v" text, PRIMARY KEY \("id"\)\)/);
    assert.match(e.message, /autoCreate: false/);
    return true;
  };
  const row = (table: string) => [rec(table, 'upsert', { id: 1 }, { v: 'x' }, { id: 'int4', v: 'text' })];
  // PostgreSQL 15: nobody but the owner may create in schema public.
  await assert.rejects(s.writeBatch(row('public.denied')), check('public.denied', new RegExp(`user ${ROLE} lacks CREATE on schema "public"`), `GRANT CREATE ON SCHEMA "public" TO "${ROLE}";`));
  await assert.rejects(s.writeBatch(row('"New Schema".denied')), check('"New Schema".denied', /lacks CREATE on database .* \(schema "New Schema" does not exist either\)/, `GRANT CREATE ON DATABASE "${DB}" TO "${ROLE}";`));
  await admin.query(`GRANT CREATE ON SCHEMA public TO ${ROLE}`);
  await admin.query(`GRANT CREATE ON DATABASE ${DB} TO ${ROLE}`);
  for (const t of ['public.denied', '"New Schema".denied']) {
    assert.deepEqual((await s.writeBatch(row(t))).failed, []);
    assert.equal((await admin.query(`SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'denied'`, [t.startsWith('public') ? 'public' : 'New Schema'])).rows[0]?.tableowner, ROLE);
  }
});

test('autoCreate off: a missing table stays fatal (SINK_TABLE_MISSING)', async () => {
  const s = sinkOf({ autoCreate: false });
  await assert.rejects(s.writeBatch([rec('public.absent', 'upsert', { id: 1 }, { v: 'x' }, { id: 'int4', v: 'text' })]), (e: unknown) => {
    assert.ok(e instanceof SynclineError);
    assert.equal(e.code, 'SINK_TABLE_MISSING');
    assert.match(e.message, /target table public\.absent does not exist/);
    return true;
  });
  await assert.rejects(s.readRows('public.absent', [{ id: 1 }]), /SINK_TABLE_MISSING|does not exist/);
});
