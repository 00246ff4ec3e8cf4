import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import vm from 'node:vm';
import { dirname, join } from 'node:path';
import { encodeRecord, GROUPER_PATH, groupMessagesPerPartition, kafkajsPatched, RECORD_PATH } from './kafkajs-patch.js';
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

test("kafkajs takes the record encoder, which writes kafkajs's own bytes", () => {
  const require = createRequire(import.meta.url);
  assert.equal(require('kafkajs/src/protocol/recordBatch/record/v0/index.js'), encodeRecord);
  // kafkajs's own file, evaluated with its own Encoder and Header.
  const mod = { exports: {} as unknown };
  const dir = dirname(RECORD_PATH);
  const req = (p: string) => require(join(dir, p));
  vm.runInThisContext(`(function (module, require) {${readFileSync(RECORD_PATH, 'utf8')}\n})`)(mod, req);
  const original = mod.exports as (r: object) => { buffer: Buffer };
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 37) % 256));
  const cases = [
    {},
    { key: null, value: null },
    { key: bytes(3), value: bytes(200), offsetDelta: 5, timestampDelta: 0 },
    { key: 'k', value: 'välue', offsetDelta: 300, timestampDelta: 70000, headers: { 'syncline.peer-decided': '1' } },
    { key: bytes(0), value: bytes(20000), offsetDelta: 2 ** 31 - 1, timestampDelta: 2 ** 40, headers: { a: [bytes(2), 'x'], c: bytes(129) } },
    { value: bytes(127), offsetDelta: 64, timestampDelta: 63, headers: { ['h'.repeat(200)]: 'v'.repeat(70) } },
  ];
  for (const c of cases) assert.deepEqual(encodeRecord(c).buffer, original(c).buffer, JSON.stringify(Object.keys(c)));
});
