/**
 * The RabbitMQ sink against the real broker (127.0.0.1:5672): confirms before writeBatch resolves,
 * the message format as a consumer sees it, per-batch order, unroutable records dead-lettered alone,
 * fatal and retriable failures. Every test uses its own exchange and queue names and deletes them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { pino } from 'pino';
import { parseTagged } from '../../src/core/tagged-json.js';
import type { SynclineError } from '../../src/core/errors.js';
import type { SinkRecord } from '../../src/sink/sink.js';
import { uid } from '../../test/helpers.js';
import { RabbitmqSink } from './sink.js';
import { rabbitmqSinkSpec, type RabbitmqSinkConfig } from './spec.js';

const log = pino({ level: 'silent' });
const cfgOf = (over: Record<string, unknown>): RabbitmqSinkConfig => rabbitmqSinkSpec.parse({ type: 'rabbitmq', exchange: 'x', ...over });

const rec = (id: number, seq: number, over: Partial<SinkRecord> = {}): SinkRecord => ({
  table: 'public.items', op: 'upsert', key: { id: BigInt(id) }, values: { id: BigInt(id), seq, note: `n${seq}` }, keep: [],
  position: `${seq.toString(16).padStart(16, '0')}:00000000`, hash: null, sourceTsMs: 1_700_000_000_000 + seq, origin: { topic: 't', partition: 0, offset: String(seq) }, ...over,
});

/** An exchange and a queue bound to it with `pattern`, deleted after the test. */
async function fixture(t: { after(fn: () => Promise<void>): void }, pattern = '#', type = 'topic') {
  const id = uid();
  const exchange = `syncline_t_${id}_x`;
  const queue = `syncline_t_${id}_q`;
  const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
  const ch = await conn.createChannel();
  await ch.assertExchange(exchange, type, { durable: true });
  await ch.assertQueue(queue, { durable: true });
  await ch.bindQueue(queue, exchange, pattern);
  /** More queues of the test, deleted with the rest. */
  const queues: string[] = [];
  t.after(async () => {
    for (const q of [queue, ...queues]) await ch.deleteQueue(q).catch(() => undefined);
    await ch.deleteExchange(exchange).catch(() => undefined);
    await conn.close().catch(() => undefined);
  });
  const drain = async (): Promise<amqp.GetMessage[]> => {
    const out: amqp.GetMessage[] = [];
    for (let m = await ch.get(queue, { noAck: true }); m; m = await ch.get(queue, { noAck: true })) out.push(m);
    return out;
  };
  return { id, exchange, queue, ch, drain, queues };
}

test('writeBatch resolves after the confirms: every message is in the queue, in order, in the documented format', async (t) => {
  const f = await fixture(t);
  const sink = new RabbitmqSink(cfgOf({ exchange: f.exchange, declare: false }), { pipeline: 'p', log });
  t.after(() => sink.close());
  await sink.connect();
  const batch = Array.from({ length: 300 }, (_, i) => rec(i % 7, i));
  batch.push(rec(3, 300, { op: 'delete', values: null }));
  const res = await sink.writeBatch(batch);
  assert.deepEqual(res.failed, []);
  // Confirmed means enqueued: the queue holds them all the moment writeBatch returned.
  assert.equal((await f.ch.checkQueue(f.queue)).messageCount, 301);
  const got = await f.drain();
  assert.equal(got.length, 301);
  got.forEach((m, i) => {
    const body = parseTagged(m.content.toString()) as { op: string; key: { id: bigint }; values: { seq: number } | null; position: string };
    assert.equal(body.position, batch[i]!.position, 'publish order kept');
    assert.equal(m.properties.deliveryMode, 2, 'persistent');
    assert.equal(m.properties.contentType, 'application/json');
    assert.match(String(m.properties.messageId), new RegExp(`^${batch[i]!.position}/[0-9a-f]{12}$`));
    assert.equal(m.properties.headers?.['syncline-position'], batch[i]!.position);
    assert.equal(m.properties.headers?.['syncline-table'], 'public.items');
    assert.equal(m.fields.routingKey, `public.items.${i === 300 ? 'delete' : 'upsert'}`);
  });
  const last = parseTagged(got[300]!.content.toString()) as { op: string; key: unknown; values: unknown };
  assert.deepEqual([last.op, last.key, last.values], ['delete', { id: 3n }, null]);
  assert.deepEqual(await sink.readRows('public.items', [{ id: 1n }]), new Map([['["1"]', {}]]), 'every key reads as a row of unknown content');
  assert.equal(sink.stats.published, 301);
});

test('unroutable (mandatory): only those records fail, as poison RABBITMQ_UNROUTABLE; the rest is delivered', async (t) => {
  const f = await fixture(t, 'public.items.*');
  const sink = new RabbitmqSink(cfgOf({ exchange: f.exchange, declare: true }), { pipeline: 'p', log });
  t.after(() => sink.close());
  const batch = [rec(1, 1), rec(2, 2, { table: 'public.orphans' }), rec(3, 3), rec(4, 4, { table: 'public.orphans' })];
  const res = await sink.writeBatch(batch);
  assert.deepEqual(res.failed.map((x) => x.record), [batch[1], batch[3]], 'the failed records are the ones given, by identity');
  for (const x of res.failed) {
    assert.equal(x.error.kind, 'poison');
    assert.equal(x.error.code, 'RABBITMQ_UNROUTABLE');
    assert.match(x.error.message, /routing key 'public\.orphans\.upsert'.*NO_ROUTE/);
  }
  assert.deepEqual((await f.drain()).map((m) => m.properties.headers?.['syncline-position']), [batch[0]!.position, batch[2]!.position]);
  // mandatory: false → the broker drops them, nothing fails.
  const lax = new RabbitmqSink(cfgOf({ exchange: f.exchange, mandatory: false }), { pipeline: 'p', log });
  t.after(() => lax.close());
  assert.deepEqual((await lax.writeBatch([rec(5, 5, { table: 'public.orphans' })])).failed, []);
});

test('a message over maxMessageBytes, a routing key over 255 bytes: poison before publishing', async (t) => {
  const f = await fixture(t);
  const sink = new RabbitmqSink(cfgOf({ exchange: f.exchange, maxMessageBytes: 1024, routingKey: '{table}.{key}' }), { pipeline: 'p', log });
  t.after(() => sink.close());
  const big = rec(1, 1, { values: { id: 1n, note: 'x'.repeat(2000) } });
  const longKey = rec(2, 2, { key: { id: 'k'.repeat(300) } });
  const res = await sink.writeBatch([big, rec(3, 3), longKey]);
  assert.deepEqual(res.failed.map((x) => [x.record, x.error.kind, x.error.code]), [[big, 'poison', 'RABBITMQ_MESSAGE_TOO_LARGE'], [longKey, 'poison', 'RABBITMQ_ROUTING_KEY']]);
  assert.equal((await f.drain()).length, 1);
});

test('fatal: a missing exchange with declare false (404), a type clash (406), bad credentials (403)', async (t) => {
  const f = await fixture(t, '#', 'direct');
  const missing = new RabbitmqSink(cfgOf({ exchange: `${f.exchange}_none`, declare: false }), { pipeline: 'p', log });
  t.after(() => missing.close());
  await assert.rejects(missing.connect(), (e: SynclineError) => e.kind === 'fatal' && e.code === 'RABBITMQ_404' && /declare: true/.test(e.message));
  const clash = new RabbitmqSink(cfgOf({ exchange: f.exchange, exchangeType: 'topic' }), { pipeline: 'p', log });
  t.after(() => clash.close());
  await assert.rejects(clash.writeBatch([rec(1, 1)]), (e: SynclineError) => e.kind === 'fatal' && e.code === 'RABBITMQ_406');
  const denied = new RabbitmqSink(cfgOf({ exchange: f.exchange, connection: { password: 'wrong' } }), { pipeline: 'p', log });
  t.after(() => denied.close());
  await assert.rejects(denied.connect(), (e: SynclineError) => e.kind === 'fatal' && e.code === 'RABBITMQ_403');
  await assert.rejects(denied.ping(), (e: SynclineError) => e.kind === 'fatal');
  const nobody = new RabbitmqSink(cfgOf({ exchange: f.exchange, connection: { port: 1 } }), { pipeline: 'p', log });
  await assert.rejects(nobody.connect(), (e: SynclineError) => e.kind === 'retriable' && e.code === 'NET_ECONNREFUSED');
  await nobody.close();
});

test('connection lost mid-batch: retriable; the next batch reconnects and publishes', async (t) => {
  const f = await fixture(t);
  const sink = new RabbitmqSink(cfgOf({ exchange: f.exchange }), { pipeline: 'p', log });
  t.after(() => sink.close());
  await sink.writeBatch([rec(1, 1)]);
  // Cut the TCP connection under the sink (a broker or network fault, as the client sees it: the
  // socket errors with a reset; a bare destroy() emits neither 'error' nor 'end', so only the heartbeat,
  // a minute later, would notice).
  const conn = await (sink as unknown as { conn: Promise<{ model: { connection: { stream: { destroy(err?: Error): void } } } }> }).conn;
  const batch = Array.from({ length: 2000 }, (_, i) => rec(i, i + 10, { values: { id: BigInt(i), pad: 'p'.repeat(500) } }));
  const writing = sink.writeBatch(batch);
  setImmediate(() => conn.model.connection.stream.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })));
  await assert.rejects(writing, (e: SynclineError) => e.kind === 'retriable');
  assert.deepEqual((await sink.writeBatch([rec(9, 99)])).failed, []);
  assert.equal(sink.stats.connections, 2);
  const got = await f.drain();
  assert.equal(got.at(-1)!.properties.headers?.['syncline-position'], rec(9, 99).position);
});

test('nack (a queue at its max-length with overflow reject-publish): retriable RABBITMQ_NACK for the batch', async (t) => {
  const f = await fixture(t);
  const full = `${f.queue}_full`;
  await f.ch.assertQueue(full, { durable: true, arguments: { 'x-max-length': 2, 'x-overflow': 'reject-publish' } });
  f.queues.push(full);
  await f.ch.bindQueue(full, f.exchange, '#');
  const sink = new RabbitmqSink(cfgOf({ exchange: f.exchange, declare: false }), { pipeline: 'p', log });
  t.after(() => sink.close());
  await assert.rejects(sink.writeBatch([rec(1, 1), rec(2, 2), rec(3, 3), rec(4, 4)]), (e: SynclineError) => e.kind === 'retriable' && e.code === 'RABBITMQ_NACK' && /2 of 4/.test(e.message));
  // Room again: the same batch goes through (the first two copies are in the other queue twice, same messageIds).
  await f.ch.purgeQueue(full);
  await f.ch.unbindQueue(full, f.exchange, '#');
  assert.deepEqual((await sink.writeBatch([rec(1, 1), rec(2, 2), rec(3, 3), rec(4, 4)])).failed, []);
  const ids = (await f.drain()).map((m) => String(m.properties.messageId));
  assert.equal(ids.length, 8);
  assert.deepEqual(ids.slice(4), ids.slice(0, 4), 'a batch published again carries the same messageIds');
});
