/**
 * Wires the stages of the configured pipelines into one process: `syncline start` runs capture and
 * processor+sink of every enabled pipeline; `syncline capture|process` run one stage. Owns the
 * shared clients (Kafka, registry, Redis) and the clean shutdown on SIGTERM: capture produces and
 * acknowledges what it buffered, processors finish their in-flight batch and commit, then clients close.
 *
 * Dependencies that are not ready yet are waited for (src/supervise.ts): the start steps (Redis,
 * each target, the apply topic) are tried until they succeed, and each stage task is started again
 * after a retriable error, until the start deadline (config startTimeoutMs) for a start; a fatal
 * error, or a start deadline passed, stops every stage (`done` rejects).
 */
import { encryptionAudit, pipelineCrypto } from './security/crypto/pipeline.js';
import { installMasking } from './security/masking/text.js';
import './core/kafkajs-patch.js'; // first: before anything loads kafkajs
import type { Logger } from 'pino';
import '../connectors/index.js';
import { Capture } from './capture/capture.js';
import { changeTopicPrefix, followersOf, twoWayWritersInto, type PipelineConfig, type RetryConfig, type SynclineConfig, type TableConfig } from './core/config/schema.js';
import { AvroCodec } from './core/codec.js';
import { groups, KafkaClient, topics } from './core/kafka.js';
import { rootLogger, stageLogger } from './core/log.js';
import { sinkRegistration, sourceRegistration } from './core/registry.js';
import { SchemaGuard } from './process/schema-guard.js';
import { ConsumerStage, cdcDecoder, topicMappings, type BatchOrigin, type Output } from './process/processor.js';
import type { TableMapping } from './process/mapper.js';
import { ApplyTopicWriter, applyTopicDecoder } from './sink/apply-topic.js';
import { classifyRedisError, fatal, redisRefusal } from './core/errors.js';
import { DependencyWaits, type Dependency, type DependencyAddresses } from './core/dependencies.js';
import { checkRedisMode, createRedis, isCluster, redisWhere, type RedisClient } from './core/redis.js';
import { startTimeoutOf } from './core/config/schema.js';
import { currentVersion, hasTransforms, recordVersion } from './process/transform/versions.js';
import { superviseStage, untilReady, type StageTask, type WaitContext } from './supervise.js';
import { Applier, type ApplyOptions } from './sink/applier.js';
import { batchSizeOf, buildSinkParts, originOf, republishOriginOf, resolveRetry } from './sink/build.js';
import { DECIDED_KINDS } from './core/envelope.js';
import { DlqService } from './dlq/service.js';
import { dlqApi } from './dlq/api.js';
import { backfillApi } from './capture/backfill-api.js';
import { VerifyService } from './verify/service.js';
import { schemaApi } from './capture/schema-api.js';
import { historyApi } from './history/api.js';
import { rollbackApi, type RollbackPipeline } from './history/rollback-api.js';
import { attachHistoryMetrics, historyStoreOf, HistoryPruner, openStore, retentionOf } from './history/recorder.js';
import { SchemaAdmin } from './capture/schema-admin.js';
import { validateRules, type PipelineValidator } from './process/validation/index.js';
import type { Sink } from './sink/sink.js';
import type { Source } from './capture/source.js';
import { Observability } from './observe/observability.js';
import { applyObserver, ObservedDeadLetters, observeDecoder, observeOutput, TimedSink, TimedVersionState } from './observe/instrument.js';
import { Reporter } from './observe/report.js';
import { planReload, ReloadRefused } from './reload.js';
import { errorMessage, HttpError } from './core/errors.js';
import { parseTableName } from './core/names.js';
import { SyncModes } from './sync/modes.js';
import { pauseApi, type PauseState } from './sync/pause.js';
import { ReplayJobs } from './replay/api.js';
import { auditApi } from './security/audit/api.js';
import { audit, recordDenied } from './security/audit/recorder.js';
import { ApiAccess, type Denial } from './security/access/access.js';
import { configDigest } from './core/config/load.js';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** capture: PostgreSQL → Kafka; process: change topics → decode/map/hash; sink: version state, conflicts, target writes. */
export type Stage = 'capture' | 'process' | 'sink';

export interface PipelineHandle {
  name: string;
  capture?: Capture;
  /** The consumer stage: processor (with or without its sink) or the standalone sink writer. */
  processor?: ConsumerStage;
  applier?: Applier;
  /** The pipeline's compiled validation rules and their counters (processor stage, tables with `validate`). */
  validation?: PipelineValidator;
  sink?: Sink;
  /** Change topic → table mapping the processor decodes with (grows when a reload adds tables). */
  byTopic?: Map<string, TableMapping>;
  /** The target's conflict settings take tables a reload added (src/sink/build.ts). */
  addSinkTables?: (tables: TableConfig[]) => Promise<void>;
}

export class Runtime {
  readonly kafka: KafkaClient;
  readonly codec: AvroCodec;
  readonly redis: RedisClient;
  readonly pipelines: PipelineHandle[] = [];
  private readonly running: Promise<void>[] = [];
  /** Stage tasks that failed: ended, though their promise settles only after the stop they started. */
  private readonly ended = new Set<Promise<void>>();
  private stopping = false;
  private validators = new Map<string, PipelineValidator>();
  private readonly writers: ApplyTopicWriter[] = [];
  private readonly log: Logger = rootLogger.child({ stage: 'runtime' });
  /** Metrics, health, readiness and their HTTP endpoints (src/observe). */
  readonly observe: Observability;
  /** Dead-letter operations behind /api/dlq (created on first use). */
  private dlq?: DlqService;
  /** Replays started through the API or the console (src/replay/api.ts; processes with the sink stage). */
  replays?: ReplayJobs;
  /** Scheduled and API verifications of the pipelines whose capture runs here (src/verify/service.ts). */
  verifier?: VerifyService;
  /** Report files (config `reports`, src/observe/report.ts), written every reports.everyMs and at stop. */
  readonly reporter?: Reporter;
  /** What this process waits for now (said once per dependency and outage). */
  readonly waits = new DependencyWaits(this.log);
  /** The start deadline (startTimeoutMs, or SYNCLINE_START_TIMEOUT_MS). */
  readonly startTimeoutMs: number;
  private readonly createdAt = Date.now();
  private readonly addresses: DependencyAddresses;
  private readonly redisDep: Dependency;
  /** The Redis client's last connection error (its commands fail with less: "max retries per request"). */
  private redisError?: Error;
  /** Stages (pipeline/stage) that have run; when all launched ones did, the start is done. */
  private readonly stagesUp = new Set<string>();
  private launched = false;
  /** Wakes the waits between attempts when the runtime stops. */
  private wake?: () => void;
  private readonly stopped = new Promise<void>((r) => (this.wake = r));
  /** Reads the config file again (set by the CLI): what SIGHUP and POST /api/reload apply (reload()). */
  reloadSource?: () => SynclineConfig;
  /** Called for every request the HTTP API refuses (401/403): the audit trail records them. */
  accessDenied?: (d: Denial) => void;
  private reloading: Promise<unknown> = Promise.resolve();
  /** Sync modes (src/sync/): runs of scheduled/manual pipelines, windows of realtime ones. */
  readonly sync: SyncModes;
  /** Stops the change history's pruning (set at start when a sink keeps history). */
  private historyPruning?: () => Promise<void>;
  /** The config this process runs: its file and SHA-256 (src/core/config/load.ts configDigest; recorded as config.loaded at start, at every applied reload and with each bounded run). */
  private digest: { path: string; sha256: string };
  /** Who may call the HTTP API; a reload gives it new tokens. */
  private readonly access: ApiAccess;
  /** This runtime holds the process's audit trail (config `audit`, src/security/audit). */
  private readonly auditing: boolean;

  constructor(readonly config: SynclineConfig, private readonly stages: Set<Stage>, private readonly only?: string[]) {
    this.startTimeoutMs = startTimeoutOf(config);
    // The masking policy of every text people see (logs, dead-letter headers, /health, reports, alerts).
    installMasking(config);
    this.digest = configDigest(config);
    // First: what follows (start, stop, reloads, API actions) is recorded; a bad signing key stops the start here.
    this.auditing = audit.configure(config.audit, rootLogger.child({ stage: 'audit' }));
    this.waits.hold(); // until every stage runs (see stageRunning)
    this.addresses = { kafka: config.kafka.brokers, registry: config.schemaRegistry.url, redis: config.redis.url, redisName: redisWhere(config.redis) };
    this.kafka = new KafkaClient(config.kafka, rootLogger.child({ stage: 'kafka' }), this.waits);
    this.codec = new AvroCodec(config.schemaRegistry);
    this.redis = createRedis(config.redis, { maxRetriesPerRequest: 3, enableOfflineQueue: true });
    this.redisDep = { kind: 'redis', key: 'redis', name: redisWhere(config.redis) };
    // ioredis reconnects by itself and reports every failed attempt: once per outage in the log.
    this.redis.on('error', (err: Error) => {
      this.redisError = err;
      const e = classifyRedisError(err, redisWhere(config.redis));
      // Refused credentials, a certificate that does not verify: fatal (connectRedis stops the start with it), not waited for.
      if (redisRefusal(err) || e.kind === 'fatal') this.log.warn({ err: e.message }, 'redis.error');
      else this.waits.waiting(this.redisDep, e, 'the Redis client');
    });
    this.redis.on('ready', () => this.waits.ready(this.redisDep));
    // A cluster reports a node's failure (a refused password, a node down) as 'node error', its own (no slots) as 'error'.
    if (isCluster(this.redis)) this.redis.on('node error', (err: Error) => (this.redisError = err));
    this.sync = new SyncModes(this.kafka, config.topicPrefix, this.log);
    const dlqService = () => this.dlqService();
    const dlqRoutes = stages.has('sink') ? dlqApi(dlqService) : undefined;
    // Replays through the API and the console (the same service as `syncline replay`), where the sink stage runs.
    const replays = stages.has('sink') ? (this.replays = new ReplayJobs(() => ({ config: this.config, kafka: this.kafka, codec: this.codec, redis: this.redis, log: rootLogger.child({ stage: 'replay' }) }))) : undefined;
    const backfillerOf = (name: string) => this.pipelines.find((x) => x.name === name)?.capture?.backfiller;
    this.sync.configDigest = () => this.digest;
    const syncRoutes = this.sync.api(() => Object.keys(config.pipelines));
    // Who may call the HTTP API (config `api`); denials go to accessDenied (the audit trail's hook).
    const access = (this.access = new ApiAccess(config.api, { log: rootLogger.child({ stage: 'api' }), onDenied: (d) => {
      recordDenied(d);
      this.accessDenied?.(d);
    } }));
    this.observe = new Observability({
      config, kafka: this.kafka, redis: stages.has('sink') ? this.redis : undefined, log: rootLogger.child({ stage: 'observe' }),
      stages: (['capture', 'process', 'sink'] as const).filter((s) => stages.has(s)), pipelines: () => this.pipelines,
      // The dead-letter API needs what the sink stage has (Redis, targets); backfills, the capture.
      access,
      api: anyApi([
        syncRoutes,
        dlqRoutes,
        stages.has('capture') ? backfillApi((name) => ({ known: this.pipelines.some((x) => x.name === name), backfiller: backfillerOf(name), follows: this.config.pipelines[name]?.follows })) : undefined,
        // Schema changes: read and decided in Kafka (the processor holding a table reads the decision there).
        schemaApi(() => new SchemaAdmin(this.kafka, this.config)),
        // Change history of a key (read from the history store; any stage may serve it).
        historyApi(() => this.config),
        // Rollback (admin): in the process that runs the pipeline's sink, through its Applier.
        stages.has('sink') ? rollbackApi({ config: () => this.config, pipeline: (name) => this.rollbackPipeline(name) }) : undefined,
        (req, res) => (this.verifier ? this.verifier.api()(req, res) : Promise.resolve(false)),
        (req, res) => this.reloadApi(req, res),
        replays?.api(),
        // The audit trail's entries (read from its database, as `syncline audit list`).
        auditApi(() => this.config),
        // Pause/resume a realtime pipeline's consumption (src/sync/pause.ts).
        pauseApi({ pause: (n, by) => this.pausePipeline(n, by), resume: (n, by) => this.resumePipeline(n, by) }),
      ]),
      // The web console (src/console): the same services the API routes above call.
      console: {
        config: () => this.config,
        sync: () => this.sync.report(this.selected()),
        controllers: () => this.sync.controllers,
        pauses: { pause: (n, by) => this.pausePipeline(n, by), resume: (n, by) => this.resumePipeline(n, by), state: (n) => this.pauseState(n) },
        ...(stages.has('capture') ? { backfiller: backfillerOf } : {}),
        ...(stages.has('sink') ? { dlq: dlqService } : {}),
        ...(replays ? { replays } : {}),
        ...(stages.has('sink') ? { rollback: (name: string) => this.rollbackPipeline(name) } : {}),
        verify: (name) => this.verifier?.get(name),
      },
    });
    if (stages.has('capture')) this.verifier = new VerifyService({ config, pipelines: () => this.selected().map(([n]) => n), kafka: this.kafka, redis: this.redis, gauge: this.metrics.verifyMismatches, log: rootLogger.child({ stage: 'verify' }) });
    if (this.auditing) audit.auditor?.attachMetrics(this.metrics.registry);
    if (historyStoreOf(config)) attachHistoryMetrics(this.metrics.registry);
    if (config.reports?.enabled) this.reporter = new Reporter(config.reports, { metrics: () => this.metrics.render(), health: () => this.observe.health.report(), extra: () => ({ sync: this.sync.report(this.selected()) }) }, rootLogger.child({ stage: 'reports' }));
  }

  /** What a rollback of `name` needs here (src/history/rollback-api.ts); undefined when its sink does not run in this process. */
  private rollbackPipeline(name: string): RollbackPipeline | undefined {
    const h = this.pipelines.find((x) => x.name === name);
    const p = this.config.pipelines[name];
    if (!h?.applier || !h.sink || !p) return undefined;
    const sink = h.sink;
    return {
      applier: h.applier,
      readRows: (table, keys) => sink.readRows(table, keys),
      ...(this.sync.bounded(p) ? {} : {
        // The pipeline's pause (POST …/pause: kept across stage restarts and sync windows), then the
        // batches its consumer stage had fetched finish before the rollback reads and writes.
        hold: async (by) => {
          this.pausePipeline(name, by ?? 'rollback');
          await h.processor?.settled();
          this.log.warn({ pipeline: name }, 'pipeline.paused by rollback --pause: changes wait in Kafka until POST /api/pipelines/:name/resume (syncline pipeline resume)');
        },
      }),
    };
  }

  /** The config file (or `(in memory)`) this process runs now and its SHA-256. */
  get configFile(): { path: string; sha256: string } {
    return this.digest;
  }

  get metrics() {
    return this.observe.metrics;
  }

  /** Port of the /metrics, /health, /ready server (config `observability`), once started. */
  get httpPort(): number | undefined {
    return this.observe.port;
  }

  /**
   * Pause a realtime pipeline's processing in this process: its consumer stage stops fetching (the
   * batch in flight finishes and commits; nothing is lost, the changes wait in Kafka), and stays
   * paused across stage restarts and sync windows until resumePipeline. Audited (pipeline.pause).
   * HttpError 404: no such pipeline here; 409: a bounded pipeline, or no consumer stage here.
   * Reusable by other callers (e.g. a rollback that must hold the sink while it writes).
   */
  pausePipeline(name: string, by: string): PauseState {
    this.pausable(name);
    return this.sync.pauses.pause(name, by, this.pipelines.find((x) => x.name === name)?.processor);
  }

  /** Undo pausePipeline (a closed sync window still keeps the stage paused until it opens). Audited (pipeline.resume). */
  resumePipeline(name: string, by: string): PauseState {
    this.pausable(name);
    const g = this.sync.gates.get(name);
    return this.sync.pauses.resume(name, by, this.pipelines.find((x) => x.name === name)?.processor, g ? !g.isOpen : false);
  }

  pauseState(name: string): PauseState | undefined {
    const p = this.config.pipelines[name];
    if (!p || this.sync.bounded(p) || !this.selected().some(([n]) => n === name) || !(this.stages.has('process') || this.stages.has('sink'))) return undefined;
    return this.sync.pauses.state(name);
  }

  private pausable(name: string): void {
    const p = this.config.pipelines[name];
    if (!p || !this.selected().some(([n]) => n === name)) throw new HttpError(404, `no pipeline '${name}' runs in this process (have: ${this.selected().map(([n]) => n).join(', ')})`);
    if (this.sync.bounded(p)) throw new HttpError(409, `pipeline ${name} is ${p.mode}: nothing of it runs between its runs, so there is nothing to pause`);
    if (!(this.stages.has('process') || this.stages.has('sink'))) throw new HttpError(409, `this process does not consume pipeline ${name} (stages: ${[...this.stages].join(', ')}): pause it on the process running its process or sink stage`);
  }

  selected(): [string, PipelineConfig][] {
    const all = Object.entries(this.config.pipelines);
    if (this.only && this.only.length > 0) {
      for (const n of this.only) if (!this.config.pipelines[n]) throw new Error(`no pipeline '${n}' in the config (have: ${all.map(([k]) => k).join(', ')})`);
      return all.filter(([n]) => this.only!.includes(n));
    }
    return all.filter(([, p]) => p.enabled);
  }

  private dlqService(): DlqService {
    return (this.dlq ??= new DlqService({ config: this.config, kafka: this.kafka, codec: this.codec, redis: this.redis, log: rootLogger.child({ stage: 'dlq' }) }));
  }

  /** Start every selected pipeline; returns a promise that settles when all stop (rejects on a fatal error). */
  async start(): Promise<{ done: Promise<void> }> {
    const file = this.digest;
    audit.record({ action: 'process.start', object: `process:${process.pid}`, details: { stages: [...this.stages], pipelines: this.selected().map(([n]) => n), pid: process.pid, configSha256: file.sha256 } });
    audit.record({ action: 'config.loaded', object: `config:${file.path}`, details: { file: file.path, sha256: file.sha256, at: 'start', stages: [...this.stages], encryption: encryptionAudit(this.config) ?? null } });
    await this.observe.listen();
    // Change history retention: the sink stage prunes on a schedule (history.pruneEveryMs).
    const hs = historyStoreOf(this.config);
    if (hs && this.stages.has('sink') && retentionOf(this.config).size > 0) {
      const { store, release } = openStore(hs.url, hs.schema);
      const pruner = new HistoryPruner(store, () => retentionOf(this.config), this.log.child({ stage: 'history' }));
      pruner.start(hs.pruneEveryMs);
      this.historyPruning = async () => {
        pruner.stop();
        await release();
      };
    }
    // Validation rules compile (and custom functions load) before anything connects: a rule that
    // cannot compile stops the start with FILE:LINE:COL.
    if (this.stages.has('process')) this.validators = await validateRules(this.config, undefined, this.selected().map(([n]) => n), this.log);
    if (this.stages.has('sink')) await untilReady(this.waitContext(), this.redisDep.name, () => this.connectRedis());
    for (const [name, p] of this.selected()) this.pipelines.push(await this.startPipeline(name, p));
    this.launched = true;
    // The console's dead-letter index: the topics are read now, in the background, not by the first
    // page that needs them (ADR 0037); after the pipelines started (Kafka reached, its admin client
    // made). A failure is logged; the first request then reads again.
    if (this.stages.has('sink') && this.config.observability?.enabled && !this.stopping) void this.dlqService().warm();
    this.stageRunning();
    if (!this.stopping) this.observe.health.phase = 'running';
    if (!this.stopping) this.observe.startAlerts();
    if (!this.stopping) this.reporter?.start();
    if (!this.stopping) this.verifier?.start();
    return { done: this.allDone() };
  }

  /** Every stage task ends, also those a reload started later. */
  private async allDone(): Promise<void> {
    for (let seen = -1; seen !== this.running.length;) {
      seen = this.running.length;
      await Promise.all(this.running);
    }
  }

  /**
   * Apply a config (src/reload.ts): tables added to a pipeline restart that pipeline's stages in
   * this process with the new tables (capture backfills them); anything else is refused (throws
   * ReloadRefused) and nothing changes. One reload at a time.
   */
  reload(next: SynclineConfig, actor?: string): Promise<{ pipelines: { pipeline: string; added: string[] }[]; tokens?: { added: string[]; removed: string[]; changed: string[] } }> {
    const file = configDigest(next);
    const object = `config:${file.path}`;
    const run = this.reloading.then(async () => {
      let plan;
      try {
        plan = planReload(this.config, next);
      } catch (err) {
        audit.record({ actor, action: 'config.reload', object, details: { outcome: 'refused', sha256: file.sha256, running: this.digest.sha256, code: (err as { code?: string }).code ?? null } });
        throw err;
      }
      // Tokens first: a revoked token is refused from the next request on, whatever else the reload does.
      if (plan.tokens) {
        this.access.setTokens(plan.tokens.next);
        if (this.config.api) this.config.api.tokens = plan.tokens.next;
        this.log.info({ added: plan.tokens.added, removed: plan.tokens.removed, changed: plan.tokens.changed }, 'runtime.reload: API tokens replaced');
      }
      const mine = plan.changes.filter((c) => this.pipelines.some((h) => h.name === c.pipeline));
      for (const c of mine) {
        if (this.stopping) break;
        const h = this.pipelines.find((x) => x.name === c.pipeline)!;
        if (this.liveAdd(h, c.added)) {
          await this.addTablesLive(h, c.added);
          continue;
        }
        // Held in `running` while the pipeline restarts: the process does not end in between.
        let release!: () => void;
        this.running.push(new Promise<void>((r) => (release = r)));
        try {
          this.log.info({ pipeline: c.pipeline, added: c.added.map((t) => t.source) }, 'runtime.reload: restarting the pipeline with its added tables');
          const i = this.pipelines.indexOf(h);
          await h.capture?.stop();
          await h.processor?.stop();
          await h.sink?.close();
          await this.observe.pipelineStopped(c.pipeline);
          this.config.pipelines[c.pipeline] = c.next;
          installMasking(this.config);
          if (this.stages.has('process')) for (const [n, v] of await validateRules(this.config, undefined, [c.pipeline], this.log)) this.validators.set(n, v);
          this.pipelines[i] = await this.startPipeline(c.pipeline, c.next);
        } finally {
          release();
        }
      }
      const tokens = plan.tokens ? { added: plan.tokens.added, removed: plan.tokens.removed, changed: plan.tokens.changed } : undefined;
      const r = { pipelines: mine.map((c) => ({ pipeline: c.pipeline, added: c.added.map((t) => t.source) })), ...(tokens ? { tokens } : {}) };
      this.digest = file;
      audit.record({ actor, action: 'config.reload', object, details: { outcome: 'ok', sha256: file.sha256, pipelines: r.pipelines, tokens: tokens ?? null } });
      audit.record({ actor, action: 'config.loaded', object, details: { file: file.path, sha256: file.sha256, at: 'reload', encryption: encryptionAudit(this.config) ?? null } });
      return r;
    });
    this.reloading = run.catch(() => undefined);
    return run;
  }

  /** The config file read again for a reload (reloadSource); a file the loader refuses is a refused reload, recorded in the audit trail. */
  readConfigForReload(actor?: string): SynclineConfig {
    try {
      return this.reloadSource!();
    } catch (err) {
      const file = this.digest;
      let sha256: string | null = null;
      try {
        sha256 = createHash('sha256').update(readFileSync(file.path)).digest('hex');
      } catch {
        sha256 = null; // unreadable: the loader's error says why
      }
      audit.record({ actor, action: 'config.reload', object: `config:${file.path}`, details: { outcome: 'refused', sha256, running: file.sha256, code: (err as { code?: string }).code ?? null } });
      throw err;
    }
  }

  /**
   * Whether a reload's tables can join the running stages: the capture (if this process runs it)
   * streams and its source takes tables while streaming, and no added table has validation rules or
   * encrypted columns (the processor's compiled rules and the pipeline's crypto are made at its start).
   */
  private liveAdd(h: PipelineHandle, added: TableConfig[]): boolean {
    if (added.some((t) => t.validate !== undefined)) return false;
    // Encrypted columns: the pipeline's crypto (capture, processor, sink) is made at its start from its tables.
    if (added.some((t) => (t.encrypt?.length ?? 0) > 0)) return false;
    if (this.stages.has('capture') && !h.capture?.addsTablesWhileRunning) return false;
    if (this.stages.has('process') && (!h.processor || !h.byTopic)) return false;
    return true;
  }

  /**
   * Tables added by a reload join the running stages (no stage stops): the pipeline's config takes
   * them (a later restart of a stage by its supervisor makes it with them), the target's conflict
   * settings know them, the capture adds them to its source and backfills them while it streams, and
   * the processor's consumer takes their topics (one rejoin of its group, ConsumerStage.addTopics).
   */
  private async addTablesLive(h: PipelineHandle, added: TableConfig[]): Promise<void> {
    const p = this.config.pipelines[h.name]!;
    this.log.info({ pipeline: h.name, added: added.map((t) => t.source) }, 'runtime.reload: adding the tables to the running pipeline (no restart)');
    p.tables = [...p.tables, ...added];
    await h.addSinkTables?.(added);
    const fresh = h.byTopic ? topicMappings(changeTopicPrefix(this.config, p), added, pipelineCrypto(this.config, h.name)) : new Map<string, TableMapping>();
    for (const [t, m] of fresh) h.byTopic!.set(t, m);
    await h.capture?.addTables(added);
    await h.processor?.addTopics([...fresh.keys()]);
  }

  /** POST /api/reload: reads the config file again (reloadSource) and applies it; 422 with the loader's or the reload's refusal. */
  private async reloadApi(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): Promise<boolean> {
    if ((req.url ?? '').split('?')[0] !== '/api/reload') return false;
    const send = (status: number, v: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(v));
    };
    if (req.method !== 'POST') return (send(405, { error: 'use POST /api/reload' }), true);
    if (!this.reloadSource) return (send(404, { error: 'this process has no config file to reload' }), true);
    try {
      const r = await this.reload(this.readConfigForReload());
      send(200, { reloaded: true, ...r });
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'runtime.reload.refused: the running config stays');
      send(err instanceof ReloadRefused || (err as { code?: string }).code !== undefined ? 422 : 500, { reloaded: false, error: errorMessage(err) });
    }
    return true;
  }

  /** How waits for dependencies are made (src/supervise.ts), with a pipeline's retry policy. */
  private waitContext(retry: RetryConfig = this.config.defaults.retry): WaitContext {
    return {
      waits: this.waits, addresses: this.addresses, startTimeoutMs: this.startTimeoutMs, deadline: this.createdAt + this.startTimeoutMs, retry,
      stopping: () => this.stopping,
      pause: (ms) => Promise.race([new Promise<void>((r) => setTimeout(r, ms).unref?.()), this.stopped]),
    };
  }

  /**
   * Connect Redis, or wait until the client's reconnection made it (ioredis reconnects by itself
   * after a first failed connect). A refused password or user is left unclassified: the CLI reports
   * it as fatal, with the reply ioredis gave in its error event.
   */
  private async connectRedis(): Promise<void> {
    this.redisError = undefined;
    try {
      if (this.redis.status === 'wait') await this.redis.connect();
      else await this.redis.ping();
    } catch (err) {
      const cause = this.redisError ?? err;
      if (redisRefusal(cause) || redisRefusal(err)) throw err;
      throw classifyRedisError(cause, `cannot connect to ${redisWhere(this.config.redis)}`);
    }
    await checkRedisMode(this.redis, this.config.redis);
  }

  private async startPipeline(name: string, p: PipelineConfig): Promise<PipelineHandle> {
    const prefix = this.config.topicPrefix;
    const h: PipelineHandle = { name };
    // A follower (ADR 0039) has no capture: in a process that runs only capture, nothing of it runs here.
    if (p.follows && !this.stages.has('process') && !this.stages.has('sink')) {
      this.log.info({ pipeline: name, follows: p.follows }, `pipeline.follows ${p.follows}: no capture of its own, nothing of it runs in a capture-only process`);
      return h;
    }
    // Realtime windows: the stage that writes the target applies only inside them (src/sync/gate.ts).
    if (!this.sync.bounded(p)) this.sync.startWindows(name, p, { stage: () => h.processor, registry: this.metrics.registry, log: stageLogger(name, 'sync'), consumes: this.stages.has('sink') });
    const waits = this.waitContext(resolveRetry(name, this.config.defaults.retry, p.retry));
    // Log lines carry the stage that wrote them: the consumer stage (process, or a standalone sink), and sink for the writer.
    const log = stageLogger(name, this.stages.has('process') ? 'process' : 'sink');
    const sinkLog = stageLogger(name, 'sink');
    const dlq = new ObservedDeadLetters(this.kafka, prefix, name, log).observe(this.metrics, this.stages.has('process') ? 'process' : 'sink');
    // The version of the pipeline's transforms (process/transform/versions.ts): recorded below, and on every dead letter.
    const transformsVersion = hasTransforms(p) ? currentVersion(name, p) : undefined;
    dlq.transformsVersion = transformsVersion?.hash;
    if (this.stages.has('sink')) {
      const connect = (fn: () => Promise<void>) => untilReady(waits, `pipeline ${name} target`, fn);
      const parts = await buildSinkParts({ config: this.config, kafka: this.kafka, redis: this.redis, metrics: this.metrics, connect }, name, p, sinkLog);
      parts.dlq.transformsVersion = transformsVersion?.hash;
      h.sink = parts.sink;
      h.applier = parts.applier;
      h.addSinkTables = parts.addTables;
    }
    const applyTopic = topics.apply(prefix, name);
    if (this.stages.has('process')) {
      h.validation = this.validators.get(name);
      const byTopic = (h.byTopic = topicMappings(changeTopicPrefix(this.config, p), p.tables, pipelineCrypto(this.config, name)));
      // Custom transform modules are loaded once, now (each in its worker): one that cannot load stops the start.
      await Promise.all([...byTopic.values()].map((m) => m.transform?.ready()));
      // This version of the transforms, kept for a replay with --transforms-as-of (process/transform/versions.ts).
      const v = transformsVersion;
      if (v) {
        await untilReady(waits, `pipeline ${name} transforms version`, () => recordVersion(this.kafka, prefix, v));
        log.info({ pipeline: name, transforms: v.hash }, `transforms.version ${v.hash} (syncline replay --transforms-as-of ${v.hash} runs these)`);
      }
      let output: Output;
      const applier = h.applier;
      if (applier) output = { apply: (batch, origin) => applier.apply(batch, consumerOf(origin)), stale: (probes) => applier.stale(probes) };
      else {
        // Split deployment: the apply topic is written in a Kafka transaction together with the
        // processor's offsets, so a crash never leaves a second copy of a batch in it.
        const writer = new ApplyTopicWriter(this.kafka, applyTopic, { transactionalId: `${groups.processor(prefix, name)}.${process.env.SYNCLINE_INSTANCE_ID ?? '0'}` });
        await untilReady(waits, `pipeline ${name} apply topic ${applyTopic}`, () => writer.ensure());
        this.writers.push(writer);
        output = writer;
      }
      const decode = observeDecoder(cdcDecoder(this.codec, byTopic, h.validation), this.metrics, name, 'process', (t) => byTopic.get(t)?.target);
      const observed = observeOutput(output, this.metrics, name, 'process');
      const makeProcessor = (topicList: string[], onRunning: () => void) => new ConsumerStage({
        groupId: groups.processor(prefix, name), topics: topicList, kafka: this.kafka,
        decode, output: observed, dlq, log, validation: h.validation, sessionTimeoutMs: this.config.kafka.sessionTimeoutMs,
        // Into the Applier: a fetch in parts of the target's batch size (what it writes at once anyway).
        chunk: applier ? batchSizeOf(this.config, p) : undefined, onRunning,
        onRebalance: () => this.metrics.rebalances.inc({ pipeline: name, stage: 'process' }),
        onRetry: (err) => this.metrics.batchRetried(name, 'process', err),
        // Breaking schema changes hold their table's apply until an operator decides (src/process/schema-guard.ts).
        schema: new SchemaGuard({ pipeline: name, changePrefix: changeTopicPrefix(this.config, p), kafka: this.kafka, registry: this.metrics.registry, logger: log }),
      });
      if (this.sync.bounded(p)) this.sync.parts(name).consumer = makeProcessor;
      else this.running.push(this.supervise(name, 'process', waits, (onRunning) => (h.processor = this.sync.gated(name, makeProcessor([...byTopic.keys()], onRunning)))));
    } else if (h.applier) {
      const applier = h.applier;
      const observed = observeOutput({ apply: (batch, origin) => applier.apply(batch, consumerOf(origin)) }, this.metrics, name, 'sink');
      this.running.push(this.supervise(name, 'sink', waits, (onRunning) => (h.processor = this.sync.gated(name, new ConsumerStage({
        groupId: groups.sink(prefix, name), topics: [applyTopic], kafka: this.kafka,
        decode: applyTopicDecoder, output: observed, dlq, log, sessionTimeoutMs: this.config.kafka.sessionTimeoutMs,
        chunk: batchSizeOf(this.config, p), onRunning,
        onRebalance: () => this.metrics.rebalances.inc({ pipeline: name, stage: 'sink' }),
        onRetry: (err) => this.metrics.batchRetried(name, 'sink', err),
      })))));
    }
    // A pipeline that follows another (ADR 0039) has no capture: the followed pipeline's capture writes its change topics.
    if (this.stages.has('capture') && p.follows) log.info({ pipeline: name, follows: p.follows }, `pipeline.follows ${p.follows}: no capture of its own (the changes come from ${p.follows}'s change topics)`);
    if (this.stages.has('capture') && !p.follows) {
      const sourceConfig = p.source as { type: string };
      const reg = sourceRegistration(sourceConfig.type);
      const dep = reg.dependency?.(sourceConfig, name);
      const captureWaits = dep ? { ...waits, addresses: { ...waits.addresses, source: dep } } : waits;
      const log = stageLogger(name, 'capture');
      const makeCapture = (onRunning: () => void, source: Source) => new Capture({
        pipeline: name, prefix, changePrefix: changeTopicPrefix(this.config, p), source, tables: p.tables,
        kafka: this.kafka, codec: this.codec, log,
        // Two-way and multi-way sync: what the peer (and, in a mesh, every pipeline writing into our
        // source) wrote is not a change to carry on; their re-published decisions are.
        skipOrigins: twoWayWritersInto(this.config, name).map((w) => originOf(prefix, w) + ':'),
        decidedOrigins: twoWayWritersInto(this.config, name).flatMap((w) => DECIDED_KINDS.map((over) => ({ prefix: republishOriginOf(prefix, w, over) + ':', over }))),
        // latest-timestamp's column is checked at start; a two-way peer that creates tables in our source is waited for.
        conflict: p.conflict ?? this.config.defaults.conflict,
        awaitTablesFrom: p.peer && (this.config.pipelines[p.peer]?.target as { autoCreate?: boolean } | undefined)?.autoCreate === true ? p.peer : undefined,
        // Whole rows (unchanged TOAST values filled in) when this target or any follower's needs them: they share the change topics.
        wholeRows: [p, ...followersOf(this.config, name)].some((x) => sinkRegistration((x.target as { type: string }).type).wholeRows === true),
        crypto: pipelineCrypto(this.config, name),
        onRunning,
        // Standby capture (ADR 0034): shown in /health (healthy, standing by) and syncline_capture_leader.
        onStandby: (holder) => {
          this.metrics.captureLeader.set({ pipeline: name }, 0);
          this.observe.health.taskStandby(name, 'capture', holder);
        },
        onLeader: (leading) => {
          this.metrics.captureLeader.set({ pipeline: name }, leading ? 1 : 0);
          this.observe.health.taskStandby(name, 'capture', null);
        },
      });
      if (this.sync.bounded(p)) {
        this.sync.parts(name).capture = (onRunning) => {
          const source = reg.create(sourceConfig, { pipeline: name, log });
          return { capture: (h.capture = makeCapture(onRunning, source)), source };
        };
      } else this.running.push(this.supervise(name, 'capture', captureWaits, (onRunning) => (h.capture = makeCapture(onRunning, reg.create(sourceConfig, { pipeline: name, log })))));
    }
    if (this.sync.bounded(p)) {
      // Nothing of a bounded pipeline runs between its runs: its controller starts them.
      await this.sync.startBounded(name, p, { stages: this.stages, applier: h.applier, groupId: groups.processor(prefix, name), topicsByTable: tableTopics(changeTopicPrefix(this.config, p), p.tables), registry: this.metrics.registry, log: stageLogger(name, 'sync') });
      this.running.push(this.stopped);
      this.stagesUp.add(`${name}/sync`);
      this.observe.health.taskStarted(name, 'sync'); // the controller (its runs are recorded, not stage tasks)
    }
    this.observe.pipelineStarted(name, p, { capture: this.stages.has('capture') && !p.follows, consumer: this.stages.has('process') ? 'process' : h.applier ? 'sink' : undefined, sink: h.sink });
    return h;
  }

  /**
   * A stage task run under the supervisor (src/supervise.ts): started again after a retriable
   * error (a new task object each time, so the handle's `capture`/`processor` is the current one),
   * its waits shown in /health; what ends it for good goes to guard().
   */
  private supervise(pipeline: string, stage: string, ctx: WaitContext, make: (onRunning: () => void) => StageTask): Promise<void> {
    const health = this.observe.health;
    const run = superviseStage(ctx, `pipeline ${pipeline} ${stage}`, (onRunning) => make(() => {
      onRunning();
      this.stageRunning(`${pipeline}/${stage}`);
    }), {
      starting: () => health.taskStarted(pipeline, stage),
      waiting: (err) => {
        health.taskWaiting(pipeline, stage, err);
        this.metrics.error(pipeline, stage, err);
      },
    });
    return this.guard(pipeline, stage, run);
  }

  /** A stage runs; once every launched stage ran, the start is done (the waits' ends are said). */
  private stageRunning(stage?: string): void {
    if (stage) this.stagesUp.add(stage);
    if (this.launched && this.stagesUp.size >= this.running.length) this.waits.release();
  }

  private guard(pipeline: string, stage: string, p: Promise<void>): Promise<void> {
    this.observe.health.taskStarted(pipeline, stage);
    const task: Promise<void> = p.then(() => this.observe.health.taskEnded(pipeline, stage), async (err: unknown) => {
      this.observe.health.taskEnded(pipeline, stage, this.stopping ? undefined : err);
      if (this.stopping) return;
      this.metrics.error(pipeline, stage, err);
      this.log.error({ pipeline, stage, err: (err as Error).message, code: (err as { code?: string }).code }, 'stage.failed');
      // This task has ended: the stop below must not wait for it (it settles only after the stop).
      this.ended.add(task);
      await this.stop();
      throw err;
    });
    return task;
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.wake?.();
    this.observe.health.phase = 'stopping';
    await this.observe.stopAlerts(); // first: stopping stages must not raise alerts
    this.verifier?.stop();
    this.log.info('runtime.stopping');
    audit.record({ action: 'process.stop', object: `process:${process.pid}`, details: { pid: process.pid, uptimeS: Math.round((Date.now() - this.createdAt) / 1000) } });
    await this.sync.stop(); // a bounded run going ends as 'stopped' (its stages stop cleanly)
    await Promise.allSettled(this.pipelines.map((h) => h.capture?.stop()));
    await Promise.allSettled(this.pipelines.map((h) => h.processor?.stop()));
    await Promise.allSettled(this.pipelines.flatMap((h) => [...(h.byTopic?.values() ?? [])].map((m) => m.transform?.close())));
    await Promise.allSettled(this.writers.map((w) => w.close()));
    await Promise.allSettled(this.pipelines.map((h) => h.sink?.close()));
    await this.dlq?.close();
    await this.historyPruning?.();
    // The stages' tasks end (health says stopped) once their run loops return, after stop() resolved:
    // the final report waits for them (bounded), else it could still show a stage running.
    const tasks = this.running.filter((p) => p !== this.stopped && !this.ended.has(p));
    await Promise.race([Promise.allSettled(tasks), new Promise<void>((r) => setTimeout(r, 5000).unref?.())]);
    await this.reporter?.stop(); // the final state, while the lag queries still work
    await this.observe.close(); // before the clients its checks and lag queries use
    this.observe.health.phase = 'stopped';
    await this.kafka.close();
    this.redis.disconnect();
    if (this.auditing) await audit.release(); // flushed (bounded), a last checkpoint signed
    this.log.info('runtime.stopped');
  }
}



type Api = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => Promise<boolean>;
/** The /api/… routes of the stages this process runs, tried in turn (undefined: none). */
function anyApi(apis: (Api | undefined)[]): Api | undefined {
  const have = apis.filter((a): a is Api => a !== undefined);
  if (have.length === 0) return undefined;
  return async (req, res) => {
    for (const a of have) if (await a(req, res)) return true;
    return false;
  };
}

/** Change topic of each configured table, by canonical source table name. */
function tableTopics(changePrefix: string, tables: PipelineConfig['tables']): Map<string, string> {
  const out = new Map<string, string>();
  for (const t of tables) {
    const { schema, table } = parseTableName(t.source);
    out.set(t.source, topics.cdc(changePrefix, schema, table));
  }
  return out;
}

/** The Applier's options for a batch of a consumer partition (its write intents are kept per partition). */
// From a consumer stage: it can hold the partition at a truncate waiting for the other partitions (ApplyResult.held).
const consumerOf = (origin?: BatchOrigin): ApplyOptions => (origin ? { consumer: `${origin.topic}:${origin.partition}`, hold: true } : {});

