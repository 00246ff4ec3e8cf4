/**
 * The manual conflict workflow end to end on the real stack: a conflict is parked with source,
 * target and last-synced versions and a field diff; later changes of its key wait behind it while
 * other keys flow; it is settled through the CLI (keep the target) and through the HTTP API (a
 * merged record), which releases the parked changes in order; the state of every dead letter
 * survives a restart, and a Redis flush does not unpark a key (the index is rebuilt from Kafka).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { runCli, sql, startRuntime, testEnv, waitFor } from './helpers.js';


const DDL = `create table tickets (id int primary key, title text not null, status text not null, updated_at timestamptz not null default '2026-01-01T00:00:00Z')`;

test('manual conflicts: parked with versions and diff, later changes wait, settled by CLI and API, state survives restart and Redis flush', async (t) => {
  const env = await testEnv([{ name: 'tickets', tables: [{ source: 'public.tickets' }], conflict: { strategy: 'manual' } }], { extra: { observability: { port: 0 } } });
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into tickets (id, title, status) select g, 'ticket ' || g, 'open' from generate_series(1, 10) g`);
  let { rt } = await startRuntime(env);
  const stats = () => rt.pipelines[0]!.applier!.stats;
  const row = async (id: number) => (await sql(env.targetDb, `select title, status from tickets where id = $1`, [id])).rows[0];
  await waitFor('snapshot', async () => (await sql(env.targetDb, `select count(*)::int n from tickets`)).rows[0].n === 10);

  // Key 1: edited on the target, then on the source → a manual conflict; two later source changes park behind it.
  await sql(env.targetDb, `update tickets set status = 'closed on target' where id = 1`);
  await sql(env.sourceDb, `update tickets set title = 'renamed S1' where id = 1`);
  await waitFor('conflict parked', async () => stats().parked === 1);
  await sql(env.sourceDb, `update tickets set title = 'renamed S2' where id = 1`);
  await sql(env.sourceDb, `update tickets set title = 'renamed S3', status = 'pending' where id = 1`);
  await sql(env.sourceDb, `update tickets set status = 'in progress' where id = 2`); // another key flows on
  await waitFor('later changes parked, key 2 applied', async () => stats().parkedBehind === 2 && (await row(2)).status === 'in progress');
  assert.deepEqual(await row(1), { title: 'ticket 1', status: 'closed on target' }, 'key 1 untouched while parked');

  // CLI: list and show.
  const cfg = ['-c', env.configFile];
  let r = await runCli(['dlq', 'list', ...cfg, '--json']);
  assert.equal(r.code, 0, r.err);
  const listed = JSON.parse(r.out) as { id: string; reason: string; state: string; key: string }[];
  assert.deepEqual(listed.map((e) => [e.reason, e.state, e.key]), [['conflict', 'open', '[1]'], ['parked', 'open', '[1]'], ['parked', 'open', '[1]']]);
  const conflictId = listed[0]!.id;
  r = await runCli(['dlq', 'show', conflictId, ...cfg, '--json']);
  assert.equal(r.code, 0, r.err);
  const shown = JSON.parse(r.out);
  assert.equal(shown.conflict.source.title, 'renamed S1');
  assert.equal(shown.conflict.target.status, 'closed on target');
  assert.deepEqual([shown.conflict.lastSynced.title, shown.conflict.lastSynced.status], ['ticket 1', 'open']);
  assert.deepEqual(shown.conflict.diff.map((d: { field: string }) => d.field).sort(), ['status', 'title']);
  r = await runCli(['dlq', 'show', conflictId, ...cfg]);
  assert.match(r.out, /status\s+open\s+closed on target\s+open/);
  // Settling a parked change before its conflict is refused, with the reason.
  r = await runCli(['dlq', 'resolve', listed[1]!.id, '--choice', 'source', ...cfg]);
  assert.equal(r.code, 4);
  assert.match(r.err, new RegExp(`waits behind ${conflictId}`));

  // CLI resolve: keep the target; the parked changes are then applied in order.
  r = await runCli(['dlq', 'resolve', conflictId, '--choice', 'target', '--by', 'alice', '--note', 'target is right', ...cfg]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /resolved; 2 later change\(s\) of the key released/);
  assert.deepEqual(await row(1), { title: 'renamed S3', status: 'pending' }, 'S2 then S3 applied on top of the kept target row');
  // The key flows again.
  await sql(env.sourceDb, `update tickets set title = 'renamed S4' where id = 1`);
  await waitFor('key 1 unparked', async () => (await row(1)).title === 'renamed S4');

  // HTTP API: a conflict on key 3 settled with a merged record.
  const api = `http://127.0.0.1:${rt.httpPort}/api/dlq`;
  await sql(env.targetDb, `update tickets set status = 'escalated' where id = 3`);
  await sql(env.sourceDb, `update tickets set title = 'ticket three' where id = 3`);
  await sql(env.sourceDb, `update tickets set status = 'waiting' where id = 3`);
  await waitFor('conflict 3 and its parked change', async () => stats().parked === 2 && stats().parkedBehind === 3);
  let res = await fetch(`${api}?table=public.tickets&key=3&kind=conflict`);
  const body = (await res.json()) as { count: number; deadLetters: { id: string; reason: string }[] };
  assert.equal(res.status, 200);
  assert.equal(body.count, 2, 'the conflict and its parked change (kind conflict)');
  const id3 = body.deadLetters.find((e) => e.reason === 'conflict')!.id;
  res = await fetch(`${api}/${id3}`);
  assert.equal(((await res.json()) as { conflict: { target: { status: string } } }).conflict.target.status, 'escalated');
  res = await fetch(`${api}/${id3}/resolve`, { method: 'POST', body: JSON.stringify({ choice: 'sideways' }) });
  assert.equal(res.status, 400);
  res = await fetch(`${api}/nope/resolve`, { method: 'POST', body: JSON.stringify({ choice: 'source' }) });
  assert.equal(res.status, 404);
  res = await fetch(`${api}/${id3}/resolve`, { method: 'POST', headers: { 'x-syncline-user': 'bob' }, body: JSON.stringify({ choice: 'merged', merged: { title: 'ticket three', status: 'escalated' } }) });
  assert.equal(res.status, 200, await res.clone().text());
  const settled = (await res.json()) as { released: number; entry: { state: string } };
  assert.deepEqual([settled.entry.state, settled.released], ['resolved', 1]);
  assert.deepEqual(await row(3), { title: 'ticket three', status: 'waiting' }, 'merged row, then the parked change on top');
  res = await fetch(`${api}/${id3}/discard`, { method: 'POST' });
  assert.equal(res.status, 409, 'already resolved');

  // A third conflict stays open across a restart and a Redis flush.
  await sql(env.targetDb, `update tickets set status = 'target 5' where id = 5`);
  await sql(env.sourceDb, `update tickets set title = 'source 5' where id = 5`);
  await waitFor('conflict 5', async () => stats().parked === 3);
  await rt.stop();
  const redis = new Redis('redis://127.0.0.1:6379');
  const keys = await redis.keys(`${env.prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
  ({ rt } = await startRuntime(env));
  res = await fetch(`http://127.0.0.1:${rt.httpPort}/api/dlq?state=all`);
  const all = (await res.json()) as { deadLetters: { id: string; state: string; history: { by: string; action: string }[] }[] };
  const state = new Map(all.deadLetters.map((e) => [e.id, e]));
  assert.equal(state.get(conflictId)!.state, 'resolved');
  assert.deepEqual(state.get(conflictId)!.history.map((h) => [h.action, h.by]), [['resolved', 'alice']]);
  assert.equal(state.get(id3)!.state, 'resolved');
  assert.equal(state.get(id3)!.history[0]!.by, 'bob');
  assert.equal(all.deadLetters.filter((e) => e.state === 'requeued').length, 3, 'the released parked changes');
  assert.equal(all.deadLetters.filter((e) => e.state === 'open').length, 1, 'conflict 5 is still open');
  // Redis lost the parking entry: the index is rebuilt from the dead-letter topic, so key 5 stays parked.
  await sql(env.sourceDb, `update tickets set title = 'source 5 again' where id = 5`);
  await waitFor('later change of key 5 parked', async () => rt.pipelines[0]!.applier!.stats.parkedBehind === 1);
  assert.equal((await row(5)).title, 'ticket 5');
  r = await runCli(['dlq', 'discard', state.get([...state.keys()].find((k) => state.get(k)!.state === 'open')!)!.id, '--by', 'carol', ...cfg]);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(await row(5), { title: 'source 5 again', status: 'open' }, 'the discarded change dropped, the later (full-row) change applied');
});

test('failed and invalid dead letters: filtered listing, requeue after the target is fixed, discard', async (t) => {
  const env = await testEnv(
    [{ name: 'stock', tables: [{ source: 'public.stock', validate: { fields: { qty: { min: 0 } } } }] }],
    { extra: { observability: { port: 0 } } },
  );
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `create table stock (id int primary key, qty int not null, updated_at timestamptz not null default '2026-01-01T00:00:00Z')`);
  await sql(env.targetDb, `create table stock (id int primary key, qty int not null check (qty <= 100), updated_at timestamptz not null default '2026-01-01T00:00:00Z')`);
  await sql(env.sourceDb, `insert into stock (id, qty) select g, g from generate_series(1, 5) g`);
  const { rt } = await startRuntime(env);
  const started = new Date().toISOString();
  await waitFor('snapshot', async () => (await sql(env.targetDb, `select count(*)::int n from stock`)).rows[0].n === 5);
  await sql(env.sourceDb, `insert into stock (id, qty) values (6, 500)`); // the target's CHECK rejects it
  await sql(env.sourceDb, `insert into stock (id, qty) values (7, -1)`); // validation rejects it
  await sql(env.sourceDb, `insert into stock (id, qty) values (8, 8)`);
  await waitFor('both dead-lettered, 8 applied', async () => rt.pipelines[0]!.applier!.stats.deadLettered === 1 && (await sql(env.targetDb, `select count(*)::int n from stock where id = 8`)).rows[0].n === 1);

  const api = `http://127.0.0.1:${rt.httpPort}/api/dlq`;
  const list = async (q: string) => (await (await fetch(`${api}?${q}`)).json()) as { count: number; deadLetters: { id: string; kind: string; state: string; errorCode: string; key: string }[] };
  await waitFor('both listed', async () => (await list('pipeline=stock')).count === 2);
  const failed = (await list('kind=failed')).deadLetters;
  const invalid = (await list('kind=invalid&table=stock')).deadLetters;
  assert.deepEqual(failed.map((e) => [e.kind, e.key, e.errorCode]), [['failed', '[6]', 'PG_23514']]);
  assert.deepEqual(invalid.map((e) => [e.kind, e.errorCode]), [['invalid', 'VALIDATION_FAILED']]);
  assert.equal((await list(`since=${encodeURIComponent(started)}`)).count, 2);
  assert.equal((await list('until=2000-01-01T00:00:00Z')).count, 0);
  assert.equal((await fetch(`${api}?since=yesterday`)).status, 400);

  // The operator fixes the target, then requeues through the CLI: the record goes back to its topic and applies.
  await sql(env.targetDb, `alter table stock drop constraint stock_qty_check`);
  const r = await runCli(['dlq', 'requeue', failed[0]!.id, '-c', env.configFile, '--by', 'dave']);
  assert.equal(r.code, 0, r.err);
  await waitFor('requeued record applied', async () => (await sql(env.targetDb, `select qty from stock where id = 6`)).rows[0]?.qty === 500);
  // The invalid one is discarded through the API; a second action on it is refused.
  let res = await fetch(`${api}/${invalid[0]!.id}/discard`, { method: 'POST', headers: { 'x-syncline-user': 'erin' }, body: JSON.stringify({ note: 'negative stock is a test row' }) });
  assert.equal(res.status, 200);
  res = await fetch(`${api}/${invalid[0]!.id}/requeue`, { method: 'POST' });
  assert.equal(res.status, 409);
  assert.match(((await res.json()) as { error: string }).error, /already discarded \(by erin/);
  const all = await list('state=all');
  assert.deepEqual(all.deadLetters.map((e) => [e.kind, e.state]).sort(), [['failed', 'requeued'], ['invalid', 'discarded']]);
  assert.equal((await list('')).count, 0, 'nothing open');
});
