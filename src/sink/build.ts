/**
 * Builds the sink side of one pipeline (target connector, version state, dead letters, conflict
 * resolvers, Applier) the same way for the running sink stage, the dead-letter operations
 * (src/dlq/service.ts) and replay (src/replay/replay.ts).
 */
import { dirname, resolve } from 'node:path';
import type { RedisClient } from '../core/redis.js';
import type { Logger } from 'pino';
import type { ConflictConfig, PipelineConfig, RetryConfig, SynclineConfig, TableConfig } from '../core/config/schema.js';
import { targetTablesOf, twoWayWritersInto } from '../core/config/schema.js';
import { configSource } from '../core/config/load.js';
import type { KafkaClient } from '../core/kafka.js';
import { sinkRegistration } from '../core/registry.js';
import type { Metrics } from '../observe/metrics.js';
import { applyObserver, ObservedDeadLetters, TimedSink, TimedVersionState } from '../observe/instrument.js';
import { VersionState } from './version-state.js';
import { DlqStore } from '../dlq/store.js';
import { fatal } from '../core/errors.js';
import { own, republishOrigin, type Decided, type Row } from '../core/envelope.js';
import { Applier } from './applier.js';
import { loadResolveFn, makeResolver, type Resolver } from './conflicts.js';
import { DeadLetters } from './dead-letters.js';
import type { Sink } from './sink.js';
import { DryRunDeadLetters, DryRunSink, DryRunVersionState } from './dry-run.js';
import { DecryptingSink, pipelineCrypto } from '../security/crypto/pipeline.js';
import { pipelineRetention } from '../history/history.js';
import { historyStoreOf, openStore, PipelineHistory } from '../history/recorder.js';

export interface SinkParts {
  sink: Sink;
  state: VersionState;
  dlq: DeadLetters;
  applier: Applier;
  /** The pipeline's change history, when any of its tables keeps one. */
  history?: PipelineHistory;
  conflictFor: (table: string) => ConflictConfig;
  /** Tables a config reload added to the running pipeline: their conflict settings (and custom resolvers) from now on. */
  addTables: (tables: TableConfig[]) => Promise<void>;
}

export interface SinkDeps {
  config: SynclineConfig;
  kafka: KafkaClient;
  redis: RedisClient;
  metrics?: Metrics;
  /**
   * How the target is connected: the running Runtime waits for a target that is not ready yet
   * (src/supervise.ts untilReady); the CLI tools connect once.
   */
  connect?: (connect: () => Promise<void>) => Promise<void>;
}

/** Replication origin prefix of a pipeline's writes (two-way sync): syncline:<topicPrefix>:<pipeline>. */
export const originOf = (prefix: string, pipeline: string) => `syncline:${prefix}:${pipeline}`;
/** Replication origin prefix of a pipeline's re-published rows (a sink's republish(), see ConnectorContext.origin). */
export const republishOriginOf = (prefix: string, pipeline: string, over: Decided) => republishOrigin(originOf(prefix, pipeline), over);

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

/** The retry settings of a pipeline's target: defaults, the pipeline's, the target connector's. */
export const pipelineRetry = (config: SynclineConfig, name: string, p: PipelineConfig): RetryConfig =>
  resolveRetry(name, config.defaults.retry, p.retry, (p.target as { retry?: RetryOverride }).retry);

/** `batch.size` of a pipeline: most records written to its target in one transaction. */
export const batchSizeOf = (config: SynclineConfig, p: PipelineConfig): number => (p.batch ?? config.defaults.batch).size;

/** The conflict settings of each target table of a pipeline, and the resolvers (custom modules loaded). */
export async function conflictPolicy(config: SynclineConfig, name: string, p: PipelineConfig): Promise<{ conflictFor: (t: string) => ConflictConfig; resolverFor: (t: string) => Resolver; addTables: (tables: TableConfig[]) => Promise<void> }> {
  const base = p.conflict ?? config.defaults.conflict;
  const perTable = new Map(p.tables.flatMap((t) => targetTablesOf(t).map((table) => [table, t.conflict ?? base] as const)));
  const baseDir = dirname(configSource(config)?.file ?? resolve('config.yaml'));
  const resolvers = new Map<string, Resolver>();
  const make = async (table: string, c: ConflictConfig) => {
    const fn = c.strategy === 'custom' ? await loadResolveFn(c.module!, baseDir, `pipeline ${name}, table ${table}`) : undefined;
    return makeResolver(c, fn);
  };
  for (const [table, c] of perTable) resolvers.set(table, await make(table, c));
  const fallback = await make('*', base);
  const addTables = async (tables: TableConfig[]) => {
    for (const t of tables) {
      const c = t.conflict ?? base;
      for (const table of targetTablesOf(t)) {
        resolvers.set(table, await make(table, c));
        perTable.set(table, c);
      }
    }
  };
  return { conflictFor: (t) => perTable.get(t) ?? base, resolverFor: (t) => resolvers.get(t) ?? fallback, addTables };
}

export async function buildSinkParts(deps: SinkDeps, name: string, p: PipelineConfig, log: Logger, opts: { dryRun?: boolean } = {}): Promise<SinkParts> {
  const { config, kafka, redis, metrics } = deps;
  const retry = pipelineRetry(config, name, p);
  const prefix = config.topicPrefix;
  const keyPrefix = config.redis.keyPrefix ?? prefix;
  const policy = await conflictPolicy(config, name, p);
  const reg = sinkRegistration((p.target as { type: string }).type);
  const raw = reg.create(p.target as never, { pipeline: name, log, origin: p.peer ? originOf(prefix, name) : undefined });
  if (p.peer && !raw.republish) throw fatal('SINK_NO_TWO_WAY', `pipeline ${name}: target type ${(p.target as { type: string }).type} cannot take part in two-way sync (peer ${p.peer})`);
  await (deps.connect ? deps.connect(() => raw.connect()) : raw.connect());
  // Field encryption: a decrypt: true target gets the plaintext, decrypted inside the write.
  const crypto = pipelineCrypto(config, name);
  const opened = crypto?.decrypt ? new DecryptingSink(raw, crypto, log) : raw;
  const timed = metrics ? new TimedSink(opened, metrics, name) : opened;
  const sink = opts.dryRun ? new DryRunSink(timed) : timed;
  const state = opts.dryRun ? new DryRunVersionState(redis, keyPrefix, name) : metrics ? new TimedVersionState(metrics, redis, keyPrefix, name) : new VersionState(redis, keyPrefix, name);
  const dlq = opts.dryRun ? new DryRunDeadLetters(kafka, prefix, name, log) : metrics ? new ObservedDeadLetters(kafka, prefix, name, log).observe(metrics, 'sink') : new DeadLetters(kafka, prefix, name, log);
  const store = new DlqStore(kafka, prefix, name);
  // Change history (ADR 0031): its store, taken into the target's transactions where it can be, and each table's baseline.
  const retention = opts.dryRun ? new Map() : pipelineRetention(p);
  const where = historyStoreOf(config);
  let history: PipelineHistory | undefined;
  const keyColumnsOf = (table: string) => {
    const t = p.tables.find((x) => targetTablesOf(x).includes(table));
    return t?.key?.map((c) => own(t.columns, c) ?? c);
  };
  if (retention.size > 0 && where) {
    const { store: hs, release } = openStore(where.url, where.schema);
    history = new PipelineHistory(name, hs, retention, log.child({ stage: 'history' }));
    const close = sink.close.bind(sink);
    sink.close = async () => {
      try {
        await close();
      } finally {
        await release();
      }
    };
    await history.attach(sink, keyColumnsOf);
  }
  const applier = new Applier(sink, state, dlq, {
    pipeline: name, conflictFor: policy.conflictFor, resolverFor: policy.resolverFor, retry, log,
    republish: p.peer !== undefined,
    // A mesh: the peer's source (this target) is written by more two-way pipelines than this one.
    relayDecided: p.peer !== undefined && twoWayWritersInto(config, p.peer).length > 1,
    partitionsOf: (topic) => kafka.partitionCount(topic),
    batchSize: batchSizeOf(config, p),
    parkedKeys: async () => (await store.load()).parkedKeys(),
    ...(crypto ? { rowHash: (table: string, row: Row, key: Row) => crypto.rowHash(table, row, key), openField: (table: string, row: Row, key: Row, field: string) => crypto.openRow(table, row, key, [field]), openRow: (table: string, row: Row, key: Row) => crypto.openRowLenient(table, row, key), sealRow: (table: string, row: Row, key: Row) => crypto.sealRow(table, row, key), decrypts: crypto.decrypt } : {}),
    ...(history ? { history } : {}),
  });
  if (metrics) applier.observer = applyObserver(metrics, name);
  // Tables a reload adds (p.tables holds them already): their conflict policy, and their history when
  // the pipeline keeps one (a pipeline that kept none at start starts keeping it at its next start).
  const addTables = async (tables: TableConfig[]) => {
    await policy.addTables(tables);
    if (history) await history.addTables(pipelineRetention(p), sink, keyColumnsOf);
  };
  return { sink, state, dlq, applier, history, conflictFor: policy.conflictFor, addTables };
}
