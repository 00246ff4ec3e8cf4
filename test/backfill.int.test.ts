/**
 * Backfill of a table while streaming goes on (src/capture/backfill.ts, PostgreSQL watermarks as
 * logical messages): a write storm on the table being backfilled converges with no stale overwrite;
 * kill -9 of the capture resumes after the last finished chunk; pause/resume/cancel; --where; the
 * HTTP API; a refused --where.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { checksum, sleep, spawnCli, sql, startRuntime, testEnv, waitFor, withClient } from './helpers.js';
import { readBackfills } from '../src/cli/backfill.js';
import type { BackfillView } from '../src/capture/backfill.js';
import { KafkaClient, topics } from '../src/core/kafka.js';
import { rootLogger } from '../src/core/log.js';

const DDL = `create table items (id bigint primary key, seq bigint not null, label text, pad text)`;

/** Runs a CLI command to its end: exit code, stdout, stderr. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const child = spawnCli(args);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  return { code, out, err };
}

async function fill(db: string, n: number): Promise<void> {
  await sql(db, `insert into items (id, seq, label, pad) select g, 0, 'row ' || g, repeat('x', 50) from generate_series(1, $1::int) g`, [n]);
}

/** Rows of the target as id → seq. */
async function targetSeqs(db: string): Promise<Map<string, bigint>> {
  const r = await sql(db, 'select id::text, seq::text from items');
  return new Map(r.rows.map((x: { id: string; seq: string }) => [x.id, BigInt(x.seq)]));
}

async function converged(env: { sourceDb: string; targetDb: string }): Promise<void> {
  await waitFor('target to converge with the source', async () => {
    const [s, d] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id')]);
    return s.md5 === d.md5 && s.count === d.count;
  }, 120_000, 500);
}

test('backfill during a write storm converges, and no chunk row overwrites a newer streamed change', async (t) => {
  const env = await testEnv([{ name: 'bf', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }], { snapshot: 'never' });
  t.after(() => env.cleanup());
  await withClient(env.sourceDb, (c) => c.query(DDL));
  await withClient(env.targetDb, (c) => c.query(DDL));
  const N = 20_000;
  await fill(env.sourceDb, N);
  const { rt } = await startRuntime(env);
  await waitFor('capture to stream', async () => rt.pipelines[0]?.capture?.backfiller !== undefined);
  await sleep(1000);

  // The storm: three writers on disjoint keys; seq comes from one sequence, so a key's seq only
  // grows (also across delete and re-insert): the target must never show a lower one later.
  await sql(env.sourceDb, 'create sequence seqgen');
  let storming = true;
  let writes = 0;
  const writer = (w: number) => withClient(env.sourceDb, async (c) => {
    while (storming) {
      const ids = new Set<number>();
      while (ids.size < 60) ids.add(w + 3 * Math.floor(Math.random() * (N / 3)));
      const all = [...ids];
      await c.query('begin');
      await c.query('update items set seq = nextval(\'seqgen\') where id = any($1::bigint[])', [all.slice(0, 40)]);
      await c.query('delete from items where id = any($1::bigint[])', [all.slice(40, 50)]);
      await c.query(`insert into items (id, seq, label, pad) select i, nextval('seqgen'), 'again', 'y' from unnest($1::bigint[]) i on conflict (id) do update set seq = excluded.seq, label = 'again'`, [all.slice(50)]);
      await c.query('commit');
      writes += 60;
    }
  });
  const storm = Promise.all([0, 1, 2].map(writer));

  // The monitor: once the target held seq s for a key, it never holds a lower one later.
  const seen = new Map<string, bigint>();
  const violations: string[] = [];
  let monitoring = true;
  const monitor = (async () => {
    while (monitoring) {
      const now = await targetSeqs(env.targetDb);
      for (const [id, s] of now) {
        const before = seen.get(id);
        if (before !== undefined && s < before) violations.push(`id ${id}: seq ${s} after ${before}`);
        if (before === undefined || s > before) seen.set(id, s);
      }
      await sleep(100);
    }
  })();

  const r = await cli(['backfill', 'bf', '--config', env.configFile, '--table', 'public.items', '--chunk-size', '500', '--wait', '--json', '--timeout', '300']);
  assert.equal(r.code, 0, `backfill --wait: ${r.err}`);
  const view = JSON.parse(r.out) as BackfillView;
  assert.equal(view.status, 'done');
  assert.equal(view.percent, 100);
  assert.ok(view.chunks >= Math.ceil(view.rows / 500) && view.rows > N / 2, `chunks ${view.chunks}, rows ${view.rows}`);
  storming = false;
  await storm;
  await converged(env);
  monitoring = false;
  await monitor;
  const stats = rt.pipelines[0]!.capture!.stats.backfill;
  t.diagnostic(`writes ${writes}, backfill rows ${view.rows}, chunks ${view.chunks}, dropped for newer streamed changes ${stats.backfillDropped}, ${view.rowsPerSec} rows/s`);
  assert.ok(writes > 5000, `the storm wrote ${writes} changes`);
  assert.deepEqual(violations.slice(0, 10), [], 'a chunk row overwrote a newer streamed change');
  assert.ok(stats.backfillDropped > 0, 'some chunk rows were dropped for a change streamed inside their window');
  // Per row: every source row with its seq.
  const [src, dst] = await Promise.all([targetSeqs(env.sourceDb), targetSeqs(env.targetDb)]);
  assert.equal(dst.size, src.size);
  for (const [id, s] of src) assert.equal(dst.get(id), s, `id ${id}`);
});
