/**
 * The processor's view of its pipeline's schema changes (src/capture/schema-changes.ts): for a
 * change message of a table, whether it may be applied, must wait for an operator, or was rejected.
 *
 * Rule (pure, verdictOf): a message's breaking change is the table's latest breaking change at or
 * below the message's position (safe changes never hold anything). pending → hold (the consumer
 * stage pauses the table's topic at that message, src/process/processor.ts); rejected → dead-letter
 * it (SCHEMA_CHANGE_REJECTED); approved, or none → apply.
 *
 * Owned by the Runtime, one per processor stage; it tails the change log for as long as the stage
 * runs (a decision reaches it within a fetch), and sync() reads the log to its end when the stage
 * meets a schema id it has not seen (capture records a change before it produces under the change's
 * schemas, so the change is known before its first message is judged). On a crash nothing is
 * lost: the held messages were never committed, and the log is read again from its start.
 */
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { KafkaClient } from '../core/kafka.js';
import { SchemaChangeLog, type SchemaChange } from '../capture/schema-changes.js';
import { describeChanges } from '../capture/schema-diff.js';

export type Verdict = { action: 'apply' } | { action: 'hold' | 'reject'; change: SchemaChange };

/** The verdict for a message of `topic` at `position`, given the pipeline's changes. */
export function verdictOf(changes: readonly SchemaChange[], topic: string, position: string): Verdict {
  let last: SchemaChange | undefined;
  for (const c of changes) {
    if (!c.breaking || c.topic !== topic || c.at > position) continue;
    if (!last || c.at > last.at) last = c;
  }
  if (!last || last.status === 'approved' || last.status === 'applied') return { action: 'apply' };
  return { action: last.status === 'pending' ? 'hold' : 'reject', change: last };
}

const gauges = new WeakMap<Registry, Gauge<'pipeline' | 'table'>>();
function pendingGauge(registry: Registry): Gauge<'pipeline' | 'table'> {
  let g = gauges.get(registry);
  if (!g) {
    g = new Gauge({ name: 'syncline_schema_changes_pending', help: 'Breaking schema changes waiting for an operator (syncline schema pending): 1 while a table of the pipeline has one (its apply is held from the change on), 0 once decided.', labelNames: ['pipeline', 'table'], registers: [registry] });
    gauges.set(registry, g);
  }
  return g;
}

export class SchemaGuard {
  private readonly log: SchemaChangeLog;
  private changes: SchemaChange[] = [];
  private readonly listeners: (() => void)[] = [];
  private readonly gauge?: Gauge<'pipeline' | 'table'>;
  private readonly shown = new Set<string>();

  constructor(private readonly o: { pipeline: string; changePrefix: string; kafka: KafkaClient; registry?: Registry; logger: Logger }) {
    this.log = new SchemaChangeLog(o.kafka, o.changePrefix);
    if (o.registry) this.gauge = pendingGauge(o.registry);
    this.log.onUpdate(() => this.refresh());
  }

  async start(): Promise<void> {
    await this.log.start();
    await this.log.sync();
    this.refresh();
  }

  /** Read the change log to its end (a schema id the stage has not seen). */
  async sync(): Promise<void> {
    await this.log.sync();
    this.refresh();
  }

  verdict(topic: string, position: string): Verdict {
    return verdictOf(this.changes, topic, position);
  }

  /** Called whenever the log brought something new (a decision: held topics may be released). */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Logged once per change when the stage first holds a table for it. */
  held(change: SchemaChange): void {
    if (this.shown.has(change.id)) return;
    this.shown.add(change.id);
    this.o.logger.warn({ table: change.table, change: change.id, at: change.at, changes: describeChanges(change.changes), registry: change.registry },
      `schema.held: ${change.table}: breaking schema change ${change.id} (${describeChanges(change.changes)}); its changes wait in Kafka, other tables flow on. Decide: syncline schema approve ${change.id} | syncline schema reject ${change.id}`);
  }

  private refresh(): void {
    this.changes = this.log.list({ pipeline: this.o.pipeline });
    if (this.gauge) {
      const pending = new Map<string, number>();
      for (const c of this.changes) if (c.breaking) pending.set(c.table, Math.max(pending.get(c.table) ?? 0, c.status === 'pending' ? 1 : 0));
      for (const [table, v] of pending) this.gauge.set({ pipeline: this.o.pipeline, table }, v);
    }
    for (const f of this.listeners) f();
  }

  async stop(): Promise<void> {
    await this.log.stop();
  }
}
