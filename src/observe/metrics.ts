/**
 * Prometheus metrics of one Runtime. Owner: the Runtime, which creates one Metrics (and so one
 * prom-client Registry: never the global default one, so several runtimes can live in one process,
 * as they do in tests). Metric objects are created once, here.
 *
 * How the numbers get here
 *  - Counters the stages already keep (Capture.stats, Applier.stats, the validator's per-rule
 *    failures) are read at scrape time by collect() callbacks and fed as deltas, so they can share a
 *    metric with direct increments. Their series exist at 0 from the start (see also initSeries).
 *  - Everything that needs a label the stats objects do not have is incremented where it happens,
 *    through the decorators of ./instrument.ts and the Applier's observer hook: dead letters by
 *    kind, errors by class, conflicts by strategy and outcome, latency and round-trip histograms.
 *  - Consumer lag (Kafka admin: topic high watermarks vs the group's committed offsets), the
 *    replication slot lag and retained WAL (a query on the source), and dependency health are
 *    computed at scrape time and cached for `refreshMs` (default 5 s): a scrape never waits longer
 *    than one refresh, and a burst of scrapes costs one round of queries.
 *
 * Cardinality and privacy: label values are only pipeline and stage names, configured table names,
 * topic names and partition numbers, and fixed vocabularies (kind, strategy, outcome, class, rule,
 * dependency). No label ever carries a record's key or a column value.
 *
 * Crash/restart: counters start at zero with the process (Prometheus' rate()/increase() handle the
 * reset); nothing here is persisted.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { CaptureStats } from '../capture/capture.js';
import type { SourceMonitor } from '../capture/source.js';
import type { ApplyStats } from '../sink/applier.js';
import { errorKind, errorMessage } from '../core/errors.js';
import { metadataLagging, type KafkaClient } from '../core/kafka.js';
import { kafkaLogKind } from '../core/dependencies.js';

/** What the collectors read from a running pipeline (a structural view of runtime.ts's PipelineHandle). */
export interface WatchedPipeline {
  name: string;
  capture?: { stats: CaptureStats; backfiller?: { list(): { id: string; table: string; status: string; percent: number; total: number; rows: number }[] } };
  applier?: { stats: ApplyStats };
  /** Validation counters (process/validation): dead-lettered violations by `table.field.rule`. */
  validation?: { stats: { failures: Map<string, number> } };
}

/** A consumer group whose lag is reported per topic and partition. */
export interface WatchedConsumer {
  pipeline: string;
  stage: string;
  groupId: string;
  topics: string[];
}

/** A pipeline source whose stream lag is reported (PostgreSQL: its replication slot). */
export interface WatchedSource {
  pipeline: string;
  monitor: SourceMonitor;
}

/** Error classes of the taxonomy in core/errors.ts, plus 'unknown' for anything else. */
export type ErrorClass = 'retriable' | 'fatal' | 'poison' | 'unknown';

export interface MetricsOptions {
  /** The running pipelines (read at every scrape). */
  pipelines: () => readonly WatchedPipeline[];
  kafka?: KafkaClient;
  log: Logger;
  /** How long scrape-time queries (lag, slot, dependencies) are cached. */
  refreshMs?: number;
  /** Timeout of each scrape-time query. */
  queryTimeoutMs?: number;
  /** Node process metrics (syncline_process_*, syncline_nodejs_*). */
  processMetrics?: boolean;
  /** Dependency checks run at scrape time (see ./checks.ts); feeds syncline_dependency_up. */
  dependencies?: () => Promise<Record<string, { ok: boolean; latencyMs: number | null }>>;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
const ROUND_TRIP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

export const errorClass = (err: unknown): ErrorClass => errorKind(err);

export class Metrics {
  readonly registry = new Registry();

  // Counters: what happened to changes, per pipeline and stage.
  readonly changesRead: Counter<'pipeline' | 'stage'>;
  readonly changesProduced: Counter<'pipeline' | 'stage'>;
  readonly snapshotRows: Counter<'pipeline'>;
  readonly backfillRows: Counter<'pipeline'>;
  readonly backfillChunks: Counter<'pipeline'>;
  readonly backfillDropped: Counter<'pipeline'>;
  readonly toastFills: Counter<'pipeline' | 'via'>;
  readonly backfillRemaining: Gauge<'pipeline' | 'table' | 'backfill'>;
  readonly verifyMismatches: Gauge<'pipeline' | 'table'>;
  readonly transactions: Counter<'pipeline'>;
  readonly changesApplied: Counter<'pipeline' | 'stage'>;
  readonly changesSkipped: Counter<'pipeline' | 'stage' | 'kind'>;
  readonly conflicts: Counter<'pipeline' | 'table' | 'strategy' | 'outcome'>;
  readonly deadLetters: Counter<'pipeline' | 'stage' | 'kind'>;
  readonly validationFailures: Counter<'pipeline' | 'table' | 'field' | 'rule'>;
  readonly errors: Counter<'pipeline' | 'stage' | 'class'>;
  readonly retries: Counter<'pipeline' | 'stage'>;

  // Histograms.
  readonly commitToApply: Histogram<'pipeline' | 'table'>;
  readonly sinkRoundTrip: Histogram<'pipeline' | 'kind' | 'outcome'>;
  readonly redisRoundTrip: Histogram<'pipeline' | 'kind' | 'outcome'>;
  readonly batchRecords: Histogram<'pipeline' | 'stage'>;

  // Gauges.
  readonly inflightRecords: Gauge<'pipeline' | 'stage'>;
  readonly inflightBatches: Gauge<'pipeline' | 'stage'>;
  /** Joins of a stage's consumer group by this process's member: each is a rebalance of the group. */
  readonly rebalances: Counter<'pipeline' | 'stage'>;
  readonly consumerLag: Gauge<'pipeline' | 'stage' | 'topic' | 'partition'>;
  readonly slotLag: Gauge<'pipeline'>;
  readonly slotRetained: Gauge<'pipeline'>;
  readonly slotActive: Gauge<'pipeline'>;
  readonly sourceLagSeconds: Gauge<'pipeline'>;
  readonly stageUp: Gauge<'pipeline' | 'stage'>;
  /** Standby capture (ADR 0034): 1 while this process's capture holds the pipeline's capture lock, 0 while it stands by or stopped. */
  readonly captureLeader: Gauge<'pipeline'>;
  readonly dependencyUp: Gauge<'dependency'>;
  readonly dependencyLatency: Gauge<'dependency'>;

  private readonly consumers: WatchedConsumer[] = [];
  private readonly slots: WatchedSource[] = [];
  private readonly seen = new Map<string, number>();
  private readonly refreshMs: number;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  /** Stage states for syncline_stage_up, kept by the Runtime (see ./health.ts). */
  stageStates: () => { pipeline: string; stage: string; up: boolean }[] = () => [];

  constructor(private readonly opts: MetricsOptions) {
    this.log = opts.log;
    this.refreshMs = opts.refreshMs ?? 5000;
    this.timeoutMs = opts.queryTimeoutMs ?? 3000;
    const registers = [this.registry];
    const sync = () => this.syncStats();

    this.changesRead = new Counter({
      name: 'syncline_changes_read_total',
      help: 'Changes read by a stage: capture = snapshot rows and streamed changes read from the source; process = messages read from the change topics; sink = records handed to the sink writer.',
      labelNames: ['pipeline', 'stage'], registers, collect: sync,
    });
    this.changesProduced = new Counter({
      name: 'syncline_changes_produced_total',
      help: 'Change messages produced to Kafka and acknowledged by all in-sync replicas.',
      labelNames: ['pipeline', 'stage'], registers, collect: sync,
    });
    this.snapshotRows = new Counter({
      name: 'syncline_snapshot_rows_total',
      help: 'Rows read by the initial snapshot (also counted in syncline_changes_read_total{stage="capture"}).',
      labelNames: ['pipeline'], registers, collect: sync,
    });
    this.backfillRows = new Counter({
      name: 'syncline_backfill_rows_total',
      help: 'Rows produced by backfills (src/capture/backfill.ts), as snapshot reads.',
      labelNames: ['pipeline'], registers, collect: sync,
    });
    this.backfillChunks = new Counter({
      name: 'syncline_backfill_chunks_total',
      help: 'Backfill chunks finished (their rows acknowledged by Kafka).',
      labelNames: ['pipeline'], registers, collect: sync,
    });
    this.backfillDropped = new Counter({
      name: 'syncline_backfill_dropped_rows_total',
      help: "Backfill chunk rows not produced because the stream changed their key inside the chunk's watermark window (the streamed change is newer).",
      labelNames: ['pipeline'], registers, collect: sync,
    });
    this.toastFills = new Counter({
      name: 'syncline_capture_toast_fills_total',
      help: 'Whole-row targets: updates that left unchanged TOASTed values out, by how capture filled them: via="cache" (the last value capture saw), "reselect" (re-read at the source), "miss" (not filled: the row is gone or unreadable; src/capture/toast-fill.ts).',
      labelNames: ['pipeline', 'via'], registers, collect: sync,
    });
    this.backfillRemaining = new Gauge({
      name: 'syncline_backfill_remaining_rows',
      help: 'Rows a running or paused backfill has still to read (from the count at its start).',
      labelNames: ['pipeline', 'table', 'backfill'], registers, collect: sync,
    });
    this.verifyMismatches = new Gauge({
      name: 'syncline_verify_mismatches',
      help: 'Differences the last verification of a table found between source and target (missing, extra and different rows, after the re-check; `syncline verify`, the verify schedule, POST /api/pipelines/:name/verify). Set again by every verification of the table; a repair does not clear it, the next verification does.',
      labelNames: ['pipeline', 'table'], registers,
    });
    this.transactions = new Counter({
      name: 'syncline_source_transactions_total',
      help: 'Source transactions streamed by capture.',
      labelNames: ['pipeline'], registers, collect: sync,
    });
    this.changesApplied = new Counter({
      name: 'syncline_changes_applied_total',
      help: 'Changes the target committed (upserts, deletes, truncates).',
      labelNames: ['pipeline', 'stage'], registers, collect: sync,
    });
    this.changesSkipped = new Counter({
      name: 'syncline_changes_skipped_total',
      help: 'Changes not written because the target already holds them: kind="unchanged" (same content hash), kind="stale" (redelivered or older than the stored position), kind="echo" (capture: written by the two-way peer), kind="parked" (waiting behind a conflict of the same key, in the dead-letter topic).',
      labelNames: ['pipeline', 'stage', 'kind'], registers, collect: sync,
    });
    this.conflicts = new Counter({
      name: 'syncline_conflicts_total',
      help: 'Conflicts settled by the conflict strategy, by outcome (target_won: the target row was kept and the change settled without a write; deferred_to_peer: two-way, an update of a row deleted on the target was left out and the peer pipeline, which carries that delete, decides; each is logged with its key as conflict.deferred_to_peer).',
      labelNames: ['pipeline', 'table', 'strategy', 'outcome'], registers,
    });
    this.deadLetters = new Counter({
      name: 'syncline_dead_letters_total',
      help: 'Records written to the dead-letter topic <prefix>.dlq.<pipeline>, by kind (invalid: undecodable or not representable; failed: the target rejected it or stayed unreachable).',
      labelNames: ['pipeline', 'stage', 'kind'], registers, collect: sync,
    });
    this.validationFailures = new Counter({
      name: 'syncline_validation_failures_total',
      help: 'Records refused by the processor and dead-lettered as invalid, by table, field and rule: one per violated rule of the validation rules (a cross-field rule: field lists the columns it reads), rule="decode" (field empty) for a message that cannot be decoded against the registry.',
      labelNames: ['pipeline', 'table', 'field', 'rule'], registers, collect: sync,
    });
    this.errors = new Counter({
      name: 'syncline_errors_total',
      help: 'Errors handled, by class of the error taxonomy (retriable, fatal, poison, unknown): one per failed attempt that was retried, per record dead-lettered, per stage that failed.',
      labelNames: ['pipeline', 'stage', 'class'], registers, collect: sync,
    });
    this.retries = new Counter({
      name: 'syncline_retries_total',
      help: 'Retry attempts after a retriable or unknown error (sink: target writes and conflict reads; capture: Kafka produce; process and sink: a batch fetched again after a Redis or Kafka error).',
      labelNames: ['pipeline', 'stage'], registers, collect: sync,
    });

    this.commitToApply = new Histogram({
      name: 'syncline_commit_to_apply_seconds',
      help: 'Time from the source commit (snapshot start for snapshot rows) to the target commit of the change, per applied change.',
      labelNames: ['pipeline', 'table'], buckets: LATENCY_BUCKETS, registers,
    });
    this.sinkRoundTrip = new Histogram({
      name: 'syncline_sink_round_trip_seconds',
      help: 'Duration of one call to the target: kind="write" (a batch, in one transaction), kind="read" (target rows read for conflict checks); outcome ok or error.',
      labelNames: ['pipeline', 'kind', 'outcome'], buckets: ROUND_TRIP_BUCKETS, registers,
    });
    this.redisRoundTrip = new Histogram({
      name: 'syncline_redis_round_trip_seconds',
      help: 'Duration of one version-state call to Redis: kind="read" (getMany), "commit" (commitMany), "truncate"; outcome ok or error.',
      labelNames: ['pipeline', 'kind', 'outcome'], buckets: ROUND_TRIP_BUCKETS, registers,
    });
    this.batchRecords = new Histogram({
      name: 'syncline_batch_records',
      help: 'Records per batch handed by a consumer stage to its output (sink writer or apply topic).',
      labelNames: ['pipeline', 'stage'], buckets: BATCH_BUCKETS, registers,
    });

    this.inflightRecords = new Gauge({
      name: 'syncline_inflight_records',
      help: 'Records in batches being applied or forwarded right now (consumed, offsets not committed yet).',
      labelNames: ['pipeline', 'stage'], registers,
    });
    this.rebalances = new Counter({
      name: 'syncline_consumer_rebalances_total',
      help: "Rebalances of a stage's consumer group this process took part in (each join of the group: an instance came or went, a topic was added, the stage started); the log line consumer.rebalanced lists the partitions it then consumes.",
      labelNames: ['pipeline', 'stage'], registers,
    });
    this.inflightBatches = new Gauge({
      name: 'syncline_inflight_batches',
      help: 'Batches being applied or forwarded right now (at most one per partition).',
      labelNames: ['pipeline', 'stage'], registers,
    });
    const self = this;
    this.consumerLag = new Gauge({
      name: 'syncline_consumer_lag_messages',
      help: "Messages of a topic partition not yet committed by the stage's consumer group (high watermark minus committed offset). Cached for a few seconds.",
      labelNames: ['pipeline', 'stage', 'topic', 'partition'], registers,
      async collect() {
        await self.refresh('lag', () => self.refreshConsumerLag());
      },
    });
    this.slotLag = new Gauge({
      name: 'syncline_replication_slot_lag_bytes',
      help: "WAL bytes between the source's current position and the slot's confirmed flush position (what capture has not yet handed to Kafka). Cached for a few seconds.",
      labelNames: ['pipeline'], registers,
      async collect() {
        await self.refresh('slots', () => self.refreshSlots());
      },
    });
    this.slotRetained = new Gauge({
      name: 'syncline_replication_slot_retained_wal_bytes',
      help: "WAL bytes the source retains for the slot (current position minus the slot's restart position).",
      labelNames: ['pipeline'], registers,
      async collect() {
        await self.refresh('slots', () => self.refreshSlots());
      },
    });
    this.slotActive = new Gauge({
      name: 'syncline_replication_slot_active',
      help: 'Whether a process is streaming from the replication slot (1) or not (0).',
      labelNames: ['pipeline'], registers,
      async collect() {
        await self.refresh('slots', () => self.refreshSlots());
      },
    });
    this.sourceLagSeconds = new Gauge({
      name: 'syncline_source_lag_seconds',
      help: "Polling sources: seconds since the start of the last pass Kafka holds whole (every change committed before it has been read; src/capture/poll/lag.ts). Served by the process that runs the capture. Log-based sources report syncline_replication_slot_lag_bytes instead.",
      labelNames: ['pipeline'], registers,
      async collect() {
        await self.refresh('slots', () => self.refreshSlots());
      },
    });
    this.captureLeader = new Gauge({
      name: 'syncline_capture_leader',
      help: "Standby capture: whether this process's capture of the pipeline holds the source's capture lock and captures (1), or stands by / is stopped (0). Sources without a capture lock report nothing.",
      labelNames: ['pipeline'], registers,
    });
    this.stageUp = new Gauge({
      name: 'syncline_stage_up',
      help: 'Whether a stage of a pipeline is running (1) or stopped or failed (0).',
      labelNames: ['pipeline', 'stage'], registers,
      collect() {
        self.stageUp.reset();
        for (const s of self.stageStates()) self.stageUp.set({ pipeline: s.pipeline, stage: s.stage }, s.up ? 1 : 0);
      },
    });
    this.dependencyUp = new Gauge({
      name: 'syncline_dependency_up',
      help: 'Whether the last readiness check of a dependency (kafka, registry, redis, source:<pipeline>, target:<pipeline>) succeeded. Cached for a few seconds.',
      labelNames: ['dependency'], registers,
      async collect() {
        await self.refresh('dependencies', () => self.refreshDependencies());
      },
    });
    this.dependencyLatency = new Gauge({
      name: 'syncline_dependency_check_seconds',
      help: 'Duration of the last readiness check of a dependency.',
      labelNames: ['dependency'], registers,
      async collect() {
        await self.refresh('dependencies', () => self.refreshDependencies());
      },
    });
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'syncline_' });
  }

  /** The text exposition of every metric. */
  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  watchConsumer(c: WatchedConsumer): void {
    this.consumers.push(c);
  }

  watchSource(s: WatchedSource): void {
    this.slots.push(s);
  }

  /** A pipeline restarted by a config reload (src/reload.ts): its consumers and source are watched anew. */
  unwatch(pipeline: string): void {
    for (const list of [this.consumers, this.slots] as { pipeline: string }[][]) {
      for (let i = list.length - 1; i >= 0; i--) if (list[i]!.pipeline === pipeline) list.splice(i, 1);
    }
  }

  /**
   * Create the series a pipeline's stages will use at 0, so that increase() and alerts see the
   * first event too (a series that appears at 1 has no increase).
   */
  initSeries(pipeline: string, capture: boolean, consumer: 'process' | 'sink' | undefined, sinkTables: { table: string; strategy: string }[] | undefined): void {
    const stages = [...(capture ? ['capture'] : []), ...(consumer ? [consumer] : []), ...(sinkTables && consumer !== 'sink' ? ['sink'] : [])];
    for (const stage of stages) {
      for (const cls of ['retriable', 'fatal', 'poison', 'unknown'] as const) this.errors.inc({ pipeline, stage, class: cls }, 0);
    }
    if (consumer) this.deadLetters.inc({ pipeline, stage: consumer, kind: 'invalid' }, 0);
    if (consumer === 'process') this.changesRead.inc({ pipeline, stage: 'process' }, 0);
    if (sinkTables) {
      this.deadLetters.inc({ pipeline, stage: 'sink', kind: 'failed' }, 0);
      this.retries.inc({ pipeline, stage: 'sink' }, 0);
      for (const t of sinkTables) if (t.strategy !== 'source-wins') this.conflicts.inc({ pipeline, table: t.table, strategy: t.strategy, outcome: 'target_won' }, 0);
    }
  }

  /** One error of a stage, by class. */
  /** Told of every dead letter counted here, with its reason as shown (masked): the Observability's health keeps the last. */
  deadLettered?: (pipeline: string, stage: string, err: unknown, shown: string) => void;

  error(pipeline: string, stage: string, err: unknown): void {
    this.errors.inc({ pipeline, stage, class: errorClass(err) });
  }

  /** A batch failed with a retriable error and is fetched again (a consumer stage's kafkajs retry). */
  batchRetried(pipeline: string, stage: string, err: unknown): void {
    this.retries.inc({ pipeline, stage });
    this.error(pipeline, stage, err);
  }

  // ------------------------------------------------------------------ collectors

  /** Feed the counters kept in the stages' stats objects, as deltas since the last scrape. */
  private syncStats(): void {
    this.backfillRemaining.reset();
    for (const h of this.opts.pipelines()) {
      for (const b of h.capture?.backfiller?.list() ?? []) {
        if (b.status === 'running' || b.status === 'paused') this.backfillRemaining.set({ pipeline: h.name, table: b.table, backfill: b.id }, Math.max(0, b.total - b.rows));
      }
      const pipeline = h.name;
      const c = h.capture?.stats;
      if (c) {
        this.delta(this.changesRead, { pipeline, stage: 'capture' }, c.changes); // snapshot rows included
        this.delta(this.changesProduced, { pipeline, stage: 'capture' }, c.produced);
        this.delta(this.snapshotRows, { pipeline }, c.snapshotRows);
        this.delta(this.backfillRows, { pipeline }, c.backfill.backfillRows);
        this.delta(this.backfillChunks, { pipeline }, c.backfill.backfillChunks);
        this.delta(this.backfillDropped, { pipeline }, c.backfill.backfillDropped);
        for (const via of ['cache', 'reselect', 'miss'] as const) if (c.toast[via] > 0) this.delta(this.toastFills, { pipeline, via }, c.toast[via]);
        this.delta(this.transactions, { pipeline }, c.transactions);
        // Capture dead-letters changes its schema cannot represent (kind invalid, a poison error).
        this.delta(this.deadLetters, { pipeline, stage: 'capture', kind: 'invalid' }, c.deadLettered);
        this.delta(this.retries, { pipeline, stage: 'capture' }, c.produceRetries);
        if (c.echoSkipped > 0) this.delta(this.changesSkipped, { pipeline, stage: 'capture', kind: 'echo' }, c.echoSkipped);
        this.delta(this.errors, { pipeline, stage: 'capture', class: 'poison' }, c.deadLettered);
      }
      const a = h.applier?.stats;
      if (a) {
        this.delta(this.changesRead, { pipeline, stage: 'sink' }, a.received);
        this.delta(this.changesApplied, { pipeline, stage: 'sink' }, a.applied);
        this.delta(this.changesSkipped, { pipeline, stage: 'sink', kind: 'unchanged' }, a.skippedUnchanged);
        this.delta(this.changesSkipped, { pipeline, stage: 'sink', kind: 'stale' }, a.skippedStale);
        if (a.parkedBehind > 0) this.delta(this.changesSkipped, { pipeline, stage: 'sink', kind: 'parked' }, a.parkedBehind);
      }
      for (const [key, n] of h.validation?.stats.failures ?? []) {
        // key = '<table>.field.rule': field and rule names hold no dots (a field list has commas), so
        // they are the last two parts and the table (canonical, src/core/names.ts: it may hold dots) the rest.
        const parts = key.split('.');
        if (parts.length < 3) continue;
        const rule = parts.pop()!;
        const field = parts.pop()!;
        this.delta(this.validationFailures, { pipeline, table: parts.join('.'), field, rule }, n);
      }
    }
  }

  private delta<T extends string>(counter: Counter<T>, labels: Partial<Record<T, string>>, value: number): void {
    const id = `${(counter as unknown as { name: string }).name}\u0000${JSON.stringify(labels)}`;
    const prev = this.seen.get(id);
    // A series appears at 0 as soon as its source exists, so rate() and alerts see it from the start.
    if (prev === undefined) counter.inc(labels, value);
    else if (value > prev) counter.inc(labels, value - prev);
    this.seen.set(id, value);
  }

  private readonly refreshed = new Map<string, { at: number; running?: Promise<void>; failing: boolean }>();

  /** Run `fn` at most once per refreshMs (concurrent scrapes share one run); failures are logged once per outage. */
  private async refresh(what: string, fn: () => Promise<void>): Promise<void> {
    let st = this.refreshed.get(what);
    if (!st) this.refreshed.set(what, (st = { at: 0, failing: false }));
    if (st.running) return st.running;
    if (Date.now() - st.at < this.refreshMs) return;
    const state = st;
    state.running = (async () => {
      try {
        await fn();
        if (state.failing) this.log.info({ metrics: what }, 'metrics.collect.recovered');
        state.failing = false;
      } catch (err) {
        const kafka = what === 'lag' ? this.opts.kafka : undefined;
        // Topics the stages are still creating (a first start): expected, not an outage. Kafka not
        // ready (a coordinator loading, no connection): said once for Kafka as a whole (DependencyWaits).
        if (metadataLagging(err)) this.log.debug({ metrics: what, err: errorMessage(err) }, 'metrics.collect.skipped: topics not created yet');
        else if (kafka && (kafkaLogKind(errorMessage(err)) === 'unavailable' || /no answer within/.test(errorMessage(err)))) kafka.waits.waiting(kafka.dependency, err, 'the consumer-lag metrics');
        else {
          if (!state.failing) this.log.warn({ metrics: what, err: errorMessage(err) }, 'metrics.collect.failed: series left out until it works again');
          state.failing = true;
        }
      } finally {
        state.at = Date.now();
        state.running = undefined;
      }
    })();
    return state.running;
  }

  private async refreshConsumerLag(): Promise<void> {
    if (this.consumers.length === 0 || !this.opts.kafka) return;
    const kafka = this.opts.kafka;
    try {
      const rows = await withTimeout(this.timeoutMs, 'consumer lag', async () => {
        const out: { labels: Record<'pipeline' | 'stage' | 'topic' | 'partition', string>; lag: number }[] = [];
        const ends = new Map<string, Promise<{ partition: number; high: string; low: string }[]>>();
        const end = (t: string) => {
          let p = ends.get(t);
          if (!p) ends.set(t, (p = kafka.topicOffsets(t)));
          return p;
        };
        await Promise.all(this.consumers.map(async (c) => {
          const committed = await kafka.withAdmin((admin) => admin.fetchOffsets({ groupId: c.groupId, topics: c.topics }));
          for (const t of committed) {
            const high = new Map((await end(t.topic)).map((o) => [o.partition, o]));
            for (const p of t.partitions) {
              const h = high.get(p.partition);
              if (!h) continue;
              const at = Number(p.offset) >= 0 ? Number(p.offset) : Number(h.low);
              out.push({ labels: { pipeline: c.pipeline, stage: c.stage, topic: t.topic, partition: String(p.partition) }, lag: Math.max(0, Number(h.high) - at) });
            }
          }
        }));
        return out;
      });
      this.consumerLag.reset();
      for (const r of rows) this.consumerLag.set(r.labels, r.lag);
    } catch (err) {
      this.consumerLag.reset();
      throw err;
    }
  }

  private async refreshSlots(): Promise<void> {
    if (this.slots.length === 0) return;
    const results = await Promise.allSettled(this.slots.map((s) => withTimeout(this.timeoutMs, `source of pipeline ${s.pipeline}`, async () => ({ s, row: await s.monitor.lag(this.opts.pipelines().find((h) => h.name === s.pipeline)?.capture?.stats.confirmed) }))));
    this.slotLag.reset();
    this.slotRetained.reset();
    this.slotActive.reset();
    this.sourceLagSeconds.reset();
    let failure: unknown;
    for (const r of results) {
      if (r.status === 'rejected') {
        failure ??= r.reason;
        continue;
      }
      const { s, row } = r.value;
      if (!row) continue; // no stream (yet): no series
      if (row.lagBytes != null) this.slotLag.set({ pipeline: s.pipeline }, row.lagBytes);
      if (row.retainedBytes != null) this.slotRetained.set({ pipeline: s.pipeline }, row.retainedBytes);
      this.slotActive.set({ pipeline: s.pipeline }, row.active ? 1 : 0);
      if (row.lagSeconds != null) this.sourceLagSeconds.set({ pipeline: s.pipeline }, row.lagSeconds);
    }
    if (failure) throw failure;
  }

  private async refreshDependencies(): Promise<void> {
    if (!this.opts.dependencies) return;
    const checks = await this.opts.dependencies();
    this.dependencyUp.reset();
    this.dependencyLatency.reset();
    for (const [dependency, c] of Object.entries(checks)) {
      this.dependencyUp.set({ dependency }, c.ok ? 1 : 0);
      if (c.latencyMs != null) this.dependencyLatency.set({ dependency }, c.latencyMs / 1000);
    }
  }
}

/** `fn()`, or a rejection after `ms` (the call itself goes on in the background). */
export async function withTimeout<T>(ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
