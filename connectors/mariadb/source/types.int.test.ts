/**
 * Every MariaDB column type gives the same canonical value read by the snapshot (mysql2, text
 * protocol) and by the binlog stream (zongji), and that value is the one src/core/types.ts prescribes; the
 * rows then arrive in a PostgreSQL target auto-created from the pgTypes. Node runs in a non-UTC
 * time zone and the TIMESTAMP values are written by a session in +05:30, to catch zone bugs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRuntime, sql, waitFor } from '../../../test/helpers.js';
import { positionToBigInt, type Row } from '../../../src/core/envelope.js';
import { changes, my, myEnv } from './harness.js';

process.env.TZ = 'Pacific/Pago_Pago';

const DDL = `CREATE TABLE every_type (
  id INT PRIMARY KEY,
  c_ti TINYINT, c_tiu TINYINT UNSIGNED, c_si SMALLINT, c_siu SMALLINT UNSIGNED, c_mi MEDIUMINT, c_miu MEDIUMINT UNSIGNED,
  c_i INT, c_iu INT UNSIGNED, c_bi BIGINT, c_biu BIGINT UNSIGNED,
  c_dec DECIMAL(30,10), c_dec2 DECIMAL(5,2), c_f FLOAT, c_d DOUBLE,
  c_ch CHAR(5), c_vc VARCHAR(100), c_tx TEXT, c_ltx LONGTEXT,
  c_bin BINARY(4), c_vb VARBINARY(10), c_blob BLOB,
  c_date DATE, c_time TIME(6), c_dt DATETIME(6), c_dt0 DATETIME, c_ts TIMESTAMP(6) NULL DEFAULT NULL,
  c_year YEAR, c_enum ENUM('sad','ok','happy face'), c_set SET('a','b','c'),
  c_bit1 BIT(1), c_bit10 BIT(10), c_bit64 BIT(64), c_json JSON
) CHARACTER SET utf8mb4`;

const VALUES = `
(1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
 '-12345678901234567890.0123456789', 999.99, 1.2345678, -1.7976931348623157e308,
 'ab', 'emoji 😀 ✓ "q" ''s''', 'text\\nline', REPEAT('x', 70000),
 x'00ff', x'0001', x'deadbeef',
 '1000-01-01', '-838:59:59.000000', '9999-12-31 23:59:59.999999', '2020-02-29 01:02:03', '2024-02-29 18:04:56.789012',
 2155, 'happy face', 'a,c', b'1', b'1010101010', b'1111111111111111111111111111111111111111111111111111111111111111', '{"a": [1, 2.50, "x"], "b": null}'),
(2, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null),
(3, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0,
 '0.0000000001', -0.01, 0.1, 0.1,
 '', '', '', '',
 x'', x'', x'',
 '2024-02-29', '838:59:59.999999', '1970-01-01 00:00:00.000001', '1000-01-01 00:00:00', '1970-01-01 05:30:01.000000',
 1901, 'sad', '', b'0', b'0', b'0', '[]')`;

const expected1: Row = {
  c_ti: -128, c_tiu: 255, c_si: -32768, c_siu: 65535, c_mi: -8388608, c_miu: 16777215,
  c_i: -2147483648, c_iu: 4294967295n, c_bi: -9223372036854775808n, c_biu: '18446744073709551615',
  c_dec: '-12345678901234567890.0123456789', c_dec2: '999.99', c_f: Math.fround(1.2345678), c_d: -1.7976931348623157e308,
  c_ch: 'ab', c_vc: 'emoji 😀 ✓ "q" \'s\'', c_tx: 'text\nline', c_ltx: 'x'.repeat(70000),
  c_bin: Buffer.from('00ff0000', 'hex'), c_vb: Buffer.from('0001', 'hex'), c_blob: Buffer.from('deadbeef', 'hex'),
  c_date: '1000-01-01', c_time: '-838:59:59.000000', c_dt: '9999-12-31T23:59:59.999999', c_dt0: '2020-02-29T01:02:03.000000',
  c_ts: '2024-02-29T12:34:56.789012Z',
  c_year: 2155, c_enum: 'happy face', c_set: 'a,c', c_bit1: Buffer.from([1]), c_bit10: Buffer.from([0x02, 0xaa]), c_bit64: Buffer.alloc(8, 0xff),
  c_json: '{"a": [1, 2.50, "x"], "b": null}',
};
const expected3: Row = {
  c_ti: 127, c_tiu: 0, c_si: 32767, c_siu: 0, c_mi: 8388607, c_miu: 0, c_i: 2147483647, c_iu: 0n, c_bi: 9223372036854775807n, c_biu: '0',
  c_dec: '0.0000000001', c_dec2: '-0.01', c_f: Math.fround(0.1), c_d: 0.1,
  c_ch: '', c_vc: '', c_tx: '', c_ltx: '',
  c_bin: Buffer.alloc(4), c_vb: Buffer.alloc(0), c_blob: Buffer.alloc(0),
  c_date: '2024-02-29', c_time: '838:59:59.999999', c_dt: '1970-01-01T00:00:00.000001', c_dt0: '1000-01-01T00:00:00.000000',
  c_ts: '1970-01-01T00:00:01.000000Z',
  c_year: 1901, c_enum: 'sad', c_set: '', c_bit1: Buffer.from([0]), c_bit10: Buffer.from([0, 0]), c_bit64: Buffer.alloc(8), c_json: '[]',
};

function withoutId(r: Row | null): Row {
  const { id: _id, ...rest } = r ?? {};
  return rest;
}

test('every MariaDB type: snapshot and binlog give the same exact canonical values; a PostgreSQL target auto-creates and holds them', async (t) => {
  const env = await myEnv(['every_type']);
  t.after(() => env.cleanup());
  await my(env.db, DDL);
  await my(env.db, `SET time_zone = '+05:30'; INSERT INTO every_type VALUES ${VALUES}`);
  await startRuntime(env as never);
  await waitFor('the snapshot in the target', async () => (await sql(env.targetDb, 'select count(*)::int n from every_type').catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n === 3, 60_000);

  // Streamed: copies of the three rows (row events of the same values), and an update of one of them.
  await my(env.db, `SET time_zone = '+05:30'; INSERT INTO every_type SELECT id + 100, c_ti, c_tiu, c_si, c_siu, c_mi, c_miu, c_i, c_iu, c_bi, c_biu, c_dec, c_dec2, c_f, c_d, c_ch, c_vc, c_tx, c_ltx, c_bin, c_vb, c_blob, c_date, c_time, c_dt, c_dt0, c_ts, c_year, c_enum, c_set, c_bit1, c_bit10, c_bit64, c_json FROM every_type`);
  await my(env.db, `UPDATE every_type SET c_dec = '0.5', c_biu = 18446744073709551614, c_time = '-00:00:00.000001', c_enum = 'ok', c_bit10 = b'1' WHERE id = 103`);
  await waitFor('the streamed rows in the target', async () => (await sql(env.targetDb, 'select count(*)::int n from every_type')).rows[0].n === 6, 60_000);
  await waitFor('the update in the target', async () => (await sql(env.targetDb, `select c_enum from every_type where id = 103`)).rows[0]?.c_enum === 'ok', 30_000);

  const all = await changes(env, 'every_type');
  const by = (op: string, id: number) => all.find((e) => e.op === op && (e.after?.id ?? e.before?.id) === id);
  for (const [id, want] of [[1, expected1], [3, expected3]] as const) {
    const snap = by('r', id);
    const streamed = by('c', id + 100);
    assert.ok(snap && streamed, `snapshot and streamed change of row ${id}`);
    assert.deepEqual(withoutId(snap.after), want, `snapshot values of row ${id}`);
    assert.deepEqual(withoutId(streamed.after), want, `streamed values of row ${id} (same as the snapshot's)`);
  }
  const nulls = Object.fromEntries(Object.keys(expected1).map((k) => [k, null]));
  assert.deepEqual(withoutId(by('r', 2)!.after), nulls, 'snapshot NULLs');
  assert.deepEqual(withoutId(by('c', 102)!.after), nulls, 'streamed NULLs');
  const upd = by('u', 103)!;
  assert.deepEqual(withoutId(upd.before), expected3, 'update: before image');
  assert.deepEqual(withoutId(upd.after), { ...expected3, c_dec: '0.5000000000', c_biu: '18446744073709551614', c_time: '-00:00:00.000001', c_enum: 'ok', c_bit10: Buffer.from([0, 1]) }, 'update: after image');
  // Positions: snapshot rows at the snapshot's binlog position, streamed ones after it, in order.
  const snapPos = by('r', 1)!.source.commitPos;
  assert.ok(all.filter((e) => e.op === 'c').length === 3, 'three streamed inserts');
  assert.ok(all.filter((e) => e.op !== 'r' && e.op !== 'm').every((e) => positionToBigInt(e.source.commitPos) > positionToBigInt(snapPos)), 'streamed changes commit after the snapshot position');

  // The target (auto-created from the pgTypes) holds the values.
  const r = await sql(env.targetDb, `select c_biu::text, c_dec::text, c_iu::text, c_time::text, c_dt::text, c_ts::text, c_json::text, encode(c_bit10, 'hex') bit10, c_vc from every_type where id = 101`);
  assert.deepEqual(r.rows[0], {
    c_biu: '18446744073709551615', c_dec: '-12345678901234567890.0123456789', c_iu: '4294967295', c_time: '-838:59:59',
    c_dt: '9999-12-31 23:59:59.999999', c_ts: '2024-02-29 12:34:56.789012+00', c_json: '{"a": [1, 2.50, "x"], "b": null}', bit10: '02aa', c_vc: 'emoji 😀 ✓ "q" \'s\'',
  });
  const types = await sql(env.targetDb, `select column_name, data_type from information_schema.columns where table_name = 'every_type' and column_name in ('c_biu', 'c_iu', 'c_time', 'c_ts', 'c_bit64') order by column_name`);
  assert.deepEqual(types.rows.map((x) => `${x.column_name}:${x.data_type}`), ['c_bit64:bytea', 'c_biu:numeric', 'c_iu:bigint', 'c_time:interval', 'c_ts:timestamp with time zone']);
});
