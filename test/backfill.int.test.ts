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
import { checksum, runCli, sleep, soak, spawnCli, sql, startRuntime, testEnv, waitFor, withClient } from './helpers.js';
import { readBackfills } from '../src/cli/backfill.js';
import type { BackfillView } from '../src/capture/backfill.js';
import { KafkaClient, topics } from '../src/core/kafka.js';
import { rootLogger } from '../src/core/log.js';

const DDL = `create table items (id bigint primary key, seq bigint not null, label text, pad text)`;

/** Runs a CLI command to its end: exit code, stdout, stderr. */

async function fill(db: string, n: number): Promise<void> {
  await sql(db, `insert into items (id, seq, label, pad) select g, 0, 'row ' || g, repeat('x', 50) from generate_series(1, $1::int) g`, [n]);
}

/** Rows of the target as id → seq. */
async function targetSeqs(db: string): Promise<Map<string, bigint>> {
  const r = await sql(db, 'select id::text, seq::text from items');
  return new Map(r.rows.map((x: { id: string; seq: string }) => [x.id, BigInt(x.seq)]));
}

async function converged(env: { sourceDb: string; targetDb: string }): Promise<void> {
  try {
    await waitFor('target to converge with the source', async () => {
      const [s, d] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id')]);
      return s.md5 === d.md5 && s.count === d.count;
    }, 120_000, 500);
  } catch (err) {
    // Which rows differ, for the failure message.
    const [src, dst] = await Promise.all([targetSeqs(env.sourceDb), targetSeqs(env.targetDb)]);
    const diff: string[] = [];
    for (const [id, s] of src) if (dst.get(id) !== s) diff.push(`${id}: source ${s}, target ${dst.get(id) ?? 'missing'}`);
    for (const [id, s] of dst) if (!src.has(id)) diff.push(`${id}: not at the source, target ${s}`);
    throw new Error(`${(err as Error).message}; ${diff.length} rows differ: ${diff.slice(0, 20).join('; ')}`);
  }
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

  const r = await runCli(['backfill', 'bf', '--config', env.configFile, '--table', 'public.items', '--chunk-size', '500', '--wait', '--json', '--timeout', '300']);
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

async function topicCount(topic: string): Promise<number> {
  const kafka = new KafkaClient({ brokers: ['127.0.0.1:9092'] } as never, rootLogger.child({ stage: 'test' }));
  try {
    const offs = await kafka.topicOffsets(topic);
    return offs.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
  } finally {
    await kafka.close();
  }
}

async function backfillOf(env: { config: never } | { config: unknown }, pipeline: string, id: string): Promise<BackfillView | undefined> {
  return (await readBackfills(env.config as never, pipeline)).find((b) => b.id === id);
}

test('a backfill goes on after kill -9 of the capture from its last finished chunk', async (t) => {
  const env = await testEnv([{ name: 'bf', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }], { snapshot: 'never' });
  t.after(() => env.cleanup());
  await withClient(env.sourceDb, (c) => c.query(DDL));
  await withClient(env.targetDb, (c) => c.query(DDL));
  const N = soak(10_000, 30_000); // `npm run chaos` reads the longer table
  // 40 chunks: the kill after the fifth must find it running (20 of 500 rows finished before the kill landed on a quiet machine).
  const CHUNK = soak(250, 1000);
  await fill(env.sourceDb, N);
  await startRuntime(env, ['process', 'sink']);
  let capture: ChildProcess = spawnCli(['capture', '--config', env.configFile]);
  t.after(() => { capture.kill('SIGKILL'); });
  const topic = topics.cdc(env.prefix, 'public', 'items');
  await waitFor('the change topic', async () => (await sql(env.sourceDb, `select 1 from pg_replication_slots where slot_name = $1 and active`, [env.slot('bf')])).rowCount === 1, 60_000);

  const r = await runCli(['backfill', 'bf', '--config', env.configFile, '--table', 'items', '--chunk-size', String(CHUNK)]);
  assert.equal(r.code, 0, r.err);
  const id = r.out.trim();
  const before = await waitFor('5 finished chunks', async () => {
    const b = await backfillOf(env, 'bf', id);
    return b && b.chunks >= 5 ? b : undefined;
  }, 120_000, 200);
  capture.kill('SIGKILL');
  await once(capture, 'exit');
  const atKill = (await backfillOf(env, 'bf', id))!;
  assert.equal(atKill.status, 'running');
  assert.ok(atKill.chunks >= before.chunks && atKill.chunks < N / CHUNK, `killed after chunk ${atKill.chunks}`);
  assert.equal(atKill.last?.[0], String(atKill.chunks * CHUNK), 'the resume key is the last finished chunk\'s last key');
  const producedAtKill = await topicCount(topic);

  capture = spawnCli(['capture', '--config', env.configFile]);
  const done = await waitFor('the backfill to finish after the restart', async () => {
    const b = await backfillOf(env, 'bf', id);
    return b?.status === 'done' ? b : undefined;
  }, 180_000, 500);
  await converged(env);
  const produced = await topicCount(topic);
  t.diagnostic(`killed after ${atKill.chunks} chunks (${producedAtKill} rows in Kafka at the kill); ${produced} rows in Kafka at the end for ${N} source rows; ${done.chunks} chunks`);
  assert.equal(done.rows, N, 'rows counted once: the resumed backfill went on from its chunk');
  assert.equal(done.chunks, N / CHUNK + 1, 'chunks numbered on from the last finished one (the last reads nothing)');
  // Read again from 0 would put N + the chunks before the kill into Kafka; at most the chunk in flight repeats.
  assert.ok(produced <= N + 2 * CHUNK, `${produced} rows produced for ${N}: chunks were read again from the start`);
  assert.equal((await checksum(env.targetDb, 'items', 'id')).count, N);
});

test('pause, resume, cancel, --where and the HTTP API', async (t) => {
  const env = await testEnv([{ name: 'bf', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }], { snapshot: 'never', extra: { observability: { enabled: true, host: '127.0.0.1', port: 0 } } });
  t.after(() => env.cleanup());
  await withClient(env.sourceDb, (c) => c.query(DDL));
  await withClient(env.targetDb, (c) => c.query(DDL));
  const N = 20_000;
  await fill(env.sourceDb, N);
  const { rt } = await startRuntime(env);
  const base = `http://127.0.0.1:${rt.httpPort}/api/pipelines/bf/backfills`;
  const call = async (method: string, path = '', body?: unknown) => {
    const res = await fetch(base + path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as BackfillView & { error?: string; backfills?: BackfillView[] } };
  };
  await waitFor('capture running', async () => (await call('GET')).status === 200, 60_000);

  // A where the source refuses: 400 with PostgreSQL's words, over HTTP and from the CLI.
  const bad = await call('POST', '', { table: 'public.items', where: 'nosuchcol > 1' });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error!, /nosuchcol/);
  const badCli = await runCli(['backfill', 'bf', '--config', env.configFile, '--table', 'public.items', '--where', 'nosuchcol > 1']);
  assert.equal(badCli.code, 1);
  assert.match(badCli.err, /BACKFILL_WHERE.*nosuchcol/);
  assert.equal((await call('POST', '', { table: 'public.nope' })).status, 400);

  // --where, paused and resumed.
  const started = await call('POST', '', { table: 'public.items', where: 'id % 2 = 0', chunkSize: 200 });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const id = started.body.id;
  assert.equal(started.body.total, N / 2);
  await waitFor('a chunk or two', async () => (await call('GET', `/${id}`)).body.rows > 0, 60_000, 50);
  const paused = await call('POST', `/${id}/pause`);
  assert.equal(paused.status, 200);
  assert.equal(paused.body.status, 'paused');
  await sleep(1500); // the chunk in flight finishes
  const p1 = (await call('GET', `/${id}`)).body;
  await sleep(2000);
  const p2 = (await call('GET', `/${id}`)).body;
  assert.equal(p2.status, 'paused');
  assert.equal(p2.rows, p1.rows, 'no progress while paused');
  assert.ok(p2.rows < N / 2, `paused at ${p2.rows} rows`);
  assert.equal((await call('POST', `/${id}/resume`)).body.status, 'running');
  const done = await waitFor('the backfill to finish', async () => {
    const b = (await call('GET', `/${id}`)).body;
    return b.status === 'done' ? b : undefined;
  }, 120_000);
  assert.equal(done.rows, N / 2);
  assert.equal(done.percent, 100);
  assert.equal(done.etaSeconds, 0);
  assert.ok(done.rowsPerSec > 0);
  await waitFor('the even rows in the target', async () => (await checksum(env.targetDb, 'items', 'id')).count === N / 2, 60_000);
  const odd = await sql(env.targetDb, 'select count(*)::int as n from items where id % 2 = 1');
  assert.equal(odd.rows[0].n, 0, '--where: only matching rows were read');
  assert.equal((await call('POST', `/${id}/resume`)).status, 409, 'a finished backfill cannot be resumed');
  assert.equal((await call('GET', '/nope')).status, 404);

  // Cancel from the CLI (a signal through the source), while it runs.
  const r = await runCli(['backfill', 'bf', '--config', env.configFile, '--table', 'public.items', '--chunk-size', '100']);
  assert.equal(r.code, 0, r.err);
  const id2 = r.out.trim();
  await waitFor('the second backfill to run', async () => {
    const x = await call('GET', `/${id2}`);
    return x.status === 200 && x.body.rows > 0;
  }, 60_000, 50);
  const c = await runCli(['backfill', 'bf', '--config', env.configFile, '--cancel', id2, '--wait', '--timeout', '60']);
  assert.equal(c.code, 0, c.err);
  const c1 = (await call('GET', `/${id2}`)).body;
  assert.equal(c1.status, 'cancelled');
  await sleep(1500);
  const c2 = (await call('GET', `/${id2}`)).body;
  assert.equal(c2.rows, c1.rows, 'no chunk after the cancel');
  assert.ok(c2.rows < N, `cancelled at ${c2.rows} of ${N}`);
  // The CLI's status reads the same state from Kafka.
  const st = await runCli(['backfill', 'bf', '--config', env.configFile, '--status', '--json']);
  assert.equal(st.code, 0, st.err);
  const all = JSON.parse(st.out) as BackfillView[];
  assert.deepEqual(all.map((b) => [b.id, b.status]), [[id, 'done'], [id2, 'cancelled']]);
});
