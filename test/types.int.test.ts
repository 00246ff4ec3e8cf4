/**
 * Every supported column type round-trips exactly through the whole pipeline
 * (PostgreSQL → pgoutput → Avro/registry → Kafka → processor → PostgreSQL target), for the initial
 * snapshot and for streamed inserts and updates, including NULLs. Run in a non-UTC time zone to
 * catch time bugs (node's TZ only; PostgreSQL sessions are set to UTC by syncline).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql, startRuntime, testEnv, waitFor } from './helpers.js';

process.env.TZ = 'Pacific/Pago_Pago';

const DDL = `
create type mood as enum ('sad', 'ok', 'happy');
create table every_type (
  id bigint primary key,
  c_small smallint, c_int integer, c_big bigint,
  c_num numeric(20,6), c_numfree numeric,
  c_real real, c_double double precision,
  c_text text, c_varchar varchar(10), c_char char(3),
  c_bool boolean, c_date date, c_ts timestamp, c_tstz timestamptz,
  c_uuid uuid, c_json json, c_jsonb jsonb, c_bytea bytea,
  c_int_arr int[], c_text_arr text[], c_num_arr numeric[],
  c_mood mood,
  c_interval interval, c_inet inet
)`;

const ROWS = `
insert into every_type values
 (1, -32768, -2147483648, -9223372036854775808, -99999999999999.999999, 1e-30, -3.4028235e38, -1.7976931348623157e308,
  'unicode ✓ 😀 "quotes" and ''single''', 'ten chars!', 'abc', true, '0001-01-01', '1999-12-31 23:59:59.999999', '2024-02-29 12:34:56.789012+05:30',
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{"b": 1,  "a": [1, 2]}', '{"b": 1, "a": {"c": null}}', '\\x00ff00deadbeef',
  '{1,NULL,-3}', '{"a,b","c\\"d",NULL,"",x}', '{1.5,-0.000001,123456789012345678901234567890}', 'happy',
  '1 year 2 mons 3 days 04:05:06.789', '192.168.0.1/24'),
 (2, 32767, 2147483647, 9223372036854775807, 99999999999999.999999, 123456789012345678901234567890.5, 1.1, 0.1,
  '', 'x', 'x', false, '2262-04-11', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00',
  '00000000-0000-0000-0000-000000000000', '[]', '[]', '\\x', '{}', '{}', '{}', 'sad', '-1 days', '::1'),
 (3, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null)`;

async function same(sourceDb: string, targetDb: string): Promise<boolean> {
  const q = `select id, t::text as t from every_type t order by id`;
  const [s, d] = await Promise.all([sql(sourceDb, q), sql(targetDb, q)]);
  return JSON.stringify(s.rows) === JSON.stringify(d.rows);
}

test('every column type round-trips exactly (snapshot, insert, update, NULLs)', async (t) => {
  const env = await testEnv([{ name: 'types-sync', tables: [{ source: 'public.every_type' }], conflict: { strategy: 'source-wins' } }]); // no updated_at to compare
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, ROWS); // captured by the snapshot
  const { rt } = await startRuntime(env);
  await waitFor('snapshot rows to match', () => same(env.sourceDb, env.targetDb), 60_000);

  // Streamed: insert copies with new ids, then update every column of one row.
  await sql(env.sourceDb, `insert into every_type select id + 10, c_small, c_int, c_big, c_num, c_numfree, c_real, c_double, c_text, c_varchar, c_char, c_bool, c_date, c_ts, c_tstz, c_uuid, c_json, c_jsonb, c_bytea, c_int_arr, c_text_arr, c_num_arr, c_mood, c_interval, c_inet from every_type`);
  await sql(env.sourceDb, `update every_type set c_num = 0.000001, c_tstz = '2030-06-01 00:00:00.000001+00', c_text_arr = '{"new"}', c_bytea = '\\x01', c_mood = 'ok', c_big = 42 where id = 11`);
  await sql(env.sourceDb, `update every_type set c_text = 'was null' where id = 13`);
  await waitFor('streamed rows to match', () => same(env.sourceDb, env.targetDb), 60_000);

  const n = await sql(env.targetDb, `select count(*)::int n from every_type`);
  assert.equal(n.rows[0].n, 6);
  assert.ok(await same(env.sourceDb, env.targetDb));
});
