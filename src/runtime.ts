/**
 * Wires the stages of the configured pipelines into one process: `syncline start` runs capture and
 * processor+sink of every enabled pipeline; `syncline capture|process` run one stage. Owns the
 * shared clients (Kafka, registry, Redis) and the clean shutdown on SIGTERM: capture produces and
 * acknowledges what it buffered, processors finish their in-flight batch and commit, then clients close.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import '../connectors/index.js';
import type { PgSourceConfig } from '../connectors/postgres/spec.js';
import { Capture } from './capture/capture.js';
import type { PipelineConfig, RetryConfig, SynclineConfig } from './core/config/schema.js';
import { AvroCodec } from './core/codec.js';
import { splitName } from './capture/source.js';
import { groups, KafkaClient, topics } from './core/kafka.js';
import { rootLogger, stageLogger } from './core/log.js';
import { sinkRegistration } from './core/registry.js';
import { ConsumerStage, cdcDecoder, applyTopicDecoder, type Output } from './process/processor.js';
import { ApplyTopicWriter } from './sink/apply-topic.js';
import { fatal } from './core/errors.js';
import { tableMappings, type TableMapping } from './process/mapper.js';
import { VersionState } from './process/version-state.js';
import { Applier } from './sink/applier.js';
import { DeadLetters } from './sink/dead-letters.js';
import type { Sink } from './sink/sink.js';

/** capture: PostgreSQL → Kafka; process: change topics → decode/map/hash; sink: version state, conflicts, target writes. */
export type Stage = 'capture' | 'process' | 'sink';

export interface PipelineHandle {
  name: string;
  capture?: Capture;
  /** The consumer stage: processor (with or without its sink) or the standalone sink writer. */
  processor?: ConsumerStage;
  applier?: Applier;
  sink?: Sink;
}

export class Runtime {
  readonly kafka: KafkaClient;
  readonly codec: AvroCodec;
  readonly redis: Redis;
  readonly pipelines: PipelineHandle[] = [];
  private readonly running: Promise<void>[] = [];
  private stopping = false;
  private readonly log: Logger = rootLogger.child({ stage: 'runtime' });

  constructor(readonly config: SynclineConfig, private readonly stages: Set<Stage>, private readonly only?: string[]) {
    this.kafka = new KafkaClient(config.kafka, rootLogger.child({ stage: 'kafka' }));
    this.codec = new AvroCodec(config.schemaRegistry.url);
    this.redis = new Redis(config.redis.url, { lazyConnect: true, maxRetriesPerRequest: 3, enableOfflineQueue: true });
    this.redis.on('error', (err) => this.log.warn({ err: err.message }, 'redis.error'));
  }

  selected(): [string, PipelineConfig][] {
    const all = Object.entries(this.config.pipelines);
    if (this.only && this.only.length > 0) {
      for (const n of this.only) if (!this.config.pipelines[n]) throw new Error(`no pipeline '${n}' in the config (have: ${all.map(([k]) => k).join(', ')})`);
      return all.filter(([n]) => this.only!.includes(n));
    }
    return all.filter(([, p]) => p.enabled);
  }

  /** Start every selected pipeline; returns a promise that settles when all stop (rejects on a fatal error). */
  async start(): Promise<{ done: Promise<void> }> {
    if (this.stages.has('sink')) await this.redis.connect();
    for (const [name, p] of this.selected()) this.pipelines.push(await this.startPipeline(name, p));
    return { done: Promise.all(this.running).then(() => undefined) };
  }

  private async startPipeline(name: string, p: PipelineConfig): Promise<PipelineHandle> {
    const prefix = this.config.topicPrefix;
    const h: PipelineHandle = { name };
    const log = stageLogger(name, [...this.stages].join('+'));
    const dlq = new DeadLetters(this.kafka, prefix, name, log);
    if (this.stages.has('sink')) {
      const reg = sinkRegistration((p.target as { type: string }).type);
      const sink = reg.create(p.target as never, { pipeline: name, log });
      await sink.connect();
      h.sink = sink;
      const state = new VersionState(this.redis, this.config.redis.keyPrefix ?? this.config.topicPrefix, name);
      const conflict = p.conflict ?? this.config.defaults.conflict;
      const perTable = new Map(p.tables.map((t) => [t.target ?? t.source, t.conflict ?? conflict]));
      for (const [table, c] of perTable) {
        if (c.strategy === 'manual' || c.strategy === 'custom') {
          throw fatal('CONFLICT_STRATEGY_UNSUPPORTED', `pipeline ${name}, table ${table}: conflict strategy '${c.strategy}' is not implemented yet (supported: source-wins, target-wins, latest-timestamp)`);
        }
      }
      h.applier = new Applier(sink, state, dlq, (t) => perTable.get(t) ?? conflict, resolveRetry(name, this.config.defaults.retry, p.retry, (p.target as { retry?: RetryOverride }).retry), log);
    }
    const applyTopic = topics.apply(prefix, name);
    if (this.stages.has('process')) {
      const maps = tableMappings(p.tables);
      const byTopic = new Map<string, TableMapping>();
      for (const [src, m] of maps) {
        const [schema, table] = splitName(src);
        byTopic.set(topics.cdc(prefix, schema, table), m);
      }
      let output: Output;
      if (h.applier) output = h.applier;
      else {
        const writer = new ApplyTopicWriter(this.kafka, applyTopic);
        await writer.ensure();
        output = writer;
      }
      h.processor = new ConsumerStage({
        groupId: groups.processor(prefix, name), topics: [...byTopic.keys()], kafka: this.kafka,
        decode: cdcDecoder(this.codec, byTopic), output, dlq, log,
      });
      this.running.push(this.guard(name, 'process', h.processor.run()));
    } else if (h.applier) {
      h.processor = new ConsumerStage({
        groupId: groups.sink(prefix, name), topics: [applyTopic], kafka: this.kafka,
        decode: applyTopicDecoder, output: h.applier, dlq, log,
      });
      this.running.push(this.guard(name, 'sink', h.processor.run()));
    }
    if (this.stages.has('capture')) {
      const capture = new Capture({
        pipeline: name, prefix, source: p.source as PgSourceConfig, tables: p.tables,
        kafka: this.kafka, codec: this.codec, log: stageLogger(name, 'capture'),
      });
      h.capture = capture;
      this.running.push(this.guard(name, 'capture', capture.run()));
    }
    return h;
  }

  private guard(pipeline: string, stage: string, p: Promise<void>): Promise<void> {
    return p.catch(async (err: unknown) => {
      if (this.stopping) return;
      this.log.error({ pipeline, stage, err: (err as Error).message, code: (err as { code?: string }).code }, 'stage.failed');
      await this.stop();
      throw err;
    });
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info('runtime.stopping');
    await Promise.allSettled(this.pipelines.map((h) => h.capture?.stop()));
    await Promise.allSettled(this.pipelines.map((h) => h.processor?.stop()));
    await Promise.allSettled(this.pipelines.map((h) => h.sink?.close()));
    await this.kafka.close();
    this.redis.disconnect();
    this.log.info('runtime.stopped');
  }
}

type RetryOverride = Partial<RetryConfig>;

/** Defaults, then the pipeline's overrides, then the target connector's, option by option. */
export function resolveRetry(pipeline: string, defaults: RetryConfig, ...overrides: (RetryOverride | undefined)[]): RetryConfig {
  const out: RetryConfig = { ...defaults };
  for (const o of overrides) {
    if (!o) continue;
    for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, number>)[k] = v as number;
  }
  if (out.initialDelayMs > out.maxDelayMs) {
    throw fatal('CONFIG_INVALID', `pipeline ${pipeline}: retry initialDelayMs (${out.initialDelayMs}) exceeds maxDelayMs (${out.maxDelayMs}) once defaults and overrides are combined`);
  }
  return out;
}
