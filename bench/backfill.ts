/**
 * Backfill rate next to the initial snapshot's, on the same table (capture only: source → Kafka,
 * the part the two differ in; the sink applies 'r' rows the same way for both).
 *
 *   npm run bench -- --only backfill [--backfill-rows N (default 200,000)] [--repeat K]
 *   npx tsx bench/backfill.ts [--rows N] [--repeat K] [--source postgres|mariadb]      (prints only)
 *
 * One source table of N narrow rows (bench/common.ts). Per repeat: (1) a capture with snapshot:
 * initial on a fresh slot: its snapshot; (2) a capture with snapshot: never on another fresh slot,
 * then one backfill per chunk size (src/capture/backfill.ts: watermarks, chunks, while streaming).
 * PostgreSQL also (3): a postgres-poll capture in hash mode (src/capture/poll/, ADR 0015) on the same
 * table, its first pass (chunk digests, then every chunk's rows in keyset pages).
 * Rate: rows in the change topic from its first message to the N-th (timeProgress), start-up
 * excluded, the same measurement for all. In-process (tsx), capture stage only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../src/core/kafkajs-patch.js';
import { parseConfig } from '../src/core/config/load.js';
import { Runtime } from '../src/runtime.js';
import { topics } from '../src/core/kafka.js';
import { BROKERS, PG, REGISTRY, createSource, deleteTopics, figure, fmt, fmtFigure, rateOf, sleep, timeProgress, topicCounter, uid, withAdmin, writeWorkload, type Figure, runBenchCli } from './common.js';
import { MARIADB_DDL, MY, my } from './mariadb.js';

export const BACKFILL_CHUNKS = [2000, 10000];

export type BackfillSourceKind = 'postgres' | 'mariadb';

export interface BackfillBenchResult {
  source: BackfillSourceKind;
  rows: number;
  repeat: number;
  snapshot: Figure;
  /** Per chunk size. */
  backfill: { chunk: number; rate: Figure; dropped: number }[];
  /** PostgreSQL: the first pass of a hash-tracked poll source over the same table. */
  hashScan?: Figure;
}

export const HASH_CHUNK = 5000;

function config(prefix: string, db: string, slot: string, publication: string, snapshot: 'initial' | 'never') {
  return parseConfig(JSON.stringify({
    version: 1, topicPrefix: prefix,
    kafka: { brokers: BROKERS, partitions: 3 }, schemaRegistry: { url: REGISTRY },
    pipelines: {
      bench: {
        source: { type: 'postgres', connection: { ...PG, database: db }, slot, publication, snapshot },
        target: { type: 'postgres', connection: { ...PG, database: db } },
        conflict: { strategy: 'source-wins' },
        tables: [{ source: 'public.bench_rows' }],
      },
    },
  }), 'bench.yaml', {});
}

/** The table to backfill, in PostgreSQL or in MariaDB: a pipeline config per capture run, the table's name and topic. */
interface BenchSource {
  /** A hash-tracked postgres-poll pipeline over the table (PostgreSQL only). */
  pollConfig?(prefix: string, stateDir: string): ReturnType<typeof parseConfig>;
  prefix: string;
  table: string;
  topicSchema: string;
  config(prefix: string, tag: string, snapshot: 'initial' | 'never'): ReturnType<typeof parseConfig>;
  cleanup(): Promise<void>;
}

async function pgBenchSource(n: number): Promise<BenchSource> {
  const src = await createSource('narrow', 'bf');
  await writeWorkload(src.db, 'public.bench_rows', 'narrow', n, 0);
  return {
    prefix: src.prefix, table: 'public.bench_rows', topicSchema: 'public',
    config: (prefix, tag, snapshot) => config(prefix, src.db, `${src.prefix}_${tag}`, src.publication, snapshot),
    pollConfig: (prefix, stateDir) => parseConfig(JSON.stringify({
      version: 1, topicPrefix: prefix,
      kafka: { brokers: BROKERS, partitions: 3 }, schemaRegistry: { url: REGISTRY },
      pipelines: {
        bench: {
          source: { type: 'postgres-poll', connection: { ...PG, database: src.db }, intervalMs: 60_000, pageSize: HASH_CHUNK, stateDir, tables: { 'public.bench_rows': { mode: 'hash', chunkSize: HASH_CHUNK } } },
          target: { type: 'postgres', connection: { ...PG, database: src.db } },
          conflict: { strategy: 'source-wins' },
          tables: [{ source: 'public.bench_rows' }],
        },
      },
    }), 'bench.yaml', {}),
    cleanup: () => src.cleanup(),
  };
}

/** The same 5-column rows in MariaDB (bench/mariadb.ts's table); each capture run registers as a replica with its own server id. */
async function mariadbBenchSource(n: number): Promise<BenchSource> {
  const id = uid();
  const db = `syncline_bench_${id}_bfmy`;
  await my(undefined, `CREATE DATABASE \`${db}\``);
  await my(db, MARIADB_DDL('bench_rows'));
  for (let from = 1; from <= n; from += 50_000) {
    const to = Math.min(n, from + 49_999);
    await my(db, `INSERT INTO bench_rows (id, name, amount, v) SELECT seq, CONCAT('name ', seq), (seq % 100000) + 0.25, 1 FROM seq_${from}_to_${to}`);
  }
  let serverId = 200_000 + parseInt(id.slice(0, 6), 16);
  return {
    prefix: `bench${id}`, table: `${db}.bench_rows`, topicSchema: db,
    config: (prefix, _tag, snapshot) => parseConfig(JSON.stringify({
      version: 1, topicPrefix: prefix,
      kafka: { brokers: BROKERS, partitions: 3 }, schemaRegistry: { url: REGISTRY },
      pipelines: {
        bench: {
          source: { type: 'mariadb', connection: { ...MY, database: db }, serverId: serverId++, snapshot },
          target: { type: 'postgres', connection: { ...PG, database: 'postgres' } },
          conflict: { strategy: 'source-wins' },
          tables: [{ source: `${db}.bench_rows`, target: 'public.bench_rows' }],
        },
      },
    }), 'bench.yaml', {}),
    cleanup: async () => void (await my(undefined, `DROP DATABASE IF EXISTS \`${db}\``)),
  };
}

export async function runBackfillBench(o: { rows: number; repeat: number; log: (s: string) => void; source?: BackfillSourceKind }): Promise<BackfillBenchResult> {
  const N = o.rows;
  const kind = o.source ?? 'postgres';
  const src = kind === 'mariadb' ? await mariadbBenchSource(N) : await pgBenchSource(N);
  const runtimes: Runtime[] = [];
  const prefixes: string[] = [];
  const snaps: number[] = [];
  const rates = new Map<number, number[]>(BACKFILL_CHUNKS.map((c) => [c, []]));
  const scans: number[] = [];
  let dropped = 0;
  try {
    await withAdmin(async (admin) => {
      for (let r = 0; r < o.repeat; r++) {
        // (1) the initial snapshot
        const snapPrefix = `${src.prefix}s${r}`;
        prefixes.push(snapPrefix);
        const rt1 = new Runtime(src.config(snapPrefix, `snap${r}`, 'initial'), new Set(['capture']));
        runtimes.push(rt1);
        const t1 = timeProgress('snapshot', topicCounter(admin, topics.cdc(snapPrefix, src.topicSchema, 'bench_rows')), N);
        await rt1.start();
        const snap = rateOf(await t1, N);
        await rt1.stop();
        snaps.push(snap);
        o.log(`  repeat ${r + 1}: initial snapshot of ${fmt(N)} rows: ${fmt(snap)} rows/s`);

        // (2) backfills while streaming (nothing else writes: the windows are empty)
        const bfPrefix = `${src.prefix}b${r}`;
        prefixes.push(bfPrefix);
        const rt2 = new Runtime(src.config(bfPrefix, `bf${r}`, 'never'), new Set(['capture']));
        runtimes.push(rt2);
        await rt2.start();
        for (let i = 0; i < 600 && !rt2.pipelines[0]?.capture?.backfiller; i++) await sleep(100);
        const bf = rt2.pipelines[0]!.capture!.backfiller!;
        await sleep(1000);
        const count = topicCounter(admin, topics.cdc(bfPrefix, src.topicSchema, 'bench_rows'));
        for (const chunk of BACKFILL_CHUNKS) {
          const before = await count();
          const t = timeProgress(`backfill, chunks of ${chunk}`, async () => (await count()) - before, N);
          const b = await bf.request({ table: src.table, chunkSize: chunk });
          const rate = rateOf(await t, N);
          for (let i = 0; i < 100 && bf.get(b.id).status !== 'done'; i++) await sleep(100);
          rates.get(chunk)!.push(rate);
          o.log(`  repeat ${r + 1}: backfill of ${fmt(N)} rows, chunks of ${fmt(chunk)}: ${fmt(rate)} rows/s (${bf.get(b.id).chunks} chunks)`);
        }
        dropped += rt2.pipelines[0]!.capture!.stats.backfill.backfillDropped;
        await rt2.stop();

        // (3) PostgreSQL: a hash-tracked poll source's first pass over the same table
        if (src.pollConfig) {
          const pollPrefix = `${src.prefix}h${r}`;
          prefixes.push(pollPrefix);
          const stateDir = mkdtempSync(join(tmpdir(), 'syncline-bench-hash-'));
          try {
            const rt3 = new Runtime(src.pollConfig(pollPrefix, stateDir), new Set(['capture']));
            runtimes.push(rt3);
            const t3 = timeProgress('hash scan', topicCounter(admin, topics.cdc(pollPrefix, src.topicSchema, 'bench_rows')), N);
            await rt3.start();
            const scan = rateOf(await t3, N);
            await rt3.stop();
            scans.push(scan);
            o.log(`  repeat ${r + 1}: hash-tracked poll, first pass over ${fmt(N)} rows: ${fmt(scan)} rows/s`);
          } finally {
            rmSync(stateDir, { recursive: true, force: true });
          }
        }
      }
    });
  } finally {
    await Promise.allSettled(runtimes.map((r) => r.stop()));
    for (const p of prefixes) await deleteTopics(p).catch(() => undefined);
    await src.cleanup();
  }
  return { source: kind, rows: N, repeat: o.repeat, snapshot: figure(snaps), backfill: BACKFILL_CHUNKS.map((chunk) => ({ chunk, rate: figure(rates.get(chunk)!), dropped })), ...(scans.length > 0 ? { hashScan: figure(scans) } : {}) };
}

export function backfillTable(r: BackfillBenchResult): string {
  const snapshot = r.source === 'mariadb' ? 'initial snapshot (consistent-snapshot transaction, one streamed query)' : 'initial snapshot (exported snapshot, one cursor)';
  const marks = r.source === 'mariadb' ? 'watermark rows in the binlog' : 'watermarks';
  const rows = [
    `| ${r.source === 'mariadb' ? 'MariaDB' : 'PostgreSQL'}: what | rows/s, median (min – max) | of the snapshot's |`,
    '| --- | --- | --- |',
    `| ${snapshot} | ${fmtFigure(r.snapshot)} | 100% |`,
    ...r.backfill.map((b) => `| backfill, chunks of ${fmt(b.chunk)} (${marks}, while streaming) | ${fmtFigure(b.rate)} | ${fmt((100 * b.rate.median) / r.snapshot.median)}% |`),
    ...(r.hashScan ? [`| hash-tracked poll (postgres-poll), first pass: chunk digests, then rows in pages of ${fmt(HASH_CHUNK)} | ${fmtFigure(r.hashScan)} | ${fmt((100 * r.hashScan.median) / r.snapshot.median)}% |`] : []),
  ];
  return rows.join('\n');
}

export function backfillSection(r: BackfillBenchResult, m: { nproc: number; cpu: string; node: string; date: string }, command: string, my?: BackfillBenchResult): string {
  return [
    '## Backfill next to the initial snapshot',
    '',
    `One table of ${fmt(r.rows)} narrow rows (5 columns); capture stage only, in one process (tsx), 3 partitions, acks=all.`,
    'Rate = rows in the change topic from the first message to the last (offsets polled every 100 ms; start-up excluded),',
    `median of ${r.repeat} repeat${r.repeat === 1 ? '' : 's'} (min – max). The snapshot reads the slot's exported snapshot through one cursor;`,
    'a backfill (src/capture/backfill.ts) writes a low and a high watermark into the WAL per chunk, reads the chunk',
    '(`key > last ORDER BY key LIMIT n`) and emits it when the stream reaches the high watermark, while the stream goes on.',
    ...(r.hashScan ? ['The hash-tracked poll source (src/capture/poll/, ADR 0015) reads one digest per key-range chunk, then the rows of every', 'chunk it has not seen (its first pass: all of them) in keyset pages, keeping per-key hashes on disk; no slot, no WAL.'] : []),
    '',
    backfillTable(r),
    ...(my ? [
      '',
      `MariaDB 10.11, the same rows (${fmt(my.rows)}) and measurement, in the same run: the snapshot is one \`START TRANSACTION WITH CONSISTENT SNAPSHOT\``,
      'query streamed; a backfill (connectors/mariadb/source/backfill.ts, ADR 0020) inserts and deletes a signal-table row per',
      'watermark (read back from the binlog) and reads each chunk with `WHERE id > last ORDER BY id LIMIT n`.',
      '',
      backfillTable(my),
    ] : []),
    '',
    `Machine: ${m.nproc} CPU${m.nproc === 1 ? '' : 's'} (\`nproc\`), ${m.cpu}, Node ${m.node}, PostgreSQL 15${my ? ', MariaDB 10.11' : ''}, Kafka (one broker), all on the same machine; measured ${m.date}.`,
    `Reproduce: \`npm run stack:up && ${command}\`.`,
  ].join('\n');
}

runBenchCli(import.meta.url, (arg) => runBackfillBench({ rows: Number(arg('rows', '200000')), repeat: Number(arg('repeat', '1')), source: arg('source', 'postgres') as BackfillSourceKind, log: (s) => console.log(s) }), backfillTable);
