/**
 * The decisions of `syncline pipeline drop` (pure; the effects are in ./pipeline-drop.ts): which
 * Kafka topics, consumer groups, capture-offset entries, registry subjects and Redis keys are one
 * pipeline's, which of them another pipeline shares (kept, with the reason), and how the plan reads.
 *
 * What a pipeline NAME of a config with topicPrefix P (Redis keyPrefix K, default P) creates:
 *   topics   P.apply.NAME, P.dlq.NAME, P.dlq-actions.NAME, P.transforms.NAME its own
 *            C.cdc.<schema>.<table> per table (C: changeTopicPrefix, else P)  shared by every pipeline
 *                                                                           of the config capturing the
 *                                                                           same table with the same C
 *            P.capture.offsets, compacted, key = slot name                   one entry per slot: the entry
 *                                                                           is this pipeline's, the topic
 *                                                                           everyone's (deleted only when
 *                                                                           no other entry is left)
 *   groups   P.NAME.processor, P.NAME.sink, and the throw-away P.NAME.<what>.<random> of the dead-letter
 *            reader, replay and capture (deleted after use, left by a crash): every group named
 *            `P.NAME.…` (neither P nor NAME holds a dot, so no other pipeline's group starts so)
 *   subjects <change topic>-key, <change topic>-value                         with their topic
 *   Redis    K:{NAME}:…  (one hash tag per pipeline, src/sink/version-state.ts)
 * Not removable: the transactional id of a split deployment's processor (Kafka expires it after
 * transactional.id.expiration.ms, 7 days by default). Never touched: the target's tables and rows.
 */
import type { PipelineResource } from '../core/resources.js';
import { changeTopicPrefix, type SynclineConfig } from '../core/config/schema.js';
import { topics } from '../core/kafka.js';
import { dlqActionsTopic } from '../dlq/store.js';
import { transformsTopic } from '../process/transform/versions.js';
import { globEscape } from '../sink/version-state.js';

export const KIND = {
  topic: 'kafka topic',
  group: 'consumer group',
  offset: 'capture offset',
  subject: 'schema subject',
  redis: 'redis keys',
} as const;

export interface PipelineTopics {
  /** Topics only this pipeline writes: apply, dead letters, dead-letter actions, transforms versions. */
  own: string[];
  /** Its change topics, each with the other pipelines of the config that use it too. */
  change: { topic: string; sharedWith: string[] }[];
}

export function pipelineTopics(config: SynclineConfig, name: string): PipelineTopics {
  const prefix = config.topicPrefix;
  const changeOf = (pipeline: string) => {
    const p = config.pipelines[pipeline]!;
    return new Set(p.tables.map((t) => `${changeTopicPrefix(config, p)}.cdc.${t.source}`));
  };
  const others = Object.keys(config.pipelines).filter((n) => n !== name).map((n) => ({ n, topics: changeOf(n) }));
  return {
    own: [topics.apply(prefix, name), topics.dlq(prefix, name), dlqActionsTopic(prefix, name), transformsTopic(prefix, name)],
    change: [...changeOf(name)].map((topic) => ({ topic, sharedWith: others.filter((o) => o.topics.has(topic)).map((o) => o.n) })),
  };
}

/** Whether a consumer group is one of this pipeline's: `<prefix>.<pipeline>.…`. */
export function ownsGroup(prefix: string, pipeline: string, group: string): boolean {
  return group.startsWith(`${prefix}.${pipeline}.`);
}

/** The registry subjects of a topic (TopicNameStrategy, src/core/codec.ts). */
export const subjectsOf = (topic: string): string[] => [`${topic}-key`, `${topic}-value`];

/** SCAN MATCH pattern of every Redis key of a pipeline: `<keyPrefix>:{<pipeline>}:*`, metacharacters escaped. */
export function redisPattern(keyPrefix: string, pipeline: string): string {
  return globEscape(`${keyPrefix}:{${pipeline}}:`) + '*';
}

/** Keys whose latest record in a compacted topic is not a tombstone, in order of first appearance. */
export function liveKeys(records: { key: string | null; value: Buffer | null }[]): string[] {
  const last = new Map<string, boolean>();
  for (const r of records) if (r.key !== null) last.set(r.key, r.value !== null);
  return [...last].filter(([, live]) => live).map(([k]) => k);
}

/**
 * This pipeline's part of `<prefix>.capture.offsets`: its slot's entry (tombstoned), and the topic
 * itself when no other slot's entry is left in it. An entry whose slot name another pipeline of
 * the config uses too (other servers) is kept, and so is the topic then.
 */
export function captureOffsetItems(topic: string, slot: string, live: string[], sameSlot: string[], where: string, own: string[] = []): PipelineResource[] {
  const out: PipelineResource[] = [];
  const mine = live.includes(slot);
  const keep = sameSlot.length > 0 ? `pipeline ${sameSlot.join(', ')} uses the same slot name (and this entry)` : undefined;
  if (mine) out.push({ kind: KIND.offset, name: `${topic} key ${slot}`, where, ...(keep ? { keep } : {}) });
  // `own`: the pipeline's other entries (its backfill state), tombstoned with the slot's.
  const rest = live.filter((k) => (k !== slot || keep) && !own.includes(k));
  if (rest.length === 0) out.push({ kind: KIND.topic, name: topic, where, detail: 'capture offsets of this pipeline only' });
  return out;
}

/** Text of a plan: what is dropped, what is kept and why, what is in use. */
export function renderPlan(pipeline: string, configFile: string, items: PipelineResource[]): string {
  const drop = items.filter((i) => !i.keep && !i.inUse);
  const busy = items.filter((i) => i.inUse);
  const kept = items.filter((i) => i.keep && !i.inUse);
  const w0 = Math.max(...items.map((i) => i.kind.length));
  const w1 = Math.max(...items.map((i) => i.name.length));
  const rows = (list: PipelineResource[], note: (i: PipelineResource) => string | undefined) =>
    list.map((i) => `  ${i.kind.padEnd(w0)}  ${i.name.padEnd(w1)}  ${i.where}${note(i) ? `  (${note(i)})` : ''}`);
  const out = [`pipeline ${pipeline} (${configFile})`];
  if (busy.length > 0) out.push(`in use (${busy.length}):`, ...rows(busy, (i) => i.inUse));
  if (drop.length > 0) out.push(`to drop (${drop.length}):`, ...rows(drop, (i) => i.detail));
  if (kept.length > 0) out.push(`kept (${kept.length}):`, ...rows(kept, (i) => i.keep));
  return out.join('\n');
}

/** Why the drop must wait (empty when it need not): what of the pipeline a running process holds. */
export function runningMessage(pipeline: string, items: PipelineResource[]): string | undefined {
  const busy = items.filter((i) => i.inUse);
  if (busy.length === 0) return undefined;
  return `pipeline ${pipeline} is running: ${busy.map((i) => `${i.kind} ${i.name} ${i.inUse}`).join('; ')}. ` +
    'Stop its processes (SIGTERM: capture, process, sink, start) and run drop again (a process killed with -9 holds its consumer groups for up to 30 s).';
}
