/**
 * End-to-end capture throughput: MariaDB binlog → capture stage → Kafka (Avro, registry, acks=all),
 * on a simple table, in this process (Runtime with the capture stage only, snapshot: never): the
 * time a restarted capture takes to carry a backlog of ROWS inserted rows from the binlog into Kafka
 * (including its start: offsets, registry, resume dedup).
 *   npx tsx --import ./src/core/kafkajs-patch.ts connectors/mariadb/source/throughput-kafka.ts [rows=100000]
 * Uses the integration-test harness (its own database and topics, dropped afterwards).
 */
import { Kafka, logLevel } from 'kafkajs';
import { startRuntime, waitFor } from '../../../test/helpers.js';
import { topics } from '../../../src/core/kafka.js';
import { my, myEnv } from './harness.js';

const ROWS = Number(process.argv[2] ?? 100_000);
const env = await myEnv(['items'], { snapshot: 'never', source: { batchSize: 5000, lingerMs: 20 } });
try {
  await my(env.db, 'CREATE TABLE items (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(50), at DATETIME(6))');
  await startRuntime(env as never, ['capture']);
  const admin = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const topic = topics.cdc(env.prefix, env.db, 'items');
  const produced = async () => (await admin.fetchTopicOffsets(topic).catch(() => [])).reduce((n, o) => n + Number(o.high), 0);
  await waitFor('the change topic', async () => (await admin.listTopics()).includes(topic), 60_000);
  // A backlog: the capture stops (its position stored), the rows are written, the capture starts
  // again and streams them from the stored position; timed from its start to the last one in Kafka.
  await new Promise((r) => setTimeout(r, 1500));
  await env.runtimes[0]!.stop();
  const w0 = Date.now();
  for (let i = 0; i < ROWS; i += 5000) await my(env.db, `INSERT INTO items SELECT ${i} + seq, seq, CONCAT('label-', seq), NOW(6) FROM seq_1_to_5000`);
  const writeMs = Date.now() - w0;
  const t0 = Date.now();
  await startRuntime(env as never, ['capture']);
  await waitFor('every change in Kafka', async () => (await produced()) >= ROWS, 300_000, 50);
  const ms = Date.now() - t0;
  await admin.disconnect();
  console.log(JSON.stringify({ rows: ROWS, writeMs, catchUpMs: ms, changesPerSecond: Math.round(ROWS / (ms / 1000)) }));
} finally {
  await env.cleanup();
  process.exit(0);
}
