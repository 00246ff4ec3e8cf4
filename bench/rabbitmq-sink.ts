/**
 * The RabbitMQ sink next to the PostgreSQL sink, in the same run: `npx tsx bench/rabbitmq-sink.ts
 * [--changes N] [--repeat K]` (defaults 100,000 and 3). Each repeat writes the same SinkRecords —
 * N inserts then N/2 updates of the 5-column bench row (bench/common.ts tableDdl 'narrow') — through
 * each sink's writeBatch the way the Applier drives it: 3 partitions (id mod 3) concurrently,
 * batches of 1,000 per partition one after another. PostgreSQL: a fresh empty table; RabbitMQ: a
 * fresh durable topic exchange with one durable queue bound (persistent messages, publisher
 * confirms: a confirm means the queue has it on disk). The two alternate within each repeat.
 * Rate = changes / wall time of all writeBatch calls; the ratio is RabbitMQ / PostgreSQL per repeat.
 * What it leaves out: Kafka, the processor and version state (the same for both targets).
 * Everything created (database, exchange, queue) is dropped afterwards.
 */
import amqp from 'amqplib';
import { pino } from 'pino';
import { PostgresSink } from '../connectors/postgres/sink.js';
import { pgSinkSpec } from '../connectors/postgres/spec.js';
import { RabbitmqSink } from '../connectors/rabbitmq/sink.js';
import { rabbitmqSinkSpec } from '../connectors/rabbitmq/spec.js';
import type { Sink, SinkRecord } from '../src/sink/sink.js';
import { PG, createDb, dropDb, figure, fmt, fmtFigure, ratio, sql, tableDdl, uid } from './common.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('changes', 100_000);
const REPEAT = arg('repeat', 3);
const BATCH = 1000;
const PARTITIONS = 3;
const log = pino({ level: 'silent' });

function records(table: string): SinkRecord[][] {
  const parts: SinkRecord[][] = Array.from({ length: PARTITIONS }, () => []);
  const ts = '2026-01-01T00:00:00.000000Z';
  const add = (id: number, v: number, pos: number) =>
    parts[id % PARTITIONS]!.push({
      table, op: 'upsert', key: { id: BigInt(id) }, values: { id: BigInt(id), name: `name ${id}`, amount: `${(id % 100000) + v - 0.75}`, updated_at: ts, v }, keep: [],
      position: `${pos.toString(16).padStart(16, '0')}:00000000`, hash: null, sourceTsMs: 1_767_225_600_000, origin: { topic: 'bench', partition: id % PARTITIONS, offset: String(pos) },
    });
  let pos = 1;
  for (let id = 1; id <= N; id++) add(id, 1, pos++);
  for (let id = 1; id <= N / 2; id++) add(id, 2, pos++);
  return parts;
}

async function timeSink(sink: Sink, parts: SinkRecord[][]): Promise<number> {
  await sink.connect();
  const t0 = process.hrtime.bigint();
  await Promise.all(parts.map(async (recs) => {
    for (let i = 0; i < recs.length; i += BATCH) {
      const r = await sink.writeBatch(recs.slice(i, i + BATCH));
      if (r.failed.length > 0) throw new Error(`${r.failed.length} records failed: ${r.failed[0]!.error.message}`);
    }
  }));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await sink.close();
  return (N + N / 2) / s;
}

const id = uid();
const db = `syncline_bench_${id}_rmq`;
await createDb(db);
const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
const ch = await conn.createChannel();
const pgRates: number[] = [];
const rmqRates: number[] = [];
try {
  for (let r = 0; r < REPEAT; r++) {
    const table = `bench_rows_${r}`;
    await sql(db, tableDdl(table, 'narrow'));
    const exchange = `syncline_bench_${id}_${r}_x`;
    const queue = `syncline_bench_${id}_${r}_q`;
    await ch.assertExchange(exchange, 'topic', { durable: true });
    await ch.assertQueue(queue, { durable: true });
    await ch.bindQueue(queue, exchange, '#');
    const pgSink = new PostgresSink(pgSinkSpec.parse({ type: 'postgres', connection: { ...PG, database: db }, autoCreate: false, autoEvolve: false }), { pipeline: 'bench', log });
    const rmqSink = new RabbitmqSink(rabbitmqSinkSpec.parse({ type: 'rabbitmq', exchange, declare: false }), { pipeline: 'bench', log });
    const run = [
      async () => pgRates.push(await timeSink(pgSink, records(`public.${table}`))),
      async () => rmqRates.push(await timeSink(rmqSink, records(`public.${table}`))),
    ];
    for (const f of r % 2 === 0 ? run : run.reverse()) await f();
    const q = await ch.checkQueue(queue);
    if (q.messageCount !== N + N / 2) throw new Error(`queue holds ${q.messageCount} messages, ${N + N / 2} published`);
    await ch.deleteQueue(queue);
    await ch.deleteExchange(exchange);
    console.log(`repeat ${r + 1}: postgres ${fmt(pgRates[r]!)} changes/s, rabbitmq ${fmt(rmqRates[r]!)} changes/s`);
  }
} finally {
  await conn.close().catch(() => undefined);
  await dropDb(db);
}
const p = figure(pgRates);
const q = figure(rmqRates);
console.log(`\n${fmt(N)} inserts + ${fmt(N / 2)} updates, ${PARTITIONS} partitions, batches of ${BATCH}, ${REPEAT} repeats (median (min – max))`);
console.log(`postgres sink  ${fmtFigure(p)} changes/s`);
console.log(`rabbitmq sink  ${fmtFigure(q)} changes/s`);
console.log(`ratio rabbitmq/postgres  ${fmtFigure(ratio(q, p), 2)}`);
