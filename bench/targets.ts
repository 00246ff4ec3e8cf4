/**
 * Targets next to the PostgreSQL sink, in the same run (`--only targets`, or on its own:
 * `npx tsx bench/targets.ts [--changes N] [--repeat K]`, defaults 100,000 and 3). Each repeat writes
 * the same SinkRecords, N inserts then N/2 updates of the 5-column bench row (bench/common.ts
 * tableDdl 'narrow'), through each sink's writeBatch the way the Applier drives it: 3 partitions
 * (id mod 3) concurrently, batches of 1,000 per partition one after another. The targets alternate
 * their order from repeat to repeat. Rate = changes / wall time of all writeBatch calls; ratios are
 * target / PostgreSQL per repeat. What it leaves out: Kafka, the processor and version state (the
 * same for every target). Each target's count is checked after each repeat.
 *  - postgres: a fresh empty table (the baseline);
 *  - rabbitmq: a fresh durable topic exchange with one durable queue bound (persistent messages,
 *    publisher confirms: a confirm means the queue has it on disk);
 *  - http (one request per change, 8 lanes) and http batched (JSON arrays of 100): a local HTTP
 *    server in its own process (bench/http-server.mjs) that reads each body and answers 200;
 *  - file (JSON Lines, CSV, Parquet): a fresh temp directory, the spec's defaults (a file finished
 *    once no batch added rows for lingerMs 20: about one round of the partitions' batches per file),
 *    each writeBatch returning once its rows are in a committed file (ADR 0022).
 * Everything created (database, exchange, queue, server) is gone afterwards.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { pino } from 'pino';
import '../connectors/index.js';
import { PostgresSink } from '../connectors/postgres/sink.js';
import { pgSinkSpec } from '../connectors/postgres/spec.js';
import { RabbitmqSink } from '../connectors/rabbitmq/sink.js';
import { rabbitmqSinkSpec } from '../connectors/rabbitmq/spec.js';
import { HttpSink } from '../connectors/http/sink.js';
import { httpSinkSpec } from '../connectors/http/spec.js';
import { FileSink } from '../connectors/file/sink.js';
import { fileSinkSpec } from '../connectors/file/spec.js';
import type { Sink, SinkRecord } from '../src/sink/sink.js';
import { PG, ROOT, createDb, dropDb, figure, fmt, fmtFigure, ratio, sql, tableDdl, uid, type Figure, runBenchCli } from './common.js';

const BATCH = 1000;
const PARTITIONS = 3;
const log = pino({ level: 'silent' });

function records(table: string, n: number): SinkRecord[][] {
  const parts: SinkRecord[][] = Array.from({ length: PARTITIONS }, () => []);
  const ts = '2026-01-01T00:00:00.000000Z';
  const add = (id: number, v: number, pos: number, update: boolean) =>
    parts[id % PARTITIONS]!.push({
      table, op: 'upsert', key: { id: BigInt(id) }, values: { id: BigInt(id), name: `name ${id}`, amount: `${(id % 100000) + v - 0.75}`, updated_at: ts, v }, keep: [],
      position: `${pos.toString(16).padStart(16, '0')}:00000000`, hash: null, sourceTsMs: 1_767_225_600_000, origin: { topic: 'bench', partition: id % PARTITIONS, offset: String(pos) },
      ...(update ? { update: true } : {}),
    });
  let pos = 1;
  for (let id = 1; id <= n; id++) add(id, 1, pos++, false);
  for (let id = 1; id <= n / 2; id++) add(id, 2, pos++, true);
  return parts;
}

async function timeSink(sink: Sink, parts: SinkRecord[][]): Promise<number> {
  await sink.connect();
  const total = parts.reduce((a, p) => a + p.length, 0);
  const t0 = process.hrtime.bigint();
  await Promise.all(parts.map(async (recs) => {
    for (let i = 0; i < recs.length; i += BATCH) {
      const r = await sink.writeBatch(recs.slice(i, i + BATCH));
      if (r.failed.length > 0) throw new Error(`${r.failed.length} records failed: ${r.failed[0]!.error.message}`);
    }
  }));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await sink.close();
  return total / s;
}

/** The bench's HTTP server, in a child process. */
async function httpServer(): Promise<{ url: string; count(): Promise<number>; stop(): void }> {
  const child = spawn(process.execPath, [join(ROOT, 'bench/http-server.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((res, rej) => {
    child.stdout!.once('data', (d: Buffer) => res(d.toString().trim()));
    child.once('exit', (code) => rej(new Error(`bench/http-server.mjs exited (${code})`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    count: async () => ((await (await fetch(`${url}/count`)).json()) as { count: number }).count,
    stop: () => child.kill(),
  };
}

export const TARGETS = ['postgres', 'rabbitmq', 'http', 'http-batched', 'file-jsonl', 'file-csv', 'file-parquet'] as const;
type Target = (typeof TARGETS)[number];

export interface TargetsResult {
  changes: number;
  repeat: number;
  rates: Record<Target, Figure>;
}

export async function runTargetsBench(o: { changes: number; repeat: number; log: (s: string) => void }): Promise<TargetsResult> {
  const n = o.changes;
  const id = uid();
  const db = `syncline_bench_${id}_targets`;
  await createDb(db);
  const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
  const ch = await conn.createChannel();
  const api = await httpServer();
  const runs: Record<Target, number[]> = { postgres: [], rabbitmq: [], http: [], 'http-batched': [], 'file-jsonl': [], 'file-csv': [], 'file-parquet': [] };
  const dirs: string[] = [];
  const fileSink = (format: 'jsonl' | 'csv' | 'parquet') => {
    const dir = mkdtempSync(join(tmpdir(), 'syncline-bench-files-'));
    dirs.push(dir);
    return new FileSink(fileSinkSpec.parse({ type: 'file', dir, format }), { pipeline: 'bench', log });
  };
  try {
    for (let r = 0; r < o.repeat; r++) {
      const table = `bench_rows_${r}`;
      await sql(db, tableDdl(table, 'narrow'));
      const exchange = `syncline_bench_${id}_${r}_x`;
      const queue = `syncline_bench_${id}_${r}_q`;
      await ch.assertExchange(exchange, 'topic', { durable: true });
      await ch.assertQueue(queue, { durable: true });
      await ch.bindQueue(queue, exchange, '#');
      const sinks: Record<Target, () => Sink> = {
        postgres: () => new PostgresSink(pgSinkSpec.parse({ type: 'postgres', connection: { ...PG, database: db }, autoCreate: false, autoEvolve: false }), { pipeline: 'bench', log }),
        rabbitmq: () => new RabbitmqSink(rabbitmqSinkSpec.parse({ type: 'rabbitmq', exchange, declare: false }), { pipeline: 'bench', log }),
        http: () => new HttpSink(httpSinkSpec.parse({ type: 'http', url: `${api.url}/{table}/{key.id}`, health: { url: `${api.url}/count` } }), { pipeline: 'bench', log }),
        'http-batched': () => new HttpSink(httpSinkSpec.parse({ type: 'http', url: `${api.url}/{table}/{key.id}`, batch: { enabled: true, url: `${api.url}/batch` }, health: { url: `${api.url}/count` } }), { pipeline: 'bench', log }),
        'file-jsonl': () => fileSink('jsonl'),
        'file-csv': () => fileSink('csv'),
        'file-parquet': () => fileSink('parquet'),
      };
      const order = r % 2 === 0 ? [...TARGETS] : [...TARGETS].reverse();
      const line: string[] = [];
      for (const t of order) {
        const before = t.startsWith('http') ? await api.count() : 0;
        const sink = sinks[t]();
        runs[t].push(await timeSink(sink, records(`public.${table}`, n)));
        line.push(`${t} ${fmt(runs[t][r]!)}/s`);
        if (sink instanceof FileSink) {
          if (sink.stats.rows !== n + n / 2) throw new Error(`${t}: ${sink.stats.rows} rows in finished files, ${n + n / 2} written`);
          rmSync(dirs.pop()!, { recursive: true, force: true });
        }
        if (t.startsWith('http') && (await api.count()) - before !== n + n / 2) throw new Error(`${t}: the server got ${(await api.count()) - before} changes, ${n + n / 2} sent`);
      }
      const q = await ch.checkQueue(queue);
      if (q.messageCount !== n + n / 2) throw new Error(`queue holds ${q.messageCount} messages, ${n + n / 2} published`);
      const rows = (await sql(db, `select count(*)::int as c from ${table}`)).rows[0] as { c: number };
      if (rows.c !== n) throw new Error(`postgres table holds ${rows.c} rows, ${n} written`);
      await ch.deleteQueue(queue);
      await ch.deleteExchange(exchange);
      o.log(`repeat ${r + 1}: ${line.join(', ')}`);
    }
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    api.stop();
    await conn.close().catch(() => undefined);
    await dropDb(db);
  }
  return { changes: n, repeat: o.repeat, rates: Object.fromEntries(TARGETS.map((t) => [t, figure(runs[t])])) as Record<Target, Figure> };
}

const LABEL: Record<Target, string> = {
  postgres: 'PostgreSQL (unnest upserts, one transaction per batch): the baseline',
  rabbitmq: 'RabbitMQ (persistent messages, publisher confirms)',
  http: 'HTTP, one request per change (8 lanes, keep-alive)',
  'http-batched': 'HTTP, batched (JSON arrays of 100)',
  'file-jsonl': 'Files, JSON Lines (group commit: fsync, rename, manifest line per file)',
  'file-csv': 'Files, CSV',
  'file-parquet': 'Files, Parquet (hyparquet-writer, snappy)',
};

export function targetsTable(r: TargetsResult): string {
  return [
    '| target | changes/s, median (min – max) | ratio to PostgreSQL, median (min – max) |',
    '| --- | --- | --- |',
    ...TARGETS.map((t) => `| ${LABEL[t]} | ${fmtFigure(r.rates[t])} | ${t === 'postgres' ? '1.00' : fmtFigure(ratio(r.rates[t], r.rates.postgres), 2)} |`),
  ].join('\n');
}

export function targetsSection(r: TargetsResult, m: { nproc: number; cpu: string; node: string; date: string }, command: string): string {
  return [
    '## Targets next to PostgreSQL',
    '',
    `Each sink's writeBatch alone (bench/targets.ts): ${fmt(r.changes)} inserts + ${fmt(r.changes / 2)} updates of a 5-column row, ${PARTITIONS} partitions`,
    `concurrently, batches of ${fmt(BATCH)}, the way the Applier drives a sink; Kafka, the processor and version state left out`,
    `(the same for every target). Median of ${r.repeat} repeat${r.repeat === 1 ? '' : 's'} (min – max), targets alternating their order; the counts each target`,
    'holds are checked after every repeat. The HTTP server is a local node:http process that reads each body and answers 200.',
    '',
    targetsTable(r),
    '',
    `Machine: ${m.nproc} CPU${m.nproc === 1 ? '' : 's'} (\`nproc\`), ${m.cpu}, Node ${m.node}, PostgreSQL 15, RabbitMQ, all on the same machine; measured ${m.date}.`,
    `Reproduce: \`npm run stack:up && ${command}\`.`,
  ].join('\n');
}

runBenchCli(import.meta.url, (arg) => runTargetsBench({ changes: Number(arg('changes', '100000')), repeat: Number(arg('repeat', '3')), log: (s) => console.log(s) }), targetsTable);
