/**
 * `batch.size` bounds the records written to the target in one transaction: a longer consumer
 * batch is applied in consecutive parts, each with its own read, write and state commit, in order
 * (a key whose changes fall into two parts ends in its last change's state). Real target and Redis.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashRecord } from '../src/process/mapper.js';
import type { Pending } from '../src/sink/applier.js';
import type { Row } from '../src/core/envelope.js';
import '../connectors/index.js';
import { sinkHarness, sql, testEnv } from './helpers.js';

const DDL = `
  create table items (id int primary key, v int not null, updated_at timestamptz not null);
  create table items_tx (seq bigserial primary key, id int not null, op text not null, tx bigint not null default txid_current());
  create function items_tx() returns trigger language plpgsql as $$ begin
    insert into items_tx (id, op) values (case when tg_op = 'DELETE' then old.id else new.id end, left(tg_op, 1));
    return null; end $$;
  create trigger tx after insert or update or delete on items for each row execute function items_tx();`;

test('batch.size: a batch longer than the size is written in transactions of at most that many records, in order', async (t) => {
  const env = await testEnv([
    { name: 'small', tables: [{ source: 'public.items' }], batch: { size: 3 } },
    { name: 'whole', follows: 'small', tables: [{ source: 'public.items' }] },
  ]);
  const h = await sinkHarness(env);
  t.after(() => h.close());
  await sql(env.targetDb, DDL);
  const pos = (n: number) => `00000000000b0000:${n.toString(16).padStart(8, '0')}`;
  const change = (id: number, n: number, v: number | null): Pending => {
    const values: Row | null = v === null ? null : { id, v, updated_at: `2026-12-03T10:00:00.${String(n).padStart(3, '0')}000Z` };
    const record = hashRecord({ table: 'public.items', op: v === null ? 'delete' : 'upsert', key: { id }, values, keep: [], position: pos(n), hash: null, sourceTsMs: Date.parse('2026-12-03T10:00:00Z') + n, origin: { topic: 'cdc', partition: 0, offset: String(n) } });
    return { record, raw: { key: null, value: null } };
  };
  // Eight changes: rows 1–5 inserted, row 1 updated in the second part, row 2 deleted in the third.
  const batch = [change(1, 1, 1), change(2, 2, 1), change(3, 3, 1), change(4, 4, 1), change(1, 5, 2), change(5, 6, 1), change(2, 7, null), change(3, 8, 2)];
  // Transactions in commit order; within one, its rows by key (the statements of one transaction
  // follow the sink's grouping, which is not what this test is about).
  const txs = async () => (await sql(env.targetDb, 'select tx, string_agg(id || op, \' \' order by id, seq) as ops from items_tx group by tx order by min(seq)')).rows.map((r) => r.ops as string);
  const rows = async () => (await sql(env.targetDb, 'select id, v from items order by id')).rows.map((r) => `${r.id}:${r.v}`);

  const small = await h.build('small');
  const r = await small.applier.apply(batch, { consumer: `${env.prefix}.cdc:0` });
  assert.equal(r.applied, 8);
  assert.deepEqual(await txs(), ['1I 2I 3I', '1U 4I 5I', '2D 3U'], 'three transactions of at most 3 records, in batch order');
  assert.deepEqual(await rows(), ['1:2', '3:2', '4:1', '5:1']);
  // Redelivered whole (a restart before the offset commit): every change is stale, nothing written.
  const again = await small.applier.apply(batch, { consumer: `${env.prefix}.cdc:0` });
  assert.equal(again.applied, 0);
  assert.equal(again.skippedStale, 8);
  assert.equal((await txs()).length, 3);

  // The test default (500) takes the same eight changes in one transaction.
  await sql(env.targetDb, 'truncate items, items_tx');
  const whole = await h.build('whole');
  assert.equal((await whole.applier.apply(batch, { consumer: `${env.prefix}.cdc:1` })).applied, 8);
  const one = await txs();
  assert.equal(one.length, 1, `one transaction, got ${JSON.stringify(one)}`);
  assert.deepEqual(await rows(), ['1:2', '3:2', '4:1', '5:1']);
});
