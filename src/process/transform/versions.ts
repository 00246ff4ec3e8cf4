/**
 * Transform versions: what a pipeline's transforms were (each table's column renames, `transform`
 * steps and `route`, and the content of each custom module), kept by hash so that a replay can run
 * an earlier version (`syncline replay --transforms-as-of <hash>`, ADR 0032).
 *
 * The processor records its pipeline's version when it starts, in the pipeline's compacted topic
 * `<prefix>.transforms.<pipeline>` (key: the hash; value: the version as JSON, with the last start
 * that ran it). Only pipelines with transform steps or routes record one. The hash covers the
 * custom modules' bytes: a module edited in place is a new version, and a replay of an older
 * version refuses to run a module whose bytes changed since (its old code is not kept).
 *
 * A replay uses the transforms in force now by default (what an operator who fixed a transform and
 * replays wants); `--transforms-as-of` takes a recorded version instead. Keys, targets, conflict
 * strategies and validation stay those of the config in force now.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PipelineConfig, RouteConfig, TableConfig, TransformStep } from '../../core/config/schema.js';
import type { KafkaClient } from '../../core/kafka.js';
import { readRanges, topicBounds } from '../../core/topic-reader.js';

export interface TableTransforms {
  columns?: Record<string, string>;
  transform?: TransformStep[];
  route?: RouteConfig;
}

export interface TransformVersion {
  pipeline: string;
  /** 12 hex digits of the SHA-256 of the tables' transforms and the modules' bytes. */
  hash: string;
  /** The last start that ran this version (ISO time). */
  recordedAt: string;
  /** Source table → its transforms. */
  tables: Record<string, TableTransforms>;
  /** Custom module path → SHA-256 of its bytes. */
  modules: Record<string, string>;
}

export const transformsTopic = (prefix: string, pipeline: string): string => `${prefix}.transforms.${pipeline}`;

/** Does the pipeline have anything to version (transform steps or routes)? */
export function hasTransforms(p: PipelineConfig): boolean {
  return p.tables.some((t) => (t.transform?.length ?? 0) > 0 || t.route !== undefined);
}

/** JSON with object keys sorted (the same transforms give the same hash whatever the key order). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

const sha256 = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');

/** The custom modules of the transforms with the SHA-256 of their bytes now (a missing file: 'missing'). */
export function moduleDigests(tables: Record<string, TableTransforms>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of Object.values(tables)) {
    for (const s of t.transform ?? []) {
      if (!s.custom || out[s.custom.module] !== undefined) continue;
      try {
        out[s.custom.module] = sha256(readFileSync(s.custom.module));
      } catch {
        out[s.custom.module] = 'missing';
      }
    }
  }
  return out;
}

/** The pipeline's transforms now, with their hash. */
export function currentVersion(pipeline: string, p: PipelineConfig, now = new Date()): TransformVersion {
  const tables: Record<string, TableTransforms> = {};
  for (const t of p.tables) tables[t.source] = { columns: t.columns, transform: t.transform, route: t.route };
  const modules = moduleDigests(tables);
  const hash = sha256(canonical({ tables, modules })).slice(0, 12);
  return { pipeline, hash, recordedAt: now.toISOString(), tables: JSON.parse(JSON.stringify(tables)) as Record<string, TableTransforms>, modules };
}

/** Record the pipeline's version (the processor, at start). */
export async function recordVersion(kafka: KafkaClient, prefix: string, v: TransformVersion): Promise<void> {
  const topic = transformsTopic(prefix, v.pipeline);
  await kafka.ensureTopics([topic], { partitions: 1, compact: true });
  await kafka.send([{ topic, key: Buffer.from(v.hash), value: Buffer.from(JSON.stringify(v)) }]);
}

/** Every recorded version of the pipeline (the latest record of each hash). */
export async function readVersions(kafka: KafkaClient, prefix: string, pipeline: string): Promise<Map<string, TransformVersion>> {
  const topic = transformsTopic(prefix, pipeline);
  const out = new Map<string, TransformVersion>();
  const ranges = (await topicBounds(kafka, topic)).map((b) => ({ topic, partition: b.partition, from: b.low, to: b.high }));
  await readRanges(kafka, ranges, async (_t, _p, messages) => {
    for (const m of messages) {
      if (!m.key || !m.value) continue;
      try {
        const v = JSON.parse(m.value.toString()) as TransformVersion;
        if (v && typeof v.hash === 'string' && v.tables && typeof v.tables === 'object') out.set(v.hash, v);
      } catch {
        // Not a version (written by something else): not one to replay with.
      }
    }
  }, { groupPrefix: `${prefix}.${pipeline}.transforms` });
  return out;
}

/**
 * The tables with the transforms of version `v` (keys, targets and everything else as now). Throws
 * (a message for the operator) when a table has no transforms recorded in `v` (it was added later)
 * or a custom module's bytes changed since `v`.
 */
export function tablesAsOf(tables: TableConfig[], v: TransformVersion): TableConfig[] {
  const missing = tables.filter((t) => !(t.source in v.tables)).map((t) => t.source);
  if (missing.length > 0) throw new Error(`table ${missing.join(', ')} was not in the pipeline at transforms version ${v.hash} (recorded ${v.recordedAt}): replay it with --table and the transforms in force now`);
  const changed = Object.entries(moduleDigests(v.tables)).filter(([m, d]) => v.modules[m] !== d).map(([m]) => m);
  if (changed.length > 0) throw new Error(`custom transform module ${changed.join(', ')} changed since transforms version ${v.hash} (its earlier code is not kept): restore it, or replay with the transforms in force now`);
  return tables.map((t) => {
    const then = v.tables[t.source]!;
    const { columns: _c, transform: _t, route: _r, ...rest } = t;
    return { ...rest, ...(then.columns ? { columns: then.columns } : {}), ...(then.transform ? { transform: then.transform } : {}), ...(then.route ? { route: then.route } : {}) } as TableConfig;
  });
}
