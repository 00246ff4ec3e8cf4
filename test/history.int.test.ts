/**
 * Change history on the real stack (ADR 0031): PostgreSQL → Kafka → PostgreSQL, the history store in
 * the target's database (written in the target write's transaction).
 * During a concurrent workload (inserts, updates, deletes, re-inserts) copies of the target are taken
 * with CREATE TABLE … AS SELECT at a few instants (under LOCK … IN SHARE MODE, which waits for the
 * sink's transactions in flight and holds the next ones off, so the copy is the target at exactly
 * that instant); after the run `history asof` at those instants (once through the CLI with --into,
 * the others through the store) equals each copy exactly. A key inserted, updated, deleted and
 * inserted again has that timeline in `history show`, with the field diff of each step; an instant
 * before the history's baseline is refused.
 * Rollback (syncline rollback, POST /api/pipelines/:name/rollback) to the second instant after more
 * changes (deletes of keys that existed then, inserts of keys that did not, updates): the dry run's
 * upserts and deletes are exactly the keys that differ from the copy and nothing is written; a too
 * old instant, a table without history, a key without its table are refused; one key (--key) is
 * written alone and its next source change applies again; the whole table with --pause, while a
 * workload writes the source, makes the target equal the copy exactly and keeps it so while held
 * (a change waiting in Kafka is applied only after resume); again is a no-op; the history has the
 * rolled_back entries with who asked, the Applier counted them, the audit trail has every run.
 */
import { test } from 'node:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PG, runCli, sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { writeAsofInto } from '../connectors/postgres/history-into.js';
import type { PgSinkConfig } from '../connectors/postgres/spec.js';
import { HistoryStore } from '../src/history/store.js';
import type { RollbackResult } from '../src/history/rollback.js';
import type { PauseState } from '../src/sync/pause.js';
import { topics } from '../src/core/kafka.js';

const P = 'items-hist';
const DDL = 'create table items (id int primary key, name text not null, qty int not null, price numeric(10,2), seen timestamptz)';


/** Rows of a that are not in b, and of b not in a (both 0: equal as multisets of distinct rows, and the counts). */
async function differences(db: string, a: string, b: string): Promise<{ onlyA: number; onlyB: number; countA: number; countB: number }> {
  const r = await sql(db, `select (select count(*) from (select * from ${a} except select * from ${b}) x)::int as "onlyA", (select count(*) from (select * from ${b} except select * from ${a}) x)::int as "onlyB", (select count(*) from ${a})::int as "countA", (select count(*) from ${b})::int as "countB"`);
  return r.rows[0];
}

test('history: asof equals copies of the target taken during a concurrent workload; a key\'s timeline through insert, update, delete, re-insert', async (t) => {
  const env = await testEnv([{ name: P, tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' }, history: {} }], {
    extra: ({ targetDb }) => ({
      history: { url: `postgres://${PG.user}@${PG.host}:${PG.port}/${targetDb}`, schema: 'hist' },
      // Rollback is asked through the API; its runs go to the audit trail.
      observability: { port: 0 },
      audit: { url: `postgres://${PG.user}@${PG.host}:${PG.port}/${targetDb}`, spoolDir: mkdtempSync(join(tmpdir(), 'syncline-spool-')) },
    }),
  });
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  // Rows before the start: they reach the target (and the history) through the snapshot.
  await sql(env.sourceDb, `insert into items select g, 'n' || g, g, g * 1.5, '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 second' from generate_series(1, 150) g`);
  const startedAt = new Date();
  const { rt } = await startRuntime(env);
  const applier = () => rt.pipelines[0]!.applier!;
  await waitFor('the snapshot applied', async () => applier().stats.applied >= 150, 60_000);

  // The workload: a writer on the source (inserts, updates, deletes, re-inserts of keys 1..300).
  let stop = false;
  const src = new pg.Client({ ...PG, database: env.sourceDb });
  src.on('error', () => undefined);
  await src.connect();
  let writes = 0;
  const writer = (async () => {
    let i = 0;
    while (!stop) {
      i++;
      const id = 1 + ((i * 7919) % 300);
      const kind = i % 4;
      if (kind === 0) await src.query('delete from items where id = $1', [id]);
      else if (kind === 1) await src.query(`insert into items values ($1, 'i' || $2::int, $2::int, $2::int * 0.25, now()) on conflict (id) do update set name = excluded.name, qty = excluded.qty`, [id, i]);
      else await src.query(`update items set qty = qty + 1, price = price + 0.01, name = 'u' || $2::text, seen = now() where id = $1`, [id, i]);
      writes++;
      if (i % 10 === 0) await sleep(5);
    }
  })();

  // One key through insert, update, delete and insert again, each applied before the next.
  const K = 100_000;
  const appliedAt = async (what: string, check: (rows: { qty: number }[]) => boolean) => waitFor(what, async () => check((await sql(env.targetDb, 'select qty from items where id = $1', [K])).rows), 30_000, 50);
  await sql(env.sourceDb, `insert into items values ($1, 'first', 1, 1.00, null)`, [K]);
  await appliedAt('the insert', (r) => r.length === 1);
  await sql(env.sourceDb, `update items set qty = 2, name = 'second' where id = $1`, [K]);
  await appliedAt('the update', (r) => r[0]?.qty === 2);
  await sql(env.sourceDb, `delete from items where id = $1`, [K]);
  await appliedAt('the delete', (r) => r.length === 0);
  await sql(env.sourceDb, `insert into items values ($1, 'again', 3, 3.00, null)`, [K]);
  await appliedAt('the re-insert', (r) => r[0]?.qty === 3);

  // Copies of the target at known instants, while the workload goes on.
  const dst = new pg.Client({ ...PG, database: env.targetDb });
  dst.on('error', () => undefined);
  await dst.connect();
  const instants: Date[] = [];
  for (let n = 0; n < 3; n++) {
    await sleep(400);
    await dst.query('begin');
    await dst.query('lock table items in share mode');
    const now = (await dst.query('select clock_timestamp() as t')).rows[0].t as Date;
    await dst.query(`create table copy_${n} as select * from items`);
    // The instant is read with millisecond precision and rounded up; writes after the lock comes off are 10 ms later at least.
    await dst.query('select pg_sleep(0.01)');
    await dst.query('commit');
    instants.push(new Date(now.getTime() + 1));
  }
  stop = true;
  await writer;
  assert.ok(writes > 200, `the workload wrote (${writes})`);
  await waitFor('the target caught up with the source', async () => {
    const q = `select coalesce(md5(string_agg(t::text, ',' order by id)), '') as m from items t`;
    return (await sql(env.sourceDb, q)).rows[0].m === (await sql(env.targetDb, q)).rows[0].m;
  }, 60_000);
  for (let n = 0; n < 3; n++) {
    const c = (await sql(env.targetDb, `select count(*)::int n from copy_${n}`)).rows[0].n;
    assert.ok(c > 100, `copy ${n} has rows (${c})`);
  }

  // asof at the first instant through the CLI (--into), the others through the store.
  const into = await runCli(['history', 'asof', '--config', env.configFile, '--pipeline', P, '--table', 'public.items', '--at', instants[0]!.toISOString(), '--into', 'public.asof_0']);
  assert.equal(into.code, 0, into.err);
  assert.deepEqual(await differences(env.targetDb, 'copy_0', 'asof_0').then((d) => ({ onlyA: d.onlyA, onlyB: d.onlyB, same: d.countA === d.countB })), { onlyA: 0, onlyB: 0, same: true });
  const store = new HistoryStore(env.config.history!.url!, 'hist');
  const target = env.config.pipelines[P]!.target as unknown as PgSinkConfig;
  for (let n = 1; n < 3; n++) {
    const r = await store.asof(P, 'public.items', instants[n]!);
    await writeAsofInto(target, 'public.items', `public.asof_${n}`, r.rows.map((x) => x.row));
    const d = await differences(env.targetDb, `copy_${n}`, `asof_${n}`);
    assert.deepEqual({ onlyA: d.onlyA, onlyB: d.onlyB }, { onlyA: 0, onlyB: 0 }, `asof at instant ${n} equals the copy taken then`);
    assert.equal(d.countA, d.countB);
  }
  // And now: the whole table.
  const all = await store.asof(P, 'public.items', new Date(Date.now() + 1000));
  assert.equal(all.rows.length, (await sql(env.targetDb, 'select count(*)::int n from items')).rows[0].n);

  // Before the baseline (the history began when the sink started): refused, saying how far it reaches.
  await assert.rejects(store.asof(P, 'public.items', new Date(startedAt.getTime() - 3_600_000)), /reaches back to .* only .* cannot be rebuilt/);

  // The key's timeline: insert, update, delete, insert again, each applied, with the fields that changed.
  const show = await runCli(['history', 'show', '--config', env.configFile, '--pipeline', P, '--table', 'public.items', '--key', String(K), '--json']);
  assert.equal(show.code, 0, show.err);
  const tl = JSON.parse(show.out) as { steps: { op: string; decision: string; before: Record<string, unknown> | null; after: Record<string, unknown> | null; diff: { field: string; from: unknown; to: unknown }[]; position: string; commitAt: string | null }[] };
  assert.deepEqual(tl.steps.map((s) => [s.op, s.decision]), [['upsert', 'applied'], ['upsert', 'applied'], ['delete', 'applied'], ['upsert', 'applied']]);
  assert.equal(tl.steps[0]!.before, null);
  const diff = Object.fromEntries(tl.steps[1]!.diff.map((d) => [d.field, [d.from, d.to]]));
  assert.deepEqual({ name: diff.name, qty: diff.qty }, { name: ['first', 'second'], qty: [1, 2] });
  assert.ok(!('id' in diff) && !('seen' in diff), JSON.stringify(diff));
  assert.equal(tl.steps[2]!.after, null);
  assert.deepEqual(tl.steps[2]!.before, { id: K, name: 'second', qty: 2, price: '1.00', seen: null });
  assert.equal(tl.steps[3]!.before, null);
  assert.equal(tl.steps[3]!.after!.name, 'again');
  const positions = tl.steps.map((s) => s.position);
  assert.deepEqual([...positions].sort(), positions, 'positions in source order');
  assert.ok(tl.steps.every((s) => s.commitAt !== null));

  // ---- Rollback to instant 1 (syncline rollback, through the running pipeline's Applier).
  const base = `http://127.0.0.1:${rt.httpPort}`;
  const rb = (...args: string[]) => runCli(['rollback', '--config', env.configFile, '--url', base, '--pipeline', P, ...args]);
  const api = async (body: Record<string, unknown>, what = 'rollback') => {
    const r = await fetch(`${base}/api/pipelines/${P}/${what}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-syncline-user': 'ops-ann' }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as RollbackResult & { error?: string } };
  };
  const md5 = async () => (await sql(env.targetDb, `select coalesce(md5(string_agg(t::text, ',' order by id)), '') as m from items t`)).rows[0].m as string;
  /** Keys whose row differs between copy_1 and the target now: to upsert (a row at instant 1) and to delete (none then). */
  const differing = async () => (await sql(env.targetDb, `select count(*) filter (where c.id is not null)::int as upserts, count(*) filter (where c.id is null)::int as deletes
      from copy_1 c full join items i on c.id = i.id where c.id is null or i.id is null or (c.name, c.qty, c.price, c.seen) is distinct from (i.name, i.qty, i.price, i.seen)`)).rows[0] as { upserts: number; deletes: number };
  const T = instants[1]!.toISOString();
  // The target moves on from instant 1: deletes of keys that existed then, inserts of keys that did not, updates.
  await sql(env.sourceDb, `delete from items where id in (select id from items where id <= 300 order by id limit 5)`);
  await sql(env.sourceDb, `insert into items select g, 'late' || g, g, 1, null from generate_series(500, 504) g`);
  await sql(env.sourceDb, `update items set qty = qty + 1000 where id in (select id from items where id between 100 and 300 order by id limit 5)`);
  // All of them (keys on several partitions arrive in any order): the target equals the source again.
  await waitFor('the later changes applied', async () => {
    const q = `select coalesce(md5(string_agg(t::text, ',' order by id)), '') as m from items t`;
    return (await sql(env.sourceDb, q)).rows[0].m === (await sql(env.targetDb, q)).rows[0].m;
  }, 30_000);
  const want = await differing();
  assert.ok(want.upserts >= 10 && want.deletes >= 5, JSON.stringify(want));

  // A dry run shows per key the action and the field diff, and writes nothing.
  const before = await md5();
  const dry = await rb('--to', T, '--dry-run', '--json');
  assert.equal(dry.code, 0, dry.err);
  const plan = JSON.parse(dry.out) as RollbackResult;
  const changes = plan.tables[0]!.changes;
  assert.deepEqual({ upserts: plan.tables[0]!.upserts, deletes: plan.tables[0]!.deletes, written: plan.written, dryRun: plan.dryRun }, { ...want, written: 0, dryRun: true });
  const bumped = changes.find((c) => c.action === 'upsert' && c.current !== null && c.diff.some((d) => d.field === 'qty' && typeof d.from === 'number' && d.from >= 1000))!;
  assert.ok(bumped, 'an updated key is to be put back, its qty in the diff');
  assert.ok(changes.some((c) => c.action === 'delete' && c.target === null && Number(c.current!.id) >= 500 && Number(c.current!.id) <= 504), 'a key inserted after instant 1 is to be deleted');
  assert.ok(changes.some((c) => c.action === 'upsert' && c.current === null), 'a key deleted after instant 1 is to be inserted again');
  assert.equal(await md5(), before, 'the dry run wrote nothing');

  // Refusals: an instant before the history's baseline (nothing written), a table without history, a key without its table.
  const old = await api({ to: new Date(startedAt.getTime() - 3_600_000).toISOString() });
  assert.equal(old.status, 409);
  assert.match(old.body.error!, /reaches back to .* only .* cannot be rebuilt/);
  const nope = await api({ to: T, table: 'public.nope', dryRun: true });
  assert.equal(nope.status, 404);
  assert.match(nope.body.error!, /keeps no change history of table public\.nope/);
  assert.equal((await api({ to: T, key: '1' })).status, 400);
  assert.equal(await md5(), before);

  // One key (--table/--key): only it is written; its next source change applies again.
  const oneKey = await api({ to: T, table: 'public.items', key: bumped.key });
  assert.equal(oneKey.status, 200, oneKey.body.error);
  assert.equal(oneKey.body.written, 1);
  const id = Number(bumped.target!.id);
  const rowOf = async (table: string) => (await sql(env.targetDb, `select name, qty, price::text, seen from ${table} where id = $1`, [id])).rows[0];
  assert.deepEqual(await rowOf('items'), await rowOf('copy_1'));
  assert.deepEqual(await differing(), { upserts: want.upserts - 1, deletes: want.deletes });
  await sql(env.sourceDb, 'update items set qty = 77777 where id = $1', [id]);
  await waitFor('a source change of the rolled-back key applies again', async () => (await rowOf('items'))?.qty === 77777, 30_000);

  // The whole table, with --pause, while a workload writes the source again: the target equals the copy of instant 1 exactly, and stays so while held.
  stop = false;
  const writer2 = (async () => {
    for (let i = 1; !stop; i++) {
      await src.query(`update items set qty = qty + 1, name = 'w2' where id = $1`, [1 + ((i * 31) % 300)]);
      if (i % 5 === 0) await sleep(10);
    }
  })();
  await sleep(300);
  const full = await rb('--to', T, '--pause', '--json');
  assert.equal(full.code, 0, full.err);
  const done = JSON.parse(full.out) as RollbackResult;
  assert.ok(done.written > 0 && done.held, full.out.slice(0, 500));
  assert.deepEqual(await differing(), { upserts: 0, deletes: 0 }, 'the target equals the copy taken at instant 1');
  assert.deepEqual(await differences(env.targetDb, 'copy_1', 'items').then((d) => [d.onlyA, d.onlyB, d.countA - d.countB]), [0, 0, 0]);
  assert.equal(rt.pauseState(P)?.paused, true, 'the pipeline is paused');
  // Again: nothing to change (idempotent).
  const again = await api({ to: T });
  assert.equal(again.status, 200, again.body.error);
  assert.deepEqual([again.body.changes, again.body.written], [0, 0]);
  stop = true;
  await writer2;
  // Held: a source change of a rolled-back key reaches Kafka but is not applied until resumed.
  const topic = topics.cdc(env.config.topicPrefix, 'public', 'items');
  const end = async () => (await rt.kafka.topicOffsets(topic)).reduce((n, o) => n + Number(o.high), 0);
  const ended = await end();
  await sql(env.sourceDb, 'update items set qty = 88888 where id = $1', [id]);
  await waitFor('the change is in Kafka', async () => (await end()) > ended, 30_000);
  await sleep(1500);
  assert.notEqual((await rowOf('items'))?.qty, 88888, 'held: not applied');
  assert.deepEqual(await differing(), { upserts: 0, deletes: 0 }, 'held: the target stays as at instant 1');
  // (syncline pipeline resume asks this route; a CLI spawn costs seconds on a loaded machine.)
  const resumed = await api({}, 'resume');
  assert.equal(resumed.status, 200);
  assert.deepEqual([(resumed.body as unknown as PauseState).paused, (resumed.body as unknown as PauseState).unchanged], [false, undefined], 'it was paused, and is no more');
  await waitFor('after resume the change applies', async () => (await rowOf('items'))?.qty === 88888, 30_000);

  // The history has the rolled_back entries (by whom), the metrics counted them, the audit trail has every run.
  const rolled = (await sql(env.targetDb, `select count(*)::int n, array_agg(distinct by) who from hist.changes where pipeline = $1 and decision = 'rolled_back'`, [P])).rows[0];
  assert.equal(rolled.n, 1 + done.written);
  assert.ok((rolled.who as string[]).includes('ops-ann') && !(rolled.who as (string | null)[]).includes(null), `by: the actor of the request (${rolled.who})`);
  assert.equal(applier().stats.rolledBack, 1 + done.written);
  const runs = await waitFor('the audit entries', async () => {
    const r = (await sql(env.targetDb, `select details from syncline_audit where action = 'rollback' order by seq`)).rows.map((x) => JSON.parse(x.details as string) as Record<string, unknown>);
    return r.length >= 6 ? r : undefined;
  }, 30_000);
  assert.deepEqual(runs.map((d) => [d.dryRun, d.written ?? null, typeof d.refused]), [[true, 0, 'undefined'], [false, null, 'string'], [true, null, 'string'], [false, 1, 'undefined'], [false, done.written, 'undefined'], [false, 0, 'undefined']]);
  await rt.stop();
  await Promise.all([store.close(), src.end(), dst.end()]);
});

/**
 * Two-way pairs delete through the peer: b→a deletes A's row after its batch commits, as a decision
 * a→b carries back (ADR 0011). That delete is a change b→a applied like any other and is in b→a's
 * history (it was missing: the history of A still had the row, so `history asof` and a rollback
 * would have brought it back).
 */
test('history: a two-way delete, made after the commit as a decision for the peer, is in the history of the side it was made on', async (t) => {
  const conflict = { strategy: 'latest-timestamp', field: 'updated_at' };
  const env = await testEnv([
    { name: 'a-to-b', tables: [{ source: 'public.items' }], conflict, peer: 'b-to-a', history: {} },
    { name: 'b-to-a', tables: [{ source: 'public.items' }], conflict, peer: 'a-to-b', reverse: true, history: {} },
  ], { extra: ({ targetDb }) => ({ history: { url: `postgres://${PG.user}@${PG.host}:${PG.port}/${targetDb}`, schema: 'hist' } }) });
  t.after(() => env.cleanup());
  const A = env.sourceDb;
  const B = env.targetDb;
  const ddl = 'create table items (id int primary key, name text not null, updated_at timestamptz not null default clock_timestamp())';
  await sql(A, ddl);
  await sql(B, ddl);
  await sql(A, `insert into items (id, name) select g, 'n' || g from generate_series(1, 3) g`);
  const { rt } = await startRuntime(env);
  const count = async (db: string) => (await sql(db, 'select count(*)::int as n from items')).rows[0].n as number;
  await waitFor('B has A\'s rows', async () => (await count(B)) === 3);
  await sql(B, `delete from items where id = 2`);
  await waitFor("B's delete reached A", async () => (await count(A)) === 2);
  const store = new HistoryStore(env.config.history!.url!, 'hist');
  t.after(() => store.close());
  const steps = await waitFor("b→a's delete in its history", async () => {
    const tl = await store.timeline('b-to-a', 'public.items', ['["2"]']);
    return tl.some((e) => e.op === 'delete') ? tl : undefined;
  }, 30_000).catch(async (err: Error) => {
    const r = await sql(B, `select pipeline, key, op, decision from hist.changes order by seq`);
    throw new Error(`${err.message}; the history holds: ${JSON.stringify(r.rows)}`);
  });
  const del = steps.find((e) => e.op === 'delete')!;
  assert.equal(del.decision, 'applied');
  assert.equal((del.before as Record<string, unknown> | null)?.name, 'n2', 'the before image is the row deleted on A');
  assert.equal(del.after, null);
  assert.ok(rt.pipelines.find((p) => p.name === 'b-to-a')!.applier!.stats.republished >= 1, 'the delete went through the peer');

  // An update and the delete of the same key in one transaction (one batch): the delete's before
  // image is the updated row, not the row as it was read before the batch.
  await sql(B, `begin; update items set name = 'renamed', updated_at = clock_timestamp() where id = 3; delete from items where id = 3; commit`);
  await waitFor("B's delete of 3 reached A", async () => (await count(A)) === 1);
  const steps3 = await waitFor("b→a's delete of 3 in its history", async () => {
    const tl = await store.timeline('b-to-a', 'public.items', ['["3"]']);
    return tl.some((e) => e.op === 'delete') ? tl : undefined;
  }, 30_000);
  const del3 = steps3.find((e) => e.op === 'delete')!;
  assert.equal((del3.before as Record<string, unknown> | null)?.name, 'renamed', `the before image is the row the update left: ${JSON.stringify(steps3)}`);
});
