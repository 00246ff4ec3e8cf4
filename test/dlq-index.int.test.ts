/**
 * The dead-letter index read in the background (ADR 0037), against real Kafka: DlqService.warm()
 * reads every letter, the store says when its first read is done and how far it got, loads asked
 * while one runs share one read (none reads a message twice) and still see what was written before
 * they were asked; the console's dead-letter page then lists them. The page shown while the read
 * runs: src/console/console.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Redis } from 'ioredis';
import '../src/core/kafkajs-patch.js';
import { parseConfig } from '../src/core/config/load.js';
import { AvroCodec } from '../src/core/codec.js';
import { KafkaClient } from '../src/core/kafka.js';
import { DlqService } from '../src/dlq/service.js';
import { DeadLetters } from '../src/sink/dead-letters.js';
import { ObservabilityServer } from '../src/observe/http.js';
import { ApiAccess } from '../src/security/access/access.js';
import { PG, deleteTopics, uid } from './helpers.js';

test('dead-letter index: read in the background, loads share one read, the page lists every letter', async (t) => {
  const prefix = `t${uid()}`;
  const config = parseConfig(JSON.stringify({
    version: 1, topicPrefix: prefix, kafka: { brokers: ['127.0.0.1:9092'] }, schemaRegistry: { url: 'http://127.0.0.1:8081/apis/ccompat/v7' }, redis: { url: 'redis://127.0.0.1:6379' },
    pipelines: { orders: { source: { type: 'postgres', connection: { ...PG, database: 'postgres' }, slot: 'unused', publication: 'unused' }, target: { type: 'postgres', connection: { ...PG, database: 'postgres' } }, tables: [{ source: 'public.orders' }] } },
  }), 'test.yaml', {});
  const log = pino({ level: 'silent' });
  const kafka = new KafkaClient(config.kafka, log);
  const redis = new Redis(config.redis.url);
  t.after(async () => {
    redis.disconnect();
    await kafka.close();
    await deleteTopics(prefix).catch(() => undefined);
  });
  const dl = new DeadLetters(kafka, prefix, 'orders', log);
  const letter = (n: number) => ({ kind: 'invalid' as const, error: Object.assign(new Error(`qty must be >= 0 (got -${n})`), { code: 'VALIDATION_FAILED' }), key: Buffer.from(String(n)), value: Buffer.from(JSON.stringify({ id: n, qty: -n })), attempts: 1, table: 'public.orders', position: `0/${n.toString(16)}`, targetKey: `[${n}]`, origin: { topic: `${prefix}.cdc.public.orders`, partition: 0, offset: String(n) } });
  const N = 1500;
  for (let i = 0; i < N; i += 500) await dl.send(Array.from({ length: 500 }, (_, j) => letter(i + j)));

  const dlq = new DlqService({ config, kafka, codec: new AvroCodec(config.schemaRegistry), redis, log });
  assert.deepEqual(dlq.loading(), { ready: false, reading: false, read: 0, total: 0 }, 'nothing read before warm()');
  const warming = dlq.warm();
  // Asked while the first read runs: shares the next read, which sees the letter written meanwhile.
  await dl.send([letter(N)]);
  const [a, b] = await Promise.all([dlq.list({ pipeline: 'orders' }), dlq.list({ pipeline: 'orders' })]);
  await warming;
  assert.deepEqual(dlq.loading(), { ready: true, reading: false, read: 0, total: 0 });
  assert.equal(a.length, N + 1, 'every letter, the one written after warm() too');
  assert.equal(b.length, N + 1);
  assert.equal(new Set(a.map((e) => e.id)).size, N + 1, 'none listed twice');

  // The console's page lists them at once (no "Reading the dead letters" page: the index is read).
  const server = new ObservabilityServer({
    metrics: async () => '', metricsContentType: 'text/plain', health: () => ({ status: 'ok', pipelines: {} }) as never, ready: async () => ({ ready: true, checks: {} }) as never,
    access: new ApiAccess(undefined, { log }),
    console: { config: () => config, metrics: async () => '', health: () => ({ status: 'ok', pipelines: {} }) as never, dlq: () => dlq },
  }, log);
  const port = await server.start(0, '127.0.0.1');
  t.after(() => server.close());
  const first = await fetch(`http://127.0.0.1:${port}/console/pipelines`, { redirect: 'manual' });
  const cookie = (first.headers.get('set-cookie') ?? '').split(';')[0]!;
  const body = await (await fetch(`http://127.0.0.1:${port}/console/dlq`, { headers: { cookie } })).text();
  assert.match(body, new RegExp(`1–50 of ${N + 1}, newest first`));
  assert.doesNotMatch(body, /Reading the dead letters/);
});
