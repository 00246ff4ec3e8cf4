import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../index.js';
import { parseTagged } from '../../src/core/tagged-json.js';
import { ConfigError, parseConfig } from '../../src/core/config/load.js';
import type { SinkRecord } from '../../src/sink/sink.js';
import { messageBody, messageId, outMessage, routingKey, templateProblem } from './message.js';
import { classifyRabbitError } from './errors.js';

const rec = (over: Partial<SinkRecord> = {}): SinkRecord => ({
  table: 'public.items',
  op: 'upsert',
  key: { id: 7n },
  values: { id: 7n, name: 'pen', price: '1.50', raw: Buffer.from([1, 2]), ratio: Number.NaN, seq: 3 },
  keep: [],
  position: '00000000016b3748:00000002',
  hash: null,
  sourceTsMs: 1795608000123,
  origin: { topic: 't', partition: 0, offset: '1' },
  columnTypes: { id: 'bigint', name: 'text' },
  ...over,
});

test('routing key templates: table, schema, name, op, key', () => {
  assert.equal(routingKey('{table}.{op}', rec()), 'public.items.upsert');
  assert.equal(routingKey('{table}.{op}', rec({ op: 'delete', values: null })), 'public.items.delete');
  assert.equal(routingKey('{schema}/{name}:{op}', rec({ op: 'truncate', key: {} })), 'public/items:truncate');
  assert.equal(routingKey('cdc.{name}.{key}', rec({ key: { b: 'x y', a: 3n } })), 'cdc.items.x y.3');
  assert.equal(routingKey('{name}.{key}', rec({ table: '"My Schema"."Order Lines"', key: { k: Buffer.from([0xab]) } })), 'Order Lines.ab');
  assert.equal(routingKey('fixed', rec()), 'fixed');
  assert.equal(templateProblem('{table}.{op}'), null);
  assert.match(templateProblem('{table}.{kind}')!, /unknown placeholder \{kind\}/);
  assert.match(templateProblem('{table.{op}')!, /unknown placeholder|unbalanced/);
  assert.match(templateProblem('a}b')!, /unbalanced/);
});

test('message format: body in tagged JSON, properties, headers, messageId per change', () => {
  const m = outMessage(rec(), '{table}.{op}');
  const body = parseTagged(m.body.toString('utf8')) as Record<string, unknown>;
  assert.deepEqual(body, {
    format: 1, op: 'upsert', table: 'public.items', key: { id: 7n },
    values: { id: 7n, name: 'pen', price: '1.50', raw: Buffer.from([1, 2]), ratio: Number.NaN, seq: 3 },
    keep: [], position: '00000000016b3748:00000002', sourceTsMs: 1795608000123, types: { id: 'bigint', name: 'text' },
  });
  assert.match(m.body.toString(), /"id":\{"\$n":"7"\}/);
  assert.equal(m.options.persistent, true);
  assert.equal(m.options.contentType, 'application/json');
  assert.equal(m.options.messageId, m.messageId);
  assert.equal(m.options.timestamp, 1795608000);
  assert.equal(m.options.type, 'upsert');
  assert.deepEqual(m.options.headers, { 'syncline-position': '00000000016b3748:00000002', 'syncline-table': 'public.items', 'syncline-op': 'upsert', 'syncline-key': '["7"]' });
  assert.match(m.messageId, /^00000000016b3748:00000002\/[0-9a-f]{12}$/);

  // The same change → the same id; another key at the same position (snapshot rows share one) → another id.
  assert.equal(messageId(rec()), messageId(rec({ values: null, op: 'delete' })));
  assert.notEqual(messageId(rec()), messageId(rec({ key: { id: 8n } })));
  assert.notEqual(messageId(rec()), messageId(rec({ table: 'public.other' })));
  assert.notEqual(messageId(rec()), messageId(rec({ position: '00000000016b3748:00000003' })));

  const del = messageBody(rec({ op: 'delete', values: null, columnTypes: undefined }));
  assert.deepEqual(del, { format: 1, op: 'delete', table: 'public.items', key: { id: 7n }, values: null, keep: [], position: '00000000016b3748:00000002', sourceTsMs: 1795608000123 });
  const tr = messageBody(rec({ op: 'truncate', key: {}, values: null }));
  assert.equal(tr.op, 'truncate');
  assert.deepEqual(tr.key, {});
  // Unchanged TOASTed columns: listed in keep, absent from values.
  assert.deepEqual(messageBody(rec({ keep: ['doc'] })).keep, ['doc']);
});

test('errors: 403/530/404/406 fatal, connection loss and the rest retriable', () => {
  const handshake = new Error('Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN."');
  assert.equal(classifyRabbitError(handshake, 'x').kind, 'fatal');
  assert.equal(classifyRabbitError(handshake, 'x').code, 'RABBITMQ_403');
  const closed = (code: number, text: string) => Object.assign(new Error(`Channel closed by server: ${code} (${text}) with message "…"`), { code });
  assert.equal(classifyRabbitError(closed(404, 'NOT-FOUND'), 'x').kind, 'fatal');
  assert.match(classifyRabbitError(closed(404, 'NOT-FOUND'), 'x').message, /declare: true/);
  assert.equal(classifyRabbitError(closed(406, 'PRECONDITION-FAILED'), 'x').kind, 'fatal');
  assert.equal(classifyRabbitError(closed(530, 'NOT-ALLOWED'), 'x').kind, 'fatal');
  assert.equal(classifyRabbitError(Object.assign(new Error('Connection closed: 320 (CONNECTION-FORCED) with message "shutdown"'), { code: 320 }), 'x').kind, 'retriable');
  assert.equal(classifyRabbitError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5999'), { code: 'ECONNREFUSED' }), 'x').code, 'NET_ECONNREFUSED');
  assert.equal(classifyRabbitError(Object.assign(new Error('Channel closed'), { name: 'IllegalOperationError' }), 'x').code, 'RABBITMQ_CHANNEL_CLOSED');
  assert.equal(classifyRabbitError(new Error('something'), 'x').kind, 'retriable');
});

const config = (pipelineExtra: Record<string, unknown>, tableExtra: Record<string, unknown> = {}) =>
  JSON.stringify({
    version: 1,
    pipelines: {
      'to-rabbit': {
        source: { type: 'postgres', connection: { database: 'shop' }, slot: 's1', publication: 'p1' },
        target: { type: 'rabbitmq', exchange: 'shop.changes' },
        tables: [{ source: 'public.items', ...tableExtra }],
        ...pipelineExtra,
      },
    },
  }, null, 2);

function problems(text: string): string[] {
  try {
    parseConfig(text, 'test.yaml', {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  return [];
}

test('config: conflict strategies other than source-wins are refused for a rabbitmq target, naming the field', () => {
  assert.deepEqual(problems(config({ conflict: { strategy: 'source-wins' } })), []);
  const byDefault = problems(config({}));
  assert.equal(byDefault.length, 1, byDefault.join('\n'));
  assert.match(byDefault[0]!, /^pipelines\.to-rabbit\.target\.type: target type rabbitmq cannot apply conflict strategy latest-timestamp \(defaults\.conflict\.strategy/);
  assert.match(byDefault[0]!, /set conflict: \{ strategy: source-wins \}/);
  const manual = problems(config({ conflict: { strategy: 'manual' } }));
  assert.match(manual[0]!, /^pipelines\.to-rabbit\.conflict\.strategy: .*strategy manual \(pipelines\.to-rabbit\.conflict\.strategy\)/);
  const perTable = problems(config({ conflict: { strategy: 'source-wins' } }, { conflict: { strategy: 'target-wins' } }));
  assert.match(perTable[0]!, /^pipelines\.to-rabbit\.tables\[0\]\.conflict\.strategy: .*target-wins/);
  // A bad routing key template names its field.
  const tpl = problems(config({ conflict: { strategy: 'source-wins' } }).replace('"exchange": "shop.changes"', '"exchange": "shop.changes", "routingKey": "{table}.{verb}"'));
  assert.match(tpl[0]!, /^pipelines\.to-rabbit\.target\.routingKey: unknown placeholder \{verb\}/);
});
