/**
 * What a connector created for a pipeline in its own system (PostgreSQL: the replication slot, the
 * publication, the replication origins of two-way writes), for `syncline pipeline drop`: listed
 * first (also by a dry run), then dropped. The framework lists and drops what it owns itself
 * (Kafka topics and consumer groups, registry subjects, Redis keys; src/cli/pipeline-drop.ts).
 *
 * A connector says of each thing it finds whether it is the pipeline's alone (dropped), shared or
 * not the pipeline's (`keep`, with the reason: another pipeline of the config uses it too, or it
 * holds more than this pipeline put there), or in use by a running process (`inUse`: the drop is
 * refused while anything is in use). Listing changes nothing; drop() is idempotent (what is already
 * gone is skipped), so a drop interrupted half way is finished by running it again.
 */

export interface PipelineResource {
  /** What it is, e.g. 'replication slot'. */
  kind: string;
  name: string;
  /** Where it lives, without credentials, e.g. 'postgres 127.0.0.1:5432/shop'. */
  where: string;
  /** More about it for the listing, e.g. 'retains 12 MB of WAL'. */
  detail?: string;
  /** Set when it is not dropped: why (shared with another pipeline, not created by this one). */
  keep?: string;
  /** Set when a running process uses it: what uses it. */
  inUse?: string;
}

/** The other pipelines of the config, with the side of them (source or target) a connector sees. */
export interface OtherPipeline {
  name: string;
  /** That pipeline's `source` (for a source connector) or `target` (for a sink connector) config. */
  config: unknown;
}

export interface ResourceContext {
  pipeline: string;
  topicPrefix: string;
  /** Source tables of the pipeline ('schema.table'). */
  tables: string[];
  /** Replication-origin prefix of the pipeline's writes (two-way sync), as ConnectorContext.origin. */
  origin: string;
  others: OtherPipeline[];
}

export interface ConnectorResources {
  list(): Promise<PipelineResource[]>;
  /** Drop the given resources (those list() returned without keep or inUse). */
  drop(resources: PipelineResource[]): Promise<void>;
  close(): Promise<void>;
}

/** A connector's hook: what it created for a pipeline, from the pipeline's source or target config. */
export type ResourcesFactory<C> = (config: C, ctx: ResourceContext) => ConnectorResources;
