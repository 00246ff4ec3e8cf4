/**
 * The runtime's hook for sync modes (src/runtime.ts keeps only calls into this): which pipelines
 * are bounded (scheduled, manual), their controllers and parts, the windows of realtime ones, the
 * record of runs and its HTTP API.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { PipelineConfig } from '../core/config/schema.js';
import type { KafkaClient } from '../core/kafka.js';
import type { ConsumerStage } from '../process/processor.js';
import type { Applier } from '../sink/applier.js';
import { syncApi } from './api.js';
import type { BoundedParts } from './bounded.js';
import { SyncController, SyncMetrics } from './controller.js';
import { WindowGate } from './gate.js';
import { RunStore } from './runs.js';

type Partial<T> = { -readonly [K in keyof T]?: T[K] };

export class SyncModes {
  readonly controllers = new Map<string, SyncController>();
  readonly gates = new Map<string, WindowGate>();
  readonly store: RunStore;
  private readonly building = new Map<string, Partial<BoundedParts>>();
  /** The clock of schedules and windows (tests set it before Runtime.start()). */
  now: () => Date = () => new Date();

  constructor(private readonly kafka: KafkaClient, prefix: string, private readonly log: Logger) {
    this.store = new RunStore(kafka, prefix);
  }

  bounded(p: PipelineConfig): boolean {
    return p.mode !== 'realtime';
  }

  /** The parts of a bounded pipeline being assembled by the runtime. */
  parts(name: string): Partial<BoundedParts> {
    let b = this.building.get(name);
    if (!b) this.building.set(name, (b = {}));
    return b;
  }

  /** A realtime pipeline's consumer stage, paused from the start when its windows are closed now. */
  gated(name: string, stage: ConsumerStage): ConsumerStage {
    const g = this.gates.get(name);
    if (g && !g.isOpen) stage.pause();
    return stage;
  }

  async startBounded(name: string, p: PipelineConfig, o: { stages: Set<string>; applier?: Applier; groupId: string; topicsByTable: Map<string, string>; registry: Registry; log: Logger }): Promise<void> {
    const b = this.parts(name);
    if (!(o.stages.has('capture') && o.stages.has('process') && o.stages.has('sink')) || !o.applier || !b.capture || !b.consumer) {
      o.log.warn({ mode: p.mode }, 'sync.bounded.not-here: a scheduled or manual pipeline runs only in a process with capture, process and sink (syncline start); nothing of it runs here');
      return;
    }
    const parts: BoundedParts = { pipeline: name, capture: b.capture, consumer: b.consumer, applier: o.applier, groupId: o.groupId, topicsByTable: o.topicsByTable, kafka: this.kafka, log: o.log };
    const c = new SyncController({ pipeline: name, config: p, parts, store: this.store, metrics: SyncMetrics.of(o.registry), log: o.log, now: () => this.now() });
    this.controllers.set(name, c);
    await c.start();
  }

  startWindows(name: string, p: PipelineConfig, o: { stage: () => ConsumerStage | undefined; registry: Registry; log: Logger; consumes: boolean }): void {
    if (!p.windows || !o.consumes) return;
    const g = new WindowGate({ pipeline: name, windows: p.windows, timezone: p.timezone, stage: o.stage, registry: o.registry, log: o.log, now: () => this.now() });
    this.gates.set(name, g);
    g.start();
  }

  api(pipelines: () => string[]) {
    return syncApi(() => this.controllers, () => this.store, pipelines);
  }

  async stop(): Promise<void> {
    for (const g of this.gates.values()) g.stop();
    await Promise.allSettled([...this.controllers.values()].map((c) => c.stop()));
  }
}
