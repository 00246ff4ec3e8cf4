import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import vm from 'node:vm';
import { dirname, join } from 'node:path';
import { crc32c, crc32cKind, crc32cSliced, encodeRecord, frameRequest, GROUPER_PATH, groupMessagesPerPartition, kafkaPartition, kafkajsPatched, murmur2, PRODUCE_REQUEST_PATH, produceRequestV3, RECORD_PATH, REQUEST_PATH } from './kafkajs-patch.js';
import './kafka.js';

const require = createRequire(import.meta.url);

/** kafkajs's own file at `path`, evaluated on its own (its relative requires from its folder), not the one installed in its place. */
function originalKafkajs<T>(path: string): T {
  const mod = { exports: {} as unknown };
  const dir = dirname(path);
  vm.runInThisContext(`(function (module, require) {${readFileSync(path, 'utf8')}\n})`)(mod, (p: string) => require(p.startsWith('.') ? join(dir, p) : p));
  return mod.exports as T;
}

test('kafkajs takes the linear grouping, which groups exactly as its own', () => {
  assert.equal(kafkajsPatched, true, 'installed before kafkajs loaded');
  assert.equal(require('kafkajs/src/producer/groupMessagesPerPartition.js'), groupMessagesPerPartition);
  const original = originalKafkajs<typeof groupMessagesPerPartition>(GROUPER_PATH);
  const partitionMetadata = [{ partitionId: 0 }, { partitionId: 1 }, { partitionId: 2 }];
  const partitioner = ({ message }: { message: unknown }) => (message as { partition: number }).partition;
  for (const n of [0, 1, 7, 500]) {
    const messages = Array.from({ length: n }, (_, i) => ({ partition: (i * 7919) % 3, value: `v${i}` }));
    assert.deepEqual(groupMessagesPerPartition({ topic: 't', partitionMetadata, messages, partitioner }), original({ topic: 't', partitionMetadata, messages, partitioner }));
  }
  assert.deepEqual(groupMessagesPerPartition({ topic: 't', partitionMetadata: [], messages: [{ partition: 0 }], partitioner }), {});
});

test("kafkajs takes the record encoder, which writes kafkajs's own bytes", () => {
  assert.equal(require('kafkajs/src/protocol/recordBatch/record/v0/index.js'), encodeRecord);
  // kafkajs's own file, evaluated with its own Encoder and Header.
  const original = originalKafkajs<(r: object) => { buffer: Buffer }>(RECORD_PATH);
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

test("crc32c and the key partition are kafkajs's own", () => {
  // Where @node-rs/crc32 ships a binary (linux x64 here), the producer uses it.
  if (process.platform === 'linux' && process.arch === 'x64') assert.equal(crc32cKind, 'native');
  assert.equal(require('kafkajs/src/protocol/recordBatch/crc32C/index.js'), crc32c);
  const originalCrc = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (b: Buffer) => number;
  const originalMurmur = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (b: Buffer) => number;
  const { DefaultPartitioner } = require('kafkajs').Partitioners as { DefaultPartitioner: () => (o: object) => number };
  const partitioner = DefaultPartitioner();
  const md = (n: number) => Array.from({ length: n }, (_, i) => ({ partitionId: i, leader: 0 }));
  let seed = 7;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let len = 0; len < 300; len++) {
    const b = Buffer.from(Array.from({ length: len }, () => Math.floor(rnd() * 256)));
    assert.equal(crc32c(b), originalCrc(b) >>> 0, `crc of ${len} bytes`);
    assert.equal(crc32cSliced(b), originalCrc(b) >>> 0, `JS crc of ${len} bytes`);
    assert.equal(murmur2(b), originalMurmur(b), `murmur2 of ${len} bytes`);
    for (const n of [1, 3, 7, 64]) assert.equal(kafkaPartition(b, n), partitioner({ topic: 't', partitionMetadata: md(n), message: { key: b } }));
  }
});

test("the produce request is kafkajs's own, byte for byte", async () => {
  assert.equal(require('kafkajs/src/protocol/requests/produce/v3/request.js'), produceRequestV3);
  // kafkajs's own file, evaluated with its own modules (but the record encoder, already shown to be equal).
  const original = originalKafkajs<typeof produceRequestV3>(PRODUCE_REQUEST_PATH);
  const Long = require('kafkajs/src/utils/long.js') as { fromInt(n: number): unknown; fromNumber(n: number): unknown };
  const msgs = (n: number, p: number) => Array.from({ length: n }, (_, i) => ({ key: Buffer.from(`k${p}-${i}`), value: Buffer.from('v'.repeat(i * 13)), ...(i % 3 === 0 ? { headers: { 'syncline.peer-decided': '1' } } : {}), partition: p }));
  const now = Date.now;
  Date.now = () => 1795608000123;
  try {
    for (const args of [
      { acks: -1, timeout: 30000, topicData: [{ topic: 't', partitions: [{ partition: 0, messages: msgs(5, 0), firstSequence: 0 }, { partition: 2, messages: msgs(40, 2), firstSequence: 17 }] }] },
      { acks: 1, timeout: 5000, transactionalId: 'tx-1', producerId: Long.fromNumber(4242), producerEpoch: 3, topicData: [{ topic: 'a', partitions: [{ partition: 1, messages: msgs(1, 1) }] }, { topic: 'b', partitions: [{ partition: 0, messages: [{ key: null, value: 'x', timestamp: 1795608000000 }, { key: 'y', value: null, timestamp: '1795608000500' }] }] }] },
      // Unicode topic and transactional id, a large batch, then the compressed path (kafkajs's own batch).
      { acks: -1, timeout: 30000, transactionalId: 'tx-é', producerId: Long.fromNumber(2 ** 40 + 7), producerEpoch: 1, topicData: [{ topic: 'tö', partitions: [{ partition: 0, messages: msgs(300, 0), firstSequence: 2 ** 30 }] }] },
      { acks: -1, timeout: 30000, compression: 1, topicData: [{ topic: 'z', partitions: [{ partition: 0, messages: msgs(20, 0) }, { partition: 1, messages: msgs(3, 1) }] }] },
    ]) {
      const ours = (await produceRequestV3(args as never).encode()) as unknown as { buffer: Buffer };
      const theirs = (await original(args as never).encode()) as unknown as { buffer: Buffer };
      assert.deepEqual(ours.buffer, theirs.buffer);
      assert.equal(produceRequestV3(args as never).apiVersion, 3);
    }
  } finally {
    Date.now = now;
  }
});

test("kafkajs takes the request framing, which writes kafkajs's own bytes", async () => {
  assert.equal(require('kafkajs/src/protocol/request.js'), frameRequest);
  const original = originalKafkajs<typeof frameRequest>(REQUEST_PATH);
  const Encoder = require('kafkajs/src/protocol/encoder.js') as new () => { writeString(s: string): { writeInt32(n: number): unknown }; buffer: Buffer };
  for (const [clientId, body] of [['syncline', 'x'.repeat(3000)], [null, ''], ['clïent', 'é'.repeat(70)]] as const) {
    const request = { apiKey: 0, apiVersion: 3, encode: async () => new Encoder().writeString(body) as unknown as { buffer: Buffer } };
    const ours = await frameRequest({ correlationId: 123456, clientId, request });
    const theirs = (await original({ correlationId: 123456, clientId, request })) as unknown as { buffer: Buffer };
    assert.deepEqual(ours.buffer, theirs.buffer, String(clientId));
  }
  // An uncompressed produce request is framed in the room left before it (a client id too long for that room: copied),
  // and the frame is byte for byte kafkajs's own framing of kafkajs's own request.
  const originalProduce = originalKafkajs<typeof produceRequestV3>(PRODUCE_REQUEST_PATH);
  const messages = Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: 'v'.repeat(i * 31), partition: 0, timestamp: 1795608000000 + i }));
  const args = { acks: -1, timeout: 30000, topicData: [{ topic: 't', partitions: [{ partition: 0, messages, firstSequence: 3 }] }] };
  // Room for a header of 128 bytes: 12 + 2 + 114 client id bytes fill it exactly.
  for (const [clientId, inRoom] of [['syncline-capture-users-sync', true], [null, true], ['c'.repeat(114), true], ['c'.repeat(115), false], ['ü'.repeat(300), false]] as const) {
    const encoded = (await produceRequestV3(args as never).encode()) as unknown as { buffer: Buffer };
    const ours = await frameRequest({ correlationId: 77, clientId, request: { apiKey: 0, apiVersion: 3, encode: () => encoded } });
    const theirs = (await original({ correlationId: 77, clientId, request: originalProduce(args as never) as never })) as unknown as { buffer: Buffer };
    assert.deepEqual(ours.buffer, theirs.buffer, `client id of ${clientId?.length ?? 'null'} characters`);
    assert.equal(ours.size(), ours.buffer.length);
    const sameMemory = ours.buffer.buffer === encoded.buffer.buffer && ours.buffer.byteOffset + ours.buffer.length === encoded.buffer.byteOffset + encoded.buffer.length;
    assert.equal(sameMemory, inRoom, `client id of ${clientId?.length ?? 'null'} characters: framed ${inRoom ? 'in place' : 'in a copy'}`);
  }
});
