/**
 * Server time of the console's dead-letter list with many dead letters (issue 24: "first page
 * < 200 ms with 10,000 dead letters").
 *
 *   npx tsx bench/console-dlq.ts [--letters N (default 10,000)] [--starts R (default 5)] [--repeat K (default 20)]
 *
 * Writes N invalid-kind dead letters of one pipeline into a fresh topic prefix (the real writer,
 * src/sink/dead-letters.ts), then serves the console and the API (the real HTTP server, WebConsole
 * and /api/dlq, api.auth none) over a real DlqService. R times, on a fresh service (a fresh start),
 * interleaved: before — the first request reads both topics whole (GET /api/dlq?limit=50, which
 * still does; what the first console page did until ADR 0037); after — the read is started as the
 * runtime does at start (warm()), the page asked at once (it shows the progress), the time until the
 * index is read, and the first list page then. Then K later first pages and K last pages (filtered in
 * memory, one page of 50 rendered). Deletes its topics at the end.
 */
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { Redis } from 'ioredis';
import '../src/core/kafkajs-patch.js';
import { parseConfig } from '../src/core/config/load.js';
import { AvroCodec } from '../src/core/codec.js';
import { KafkaClient } from '../src/core/kafka.js';
import { DlqService } from '../src/dlq/service.js';
import { dlqApi } from '../src/dlq/api.js';
import { ObservabilityServer } from '../src/observe/http.js';
import { ApiAccess } from '../src/security/access/access.js';
import { DeadLetters } from '../src/sink/dead-letters.js';
import { BROKERS, PG, REGISTRY, deleteTopics, figure, fmtFigure, uid } from './common.js';

const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const N = arg('letters', 10_000);
const K = arg('repeat', 20);
const R = arg('starts', 5);
const prefix = `bench${uid()}`;
const config = parseConfig(JSON.stringify({
  version: 1, topicPrefix: prefix, kafka: { brokers: BROKERS }, schemaRegistry: { url: REGISTRY }, redis: { url: 'redis://127.0.0.1:6379' },
  pipelines: { orders: { source: { type: 'postgres', connection: { ...PG, database: 'postgres' }, slot: 'bench_unused', publication: 'bench_unused' }, target: { type: 'postgres', connection: { ...PG, database: 'postgres' } }, tables: [{ source: 'public.orders' }] } },
}), 'bench.yaml', {});
const log = pino({ level: 'silent' });
const kafka = new KafkaClient(config.kafka, log);
const redis = new Redis(config.redis.url, { lazyConnect: true });
try {
  const t0 = performance.now();
  const dl = new DeadLetters(kafka, prefix, 'orders', log);
  for (let i = 0; i < N; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, N - i) }, (_, j) => {
      const n = i + j;
      return { kind: 'invalid' as const, error: Object.assign(new Error(`qty must be >= 0 (got -${n})`), { code: 'VALIDATION_FAILED' }), key: Buffer.from(String(n)), value: Buffer.from(JSON.stringify({ id: n, qty: -n })), attempts: 1, table: 'public.orders', position: `0/${n.toString(16)}`, targetKey: `[${n}]`, origin: { topic: `${prefix}.cdc.public.orders`, partition: 0, offset: String(n) } };
    });
    await dl.send(batch);
  }
  process.stdout.write(`${N} dead letters written in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  await redis.connect();
  // A fresh service stands for a fresh start of the process (its dead-letter index is empty).
  let dlq = new DlqService({ config, kafka, codec: new AvroCodec(config.schemaRegistry), redis, log });
  const fresh = () => (dlq = new DlqService({ config, kafka, codec: new AvroCodec(config.schemaRegistry), redis, log }));
  const server = new ObservabilityServer({
    metrics: async () => '', metricsContentType: 'text/plain', health: () => ({ status: 'ok', pipelines: {} }) as never, ready: async () => ({ ready: true, checks: [] }) as never,
    access: new ApiAccess(undefined, { log }),
    api: dlqApi(() => dlq),
    console: { config: () => config, metrics: async () => '', health: () => ({ status: 'ok', pipelines: {} }) as never, dlq: () => dlq },
  }, log);
  const port = await server.start(0, '127.0.0.1');
  const base = `http://127.0.0.1:${port}`;
  // A session cookie (auth none: the console makes one on the first request).
  const first = await fetch(`${base}/console/pipelines`, { redirect: 'manual' });
  const jar = (first.headers.get('set-cookie') ?? '').split(';')[0]!;
  const get = async (path: string) => {
    const s = performance.now();
    const r = await fetch(base + path, { headers: { cookie: jar } });
    const body = await r.text();
    const ms = performance.now() - s;
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${body.slice(0, 300)}`);
    return { ms, body };
  };
  const listsAll = (body: string) => {
    const m = /(\d+)–(\d+) of (\d+)/.exec(body);
    if (!m || Number(m[3]) !== N) throw new Error(`the page does not list ${N} letters: ${m?.[0] ?? body.slice(0, 300)}`);
  };
  const readOnRequest: number[] = [];
  const loadingPage: number[] = [];
  const toReady: number[] = [];
  const firstPage: number[] = [];
  for (let r = 0; r < R; r++) {
    // Before (what the first page did until ADR 0037): the request itself reads both topics whole.
    // The API's list on a fresh service still does (then one page of 50 as JSON, not HTML).
    fresh();
    const cold = await get('/api/dlq?pipeline=orders&limit=50');
    if ((JSON.parse(cold.body) as { count: number }).count !== 50) throw new Error(`GET /api/dlq: ${cold.body.slice(0, 300)}`);
    readOnRequest.push(cold.ms);
    // After: the read starts at start, in the background (the runtime calls warm()); a page asked
    // at once says how far it is; the first page asked once it is done lists them.
    fresh();
    const t0 = performance.now();
    const warming = dlq.warm();
    const loading = await get('/console/dlq');
    if (!loading.body.includes('Reading the dead letters')) listsAll(loading.body); // (a fast machine may be done within the page's wait)
    loadingPage.push(loading.ms);
    await warming;
    toReady.push(performance.now() - t0);
    const page1 = await get('/console/dlq');
    listsAll(page1.body);
    firstPage.push(page1.ms);
  }
  const warm: number[] = [];
  for (let i = 0; i < K; i++) warm.push((await get('/console/dlq')).ms);
  const last: number[] = [];
  for (let i = 0; i < K; i++) last.push((await get(`/console/dlq?page=${Math.ceil(N / 50)}`)).ms);
  const f = (xs: number[]) => fmtFigure(figure(xs), 1);
  const ratio = (a: number[], b: number[]) => (figure(a).median / figure(b).median).toFixed(1);
  process.stdout.write(`${N} dead letters, ${R} fresh starts (median (min – max) ms):\n` +
    `  before: first request reads the topics (GET /api/dlq?limit=50 on a fresh index): ${f(readOnRequest)}\n` +
    `  after: the page asked at start (the read runs in the background; progress shown): ${f(loadingPage)}\n` +
    `  after: from start until the index is read:                                       ${f(toReady)}\n` +
    `  after: first list page once read:                                                ${f(firstPage)}  (${ratio(readOnRequest, firstPage)}× faster than before)\n` +
    `  later first pages (${K}): ${f(warm)}; last page: ${f(last)}\n`);
  await server.close();
} finally {
  redis.disconnect();
  await kafka.close();
  await deleteTopics(prefix).catch(() => undefined);
}
