/**
 * The Kafka client behind one small interface of ours (kafkajs today), so a faster client can be
 * swapped in where the benchmark shows kafkajs is the limit. Also the topic naming rules.
 */
import { kafkajsPatched } from './kafkajs-patch.js'; // first: before kafkajs loads (see there)
import { Kafka, logLevel, CompressionTypes, type Admin, type Producer, type Consumer, type Message, type IHeaders } from 'kafkajs';
import type { Logger } from 'pino';
import { classifyNetworkError } from './errors.js';
import { cdcTopicName } from './names.js';

let warnedUnpatched = false;

export const topics = {
  /** Schema and table escaped for Kafka (src/core/names.ts topicPart): plain names unchanged. */
  cdc: cdcTopicName,
  dlq: (prefix: string, pipeline: string) => `${prefix}.dlq.${pipeline}`,
  apply: (prefix: string, pipeline: string) => `${prefix}.apply.${pipeline}`,
  captureOffsets: (prefix: string) => `${prefix}.capture.offsets`,
};

export const groups = {
  processor: (prefix: string, pipeline: string) => `${prefix}.${pipeline}.processor`,
  sink: (prefix: string, pipeline: string) => `${prefix}.${pipeline}.sink`,
};

export interface KafkaSettings {
  brokers: string[];
  clientId: string;
  partitions: number;
  replicationFactor: number;
  retentionDays: number;
  /** Client of the producer send() uses (config kafka.producer). */
  producer?: 'kafkajs' | 'librdkafka';
}

/** What send() needs of a producer: kafkajs' own, or librdkafka's (src/core/rdkafka.ts). */
export interface BatchProducer {
  /** Resolves when every message is acknowledged by all in-sync replicas. */
  sendBatch(topicMessages: { topic: string; messages: Message[] }[]): Promise<void>;
  disconnect(): Promise<void>;
}

export interface OutMessage {
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  partition?: number;
  headers?: Record<string, string>;
  /** A control message (end of snapshot), not a change: not counted as produced. */
  control?: boolean;
}

/** The consumers' heartbeat interval; a batch still applying heartbeats this often too (ConsumerStage). */
export const CONSUMER_HEARTBEAT_MS = 3000;

/** Most bytes of messages sent in one produce request (see send()). */
const MAX_REQUEST_BYTES = 512 * 1024;
/** max.message.bytes of the topics syncline creates: one change (a row with large values) may be big. */
const TOPIC_MAX_MESSAGE_BYTES = String(16 * 1024 * 1024);

/**
 * Run a kafkajs admin call that reads its metadata cache, again when a concurrent refresh made it
 * throw a TypeError (listTopics: "Cannot destructure property 'topicMetadata'", seen in the chaos
 * runs: it stopped capture, whose start ensures its topics).
 */
async function pastMetadataRace<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof TypeError) || attempt >= 6) throw err;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

export class KafkaClient {
  readonly kafka: Kafka;
  private producer?: BatchProducer;
  private admin?: Admin;
  private readonly known = new Set<string>();

  constructor(readonly settings: KafkaSettings, private readonly log: Logger) {
    this.kafka = new Kafka({
      clientId: settings.clientId,
      brokers: settings.brokers,
      logLevel: logLevel.ERROR,
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5000 },
      logCreator: () => ({ namespace, level, log: entry }) => {
        const { message, ...extra } = entry;
        if (level <= logLevel.ERROR) this.log.warn({ kafka: namespace, ...extra }, `kafka: ${message}`);
      },
    });
    if (!kafkajsPatched && !warnedUnpatched) {
      warnedUnpatched = true;
      this.log.warn('kafka.unpatched: kafkajs was loaded before src/core/kafkajs-patch.ts; produce batches are grouped the slow (quadratic) way');
    }
  }

  async getProducer(): Promise<BatchProducer> {
    if (!this.producer) {
      if (this.settings.producer === 'librdkafka') {
        const { rdkafkaProducer } = await import('./rdkafka.js');
        this.producer = await rdkafkaProducer(this.settings, this.log);
        return this.producer;
      }
      const p: Producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
      try {
        await p.connect();
      } catch (err) {
        throw classifyNetworkError(err, `cannot connect to Kafka at ${this.settings.brokers.join(',')}`);
      }
      this.producer = {
        async sendBatch(topicMessages) {
          await p.sendBatch({ acks: -1, compression: CompressionTypes.None, topicMessages });
        },
        disconnect: () => p.disconnect(),
      };
    }
    return this.producer;
  }

  async getAdmin(): Promise<Admin> {
    if (!this.admin) {
      const a = this.kafka.admin();
      try {
        await a.connect();
      } catch (err) {
        throw classifyNetworkError(err, `cannot connect to Kafka at ${this.settings.brokers.join(',')}`);
      }
      this.admin = a;
    }
    return this.admin;
  }

  /** `sessionTimeoutMs`: how long the group waits for a silent member (30 s; a test makes it short). */
  consumer(groupId: string, opts: { sessionTimeoutMs?: number } = {}): Consumer {
    return this.kafka.consumer({
      groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: opts.sessionTimeoutMs ?? 30000,
      heartbeatInterval: CONSUMER_HEARTBEAT_MS,
      // Bounded fetches: a fetched batch is decoded whole (and up to 3 partitions at once), so its size
      // is what a consumer holds in memory; 1 MB per partition is ≈ 10,000 narrow changes, enough for
      // full batches (a larger message still arrives, alone). 4 MB / 10 MB doubled the replay's peak RSS.
      maxBytesPerPartition: 1024 * 1024,
      maxBytes: 3 * 1024 * 1024,
      maxWaitTimeInMs: 100,
      retry: { retries: 10 },
    });
  }

  /** Create topics that do not exist yet (idempotent). `compact` for state topics, never for DLQs. */
  async ensureTopics(names: string[], opts: { partitions?: number; compact?: boolean } = {}): Promise<void> {
    const wanted = names.filter((n) => !this.known.has(n));
    if (wanted.length === 0) return;
    const admin = await this.getAdmin();
    const existing = new Set(await pastMetadataRace(() => admin.listTopics()));
    const missing = wanted.filter((n) => !existing.has(n));
    if (missing.length > 0) {
      const retentionMs = String(this.settings.retentionDays * 24 * 3600 * 1000);
      const configEntries = [
        ...(opts.compact
          ? [{ name: 'cleanup.policy', value: 'compact' }]
          : [{ name: 'cleanup.policy', value: 'delete' }, { name: 'retention.ms', value: retentionMs }]),
        { name: 'max.message.bytes', value: TOPIC_MAX_MESSAGE_BYTES },
      ];
      await admin
        .createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: opts.partitions ?? this.settings.partitions,
          replicationFactor: this.settings.replicationFactor,
          configEntries,
        })),
      })
        .catch(async (err: unknown) => {
          // Another client (or stage of this process) may have created them concurrently.
          const now = new Set(await pastMetadataRace(() => admin.listTopics()));
          if (missing.some((n) => !now.has(n))) throw classifyNetworkError(err, `cannot create topics ${missing.join(', ')}`);
        });
      this.log.info({ topics: missing }, 'topics.ensured');
    }
    for (const n of wanted) this.known.add(n);
  }

  /**
   * [low, high) offsets of every partition of a topic. kafkajs' admin.fetchTopicOffsets asks twice
   * (high, then low) using the cached metadata; a metadata refresh started concurrently for another
   * topic can replace that cache in between and drop this topic from it, and kafkajs then fails with
   * a TypeError ("Cannot destructure property 'partitions' of 'low.pop(...)'"). That is a race, not
   * an error of the topic: ask again.
   */
  async topicOffsets(topic: string): Promise<{ partition: number; offset: string; high: string; low: string }[]> {
    const admin = await this.getAdmin();
    return pastMetadataRace(() => admin.fetchTopicOffsets(topic));
  }

  /** Offset of the first message at or after `ms` per partition (-1: none); the same race as topicOffsets. */
  async topicOffsetsAt(topic: string, ms: number): Promise<{ partition: number; offset: string }[]> {
    const admin = await this.getAdmin();
    return pastMetadataRace(() => admin.fetchTopicOffsetsByTimestamp(topic, ms));
  }

  async partitionCount(topic: string): Promise<number> {
    const admin = await this.getAdmin();
    const md = await pastMetadataRace(() => admin.fetchTopicMetadata({ topics: [topic] }));
    return md.topics[0]?.partitions.length ?? 0;
  }

  /**
   * Send messages and wait until every one is acknowledged by all in-sync replicas. With kafkajs,
   * large sets go in several requests of at most ~512 KB each, in order (the broker refuses a request
   * whose batch for one partition exceeds the topic's max.message.bytes); librdkafka sizes its
   * requests itself. Per partition the order is kept.
   */
  async send(messages: OutMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const producer = await this.getProducer();
    // librdkafka sizes and pipelines its requests itself: one call with everything.
    const limit = this.settings.producer === 'librdkafka' ? Infinity : MAX_REQUEST_BYTES;
    let chunk: OutMessage[] = [];
    let bytes = 0;
    const flush = async () => {
      if (chunk.length === 0) return;
      const byTopic = new Map<string, Message[]>();
      for (const m of chunk) {
        let list = byTopic.get(m.topic);
        if (!list) byTopic.set(m.topic, (list = []));
        const msg: Message = { key: m.key, value: m.value };
        if (m.partition !== undefined) msg.partition = m.partition;
        if (m.headers) msg.headers = m.headers as IHeaders;
        list.push(msg);
      }
      chunk = [];
      bytes = 0;
      try {
        await producer.sendBatch([...byTopic].map(([topic, msgs]) => ({ topic, messages: msgs })));
      } catch (err) {
        await this.resetProducerAfter(err, producer);
        throw err;
      }
    };
    for (const m of messages) {
      let size = 64 + (m.key?.length ?? 0) + (m.value?.length ?? 0);
      for (const [k, v] of Object.entries(m.headers ?? {})) size += k.length + v.length;
      if (bytes + size > limit && chunk.length > 0) await flush();
      chunk.push(m);
      bytes += size;
    }
    await flush();
  }

  /**
   * An idempotent producer whose state the broker no longer agrees with (after a broker restart:
   * out-of-order sequence, unknown producer id, old epoch) fails every later send the same way;
   * kafkajs keeps its producer id and sequences. Such a producer is dropped, so the caller's retry
   * gets a new one (a new producer id: what the old one had sent may then be sent twice, which the
   * consumers' version state makes harmless).
   */
  private async resetProducerAfter(err: unknown, producer: BatchProducer): Promise<void> {
    if (!producerStateLost(err) || this.producer !== producer) return;
    this.producer = undefined;
    this.log.warn({ err: (err as Error)?.message }, 'kafka.producer.reset: the broker lost this producer\'s state; sending again with a new producer');
    await producer.disconnect().catch(() => undefined);
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.producer?.disconnect(), this.admin?.disconnect()]);
    this.producer = undefined;
    this.admin = undefined;
  }
}

const PRODUCER_STATE_ERRORS = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH', 'INVALID_PRODUCER_ID_MAPPING']);

/** Whether a produce error (or what it wraps) says the broker lost the idempotent producer's state. */
export function producerStateLost(err: unknown): boolean {
  for (let e = err as { type?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.type === 'string' && PRODUCER_STATE_ERRORS.has(e.type)) return true;
  }
  return false;
}

export function headerString(headers: IHeaders | undefined, name: string): string | undefined {
  const v = headers?.[name];
  if (v === undefined) return undefined;
  const one = Array.isArray(v) ? v[0] : v;
  return one === undefined ? undefined : Buffer.isBuffer(one) ? one.toString('utf8') : String(one);
}
