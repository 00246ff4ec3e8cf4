/** The HTTP sink against a real node:http server (./test-server.ts): requests, failures, order, batches, unchanged columns. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { httpSinkSpec } from './spec.js';
import { HttpSink, sign } from './sink.js';
import { TestApi } from './test-server.js';
import type { SinkRecord } from '../../src/sink/sink.js';
import type { Row } from '../../src/core/envelope.js';

const log = pino({ level: 'silent' });
let n = 0;
const rec = (op: SinkRecord['op'], id: number, values: Row | null, extra: Partial<SinkRecord> = {}): SinkRecord => ({
  table: 'public.items', op, key: { id: BigInt(id) }, values, keep: [], position: `00000000000000${(++n).toString(16).padStart(2, '0')}:00000000`, hash: null, sourceTsMs: 0, origin: { topic: 't', partition: 0, offset: String(n) }, ...extra,
});
const sinkFor = (api: TestApi, extra: Record<string, unknown> = {}) =>
  new HttpSink(httpSinkSpec.parse({ type: 'http', url: `${api.url}/{table}/{key.id}`, headers: { authorization: 'Bearer t0k' }, signature: { secret: 'sig-secret' }, timeoutMs: 2000, ...extra }), { pipeline: 'p', log });

test('a request per change: POST insert, PUT update, DELETE delete, with headers, idempotency key and a signature of the body', async (t) => {
  const api = await new TestApi().start();
  t.after(() => api.stop());
  const sink = sinkFor(api);
  await sink.connect();
  const ins = rec('upsert', 1, { id: 1n, name: 'a', big: 2n ** 62n, raw: Buffer.from('x') });
  const upd = rec('upsert', 1, { id: 1n, name: 'b', big: 1n, raw: null }, { update: true });
  const gone = rec('upsert', 2, { id: 2n, name: 'c', big: 1n, raw: null });
  const del = rec('delete', 2, null);
  const r = await sink.writeBatch([ins, upd, gone, del]);
  assert.deepEqual(r.failed, []);
  assert.deepEqual(api.objects.get('/public.items/1'), { id: 1, name: 'b', big: 1, raw: null });
  assert.equal(api.objects.has('/public.items/2'), false);
  const of1 = api.seen.filter((s) => s.path === '/public.items/1');
  assert.deepEqual(of1.map((s) => s.method), ['POST', 'PUT']);
  assert.deepEqual(JSON.parse(of1[0]!.body), { id: 1, name: 'a', big: String(2n ** 62n), raw: 'eA==' });
  assert.deepEqual(api.seen.filter((s) => s.path === '/public.items/2').map((s) => s.method), ['POST', 'DELETE']);
  for (const s of api.seen) {
    assert.equal(s.headers.authorization, 'Bearer t0k');
    assert.match(s.idem!, /^[0-9a-f]{16}:[0-9a-f]{8}\/[0-9a-f]{16}$/);
    if (s.method !== 'DELETE') assert.equal(s.headers['x-syncline-signature'], sign('sig-secret', s.body));
    else assert.equal(s.headers['x-syncline-signature'], undefined);
  }
  assert.equal(new Set(api.seen.map((s) => s.idem)).size, 4);
});

test('statuses: 400 fails that record with status and body and the rest goes on; 429 throws retriable with Retry-After; 401 throws fatal', async (t) => {
  const api = await new TestApi().start();
  t.after(() => api.stop());
  const sink = sinkFor(api, { concurrency: 4 });
  api.fault = ({ path }) => (path === '/public.items/3' ? { status: 400, body: JSON.stringify({ error: 'name too long', pad: 'z'.repeat(3000) }) } : null);
  const batch = [1, 2, 3, 4, 5].map((i) => rec('upsert', i, { id: BigInt(i), name: `n${i}` }));
  const r = await sink.writeBatch(batch);
  assert.equal(r.failed.length, 1);
  assert.equal(r.failed[0]!.record, batch[2]);
  assert.equal(r.failed[0]!.error.code, 'HTTP_400');
  assert.equal(r.failed[0]!.error.kind, 'poison');
  assert.match(r.failed[0]!.error.message, /POST http:\/\/127\.0\.0\.1:\d+\/public\.items\/3: HTTP 400: \{"error":"name too long"/);
  assert.ok(r.failed[0]!.error.message.length < 1300, 'the first KB of the body only');
  assert.deepEqual([...api.objects.keys()].sort(), ['/public.items/1', '/public.items/2', '/public.items/4', '/public.items/5']);

  api.fault = ({ path }) => (path === '/public.items/7' ? { status: 429, headers: { 'retry-after': '2' } } : null);
  await assert.rejects(sink.writeBatch([rec('upsert', 7, { id: 7n })]), (e: Error & { kind: string; code: string; retryAfterMs?: number }) => e.kind === 'retriable' && e.code === 'HTTP_429' && e.retryAfterMs === 2000);
  // a 500 in one lane and a 429 in another: the batch waits for the Retry-After
  api.fault = ({ path }) => (path === '/public.items/11' ? { status: 500 } : path === '/public.items/12' ? { status: 429, headers: { 'retry-after': '3' } } : null);
  api.delayMs = 0;
  await assert.rejects(sink.writeBatch([rec('upsert', 11, { id: 11n }), rec('upsert', 12, { id: 12n })]), (e: Error & { retryAfterMs?: number }) => e.retryAfterMs === 3000);
  api.fault = () => ({ status: 503 });
  await assert.rejects(sink.writeBatch([rec('upsert', 7, { id: 7n })]), (e: Error & { kind: string; code: string }) => e.kind === 'retriable' && e.code === 'HTTP_503');
  api.fault = () => ({ status: 401, body: 'bad token' });
  await assert.rejects(sink.writeBatch([rec('upsert', 7, { id: 7n }), rec('upsert', 8, { id: 8n })]), (e: Error & { kind: string; code: string }) => e.kind === 'fatal' && e.code === 'HTTP_401' && /bad token/.test(e.message));
  api.fault = () => null;
  api.delayMs = 1500;
  await assert.rejects(new HttpSink(httpSinkSpec.parse({ type: 'http', url: `${api.url}/{table}/{key.id}`, timeoutMs: 300 }), { pipeline: 'p', log }).writeBatch([rec('upsert', 9, { id: 9n })]), (e: Error & { code: string; kind: string }) => e.code === 'HTTP_TIMEOUT' && e.kind === 'retriable');
  api.delayMs = 0;
  // nothing listening: retriable network error
  const dead = await new TestApi().start();
  await dead.stop();
  const closed = new HttpSink(httpSinkSpec.parse({ type: 'http', url: `${dead.url}/{key}` }), { pipeline: 'p', log });
  await assert.rejects(closed.writeBatch([rec('upsert', 9, { id: 9n })]), (e: Error & { code: string; kind: string }) => e.code === 'NET_ECONNREFUSED' && e.kind === 'retriable');
  await assert.rejects(closed.ping(), (e: Error & { code: string }) => e.code === 'NET_ECONNREFUSED');
});

test('per-key order under concurrency: a key\'s changes never overtake each other', async (t) => {
  const api = await new TestApi().start();
  t.after(() => api.stop());
  const sink = sinkFor(api, { concurrency: 16 });
  const batch: SinkRecord[] = [];
  for (let seq = 1; seq <= 30; seq++) for (let k = 1; k <= 20; k++) batch.push(rec('upsert', k, { id: BigInt(k), seq }, seq > 1 ? { update: true } : {}));
  // random answer times, so requests of different lanes finish out of order
  const orig = api.fault;
  let inFlightMax = 0;
  let inFlight = 0;
  api.fault = (req) => {
    inFlight++;
    inFlightMax = Math.max(inFlightMax, inFlight);
    setTimeout(() => inFlight--, 5);
    return orig(req);
  };
  api.delayMs = 3;
  const r = await sink.writeBatch(batch);
  assert.deepEqual(r.failed, []);
  assert.deepEqual(api.backwards, []);
  for (let k = 1; k <= 20; k++) assert.equal(api.objects.get(`/public.items/${k}`)!.seq, 30);
  assert.ok(inFlightMax > 1, `requests ran concurrently (max ${inFlightMax})`);
});

test('batched: JSON arrays of up to maxRecords; a refused batch is split so only the bad change fails', async (t) => {
  const api = await new TestApi().start();
  t.after(() => api.stop());
  const sink = sinkFor(api, { concurrency: 2, batch: { enabled: true, url: `${api.url}/batch`, maxRecords: 10 } });
  api.fault = ({ body }) => (body.includes('"bad"') ? { status: 422, body: '{"error":"bad name"}' } : null);
  const batch = Array.from({ length: 30 }, (_, i) => rec('upsert', i + 1, { id: BigInt(i + 1), name: i === 12 ? 'bad' : `n${i}` }));
  batch.push(rec('delete', 5, null));
  const r = await sink.writeBatch(batch);
  assert.deepEqual(r.failed.map((f) => [f.record.key.id, f.error.code]), [[13n, 'HTTP_422']]);
  assert.equal(api.objects.size, 28);
  assert.equal(api.objects.has('/public.items/5'), false);
  const arrays = api.seen.filter((s) => s.status < 300).map((s) => (JSON.parse(s.body) as unknown[]).length);
  assert.ok(arrays.some((l) => l > 1) && arrays.every((l) => l <= 10), String(arrays));
  const item = (JSON.parse(api.seen.find((s) => s.status < 300 && s.body.includes('"n0"'))!.body) as { op: string; position: string; idempotencyKey: string }[]).find((x) => (x as unknown as { values: { name: string } }).values.name === 'n0')!;
  assert.equal(item.op, 'insert');
  assert.match(item.idempotencyKey, /\//);
});

test('unchanged TOAST columns: never sent missing; filled from read.url, else dead-lettered naming the columns', async (t) => {
  const api = await new TestApi().start();
  t.after(() => api.stop());
  api.objects.set('/public.items/1', { id: 1, doc: 'big text', name: 'old' });
  const partial = () => rec('upsert', 1, { id: 1n, doc: null, name: 'new' }, { update: true, keep: ['doc'] });
  const plain = sinkFor(api);
  const r = await plain.writeBatch([partial()]);
  assert.equal(r.failed[0]?.error.code, 'HTTP_UNCHANGED_COLUMNS');
  assert.match(r.failed[0]!.error.message, /columns doc unchanged/);
  assert.equal(api.seen.filter((s) => s.method !== 'GET').length, 0, 'nothing sent');
  const reading = sinkFor(api, { read: { url: `${api.url}/{table}/{key.id}` } });
  assert.deepEqual((await reading.writeBatch([partial()])).failed, []);
  assert.deepEqual(api.objects.get('/public.items/1'), { id: 1, doc: 'big text', name: 'new' });
  // no object to fill from: dead-lettered
  const r2 = await reading.writeBatch([rec('upsert', 2, { id: 2n, doc: null }, { update: true, keep: ['doc'] })]);
  assert.match(r2.failed[0]!.error.message, /found no object/);
});

test('an update with unchanged columns whose object is gone: passed over when a later change of its key in the batch decides the object, dead-lettered otherwise', async (t) => {
  const api = await new TestApi().start();
  t.after(() => api.stop());
  const sink = sinkFor(api, { read: { url: `${api.url}/{table}/{key.id}` } });
  const upd = () => rec('upsert', 3, { id: 3n, doc: null, name: 'x' }, { update: true, keep: ['doc'] });
  const r = await sink.writeBatch([upd(), rec('delete', 3, null)]);
  assert.deepEqual(r.failed, []);
  assert.deepEqual(api.seen.filter((s) => s.method !== 'GET').map((s) => s.method), ['DELETE']);
  const alone = await sink.writeBatch([upd()]);
  assert.equal(alone.failed[0]?.error.code, 'HTTP_UNCHANGED_COLUMNS');
});
