/**
 * Plumbing shared by the contract suites: a pipeline config built from a source fixture's `source`
 * block and a sink fixture's `target` block (test/helpers.ts testEnv always builds PostgreSQL on both
 * ends), the in-process Runtime, the capture child process, and readers for the change topics and
 * the dead-letter store. Everything is named after one random id: databases syncline_t_<id>_*,
 * topics/groups/slots t<id>…, so scripts/test.sh can clean the leftovers of an interrupted run.
 */
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Kafka, logLevel } from 'kafkajs';
import { parseConfig } from '../../src/core/config/load.js';
import type { SynclineConfig } from '../../src/core/config/schema.js';
import { envelopeFromAvro, } from '../../src/core/avro.js';
import { AvroCodec } from '../../src/core/codec.js';
import { eventPosition, type Row } from '../../src/core/envelope.js';
import { groups, KafkaClient, topics } from '../../src/core/kafka.js';
import { rootLogger } from '../../src/core/log.js';
import { parseTableName } from '../../src/core/names.js';
import { stringifyTagged } from '../../src/core/tagged-json.js';
import { DlqStore } from '../../src/dlq/store.js';
import { Runtime, type Stage } from '../../src/runtime.js';
import type { ApplyStats } from '../../src/sink/applier.js';
import { deleteGroups, deleteTopics, readTopic, spawnCli, uid } from '../helpers.js';
import type { SinkTarget, SourceDb } from './fixtures.js';

export const PIPELINE = 'contract';

export interface ContractEnv {
  id: string;
  prefix: string;
  config: SynclineConfig;
  configFile: string;
  source: SourceDb;
  target: SinkTarget;
  runtimes: Runtime[];
  children: ChildProcess[];
  start(stages?: Stage[]): Promise<Runtime>;
  /** `syncline capture` as a child process (killable with SIGKILL). */
  spawnCapture(): ChildProcess;
  cleanup(): Promise<void>;
}

/** Tables of the pipeline: bare names, placed by each fixture (`qualified`). */
export async function contractEnv(
  make: { source: (id: string) => Promise<SourceDb>; target: (id: string) => Promise<SinkTarget> },
  tables: string[],
): Promise<ContractEnv> {
  const id = uid();
  const prefix = `t${id}`;
  const source = await make.source(id);
  const target = await make.target(id);
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 3 },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 }, batch: { size: 500 } },
    pipelines: {
      [PIPELINE]: {
        source: source.config(prefix, PIPELINE),
        target: target.config(),
        // No updated_at column in the contract's tables: the source's change always wins.
        conflict: { strategy: 'source-wins' },
        tables: tables.map((t) => ({ source: source.qualified(t), target: target.qualified(t) })),
      },
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'syncline-contract-'));
  const configFile = join(dir, 'config.yaml');
  const text = JSON.stringify(doc, null, 2);
  writeFileSync(configFile, text);
  const config = parseConfig(text, configFile, {});
  const runtimes: Runtime[] = [];
  const children: ChildProcess[] = [];
  return {
    id, prefix, config, configFile, source, target, runtimes, children,
    async start(stages = ['capture', 'process', 'sink']) {
      const rt = new Runtime(config, new Set(stages));
      runtimes.push(rt);
      const { done } = await rt.start();
      done.catch(() => undefined);
      return rt;
    },
    spawnCapture() {
      const child = spawnCli(['capture', '--config', configFile]);
      children.push(child);
      return child;
    },
    async cleanup() {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await once(c, 'exit').catch(() => undefined);
      }
      await Promise.allSettled(runtimes.map((r) => r.stop()));
      await source.drop(prefix).catch(() => undefined);
      await target.drop().catch(() => undefined);
      await deleteTopics(prefix).catch(() => undefined);
    },
  };
}

/** Kill a capture child with SIGKILL and wait for it to be gone. */
export async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) throw new Error(`capture had already exited (${child.exitCode ?? child.signalCode}): ${(child as ChildProcess & { stderrTail?: () => string }).stderrTail?.() ?? ''}`);
  child.kill('SIGKILL');
  await once(child, 'exit');
}

/** One comparable string for canonical rows (bigint, Buffer, NaN/Infinity tagged). */
export const canon = (v: unknown): string => stringifyTagged(v);

/** Sum of one applier counter over a runtime's pipelines. */
export function stat(rt: Runtime, f: keyof ApplyStats): number {
  return rt.pipelines.reduce((n, h) => n + (h.applier?.stats[f] ?? 0), 0);
}

export interface TopicEvent {
  op: string;
  key: Row;
  after: Row | null;
  position: string;
  partition: number;
  snapshot: boolean;
}

/** Every change event of a table's change topic, decoded (end-of-snapshot markers left out). */
export async function changeEvents(env: ContractEnv, qualifiedSource: string): Promise<TopicEvent[]> {
  const name = parseTableName(qualifiedSource);
  const topic = topics.cdc(env.prefix, name.schema, name.table);
  const codec = new AvroCodec(env.config.schemaRegistry.url);
  const out: TopicEvent[] = [];
  for (const m of await readTopic(topic)) {
    if (!m.key || !m.value) continue;
    const e = envelopeFromAvro(await codec.decode(m.value));
    if (e.op === 'm' || e.op === 't') continue;
    out.push({ op: e.op, key: (await codec.decode(m.key)) as Row, after: e.after, position: eventPosition(e), partition: m.partition, snapshot: e.source.snapshot });
  }
  return out;
}

/** Messages on the pipeline's change topics minus the end-of-snapshot markers (one per partition). */
export async function changeMessages(env: ContractEnv, qualifiedSources: string[]): Promise<number> {
  const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    let total = 0;
    for (const s of qualifiedSources) {
      const n = parseTableName(s);
      for (const o of await admin.fetchTopicOffsets(topics.cdc(env.prefix, n.schema, n.table))) total += Number(o.high) - Number(o.low) - 1;
    }
    return total;
  } finally {
    await admin.disconnect();
  }
}

/**
 * Every change delivered again: the pipeline's processor group is deleted (the runtime must be
 * stopped), and the processor, which subscribes from the earliest offset where its group has none,
 * reads every change topic from the start. kafkajs's resetOffsets joins the group once per topic
 * and waits out a fetch each time (~6 s a topic); this is one request.
 */
export async function resetProcessorGroup(env: ContractEnv): Promise<void> {
  await deleteGroups([groups.processor(env.prefix, PIPELINE)]);
}

/** Every dead letter of the pipeline (open or settled), read with the DLQ store the CLI and API use. */
export async function deadLetters(env: ContractEnv) {
  const client = new KafkaClient(env.config.kafka, rootLogger.child({ stage: 'kafka' }));
  try {
    const store = await new DlqStore(client, env.prefix, PIPELINE).load();
    return store.list({ state: 'all' });
  } finally {
    await client.close();
  }
}
