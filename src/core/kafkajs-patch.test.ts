import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import vm from 'node:vm';
import { GROUPER_PATH, groupMessagesPerPartition, kafkajsPatched } from './kafkajs-patch.js';
import './kafka.js';

test('kafkajs takes the linear grouping, which groups exactly as its own', () => {
  assert.equal(kafkajsPatched, true, 'installed before kafkajs loaded');
  const require = createRequire(import.meta.url);
  assert.equal(require('kafkajs/src/producer/groupMessagesPerPartition.js'), groupMessagesPerPartition);
  // kafkajs's own file, evaluated on its own.
  const mod = { exports: {} as unknown };
  vm.runInThisContext(`(function (module) {${readFileSync(GROUPER_PATH, 'utf8')}\n})`)(mod);
  const original = mod.exports as typeof groupMessagesPerPartition;
  const partitionMetadata = [{ partitionId: 0 }, { partitionId: 1 }, { partitionId: 2 }];
  const partitioner = ({ message }: { message: unknown }) => (message as { partition: number }).partition;
  for (const n of [0, 1, 7, 500]) {
    const messages = Array.from({ length: n }, (_, i) => ({ partition: (i * 7919) % 3, value: `v${i}` }));
    assert.deepEqual(groupMessagesPerPartition({ topic: 't', partitionMetadata, messages, partitioner }), original({ topic: 't', partitionMetadata, messages, partitioner }));
  }
  assert.deepEqual(groupMessagesPerPartition({ topic: 't', partitionMetadata: [], messages: [{ partition: 0 }], partitioner }), {});
});
