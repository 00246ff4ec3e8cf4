/**
 * numeric NaN and ±Infinity round-trip exactly, source → Kafka → target, in the snapshot, in
 * inserts and in updates (both ways: a finite value becoming NaN and back), for numeric(3,2),
 * numeric(4,0), numeric(6,4), an array of numeric(5,2) and unconstrained numeric. (PostgreSQL lets a
 * numeric(p,s) column hold NaN only: "A field with precision 3, scale 2 cannot hold an infinite
 * value"; ±Infinity need unconstrained numeric.) Nothing is dead-lettered. The value schema gains the
 * string branch for those columns as a new, BACKWARD-compatible version of the subject the first
 * schema was registered under, and keeps it after a restart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AvroCodec } from '../src/core/codec.js';
import { topics } from '../src/core/kafka.js';
import { holdDatabases, readTopic, sql, startRuntime, testEnv, waitFor } from './helpers.js';

const DDL = `create table nums (id int primary key, a numeric(3,2), b numeric(4,0), c numeric(6,4), d numeric, e numeric(5,2)[])`;

async function same(sourceDb: string, targetDb: string): Promise<boolean> {
  const q = `select id, t::text as t from nums t order by id`;
  const [s, d] = await Promise.all([sql(sourceDb, q), sql(targetDb, q)]);
  return JSON.stringify(s.rows) === JSON.stringify(d.rows);
}

test('numeric NaN and ±Infinity round-trip exactly through snapshot, insert and update', async (t) => {
  const env = await testEnv([{ name: 'nums-sync', tables: [{ source: 'public.nums' }], conflict: { strategy: 'source-wins' } }]);
  const release = await holdDatabases(env);
  t.after(async () => {
    await release();
    await env.cleanup();
  });
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  // Snapshot: NaN in every constrained column, ±Infinity in the unconstrained one, finite and NULL rows.
  await sql(env.sourceDb, `insert into nums values
    (1, 'NaN', 'NaN', 'NaN', 'NaN', '{NaN,1.50,NULL}'),
    (2, 1.23, 1234, 12.3456, 'Infinity', null),
    (3, -9.99, -9999, 0.0001, '-Infinity', '{}'),
    (4, null, null, null, null, null),
    (5, 0, 0, -0.5, 1e-30, '{-999.99}')`);
  let { rt } = await startRuntime(env);
  await waitFor('snapshot rows to match', () => same(env.sourceDb, env.targetDb), 60_000);

  // Streamed inserts, and updates carrying NaN over finite values and back.
  await sql(env.sourceDb, `insert into nums values (11, 'NaN', 'NaN', 'NaN', 'Infinity', '{NaN}'), (12, 5.55, 'NaN', 1.5, '-Infinity', null)`);
  await sql(env.sourceDb, `update nums set a = 'NaN', b = 'NaN', c = 'NaN', d = 'NaN', e = '{1.00,NaN}' where id = 2`);
  await sql(env.sourceDb, `update nums set a = 1.00, b = 1, c = 1, d = 1, e = '{1}' where id = 1`);
  await sql(env.sourceDb, `update nums set d = 'NaN', a = 'NaN' where id = 3`);
  await waitFor('streamed rows to match', () => same(env.sourceDb, env.targetDb), 60_000);
  const target = await sql(env.targetDb, `select id, a::text, b::text, c::text, d::text, e::text from nums where id in (2, 3, 11) order by id`);
  assert.deepEqual(target.rows, [
    { id: 2, a: 'NaN', b: 'NaN', c: 'NaN', d: 'NaN', e: '{1.00,NaN}' },
    { id: 3, a: 'NaN', b: '-9999', c: '0.0001', d: 'NaN', e: '{}' },
    { id: 11, a: 'NaN', b: 'NaN', c: 'NaN', d: 'Infinity', e: '{NaN}' },
  ]);
  assert.equal(rt.pipelines[0]!.capture!.stats.deadLettered, 0);
  assert.equal(rt.pipelines[0]!.applier!.stats.deadLettered, 0);
  assert.equal((await readTopic(topics.dlq(env.prefix, 'nums-sync')).catch(() => [])).length, 0);

  // The registry: a first version with plain decimals, then the one whose decimals carry a string branch.
  const subject = `${topics.cdc(env.prefix, 'public', 'nums')}-value`;
  const registry = env.config.schemaRegistry.url;
  const versions = (await (await fetch(`${registry}/subjects/${subject}/versions`)).json()) as number[];
  assert.ok(versions.length >= 2, `${versions.length} versions`);
  const fieldTypes = async (version: number | 'latest') => {
    const r = (await (await fetch(`${registry}/subjects/${subject}/versions/${version}`)).json()) as { id: number; schema: string };
    const env = JSON.parse(r.schema) as { fields: { name: string; type: unknown }[] };
    const value = (env.fields.find((f) => f.name === 'before')!.type as { fields?: { name: string; type: unknown }[] }[])[1]!;
    return { id: r.id, types: Object.fromEntries(value.fields!.map((f) => [f.name, f.type])) };
  };
  const dec = (p: number, s: number) => ({ type: 'bytes', logicalType: 'decimal', precision: p, scale: s });
  const first = await fieldTypes(versions[0]!);
  assert.deepEqual(first.types.a, ['null', dec(3, 2)]);
  const latest = await fieldTypes('latest');
  assert.deepEqual(latest.types.a, ['null', dec(3, 2), 'string']);
  assert.deepEqual(latest.types.b, ['null', dec(4, 0), 'string']);
  assert.deepEqual(latest.types.c, ['null', dec(6, 4), 'string']);
  assert.deepEqual(latest.types.e, ['null', { type: 'array', items: ['null', dec(5, 2), 'string'] }]);
  assert.deepEqual(latest.types.id, ['null', 'int']);

  // After a restart the columns keep the string branch: a finite row is written with the latest schema.
  await rt.stop();
  ({ rt } = await startRuntime(env));
  await sql(env.sourceDb, `insert into nums values (20, 2.00, 2, 2, 2, '{2}')`);
  await waitFor('row 20', () => same(env.sourceDb, env.targetDb), 60_000);
  const codec = new AvroCodec(registry);
  const messages = await readTopic(topics.cdc(env.prefix, 'public', 'nums'));
  const row20 = [];
  for (const m of messages) if (m.key && ((await codec.decode(m.key)) as { id: number }).id === 20) row20.push(m); // keyless: snapshot ends
  assert.equal(row20.length, 1);
  assert.equal(row20[0]!.value!.readInt32BE(1), latest.id);
  assert.equal((await fieldTypes('latest')).id, latest.id, 'no new version after the restart');
});
