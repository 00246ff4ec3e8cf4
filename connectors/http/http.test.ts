import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import '../index.js';
import { parseConfig } from '../../src/core/config/load.js';
import { fillUrl, templateIssue } from './template.js';
import { classifyResponse, classifyTransport } from './errors.js';
import { idempotencyKey, jsonRow, sign } from './sink.js';
import type { SinkRecord } from '../../src/sink/sink.js';

test('URL templates: table, key columns and the whole key, URL-encoded', () => {
  assert.equal(fillUrl('http://h/api/{table}/{key.id}', 'public.users', { id: 7n }), 'http://h/api/public.users/7');
  assert.equal(fillUrl('http://h/{table}/{key}', '"My Schema".Orders', { b: 'x y', a: 2 }), 'http://h/%22My%20Schema%22.Orders/x%20y,2');
  assert.equal(fillUrl('http://h/{key.a}/{key.b}', 't', { b: 'a/b?', a: 1 }), 'http://h/1/a%2Fb%3F');
  assert.equal(fillUrl('http://h/{key.raw}', 't', { raw: Buffer.from([0xca, 0xfe]) }), 'http://h/cafe');
  assert.throws(() => fillUrl('http://h/{key.id}', 'public.t', { uid: 1 }), (e: Error & { kind?: string; code?: string }) => e.kind === 'poison' && e.code === 'HTTP_URL_KEY' && /\{key\.id\}.*public\.t has columns uid/.test(e.message));
  assert.equal(templateIssue('http://h/{table}/{key.id}'), null);
  assert.match(templateIssue('http://h/{tabel}')!, /unknown placeholder \{tabel\}/);
  assert.match(templateIssue('http://h/{table')!, /unbalanced/);
});

test('signature: sha256=<hex HMAC-SHA256 of the body>', () => {
  const body = '{"id":1,"name":"é"}';
  assert.equal(sign('s3cret', body), 'sha256=' + createHmac('sha256', 's3cret').update(body, 'utf8').digest('hex'));
  assert.notEqual(sign('s3cret', body), sign('other', body));
  assert.match(sign('k', ''), /^sha256=[0-9a-f]{64}$/);
});

test('status classification: 429/408/5xx retriable with Retry-After, 401/403 fatal, other 4xx poison with the body excerpt', () => {
  const cases: [number, string][] = [[429, 'retriable'], [408, 'retriable'], [500, 'retriable'], [502, 'retriable'], [503, 'retriable'], [401, 'fatal'], [403, 'fatal'], [400, 'poison'], [404, 'poison'], [409, 'poison'], [422, 'poison']];
  for (const [status, kind] of cases) {
    const e = classifyResponse(status, 'PUT http://h/x', null, '{"error":"nope"}');
    assert.equal(e.kind, kind, String(status));
    assert.equal(e.code, `HTTP_${status}`);
    assert.match(e.message, new RegExp(`^PUT http://h/x: HTTP ${status}: \\{"error":"nope"\\}`));
  }
  assert.equal(classifyResponse(429, 'c', '3', '').retryAfterMs, 3000);
  assert.equal(classifyResponse(503, 'c', new Date(Date.now() + 60_000).toUTCString(), '').retryAfterMs! > 55_000, true);
  assert.equal(classifyResponse(400, 'c', '3', '').retryAfterMs, undefined, 'a poison status carries no delay');
  const long = classifyResponse(400, 'c', null, 'x'.repeat(5000));
  assert.equal(long.message.length, 'c: HTTP 400: '.length + 1024 + 1, 'the first KB of the body');
  // no response at all
  assert.deepEqual([classifyTransport(Object.assign(new Error('t'), { name: 'TimeoutError' }), 'c').code, classifyTransport(Object.assign(new Error('t'), { name: 'TimeoutError' }), 'c').kind], ['HTTP_TIMEOUT', 'retriable']);
  const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
  assert.deepEqual([classifyTransport(refused, 'c').code, classifyTransport(refused, 'c').kind], ['NET_ECONNREFUSED', 'retriable']);
});

test('idempotency key: the position and the table and key; JSON values', () => {
  const r = (table: string, key: Record<string, bigint | number>, position: string) => ({ table, key, position }) as unknown as SinkRecord;
  const a = idempotencyKey(r('public.t', { id: 1n }, '0000000001000000:00000002'));
  assert.match(a, /^0000000001000000:00000002\/[0-9a-f]{16}$/);
  assert.equal(a, idempotencyKey(r('public.t', { id: 1n }, '0000000001000000:00000002')), 'stable');
  assert.notEqual(a, idempotencyKey(r('public.t', { id: 2n }, '0000000001000000:00000002')), 'sweep deletes share a position: the key tells them apart');
  assert.notEqual(a, idempotencyKey(r('public.u', { id: 1n }, '0000000001000000:00000002')));
  assert.deepEqual(jsonRow({ a: 5n, b: 2n ** 60n, c: Buffer.from('hi'), d: ['x', null], e: null }), { a: 5, b: '1152921504606846976', c: 'aGk=', d: ['x', null], e: null });
});

const config = (target: Record<string, unknown>, conflict?: Record<string, unknown>, tableConflict?: Record<string, unknown>) =>
  JSON.stringify({
    version: 1,
    pipelines: {
      p: {
        source: { type: 'postgres', connection: { host: 'h', database: 'd' }, slot: 's', publication: 'p' },
        target: { type: 'http', ...target },
        ...(conflict ? { conflict } : {}),
        tables: [{ source: 'public.t', ...(tableConflict ? { conflict: tableConflict } : {}) }],
      },
    },
  });

test('config: strategies other than source-wins are refused naming the field; templates and batch checked', () => {
  const ok = parseConfig(config({ url: 'http://h/{table}/{key.id}', headers: { Authorization: 'Bearer ${TOKEN}' } }, { strategy: 'source-wins' }), 'c.yaml', { TOKEN: 'abc' });
  const target = ok.pipelines.p!.target as { headers: Record<string, string>; operations: { insert: { method: string }; update: { method: string }; delete: { method: string } } };
  assert.equal(target.headers.Authorization, 'Bearer abc');
  assert.deepEqual([target.operations.insert.method, target.operations.update.method, target.operations.delete.method], ['POST', 'PUT', 'DELETE']);
  assert.throws(() => parseConfig(config({ url: 'http://h/{key.id}' }), 'c.yaml', {}), /pipelines\.p\.target\.type[\s\S]*target type http cannot apply conflict strategy latest-timestamp \(defaults\.conflict\.strategy[\s\S]*source-wins/);
  assert.throws(() => parseConfig(config({ url: 'http://h/{key.id}' }, { strategy: 'source-wins' }, { strategy: 'manual' }), 'c.yaml', {}), /pipelines\.p\.tables\[0\]\.conflict\.strategy[\s\S]*manual/);
  assert.throws(() => parseConfig(config({ url: 'http://h/{id}' }, { strategy: 'source-wins' }), 'c.yaml', {}), /unknown placeholder \{id\}/);
  assert.throws(() => parseConfig(config({ url: 'http://h/{key}', batch: { enabled: true } }, { strategy: 'source-wins' }), 'c.yaml', {}), /batch\.url/);
});
