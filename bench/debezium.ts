/**
 * Benchmark 3, the peer: Debezium (embedded engine 3.6.1.Final, PostgreSQL connector, pgoutput)
 * capturing the same changes from a fresh slot into the same Kafka, through the small harness in
 * bench/debezium/ (a KafkaProducer with acks=all fed batch by batch, as Debezium Server's Kafka sink
 * does; JSON values without embedded schemas). Built once with `mvn -q package` into
 * ~/.cache/syncline/debezium-bench (SYNCLINE_CACHE overrides the cache root); never committed.
 * Rate measured exactly as syncline's: first to last message seen in the topic.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { PG, ROOT, BROKERS, createTopic, rateOf, timeProgress, topicCounter, watchChild, withAdmin, deleteTopics, type Source, type Workload } from './common.js';
import type { CaptureRun } from './syncline-capture.js';

const HARNESS = join(ROOT, 'bench/debezium');
export const DEBEZIUM_VERSION = '3.6.1.Final';

function cacheDir(): string {
  return join(process.env.SYNCLINE_CACHE ?? join(homedir(), '.cache/syncline'), 'debezium-bench');
}

/** Hash of the harness sources: a changed pom or class rebuilds. */
function sourceHash(): string {
  const h = createHash('sha256');
  h.update(readFileSync(join(HARNESS, 'pom.xml')));
  h.update(readFileSync(join(HARNESS, 'src/main/java/syncline/bench/DebeziumBench.java')));
  return h.digest('hex').slice(0, 16);
}

/** The java arguments that run the built harness (class path and main class); its key=value options follow. */
/** The harness's arguments for `src`'s table from `slot` into `topic` (JSON unless `extra` says format=avro …). */
export function debeziumArgs(src: Source, slot: string, topic: string, extra: string[] = []): string[] {
  return [
    `host=${PG.host}`, `port=${PG.port}`, `user=${PG.user}`, `db=${src.db}`, `slot=${slot}`, `publication=${src.publication}`,
    `table=public.${src.table}`, `topic=${topic}`, `brokers=${BROKERS.join(',')}`, ...extra,
  ];
}

export function debeziumCommand(): string[] {
  const dir = cacheDir();
  return ['-Dorg.slf4j.simpleLogger.defaultLogLevel=warn', '-cp', `${join(dir, 'target/classes')}:${join(dir, 'target/lib')}/*`, 'syncline.bench.DebeziumBench'];
}

export function debeziumBuilt(): boolean {
  const dir = cacheDir();
  return existsSync(join(dir, '.built')) && readFileSync(join(dir, '.built'), 'utf8') === sourceHash();
}

/** Build the harness (downloads Debezium from Maven Central on first use, ≈ 60 jars). */
export function buildDebezium(log: (s: string) => void = () => undefined): void {
  if (debeziumBuilt()) return;
  const dir = cacheDir();
  log(`building the Debezium harness in ${dir} (mvn -q package; first time downloads Debezium ${DEBEZIUM_VERSION})`);
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, 'src'), { recursive: true, force: true });
  cpSync(join(HARNESS, 'src'), join(dir, 'src'), { recursive: true });
  cpSync(join(HARNESS, 'pom.xml'), join(dir, 'pom.xml'));
  execFileSync('mvn', ['-B', '-q', '-ntp', 'package'], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'], timeout: 20 * 60_000 });
  writeFileSync(join(dir, '.built'), sourceHash());
}

export async function runDebezium(src: Source, slot: string, w: Workload, tag: string): Promise<CaptureRun> {
  const topic = `${src.prefix}${tag}.debezium`;
  const args = ['-Xmx1g', ...debeziumCommand(), ...debeziumArgs(src, slot, topic)];
  try {
    return await withAdmin(async (admin) => {
      await createTopic(admin, topic, 3);
      const started = Date.now();
      const child = watchChild(spawn('java', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
      try {
        const t = await timeProgress('debezium', topicCounter(admin, topic), w.changes, { alive: child.exited });
        return { changes: w.changes, perSec: rateOf(t, w.changes), perSecWithStartup: w.changes / ((t.doneAt - started) / 1000), peakMb: child.peakMb() };
      } finally {
        await child.stop();
      }
    });
  } finally {
    await deleteTopics(`${src.prefix}${tag}`);
  }
}
