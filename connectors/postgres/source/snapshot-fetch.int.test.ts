/**
 * The snapshot cursor's FETCH is sized in bytes (postgres-source.ts, snapshotFetchRows): a table whose
 * rows change size along the key (narrow, then rows of 40 KB, then narrow again, nulls) is copied
 * whole through the pipeline, every row once; and the row count per FETCH follows the row size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SNAPSHOT_FETCH, snapshotFetchRows } from './postgres-source.js';
import { checksum, startRuntime, testEnv, waitFor, withClient } from '../../../test/helpers.js';

const rowsOf = (n: number, cols: number, len: number) => Array.from({ length: n }, () => Array.from({ length: cols }, () => 'x'.repeat(len)));

test('rows per FETCH: about chunkBytes of text, within its bounds', () => {
  assert.equal(snapshotFetchRows([]), SNAPSHOT_FETCH.firstRows);
  // 5 short columns: the row bound.
  assert.equal(snapshotFetchRows(rowsOf(500, 5, 8)), SNAPSHOT_FETCH.maxRows);
  // 25 columns of 40 characters (the bench's wide row, ≈ 1 KB): about 1,000 rows.
  const wide = snapshotFetchRows(rowsOf(500, 25, 40));
  assert.equal(wide, Math.floor(SNAPSHOT_FETCH.chunkBytes / (25 * 41)));
  // Rows of 64 KB: 16, the lower bound; of 1 MB: still 16 (never 0).
  assert.equal(snapshotFetchRows(rowsOf(10, 1, 64 * 1024)), 16);
  assert.equal(snapshotFetchRows(rowsOf(3, 1, 1 << 20)), SNAPSHOT_FETCH.minRows);
  // Nulls count one byte each; the size follows the chunk just read, not the first.
  assert.equal(snapshotFetchRows([[null, null], [null, null]]), SNAPSHOT_FETCH.maxRows);
  assert.equal(snapshotFetchRows(rowsOf(100, 2, 4095)), Math.floor(SNAPSHOT_FETCH.chunkBytes / 8192));
});

test('a snapshot of rows of changing size arrives whole, every row once', async (t) => {
  const DDL = "create table docs (id int primary key, body text, n int, updated_at timestamptz not null default '2026-12-01')";
  const env = await testEnv([{ name: 'docs-sync', tables: [{ source: 'public.docs' }] }]);
  t.after(() => env.cleanup());
  await withClient(env.targetDb, (c) => c.query(DDL));
  await withClient(env.sourceDb, async (c) => {
    await c.query(DDL);
    // 700 narrow rows (beyond the first FETCH), 200 of 40 KB (a few FETCHes of 26 rows), 6,000 narrow
    // (FETCHes that grow back to the row bound), 50 with nulls.
    await c.query(`insert into docs select g, 'n' || g, g from generate_series(1, 700) g`);
    await c.query(`insert into docs select g, repeat(md5(g::text), 1280), g from generate_series(701, 900) g`);
    await c.query(`insert into docs select g, 'n' || g, g from generate_series(901, 6900) g`);
    await c.query(`insert into docs select g, null, null from generate_series(6901, 6950) g`);
  });
  const { rt } = await startRuntime(env, ['capture', 'process', 'sink']);
  const want = await checksum(env.sourceDb, 'docs', 'id');
  assert.equal(want.count, 6950);
  await waitFor('the target to hold the snapshot', async () => (await checksum(env.targetDb, 'docs', 'id')).md5 === want.md5, 120_000, 300);
  const produced = rt.pipelines[0]!.capture!.stats.snapshotRows;
  assert.equal(produced, 6950, 'every row taken once by the snapshot');
});
