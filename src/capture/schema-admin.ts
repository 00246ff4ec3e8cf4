/**
 * The operator's side of schema changes (`syncline schema pending|list|approve|reject`, and
 * GET /api/schema/changes, POST /api/schema/changes/:id/approve|reject): reads and decides the
 * changes recorded in each pipeline's `<changePrefix>.schema.changes` (./schema-changes.ts). The
 * processor that holds a table reads the decision from the same topic and resumes it (approve: the
 * held changes apply with the new schema; reject: they are dead-lettered, SCHEMA_CHANGE_REJECTED).
 * Works against Kafka directly: no running syncline needed.
 */
import { audit } from '../security/audit/recorder.js';
import type { KafkaClient } from '../core/kafka.js';
import { changeTopicPrefix, type SynclineConfig } from '../core/config/schema.js';
import { fatal } from '../core/errors.js';
import { SchemaChangeLog, type SchemaChange, type SchemaChangeStatus } from './schema-changes.js';
import { describeChanges } from './schema-diff.js';

export class SchemaAdmin {
  constructor(private readonly kafka: KafkaClient, private readonly config: Pick<SynclineConfig, 'topicPrefix' | 'pipelines'>) {}

  /** Each change topic prefix of the config and its pipelines. */
  private prefixes(pipeline?: string): Map<string, string[]> {
    if (pipeline !== undefined && !this.config.pipelines[pipeline]) throw fatal('PIPELINE_UNKNOWN', `no pipeline '${pipeline}' in the config (have: ${Object.keys(this.config.pipelines).join(', ')})`);
    const out = new Map<string, string[]>();
    for (const [name, p] of Object.entries(this.config.pipelines)) {
      if (pipeline !== undefined && name !== pipeline) continue;
      const prefix = changeTopicPrefix(this.config, p);
      out.set(prefix, [...(out.get(prefix) ?? []), name]);
    }
    return out;
  }

  private async logs(pipeline?: string): Promise<{ log: SchemaChangeLog; pipelines: string[] }[]> {
    const out: { log: SchemaChangeLog; pipelines: string[] }[] = [];
    for (const [prefix, pipelines] of this.prefixes(pipeline)) out.push({ log: await SchemaChangeLog.readAll(this.kafka, prefix), pipelines });
    return out;
  }

  /** The changes of the config's pipelines (or one), oldest first; `status` filters (pending: what waits for an operator). */
  async list(o: { pipeline?: string; status?: SchemaChangeStatus } = {}): Promise<SchemaChange[]> {
    const all: SchemaChange[] = [];
    for (const { log, pipelines } of await this.logs(o.pipeline)) {
      all.push(...log.list({ status: o.status }).filter((c) => pipelines.includes(c.pipeline)));
    }
    return all.sort((a, b) => a.detectedAt.localeCompare(b.detectedAt));
  }

  async decide(id: string, status: 'approved' | 'rejected', by: string, note?: string, pipeline?: string): Promise<SchemaChange> {
    for (const { log, pipelines } of await this.logs()) {
      const c = log.get(id);
      if (c && pipelines.includes(c.pipeline) && (pipeline === undefined || c.pipeline === pipeline)) {
        const d = await log.decide(id, status, by, note);
        audit.record({ actor: by, action: status === 'approved' ? 'schema.change.approve' : 'schema.change.reject', object: `schema-change:${id}`, details: { pipeline: d.pipeline, table: d.table, fromSchemaId: d.fromSchemaId ?? null, toSchemaId: d.toSchemaId, note } });
        return d;
      }
    }
    throw fatal('SCHEMA_CHANGE_UNKNOWN', `no schema change ${id} in ${pipeline !== undefined ? `pipeline ${pipeline}` : 'the pipelines of this config'} (syncline schema list shows them)`);
  }
}

/** One line of `syncline schema pending|list`. */
export function changeLine(c: SchemaChange): string {
  const decided = c.decidedBy ? `  ${c.status} by ${c.decidedBy} at ${c.decidedAt}` : '';
  const reg = c.registry.compatible ? '' : `  registry: not BACKWARD compatible${c.registry.reason ? ` (${c.registry.reason.slice(0, 160)})` : ''}`;
  return `${c.id}  ${c.pipeline}  ${c.table}  ${c.status}  ${describeChanges(c.changes)}  schema ${c.fromSchemaId ?? '?'} → ${c.toSchemaId}  detected ${c.detectedAt}${decided}${reg}`;
}
