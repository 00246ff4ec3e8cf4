/**
 * `syncline verify` with a MariaDB target (connectors/mariadb/verify.ts against the PostgreSQL
 * source's connectors/postgres/verify.ts): numeric(12,2) vs decimal(14,4), timestamptz vs
 * datetime(6) and boolean vs tinyint(1) compare equal; a row updated, deleted and inserted on the
 * target are found, `--repair` fixes them, and a second verify is clean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { sql, startRuntime, testEnv, waitFor, withClient } from './helpers.js';
import { openClients } from '../src/cli/clients.js';
import { verifyPipeline } from '../src/verify/run.js';

const MARIA = { host: '127.0.0.1', port: 3306, user: 'root' };
const N = 1500;

test('verify PostgreSQL → MariaDB: equivalent types are in sync; injected differences are found and repaired', async (t) => {
  const admin = await mysql.createConnection({ ...MARIA });
  const mdb = `syncline_vf_${Math.random().toString(16).slice(2, 10)}`;
  await admin.query(`CREATE DATABASE ${mdb}`);
  const env = await testEnv([{ name: 'vm', tables: [{ source: 'public.items', target: `${mdb}.items`, columns: { price: 'amount' } }], conflict: { strategy: 'source-wins' }, target: { type: 'mariadb', connection: { ...MARIA, database: mdb } } }]);
  t.after(async () => {
    await env.cleanup();
    await admin.query(`DROP DATABASE IF EXISTS ${mdb}`);
    await admin.end();
  });
  await withClient(env.sourceDb, (c) => c.query(`create table items (id bigint primary key, price numeric(12,2) not null, label text, ok boolean not null, at timestamptz not null)`));
  await admin.query(`CREATE TABLE ${mdb}.items (id bigint primary key, amount decimal(14,4) not null, label text, ok tinyint(1) not null, at datetime(6) not null)`);
  await sql(env.sourceDb, `insert into items select g, (g % 100) / 4.0, 'row ' || g, g % 2 = 0, timestamptz '2026-01-01 12:00:00.5+02' + g * interval '1 minute' from generate_series(1, $1::int) g`, [N]);
  await startRuntime(env);
  await waitFor('the snapshot to reach MariaDB', async () => {
    const [rows] = await admin.query(`SELECT count(*) AS n FROM ${mdb}.items`);
    return Number((rows as { n: number }[])[0]!.n) === N;
  }, 60_000, 500);
  const clients = await openClients(env.config);
  t.after(() => clients.close());
  const deps = { kafka: clients.kafka, redis: clients.redis, log: clients.log };

  const clean = await verifyPipeline(env.config, { pipeline: 'vm', rangeRows: 400 }, deps);
  assert.deepEqual(clean.tables[0]!.diffs, [], JSON.stringify(clean.tables[0]!.diffs));
  assert.equal(clean.tables[0]!.sourceRows, N);

  await admin.query(`UPDATE ${mdb}.items SET label = 'tampered' WHERE id = 101`);
  await admin.query(`DELETE FROM ${mdb}.items WHERE id = 102`);
  await admin.query(`INSERT INTO ${mdb}.items VALUES (99999, 1, 'extra', 0, '2026-01-01 00:00:00')`);
  await admin.query(`UPDATE ${mdb}.items SET amount = 9.5 WHERE id = 104`);
  const found = await verifyPipeline(env.config, { pipeline: 'vm', rangeRows: 400 }, deps);
  assert.deepEqual(found.tables[0]!.diffs.map((d) => `${d.kind} ${d.key.id}${d.columns ? ' ' + d.columns.join(',') : ''}`).sort(), ['different 101 label', 'different 104 amount', 'extra 99999', 'missing 102']);

  const repaired = await verifyPipeline(env.config, { pipeline: 'vm', rangeRows: 400, repair: true }, deps);
  assert.equal(repaired.repair?.status, 'done', JSON.stringify(repaired.repair));
  const again = await verifyPipeline(env.config, { pipeline: 'vm', rangeRows: 400 }, deps);
  assert.equal(again.mismatches, 0, JSON.stringify(again.tables[0]!.diffs));
});
