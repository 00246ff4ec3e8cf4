import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../connectors/index.js';
import { parseConfig } from '../core/config/load.js';
import { captureOffsetItems, KIND, liveKeys, ownsGroup, pipelineTopics, redisPattern, renderPlan, runningMessage, subjectsOf } from './drop-plan.js';

const pipeline = (db: string, slot: string, tables: string[], extra = '') => `
    source: { type: postgres, connection: { database: ${db} }, slot: ${slot}, publication: ${slot} }
    target: { type: postgres, connection: { database: ${db}_copy } }
    tables: [${tables.map((t) => `{ source: ${t} }`).join(', ')}]${extra}`;

const config = parseConfig(`version: 1
topicPrefix: p
pipelines:
  a:${pipeline('shop', 'sa', ['public.users', 'public.orders'])}
  a-b:
    follows: a
    target: { type: postgres, connection: { database: shop_copy2 } }
    tables: [{ source: public.orders }]
  other:${pipeline('crm', 'so', ['public.users'], '\n    changeTopicPrefix: crm')}
`, 'test.yaml', {});

test('a pipeline owns its apply, dead-letter and actions topics; a change topic is shared with the pipelines of the config that read the same table under the same prefix (its followers)', () => {
  assert.deepEqual(pipelineTopics(config, 'a'), {
    own: ['p.apply.a', 'p.dlq.a', 'p.dlq-actions.a', 'p.transforms.a'],
    change: [
      { topic: 'p.cdc.public.users', sharedWith: [] }, // `other` captures public.users too, but under its own prefix crm
      { topic: 'p.cdc.public.orders', sharedWith: ['a-b'] },
    ],
  });
  assert.deepEqual(pipelineTopics(config, 'other').change, [{ topic: 'crm.cdc.public.users', sharedWith: [] }]);
  assert.deepEqual(subjectsOf('p.cdc.public.users'), ['p.cdc.public.users-key', 'p.cdc.public.users-value']);
});

test("a pipeline's consumer groups are those named <prefix>.<pipeline>.…, not those of a pipeline whose name starts the same", () => {
  for (const g of ['p.a.processor', 'p.a.sink', 'p.a.replay.0badc0de', 'p.a.dlq-reader.12345678', 'p.a.capture-tail.abcdef01']) assert.ok(ownsGroup('p', 'a', g), g);
  for (const g of ['p.a-b.processor', 'p.ab.processor', 'q.a.processor', 'pp.a.processor', 'p.a', 'syncline-offsets-reader-1']) assert.ok(!ownsGroup('p', 'a', g), g);
});

test('the Redis pattern is the hash tag of the pipeline, with the key prefix\'s glob metacharacters escaped', () => {
  assert.equal(redisPattern('syncline', 'orders'), 'syncline:{orders}:*');
  assert.equal(redisPattern('t1[x]*?\\', 'a-b'), 't1\\[x\\]\\*\\?\\\\:{a-b}:*');
});

test('live keys of a compacted topic: the latest record of each key decides, a tombstone removes it', () => {
  const v = Buffer.from('{}');
  assert.deepEqual(liveKeys([{ key: 's1', value: v }, { key: 's2', value: v }, { key: 's1', value: null }, { key: null, value: v }, { key: 's3', value: null }, { key: 's3', value: v }]), ['s2', 's3']);
});

test("capture offsets: this slot's entry is tombstoned; the topic goes only when no other entry is left; an entry another pipeline's slot name shares is kept", () => {
  const t = 'p.capture.offsets';
  assert.deepEqual(captureOffsetItems(t, 'sa', ['sa', 'sab'], [], 'kafka'), [{ kind: KIND.offset, name: `${t} key sa`, where: 'kafka' }]);
  assert.deepEqual(captureOffsetItems(t, 'sa', ['sa'], [], 'kafka'), [
    { kind: KIND.offset, name: `${t} key sa`, where: 'kafka' },
    { kind: KIND.topic, name: t, where: 'kafka', detail: 'capture offsets of this pipeline only' },
  ]);
  assert.deepEqual(captureOffsetItems(t, 'sa', ['sab'], [], 'kafka'), []); // nothing of ours in it, others' entries: untouched
  assert.deepEqual(captureOffsetItems(t, 'sa', [], [], 'kafka'), [{ kind: KIND.topic, name: t, where: 'kafka', detail: 'capture offsets of this pipeline only' }]);
  // The pipeline's own backfill state does not keep the topic.
  assert.deepEqual(captureOffsetItems(t, 'sa', ['backfill:a'], [], 'kafka', ['backfill:a']), [{ kind: KIND.topic, name: t, where: 'kafka', detail: 'capture offsets of this pipeline only' }]);
  assert.deepEqual(captureOffsetItems(t, 'sa', ['sa'], ['twin'], 'kafka'), [{ kind: KIND.offset, name: `${t} key sa`, where: 'kafka', keep: 'pipeline twin uses the same slot name (and this entry)' }]);
});

test('the plan lists what is in use, dropped and kept with the reasons; running is refused naming what runs', () => {
  const items = [
    { kind: 'replication slot', name: 'sa', where: 'postgres h:5432/shop', inUse: 'active (walsender pid 42)' },
    { kind: KIND.topic, name: 'p.dlq.a', where: 'kafka k:9092', detail: '3 partitions, 0 messages' },
    { kind: KIND.topic, name: 'p.cdc.public.orders', where: 'kafka k:9092', keep: 'also the change topic of pipeline a-b' },
  ];
  assert.deepEqual(renderPlan('a', 'c.yaml', items).split('\n').map((l) => l.replace(/ {2,}/g, ' | ')), [
    'pipeline a (c.yaml)',
    'in use (1):',
    ' | replication slot | sa | postgres h:5432/shop | (active (walsender pid 42))',
    'to drop (1):',
    ' | kafka topic | p.dlq.a | kafka k:9092 | (3 partitions, 0 messages)',
    'kept (1):',
    ' | kafka topic | p.cdc.public.orders | kafka k:9092 | (also the change topic of pipeline a-b)',
  ]);
  // One column layout for all sections: the `where` column starts at the same place on every row.
  const lines = renderPlan('a', 'c.yaml', items).split('\n').filter((l) => l.startsWith('  '));
  assert.deepEqual(lines.map((l, i) => l.indexOf(items[i]!.where)), [41, 41, 41]); // 2 + 16 (kind) + 2 + 19 (name) + 2
  assert.match(runningMessage('a', items)!, /^pipeline a is running: replication slot sa active \(walsender pid 42\)\. Stop its processes/);
  assert.equal(runningMessage('a', items.slice(1)), undefined);
});
