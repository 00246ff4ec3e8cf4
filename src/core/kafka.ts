/**
 * The Kafka client behind one small interface of ours (kafkajs today), so a faster client can be
 * swapped in where the benchmark shows kafkajs is the limit. Also the topic naming rules.
 */
import { kafkajsPatched } from './kafkajs-patch.js'; // first: before kafkajs loads (see there)
import { Kafka, logLevel, CompressionTypes, type KafkaConfig, type SASLOptions, type Admin, type Producer, type Consumer, type Message, type IHeaders } from 'kafkajs';
import type { Logger } from 'pino';
import { classifyNetworkError, errorMessage, fatal, networkCode, retriable, SynclineError } from './errors.js';
import { cdcTopicName } from './names.js';
import { DependencyWaits, kafkaLogKind, type Dependency } from './dependencies.js';
import { sleep } from './retry.js';
import { tlsOptions } from './tls.js';
import { tlsFailure } from './errors.js';
import net from 'node:net';
import tls from 'node:tls';

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

export type { BatchProducer, KafkaSettings } from './kafka-settings.js';
import type { BatchProducer, KafkaSettings } from './kafka-settings.js';

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
/** Messages at least this large are checked against their topic's max.message.bytes (maxMessageBytes) before they are sent. */
export const LARGE_MESSAGE_BYTES = 64 * 1024;

/** What a message adds to a record batch, roughly: key, value, headers and ~128 bytes of framing. */
export function messageBytes(m: OutMessage): number {
  let n = 128 + (m.key?.length ?? 0) + (m.value?.length ?? 0);
  for (const [k, v] of Object.entries(m.headers ?? {})) n += Buffer.byteLength(k) + Buffer.byteLength(v);
  return n;
}

/** kafkajs's ConfigResourceTypes.TOPIC (its CommonJS export is not importable by name from ESM). */
const TOPIC_RESOURCE = 2;

/** How long ensureTopics waits for a leader of every partition of topics it created or found. */
const TOPICS_READY_MS = 30_000;

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

/**
 * A partition whose leader is not elected yet (a topic just created, a broker just restarted)
 * answers NOT_LEADER_FOR_PARTITION / LEADER_NOT_AVAILABLE for a moment: asked again for up to ~5 s
 * before the error goes to the caller (still retriable there). A scheduled run read a topic's offsets
 * right after creating it and failed on this in CI.
 */
async function pastLeaderElection<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const e = err as { type?: string; originalError?: { type?: string } };
      const type = e.type ?? e.originalError?.type;
      if ((type !== 'NOT_LEADER_FOR_PARTITION' && type !== 'LEADER_NOT_AVAILABLE') || attempt >= 10) throw err;
      await sleep(100 * attempt);
    }
  }
}

export class KafkaClient {
  readonly kafka: Kafka;
  private producer?: BatchProducer;
  private admin?: Admin;
  private adminConnecting?: Promise<Admin>;
  /** max.message.bytes per topic (maxMessageBytes). */
  private readonly messageLimits = new Map<string, Promise<number>>();
  /** Admin clients replaced by withAdmin, disconnected once the calls still using them are done. */
  private readonly retiredAdmins = new Set<Admin>();
  /** Topics known to exist with a leader for every partition (ensureTopics). */
  private readonly known = new Set<string>();
  /** One creation in flight per topic: concurrent callers (the stages of a process) share it. */
  private readonly creating = new Map<string, Promise<void>>();
  /** Kafka as the dependency-wait log names it. */
  readonly dependency: Dependency;
  /** kafka.ssl: the first broker's certificate verified once (checkTls). */
  private tlsChecked = false;
  /** Where "Kafka is not ready" is said once per outage (the Runtime's, shared with the other dependencies). */
  readonly waits: DependencyWaits;

  constructor(readonly settings: KafkaSettings, private readonly log: Logger, waits?: DependencyWaits) {
    this.dependency = { kind: 'kafka', key: 'kafka', name: `Kafka at ${settings.brokers.join(',')} (kafka.brokers)` };
    this.waits = waits ?? new DependencyWaits(log);
    this.kafka = new Kafka({
      clientId: settings.clientId,
      brokers: settings.brokers,
      ...kafkaSecurity(settings, (msg) => this.log.warn(msg)),
      logLevel: logLevel.ERROR,
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5000 },
      // kafkajs logs every failed request at ERROR, most of them moments it retries itself: the
      // expected ones (metadata of a new topic not propagated yet) at debug, an unavailable
      // Kafka once per outage (DependencyWaits), anything else at warn.
      logCreator: () => ({ namespace, level, log: entry }) => {
        if (level > logLevel.ERROR) return;
        const { message, ...extra } = entry;
        const error = typeof extra.error === 'string' ? extra.error : undefined;
        const kind = kafkaLogKind(message, error);
        if (kind === 'transient') this.log.debug({ kafka: namespace, ...extra }, `kafka: ${message}`);
        else if (kind === 'unavailable') this.waits.waiting(this.dependency, new Error(error ? `${message}: ${error}` : message), 'the Kafka client');
        else this.log.warn({ kafka: namespace, ...extra }, `kafka: ${message}`);
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
        await this.checkTls();
        await p.connect();
      } catch (err) {
        throw this.classify(err, 'cannot connect');
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

  /** The admin client, connected once: concurrent first callers share one connect (each used to make a client, and all but one leaked). */
  getAdmin(): Promise<Admin> {
    if (this.admin) return Promise.resolve(this.admin);
    this.adminConnecting ??= (async () => {
      const a = this.kafka.admin();
      try {
        await this.checkTls();
        await a.connect();
      } catch (err) {
        await a.disconnect().catch(() => undefined);
        throw this.classify(err, 'cannot connect');
      }
      this.admin = a;
      return a;
    })().finally(() => {
      this.adminConnecting = undefined;
    });
    return this.adminConnecting;
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

  /**
   * With kafka.ssl: one TLS handshake with the first broker before kafkajs connects, so a
   * certificate that does not verify is fatal at once (kafkajs retries it like a lost connection,
   * ~10 s). Any other outcome (refused, timeout) is left to kafkajs; a success is remembered.
   */
  private async checkTls(): Promise<void> {
    if (!this.settings.ssl || this.tlsChecked) return;
    const [host = '', port = '9093'] = (this.settings.brokers[0] ?? '').split(/:(?=\d+$)/);
    const options = kafkaSecurity(this.settings).ssl as tls.ConnectionOptions;
    let sock: tls.TLSSocket | undefined;
    const verdict = await new Promise<Error | 'ok' | 'unknown'>((resolve) => {
      sock = tls.connect({ host, port: Number(port), ...(net.isIP(host) ? {} : { servername: host }), ...options }, () => resolve('ok'));
      sock.setTimeout(5000, () => resolve('unknown'));
      sock.once('error', (err) => resolve(tlsFailure(err) ? err : 'unknown'));
      sock.once('close', () => resolve('unknown'));
    }).finally(() => sock?.destroy());
    if (verdict instanceof Error) throw verdict;
    if (verdict === 'ok') this.tlsChecked = true;
  }

  /** A kafkajs error as ours, naming Kafka and its address (classifyKafkaError). */
  classify(err: unknown, context: string): SynclineError {
    return classifyKafkaError(err, context, this.settings.brokers, this.settings);
  }

  /**
   * `fn` with the admin client, for every call that names topics (offsets, creation). kafkajs's admin
   * remembers each topic it was asked offsets of and asks the broker for all of them before every later
   * createTopics and offsets read; a remembered topic the broker does not know (deleted by another
   * process: `syncline pipeline drop`, an operator; or asked about before it existed and not forgotten,
   * as kafkajs forgets it only when that first refresh fails on the topic itself and not on a timeout)
   * fails each of those, for good, with "This server does not host this topic-partition". A first run
   * on a slow machine never created its dead-letter topic so. On that error the admin is replaced (a
   * new one remembers nothing) and `fn` runs once more; if the topic `fn` names is really unknown, it
   * fails again, as it should.
   */
  async withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
    const admin = await this.getAdmin();
    try {
      return await fn(admin);
    } catch (err) {
      if (!unknownTopic(err)) throw err;
      this.retireAdmin(admin);
      return fn(await this.getAdmin());
    }
  }

  /** The next getAdmin() connects a new admin; this one is disconnected a while later (other callers may be mid-call on it). */
  private retireAdmin(admin: Admin): void {
    if (this.admin !== admin) return;
    this.admin = undefined;
    this.retiredAdmins.add(admin);
    this.log.debug('kafka.admin.replaced: a topic it remembered is unknown to the broker');
    setTimeout(() => {
      if (this.retiredAdmins.delete(admin)) void admin.disconnect().catch(() => undefined);
    }, 60_000).unref();
  }

  /** Kafka answered (a stage joined its group, a send or topic creation succeeded): ends a wait. */
  markReady(): void {
    this.waits.ready(this.dependency);
  }

  /**
   * Create the topics that do not exist yet and wait until the broker's metadata shows a leader
   * for every partition of each, so that what follows (produce, subscribe, offsets) finds them.
   * Idempotent and safe to call concurrently: one creation is in flight per topic in this process
   * and concurrent callers wait for it; a topic another process created meanwhile
   * (TOPIC_ALREADY_EXISTS) counts as created. `compact` for state topics, never for DLQs.
   * Errors: retriable when Kafka is not ready (the caller waits, see DependencyWaits), fatal when
   * it refuses the request (replication factor, authorization, policy).
   */
  async ensureTopics(names: string[], opts: { partitions?: number; compact?: boolean } = {}): Promise<void> {
    const wanted = [...new Set(names)].filter((n) => !this.known.has(n));
    if (wanted.length === 0) return;
    const fresh = wanted.filter((n) => !this.creating.has(n));
    if (fresh.length > 0) {
      const creation = this.createTopics(fresh, opts);
      for (const n of fresh) this.creating.set(n, creation);
      void creation
        .then(() => fresh.forEach((n) => this.known.add(n)), () => undefined)
        .finally(() => fresh.forEach((n) => this.creating.get(n) === creation && this.creating.delete(n)));
    }
    await Promise.all(wanted.map((n) => this.creating.get(n)));
  }

  private async createTopics(names: string[], opts: { partitions?: number; compact?: boolean }): Promise<void> {
    const admin = await this.getAdmin();
    const existing = new Set(await pastMetadataRace(() => admin.listTopics()).catch((err: unknown) => {
      throw this.classify(err, `cannot list topics (to create ${names.join(', ')})`);
    }));
    const missing = names.filter((n) => !existing.has(n));
    if (missing.length > 0) {
      const retentionMs = String(this.settings.retentionDays * 24 * 3600 * 1000);
      const configEntries = [
        ...(opts.compact
          ? [{ name: 'cleanup.policy', value: 'compact' }]
          : [{ name: 'cleanup.policy', value: 'delete' }, { name: 'retention.ms', value: retentionMs }]),
        { name: 'max.message.bytes', value: TOPIC_MAX_MESSAGE_BYTES },
        ...(this.settings.minInsyncReplicas !== undefined ? [{ name: 'min.insync.replicas', value: String(this.settings.minInsyncReplicas) }] : []),
      ];
      try {
        // Leaders are awaited below, for every topic: kafkajs's own wait gives up at the first
        // "does not host this topic-partition" (the broker's metadata lagging its controller).
        await this.withAdmin((a) => a.createTopics({
          waitForLeaders: false,
          topics: missing.map((topic) => ({
            topic,
            numPartitions: opts.partitions ?? this.settings.partitions,
            replicationFactor: this.settings.replicationFactor,
            configEntries,
          })),
        }));
      } catch (err) {
        // Created meanwhile by another process: what we wanted.
        if (!onlyAlreadyExists(err)) throw this.classify(err, `cannot create topics ${missing.join(', ')}`);
      }
      this.log.info({ topics: missing }, 'topics.ensured');
    }
    await this.awaitLeaders(await this.getAdmin(), names);
    this.markReady();
  }

  /** Until the metadata shows a leader for every partition of every topic (bounded: TOPICS_READY_MS). */
  private async awaitLeaders(admin: Admin, names: string[]): Promise<void> {
    const until = Date.now() + TOPICS_READY_MS;
    for (let attempt = 0; ; attempt++) {
      let why: string;
      try {
        const md = await admin.fetchTopicMetadata({ topics: names });
        const unready = leaderless(names, md.topics);
        if (unready.length === 0) return;
        why = `no leader yet for a partition of ${unready.join(', ')}`;
      } catch (err) {
        if (!(err instanceof TypeError) && !metadataLagging(err)) throw this.classify(err, `cannot read the metadata of ${names.join(', ')}`);
        why = errorMessage(err);
      }
      if (Date.now() > until) {
        throw retriable('KAFKA_TOPICS_NOT_READY', `Kafka at ${this.settings.brokers.join(',')} (kafka.brokers): topics ${names.join(', ')} exist but the broker's metadata shows no leader for every partition after ${TOPICS_READY_MS / 1000}s: ${why}`);
      }
      await sleep(Math.min(1000, 50 * 2 ** attempt));
    }
  }

  /**
   * [low, high) offsets of every partition of a topic. kafkajs' admin.fetchTopicOffsets asks twice
   * (high, then low) using the cached metadata; a metadata refresh started concurrently for another
   * topic can replace that cache in between and drop this topic from it, and kafkajs then fails with
   * a TypeError ("Cannot destructure property 'partitions' of 'low.pop(...)'"). That is a race, not
   * an error of the topic: ask again.
   */
  async topicOffsets(topic: string): Promise<{ partition: number; offset: string; high: string; low: string }[]> {
    // Classified: a leader not elected yet for a topic just created ("not the leader for that
    // topic-partition") is retriable, waited for by the stage's supervisor, not the end of a stage.
    return this.withAdmin((admin) => pastLeaderElection(() => pastMetadataRace(() => admin.fetchTopicOffsets(topic)))).catch((err: unknown) => {
      throw this.classify(err, `cannot read the offsets of ${topic}`);
    });
  }

  /** Offset of the first message at or after `ms` per partition (-1: none); the same race as topicOffsets. */
  async topicOffsetsAt(topic: string, ms: number): Promise<{ partition: number; offset: string }[]> {
    return this.withAdmin((admin) => pastLeaderElection(() => pastMetadataRace(() => admin.fetchTopicOffsetsByTimestamp(topic, ms)))).catch((err: unknown) => {
      throw this.classify(err, `cannot read the offsets of ${topic} at ${new Date(ms).toISOString()}`);
    });
  }

  /**
   * Delete a throw-away consumer group (replay, dead-letter reads, schema-change reads) once its
   * consumer has left. On a loaded broker the leave may not have taken effect yet (NON_EMPTY_GROUP)
   * or the coordinator may be moving: tried again for up to `withinMs`, then a warning names the
   * group left behind (nothing else depends on it: it holds no committed offsets).
   */
  async deleteGroup(groupId: string, withinMs = 15_000): Promise<boolean> {
    const until = Date.now() + withinMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const admin = await this.getAdmin();
        await admin.deleteGroups([groupId]);
        return true;
      } catch (err) {
        const type = (err as { groups?: { error?: { type?: string } }[] }).groups?.[0]?.error?.type;
        if (type === 'GROUP_ID_NOT_FOUND') return true;
        if (Date.now() >= until) {
          this.log.warn({ group: groupId, err: errorMessage(err) }, `kafka.group_left_behind: consumer group ${groupId} could not be deleted (${type ?? errorMessage(err)}); it holds no offsets and can be deleted by hand`);
          return false;
        }
        await sleep(Math.min(250 * attempt, 2000));
      }
    }
  }

  /**
   * The largest message `topic` takes: its effective max.message.bytes (its own, else the brokers'
   * default), read once per topic. When Kafka does not say (no DescribeConfigs right, an outage), the
   * value syncline gives the topics it creates (not remembered: asked again next time).
   */
  maxMessageBytes(topic: string): Promise<number> {
    let p = this.messageLimits.get(topic);
    if (!p) {
      p = this.withAdmin((a) => a.describeConfigs({ includeSynonyms: false, resources: [{ type: TOPIC_RESOURCE, name: topic, configNames: ['max.message.bytes'] }] }))
        .then((r) => {
          const v = Number(r.resources[0]?.configEntries.find((c) => c.configName === 'max.message.bytes')?.configValue);
          if (!(v > 0)) throw new Error('no max.message.bytes');
          return v;
        })
        .catch(() => {
          this.messageLimits.delete(topic);
          return Number(TOPIC_MAX_MESSAGE_BYTES);
        });
      this.messageLimits.set(topic, p);
    }
    return p;
  }

  async partitionCount(topic: string): Promise<number> {
    const admin = await this.getAdmin();
    const md = await pastMetadataRace(() => admin.fetchTopicMetadata({ topics: [topic] })).catch((err: unknown) => {
      throw this.classify(err, `cannot read the metadata of ${topic}`);
    });
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
      const batch = [...byTopic].map(([topic, msgs]) => ({ topic, messages: msgs }));
      try {
        try {
          await producer.sendBatch(batch);
        } catch (err) {
          // kafkajs's producer, like its admin (withAdmin), asks for every topic it ever sent to
          // before each send: one deleted since (another pipeline dropped) fails every send, for good.
          if (!unknownTopic(err) || this.settings.producer === 'librdkafka') throw err;
          await this.replaceProducer(producer, 'info', 'kafka.producer.renewed: a topic this producer had sent to is unknown to the broker (deleted?); sending with a new producer');
          await (await this.getProducer()).sendBatch(batch);
        }
        if (this.waits.isWaiting(this.dependency.key)) this.markReady();
      } catch (err) {
        await this.resetProducerAfter(err, producer);
        // Ours, naming Kafka: a leader not elected yet for a topic just created, a broker restarting
        // are retriable (a stage's supervisor waits for them), not a bug that ends the stage.
        throw this.classify(err, `producing to ${[...byTopic.keys()].join(', ')}`);
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
    if (!producerStateLost(err)) return;
    await this.replaceProducer(producer, 'warn', 'kafka.producer.reset: the broker lost this producer\'s state; sending again with a new producer', err);
  }

  /** Drop `producer` (if it is still ours) so the next getProducer() makes a new one. */
  private async replaceProducer(producer: BatchProducer, level: 'info' | 'warn', msg: string, err?: unknown): Promise<void> {
    if (this.producer !== producer) return;
    this.producer = undefined;
    this.log[level](err ? { err: (err as Error)?.message } : {}, msg);
    await producer.disconnect().catch(() => undefined);
  }

  async close(): Promise<void> {
    // An admin client still connecting is closed once it is (it sets this.admin first).
    const retired = [...this.retiredAdmins];
    this.retiredAdmins.clear();
    await Promise.allSettled([this.producer?.disconnect(), this.admin?.disconnect(), this.adminConnecting?.then((a) => a.disconnect()), ...retired.map((a) => a.disconnect())]);
    this.producer = undefined;
    this.admin = undefined;
  }
}

/** Topics of `names` whose metadata is missing, has no partition, or a partition without a leader. */
export function leaderless(names: string[], topics: { name: string; partitions: { leader: number }[] }[]): string[] {
  const by = new Map(topics.map((t) => [t.name, t]));
  return names.filter((n) => {
    const t = by.get(n);
    return !t || t.partitions.length === 0 || t.partitions.some((p) => p.leader < 0);
  });
}

/** kafkajs errors (or what they wrap) by their protocol type, innermost first. */
function kafkaTypes(err: unknown): string[] {
  const out: string[] = [];
  for (let e = err as { type?: unknown; cause?: unknown; errors?: unknown } | undefined, depth = 0; e && depth < 6; e = e.cause as typeof e, depth++) {
    if (typeof e.type === 'string') out.unshift(e.type);
    if (Array.isArray(e.errors)) for (const x of e.errors as { type?: unknown }[]) if (typeof x?.type === 'string') out.unshift(x.type);
  }
  return out;
}

/** The broker does not know a topic (or its leader) yet: its metadata lags the controller's. */
export function metadataLagging(err: unknown): boolean {
  const types = kafkaTypes(err);
  return types.length > 0 && types.every((t) => t === 'UNKNOWN_TOPIC_OR_PARTITION' || t === 'LEADER_NOT_AVAILABLE' || t === 'NOT_LEADER_FOR_PARTITION');
}

/** A createTopics failure only because (some of) the topics exist already. */
export function onlyAlreadyExists(err: unknown): boolean {
  const e = err as { type?: unknown; errors?: unknown };
  if (e?.type === 'TOPIC_ALREADY_EXISTS') return true;
  return Array.isArray(e?.errors) && e.errors.length > 0 && (e.errors as { type?: unknown }[]).every((x) => x?.type === 'TOPIC_ALREADY_EXISTS');
}

/**
 * A kafkajs error as ours: `Kafka at <brokers> (kafka.brokers): <context>: <error>`. Network errors
 * (NET_…) and what kafkajs itself calls retriable (a connection lost, a request timed out, a
 * coordinator or leader not available, its retries exhausted on such) are retriable: Kafka is not
 * ready, the caller waits. A request the broker refuses for good (a replication factor above the
 * brokers, no authorization, a policy) is fatal. Anything else stays retriable (KAFKA_ERROR).
 */
export function classifyKafkaError(err: unknown, context: string, brokers: string[], security: Pick<KafkaSettings, 'ssl' | 'sasl'> = {}): SynclineError {
  if (err instanceof SynclineError) return err;
  const at = `Kafka at ${brokers.join(',')} (kafka.brokers)`;
  // A certificate that does not verify, TLS spoken to a plaintext listener, a refused SASL login:
  // fatal, named (kafkajs retries them like a lost connection; another attempt cannot succeed).
  const tls = tlsFailure(err);
  if (tls) {
    const hint = security.ssl ? `kafka.ssl.caFile ${security.ssl.caFile ?? '(unset: the system CAs)'}` : 'kafka.ssl is not set: is this a TLS listener?';
    return fatal('KAFKA_TLS', `${at}: ${context}: ${tls} (${hint})`, err);
  }
  const sasl = saslFailure(err);
  if (sasl) return fatal('KAFKA_SASL_AUTHENTICATION', `${at}: ${context}: SASL authentication failed for user ${security.sasl?.username ?? '(none: kafka.sasl is not set)'} (kafka.sasl, mechanism ${security.sasl?.mechanism ?? '-'}): ${sasl}`, err);
  const msg = `${at}: ${context}: ${errorMessage(err)}`;
  const net = networkCode(err);
  if (net) return retriable(`NET_${net}`, msg, err);
  let inner = err as { cause?: unknown; retriable?: unknown; type?: unknown; name?: unknown };
  for (let depth = 0; inner?.cause && depth < 6; depth++) inner = inner.cause as typeof inner;
  if (typeof inner?.type === 'string' && inner.retriable === false && inner.type !== 'UNKNOWN') return fatal(`KAFKA_${inner.type}`, msg, err);
  if (inner?.retriable === true || /Connection|Timeout|NumberOfRetriesExceeded|BrokerNotFound|MetadataNotLoaded|GroupCoordinatorNotFound/.test(String(inner?.name ?? ''))) return retriable('KAFKA_UNAVAILABLE', msg, err);
  return retriable('KAFKA_ERROR', msg, err);
}

const PRODUCER_STATE_ERRORS = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH', 'INVALID_PRODUCER_ID_MAPPING']);

/** The broker does not know a topic the request named (or that the client remembered: withAdmin). */
export function unknownTopic(err: unknown): boolean {
  return kafkaTypes(err).includes('UNKNOWN_TOPIC_OR_PARTITION');
}

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

/** kafkajs' ssl and sasl options from the config (kafka.ssl, kafka.sasl). */
export function kafkaSecurity(settings: Pick<KafkaSettings, 'brokers' | 'ssl' | 'sasl'>, warn?: (msg: string) => void): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  const out: Pick<KafkaConfig, 'ssl' | 'sasl'> = {};
  if (settings.ssl) out.ssl = tlsOptions(`Kafka at ${settings.brokers.join(',')}`, 'kafka.ssl', settings.ssl, warn);
  if (settings.sasl) out.sasl = { mechanism: settings.sasl.mechanism, username: settings.sasl.username, password: settings.sasl.password } as SASLOptions;
  return out;
}

/** The broker's refusal of a SASL login behind a kafkajs error (KafkaJSSASLAuthenticationError), or undefined. */
export function saslFailure(err: unknown): string | undefined {
  for (let e = err as { name?: unknown; message?: unknown; cause?: unknown; originalError?: unknown } | undefined, depth = 0; e && depth < 6; depth++) {
    if (e.name === 'KafkaJSSASLAuthenticationError' || (typeof e.message === 'string' && /SASL .*authentication failed|Authentication failed during authentication due to invalid credentials/i.test(e.message))) return String(e.message);
    e = (e.cause ?? e.originalError) as typeof e;
  }
  return undefined;
}
