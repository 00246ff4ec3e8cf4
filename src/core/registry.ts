/**
 * Connector registry. Each connector folder under connectors/ registers itself here with its
 * config spec (a zod schema that carries descriptions, defaults, examples and secret flags) and a
 * factory. The config loader builds the `source` / `target` schemas from what is registered, and the
 * docs generator documents the same specs, so a new connector touches only its own folder.
 */
import type { z } from 'zod';
import type { Logger } from 'pino';
import type { Sink } from '../sink/sink.js';
import type { Source, SourceMonitor } from '../capture/source.js';
import type { Dependency } from './dependencies.js';
import type { ResourcesFactory } from './resources.js';
import type { InitSource, InitTarget } from './init-plan.js';
import type { VerifySide } from '../verify/side.js';
import type { DoctorContext, DoctorItem, Finding, SourceDoctorReport, TargetDemand } from '../observe/findings.js';

export interface ConnectorContext {
  pipeline: string;
  log: Logger;
  /**
   * Two-way sync: tag every write with this origin (PostgreSQL: replication origins named
   * `<origin>:<n>`), so the peer pipeline's capture can skip it, and republish()'s writes with
   * `republishOrigin(origin, over)` (`<origin>/republish:<n>` for rows kept over a delete,
   * `<origin>/republish-update:<n>` over an update), so the peer's capture marks them as decided.
   */
  origin?: string;
}

export interface SinkRegistration<S extends z.ZodObject = z.ZodObject> {
  type: string;
  description: string;
  spec: S;
  create(config: z.infer<S>, ctx: ConnectorContext): Sink;
  /** What the sink created for a pipeline in its target system (`syncline pipeline drop`); optional. */
  resources?: ResourcesFactory<z.infer<S>>;
  /** The target as findings and messages name it (`user@host:port/database`). */
  where?(config: z.infer<S>): string;
  /**
   * `syncline doctor`'s checks of the targets of this type that answered their ping, all at once
   * (one connection per server): the tables with `demands`' keys and columns, the rights syncline
   * writes with, what two-way sync needs. Each failure with the exact fix. Optional.
   */
  doctor?(items: (DoctorItem<z.infer<S>> & { demands: TargetDemand[] })[], ctx: DoctorContext): Promise<Finding[]>;
  /** `syncline init --target URL`: the URL schemes it takes and the config block it writes (src/core/init-plan.ts). Optional. */
  init?: InitTarget;
  /**
   * The conflict strategies this target can apply (absent: all). A target that cannot read its rows
   * back (a message broker) lists only 'source-wins'; a pipeline or table with another strategy is
   * refused at config load, at the field that sets it (src/core/config/schema.ts).
   */
  conflictStrategies?: readonly string[];
  /**
   * The target cannot keep a column's current value: every upsert must carry the whole row. Capture
   * then fills the values a change left out (PostgreSQL's unchanged TOASTed values) before producing
   * it (src/capture/toast-fill.ts); what cannot be filled stays listed in the record's `keep`.
   */
  wholeRows?: boolean;
  /** `syncline verify`: range digests and canonical rows of the target's tables, in its own SQL (src/verify/side.ts). Optional. */
  verify?(config: z.infer<S>, pipeline: string): VerifySide;
}

export interface SourceRegistration<S extends z.ZodObject = z.ZodObject> {
  type: string;
  description: string;
  spec: S;
  /** The pipeline's source, not connected yet (src/capture/source.ts). */
  create(config: z.infer<S>, ctx: ConnectorContext): Source;
  /** Its Source implements position() (the source's end now): the pipeline may use modes scheduled and manual (src/sync/). */
  positions?: boolean;
  /** The id of the pipeline's stream: its record's key in `<prefix>.capture.offsets` (PostgreSQL: the slot name). */
  streamId(config: z.infer<S>, pipeline: string): string;
  /** The system the source reads, for the start's waits (src/supervise.ts) and /health. */
  dependency?(config: z.infer<S>, pipeline: string): Dependency;
  /**
   * What a pipeline's source must own alone, from its raw config (before defaults): two pipelines
   * with the same `what` and `id` are refused at load, at `field`'s line (PostgreSQL: the slot, as
   * PostgreSQL names it, and the publication). `note` says how `id` differs from what was written.
   */
  exclusive?(raw: Record<string, unknown>): { field: string; what: string; id: string; note?: string }[];
  /** Readiness and stream lag for /ready, `syncline status` and the metrics (its own connection, opened on first use). */
  monitor(config: z.infer<S>, timeoutMs: number, pipeline: string): SourceMonitor;
  /** What the source created for a pipeline in its system (`syncline pipeline drop`); optional. */
  resources?: ResourcesFactory<z.infer<S>>;
  /** The source as findings and messages name it (`user@host:port/database`). */
  where?(config: z.infer<S>): string;
  /**
   * `syncline doctor`'s checks of the sources of this type that answered their ping, all at once
   * (server-wide settings once per server): settings, rights, tables, keys; each failure with the
   * exact fix. Returns the tables as found, for the targets' checks. Optional.
   */
  doctor?(items: DoctorItem<z.infer<S>>[], ctx: DoctorContext): Promise<SourceDoctorReport>;
  /** `syncline init --source URL`: the URL schemes it takes, the tables it proposes, its config block (src/core/init-plan.ts). Optional. */
  init?: InitSource;
  /** `syncline verify`: range digests and canonical rows of the source's tables, in its own SQL (src/verify/side.ts). Optional. */
  verify?(config: z.infer<S>, pipeline: string): VerifySide;
}

const sinks = new Map<string, SinkRegistration>();
const sources = new Map<string, SourceRegistration>();

export function registerSink<S extends z.ZodObject>(reg: SinkRegistration<S>): void {
  if (sinks.has(reg.type)) throw new Error(`sink connector '${reg.type}' registered twice`);
  sinks.set(reg.type, reg as unknown as SinkRegistration);
}

export function registerSource<S extends z.ZodObject>(reg: SourceRegistration<S>): void {
  if (sources.has(reg.type)) throw new Error(`source connector '${reg.type}' registered twice`);
  sources.set(reg.type, reg as unknown as SourceRegistration);
}

export function sinkRegistration(type: string): SinkRegistration {
  const reg = sinks.get(type);
  if (!reg) throw new Error(`no sink connector '${type}' (known: ${[...sinks.keys()].join(', ')})`);
  return reg;
}

export function sourceRegistration(type: string): SourceRegistration {
  const reg = sources.get(type);
  if (!reg) throw new Error(`no source connector '${type}' (known: ${[...sources.keys()].join(', ')})`);
  return reg;
}

export const registeredSinks = (): SinkRegistration[] => [...sinks.values()];
export const registeredSources = (): SourceRegistration[] => [...sources.values()];

/** The source connector whose `init` takes URLs of this scheme ('postgres:'), if any. */
export function sourceForScheme(scheme: string): SourceRegistration | undefined {
  return [...sources.values()].find((r) => r.init?.schemes.includes(scheme));
}

/** The sink connector whose `init` takes URLs of this scheme, if any. */
export function sinkForScheme(scheme: string): SinkRegistration | undefined {
  return [...sinks.values()].find((r) => r.init?.schemes.includes(scheme));
}

/** Every scheme `syncline init` takes, for messages. */
export function initSchemes(side: 'source' | 'target'): string[] {
  return [...(side === 'source' ? sources : sinks).values()].flatMap((r) => r.init?.schemes ?? []);
}
