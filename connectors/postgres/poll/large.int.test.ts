/**
 * Hash mode over a large table (500,000 rows) against a real PostgreSQL: memory stays flat while the
 * first pass reads every row (a page and a chunk at a time, never the table), and the next pass, with
 * a few changes, fetches only the chunks whose digest changed. Prints rows/s and peak RSS (reported
 * in connectors/postgres/poll/README.md). The stage is the in-memory harness, counting changes
 * without keeping them, so the memory measured is the source's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { pino } from 'pino';
import { createDb, dropDb, PG, soak, sql, uid, waitFor } from '../../../test/helpers.js';
import { PollSource } from '../../../src/capture/poll/poll-source.js';
import { pollTableSpec } from '../../../src/capture/poll/spec.js';
import { MemoryHandler, MemoryOffsets } from '../../../src/capture/poll/harness.js';
import { positionToBigInt } from '../../../src/core/envelope.js';
import { PgPollDialect } from './dialect.js';

// 1,000,000 rows in `npm run chaos` (the long variants), 500,000 in `npm test`.
const ROWS = soak(500_000, 1_000_000);
const MB = 1024 * 1024;
// A collector to call whatever flags node was started with (scripts/test.sh passes none).
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

test(`hash mode over ${ROWS} rows: flat memory, and a second pass fetches only changed chunks`, async (t) => {
  const db = `syncline_t_${uid()}_large`;
  await createDb(db);
  const stateDir = mkdtempSync(join(tmpdir(), 'syncline-poll-large-'));
  t.after(async () => {
    await dropDb(db);
    rmSync(stateDir, { recursive: true, force: true });
  });
  await sql(db, `create table big (id bigint primary key, name text, price numeric(12,2), at timestamptz, payload text);
    insert into big select g, 'name ' || g, g * 0.01, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', repeat(md5(g::text), 3) from generate_series(1, ${ROWS}) g;
    analyze big;`);

  const source = new PollSource(new PgPollDialect({ ...PG, database: db, ssl: false, sslVerify: true }, 'large'), {
    pipeline: 'large', log: pino({ level: 'silent' }), streamId: 'large', intervalMs: 100, pageSize: 5000, stateDir,
    tables: { 'public.big': pollTableSpec.parse({ mode: 'hash', chunkSize: 5000 }) }, batchSize: 2000, lingerMs: 0,
  });
  gc();
  const base = process.memoryUsage().rss;
  let peak = base;
  let atTenth = 0;
  let rows = 0;
  const heap: number[] = [];
  const handler = new MemoryHandler(new MemoryOffsets(), source, false, () => {
    rows++;
    if (rows % 10_000 === 0) {
      const rss = process.memoryUsage().rss;
      if (rss > peak) peak = rss;
      if (rows === ROWS / 10) atTenth = peak;
    }
    // The live heap after a collection, every tenth of the table: what the source holds, without the collector's slack.
    if (rows % (ROWS / 10) === 0) {
      gc();
      heap.push(Math.round(process.memoryUsage().heapUsed / MB));
    }
  });
  await source.connect();
  await source.describe([{ source: 'public.big' }]);
  const started = Date.now();
  const done = source.run(handler);
  const passEnd = async () => {
    const target = await source.position();
    await waitFor(`pass to end at ${target}`, async () => source.confirmed !== '' && positionToBigInt(source.confirmed) >= positionToBigInt(target), 600_000, 50);
  };
  await waitFor('the first pass', async () => source.confirmed !== '', 600_000, 100);
  const firstMs = Date.now() - started;
  assert.equal(handler.counts.r, ROWS);
  const rate = Math.round(ROWS / (firstMs / 1000));

  // A few changes spread over the key range (one transaction): only their chunks are fetched.
  const [read, checked] = [source.stats.chunksRead, source.stats.chunksChecked];
  await sql(db, `update big set name = name || '!' where id % 50000 = 7; delete from big where id % 100000 = 11; insert into big values (${ROWS + 1}, 'new', 1, now(), 'x')`);
  const secondStart = Date.now();
  await passEnd();
  // ROWS/50,000 updated rows (ids 7, 50007, …: chunks 0, 10, 20, …), ROWS/100,000 deleted (ids 11, 100011, …: chunks
  // 0, 20, …, among the updated ones) and 1 inserted (the open last chunk): ROWS/50,000 + 1 chunks differ (11 for
  // 500,000 rows); no other chunk is fetched.
  assert.equal(source.stats.chunksRead - read, ROWS / 50000 + 1, 'only the chunks whose digest changed are read');
  assert.ok(source.stats.chunksChecked - checked >= ROWS / 5000 + 1, 'every chunk\'s digest was compared');
  const secondMs = Date.now() - secondStart;
  assert.equal(handler.counts.u, ROWS / 50000, 'updates found');
  assert.equal(handler.counts.d, ROWS / 100000, 'deletes found');
  assert.equal(handler.counts.c, 1, 'the insert found');
  await source.quiesce();
  await source.stop();
  await done;

  const growth = (peak - atTenth) / MB;
  console.log(`hash scan: ${ROWS} rows in ${firstMs} ms (${rate} rows/s), RSS base ${Math.round(base / MB)} MB, at ${ROWS / 10} rows ${Math.round(atTenth / MB)} MB, peak ${Math.round(peak / MB)} MB (growth after the first tenth ${growth.toFixed(1)} MB); second pass with ${ROWS / 50000 + ROWS / 100000 + 1} changes in ${secondMs} ms; live heap after GC per tenth of the scan (MB): ${heap.join(', ')}`);
  assert.ok(heap.at(-1)! - heap[0]! < 20, `live heap grew from ${heap[0]} to ${heap.at(-1)} MB`);
  // Flat: reading the other nine tenths of the table adds less than a tenth of what holding them would.
  assert.ok(growth < 80, `RSS grew ${growth.toFixed(1)} MB over the last 90% of the scan`);
});
