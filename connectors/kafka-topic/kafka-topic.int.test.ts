/**
 * The Kafka topic source end to end, on the real stack: Debezium 3.6.1 (embedded engine, the
 * benchmark's harness bench/debezium/, built from Maven Central on first use) captures a PostgreSQL
 * table into a topic; syncline reads that topic (source type kafka-topic) and applies it to a
 * PostgreSQL target. Also plain JSON rows and Avro rows through the registry written by the test,
 * poison records dead-lettered with their offset, and kill -9 of the capture child mid-stream.
 *
 * "Nothing applied twice" is seen by the target itself: a trigger logs every row version (id, v)
 * written; the source bumps v on each update, so a version written twice is a change applied twice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { buildDebezium, debeziumCommand } from '../../bench/debezium.js';
import { parseConfig } from '../../src/core/config/load.js';
import type { SynclineConfig } from '../../src/core/config/schema.js';
import { Runtime } from '../../src/runtime.js';
import { AvroCodec } from '../../src/core/codec.js';
import { eventPosition } from '../../src/core/envelope.js';
import { envelopeFromAvro } from '../../src/core/avro.js';
import { topics } from '../../src/core/kafka.js';
import { KafkaTopicSourceMonitor } from './monitor.js';
import { kafkaTopicResources } from './resources.js';
import type { KafkaTopicSourceConfig } from './spec.js';
import { createDb, deleteTopics, dropDb, dropSlots, PG, readTopic, sleep, soak, spawnCli, sql, uid, waitFor } from '../../test/helpers.js';

const BROKERS = ['127.0.0.1:9092'];
const CCOMPAT = 'http://127.0.0.1:8081/apis/ccompat/v7';
const APICURIO_V2 = 'http://127.0.0.1:8081/apis/registry/v2';

const ITEMS = 'id bigint primary key, name text, qty int not null, price numeric(12,2), v int not null default 0, seen timestamp, updated_at timestamptz not null default now()';
const COLUMNS = { id: 'int8', name: 'text', qty: 'int4', price: 'numeric(12,2)', v: 'int4', seen: 'timestamp', updated_at: 'timestamptz' };
const ROWS = `select id, name, qty, price::text as price, v, seen::text as seen, updated_at from items order by id`;

interface Env {
  id: string;
  prefix: string;
  srcDb: string;
  dstDb: string;
  topic: string;
  group: string;
  configFile: string;
  config: SynclineConfig;
  runtimes: Runtime[];
  children: ChildProcess[];
  cleanup(): Promise<void>;
}

/** Databases, the foreign topic (3 partitions), the target table with its write log, and a config kafka-topic → PostgreSQL. */
async function env(source: Record<string, unknown>, opts: { partitions?: number; pipeline?: Record<string, unknown> } = {}): Promise<Env> {
  const id = uid();
  const prefix = `t${id}`;
  const srcDb = `syncline_t_${id}_src`;
  const dstDb = `syncline_t_${id}_dst`;
  const topic = `${prefix}.foreign.items`;
  const group = `${prefix}.kafka-topic`;
  await createDb(srcDb);
  await createDb(dstDb);
  await sql(srcDb, `create table items (${ITEMS})`);
  await sql(dstDb, `create table items (${ITEMS});
    create table applied (id bigint, v int, op text);
    create function log_write() returns trigger language plpgsql as $$ begin insert into applied values (new.id, new.v, tg_op); return new; end $$;
    create trigger log_write after insert or update on items for each row execute function log_write();`);
  const kafka = new Kafka({ brokers: BROKERS, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: opts.partitions ?? 3 }], waitForLeaders: true });
  await admin.disconnect();
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: BROKERS, partitions: 3 },
    schemaRegistry: { url: CCOMPAT },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 }, batch: { size: 200 } },
    pipelines: {
      'from-topic': {
        source: { type: 'kafka-topic', brokers: BROKERS, group, sessionTimeoutMs: 6000, lingerMs: 5, topics: [{ topic, table: 'public.items', key: ['id'], columns: COLUMNS }], ...source },
        target: { type: 'postgres', connection: { ...PG, database: dstDb } },
        conflict: { strategy: 'source-wins' },
        tables: [{ source: 'public.items' }],
        ...(opts.pipeline ?? {}),
      },
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'syncline-kt-'));
  const configFile = join(dir, 'config.yaml');
  const text = JSON.stringify(doc, null, 2);
  writeFileSync(configFile, text);
  const config = parseConfig(text, configFile, {});
  const e: Env = {
    id, prefix, srcDb, dstDb, topic, group, configFile, config, runtimes: [], children: [],
    async cleanup() {
      for (const c of e.children) if (c.exitCode === null && c.signalCode === null) { c.kill('SIGKILL'); await once(c, 'exit'); }
      await Promise.allSettled(e.runtimes.map((r) => r.stop()));
      await dropSlots(prefix);
      await dropDb(srcDb);
      await dropDb(dstDb);
      await deleteTopics(prefix).catch(() => undefined);
    },
  };
  return e;
}

async function start(e: Env, stages: ('capture' | 'process' | 'sink')[]): Promise<void> {
  const rt = new Runtime(e.config, new Set(stages));
  e.runtimes.push(rt);
  const { done } = await rt.start();
  done.catch(() => undefined);
}

/** Debezium (embedded, real) capturing the source table into the foreign topic; it creates its slot and snapshots first. */
async function debezium(e: Env, opts: Record<string, string>): Promise<ChildProcess> {
  await sql(e.srcDb, `create publication ${e.prefix}_dbz for table items`);
  const args = [...debeziumCommand(), `host=${PG.host}`, `port=${PG.port}`, `user=${PG.user}`, `db=${e.srcDb}`, `slot=${e.prefix}_dbz`, `publication=${e.prefix}_dbz`,
    'table=public.items', `topic=${e.topic}`, `brokers=${BROKERS.join(',')}`, 'snapshot=initial', 'tombstones=true', ...Object.entries(opts).map(([k, v]) => `${k}=${v}`)];
  const child = spawn('java', ['-Xmx384m', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  e.children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  child.stdout!.resume();
  child.on('exit', (code, signal) => {
    if (signal === null && code !== 0) console.error(`debezium exited ${code}: ${err}`);
  });
  return child;
}

const rows = async (db: string) => JSON.stringify((await sql(db, ROWS).catch(() => ({ rows: [] }))).rows);
/** Row versions the target wrote more than once: a change applied twice. */
const twice = async (e: Env) => (await sql(e.dstDb, `select id, v, count(*)::int n from applied group by id, v having count(*) > 1 order by id, v limit 5`)).rows;

/** Inserts, updates (v + 1) and deletes in small transactions until stopped; resolves with the number of statements. */
function writer(db: string, first: number): { stop(): Promise<number> } {
  let on = true;
  let n = 0;
  const run = (async () => {
    for (let i = 0; on; i++) {
      const id = first + i;
      await sql(db, `begin; insert into items (id, name, qty, price, seen) values (${id}, 'w${id}', ${i % 7}, ${i}.25, '2026-01-02 03:04:05.123456');
        update items set v = v + 1, qty = qty + 1, updated_at = now() where id in (${id - 3}, ${first + (i * 7) % (i + 1)});
        ${i % 5 === 4 ? `delete from items where id = ${id - 2};` : ''} commit;`);
      n += 3;
      if (i % 20 === 0) await sleep(10);
    }
  })();
  return { async stop() { on = false; await run; return n; } };
}

const KILLS = soak(1, 2);
test(`Debezium (JSON, no schemas) → topic → kafka-topic source → PostgreSQL under a concurrent writer, capture killed with SIGKILL (at least ${KILLS === 1 ? 'once' : 'twice'}): rows equal, no version written twice`, { timeout: 25 * 60_000 }, async (t) => {
  buildDebezium((s) => console.error(s));
  // Offsets committed every 3 s: each kill lands with records in the change topic that the group has not committed.
  const e = await env({ commitIntervalMs: 3000 });
  t.after(() => e.cleanup());
  await sql(e.srcDb, `insert into items (id, name, qty, price, seen) select g, 'pre' || g, g % 10, g * 1.5, '2025-06-30 23:59:59.5' from generate_series(1, 300) g`);
  await debezium(e, { format: 'json', decimal: 'string' });
  await start(e, ['process', 'sink']);
  let capture = spawnCli(['capture', '--config', e.configFile]);
  e.children.push(capture);

  const w = writer(e.srcDb, 10_000);
  const count = async () => Number((await sql(e.dstDb, 'select count(*)::int n from applied')).rows[0].n);
  const codec = new AvroCodec(CCOMPAT);
  /** Change-topic messages, and how many repeat a position already produced (records read again after a kill). */
  const repeats = async () => {
    const change = await readTopic(topics.cdc(e.prefix, 'public', 'items'));
    const positions = new Set<string>();
    for (const m of change) positions.add(eventPosition(envelopeFromAvro(await codec.decode(m.value))));
    return { messages: change.length, repeats: change.length - positions.size };
  };
  let floor = 0;
  // KILLS kills, and more (at most 4 in all) until one landed with produced records not yet committed
  // (offsets are committed every 3 s; under load a kill can land just after a commit: no repeat to check).
  for (let round = 0; round < 4; round++) {
    await waitFor('the target to take some changes', async () => (await count()) > floor + 200, 120_000);
    floor = await count();
    capture.kill('SIGKILL');
    await once(capture, 'exit');
    capture = spawnCli(['capture', '--config', e.configFile]);
    e.children.push(capture);
    if (round + 1 >= KILLS) {
      await waitFor('the target to take changes after the restart', async () => (await count()) > floor + 100, 120_000);
      if ((await repeats()).repeats > 0) break;
    }
  }
  const statements = await w.stop();
  assert.ok(statements > 300, `the writer ran ${statements} statements`);

  await waitFor('target rows equal to the source rows', async () => (await rows(e.srcDb)) === (await rows(e.dstDb)), 180_000, 500);
  assert.deepEqual(await twice(e), [], 'no row version written twice');
  const r = await repeats();
  console.error(`kafka-topic kill test: ${r.messages} change-topic messages, ${r.repeats} repeats after the kills, ${await count()} target writes`);
  assert.ok(r.repeats > 0, 'the kills made records be read and produced again (and none was applied twice)');
  capture.kill('SIGTERM');
  const [code] = await once(capture, 'exit');
  assert.equal(code, 0, 'capture exits 0 on SIGTERM');
});

for (const format of ['json-schemas', 'avro'] as const) {
  test(`Debezium ${format === 'avro' ? 'Avro through the registry (Apicurio converter)' : 'JSON with embedded schemas'}: precise decimals, MicroTimestamps and deletes arrive exact; a poison record is dead-lettered with its offset and the rest flows on`, { timeout: 20 * 60_000 }, async (t) => {
    buildDebezium((s) => console.error(s));
    // The sink side as for any source: validation (qty >= 0) and latest-timestamp conflicts on updated_at.
    const pipeline = { conflict: { strategy: 'latest-timestamp', field: 'updated_at' }, tables: [{ source: 'public.items', validate: { fields: { qty: { min: 0 } } } }] };
    const e = await env(format === 'avro' ? { format: 'avro', registryUrl: CCOMPAT } : {}, { partitions: 1, pipeline });
    t.after(() => e.cleanup());
    await sql(e.srcDb, `insert into items (id, name, qty, price, seen) select g, 'pre' || g, g, g * 1.25, '2024-02-29 12:00:00.000001' from generate_series(1, 50) g`);
    await debezium(e, format === 'avro' ? { format: 'avro', registry: APICURIO_V2 } : { format: 'json-schemas' });
    await start(e, ['capture', 'process', 'sink']);
    await waitFor('the snapshot rows in the target', async () => (await rows(e.dstDb)) === (await rows(e.srcDb)), 120_000);

    // A record nobody can read, in the middle of Debezium's stream (partition 0, so its offset is known).
    const kafka = new Kafka({ brokers: BROKERS, logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    const [meta] = await producer.send({ topic: e.topic, messages: [{ key: format === 'avro' ? null : '{"id":1}', value: format === 'avro' ? Buffer.from([0, 0, 0, 0x7f, 0x7f, 1, 2]) : 'not json {' }] });
    await producer.disconnect();
    await sql(e.srcDb, `update items set name = 'after poison', v = v + 1, price = -0.01 where id <= 10; delete from items where id between 41 and 45; insert into items (id, name, qty, price, seen) values (51, null, 0, 99999.99, null)`);
    await waitFor('the changes after the poison record in the target', async () => (await rows(e.dstDb)) === (await rows(e.srcDb)), 120_000);

    const dlq = await readTopic(topics.dlq(e.prefix, 'from-topic'));
    assert.equal(dlq.length, 1, 'one dead letter');
    const h = dlq[0]!.headers;
    assert.equal(h['syncline.original.topic'], e.topic);
    assert.equal(h['syncline.original.partition'], '0');
    assert.equal(h['syncline.original.offset'], meta!.baseOffset);
    assert.equal(h['syncline.error.code'], format === 'avro' ? 'SCHEMA_UNKNOWN' : 'RECORD_NOT_JSON');
    assert.match(h['syncline.error.message']!, new RegExp(`${e.topic} partition 0 offset ${meta!.baseOffset}: `));
    assert.deepEqual(await twice(e), []);

    // An invalid change is dead-lettered by validation; a change older than the target's row loses (latest-timestamp).
    await sql(e.dstDb, `update items set name = 'edited at the target', updated_at = now() + interval '1 hour' where id = 21`);
    await sql(e.srcDb, `update items set qty = -5, v = v + 1 where id = 20; update items set name = 'edited at the source', v = v + 1 where id = 21; update items set name = 'last', v = v + 1 where id = 22`);
    await waitFor('the last change in the target', async () => (await sql(e.dstDb, 'select name from items where id = 22')).rows[0]?.name === 'last', 60_000);
    const kept = (await sql(e.dstDb, 'select id, qty, name from items where id in (20, 21) order by id')).rows;
    assert.deepEqual(kept, [{ id: '20', qty: 20, name: 'pre20' }, { id: '21', qty: 21, name: 'edited at the target' }]);
    const letters = await waitFor('the validation dead letter', async () => { const d = await readTopic(topics.dlq(e.prefix, 'from-topic')); return d.length >= 2 ? d : null; }, 30_000);
    const invalid = letters.find((l) => l.headers['syncline.violations'] !== undefined);
    assert.ok(invalid, letters.map((l) => l.headers['syncline.error.code']).join(' '));
    assert.match(invalid.headers['syncline.violations']!, /"field":"qty","rule":"min"/);
  });
}

test('plain JSON rows and Avro rows through the registry (written by the test): upserts, tombstone deletes, bad records dead-lettered by offset', { timeout: 10 * 60_000 }, async (t) => {
  const json = await env({ envelope: 'row', numericTimestamps: 'millis' }, { partitions: 2 });
  t.after(() => json.cleanup());
  const kafka = new Kafka({ brokers: BROKERS, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const msgs = [];
  for (let i = 1; i <= 40; i++) msgs.push({ key: JSON.stringify({ id: i }), value: JSON.stringify({ id: i, name: `n${i}`, qty: i, price: `${i}.10`, v: 0, seen: 1767225600000 + i, updated_at: '2026-01-01T00:00:00Z', ignored: [1] }) });
  for (let i = 1; i <= 10; i++) msgs.push({ key: JSON.stringify({ id: i }), value: JSON.stringify({ id: i, name: `m${i}`, qty: i, price: `${i}.20`, v: 1, seen: null, updated_at: '2026-01-02T00:00:00+01:00' }) });
  for (let i = 31; i <= 35; i++) msgs.push({ key: JSON.stringify({ id: i }), value: null });
  msgs.push({ key: JSON.stringify({ id: 99 }), value: JSON.stringify({ id: 99, qty: 'many', v: 0, updated_at: '2026-01-01T00:00:00Z' }) }); // wrong type
  msgs.push({ key: null, value: JSON.stringify({ name: 'no key', qty: 1, v: 0, updated_at: '2026-01-01T00:00:00Z' }) }); // no key
  await producer.send({ topic: json.topic, messages: msgs });
  await start(json, ['capture', 'process', 'sink']);
  const expected = `select id, name, qty, price, v, seen, updated_at from (values ${[...Array(40).keys()].map((k) => k + 1).filter((i) => i < 31 || i > 35).map((i) => i <= 10
    ? `(${i}::bigint, 'm${i}', ${i}, '${i}.20', 1, null::text, '2026-01-01T23:00:00Z'::timestamptz)`
    : `(${i}, 'n${i}', ${i}, '${i}.10', 0, ('2026-01-01'::timestamp + interval '1 millisecond' * ${i})::text, '2026-01-01T00:00:00Z')`).join(', ')}) r(id, name, qty, price, v, seen, updated_at) order by id`;
  const want = JSON.stringify((await sql(json.dstDb, expected)).rows);
  await waitFor('the JSON rows in the target', async () => (await rows(json.dstDb)) === want, 60_000);
  const dlq = await waitFor('two dead letters', async () => { const d = await readTopic(topics.dlq(json.prefix, 'from-topic')); return d.length >= 2 ? d : null; }, 30_000);
  const codes = dlq.map((d) => `${d.headers['syncline.error.code']}@${d.headers['syncline.original.partition']}/${d.headers['syncline.original.offset']}`);
  assert.equal(dlq.length, 2, codes.join(' '));
  assert.ok(codes.some((c) => c.startsWith('RECORD_VALUE@')) && codes.some((c) => c.startsWith('RECORD_KEY_MISSING@')), codes.join(' '));
  assert.match(dlq.find((d) => d.headers['syncline.error.code'] === 'RECORD_VALUE')!.headers['syncline.error.message']!, /column qty \(int4\)/);

  // The monitor: the topic answers, and every record (the bad ones too) is committed by the group in the end.
  const sourceConfig = json.config.pipelines['from-topic']!.source as unknown as KafkaTopicSourceConfig;
  const monitor = new KafkaTopicSourceMonitor(sourceConfig, sourceConfig.group, 5000);
  t.after(() => monitor.close());
  await monitor.ping();
  await waitFor('the group to commit every record', async () => (await monitor.lag())?.lagBytes === 0, 30_000);
  const missing = new KafkaTopicSourceMonitor({ ...sourceConfig, topics: [{ ...sourceConfig.topics[0]!, topic: `${json.prefix}.nope` }] }, sourceConfig.group, 5000);
  t.after(() => missing.close());
  await assert.rejects(missing.ping(), /has no topic t[0-9a-f]+\.nope/);

  // pipeline drop: the group is listed (in use while capture runs), then deleted.
  const res = kafkaTopicResources(sourceConfig, { pipeline: 'from-topic', topicPrefix: json.prefix, tables: ['public.items'], origin: '', others: [] });
  t.after(() => res.close());
  assert.match((await res.list())[0]?.inUse ?? '', /member/);
  await Promise.all(json.runtimes.map((r) => r.stop()));
  const idle = await waitFor('the group without members', async () => { const l = await res.list(); return l.length === 1 && !l[0]!.inUse ? l : null; }, 30_000);
  await res.drop(idle);
  assert.deepEqual(await res.list(), []);

  // Avro rows (Confluent wire format, schema registered in the registry), keys as Avro records.
  const avro = await env({ format: 'avro', envelope: 'row', registryUrl: CCOMPAT }, { partitions: 2 });
  t.after(() => avro.cleanup());
  const codec = new AvroCodec(CCOMPAT);
  const keyId = await codec.register(`${avro.topic}-key`, { type: 'record', name: 'Key', fields: [{ name: 'id', type: 'long' }] });
  const valueId = await codec.register(`${avro.topic}-value`, { type: 'record', name: 'Item', fields: [
    { name: 'id', type: 'long' }, { name: 'name', type: ['null', 'string'] }, { name: 'qty', type: 'int' },
    { name: 'price', type: ['null', 'string'] }, { name: 'v', type: 'int' },
    { name: 'seen', type: ['null', { type: 'long', logicalType: 'local-timestamp-micros' }] }, { name: 'updated_at', type: 'string' },
  ] });
  const amsgs = [];
  for (let i = 1; i <= 20; i++) amsgs.push({ key: await codec.encode(keyId, { id: BigInt(i) }), value: await codec.encode(valueId, { id: BigInt(i), name: i % 2 ? `a${i}` : null, qty: i, price: `${i}.5`, v: 0, seen: '2026-01-01T00:00:00.000001', updated_at: '2026-03-01 10:00:00+00' }) });
  amsgs.push({ key: await codec.encode(keyId, { id: 3n }), value: null });
  await producer.send({ topic: avro.topic, messages: amsgs });
  await start(avro, ['capture', 'process', 'sink']);
  await waitFor('the Avro rows in the target', async () => (await sql(avro.dstDb, 'select count(*)::int n from items')).rows[0].n === 19, 60_000);
  const r = (await sql(avro.dstDb, `select id, name, price::text, seen::text, updated_at = '2026-03-01T10:00:00Z' as t from items where id in (1, 2) order by id`)).rows;
  assert.deepEqual(r, [{ id: '1', name: 'a1', price: '1.50', seen: '2026-01-01 00:00:00.000001', t: true }, { id: '2', name: null, price: '2.50', seen: '2026-01-01 00:00:00.000001', t: true }]);
});
