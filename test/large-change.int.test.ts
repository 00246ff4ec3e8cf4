/**
 * A change larger than its change topic takes (max.message.bytes: 16 MiB on the topics syncline
 * creates), from the snapshot and from the stream. Kafka refuses such a message on every attempt:
 * capture used to retry it forever, holding every later change of the pipeline behind it (the slot
 * not advancing, a warning every 10 s). It is now dead-lettered as `invalid` (KAFKA_MESSAGE_TOO_LARGE:
 * the table, the key, the size, the limit, the largest column, what to do) without its row, and the
 * pipeline goes on; a later, smaller version of the row converges; a requeue is refused with what to
 * do instead (capture's own letters have no message to send back). A large row capture cannot encode
 * is dead-lettered without the row too (the letter would not fit either).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksum, readTopic, runCli, sql, startRuntime, testEnv, waitFor } from './helpers.js';

test('a change over its topic\'s max.message.bytes is dead-lettered (key, size, limit), the pipeline goes on', async (t) => {
  const env = await testEnv([{ name: 'big', tables: [{ source: 'public.b' }], conflict: { strategy: 'source-wins' } }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `create table b (id int primary key, v text, grid int[])`);
  await sql(env.targetDb, `create table b (id int primary key, v text, grid int[])`);
  // 17.6 MB of text that does not compress away: over the topic's 16 MiB.
  const big = `(select string_agg(md5(g::text || $1), '') from generate_series(1, 550000) g)`;
  await sql(env.sourceDb, `insert into b select g, 'x' || g from generate_series(1, 5) g`);
  await sql(env.sourceDb, `insert into b values (50, ${big.replace('$1', "'snap'")})`);
  const { rt } = await startRuntime(env);
  const dlqTopic = `${env.prefix}.dlq.big`;
  const letters = async () => (await readTopic(dlqTopic).catch(() => [])).filter((m) => m.headers['syncline.error.code'] === 'KAFKA_MESSAGE_TOO_LARGE');
  await waitFor('the snapshot (but the large row) on the target', async () => (await checksum(env.targetDb, 'b', 'id')).count === 5, 90_000, 300);
  await waitFor('the capture streams', async () => (rt.pipelines[0]!.capture?.stats.confirmed ?? '') !== '');
  await sql(env.sourceDb, `insert into b values (100, ${big.replace('$1', "'stream'")})`);
  // Large and not encodable (a two-dimensional array): capture's letter would hold the 17.6 MB row.
  await sql(env.sourceDb, `insert into b values (102, ${big.replace('$1', "'grid'")}, '{{1,2},{3,4}}')`);
  await sql(env.sourceDb, `insert into b values (101, 'after')`);
  await waitFor('the change after the large one on the target', async () => (await sql(env.targetDb, 'select count(*)::int as n from b where id = 101')).rows[0].n === 1, 60_000, 300);

  const dead = await letters();
  assert.deepEqual(dead.map((m) => m.headers['syncline.key']).sort(), ['[100]', '[50]'], 'both large changes dead-lettered, once each');
  const grid = (await readTopic(dlqTopic)).filter((m) => m.headers['syncline.key'] === '[102]');
  assert.equal(grid.length, 1, 'the unencodable large row dead-lettered once');
  assert.equal(grid[0]!.headers['syncline.error.code'], 'AVRO_MULTIDIM_ARRAY');
  assert.equal(grid[0]!.headers['syncline.omitted'], 'value');
  assert.equal(grid[0]!.value, null);
  assert.match(grid[0]!.headers['syncline.error.message']!, /\[left out of this letter, over the max\.message\.bytes of .*\.dlq\.big \(16777216\): the change \(\d+ bytes; the source still holds the row\)\]/);
  for (const m of dead) {
    assert.equal(m.value, null, 'the row is not in the letter');
    assert.match(m.headers['syncline.error.message']!, new RegExp(`cannot produce the (snapshot row|insert) of public\\.b key \\[(50|100)\\]: its message is \\d+ bytes \\(largest columns: v 176\\d{5} bytes, id 8 bytes\\), over the max\\.message\\.bytes of its change topic ${env.prefix}\\.cdc\\.public\\.b \\(16777216\\)`));
  }
  assert.equal(rt.pipelines[0]!.capture?.stats.deadLettered, 3);

  // The remedy the letter names: a smaller version of the row from the source converges.
  await sql(env.sourceDb, `update b set v = 'small now', grid = null where id in (50, 100, 102)`);
  await waitFor('the re-emitted rows on the target', async () => {
    const [a, b] = [await checksum(env.sourceDb, 'b', 'id'), await checksum(env.targetDb, 'b', 'id')];
    return a.count === 9 && a.md5 === b.md5;
  }, 60_000, 300);

  // Nothing to send back: a requeue says what to do instead.
  const requeue = await runCli(['dlq', 'requeue', dead[0]!.headers['syncline.dlq.id']!, '-c', env.configFile, '--by', 'erin']);
  assert.notEqual(requeue.code, 0);
  assert.match(requeue.err + requeue.out, /has no original message to requeue .*re-emit the row from the source/s);
});

// A conflict letter carries both versions of the row in a header, and the change itself: a large row
// makes it larger than the dead-letter topic takes, and the processor used to retry it for ever (the
// pipeline's consumer held there). Here the dead-letter topic takes 1 MB and the row is 2.2 MB: the
// letter leaves out the versions, then the change (syncline.omitted, said in the message), and resolving
// it reads the change at its origin offset.
test('a dead letter larger than its topic takes leaves out the row versions and the change; resolving it reads the change at its origin', async (t) => {
  const env = await testEnv([{ name: 'mc', tables: [{ source: 'public.m' }], conflict: { strategy: 'manual' } }], { extra: { observability: { port: 0 } } });
  t.after(() => env.cleanup());
  const DDL = `create table m (id int primary key, v text, updated_at timestamptz not null default clock_timestamp())`;
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into m (id, v) select g, 'v' || g from generate_series(1, 3) g`);
  const { rt } = await startRuntime(env);
  await waitFor('snapshot', async () => (await checksum(env.targetDb, 'm', 'id')).count === 3, 60_000, 300);
  const dlqTopic = `${env.prefix}.dlq.mc`;
  const admin = await rt.kafka.getAdmin();
  await admin.alterConfigs({ validateOnly: false, resources: [{ type: 2, name: dlqTopic, configEntries: [{ name: 'max.message.bytes', value: '1048576' }] }] } as never);

  await sql(env.targetDb, `update m set v = 'edited on the target' where id = 1`);
  await sql(env.sourceDb, `update m set v = (select string_agg(md5(g::text), '') from generate_series(1, 70000) g), updated_at = clock_timestamp() where id = 1`);
  await sql(env.sourceDb, `update m set v = 'next', updated_at = clock_timestamp() where id = 2`);
  await waitFor('key 2 applied past the conflict of key 1', async () => (await sql(env.targetDb, `select v from m where id = 2`)).rows[0].v === 'next', 60_000, 300);
  const letters = (await readTopic(dlqTopic)).filter((m) => m.headers['syncline.dlq.kind'] === 'conflict');
  assert.equal(letters.length, 1);
  const l = letters[0]!;
  assert.equal(l.headers['syncline.omitted'], 'conflict,value');
  assert.equal(l.value, null);
  assert.match(l.headers['syncline.error.message']!, /\[left out of this letter, over the max\.message\.bytes of .*\.dlq\.mc \(1048576\): the conflict's row versions \(\d+ bytes\); the change \(\d+ bytes; it stays at .*\.cdc\.public\.m\/\d+@\d+\)\]/);

  const id = l.headers['syncline.dlq.id']!;
  // What an operator sees of it: the CLI says what was left out; the console says why there are no
  // versions to compare, and still offers to keep either side.
  const shown = await runCli(['dlq', 'show', id, '-c', env.configFile]);
  assert.equal(shown.code, 0, shown.err);
  assert.match(shown.out, /left out: +conflict, value \(the letter was larger than its topic takes; the change is read at its origin offset when acted on\)/);
  const res = await fetch(`http://127.0.0.1:${rt.httpPort}/console/dlq/${encodeURIComponent(id)}?pipeline=mc`);
  const page = await res.text();
  assert.equal(res.status, 200, page.slice(0, 500));
  assert.match(page, /The row versions were left out of this dead letter: with them it was larger than the dead-letter topic takes, and so was the change itself/);
  assert.match(page, /<button type="submit" name="choice" value="source">Keep source<\/button>/);
  assert.match(page, /<button type="submit" name="choice" value="target">Keep target<\/button>/);
  assert.doesNotMatch(page, /Apply merged row/);

  const r = await runCli(['dlq', 'resolve', id, '--choice', 'source', '--by', 'frank', '-c', env.configFile]);
  assert.equal(r.code, 0, r.err);
  await waitFor('the source version on the target', async () => {
    const [a, b] = [await checksum(env.sourceDb, 'm', 'id'), await checksum(env.targetDb, 'm', 'id')];
    return a.md5 === b.md5;
  }, 60_000, 300);
});
