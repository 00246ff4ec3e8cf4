/**
 * The Kafka topic source (ADR 0021): reads topics someone else writes (Debezium's change events in
 * JSON or Avro, or plain rows) with a consumer group of its own, and hands each record to the
 * capture stage as one change in a transaction of its own (begin, change, commit). The pure part —
 * what a record means — is ./envelope.ts.
 *
 * Lifecycle and guarantees
 *  - Owner: the capture stage (one per pipeline). It holds at most one fetched batch per partition
 *    (kafkajs' fetch) plus what the stage's outbox holds; nothing else is buffered.
 *  - Position: a record's commit position is its partition and offset, 'X/Y' =
 *    (partition << 48 | offset) as two hexadecimal 32-bit halves, idx 0. Example: partition 2,
 *    offset 1234 → '20000/4D2' → position() '00020000000004d2:00000000'. Within one partition it
 *    increases with the offset; a key stays on one partition as long as the writer keys its records
 *    (Debezium does), so the applier's per-key version check orders and deduplicates correctly.
 *  - Acknowledgement: the stage calls acknowledge(seq) once Kafka holds every change up to that
 *    record; only then is offset+1 of each record up to it committed for the group (every
 *    commitIntervalMs, default 200 ms, and at stop). A poison record is dead-lettered (with topic, partition and offset) before
 *    its empty transaction is committed, so its offset moves only once the dead letter is durable.
 *  - Crash (kill -9): the group resumes from its committed offsets; records after them are read
 *    again and produced again to the change topic. The stage's resume de-duplication (resuming()) is
 *    not used — it assumes one total order per source, which partitions of a foreign topic do not
 *    have — so the repeats reach the applier, whose version state (same key, position not newer)
 *    makes each a no-op. Nothing is lost, nothing is applied twice.
 */
import { parseJsonExact } from '../../src/core/json-exact.js';
import type { Consumer, EachBatchPayload } from 'kafkajs';
import type { Logger } from 'pino';
import { bigIntToPosition } from '../../src/core/envelope.js';
import { errorKind, errorMessage, fatal, poison } from '../../src/core/errors.js';
import { KafkaClient } from '../../src/core/kafka.js';
import { AvroCodec } from '../../src/core/codec.js';
import { formatTableName, parseTableName, canonicalTableName } from '../../src/core/names.js';
import type { CaptureHandler, Source, SourceTable, TableRequest } from '../../src/capture/source.js';
import type { KafkaTopicSourceConfig, TopicTable } from './spec.js';
import { columnTypeOf, decodeRecord, hintsFromAvro, hintsFromConnect, unwrapConnect, type Hints, type TopicShape } from './envelope.js';

/** A record's position: partition and offset as 'X/Y' (partition in the top 16 bits). */
export function recordPosition(partition: number, offset: string | bigint): string {
  return bigIntToPosition((BigInt(partition) << 48n) | BigInt(offset));
}

interface TopicState {
  conf: TopicTable;
  table: SourceTable;
  shape: TopicShape;
}

interface Pending {
  seq: number;
  topic: string;
  partition: number;
  offset: string;
}

export class KafkaTopicSource implements Source {
  readonly batchSize: number;
  readonly lingerMs: number;
  private kafka?: KafkaClient;
  private codec?: AvroCodec;
  private consumer?: Consumer;
  private readonly byTopic = new Map<string, TopicState>();
  private readonly group: string;
  /** Avro writer schemas' hints by schema id (raw schema text read once per id). */
  private readonly avroHints = new Map<number, Promise<Hints>>();

  private seq = 0;
  private readonly pending: Pending[] = [];
  /** topic → partition → next offset to commit (acknowledged, not committed yet). */
  private readonly toCommit = new Map<string, Map<number, string>>();
  private lastAcked = '';
  private commitTimer?: NodeJS.Timeout;
  private committing: Promise<void> = Promise.resolve();
  private stopping = false;
  private inBatch: Promise<void> = Promise.resolve();
  private failure?: (err: Error) => void;
  private stopResolve?: () => void;

  constructor(private readonly config: KafkaTopicSourceConfig, private readonly pipeline: string, private readonly log: Logger) {
    this.batchSize = config.batchSize;
    this.lingerMs = config.lingerMs;
    this.group = config.group;
  }

  get confirmed(): string {
    return this.lastAcked;
  }

  async connect(): Promise<void> {
    this.kafka = new KafkaClient({ brokers: this.config.brokers, clientId: `syncline-${this.pipeline}-kafka-topic`, partitions: 1, replicationFactor: 1, retentionDays: 1 }, this.log);
    if (this.config.format === 'avro') this.codec = new AvroCodec(this.config.registryUrl!);
    const admin = await this.kafka.getAdmin();
    let existing: string[];
    try {
      existing = await admin.listTopics();
    } catch (err) {
      throw this.kafka.classify(err, `pipeline ${this.pipeline} source: listing the topics`);
    }
    const missing = this.config.topics.map((t) => t.topic).filter((t) => !existing.includes(t));
    if (missing.length > 0) throw retriableMissing(missing, this.config.brokers, this.pipeline);
  }

  async describe(tables: TableRequest[]): Promise<SourceTable[]> {
    const out: SourceTable[] = [];
    const confs = this.config.topics.map((t) => ({ conf: t, name: canonicalTableName(t.table) }));
    for (const req of tables) {
      const found = confs.find((c) => c.name === req.source);
      if (!found) throw fatal('SOURCE_TABLE_MISSING', `pipeline ${this.pipeline}: table ${req.source} is read from no topic (add it to source.topics with its topic, key and columns)`);
      const { conf } = found;
      const name = parseTableName(conf.table);
      const columns = Object.entries(conf.columns).map(([n, t]) => ({ name: n, type: columnTypeOf(t) }));
      const key = req.key ?? conf.key;
      const table: SourceTable = { schema: name.schema, table: name.table, key, columns };
      out.push(table);
      this.byTopic.set(conf.topic, { conf, table, shape: { envelope: this.config.envelope, key, columns, numericTimestamps: this.config.numericTimestamps } });
    }
    const unused = confs.filter((c) => !tables.some((t) => t.source === c.name));
    if (unused.length > 0) throw fatal('KAFKA_TOPIC_TABLE', `pipeline ${this.pipeline}: source.topics names table${unused.length > 1 ? 's' : ''} ${unused.map((u) => u.conf.table).join(', ')} that the pipeline's tables do not list`);
    return out;
  }

  async prepare(): Promise<void> {}

  async run(handler: CaptureHandler): Promise<void> {
    const consumer = this.kafka!.consumer(this.group, { sessionTimeoutMs: this.config.sessionTimeoutMs });
    this.consumer = consumer;
    try {
      await consumer.connect();
      for (const topic of this.byTopic.keys()) await consumer.subscribe({ topic, fromBeginning: this.config.startFrom === 'earliest' });
    } catch (err) {
      throw this.kafka!.classify(err, `pipeline ${this.pipeline} source: joining group ${this.group}`);
    }
    handler.running();
    const done = new Promise<void>((resolve, reject) => {
      this.stopResolve = resolve;
      this.failure = reject;
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart && !this.stopping) {
        this.stopping = true;
        this.failure?.(this.kafka!.classify(payload.error, `pipeline ${this.pipeline} source: consumer group ${this.group}`));
      }
    });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1, // one order of hand-off: acknowledge(seq) covers every record before it
      eachBatch: (payload) => {
        const p = this.batch(handler, payload).catch((err: unknown) => {
          if (this.stopping) return;
          // Nothing after the failed record may be handed over (its offset would be committed past it).
          this.stopping = true;
          this.failure?.(err instanceof Error ? err : new Error(String(err)));
        });
        this.inBatch = p;
        return p;
      },
    });
    this.commitTimer = setInterval(() => void this.commit(), this.config.commitIntervalMs);
    return done;
  }

  private async batch(handler: CaptureHandler, { batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const st = this.byTopic.get(batch.topic)!;
    let beat = Date.now();
    for (const m of batch.messages) {
      if (this.stopping || !isRunning() || isStale()) return;
      const origin = { topic: batch.topic, partition: batch.partition, offset: m.offset };
      const pos = recordPosition(batch.partition, m.offset);
      let decoded;
      try {
        const key = await this.parse(m.key, 'key');
        const value = await this.parse(m.value, 'value');
        decoded = decodeRecord(st.shape, key.data, value.data, value.hints, Number(m.timestamp));
      } catch (err) {
        if (errorKind(err) === 'retriable') throw err; // the registry is down: stop, restart from the committed offsets
        if (!handler.reject) throw fatal('KAFKA_TOPIC_NO_DLQ', `pipeline ${this.pipeline}: this capture stage cannot dead-letter a bad record (${errorMessage(err)})`);
        await handler.reject({ table: formatTableName(st.table), error: withWhere(err, origin), key: m.key ?? null, value: m.value ?? null, origin });
        handler.begin({});
        this.handedOver(handler, origin);
        resolveOffset(m.offset);
        continue;
      }
      handler.begin({});
      if (decoded.kind === 'change') {
        const tsMs = decoded.tsMs ?? Number(m.timestamp);
        await handler.change({
          op: decoded.op,
          before: decoded.before,
          after: decoded.after,
          source: { db: batch.topic, schema: st.table.schema, table: st.table.table, pos, commitPos: pos, txId: null, tsMs, snapshot: decoded.op === 'r', idx: 0 },
          tsMs: Date.now(),
          unchangedToast: [],
        });
      }
      this.handedOver(handler, origin);
      resolveOffset(m.offset);
      if (Date.now() - beat > 1000) {
        await heartbeat();
        beat = Date.now();
      }
    }
  }

  /**
   * The record's transaction ends: only now does it enter `pending`, so acknowledge() never covers
   * a record that was not handed over (one that failed stops the source before any later one).
   */
  private handedOver(handler: CaptureHandler, origin: { topic: string; partition: number; offset: string }): void {
    const seq = ++this.seq;
    this.pending.push({ seq, ...origin });
    handler.commit(String(seq));
  }

  /** A key or value: JSON parsed (with its Connect schema's hints), or Avro decoded through the registry (with its writer schema's hints). */
  private async parse(buf: Buffer | null, what: 'key' | 'value'): Promise<{ data: unknown; hints: Hints }> {
    if (buf === null || buf.length === 0) return { data: null, hints: new Map() };
    if (this.config.format === 'avro') {
      const data = await this.codec!.decode(buf);
      return { data, hints: what === 'value' ? await this.hintsOf(buf.readInt32BE(1)) : new Map() };
    }
    let data: unknown;
    try {
      data = parseJsonExact(buf.toString('utf8'));
    } catch (err) {
      throw poison('RECORD_NOT_JSON', `the record ${what} is not JSON: ${(err as Error).message}`);
    }
    return { data, hints: what === 'value' ? hintsFromConnect(unwrapConnect(data).schema, this.config.envelope) : new Map() };
  }

  private hintsOf(id: number): Promise<Hints> {
    let h = this.avroHints.get(id);
    if (!h) {
      h = (async () => {
        const res = await fetch(`${this.config.registryUrl!.replace(/\/$/, '')}/schemas/ids/${id}`);
        if (!res.ok) throw poison('SCHEMA_UNKNOWN', `schema id ${id}: the registry answered ${res.status}`);
        const body = (await res.json()) as { schema: string };
        return hintsFromAvro(JSON.parse(body.schema), this.config.envelope);
      })();
      h.catch(() => this.avroHints.delete(id));
      this.avroHints.set(id, h);
    }
    return h;
  }

  acknowledge(end: string): void {
    const upTo = Number(end);
    while (this.pending.length > 0 && this.pending[0]!.seq <= upTo) {
      const p = this.pending.shift()!;
      let parts = this.toCommit.get(p.topic);
      if (!parts) this.toCommit.set(p.topic, (parts = new Map()));
      parts.set(p.partition, (BigInt(p.offset) + 1n).toString());
      this.lastAcked = recordPosition(p.partition, p.offset);
    }
  }

  /** Commit the acknowledged offsets (one commit in flight at a time). */
  private commit(): Promise<void> {
    this.committing = this.committing.then(async () => {
      if (this.toCommit.size === 0 || !this.consumer) return;
      const offsets = [...this.toCommit].flatMap(([topic, parts]) => [...parts].map(([partition, offset]) => ({ topic, partition, offset })));
      this.toCommit.clear();
      try {
        await this.consumer.commitOffsets(offsets);
      } catch (err) {
        // Not committed (a rebalance, Kafka away): kept for the next try; a crash meanwhile only redelivers.
        for (const o of offsets) {
          let parts = this.toCommit.get(o.topic);
          if (!parts) this.toCommit.set(o.topic, (parts = new Map()));
          if (!parts.has(o.partition)) parts.set(o.partition, o.offset);
        }
        this.log.warn({ group: this.group, err: errorMessage(err) }, 'kafka-topic.commit.retry: committing the consumed offsets failed; will try again');
      }
    });
    return this.committing;
  }

  async quiesce(): Promise<void> {
    this.stopping = true;
    await this.inBatch;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.commitTimer) clearInterval(this.commitTimer);
    await this.inBatch.catch(() => undefined);
    await this.commit();
    await this.consumer?.disconnect().catch(() => undefined);
    await this.kafka?.close().catch(() => undefined);
    this.stopResolve?.();
  }
}

function retriableMissing(topics: string[], brokers: string[], pipeline: string): Error {
  return fatal('KAFKA_TOPIC_MISSING', `pipeline ${pipeline} source: topic${topics.length > 1 ? 's' : ''} ${topics.join(', ')} not found on Kafka at ${brokers.join(',')} (source.topics names topics another system writes; create them or fix the names)`);
}

/** The error with where the record was read (topic, partition, offset) in its message. */
function withWhere(err: unknown, o: { topic: string; partition: number; offset: string }): unknown {
  const e = err as { message?: string };
  if (e && typeof e.message === 'string') e.message = `${o.topic} partition ${o.partition} offset ${o.offset}: ${e.message}`;
  return err;
}
