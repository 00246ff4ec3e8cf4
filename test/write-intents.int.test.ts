/**
 * A sink killed between a target commit and the version-state commit after it, on the real target
 * and Redis. The kill at that instant cannot be made for real, so the state commit is made to fail
 * the way the kill leaves it (not done); everything else is the real sink path. A new "process"
 * (a fresh Applier over the same Redis and target) then gets the same changes again, cut into
 * smaller batches as a refetch after a restart can be. Without write intents, the update of a key
 * whose delete was in the committed batch wrote the row back (seen once in the chaos run: a row
 * back after its delete), and a source-wins update took a row back to an older version.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fatal } from '../src/core/errors.js';
import { hashRecord } from '../src/process/mapper.js';
import type { Pending } from '../src/sink/applier.js';
import type { Row } from '../src/core/envelope.js';
import '../connectors/index.js';
import { sinkHarness, sleep, sql, testEnv, waitFor } from './helpers.js';

const DDL = (t: string) => `
  create table ${t} (id int primary key, v int not null, updated_at timestamptz not null);
  create table ${t}_log (seq bigserial primary key, id int not null, op text not null, v int not null);
  create function ${t}_log() returns trigger language plpgsql as $$ begin
    if tg_op = 'DELETE' then insert into ${t}_log (id, op, v) values (old.id, 'D', old.v); return old; end if;
    insert into ${t}_log (id, op, v) values (new.id, left(tg_op, 1), new.v); return new; end $$;
  create trigger log after insert or update or delete on ${t} for each row execute function ${t}_log();`;

test('changes the target committed but the state did not record are not written again after a restart', async (t) => {
  const env = await testEnv([{ name: 'intents', tables: [{ source: 'public.lww' }, { source: 'public.sw', conflict: { strategy: 'source-wins' } }] }]);
  const h = await sinkHarness(env);
  t.after(() => h.close());
  const { redis } = h;
  await sql(env.targetDb, DDL('lww') + DDL('sw'));
  const build = () => h.build('intents');
  const pos = (n: number) => `00000000000a0000:${n.toString(16).padStart(8, '0')}`;
  let offset = 0;
  const change = (table: string, id: number, n: number, v: number | null): Pending => {
    const values: Row | null = v === null ? null : { id, v, updated_at: `2026-12-01T10:00:00.${String(n).padStart(3, '0')}000Z` };
    const record = hashRecord({ table, op: v === null ? 'delete' : 'upsert', key: { id }, values, keep: [], position: pos(n), hash: null, sourceTsMs: Date.parse('2026-12-01T10:00:00Z') + n, origin: { topic: 'cdc', partition: 0, offset: String(offset++) } });
    return { record, raw: { key: null, value: null } };
  };
  const consumer = { consumer: `${env.prefix}.cdc:0` };
  const log = async (table: string) => (await sql(env.targetDb, `select id, op, v from ${table}_log order by seq`)).rows.map((r) => `${r.id}${r.op}${r.v}`);

  // Process 1: rows at v1, then a batch that updates and deletes row 1 of lww and updates row 1 of
  // sw twice (each collapsed to its last change in the target), whose state commit never happens.
  const first = await build();
  await first.applier.apply([change('public.lww', 1, 1, 1), change('public.sw', 1, 2, 1)], consumer);
  const batch = [change('public.lww', 1, 3, 2), change('public.lww', 1, 4, null), change('public.sw', 1, 5, 2), change('public.sw', 1, 6, 3)];
  first.state.commitMany = async () => {
    throw fatal('KILLED', 'the process died here');
  };
  await assert.rejects(first.applier.apply(batch, consumer), /the process died here/);
  assert.deepEqual(await log('lww'), ['1I1', '1D1'], 'the update and the delete of row 1 collapsed to the delete');
  assert.deepEqual(await log('sw'), ['1I1', '1U3']);
  await first.sink.close();

  // Process 2 gets the batch again, one change at a time.
  const second = await build();
  for (const c of batch) await second.applier.apply([c], consumer);
  assert.deepEqual(await log('lww'), ['1I1', '1D1'], 'row 1 was not written back after its delete');
  assert.deepEqual(await log('sw'), ['1I1', '1U3'], 'row 1 did not go back to v2');
  assert.equal(second.applier.stats.skippedStale, 4);
  assert.equal(second.applier.stats.applied, 0);
  assert.equal(await redis.exists(`${env.prefix}:{intents}:i:${consumer.consumer}`), 0, 'the settled intents are gone');

  // An intent whose write did not commit (the target does not hold it) is dropped, not believed:
  // the change it names is written when it comes.
  const third = await build();
  const lost = change('public.lww', 2, 7, 5);
  await third.state.intend(consumer.consumer, lost.record.position, { commits: [{ table: 'public.lww', key: '[2]', pos: lost.record.position, hash: 'deadbeef:00', keyRow: { id: 2 } }], sigs: { deadbeef: ['id', 'v', 'updated_at'] } });
  await third.applier.apply([lost], consumer);
  assert.deepEqual((await sql(env.targetDb, 'select id, v from lww order by id')).rows, [{ id: 2, v: 5 }]);
  assert.equal(third.applier.stats.applied, 1);
});

test('two-way: a row kept by a conflict is re-published after a restart when the killed process had not', async (t) => {
  const conflict = { strategy: 'latest-timestamp', field: 'updated_at' };
  const env = await testEnv([
    { name: 'a-to-b', tables: [{ source: 'public.lww' }], conflict, peer: 'b-to-a' },
    { name: 'b-to-a', tables: [{ source: 'public.lww' }], conflict, peer: 'a-to-b', reverse: true },
  ]);
  const h = await sinkHarness(env);
  t.after(() => h.close());
  await sql(env.targetDb, DDL('lww'));
  // B holds a newer row than the change a→b brings: the conflict keeps B's row and re-publishes it.
  await sql(env.targetDb, `insert into lww (id, v, updated_at) values (1, 9, '2026-12-01T11:00:00Z')`);
  const change: Pending = {
    record: hashRecord({ table: 'public.lww', op: 'upsert', update: true, key: { id: 1 }, values: { id: 1, v: 2, updated_at: '2026-12-01T10:00:00.000000Z' }, keep: [], position: '00000000000b0000:00000001', hash: null, sourceTsMs: Date.parse('2026-12-01T10:00:00Z'), origin: { topic: 'cdc', partition: 0, offset: '0' } }),
    raw: { key: null, value: null },
  };
  const consumer = { consumer: `${env.prefix}.cdc:0` };

  // Process 1 commits the batch (nothing to write: the target row is kept) and is killed before it re-publishes.
  const first = await h.build('a-to-b');
  first.sink.republish = async () => {
    throw fatal('KILLED', 'the process died here');
  };
  await assert.rejects(first.applier.apply([change], consumer), /the process died here/);
  await first.sink.close();

  // Process 2 gets the change again: the intent says the kept row is the key's state and that it was
  // to be re-published; it is, once, and the change itself is stale.
  const second = await h.build('a-to-b');
  const republished: string[] = [];
  const real = second.sink.republish!.bind(second.sink);
  second.sink.republish = async (table, keys, over) => {
    republished.push(`${table} ${JSON.stringify(keys)} over ${over}`);
    await real(table, keys, over);
  };
  await second.applier.apply([change], consumer);
  assert.deepEqual(republished, ['public.lww [{"id":1}] over update']);
  assert.equal(second.applier.stats.skippedStale, 1);
  assert.deepEqual((await sql(env.targetDb, 'select id, v from lww')).rows, [{ id: 1, v: 9 }], "B's row kept");
});

test('a partition is applied by one apply at a time: a batch fetched again while the first one still commits its state waits, then is stale', async (t) => {
  const env = await testEnv([{ name: 'one-at-a-time', tables: [{ source: 'public.lww' }] }]);
  const h = await sinkHarness(env);
  t.after(() => h.close());
  await sql(env.targetDb, DDL('lww'));
  const parts = await h.build('one-at-a-time');
  const pos = (n: number) => `00000000000c0000:${n.toString(16).padStart(8, '0')}`;
  const change = (n: number, v: number | null): Pending => ({
    record: hashRecord({ table: 'public.lww', op: v === null ? 'delete' : 'upsert', update: n > 1 ? true : undefined, key: { id: 1 }, values: v === null ? null : { id: 1, v, updated_at: `2026-12-05T10:00:00.00${n}000Z` }, keep: [], position: pos(n), hash: null, sourceTsMs: Date.parse('2026-12-05T10:00:00Z') + n, origin: { topic: 'cdc', partition: 0, offset: String(n) } }),
    raw: { key: null, value: null },
  });
  const consumer = { consumer: `${env.prefix}.cdc:0` };
  await parts.applier.apply([change(1, 1)], consumer);
  // The first apply of [update v2, delete] commits the delete in the target, then waits in its state
  // commit (Redis restarting, say); meanwhile a restarted consumer brings the update again, alone.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const commitMany = parts.state.commitMany.bind(parts.state);
  let waiting = false;
  parts.state.commitMany = async (commits) => {
    waiting = true;
    await held;
    return commitMany(commits);
  };
  const first = parts.applier.apply([change(2, 2), change(3, null)], consumer);
  await waitFor('the first apply waits in its state commit', async () => waiting, 30000);
  parts.state.commitMany = commitMany;
  let secondDone = false;
  const second = parts.applier.apply([change(2, 2)], consumer).then((r) => ((secondDone = true), r));
  await sleep(1000);
  assert.equal(secondDone, false, 'the second apply of the partition waits for the first');
  release();
  await first;
  const r = await second;
  assert.equal(r.skippedStale, 1, 'then its change is stale');
  assert.deepEqual(await log('lww'), ['1I1', '1D1'], 'the update was not written back after the delete');

  async function log(table: string) {
    return (await sql(env.targetDb, `select id, op, v from ${table}_log order by seq`)).rows.map((x) => `${x.id}${x.op}${x.v}`);
  }
});
