/**
 * A consumer-group stage: reads partition batches, decodes each message into a Pending record, and
 * hands the batch to its output, then commits the partition's offset. Offsets are committed only
 * after the output returned (the target committed, the record was dead-lettered, or the next topic
 * acknowledged it), so a crash redelivers and never skips; version state makes redeliveries no-ops.
 *
 * Two uses:
 *  - processor (`cdcDecoder`): change topics → decode Avro → map → hash → Applier (all-in-one) or
 *    the apply topic (split deployment);
 *  - sink writer (`applyTopicDecoder`, src/sink/apply-topic.ts): apply topic → Applier.
 * Undecodable messages (garbage bytes, unknown schema id, missing key) and records that break their
 * table's validation rules are poison: dead-lettered as 'invalid' with the reason (and every
 * violation); the partition moves on.
 */
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import type { Logger } from 'pino';
import type { ChangeEvent, Row } from '../core/envelope.js';
import type avsc from 'avsc';
import { columnPgTypes, encryptedColumnPgTypes, envelopeFromAvro, envelopeHead } from '../core/avro.js';
import type { AvroCodec } from '../core/codec.js';
import { errorCode, errorKind, errorMessage, poison, SynclineError } from '../core/errors.js';
import { describeChanges } from '../capture/schema-diff.js';
import type { KafkaClient } from '../core/kafka.js';
import type { DeadLetter, DeadLetters } from '../sink/dead-letters.js';
import type { Pending } from '../sink/applier.js';
import { hashRecord, renameRow, tableMappings, toSinkRecord, type RowHashers, type TableMapping } from './mapper.js';
import { DECIDED_HEADER, PARTITIONS_HEADER, decidedOf, eventPosition, position } from '../core/envelope.js';
import { keyString, keyStringOf, rememberKeyString } from '../sink/sink.js';
import type { TableConfig } from '../core/config/schema.js';
import { CONSUMER_HEARTBEAT_MS, headerString, topics } from '../core/kafka.js';
import { parseTableName } from '../core/names.js';
import { ValidationError, type PipelineValidator } from './validation/index.js';
import type { SchemaGuard } from './schema-guard.js';
import type { SchemaChange } from '../capture/schema-changes.js';
import type { SinkRecord } from '../sink/sink.js';
import type { Change, ChangeOp } from './transform/compile.js';

/**
 * A change decoded only as far as version state needs it: target table, key string and position.
 * `finish` maps, validates and hashes it (the expensive part, skipped for stale changes).
 */
export interface Peeked {
  table: string;
  /** keyString of the mapped key; null for a message that is never stale-checked early (truncate). */
  key: string | null;
  position: string;
  /** A control record (end of a table's snapshot), not a change. */
  control?: boolean;
  /**
   * A routed table's change (tables[].route): its target table is known only after finish(), so it
   * is never stale-checked early (the Applier checks each routed record against its route table).
   */
  routed?: boolean;
  /**
   * Synchronous when the value schema's column types are known (the usual case: no promise per change).
   * A list for a table with transforms: the change became 0..n changes (a filter dropped it, a custom
   * transform split it).
   */
  finish(): Decoded | Promise<Decoded>;
}

/** What decoding a message gives: one pending record, or (a table with transforms) 0..n of them. */
export type Decoded = Pending | Pending[];

/** A truncate knows the offset of its message (it may hold its partition there: Output.apply). */
const atOffset = (p: Pending, m: KafkaMessage): Pending => {
  if (p.record.op === 'truncate') p.offset = m.offset;
  return p;
};

/** The pending records of a decoded message. */
export const decodedList = (d: Decoded): Pending[] => (Array.isArray(d) ? d : [d]);

export type Decoder = ((m: KafkaMessage, topic: string, partition: number) => Promise<Decoded>) & {
  /**
   * Two-phase decode of a partition batch (cdcDecoder): one entry per message, the Peeked change or
   * the error its decode threw (treated as the one-phase decoder's error would be).
   */
  peekBatch?: (messages: KafkaMessage[], topic: string, partition: number) => Promise<(Peeked | { error: unknown })[]>;
  /** Told of every error a Peeked's finish() threw (metrics; the stage dead-letters or retries it). */
  finishFailed?: (err: unknown, topic: string) => void;
  /**
   * Error path: the target table and key of a message that could not be decoded, as far as they can
   * be told (the key may decode when the value does not), for its dead letter.
   */
  describe?: (m: KafkaMessage, topic: string) => { table?: string; key?: string };
};

/** Position and key of a change, to tell whether it is stale before it is mapped and hashed. */
export interface StaleProbe {
  table: string;
  key: string;
  position: string;
}

/** Where a batch came from: its partition and the offset after its last message. */
export interface BatchOrigin {
  groupId: string;
  topic: string;
  partition: number;
  /** Offset to commit (last + 1). */
  next: string;
}

/** What Output.apply returns (see there); anything else in the object is the output's own. */
export type OutputOutcome = 'committed' | { held?: { offset: string; until: () => Promise<void> } } | undefined | void;

export interface Output {
  /**
   * Handle one partition batch. An output that returns 'committed' committed the batch's consumer
   * offset itself, atomically with its own writes (a Kafka transaction); otherwise the stage commits it.
   * One that returns `{ held: { offset, until } }` (the Applier at a truncate waiting for the other
   * partitions) handled the batch only up to the message at `offset`: the stage commits up to it,
   * pauses the partition and fetches from that message again once `until` resolves.
   */
  apply(batch: Pending[], origin?: BatchOrigin): Promise<OutputOutcome>;
  /**
   * Optional (the Applier behind it): which of these changes are stale, i.e. would be skipped by
   * apply() as not newer than their key's stored position. The stage drops them before mapping,
   * validation and hashing; the output counts them as received and skipped.
   */
  stale?(probes: StaleProbe[]): Promise<boolean[]>;
}

export interface ConsumerStageOptions {
  groupId: string;
  topics: string[];
  kafka: KafkaClient;
  decode: Decoder;
  output: Output;
  dlq: DeadLetters;
  log: Logger;
  concurrency?: number;
  /** Group session timeout (KafkaClient.consumer's default when absent). */
  sessionTimeoutMs?: number;
  /** Counts dead-lettered ValidationErrors per rule (the processor's validator). */
  validation?: PipelineValidator;
  /**
   * Decode and hand on a fetched batch in chunks of at most this many messages (the sink's
   * `batch.size` where the output is the Applier); the whole batch at once when absent.
   */
  chunk?: number;
  /** Called once the stage has joined its group and consumes (the Runtime's stage supervisor). */
  onRunning?: () => void;
  /** Called at every join of the group (a rebalance: a member came, went or the topics changed) with this member's partitions. */
  onRebalance?: (assigned: Record<string, number[]>) => void;
  /** Told of each retriable error of a batch that kafkajs then fetches again from the uncommitted offset (Redis, Kafka: metrics). */
  onRetry?: (err: unknown) => void;
  /**
   * The pipeline's schema changes (change topics only: the processor): a table under a pending
   * breaking change is held at that change (its topic paused), one under a rejected change has its
   * messages dead-lettered. Started and stopped with the stage.
   */
  schema?: SchemaGuard;
}

/** A value schema's column types (target names); `plain` with encrypted columns' own types, when it has any. */
interface ColumnTypesOf {
  types: Readonly<Record<string, string>>;
  plain?: Readonly<Record<string, string>>;
}

/**
 * `validator`: the pipeline's compiled rules. An upsert is validated after mapping (target names) and
 * before hashing, so coerced values are what the target receives and what the hash covers; an invalid
 * one throws ValidationError (poison) and is dead-lettered by ConsumerStage.
 */
export function cdcDecoder(codec: AvroCodec, mappings: Map<string, TableMapping>, validator?: PipelineValidator): Decoder {
  // Source SQL types of each value schema's columns (the "pgType" field attributes), by schema id;
  // `plain`: an encrypted column's own type (its pgType is text), for validation of its plaintext.
  const typesById = new Map<number, Promise<{ types: Map<string, string>; plain: Map<string, string> }>>();
  const columnTypes = (id: number) => {
    let t = typesById.get(id);
    if (!t) {
      t = codec.registry.getSchema(id).then((s) => ({ types: columnPgTypes(s as unknown as avsc.Type), plain: encryptedColumnPgTypes(s as unknown as avsc.Type) }));
      typesById.set(id, t);
    }
    return t;
  };
  // The same, renamed to target columns, by topic and schema id: one shared (frozen) object per schema.
  const renamedTypes = new Map<string, Map<number, ColumnTypesOf>>();
  // Key and value of a message: synchronously when their schemas are known (the usual case).
  const decodeKnown = (m: KafkaMessage): [Row | null, Record<string, unknown>] | undefined => {
    const key = m.key ? codec.decodeKnown<Row>(m.key) : null;
    if (key === undefined) return undefined;
    const value = codec.decodeKnown<Record<string, unknown>>(m.value);
    return value === undefined ? undefined : [key, value];
  };
  const mappingOf = (topic: string): TableMapping => {
    const mapping = mappings.get(topic);
    if (!mapping) throw poison('TOPIC_UNKNOWN', `no table mapping for topic ${topic}`);
    return mapping;
  };
  const peek = async (m: KafkaMessage, topic: string, partition: number): Promise<Peeked> => {
    const mapping = mappingOf(topic);
    const [key, value] = decodeKnown(m) ?? (await Promise.all([
      m.key ? codec.decode<Row>(m.key) : Promise.resolve(null),
      codec.decode<Record<string, unknown>>(m.value),
    ]));
    return peeked(m, topic, partition, mapping, key, value);
  };
  const peeked = (m: KafkaMessage, topic: string, partition: number, mapping: TableMapping, key: Row | null, value: Record<string, unknown>): Peeked => {
    const e: ChangeEvent = envelopeFromAvro(value);
    if (e.op !== 't' && e.op !== 'm' && !key) throw poison('KEY_MISSING', `change message at ${topic}/${partition}@${m.offset} has no key`);
    const position = eventPosition(e);
    // Keyless control events (truncate, end of snapshot) are never stale-checked early.
    const mappedKey = e.op === 't' || !key ? undefined : renameRow(key, mapping.rename);
    return {
      table: mapping.target,
      key: mappedKey ? keyString(mappedKey) : null,
      position,
      control: e.op === 'm',
      ...(mapping.route ? { routed: true } : {}),
      finish: () => finish(m, topic, partition, e, mapping, key, mappedKey, position),
    };
  };
  const finish = (m: KafkaMessage, topic: string, partition: number, e: ChangeEvent, mapping: TableMapping, key: Row | null, mappedKey: Row | undefined, position: string): Decoded | Promise<Decoded> => {
    const record = toSinkRecord(e, key ?? {}, mapping, { topic, partition, offset: m.offset }, { hash: false, mappedKey, position });
    const decided = m.headers?.[DECIDED_HEADER];
    if (decided !== undefined) record.decided = decidedOf(String(decided));
    const copies = e.op === 't' || e.op === 'm' ? Number(headerString(m.headers, PARTITIONS_HEADER) ?? NaN) : NaN;
    if (Number.isInteger(copies) && copies > 0) record.partitions = copies;
    const pending: Pending = { record, raw: { key: m.key, value: m.value } };
    // A routed table's truncate empties every route table.
    if (record.op === 'truncate' && mapping.route) return everyRoute(pending, mapping);
    // A delete through the table's transforms (a filter may drop it); a routed table's with the column
    // types (below), so that its old row routes as the upserts did (numeric columns as decimals).
    if (record.op === 'delete' && mapping.transform && !mapping.route) return transformed(pending, mapping, e, undefined);
    // Upserts and end-of-snapshot markers carry the column types (a target may create or evolve its table from them).
    if (record.op !== 'upsert' && record.op !== 'sweep' && !(record.op === 'delete' && mapping.route)) return pending;
    const id = m.value!.readInt32BE(1);
    let ofTopic = renamedTypes.get(topic);
    if (!ofTopic) renamedTypes.set(topic, (ofTopic = new Map()));
    const known = ofTopic.get(id);
    if (known) return upsertDone(pending, mapping, known, e);
    return columnTypes(id).then(({ types, plain }) => {
      const o: Record<string, string> = {};
      for (const [col, t] of types) o[mapping.rename(col)] = t;
      const p: Record<string, string> = { ...o };
      for (const [col, t] of plain) p[mapping.rename(col)] = t;
      const out: ColumnTypesOf = { types: Object.freeze(o), plain: plain.size > 0 ? Object.freeze(p) : undefined };
      ofTopic.set(id, out);
      return upsertDone(pending, mapping, out, e);
    });
  };
  /**
   * An upsert's column types, then its transforms (tables[].transform: 0..n changes), then validation
   * (which may coerce values), then its hash; a marker's column types (as the transforms leave them).
   */
  const upsertDone = (pending: Pending, mapping: TableMapping, types: ColumnTypesOf, e: ChangeEvent): Decoded | Promise<Decoded> => {
    const record = pending.record;
    if (mapping.transform) {
      if (record.op === 'upsert' || record.op === 'delete') return transformed(pending, mapping, e, types);
      record.columnTypes = mapping.transform.types(types.types);
      // A routed table's end of snapshot: each route table sweeps the keys the snapshot did not write there.
      return mapping.route ? everyRoute(pending, mapping) : pending;
    }
    record.columnTypes = types.types;
    if (record.op !== 'upsert') return pending;
    return checked(pending, mapping, types);
  };
  const checked = (pending: Pending, mapping: TableMapping, types: ColumnTypesOf): Pending => {
    const record = pending.record;
    const rules = validator?.forTable(mapping.source);
    if (rules) {
      const enc = mapping.encrypted;
      if (enc && record.values && rules.fields.some((f) => enc.columns.has(f))) {
        // Rules read encrypted columns: they see a transient decrypted copy (never put into the record,
        // and their violations show these columns masked); a coerced value is encrypted again.
        const values = record.values;
        const key = record.key;
        validator!.check(rules, record, {
          values: enc.open(values, key),
          columnTypes: types.plain ?? types.types,
          write: (field, v) => {
            values[field] = enc.columns.has(field) ? enc.seal(field, v, key) : v;
          },
        });
      } else validator!.check(rules, record);
    }
    hashRecord(record, mapping);
    return pending;
  };
  /** A control record (truncate, end of snapshot) of a routed table: one copy per route table. */
  const everyRoute = (pending: Pending, mapping: TableMapping): Pending[] => mapping.route!.tables.map((table) => ({ record: { ...pending.record, table }, raw: pending.raw }));
  /**
   * Runs the table's transform chain on an upsert or delete, then its route (tables[].route: each
   * change's target table, and the deletes of a row that moved); each resulting upsert is validated and hashed.
   */
  const transformed = (pending: Pending, mapping: TableMapping, e: ChangeEvent, typesOf: ColumnTypesOf | undefined): Pending[] | Promise<Pending[]> => {
    const types = typesOf?.types;
    const t = mapping.transform!;
    const record = pending.record;
    const op: ChangeOp = e.op === 'c' ? 'insert' : e.op === 'u' ? 'update' : e.op === 'r' ? 'snapshot' : 'delete';
    const before = e.before ? renameRow(e.before, mapping.rename) : null;
    const change: Change = { op, key: record.key, before: before === e.before && before ? { ...before } : before, after: record.values, keep: record.keep };
    const outTypes = types ? t.types(types) : undefined;
    const route = mapping.route;
    const done = (changes: Change[]): Pending[] =>
      (route ? route.route(changes, { columnTypes: outTypes }) : changes.map((c) => ({ table: record.table, change: c }))).map(({ table, change: c }, i) => {
        // The first result is the decoded record itself, changed in place (a spread copy of it cost
        // ~1.5 µs a change, a tenth of the 5-step chain's cost); further ones are copies. Fields are
        // set, not deleted: `delete` turns a record into a dictionary-mode object, slower at every later read.
        const out: SinkRecord = i === 0 ? record : { ...record };
        out.table = table;
        out.op = c.after ? 'upsert' : 'delete';
        out.key = c.key;
        out.values = c.after;
        out.keep = c.after ? c.keep : [];
        out.hash = null;
        out.update = c.op === 'update' && c.after ? true : undefined;
        out.columnTypes = c.after && outTypes ? outTypes : undefined;
        const p: Pending = { record: out, raw: pending.raw };
        // Validation after the transforms: their column types (an encrypted column's plain type kept, as transforms do not read it).
        return out.op === 'upsert' ? checked(p, mapping, { types: outTypes ?? {}, plain: typesOf?.plain }) : p;
      });
    const r = t.run(change, { columnTypes: types });
    return r instanceof Promise ? r.then(done) : done(r);
  };
  /**
   * A keyed change whose key and value schemas are known: the key and the value's leading fields
   * (op and source, see envelopeHead) are decoded now; the rest of the value (the rows, most of the
   * bytes) only by finish(), i.e. never for a stale change.
   */
  const peekByHead = (m: KafkaMessage, topic: string, partition: number, mapping: TableMapping): Peeked | undefined => {
    if (!m.key || !m.value || m.value.length < 5 || m.value[0] !== 0) return undefined;
    const type = codec.knownType(m.value.readInt32BE(1));
    if (!type) return undefined;
    const key = codec.decodeKnown<Row>(m.key);
    if (!key) return undefined;
    const head = envelopeHead(type, m.value, 5);
    if (head.op === 't' || head.op === 'm') return undefined; // control events take the full path
    // Renaming keeps the values and their order, so the mapped key's string is this key's.
    const ks = keyStringOf(Object.values(key));
    return {
      table: mapping.target,
      key: ks,
      position: position(head.commitPos, head.idx),
      ...(mapping.route ? { routed: true } : {}),
      finish: () => {
        const mappedKey = renameRow(key, mapping.rename);
        rememberKeyString(mappedKey, ks);
        const e: ChangeEvent = envelopeFromAvro(codec.decodeKnown<Record<string, unknown>>(m.value)!);
        return finish(m, topic, partition, e, mapping, key, mappedKey, eventPosition(e));
      },
    };
  };
  const decode: Decoder = async (m, topic, partition) => (await peek(m, topic, partition)).finish();
  decode.describe = (m, topic) => {
    const mapping = mappings.get(topic);
    let key: string | undefined;
    try {
      const k = m.key ? codec.decodeKnown<Row>(m.key) : undefined;
      if (k && mapping) key = keyString(renameRow(k, mapping.rename));
    } catch {
      /* the key does not decode either */
    }
    return { table: mapping?.target, key };
  };
  decode.peekBatch = async (messages, topic, partition) => {
    const out: (Peeked | { error: unknown })[] = [];
    for (const m of messages) {
      try {
        const mapping = mappingOf(topic);
        const byHead = peekByHead(m, topic, partition, mapping);
        if (byHead) {
          out.push(byHead);
          continue;
        }
        const known = decodeKnown(m);
        out.push(known ? peeked(m, topic, partition, mapping, known[0], known[1]) : await peek(m, topic, partition));
      } catch (error) {
        out.push({ error });
      }
    }
    return out;
  };
  return decode;
}

/**
 * Errors by which the group coordinator says this consumer is no longer a member of the current
 * generation. kafkajs rejoins on most, but one raised by a commit or heartbeat inside a batch reaches
 * its retrier wrapped as non-retriable and stops the consumer for good.
 */
const MEMBERSHIP_LOST = new Set(['UNKNOWN_MEMBER_ID', 'ILLEGAL_GENERATION', 'REBALANCE_IN_PROGRESS']);
export function membershipLost(err: unknown): boolean {
  for (let e = err as { type?: string; cause?: unknown } | undefined, depth = 0; e && depth < 10; e = e.cause as typeof e, depth++) {
    if (typeof e.type === 'string' && MEMBERSHIP_LOST.has(e.type)) return true;
  }
  return false;
}

/**
 * A consumer's failure as the stage reports it: kafkajs's own errors (a connection, a coordinator,
 * retries exhausted on those) classified as Kafka's (retriable: the stage is started again, or
 * fatal: refused for good); ours and anything else (a bug) as they are.
 */
function kafkaFailure(kafka: KafkaClient, err: unknown, context: string): unknown {
  let inner = err as { name?: unknown; cause?: unknown };
  for (let depth = 0; inner?.cause && depth < 6; depth++) inner = inner.cause as typeof inner;
  const isKafkas = (e: { name?: unknown }) => typeof e?.name === 'string' && e.name.startsWith('KafkaJS');
  return isKafkas(err as { name?: unknown }) && isKafkas(inner) ? kafka.classify(err, context) : err;
}

/** Change topic → table mapping of a pipeline's tables (`<prefix>.cdc.<schema>.<table>`). */
export function topicMappings(prefix: string, tables: TableConfig[], crypto?: RowHashers): Map<string, TableMapping> {
  const byTopic = new Map<string, TableMapping>();
  for (const [src, m] of tableMappings(tables, crypto)) {
    const { schema, table } = parseTableName(src);
    byTopic.set(topics.cdc(prefix, schema, table), m);
  }
  return byTopic;
}

export class ConsumerStage {
  private consumer?: Consumer;
  private crashed?: (err: Error) => void;
  private stopped?: () => void;
  readonly invalid = { count: 0 };

  constructor(private readonly o: ConsumerStageOptions) {}

  /**
   * Run until stop(). Rejects when the stage cannot go on: Kafka not ready (retriable, classified:
   * topics not created, the group not joined, the consumer crashed on a connection), or a fatal
   * error of a batch; the consumer is disconnected first.
   */
  async run(): Promise<void> {
    try {
      await this.consume();
    } finally {
      for (const w of this.subscribed.splice(0)) w(); // a stage that ended takes no topics (the next one is made with them)
      if (this.schemaStarted) await this.o.schema!.stop();
    }
  }

  private async consume(): Promise<void> {
    const { kafka, groupId, log } = this.o;
    await kafka.ensureTopics(this.o.topics);
    await this.o.dlq.ensure();
    if (this.o.schema && !this.schemaStarted) {
      this.schemaStarted = true;
      await this.o.schema.start();
      this.o.schema.onChange(() => this.releaseDecided());
    }
    while (!this.stopping) {
      const consumer = kafka.consumer(groupId, { sessionTimeoutMs: this.o.sessionTimeoutMs });
      this.consumer = consumer;
      // 'rejoin': the group lost this member (kafkajs gives up on that); a new consumer joins again.
      const ended = new Promise<'stopped' | 'rejoin' | 'resubscribe'>((resolve, reject) => {
        this.crashed = reject;
        this.stopped = () => resolve('stopped');
        this.resubscribe = () => resolve('resubscribe');
        consumer.on(consumer.events.CRASH, (e) => {
          if (e.payload.restart) return;
          if (membershipLost(e.payload.error)) resolve('rejoin');
          else reject(kafkaFailure(kafka, e.payload.error, `consumer group ${groupId} stopped`));
        });
      });
      ended.catch(() => undefined); // awaited below; a crash while joining is reported by the join
      // Every join is a rebalance of the group (a member came or went, topics changed): logged with
      // this member's partitions, and counted (syncline_consumer_rebalances_total).
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        const assigned = Object.fromEntries(Object.entries(e.payload.memberAssignment).map(([topic, parts]) => [topic, [...parts].sort((a, b) => a - b)]));
        log.info({ groupId, memberId: e.payload.memberId, leader: e.payload.isLeader, assigned, joinMs: e.payload.duration }, 'consumer.rebalanced: this member now consumes the partitions listed');
        this.o.onRebalance?.(assigned);
      });
      const subscribedTo = this.o.topics;
      try {
        await consumer.connect();
        await consumer.subscribe({ topics: subscribedTo, fromBeginning: true });
        await consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: this.o.concurrency ?? 3,
          eachBatch: (payload) => this.tracked(this.onBatch(payload)),
        });
      } catch (err) {
        await this.quiesce(consumer);
        if (this.stopping) return;
        throw kafkaFailure(kafka, err, `consumer group ${groupId}: cannot join`);
      }
      if (this.paused) consumer.pause(this.o.topics.map((topic) => ({ topic })));
      else if (this.held.size > 0) consumer.pause([...this.held.keys()].map((topic) => ({ topic })));
      if (this.joined) log.info({ groupId, topics: this.o.topics }, 'consumer.resubscribed: the group is consumed with the added topics');
      else log.info({ groupId, topics: this.o.topics }, 'consumer.start');
      this.joined = true;
      kafka.markReady();
      this.o.onRunning?.();
      // Topics added while this consumer joined: replaced again at once; the waiters wait for that one.
      if (this.o.topics !== subscribedTo) this.resubscribe?.();
      else for (const w of this.subscribed.splice(0)) w();
      let outcome: 'stopped' | 'rejoin' | 'resubscribe';
      try {
        outcome = await ended;
      } catch (err) {
        await this.quiesce(consumer);
        throw err;
      }
      if (outcome === 'stopped' || this.stopping) return;
      if (outcome === 'resubscribe') {
        // The batches in flight finish and commit; the next consumer fetches from the committed offsets.
        await this.quiesce(consumer);
        continue;
      }
      this.rejoins++;
      log.warn({ groupId, rejoins: this.rejoins, inFlight: this.inFlight.size }, 'consumer.rejoin: the group no longer knew this member (a batch outlasted the session, or the coordinator moved); joining again from the committed offsets');
      await consumer.disconnect().catch(() => undefined);
      // Batches of other partitions could still be applying on the old consumer (kafkajs has so far
      // always finished them before it stops; this does not rely on it). The new one fetches from the
      // committed offsets: a partition applied by two consumers at once would apply out of order.
      await Promise.allSettled([...this.inFlight]);
    }
  }

  /** Times the group lost this member and the stage joined again with a new consumer. */
  rejoins = 0;
  /** Times the consumer was replaced to take added topics (addTopics). */
  resubscribes = 0;
  private joined = false;
  private resubscribe?: () => void;
  private readonly subscribed: (() => void)[] = [];

  /**
   * Topics of tables a config reload added: the stage goes on, its consumer is replaced by one
   * subscribed to every topic (a consumer subscribes only before it runs; kafkajs resolves a RegExp
   * subscription once, at subscribe time). Batches in flight finish and commit first, so nothing is
   * read twice; the group rejoins once (its partitions pause for that moment: a second or less with
   * one member). The new topics are read from their beginning. Resolves once the new consumer runs.
   */
  async addTopics(added: string[]): Promise<void> {
    const fresh = added.filter((t) => !this.o.topics.includes(t));
    if (fresh.length === 0) return;
    await this.o.kafka.ensureTopics(fresh);
    this.o.topics = [...this.o.topics, ...fresh];
    if (!this.joined || this.stopping) return; // not running yet: the first subscribe takes them
    const done = new Promise<void>((r) => this.subscribed.push(r));
    this.resubscribes++;
    this.o.log.info({ groupId: this.o.groupId, added: fresh }, 'consumer.resubscribe: taking the added topics');
    this.resubscribe?.();
    await done;
  }
  private readonly inFlight = new Set<Promise<void>>();

  /**
   * Leave the group and wait for the batches still applying (other partitions of a consumer that
   * crashed on one): whoever starts a consumer of this group next (a restart of the stage in this
   * process) fetches from the committed offsets, and a batch applied by two consumers at once is
   * applied out of order (found by the short chaos run: a batch whose state commit waited for a
   * restarted Redis while the restarted stage applied it again, cut differently: a row back after
   * its delete).
   */
  private async quiesce(consumer: Consumer): Promise<void> {
    await consumer.disconnect().catch(() => undefined);
    await Promise.allSettled([...this.inFlight]);
  }

  private tracked(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    const done = () => this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  private async onBatch({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload): Promise<void> {
    const messages = batch.messages;
    if (messages.length === 0) return;
    if (this.paused) {
      // Fetched before the pause took effect (a window closed, an operator's pause, or the stage started paused): not
      // applied and not resolved, so the fetch goes back to this batch after resume().
      this.consumer?.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
      return;
    }
    if (this.held.has(batch.topic)) {
      // Fetched before its table was held for a schema change: the same (not applied, not resolved).
      this.consumer?.pause([{ topic: batch.topic }]);
      return;
    }
    // A fetched batch (up to 1 MB a partition: ≈ 7,000 narrow changes) is decoded and applied in
    // chunks of `chunk` messages, so that what is alive at once is one chunk's records, not the
    // fetch's; the offset is committed once, after the last chunk.
    const size = this.o.chunk !== undefined && this.o.chunk > 0 ? this.o.chunk : messages.length;
    let outcome: OutputOutcome;
    let next = '';
    // Where the chunks applied so far end, and whether their output committed that offset itself.
    let applied = { next: '', committed: false };
    // A batch may take longer than the group session (a slow target, isolating many bad rows, a
    // long retry): without heartbeats meanwhile the coordinator drops this member, the commit is
    // refused, and the batch is done again from the start — for ever, if it always takes that long
    // (found by the chaos run: a re-snapshot's CHECK-rejected rows, 60 s of isolation per batch).
    // kafkajs sends at most one per heartbeatInterval and skips a call that comes sooner, so asking
    // every half interval keeps the gap under 1.5 intervals (asking every interval, a timer a few ms
    // early was skipped and the next beat came two intervals later: a loaded machine lost the
    // member with a 6 s session). A failed one is left to the commit to report.
    const beat = setInterval(() => void heartbeat().catch(() => undefined), CONSUMER_HEARTBEAT_MS / 2);
    try {
      for (let from = 0; from < messages.length; from += size) {
        const part = size >= messages.length ? messages : messages.slice(from, from + size);
        const decoded = await this.decodeChunk(part, batch.topic, batch.partition);
        if (decoded === undefined) return;
        const { pending, hold } = decoded;
        await heartbeat();
        if (!isRunning() || isStale()) {
          await this.commitApplied(batch.topic, batch.partition, applied, resolveOffset); // stopping or sought elsewhere: what was applied stays done
          return;
        }
        if (hold) {
          // A breaking schema change pending from part[hold.index] on: what came before it is applied
          // and committed, that message and the rest wait (unresolved) while the table is held.
          if (hold.index > 0) {
            next = part[hold.index]!.offset;
            outcome = await this.o.output.apply(pending, { groupId: this.o.groupId, topic: batch.topic, partition: batch.partition, next });
          }
          this.hold(batch.topic, hold.change, hold.position);
          if (next !== '') {
            resolveOffset((BigInt(next) - 1n).toString());
            if (outcome !== 'committed') await this.consumer!.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
          }
          return;
        }
        next = (BigInt(part[part.length - 1]!.offset) + 1n).toString();
        outcome = await this.o.output.apply(pending, { groupId: this.o.groupId, topic: batch.topic, partition: batch.partition, next });
        const held = typeof outcome === 'object' ? outcome.held : undefined;
        if (held) {
          // Handled up to the message at held.offset (earlier chunks included): committed up to it; the
          // partition waits there (unresolved) and fetches it again once released.
          if (BigInt(held.offset) > BigInt(messages[0]!.offset)) {
            resolveOffset((BigInt(held.offset) - 1n).toString());
            await this.consumer!.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: held.offset }]);
          }
          this.holdPartition(batch.topic, batch.partition, held.until);
          return;
        }
        applied = { next, committed: outcome === 'committed' };
      }
    } catch (err) {
      // The chunks before the failing one are applied (target and version state committed): their
      // offset is committed now, so that the batch comes again from the failing chunk only. Done
      // again, an applied chunk would meet no state if what failed was Redis restarting empty, and
      // a backlog cut into other chunks could then write a change the target has moved past (a row
      // back after its delete: the chaos run's "applied twice", after a Redis restart).
      await this.commitApplied(batch.topic, batch.partition, applied, resolveOffset);
      if (errorKind(err) === 'fatal') {
        this.crashed?.(err as Error);
        return;
      }
      this.o.onRetry?.(err);
      throw err; // retriable (Redis, Kafka): kafkajs retries the batch from the uncommitted offset
    } finally {
      clearInterval(beat);
    }
    resolveOffset(messages[messages.length - 1]!.offset); // the fetch position moves on only for resolved offsets
    // `next` is the last chunk's, i.e. the batch's; 'committed': that chunk's output committed it.
    if (outcome !== 'committed') await this.consumer!.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
    await heartbeat();
  }

  /** Commit the offset after the chunks of a failing batch that were applied (best effort: not committed, they come again as before). */
  private async commitApplied(topic: string, partition: number, applied: { next: string; committed: boolean }, resolveOffset: (offset: string) => void): Promise<void> {
    if (applied.next === '') return;
    resolveOffset((BigInt(applied.next) - 1n).toString());
    if (applied.committed) return;
    try {
      await this.consumer!.commitOffsets([{ topic, partition, offset: applied.next }]);
    } catch (err) {
      this.o.log.warn({ topic, partition, offset: applied.next, err: errorMessage(err) }, 'consumer.commit_applied.failed: the chunks applied before the failure come again');
    }
  }

  /**
   * Decode messages into pending records; undecodable and invalid ones are dead-lettered here.
   * Undefined: a fatal error stopped the stage. Retriable errors are thrown (the batch comes again).
   */
  private async decodeChunk(messages: KafkaMessage[], topic: string, partition: number): Promise<{ pending: Pending[]; hold?: { index: number; change: SchemaChange; position: string } } | undefined> {
    const pending: Pending[] = [];
    let hold: { index: number; change: SchemaChange; position: string } | undefined;
    const invalid: DeadLetter[] = [];
    // The letter names the table and key: from the decoded change (finish failed), else as far as the
    // decoder can tell (describe: error path only).
    const failed = (err: unknown, m: KafkaMessage, p?: Peeked) => {
      if (errorKind(err) === 'retriable') throw err; // registry down: kafkajs retries from the uncommitted offset
      // A missing or wrong encryption key (decrypting for validation or the row hash) is no fault of
      // the message: the stage stops with the error naming the key id (onBatch), nothing is dead-lettered.
      if (errorKind(err) === 'fatal' && /^ENCRYPTION_KEY_/.test(errorCode(err))) throw err;
      this.invalid.count++;
      const v = err instanceof ValidationError ? err : undefined;
      const d = p ? { table: p.table, key: p.key ?? undefined } : this.o.decode.describe?.(m, topic);
      let error = err;
      if (!v && d?.table !== undefined && err instanceof SynclineError) {
        // A decode error knows the schema, not the change: its reason says which table and key.
        const named = new SynclineError(err.kind, err.code, `${d.table}${d.key !== undefined ? ` key ${d.key}` : ''}: ${err.message}`, err);
        named.column = err.column;
        error = named;
      }
      invalid.push({
        kind: 'invalid', error, key: m.key, value: m.value, attempts: 1,
        table: v?.table ?? d?.table, position: v?.position ?? p?.position, targetKey: v?.key ?? d?.key,
        origin: { topic, partition, offset: m.offset },
      });
    };
    const { peekBatch } = this.o.decode;
    const stale = this.o.output.stale?.bind(this.o.output);
    if (peekBatch && stale) {
      // Two phases: position and key first, then one version-state read for the batch; only changes
      // newer than their key's stored position are mapped, validated and hashed (replays skip the rest).
      let peeked = await peekBatch(messages, topic, partition);
      const rejected = new Set<number>();
      const guard = this.o.schema;
      if (guard) {
        // A schema id not seen before: read the change log to its end first (capture recorded the change before producing under it).
        if ((await this.guarded(() => this.schemasKnown(messages, guard))) === undefined) return undefined;
        for (let i = 0; i < peeked.length; i++) {
          const p = peeked[i]!;
          if ('error' in p) continue;
          const v = guard.verdict(topic, p.position);
          if (v.action === 'hold') {
            hold = { index: i, change: v.change, position: p.position };
            peeked = peeked.slice(0, i);
            break;
          }
          if (v.action === 'reject') rejected.add(i);
        }
      }
      const probes: StaleProbe[] = [];
      for (let i = 0; i < peeked.length; i++) {
        const p = peeked[i]!;
        if (!('error' in p) && p.key !== null && !p.routed && !rejected.has(i)) probes.push({ table: p.table, key: p.key, position: p.position });
      }
      const isStale = probes.length > 0 ? await this.guarded(() => stale(probes)) : [];
      if (isStale === undefined) return undefined;
      let j = 0;
      for (let i = 0; i < peeked.length; i++) {
        const p = peeked[i]!;
        const m = messages[i]!;
        if ('error' in p) {
          failed(p.error, m);
          continue;
        }
        if (rejected.has(i)) {
          const c = guard!.verdict(topic, p.position) as { change: SchemaChange };
          failed(poison('SCHEMA_CHANGE_REJECTED', `the breaking schema change ${c.change.id} of ${c.change.table} (${describeChanges(c.change.changes)}) was rejected${c.change.decidedBy ? ` by ${c.change.decidedBy}` : ''}: its changes are dead-lettered; fix the target, then requeue them`), m, p);
          continue;
        }
        if (p.key !== null && !p.routed && isStale[j++]) continue;
        try {
          const done = p.finish();
          const d = done instanceof Promise ? await done : done;
          if (Array.isArray(d)) for (const x of d) pending.push(atOffset(x, m));
          else pending.push(atOffset(d, m));
        } catch (err) {
          this.o.decode.finishFailed?.(err, topic);
          failed(err, m, p);
        }
      }
    } else {
      for (const m of messages) {
        try {
          for (const x of decodedList(await this.o.decode(m, topic, partition))) pending.push(atOffset(x, m));
        } catch (err) {
          failed(err, m);
        }
      }
    }
    if (invalid.length > 0) {
      await this.o.dlq.send(invalid);
      for (const l of invalid) if (l.error instanceof ValidationError) this.o.validation?.countInvalid(l.error);
    }
    return { pending, hold };
  }

  /**
   * Resolves once the schema change log has been read past every change recorded before the chunk's
   * key and value schemas were first used: a schema id new to this stage reads the log to its end
   * (once: chunks of other partitions with the same id wait for the same read). True when done.
   */
  private async schemasKnown(messages: KafkaMessage[], guard: SchemaGuard): Promise<true> {
    let read: Promise<void> | undefined;
    const waits = new Set<Promise<void>>();
    for (const m of messages) {
      for (const b of [m.key, m.value]) {
        if (!b || b.length < 5 || b[0] !== 0) continue;
        const id = b.readInt32BE(1);
        let p = this.seenSchemas.get(id);
        if (!p) {
          read ??= guard.sync();
          p = read;
          this.seenSchemas.set(id, p);
          p.catch(() => this.seenSchemas.delete(id)); // read again next time
        }
        waits.add(p);
      }
    }
    await Promise.all(waits);
    return true;
  }

  /**
   * Pause one partition until `until` resolves (a truncate waiting for the other partitions, see
   * Output.apply), then fetch it again from its held message — unless the stage is paused or its
   * topic held meanwhile (their resume fetches it), or the consumer was replaced (the new one fetches
   * from the committed offset).
   */
  private holdPartition(topic: string, partition: number, until: () => Promise<void>): void {
    const consumer = this.consumer;
    consumer?.pause([{ topic, partitions: [partition] }]);
    const resume = () => {
      if (this.consumer !== consumer || this.stopping || this.paused || this.held.has(topic)) return;
      consumer?.resume([{ topic, partitions: [partition] }]);
    };
    until().then(resume, resume);
  }

  private readonly seenSchemas = new Map<number, Promise<void>>();
  private schemaStarted = false;
  /** Topics held for a pending breaking schema change: the change and the position of the first held message. */
  private readonly held = new Map<string, { change: SchemaChange; position: string }>();

  private hold(topic: string, change: SchemaChange, position: string): void {
    if (!this.held.has(topic)) this.held.set(topic, { change, position });
    this.o.schema?.held(change);
    this.consumer?.pause([{ topic }]);
    // Decided meanwhile (between the verdict and the pause): released at once.
    this.releaseDecided();
  }

  /** Resume the held topics whose change was decided (unless a sync window keeps the whole stage paused). */
  private releaseDecided(): void {
    const guard = this.o.schema;
    if (!guard) return;
    for (const [topic, h] of this.held) {
      if (guard.verdict(topic, h.position).action === 'hold') continue;
      this.held.delete(topic);
      this.o.log.info({ topic, change: h.change.id }, 'schema.released: the change was decided; the table applies again');
      if (!this.paused) this.consumer?.resume([{ topic }]);
    }
  }

  /** Topics held for a schema change now (tests, status). */
  get heldTopics(): string[] {
    return [...this.held.keys()];
  }

  /** What holds each held topic: its table and the pending change's id (a bounded run's outcome, src/sync/bounded.ts). */
  get heldChanges(): { topic: string; table: string; change: string }[] {
    return [...this.held].map(([topic, h]) => ({ topic, table: h.change.table, change: h.change.id }));
  }

  /** Run `fn`; a fatal error stops the stage (undefined), any other is thrown (kafkajs retries the batch). */
  private async guarded<T>(fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      if (errorKind(err) === 'fatal') {
        this.crashed?.(err as Error);
        return undefined;
      }
      throw err;
    }
  }

  private stopping = false;
  private paused = false;

  /**
   * Stop fetching (a sync window closed, src/sync/gate.ts): the batch being applied finishes and
   * commits, the consumer stays in its group (no rebalance), the backlog shows as consumer lag.
   * Kept across a rejoin (the new consumer starts paused).
   */
  pause(): void {
    this.paused = true;
    this.consumer?.pause(this.o.topics.map((topic) => ({ topic })));
  }

  /** Fetch again from where the group is (a sync window opened, an operator resumed). */
  resume(): void {
    this.paused = false;
    // A table held for a schema change stays paused: only its decision resumes it.
    const topics = this.o.topics.filter((t) => !this.held.has(t));
    if (topics.length > 0) this.consumer?.resume(topics.map((topic) => ({ topic })));
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Resolves when no batch fetched so far is still being applied (each is applied, or handed back
   * unapplied when the stage is paused): a rollback with pause (src/history/rollback.ts) waits for
   * this after pause(), so no batch fetched before the pause writes over it.
   */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.consumer) await this.quiesce(this.consumer);
    this.stopped?.();
  }
}
