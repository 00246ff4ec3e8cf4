/**
 * Observability of one Runtime: its Metrics, its HealthState, its DependencyChecks and, when the
 * config has an enabled `observability` section, the HTTP server serving them.
 *
 * Owner: the Runtime creates it in its constructor, calls listen() first in start(), tells it about
 * each pipeline it started (pipelineStarted: consumer groups for lag, the source for slot lag and
 * the source check, the target for the target check), and close() last in stop().
 * What it holds open: the HTTP server and one small PostgreSQL connection per captured source
 * (opened at the first check or scrape). It buffers nothing of the data path.
 */
import type { RedisClient } from '../core/redis.js';
import type { Logger } from 'pino';
import { changeTopicPrefix, targetTablesOf, type PipelineConfig, type SynclineConfig } from '../core/config/schema.js';
import { topicMappings } from '../process/processor.js';
import { groups, topics, type KafkaClient } from '../core/kafka.js';
import type { Sink } from '../sink/sink.js';
import { dependencyProbes, DependencyChecks, watchRedis, type ReadyReport } from './checks.js';
import type { SourceMonitor } from '../capture/source.js';
import { sourceRegistration } from '../core/registry.js';
import { HealthState, type HealthReport } from './health.js';
import { ObservabilityServer } from './http.js';
import { Metrics, type WatchedPipeline } from './metrics.js';
import { AlertEngine } from './alerts/engine.js';
import type { ApiAccess } from '../security/access/access.js';
import type { ConsoleSources } from '../console/console.js';

export interface ObservabilityOptions {
  config: SynclineConfig;
  kafka: KafkaClient;
  /** The Redis client, when this process runs a sink (it is then a dependency). */
  redis?: RedisClient;
  /** The stages this process runs, in display order. */
  stages: string[];
  pipelines: () => readonly WatchedPipeline[];
  log: Logger;
  /** Further HTTP routes (the dead-letter API). */
  api?: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => Promise<boolean>;
  /** Access control of every route (config `api`); missing: auth none. */
  access?: ApiAccess;
  /** What the web console (/console) needs beyond the metrics and health this class has. */
  console?: Omit<ConsoleSources, 'metrics' | 'health' | 'alerts'>;
}

/** /ready's answer: the dependency checks, and not ready while the process is starting or stopping. */
export interface ReadyAnswer extends ReadyReport {
  phase: HealthState['phase'];
}

export class Observability {
  readonly metrics: Metrics;
  readonly health = new HealthState();
  private readonly timeoutMs: number;
  private readonly sources: { pipeline: string; monitor: SourceMonitor }[] = [];
  private readonly targets: { pipeline: string; sink: Sink }[] = [];
  private readonly redis?: ReturnType<typeof watchRedis>;
  private checks?: DependencyChecks;
  private checksStale = true;
  private server?: ObservabilityServer;
  /** The alert engine, when the config has an `alerts` section with rules (see ./alerts/engine.ts). */
  alerts?: AlertEngine;

  constructor(private readonly o: ObservabilityOptions) {
    this.timeoutMs = o.config.observability?.checkTimeoutMs ?? 3000;
    if (o.redis) this.redis = watchRedis(o.redis);
    this.metrics = new Metrics({
      pipelines: o.pipelines,
      kafka: o.kafka,
      log: o.log,
      queryTimeoutMs: this.timeoutMs,
      dependencies: async () => (await this.checkDependencies()).checks,
    });
    this.metrics.stageStates = () => this.health.taskStates();
    this.metrics.deadLettered = (pipeline, stage, err, shown) => this.health.deadLettered(pipeline, stage, err, shown);
    const alerts = o.config.alerts;
    if (alerts && alerts.rules.length > 0) {
      this.alerts = new AlertEngine({ config: alerts, retry: o.config.defaults.retry, registry: this.metrics.registry, log: o.log, lastError: (pipeline) => lastErrorOf(this.health.report(), pipeline) });
    }
  }

  /** Start evaluating the alert rules (the Runtime calls it once its pipelines started). */
  startAlerts(): void {
    this.alerts?.start();
  }

  /** Stop evaluating alert rules (first thing of a shutdown, so stopping stages do not alert). */
  async stopAlerts(): Promise<void> {
    await this.alerts?.stop();
  }

  /** The bound port of the HTTP server, when it runs. */
  get port(): number | undefined {
    return this.server?.port;
  }

  /** Start the HTTP server if the config asks for it. */
  async listen(): Promise<void> {
    const cfg = this.o.config.observability;
    if (!cfg || !cfg.enabled || this.server) return;
    const server = new ObservabilityServer({
      metrics: () => this.metrics.render(),
      metricsContentType: this.metrics.contentType,
      health: () => this.health.report(),
      ready: () => this.ready(),
      alerts: () => ({ alerts: this.alerts?.active() ?? [] }),
      api: this.o.api,
      access: this.o.access,
      ...(this.o.console ? { console: { ...this.o.console, metrics: () => this.metrics.render(), health: () => this.health.report(), alerts: () => (this.alerts ? { rules: this.o.config.alerts?.rules.length ?? 0, alerts: this.alerts.active() } : undefined) } } : {}),
    }, this.o.log);
    await server.start(cfg.port, cfg.host, cfg.tls);
    this.server = server;
  }

  /** Register what a started pipeline depends on and what to watch. */
  pipelineStarted(name: string, p: PipelineConfig, parts: { capture: boolean; consumer?: 'process' | 'sink'; sink?: Sink }): void {
    const prefix = this.o.config.topicPrefix;
    this.health.pipeline(name, parts.capture ? this.o.stages : this.o.stages.filter((s) => s !== 'capture'));
    if (parts.consumer === 'process') {
      const cdc = [...topicMappings(changeTopicPrefix(this.o.config, p), p.tables).keys()];
      this.metrics.watchConsumer({ pipeline: name, stage: 'process', groupId: groups.processor(prefix, name), topics: cdc });
    } else if (parts.consumer === 'sink') {
      this.metrics.watchConsumer({ pipeline: name, stage: 'sink', groupId: groups.sink(prefix, name), topics: [topics.apply(prefix, name)] });
    }
    if (parts.capture) {
      const source = p.source as { type: string };
      const monitor = sourceRegistration(source.type).monitor(source, this.timeoutMs, name);
      this.sources.push({ pipeline: name, monitor });
      this.metrics.watchSource({ pipeline: name, monitor });
    }
    if (parts.sink) this.targets.push({ pipeline: name, sink: parts.sink });
    const conflict = p.conflict ?? this.o.config.defaults.conflict;
    const sinkTables = parts.sink ? p.tables.flatMap((t) => targetTablesOf(t).map((table) => ({ table, strategy: (t.conflict ?? conflict).strategy }))) : undefined;
    this.metrics.initSeries(name, parts.capture, parts.consumer, sinkTables);
    this.checksStale = true; // rebuilt with the new dependencies (results are kept per name)
  }

  /** A pipeline stopped to be started again with a reloaded config (src/reload.ts): what pipelineStarted added is let go. */
  async pipelineStopped(name: string): Promise<void> {
    const gone = this.sources.filter((s) => s.pipeline === name);
    for (const list of [this.sources, this.targets] as { pipeline: string }[][]) {
      for (let i = list.length - 1; i >= 0; i--) if (list[i]!.pipeline === name) list.splice(i, 1);
    }
    this.metrics.unwatch(name);
    await Promise.allSettled(gone.map((s) => s.monitor.close()));
    this.checksStale = true;
  }

  /** Check every dependency now. */
  async ready(): Promise<ReadyAnswer> {
    const r = await this.checkDependencies();
    const phase = this.health.phase;
    return { ready: r.ready && phase === 'running', phase, checks: r.checks };
  }

  /**
   * Check every dependency now; while the process stops, the last results (its clients are being
   * closed: a probe would find a closed pool and say the dependency went down).
   */
  private checkDependencies(): Promise<ReadyReport> {
    const phase = this.health.phase;
    if (phase === 'stopping' || phase === 'stopped') return Promise.resolve(this.dependencyChecks().last());
    return this.dependencyChecks().run();
  }

  private dependencyChecks(): DependencyChecks {
    if (!this.checks || this.checksStale) {
      const probes = dependencyProbes({
        kafka: this.o.kafka,
        registry: this.o.config.schemaRegistry,
        redis: this.redis,
        sources: this.sources,
        targets: this.targets,
      });
      this.checks = new DependencyChecks(probes, this.timeoutMs, this.o.log, this.checks, () => this.health.phase === 'stopping' || this.health.phase === 'stopped');
      this.checksStale = false;
    }
    return this.checks;
  }

  async close(): Promise<void> {
    await this.stopAlerts();
    await this.server?.close();
    this.server = undefined;
    await Promise.allSettled(this.sources.map((s) => s.monitor.close()));
  }
}

/**
 * A pipeline's last error as reports and alert texts quote it (`{{ $lastError }}`): its newest stage
 * failure, else its newest dead letter, as `CODE: reason` (masked); '' when none.
 */
export function lastErrorOf(health: HealthReport, pipeline: string | undefined): string {
  const p = health.pipelines.find((x) => x.name === pipeline);
  const f = p?.failed?.at(-1) ?? p?.lastDeadLetter;
  return f ? `${f.code}: ${f.error}` : '';
}
