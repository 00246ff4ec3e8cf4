/**
 * Processes that start at once on one source (a capture and its replacement, several pipelines
 * of one database) all ensure the same publication: none fails on the other's CREATE, and the
 * publication ends with every table any of them asked for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { ensurePublication, type PgTable } from '../connectors/postgres/source/prepare.js';
import { PG, createDb, dropDb, sql, uid } from './helpers.js';

test('concurrent starters create or extend one publication without a duplicate-key error', async (t) => {
  const db = `syncline_t_${uid()}_pub`;
  await createDb(db);
  t.after(() => dropDb(db));
  const names = ['a', 'b', 'c', 'd'];
  for (const n of names) await sql(db, `create table ${n} (id int primary key)`);
  const table = (n: string): PgTable => ({ schema: 'public', table: n, key: ['id'], replicaIdentity: 'd', columns: ['id'] });
  for (let round = 0; round < 5; round++) {
    const publication = `pub_${round}`;
    // Eight starters; each asks for the first table plus one of the others.
    const clients = await Promise.all(Array.from({ length: 8 }, async () => {
      const c = new pg.Client({ ...PG, database: db });
      await c.connect();
      return c;
    }));
    try {
      const results = await Promise.allSettled(clients.map((c, i) => ensurePublication(c, publication, [table('a'), table(names[1 + (i % 3)]!)])));
      const failed = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message)] : []));
      assert.deepEqual(failed, [], `round ${round}: every starter succeeds`);
      const have = await sql(db, `select tablename from pg_publication_tables where pubname = $1 order by 1`, [publication]);
      assert.deepEqual(have.rows.map((r) => r.tablename), names, `round ${round}: the publication holds every table asked for`);
      // The lock is transaction-scoped: nothing is left open on the clients.
      for (const c of clients) assert.equal((await c.query(`select count(*)::int as n from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()`)).rows[0].n, 0);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  }
});
