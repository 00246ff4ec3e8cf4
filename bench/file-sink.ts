/**
 * The file sink next to the PostgreSQL sink, in the same run: `npx tsx bench/file-sink.ts
 * [--changes N] [--repeat K] [--linger-ms MS] [--formats jsonl,csv,parquet]` (defaults 100,000, 3,
 * the spec's 20 ms and all three). Each repeat writes the same SinkRecords — N inserts then N/2 updates of the
 * 5-column bench row (bench/common.ts tableDdl 'narrow') — through each sink's writeBatch the way the
 * Applier drives it: 3 partitions (id mod 3) concurrently, batches of 1,000 per partition one after
 * another, each writeBatch returning once its rows are in a finished file (fsync, rename, manifest
 * line). PostgreSQL: a fresh empty table; files: a fresh temp directory, rollBytes 64 MiB and rollMs
 * 5 s, so files are finished by lingerMs (no batch added rows for that long): about one file per
 * round of the 3 partitions' batches. The targets alternate
 * within each repeat. Rate = changes / wall time of all writeBatch calls; the ratio is file /
 * PostgreSQL per repeat. What it leaves out: Kafka, the processor and version state (the same for
 * every target). Everything created is dropped afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FileSink } from '../connectors/file/sink.js';
import { fileSinkSpec } from '../connectors/file/spec.js';
import { PostgresSink } from '../connectors/postgres/sink.js';
import { pgSinkSpec } from '../connectors/postgres/spec.js';
import type { Sink, SinkRecord } from '../src/sink/sink.js';
import { PG, createDb, dropDb, figure, fmt, fmtFigure, ratio, sql, tableDdl, uid } from './common.js';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const N = Number(arg('changes', '100000'));
const REPEAT = Number(arg('repeat', '3'));
const LINGER_MS = Number(arg('linger-ms', '20'));
const FORMATS = arg('formats', 'jsonl,csv,parquet').split(',') as ('jsonl' | 'csv' | 'parquet')[];
const BATCH = 1000;
const PARTITIONS = 3;
const log = pino({ level: 'silent' });

function records(table: string): SinkRecord[][] {
  const parts: SinkRecord[][] = Array.from({ length: PARTITIONS }, () => []);
  const ts = '2026-01-01T00:00:00.000000Z';
  const columnTypes = { id: 'int8', name: 'text', amount: 'numeric(12,2)', updated_at: 'timestamptz', v: 'int4' };
  const add = (id: number, v: number, pos: number) =>
    parts[id % PARTITIONS]!.push({
      table, op: 'upsert', key: { id: BigInt(id) }, values: { id: BigInt(id), name: `name ${id}`, amount: `${(id % 100000) + v - 0.75}`, updated_at: ts, v }, keep: [], columnTypes,
      position: `${pos.toString(16).padStart(16, '0')}:00000000`, hash: null, sourceTsMs: 1_767_225_600_000, origin: { topic: 'bench', partition: id % PARTITIONS, offset: String(pos) },
      ...(v === 2 ? { update: true as const } : {}),
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
const db = `syncline_bench_${id}_file`;
await createDb(db);
const pgRates: number[] = [];
const rates = new Map<string, number[]>(FORMATS.map((f) => [f, []]));
const files = new Map<string, number>();
try {
  for (let r = 0; r < REPEAT; r++) {
    const table = `bench_rows_${r}`;
    await sql(db, tableDdl(table, 'narrow'));
    const pgSink = new PostgresSink(pgSinkSpec.parse({ type: 'postgres', connection: { ...PG, database: db }, autoCreate: false, autoEvolve: false }), { pipeline: 'bench', log });
    const run: (() => Promise<void>)[] = [async () => void pgRates.push(await timeSink(pgSink, records(`public.${table}`)))];
    for (const format of FORMATS) {
      run.push(async () => {
        const dir = mkdtempSync(join(tmpdir(), 'syncline-bench-files-'));
        try {
          const sink = new FileSink(fileSinkSpec.parse({ type: 'file', dir, format, lingerMs: LINGER_MS }), { pipeline: 'bench', log });
          rates.get(format)!.push(await timeSink(sink, records(`public.${table}`)));
          if (sink.stats.rows !== N + N / 2) throw new Error(`${format}: ${sink.stats.rows} rows written, ${N + N / 2} given`);
          files.set(format, sink.stats.files);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
    for (const f of r % 2 === 0 ? run : run.reverse()) await f();
    console.log(`repeat ${r + 1}: postgres ${fmt(pgRates[r]!)} changes/s, ${FORMATS.map((f) => `${f} ${fmt(rates.get(f)![r]!)}`).join(', ')} changes/s`);
  }
} finally {
  await dropDb(db);
}
const p = figure(pgRates);
console.log(`\n${fmt(N)} inserts + ${fmt(N / 2)} updates, ${PARTITIONS} partitions, batches of ${BATCH}, lingerMs ${LINGER_MS}, ${REPEAT} repeats (median (min – max))`);
console.log(`postgres sink  ${fmtFigure(p)} changes/s`);
for (const f of FORMATS) {
  const q = figure(rates.get(f)!);
  console.log(`file sink ${f.padEnd(7)}  ${fmtFigure(q)} changes/s, ratio file/postgres ${fmtFigure(ratio(q, p), 2)}, ${files.get(f)} files per repeat`);
}
