/**
 * Benchmark 2, syncline capture → Kafka: the capture stage alone (bench/child.ts, a child process)
 * streaming the workload from a fresh slot (snapshot: never) into `<prefix>.cdc.public.bench_rows`,
 * Avro against the registry, acks=all. Rate = changes / time from the first message seen in the
 * topic to the last (offsets polled every 100 ms), the same measurement as the Debezium peer's.
 * `producer: 'librdkafka'`: the same with kafka.producer librdkafka (the optional package).
 */
import { cpuPerChange, sampleCpu } from './cpu.js';
import { rateOf, spawnSyncline, timeProgress, topicCounter, withAdmin, writeConfig, deleteTopics, type Source, type Workload } from './common.js';

export interface CaptureRun {
  changes: number;
  perSec: number;
  /** Changes / time from the process start to the last message (start-up included). */
  perSecWithStartup: number;
  peakMb: number;
  /** µs of CPU per change by process role, from the capture's start (bench/cpu.ts; start-up included); not from the Debezium peer. */
  cpu?: Record<string, number>;
}

export async function runSynclineCapture(src: Source, slot: string, w: Workload, tag: string, opts: { nodeArgs?: string[]; batchSize?: number; root?: string; producer?: 'kafkajs' | 'librdkafka'; /** Leave the change topic for a later reader (bench/mariadb.ts runSinkOnly); the caller deletes `<src.prefix><tag>`'s topics. */ keepTopic?: boolean } = {}): Promise<CaptureRun> {
  const prefix = `${src.prefix}${tag}`;
  const config = writeConfig({ prefix, pipeline: 'bench', sourceDb: src.db, slot, publication: src.publication, table: src.table, snapshot: 'never', batchSize: opts.batchSize, producer: opts.producer });
  const topic = `${prefix}.cdc.public.${src.table}`;
  try {
    return await withAdmin(async (admin) => {
      const started = Date.now();
      const child = spawnSyncline(config, ['capture'], { nodeArgs: opts.nodeArgs, root: opts.root });
      const roles = new Map([[child.pid, 'syncline capture']]);
      const cpuBefore = sampleCpu(roles, '(no target database)');
      try {
        const t = await timeProgress('syncline capture', topicCounter(admin, topic), w.changes, { alive: child.exited });
        const peakMb = child.peakMb();
        const cpu = cpuPerChange(cpuBefore, sampleCpu(roles, '(no target database)'), w.changes);
        return { changes: w.changes, perSec: rateOf(t, w.changes), perSecWithStartup: w.changes / ((t.doneAt - started) / 1000), peakMb, cpu };
      } finally {
        await child.stop();
      }
    });
  } finally {
    if (!opts.keepTopic) await deleteTopics(prefix);
  }
}
