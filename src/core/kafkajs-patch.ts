/**
 * Hot spots of kafkajs 2.2.4's producer (its last release, 2023), replaced with functions of
 * the same result, put into Node's require cache under their files' names before kafkajs loads them
 * (so kafkajs's producer takes them; this module must be evaluated before anything loads kafkajs:
 * src/core/kafka.ts, the runtime and the CLI import it first; `kafkajsPatched` says whether it was
 * in time). Measured in the profile of `npm run bench`:
 *  - groupMessagesPerPartition: `Object.assign(result, { [partition]: [...current, message] })` per
 *    message copies the partition's list each time, quadratic in the messages per partition (≈ 5 % of
 *    capture's CPU with 2,000-change batches). Ours: one pass.
 *  - the v0 Record encoder: a zero-filled 512-byte buffer per record and header, a JS array and a
 *    Buffer per varint, Long objects for the timestamp delta (buffer allocation ≈ 7 % of capture).
 *    Ours: the exact size computed, one buffer written; the bytes are kafkajs's (a test compares them).
 *  - crc32C of each record batch: a byte at a time (2 % of capture). Ours: @node-rs/crc32's native
 *    CRC-32C, or where its binary is missing eight bytes at a time (slicing-by-8); the same checksum.
 *  - the produce request and its framing (src/protocol/request.js): every byte of every record is
 *    copied six times through growing, zero-filled Encoders (≈ 6 % of capture with wide rows, and
 *    garbage). Ours: an uncompressed request written into one buffer of its exact size.
 * Also kafkaPartition(): the partition kafkajs's default partitioner gives a key (Java-compatible
 * murmur2), computed with 32-bit integer arithmetic instead of kafkajs's Long objects (4 % of capture).
 */
import Module, { createRequire } from 'node:module';

type Grouper = (o: { topic: string; partitionMetadata: unknown[]; messages: unknown[]; partitioner: (o: { topic: string; partitionMetadata: unknown[]; message: unknown }) => number }) => Record<number, unknown[]>;

/** The same grouping as kafkajs's groupMessagesPerPartition, in one pass. */
export const groupMessagesPerPartition: Grouper = ({ topic, partitionMetadata, messages, partitioner }) => {
  const result: Record<number, unknown[]> = {};
  if (partitionMetadata.length === 0) return result;
  for (const message of messages) {
    // A message with its partition set goes there (what kafkajs's partitioners answer, after filtering the metadata per message).
    const given = (message as { partition?: unknown }).partition;
    const partition = typeof given === 'number' ? given : partitioner({ topic, partitionMetadata, message });
    const list = result[partition];
    if (list) list.push(message);
    else result[partition] = [message];
  }
  return result;
};

type HeaderValue = Buffer | string | null | undefined;
interface RecordInput {
  offsetDelta?: number;
  timestampDelta?: number;
  key?: Buffer | string | null;
  value?: Buffer | string | null;
  headers?: Record<string, HeaderValue | HeaderValue[]>;
}

/** Zigzag of a 32-bit int, as kafkajs's Encoder.encodeZigZag, unsigned. */
const zigzag32 = (v: number) => ((v << 1) ^ (v >> 31)) >>> 0;
/** Zigzag of a safe integer (kafkajs: Long). */
const zigzag64 = (v: number) => (v >= 0 ? v * 2 : -v * 2 - 1);
function uvarintSize(u: number): number {
  let n = 1;
  while (u >= 0x80) {
    n++;
    u = Math.floor(u / 0x80);
  }
  return n;
}
function writeUVarint(buf: Buffer, at: number, u: number): number {
  while (u >= 0x80) {
    buf[at++] = (u % 0x80) | 0x80;
    u = Math.floor(u / 0x80);
  }
  buf[at++] = u;
  return at;
}
const bytesOf = (v: Buffer | string | null | undefined): Buffer | null => (v === null || v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(String(v), 'utf8'));
const sizeOfBytes = (b: Buffer | null) => (b === null ? 1 : uvarintSize(zigzag32(b.length)) + b.length);
function writeBytes(buf: Buffer, at: number, b: Buffer | null): number {
  if (b === null) return writeUVarint(buf, at, zigzag32(-1));
  at = writeUVarint(buf, at, zigzag32(b.length));
  b.copy(buf, at);
  return at + b.length;
}

/** kafkajs's record v0 (src/protocol/recordBatch/record/v0): an object with the encoded bytes as `buf` and `buffer`. */
export function encodeRecord({ offsetDelta = 0, timestampDelta = 0, key, value, headers = {} }: RecordInput): { buf: Buffer; readonly buffer: Buffer } {
  return recordOf(key, value, headers, offsetDelta, timestampDelta);
}

/** A record measured (recordPlan) and then written where it goes (writeRecord). */
interface RecordPlan {
  k: Buffer | null;
  v: Buffer | null;
  hs: [Buffer | null, Buffer | null][];
  offsetDelta: number;
  timestampDelta: number;
  /** Bytes after the length varint. */
  body: number;
  /** All the record's bytes, its length varint included. */
  size: number;
}

function recordPlan(key: RecordInput['key'], value: RecordInput['value'], headers: NonNullable<RecordInput['headers']>, offsetDelta: number, timestampDelta: number): RecordPlan {
  const k = bytesOf(key);
  const v = bytesOf(value);
  const hs: [Buffer | null, Buffer | null][] = [];
  for (const name of Object.keys(headers)) {
    const h = headers[name];
    const nameBytes = bytesOf(name);
    if (Array.isArray(h)) for (const one of h) hs.push([nameBytes, bytesOf(one)]);
    else hs.push([nameBytes, bytesOf(h)]);
  }
  let body = 1 + uvarintSize(zigzag64(timestampDelta)) + uvarintSize(zigzag32(offsetDelta)) + sizeOfBytes(k) + sizeOfBytes(v) + uvarintSize(zigzag32(hs.length));
  for (const [n, hv] of hs) body += sizeOfBytes(n) + sizeOfBytes(hv);
  return { k, v, hs, offsetDelta, timestampDelta, body, size: uvarintSize(zigzag32(body)) + body };
}

function writeRecord(buf: Buffer, at: number, r: RecordPlan): number {
  at = writeUVarint(buf, at, zigzag32(r.body));
  buf[at++] = 0; // attributes
  at = writeUVarint(buf, at, zigzag64(r.timestampDelta));
  at = writeUVarint(buf, at, zigzag32(r.offsetDelta));
  at = writeBytes(buf, at, r.k);
  at = writeBytes(buf, at, r.v);
  at = writeUVarint(buf, at, zigzag32(r.hs.length));
  for (const [n, hv] of r.hs) at = writeBytes(buf, writeBytes(buf, at, n), hv);
  return at;
}

function recordOf(key: RecordInput['key'], value: RecordInput['value'], headers: NonNullable<RecordInput['headers']>, offsetDelta: number, timestampDelta: number): { buf: Buffer; readonly buffer: Buffer } {
  return writtenRecord(recordPlan(key, value, headers, offsetDelta, timestampDelta));
}

/** A measured record written into a buffer of its own, as kafkajs's record encoder returns it. */
function writtenRecord(plan: RecordPlan): { buf: Buffer; readonly buffer: Buffer } {
  const buf = Buffer.allocUnsafe(plan.size);
  writeRecord(buf, 0, plan);
  return { buf, get buffer() { return buf; } };
}

/** CRC-32C (Castagnoli, reflected 0x82F63B78) tables for slicing-by-8. */
const CRC_TABLES: Int32Array[] = (() => {
  const t = Array.from({ length: 8 }, () => new Int32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[0]![n] = c;
  }
  for (let n = 0; n < 256; n++) for (let s = 1; s < 8; s++) t[s]![n] = (t[s - 1]![n]! >>> 8) ^ t[0]![t[s - 1]![n]! & 0xff]!;
  return t;
})();

/** CRC-32C in JS, eight bytes at a time: the fallback where @node-rs/crc32's native build is not installed. */
export function crc32cSliced(buf: Buffer): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC_TABLES as [Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array];
  let crc = -1;
  let i = 0;
  const end8 = buf.length - (buf.length % 8);
  for (; i < end8; i += 8) {
    const a = crc ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
    crc = t7[a & 0xff]! ^ t6[(a >>> 8) & 0xff]! ^ t5[(a >>> 16) & 0xff]! ^ t4[a >>> 24]! ^ t3[buf[i + 4]!]! ^ t2[buf[i + 5]!]! ^ t1[buf[i + 6]!]! ^ t0[buf[i + 7]!]!;
  }
  for (; i < buf.length; i++) crc = t0[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

/**
 * @node-rs/crc32's CRC-32C (SSE 4.2 / ARMv8 CRC instructions, a prebuilt binary per platform):
 * 6 – 7 times faster than crc32cSliced on a 16 KB record batch (4.7 % of wide-row capture in JS);
 * undefined where its binary for this platform is not installed.
 */
const nativeCrc32c: ((buf: Buffer) => number) | undefined = (() => {
  try {
    const { crc32c } = createRequire(import.meta.url)('@node-rs/crc32') as { crc32c(input: Uint8Array, initial?: number): number };
    return (buf: Buffer) => crc32c(buf);
  } catch {
    return undefined;
  }
})();

/** Which CRC-32C the producer uses here (tests check it is the native one where the binary is installed). */
export const crc32cKind: 'native' | 'js' = nativeCrc32c ? 'native' : 'js';

/** kafkajs's crc32C (src/protocol/recordBatch/crc32C): the unsigned CRC-32C of the bytes. */
export const crc32c: (buf: Buffer) => number = nativeCrc32c ?? crc32cSliced;

/** Kafka's murmur2 of a key (Java client 0.10.2, as kafkajs's default partitioner), in 32-bit ints. */
export function murmur2(data: Buffer): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & ~3;
  switch (length % 4) {
    case 3:
      h ^= data[tail + 2]! << 16;
    // falls through
    case 2:
      h ^= data[tail + 1]! << 8;
    // falls through
    case 1:
      h ^= data[tail]!;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h;
}

/** The partition of a keyed message among `partitions`: kafkajs's default partitioner's answer. */
export const kafkaPartition = (key: Buffer, partitions: number): number => (murmur2(key) & 0x7fffffff) % partitions;

interface ProducedMessage {
  key?: Buffer | string | null;
  value?: Buffer | string | null;
  headers?: RecordInput['headers'];
  timestamp?: number | string | null;
}
interface PartitionData {
  partition: number;
  messages: ProducedMessage[];
  firstSequence?: number;
}
interface KafkajsEncoder {
  writeString(s: string | null): KafkajsEncoder;
  writeInt16(n: number): KafkajsEncoder;
  writeInt32(n: number): KafkajsEncoder;
  writeArray(a: unknown[]): KafkajsEncoder;
  writeEncoder(e: unknown): KafkajsEncoder;
}

/**
 * kafkajs's produce request v3 (src/protocol/requests/produce/v3/request.js; v4 – v7 build on it),
 * the same bytes, with its records made by recordOf() directly: kafkajs copies every message into a
 * new object (`{ ...message, offsetDelta, timestampDelta }`) to call its record encoder (8 % of capture).
 */
export function produceRequestV3({ acks, timeout, transactionalId = null, producerId, producerEpoch = 0, compression, topicData }: {
  acks: number; timeout: number; transactionalId?: string | null; producerId?: unknown; producerEpoch?: number; compression?: number;
  topicData: { topic: string; partitions: PartitionData[] }[];
}) {
  const k = kafkajsModules();
  const codec = compression ?? k.Types.None;
  const pid = producerId ?? k.Long.fromInt(-1);
  return {
    apiKey: k.apiKey,
    apiVersion: 3,
    apiName: 'Produce',
    expectResponse: () => acks !== 0,
    encode: async () => {
      if (codec === k.Types.None) return encodeUncompressed(k, { acks, timeout, transactionalId, producerId: pid, producerEpoch, topicData });
      const topics: KafkajsEncoder[] = [];
      for (const { topic, partitions } of topicData) {
        const encoded: KafkajsEncoder[] = [];
        for (const { partition, messages, firstSequence } of partitions) {
          const { records, firstTimestamp, maxTimestamp } = recordsOf(messages);
          const recordBatch = (await k.RecordBatch({ compression: codec, records, firstTimestamp, maxTimestamp, producerId: pid, producerEpoch, firstSequence, transactional: !!transactionalId, lastOffsetDelta: records.length - 1 })) as KafkajsEncoder & { size(): number };
          encoded.push(new k.Encoder().writeInt32(partition).writeInt32(recordBatch.size()).writeEncoder(recordBatch));
        }
        topics.push(new k.Encoder().writeString(topic).writeArray(encoded));
      }
      return new k.Encoder().writeString(transactionalId).writeInt16(acks).writeInt32(timeout).writeArray(topics);
    },
  };
}

/** First and max timestamps of a partition's batch, as kafkajs takes them (its sort, as strings), and the time of messages without one. */
function timesOf(messages: ProducedMessage[]): { firstTimestamp: number | string; maxTimestamp: number | string; dateNow: number } {
  const dateNow = Date.now();
  const stamps = messages.map((m) => m.timestamp).filter((t) => t != null).sort() as (number | string)[];
  const timestamps = stamps.length === 0 ? [dateNow] : stamps;
  return { firstTimestamp: timestamps[0]!, maxTimestamp: timestamps[timestamps.length - 1]!, dateNow };
}

/** The records of one partition's batch (kafkajs's compressed path takes them as Encoders). */
function recordsOf(messages: ProducedMessage[]): { records: { buf: Buffer; readonly buffer: Buffer }[]; firstTimestamp: number | string; maxTimestamp: number | string } {
  const { plans, firstTimestamp, maxTimestamp } = plansOf(messages);
  return { records: plans.map(writtenRecord), firstTimestamp, maxTimestamp };
}

/** The records of one partition's batch, measured, to be written into the request in place. */
function plansOf(messages: ProducedMessage[]): { plans: RecordPlan[]; firstTimestamp: number | string; maxTimestamp: number | string; bytes: number } {
  const { firstTimestamp, maxTimestamp, dateNow } = timesOf(messages);
  const plans = new Array<RecordPlan>(messages.length);
  let bytes = 0;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    const plan = recordPlan(m.key, m.value, m.headers ?? {}, i, Number(m.timestamp || dateNow) - Number(firstTimestamp));
    plans[i] = plan;
    bytes += plan.size;
  }
  return { plans, firstTimestamp, maxTimestamp, bytes };
}

/** An object kafkajs's Encoder takes as one of its own (writeEncoder reads `buf` and `buffer`). */
const asEncoder = (buf: Buffer) => ({ buf, get buffer() { return buf; }, size: () => buf.length });

/** kafkajs's nullable STRING: int16 byte length (-1 for null or undefined, as its Encoder), then UTF-8 bytes. */
const stringSize = (s: string | null | undefined) => 2 + (s == null ? 0 : Buffer.byteLength(s, 'utf8'));
function writeString(buf: Buffer, at: number, s: string | null | undefined): number {
  if (s == null) return buf.writeInt16BE(-1, at);
  const n = buf.write(s, at + 2, 'utf8');
  buf.writeInt16BE(n, at);
  return at + 2 + n;
}
function writeInt64(buf: Buffer, at: number, v: unknown, Long: KafkajsLong): number {
  const l = Long.fromValue(v);
  buf.writeInt32BE(l.getHighBits(), at);
  buf.writeInt32BE(l.getLowBits(), at + 4);
  return at + 8;
}

/**
 * The uncompressed produce request written into one buffer of its exact size: kafkajs writes each
 * record batch into a growing zero-filled Encoder and then copies it four more times (the batch, the
 * partition, the topic, the request), ≈ 6 % of capture's CPU with wide rows. The bytes are kafkajs's
 * (RecordBatch v0: src/protocol/recordBatch/v0; a test compares them).
 */
function encodeUncompressed(k: NonNullable<typeof kjs>, o: { acks: number; timeout: number; transactionalId: string | null; producerId: unknown; producerEpoch: number; topicData: { topic: string; partitions: PartitionData[] }[] }) {
  const BATCH_HEAD = 8 + 4 + 4 + 1 + 4; // firstOffset, length, partitionLeaderEpoch, magic, crc
  const BODY_HEAD = 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4; // attributes … firstSequence, record count
  const topics = o.topicData.map(({ topic, partitions }) => ({
    topic,
    parts: partitions.map((p) => ({ p, ...plansOf(p.messages) })),
  }));
  let size = stringSize(o.transactionalId) + 2 + 4 + 4;
  for (const t of topics) {
    size += stringSize(t.topic) + 4;
    for (const part of t.parts) size += 4 + 4 + BATCH_HEAD + BODY_HEAD + part.bytes;
  }
  // FRAME_ROOM bytes before the request for frameRequest's header, so the request is not copied into its frame.
  const whole = Buffer.allocUnsafe(FRAME_ROOM + size);
  const buf = whole.subarray(FRAME_ROOM);
  let at = writeString(buf, 0, o.transactionalId);
  at = buf.writeInt16BE(o.acks, at);
  at = buf.writeInt32BE(o.timeout, at);
  at = buf.writeInt32BE(topics.length, at);
  const attributes = o.transactionalId ? 16 : 0; // no compression, create time, TRANSACTIONAL_MASK
  for (const t of topics) {
    at = writeString(buf, at, t.topic);
    at = buf.writeInt32BE(t.parts.length, at);
    for (const { p, plans, firstTimestamp, maxTimestamp, bytes } of t.parts) {
      const batchLength = 4 + 1 + 4 + BODY_HEAD + bytes; // what follows the length field
      at = buf.writeInt32BE(p.partition, at);
      at = buf.writeInt32BE(8 + 4 + batchLength, at); // the record set's size
      at = writeInt64(buf, at, 0, k.Long); // firstOffset
      at = buf.writeInt32BE(batchLength, at);
      at = buf.writeInt32BE(0, at); // partitionLeaderEpoch
      at = buf.writeInt8(2, at); // magic
      const crcAt = at;
      at += 4;
      const bodyAt = at;
      at = buf.writeInt16BE(attributes, at);
      at = buf.writeInt32BE(plans.length - 1, at); // lastOffsetDelta
      at = writeInt64(buf, at, firstTimestamp, k.Long);
      at = writeInt64(buf, at, maxTimestamp, k.Long);
      at = writeInt64(buf, at, o.producerId, k.Long);
      at = buf.writeInt16BE(o.producerEpoch, at);
      at = buf.writeInt32BE(p.firstSequence ?? 0, at);
      at = buf.writeInt32BE(plans.length, at);
      for (const plan of plans) at = writeRecord(buf, at, plan);
      buf.writeUInt32BE(crc32c(buf.subarray(bodyAt, at)), crcAt);
    }
  }
  if (at !== size) throw new Error(`produce request: wrote ${at} bytes of ${size}`);
  return { ...asEncoder(buf), [FRAMED_IN]: whole };
}

/** Bytes a request may keep free before itself for its frame's header (size, api key and version, correlation id, client id). */
const FRAME_ROOM = 128;
/** On an encoded request written FRAME_ROOM bytes into a larger buffer: that buffer. */
const FRAMED_IN = Symbol('syncline.framedIn');

/**
 * kafkajs's request framing (src/protocol/request.js), the same bytes in one buffer of its exact size:
 * size, api key, api version, correlation id, client id, then the request's payload (kafkajs copies
 * the payload twice, through two growing Encoders). A payload with room before it (FRAMED_IN, the
 * uncompressed produce request) gets its header written there, and is not copied at all.
 */
export async function frameRequest({ correlationId, clientId, request: { apiKey, apiVersion, encode } }: { correlationId: number; clientId: string | null; request: { apiKey: number; apiVersion: number; encode: () => Promise<{ buffer: Buffer }> | { buffer: Buffer } } }) {
  const encoded = await encode();
  const payload = encoded.buffer;
  const head = 4 + 2 + 2 + 4 + stringSize(clientId);
  const room = (encoded as { [FRAMED_IN]?: Buffer })[FRAMED_IN];
  const inPlace = room !== undefined && head <= FRAME_ROOM;
  const buf = inPlace ? room.subarray(FRAME_ROOM - head) : Buffer.allocUnsafe(head + payload.length);
  let at = buf.writeInt32BE(head - 4 + payload.length, 0);
  at = buf.writeInt16BE(apiKey, at);
  at = buf.writeInt16BE(apiVersion, at);
  at = buf.writeInt32BE(correlationId, at);
  at = writeString(buf, at, clientId);
  if (!inPlace) payload.copy(buf, at);
  return asEncoder(buf);
}

interface KafkajsLong {
  fromValue(v: unknown): { getHighBits(): number; getLowBits(): number };
}

/** kafkajs's own modules the produce request uses, loaded on first use (after install() put ours in place). */
let kjs: { Long: { fromInt(n: number): unknown } & KafkajsLong; Encoder: new () => KafkajsEncoder; apiKey: number; Types: { None: number }; RecordBatch: (o: object) => Promise<unknown> } | undefined;
function kafkajsModules(): NonNullable<typeof kjs> {
  return (kjs ??= {
    Long: require('kafkajs/src/utils/long.js'),
    Encoder: require('kafkajs/src/protocol/encoder.js'),
    apiKey: require('kafkajs/src/protocol/requests/apiKeys.js').Produce,
    Types: require('kafkajs/src/protocol/message/compression/index.js').Types,
    RecordBatch: require('kafkajs/src/protocol/recordBatch/v0/index.js').RecordBatch,
  });
}

const require = createRequire(import.meta.url);
export const GROUPER_PATH = require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js');
export const RECORD_PATH = require.resolve('kafkajs/src/protocol/recordBatch/record/v0/index.js');
export const CRC32C_PATH = require.resolve('kafkajs/src/protocol/recordBatch/crc32C/index.js');
const SEND_MESSAGES_PATH = require.resolve('kafkajs/src/producer/sendMessages.js');
export const PRODUCE_REQUEST_PATH = require.resolve('kafkajs/src/protocol/requests/produce/v3/request.js');
export const REQUEST_PATH = require.resolve('kafkajs/src/protocol/request.js');

function put(path: string, exports: unknown): void {
  const m = new Module(path);
  m.filename = path;
  m.loaded = true;
  m.exports = exports;
  require.cache[path] = m;
}

function install(): boolean {
  if (require.cache[SEND_MESSAGES_PATH] || require.cache[PRODUCE_REQUEST_PATH] || require.cache[REQUEST_PATH]) {
    return require.cache[GROUPER_PATH]?.exports === groupMessagesPerPartition && require.cache[RECORD_PATH]?.exports === encodeRecord && require.cache[CRC32C_PATH]?.exports === crc32c && require.cache[PRODUCE_REQUEST_PATH]?.exports === produceRequestV3 && require.cache[REQUEST_PATH]?.exports === frameRequest;
  }
  put(GROUPER_PATH, groupMessagesPerPartition);
  put(RECORD_PATH, encodeRecord);
  put(CRC32C_PATH, crc32c);
  put(PRODUCE_REQUEST_PATH, produceRequestV3);
  put(REQUEST_PATH, frameRequest);
  return true;
}

export const kafkajsPatched = install();
