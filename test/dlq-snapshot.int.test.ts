/**
 * Rows refused during the initial snapshot, by each stage that can refuse one — capture (a value the
 * Avro schema cannot carry), the processor (a validation rule), the target (a type error) — three of
 * one table each: every one is its own dead letter with its own stable id, `syncline dlq list` shows
 * every letter in the topic, each names table, key and column, and each can be settled. Letters that
 * an earlier version wrote with colliding ids (every refused snapshot row of a table got one id) are
 * listed and settled one by one too. A change the processor cannot decode names table, key and
 * column as well.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel } from 'kafkajs';
import { AvroCodec } from '../src/core/codec.js';
import { topics } from '../src/core/kafka.js';
import { deadLetterId } from '../src/sink/dead-letters.js';
import { holdDatabases, readTopic, runCli, sql, startRuntime, testEnv, waitFor } from './helpers.js';


interface Listed { id: string; kind: string; reason: string; state: string; table?: string; key?: string; column?: string; errorCode: string; errorMessage: string }

test('rows refused in a snapshot: one dead letter each, all listed, each named and settled', async (t) => {
  const env = await testEnv(
    [{ name: 'items-sync', tables: [{ source: 'public.items', validate: { fields: { note: { pattern: '^ok' } } } }], conflict: { strategy: 'source-wins' } }],
    { extra: { observability: { port: 0 } } },
  );
  const release = await holdDatabases(env);
  t.after(async () => {
    await release();
    await env.cleanup();
  });
  await sql(env.sourceDb, `create table items (id int primary key, qty int, grid int[], note text)`);
  // The target's qty is a smallint: 40000 is refused there (22003, PostgreSQL names the parameter).
  await sql(env.targetDb, `create table items (id int primary key, qty smallint, grid int[], note text)`);
  await sql(env.sourceDb, `insert into items values
    (1, 1, '{1}', 'ok'), (2, 2, '{2}', 'ok'), (3, 3, null, 'ok'),
    (10, 10, '{{1,2},{3,4}}', 'ok'), (11, 11, '{{5}}', 'ok'), (12, 12, '{{6,7}}', 'ok'),
    (20, 20, '{1}', 'bad'), (21, 21, '{1}', 'worse'), (22, 22, '{1}', 'bad'),
    (30, 40000, '{1}', 'ok'), (31, 40001, '{1}', 'ok'), (32, 50000, '{1}', 'ok')`);
  const { rt } = await startRuntime(env);
  const p = rt.pipelines[0]!;
  await waitFor('every refused row dead-lettered', async () =>
    p.capture!.stats.deadLettered === 3 && p.processor!.invalid.count === 3 && p.applier!.stats.deadLettered === 3 &&
    (await sql(env.targetDb, `select count(*)::int n from items`)).rows[0].n === 3, 60_000);

  // Three letters an earlier version wrote for the snapshot rows of another table: one id for all three.
  const dlqTopic = topics.dlq(env.prefix, 'items-sync');
  const legacyId = deadLetterId('items-sync', { kind: 'invalid', table: 'public.legacy', position: '0/16B3F20:0' });
  const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic: dlqTopic,
    messages: [1, 2, 3].map((id) => ({
      key: JSON.stringify({ id }),
      value: JSON.stringify({ op: 'r', after: { id, amount: 'NaN' } }),
      headers: {
        'syncline.dlq.id': legacyId, 'syncline.dlq.kind': 'invalid', 'syncline.dlq.reason': 'invalid', 'syncline.pipeline': 'items-sync',
        'syncline.error.code': 'AVRO_ENCODE', 'syncline.error.message': 'value does not match schema 420: invalid ["null","bytes"]: "NaN"',
        'syncline.attempts': '1', 'syncline.time': new Date().toISOString(), 'syncline.table': 'public.legacy', 'syncline.position': '0/16B3F20:0',
      },
    })),
  });
  t.after(() => producer.disconnect());

  // `syncline dlq list` shows every letter in the topic, each under its own id.
  const r = await runCli(['dlq', 'list', '-c', env.configFile, '--json']);
  assert.equal(r.code, 0, r.err);
  const listed = JSON.parse(r.out) as Listed[];
  assert.equal(listed.length, 12, listed.map((e) => `${e.id} ${e.table} ${e.key}`).join('\n'));
  assert.equal(new Set(listed.map((e) => e.id)).size, 12);
  const ofKey = (k: number) => listed.find((e) => e.table === 'public.items' && e.key === `[${k}]`)!;
  // Each names its table, key and column, in the headers and in the message.
  for (const [keys, code, column, reason] of [
    [[10, 11, 12], 'AVRO_MULTIDIM_ARRAY', 'grid', /cannot encode the snapshot row of public\.items key \[1\d\] column grid: holds a multi-dimensional array/],
    [[20, 21, 22], 'VALIDATION_FAILED', 'note', /^public\.items key \[2\d\]: 1 rule violated: note pattern/],
    [[30, 31, 32], 'PG_22003', 'qty', /upsert public\.items key \[3\d\] \(column qty\): value "\d+" is out of range for type smallint/],
  ] as const) {
    for (const k of keys) {
      const e = ofKey(k);
      assert.ok(e, `a letter for key ${k}`);
      assert.deepEqual([e.kind, e.errorCode, e.column], [code === 'PG_22003' ? 'failed' : 'invalid', code, column], `key ${k}`);
      assert.match(e.errorMessage, reason, `key ${k}`);
    }
  }
  const legacy = listed.filter((e) => e.table === 'public.legacy');
  assert.equal(legacy.length, 3);
  // The first keeps the id; the others are told apart by where they are in the topic.
  assert.equal(legacy.filter((e) => e.id === legacyId).length, 1);
  assert.equal(legacy.filter((e) => e.id.startsWith(`${legacyId}-0-`)).length, 2);
  // `dlq show` finds each of them.
  const shown = await runCli(['dlq', 'show', ofKey(11).id, '-c', env.configFile]);
  assert.equal(shown.code, 0, shown.err);
  assert.match(shown.out, /table\/key:\s+public\.items \[11\]\ncolumn:\s+grid/);

  const api = `http://127.0.0.1:${rt.httpPort}/api/dlq`;
  const act = async (id: string, action: string) => {
    const res = await fetch(`${api}/${encodeURIComponent(id)}/${action}`, { method: 'POST', headers: { 'x-syncline-user': 'ops' } });
    return { status: res.status, body: (await res.json()) as { error?: string; entry?: { state: string } } };
  };
  // Capture's letters have no message to send back: requeue says what to do instead; discard settles them.
  const requeueCapture = await act(ofKey(10).id, 'requeue');
  assert.equal(requeueCapture.status, 422);
  assert.match(requeueCapture.body.error!, /capture refused the change before it reached a change topic.*re-emit the row from the source/);
  for (const k of [10, 11, 12]) assert.equal((await act(ofKey(k).id, 'discard')).body.entry?.state, 'discarded');
  // Invalid rows: discarded (one through the CLI).
  const d = await runCli(['dlq', 'discard', ofKey(20).id, '-c', env.configFile, '--by', 'carol']);
  assert.equal(d.code, 0, d.err);
  for (const k of [21, 22]) assert.equal((await act(ofKey(k).id, 'discard')).body.entry?.state, 'discarded');
  // The target's column is widened, then its three letters are requeued and applied.
  await sql(env.targetDb, `alter table items alter column qty type int`);
  for (const k of [30, 31, 32]) assert.equal((await act(ofKey(k).id, 'requeue')).body.entry?.state, 'requeued');
  await waitFor('requeued rows applied', async () => (await sql(env.targetDb, `select string_agg(id || ':' || qty, ',' order by id) s from items where id >= 30`)).rows[0].s === '30:40000,31:40001,32:50000', 60_000);
  // The legacy letters, each under its own id.
  for (const e of legacy) assert.equal((await act(e.id, 'discard')).body.entry?.state, 'discarded', e.id);

  const open = await runCli(['dlq', 'list', '-c', env.configFile, '--json']);
  assert.deepEqual(JSON.parse(open.out), [], 'nothing open');
  const all = (await (await fetch(`${api}?state=all`)).json()) as { count: number; deadLetters: Listed[] };
  assert.equal(all.count, 12);
  assert.deepEqual(all.deadLetters.map((e) => e.state).sort(), [...Array(9).fill('discarded'), ...Array(3).fill('requeued')]);

  // The processor names the column too: a change of key 21 whose value breaks off inside its row
  // (as another producer might write it) is dead-lettered naming table, key and column.
  const cdc = topics.cdc(env.prefix, 'public', 'items');
  const codec = new AvroCodec(env.config.schemaRegistry.url);
  let of21: Awaited<ReturnType<typeof readTopic>>[number] | undefined;
  for (const m of await readTopic(cdc)) if (m.key && ((await codec.decode(m.key)) as { id: number }).id === 21) of21 = m;
  await producer.send({ topic: cdc, messages: [{ partition: of21!.partition, key: of21!.key, value: of21!.value!.subarray(0, of21!.value!.length - 3) }] });
  await waitFor('the broken change dead-lettered', async () => p.processor!.invalid.count === 4, 30_000);
  const broken = await waitFor('listed', async () => {
    const l = (await (await fetch(`${api}?kind=invalid`)).json()) as { deadLetters: Listed[] };
    return l.deadLetters.length === 1 ? l.deadLetters[0]! : undefined;
  });
  assert.deepEqual([broken.errorCode, broken.table, broken.key, broken.column], ['DECODE_FAILED', 'public.items', '[21]', 'note']);
  assert.match(broken.errorMessage, /^public\.items key \[21\]: cannot decode message with schema id \d+ in column note \(after\): /);
});
