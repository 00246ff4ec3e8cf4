/**
 * The RabbitMQ source end to end on the real stack: PostgreSQL → RabbitMQ (pipeline 1, the RabbitMQ
 * target) → a queue → RabbitMQ source (pipeline 2) → PostgreSQL. Pipeline 2's capture runs as a
 * child process and is killed with SIGKILL once mid-stream, under concurrent inserts, updates and
 * deletes; poison messages published straight into the queue are dead-lettered while the rest flows.
 * At the end: target rows equal the source rows, no row version was written twice, the poison is in
 * the DLQ topic with its delivery, and the queue is empty (nothing requeued).
 *
 * "Nothing applied twice" is seen by the target itself: a trigger logs every row version (id, seq)
 * written; every source write takes a new seq, so a version logged twice is a change applied twice.
 * Then plain JSON rows (format row), with a restart: the sequence continues after the reserved block;
 * and the connection cut at a TCP proxy while messages flow: the source connects again; copies of
 * applied messages (a redelivery, deterministically) are no-ops by their position.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect as tcpConnect, type Socket } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import '../../index.js';
import { parseConfig } from '../../../src/core/config/load.js';
import type { SynclineConfig } from '../../../src/core/config/schema.js';
import { topics } from '../../../src/core/kafka.js';
import { AvroCodec } from '../../../src/core/codec.js';
import { envelopeFromAvro } from '../../../src/core/avro.js';
import { eventPosition } from '../../../src/core/envelope.js';
import { Runtime } from '../../../src/runtime.js';
import { createDb, deleteTopics, dropDb, dropSlots, PG, readTopic, sleep, spawnCli, sql, uid, waitFor, withClient } from '../../../test/helpers.js';
import { RabbitmqSourceMonitor } from './monitor.js';
import type { RabbitmqSourceConfig } from './spec.js';

const RABBIT = { host: '127.0.0.1', port: 5672, user: 'guest', password: 'guest' };
const URL = `amqp://${RABBIT.user}:${RABBIT.password}@${RABBIT.host}:${RABBIT.port}`;
const CCOMPAT = 'http://127.0.0.1:8081/apis/ccompat/v7';
const COLUMNS = { id: 'int4', seq: 'int8', label: 'text' };
const ROWS = 'select id, seq::text, label from items order by id';

interface Env {
  prefix: string;
  srcDb: string;
  dstDb: string;
  queue: string;
  configFile: string;
  config: SynclineConfig;
  runtimes: Runtime[];
  cleanup(): Promise<void>;
}

/** Databases, an exchange and a queue bound to it, and a config: pipeline to-rabbit (PostgreSQL → exchange) and from-rabbit (queue → PostgreSQL). */
async function env(source: Record<string, unknown> = {}, withUpstream = true): Promise<Env> {
  const id = uid();
  const prefix = `t${id}`;
  const srcDb = `syncline_t_${id}_src`;
  const dstDb = `syncline_t_${id}_dst`;
  const exchange = `syncline_t_${id}_x`;
  const queue = `syncline_t_${id}_q`;
  await createDb(srcDb);
  await createDb(dstDb);
  await sql(srcDb, `create sequence seq; create table items (id int primary key, seq bigint not null, label text)`);
  await sql(dstDb, `create table items (id int primary key, seq bigint not null, label text);
    create table applied (id int, seq bigint, op text);
    create function log_write() returns trigger language plpgsql as $$ begin insert into applied values (new.id, new.seq, tg_op); return new; end $$;
    create trigger log_write after insert or update on items for each row execute function log_write();`);
  const conn = await amqp.connect(URL);
  const ch = await conn.createChannel();
  await ch.assertExchange(exchange, 'topic', { durable: true });
  await ch.assertQueue(queue, { durable: true });
  await ch.bindQueue(queue, exchange, '#');
  await conn.close();
  const pipelines: Record<string, unknown> = {
    'from-rabbit': {
      source: { type: 'rabbitmq', connection: RABBIT, queue, prefetch: 200, lingerMs: 5, tables: [{ table: 'public.items', key: ['id'], columns: COLUMNS }], ...source },
      target: { type: 'postgres', connection: { ...PG, database: dstDb } },
      conflict: { strategy: 'source-wins' },
      tables: [{ source: 'public.items' }],
      // Pipeline 1 captures public.items too: change topics of its own.
      changeTopicPrefix: `${prefix}.b`,
    },
  };
  if (withUpstream) {
    pipelines['to-rabbit'] = {
      source: { type: 'postgres', connection: { ...PG, database: srcDb }, slot: `${prefix}_to_rabbit`, publication: `${prefix}_to_rabbit`, snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
      target: { type: 'rabbitmq', connection: RABBIT, exchange, routingKey: '{table}.{op}' },
      conflict: { strategy: 'source-wins' },
      tables: [{ source: 'public.items' }],
    };
  }
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 3, sessionTimeoutMs: 10_000 },
    schemaRegistry: { url: CCOMPAT },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 }, batch: { size: 200 } },
    pipelines,
  };
  const dir = mkdtempSync(join(tmpdir(), 'syncline-rmqsrc-'));
  const configFile = join(dir, 'config.yaml');
  const text = JSON.stringify(doc, null, 2);
  writeFileSync(configFile, text);
  const e: Env = {
    prefix, srcDb, dstDb, queue, configFile, config: parseConfig(text, configFile, {}), runtimes: [],
    async cleanup() {
      await Promise.allSettled(e.runtimes.map((r) => r.stop()));
      const c = await amqp.connect(URL);
      const x = await c.createChannel();
      await x.deleteQueue(queue).catch(() => undefined);
      await x.deleteExchange(exchange).catch(() => undefined);
      await c.close().catch(() => undefined);
      await dropSlots(prefix);
      await dropDb(srcDb);
      await dropDb(dstDb);
      await deleteTopics(prefix).catch(() => undefined);
    },
  };
  return e;
}

async function start(e: Env, stages: ('capture' | 'process' | 'sink')[], only?: string[]): Promise<Runtime> {
  const rt = new Runtime(e.config, new Set(stages), only);
  e.runtimes.push(rt);
  const { done } = await rt.start();
  done.catch(() => undefined);
  return rt;
}

async function publish(queue: string, messages: { body: string; props?: amqp.Options.Publish }[]): Promise<void> {
  const conn = await amqp.connect(URL);
  const ch = await conn.createConfirmChannel();
  for (const m of messages) ch.sendToQueue(queue, Buffer.from(m.body), { persistent: true, ...(m.props ?? {}) });
  await ch.waitForConfirms();
  await conn.close();
}

async function queueDepth(queue: string): Promise<{ messageCount: number; consumerCount: number }> {
  const conn = await amqp.connect(URL);
  try {
    return await (await conn.createChannel()).checkQueue(queue);
  } finally {
    await conn.close();
  }
}

const rows = async (db: string) => JSON.stringify((await sql(db, ROWS).catch(() => ({ rows: [] }))).rows);
const twice = async (e: Env) => (await sql(e.dstDb, `select id, seq, count(*)::int n from applied group by id, seq having count(*) > 1 order by id limit 5`)).rows;
const applies = async (e: Env) => Number((await sql(e.dstDb, 'select count(*)::int n from applied')).rows[0].n);

/** Writer w owns the keys id ≡ w (mod 3): upserts, updates, deletes; every write takes a new seq. */
function writer(db: string, w: number): { stop(): Promise<number> } {
  let on = true;
  let n = 0;
  const run = withClient(db, async (c) => {
    for (let i = 0; on; i++) {
      const id = 3 * ((i * 7 + w) % 120) + w;
      const r = (i * 13 + w) % 10;
      if (r < 5) await c.query(`insert into items (id, seq, label) values ($1, nextval('seq'), 'w${w}-${i}') on conflict (id) do update set seq = nextval('seq'), label = excluded.label`, [id]);
      else if (r < 8) await c.query(`update items set seq = nextval('seq'), label = $2 where id = $1`, [id, r === 7 ? null : `u${w}-${i}`]);
      else await c.query(`delete from items where id = $1`, [id]);
      n++;
      if (i % 25 === 0) await sleep(20);
    }
  });
  return { async stop() { on = false; await run; return n; } };
}

test('PostgreSQL → RabbitMQ → RabbitMQ source → PostgreSQL under concurrent writes, poison dead-lettered, capture killed with SIGKILL: rows equal, nothing applied twice, queue empty', { timeout: 15 * 60_000 }, async (t) => {
  const e = await env();
  t.after(() => e.cleanup());
  await sql(e.srcDb, `insert into items (id, seq, label) select g, nextval('seq'), 'snap' || g from generate_series(1, 300) g`);
  // Pipeline 1 whole, pipeline 2's processor and sink here; pipeline 2's capture as a process we kill.
  await start(e, ['capture', 'process', 'sink'], ['to-rabbit']);
  await start(e, ['process', 'sink'], ['from-rabbit']);
  let capture = spawnCli(['capture', '--config', e.configFile, '--pipeline', 'from-rabbit']);
  t.after(() => { capture.kill('SIGKILL'); });

  const writers = [0, 1, 2].map((w) => writer(e.srcDb, w));
  await waitFor('the target to take some changes', async () => (await applies(e)) > 250, 120_000);
  await publish(e.queue, [
    { body: 'not json {', props: { messageId: 'poison-1' } },
    { body: JSON.stringify({ format: 1, op: 'upsert', table: 'public.nope', key: { id: 1 }, values: { id: 1 }, keep: [], position: '0000000000000001:00000000', sourceTsMs: 0 }), props: { messageId: 'poison-2' } },
    { body: JSON.stringify({ format: 1, op: 'upsert', table: 'public.items', key: {}, values: { label: 'no key' }, keep: [], position: '0000000000000001:00000000', sourceTsMs: 0 }), props: { messageId: 'poison-3' } },
  ]);
  const floor = await applies(e);
  await waitFor('more changes in the target', async () => (await applies(e)) > floor + 150, 120_000);
  capture.kill('SIGKILL');
  await once(capture, 'exit');
  const atKill = await applies(e);
  capture = spawnCli(['capture', '--config', e.configFile, '--pipeline', 'from-rabbit']);
  await waitFor('changes after the restart', async () => (await applies(e)) > atKill + 100, 120_000);
  const writes = (await Promise.all(writers.map((w) => w.stop()))).reduce((a, b) => a + b, 0);
  assert.ok(writes > 300, `writes ${writes}`);

  await waitFor('target rows equal to the source rows', async () => (await rows(e.srcDb)) === (await rows(e.dstDb)), 180_000, 500);
  await waitFor('the queue drained', async () => (await queueDepth(e.queue)).messageCount === 0, 60_000);
  assert.deepEqual(await twice(e), [], 'no row version written twice');

  const dlq = await readTopic(topics.dlq(e.prefix, 'from-rabbit'));
  const codes = dlq.map((d) => d.headers['syncline.error.code']).sort();
  assert.deepEqual(codes, ['RABBITMQ_NOT_JSON', 'RABBITMQ_TABLE_UNKNOWN', 'RECORD_KEY_MISSING'], 'the three poison messages, once each');
  for (const d of dlq) {
    assert.equal(d.headers['syncline.original.topic'], e.queue);
    assert.match(d.headers['syncline.error.message']!, new RegExp(`queue ${e.queue} message poison-\\d`));
  }
  assert.equal(dlq.find((d) => d.headers['syncline.error.code'] === 'RABBITMQ_NOT_JSON')!.value!.toString(), 'not json {', 'the body as it came');

  // The kill made messages come back (produced twice into the change topic); none was applied twice.
  const codec = new AvroCodec(CCOMPAT);
  const change = await readTopic(topics.cdc(`${e.prefix}.b`, 'public', 'items'));
  const positions = new Set<string>();
  for (const m of change) if (m.value) positions.add(eventPosition(envelopeFromAvro(await codec.decode(m.value))) + (m.key?.toString('hex') ?? ''));
  console.error(`rabbitmq source kill test: ${writes} source writes, ${await applies(e)} target writes, ${change.length} change-topic messages, ${change.length - positions.size} repeats`);

  // Nothing left unacked either: after capture stops, the queue is still empty.
  capture.kill('SIGTERM');
  const [code] = await once(capture, 'exit');
  assert.equal(code, 0, 'capture exits 0 on SIGTERM');
  assert.equal((await queueDepth(e.queue)).messageCount, 0, 'nothing requeued');
});

test('format row: plain JSON rows written by others, deletes by AMQP type, a poison row dead-lettered; after a restart the sequence goes on (later changes win)', { timeout: 10 * 60_000 }, async (t) => {
  const e = await env({ format: 'row' }, false);
  t.after(() => e.cleanup());
  const first = [];
  for (let i = 1; i <= 50; i++) first.push({ body: JSON.stringify({ id: i, seq: String(i), label: `a${i}`, other: true }) });
  first.push({ body: JSON.stringify({ seq: 1, label: 'no key' }), props: { messageId: 'row-poison' } });
  await publish(e.queue, first);
  const rt = await start(e, ['capture', 'process', 'sink'], ['from-rabbit']);
  await waitFor('the first rows', async () => Number((await sql(e.dstDb, 'select count(*)::int n from items')).rows[0].n) === 50, 60_000);

  const config = e.config.pipelines['from-rabbit']!.source as unknown as RabbitmqSourceConfig;
  const monitor = new RabbitmqSourceMonitor(config, 5000);
  t.after(() => monitor.close());
  await monitor.ping();
  await waitFor('the queue drained, with a consumer', async () => { const l = await monitor.lag(); return l?.lagBytes === 0 && l.active; }, 30_000);
  await rt.stop();

  // Another process run: updates of rows written before (they must win: positions after the restart are higher) and deletes.
  const second = [];
  for (let i = 1; i <= 10; i++) second.push({ body: JSON.stringify({ id: i, seq: 100 + i, label: `b${i}` }) });
  for (let i = 11; i <= 15; i++) second.push({ body: JSON.stringify({ id: i }), props: { type: 'delete' } });
  await publish(e.queue, second);
  await start(e, ['capture', 'process', 'sink'], ['from-rabbit']);
  const want = JSON.stringify([...Array(50).keys()].map((k) => k + 1).filter((i) => i < 11 || i > 15).map((i) => ({ id: i, seq: String(i <= 10 ? 100 + i : i), label: i <= 10 ? `b${i}` : `a${i}` })));
  await waitFor('the updates and deletes after the restart', async () => (await rows(e.dstDb)) === want, 60_000);
  const dlq = await waitFor('the dead letter', async () => { const d = await readTopic(topics.dlq(e.prefix, 'from-rabbit')); return d.length > 0 ? d : null; }, 30_000);
  assert.deepEqual(dlq.map((d) => d.headers['syncline.error.code']), ['RECORD_KEY_MISSING']);
  assert.match(dlq[0]!.headers['syncline.error.message']!, /message row-poison: the row has no value for key column id/);
  await waitFor('the queue drained', async () => (await queueDepth(e.queue)).messageCount === 0, 30_000);
  await assert.rejects(new RabbitmqSourceMonitor({ ...config, queue: `${e.queue}_nope` }, 5000).ping(), /queue .*_nope/);
});

/** A TCP proxy to RabbitMQ whose connections the test can cut (a real connection loss, both ways). */
async function proxy(): Promise<{ port: number; cut(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const up = tcpConnect(RABBIT.port, RABBIT.host);
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(up).pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const cut = () => {
    const n = sockets.size;
    for (const s of sockets) s.destroy();
    return n;
  };
  return { port: (server.address() as { port: number }).port, cut, close: async () => { cut(); server.close(); } };
}

test('connection lost (cut at a TCP proxy) while messages flow: the source connects again, unacked messages come back as no-ops, nothing lost', { timeout: 10 * 60_000 }, async (t) => {
  const p = await proxy();
  t.after(() => p.close());
  const e = await env({ connection: { ...RABBIT, port: p.port, heartbeatS: 5 }, prefetch: 50 }, false);
  t.after(() => e.cleanup());
  // Messages as the RabbitMQ target writes them: 40 keys, each updated many times, positions growing.
  const msg = (i: number) => ({ body: JSON.stringify({ format: 1, op: 'upsert', table: 'public.items', key: { id: i % 40 }, values: { id: i % 40, seq: i, label: `m${i}` }, keep: [], position: `${i.toString(16).padStart(16, '0')}:00000000`, sourceTsMs: 1_700_000_000_000 + i }), props: { messageId: `m${i}` } });
  await publish(e.queue, [...Array(200).keys()].map((i) => msg(i + 1)));
  await start(e, ['capture', 'process', 'sink'], ['from-rabbit']);
  await waitFor('some changes applied', async () => (await applies(e)) > 20, 60_000, 20);
  const cut1 = p.cut();
  await publish(e.queue, [...Array(200).keys()].map((i) => msg(i + 201)));
  await waitFor('more changes applied after the cut', async () => (await sql(e.dstDb, 'select max(seq)::int m from items')).rows[0].m > 300, 120_000, 50);
  const cut2 = p.cut();
  await publish(e.queue, [...Array(100).keys()].map((i) => msg(i + 401)));
  const last = (id: number) => [...Array(500).keys()].map((i) => i + 1).filter((i) => i % 40 === id).pop()!;
  const want = JSON.stringify([...Array(40).keys()].map((id) => ({ id, seq: String(last(id)), label: `m${last(id)}` })));
  await waitFor('every key at its last message', async () => (await rows(e.dstDb)) === want, 120_000, 200);
  await waitFor('the queue drained', async () => (await queueDepth(e.queue)).messageCount === 0, 60_000);
  assert.deepEqual(await twice(e), [], 'no row version written twice');
  // Copies of messages already applied (what a redelivery is): no-ops by their position; a new message after them still applies.
  const before = await applies(e);
  await publish(e.queue, [...[...Array(100).keys()].map((i) => msg(i + 401)), msg(501)]);
  await waitFor('the message after the copies', async () => (await sql(e.dstDb, 'select seq::int s from items where id = 21')).rows[0].s === 501, 60_000, 50);
  assert.equal(await applies(e), before + 1, 'only the new message was written');
  assert.deepEqual(await twice(e), []);
  t.diagnostic(`connections cut: ${cut1} and ${cut2} sockets; ${await applies(e)} target writes for 500 messages`);
  assert.ok(cut1 > 0 && cut2 > 0, 'the source was connected through the proxy both times');
});
