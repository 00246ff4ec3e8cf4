/**
 * Topic replay (`syncline replay`): re-runs the changes of a pipeline's change topics in a range
 * through validation, conflict resolution and the sink, exactly as the live pipeline does, but from
 * a throw-away consumer group (core/topic-reader.ts): the live group's offsets are never touched.
 *
 *  - Range: --from <ISO time | offset | beginning> [--to <ISO time | offset>] per partition of each
 *    change topic (an offset applies to every partition; --to is inclusive); default end: the end of
 *    each partition when the replay starts.
 *  - Effectively once: version state makes already-applied changes no-ops (skipped as stale), so
 *    replaying twice has no further effect. The one change a key's state says the target holds is
 *    checked against the target (verifyTarget): if the target lost it (truncated, edited, restored
 *    from an old backup), it is written again ("repaired"). A replay from the beginning thus
 *    restores a truncated target table exactly.
 *  - --dry-run: target and state are read, nothing is written anywhere (sink/dry-run.ts); the
 *    summary says what would happen.
 */
import { audit } from '../security/audit/recorder.js';
import { pipelineCrypto } from '../security/crypto/pipeline.js';
import type { RedisClient } from '../core/redis.js';
import type { Logger } from 'pino';
import { changeTopicPrefix, type SynclineConfig } from '../core/config/schema.js';
import type { AvroCodec } from '../core/codec.js';
import { errorKind, errorMessage } from '../core/errors.js';
import type { KafkaClient } from '../core/kafka.js';
import { offsetsAtTime, readRanges, topicBounds, type ReadProgress, type ReadRange } from '../core/topic-reader.js';
import { currentVersion, hasTransforms, readVersions, tablesAsOf, type TransformVersion } from '../process/transform/versions.js';
import { cdcDecoder, decodedList, topicMappings, type Decoded } from '../process/processor.js';
import { ValidationError, validateRules } from '../process/validation/index.js';
import type { Pending } from '../sink/applier.js';
import { buildSinkParts } from '../sink/build.js';
import type { DeadLetter } from '../sink/dead-letters.js';
import { tableMatches } from '../core/names.js';

export interface ReplayOptions {
  pipeline: string;
  /** ISO time, an offset (digits), or 'beginning'. */
  from: string;
  /** ISO time or an offset (inclusive); default: the end of each partition when the replay starts. */
  to?: string;
  /** Only this table (source or target name, with or without schema). */
  table?: string;
  dryRun?: boolean;
  /** Run the transforms of this recorded version (its hash, or a prefix of at least 6 digits) instead of those in force now. */
  transformsAsOf?: string;
  onProgress?: (p: ReadProgress) => void;
}

export interface ReplaySummary {
  pipeline: string;
  dryRun: boolean;
  topics: string[];
  read: number;
  applied: number;
  repaired: number;
  skippedUnchanged: number;
  skippedStale: number;
  conflicts: number;
  parked: number;
  deadLettered: number;
  invalid: number;
  /** Control records read (end-of-snapshot markers), not changes. */
  control: number;
  durationMs: number;
  /** The transforms run: their version hash (none for a pipeline without transforms) and whether an earlier one was asked for. */
  transforms: { hash: string | null; asOf: boolean; recordedAt?: string };
}

export interface ReplayDeps {
  config: SynclineConfig;
  kafka: KafkaClient;
  codec: AvroCodec;
  redis: RedisClient;
  log: Logger;
}

export class ReplayError extends Error {}

type Bound = { kind: 'time'; ms: number } | { kind: 'offset'; n: bigint } | { kind: 'beginning' };

export function parseBound(v: string, what: string): Bound {
  if (v === 'beginning' || v === 'earliest') return { kind: 'beginning' };
  if (/^\d+$/.test(v)) return { kind: 'offset', n: BigInt(v) };
  const ms = Date.parse(v);
  if (/^\d{4}-\d{2}-\d{2}/.test(v) && !Number.isNaN(ms)) {
    // A time without a zone would be read in this machine's zone: ask for one.
    if (/T\d/.test(v) && !/(Z|[+-]\d{2}(:?\d{2})?)$/.test(v)) throw new ReplayError(`${what} needs a time zone (Z or +01:00): '${v}'`);
    return { kind: 'time', ms };
  }
  throw new ReplayError(`${what} must be an ISO time (2026-11-25T10:00:00Z), an offset (digits) or 'beginning' (got '${v}')`);
}

export async function replay(d: ReplayDeps, o: ReplayOptions): Promise<ReplaySummary> {
  const started = Date.now();
  const p = d.config.pipelines[o.pipeline];
  if (!p) throw new ReplayError(`no pipeline '${o.pipeline}' (have: ${Object.keys(d.config.pipelines).join(', ')})`);
  const from = parseBound(o.from, '--from');
  const to = o.to !== undefined ? parseBound(o.to, '--to') : undefined;
  if (to?.kind === 'beginning') throw new ReplayError("--to cannot be 'beginning'");
  const matches = (t: { source: string; target?: string }) => {
    if (o.table === undefined) return true;
    const names = [t.source, t.target ?? t.source];
    return names.some((n) => tableMatches(n, o.table!));
  };
  let tables = p.tables.filter(matches);
  if (tables.length === 0) throw new ReplayError(`pipeline ${o.pipeline} has no table '${o.table}' (have: ${p.tables.map((t) => t.source).join(', ')})`);
  // The transforms in force now (ADR 0032), or a recorded earlier version (--transforms-as-of).
  let transforms: ReplaySummary['transforms'] = { hash: hasTransforms(p) ? currentVersion(o.pipeline, p).hash : null, asOf: false };
  let pUsed = p;
  if (o.transformsAsOf !== undefined) {
    const v = await transformsVersion(d, o.pipeline, o.transformsAsOf);
    try {
      tables = tablesAsOf(tables, v);
    } catch (err) {
      throw new ReplayError(`--transforms-as-of ${o.transformsAsOf}: ${errorMessage(err)}`);
    }
    const bySource = new Map(tables.map((t) => [t.source, t]));
    pUsed = { ...p, tables: p.tables.map((t) => bySource.get(t.source) ?? t) };
    transforms = { hash: v.hash, asOf: true, recordedAt: v.recordedAt };
  }
  const byTopic = topicMappings(changeTopicPrefix(d.config, p), tables, pipelineCrypto(d.config, o.pipeline));

  // The range of each partition, fixed now.
  const ranges: ReadRange[] = [];
  for (const topic of byTopic.keys()) {
    const bounds = await topicBounds(d.kafka, topic);
    const fromAt = from.kind === 'time' ? await offsetsAtTime(d.kafka, topic, from.ms) : undefined;
    const toAt = to?.kind === 'time' ? await offsetsAtTime(d.kafka, topic, to.ms + 1) : undefined;
    for (const b of bounds) {
      let start = from.kind === 'beginning' ? b.low : from.kind === 'offset' ? from.n : fromAt!.get(b.partition)!;
      if (start < b.low) start = b.low;
      let end = to === undefined ? b.high : to.kind === 'offset' ? to.n + 1n : toAt!.get(b.partition)!;
      if (end > b.high) end = b.high;
      ranges.push({ topic, partition: b.partition, from: start, to: end });
    }
  }

  const validators = await validateRules(d.config, undefined, [o.pipeline], d.log);
  const object = `pipeline:${o.pipeline}`;
  audit.record({ action: 'replay.start', object, details: { pipeline: o.pipeline, from: o.from, to: o.to ?? null, table: o.table ?? null, dryRun: o.dryRun === true, partitions: ranges.length, transforms: transforms.hash, transformsAsOf: transforms.asOf } });
  const parts = await buildSinkParts({ config: d.config, kafka: d.kafka, redis: d.redis }, o.pipeline, pUsed, d.log, { dryRun: o.dryRun });
  if (transforms.hash) parts.dlq.transformsVersion = transforms.hash;
  // Custom transform modules loaded once, now (each in its worker).
  await Promise.all([...byTopic.values()].map((m) => m.transform?.ready()));
  const decode = cdcDecoder(d.codec, byTopic, validators.get(o.pipeline));
  let read = 0;
  let invalid = 0;
  try {
    await readRanges(
      d.kafka,
      ranges,
      async (topic, partition, messages) => {
        const pending: Pending[] = [];
        const letters: DeadLetter[] = [];
        for (const m of messages) {
          read++;
          let p: Decoded;
          try {
            p = await decode(m, topic, partition);
          } catch (err) {
            if (errorKind(err) === 'retriable') throw err;
            invalid++;
            const v = err instanceof ValidationError ? err : undefined;
            letters.push({ kind: 'invalid', error: err, key: m.key, value: m.value, attempts: 1, table: v?.table, position: v?.position, origin: { topic, partition, offset: m.offset } });
            continue;
          }
          pending.push(...decodedList(p)); // a truncate the table's watermark covers is skipped by the Applier
        }
        // Same ids as when the live pipeline dead-lettered them: listed once.
        await parts.dlq.send(letters);
        await parts.applier.apply(pending, { verifyTarget: true });
      },
      { groupPrefix: `${d.config.topicPrefix}.${o.pipeline}.replay`, onProgress: o.onProgress },
    );
  } catch (err) {
    audit.record({ action: 'replay.end', object, details: { pipeline: o.pipeline, outcome: 'failed', read, dryRun: o.dryRun === true } });
    throw new ReplayError(`replay of ${o.pipeline} stopped: ${errorMessage(err)} (nothing after the last applied batch was changed; run it again to continue)`);
  } finally {
    await parts.sink.close().catch(() => undefined);
    await Promise.allSettled([...byTopic.values()].map((m) => m.transform?.close()));
  }
  const s = parts.applier.stats;
  audit.record({ action: 'replay.end', object, details: { pipeline: o.pipeline, outcome: 'ok', dryRun: o.dryRun === true, read, applied: s.applied, conflicts: s.conflicts, deadLettered: s.deadLettered + invalid } });
  return {
    pipeline: o.pipeline, dryRun: o.dryRun ?? false, topics: [...byTopic.keys()], read, applied: s.applied, repaired: s.repaired,
    skippedUnchanged: s.skippedUnchanged, skippedStale: s.skippedStale, conflicts: s.conflicts, parked: s.parked + s.parkedBehind,
    deadLettered: s.deadLettered + invalid, invalid, control: s.control, durationMs: Date.now() - started, transforms,
  };
}

/** A recorded transforms version of the pipeline by its hash (or a prefix of 6+ digits); unknown: the error lists what is recorded. */
async function transformsVersion(d: ReplayDeps, pipeline: string, asked: string): Promise<TransformVersion> {
  if (!/^[0-9a-f]{6,12}$/.test(asked)) throw new ReplayError(`--transforms-as-of must be a transforms version hash (6 to 12 hex digits, as \`syncline replay\` and the start log print it; got '${asked}')`);
  const versions = [...(await readVersions(d.kafka, d.config.topicPrefix, pipeline)).values()].sort((a, b) => b.recordedAt.localeCompare(a.recordedAt));
  const found = versions.filter((v) => v.hash.startsWith(asked));
  if (found.length === 1) return found[0]!;
  const known = versions.length === 0 ? 'none is recorded (a pipeline records its transforms when its processor starts)' : `recorded: ${versions.map((v) => `${v.hash} (last run ${v.recordedAt})`).join(', ')}`;
  if (found.length > 1) throw new ReplayError(`--transforms-as-of ${asked} matches ${found.length} versions of pipeline ${pipeline}: give more digits; ${known}`);
  throw new ReplayError(`--transforms-as-of ${asked}: no such transforms version of pipeline ${pipeline}; ${known}`);
}
