/**
 * Backfill rate next to the initial snapshot's, on the same table (capture only: source → Kafka,
 * the part the two differ in; the sink applies 'r' rows the same way for both).
 *
 *   npx tsx bench/backfill.ts [--rows N (default 200,000)] [--chunks 2000,10000]
 *
 * One source table of N narrow rows (bench/common.ts). (1) A capture with snapshot: initial on a
 * fresh slot: its snapshot. (2) A capture with snapshot: never on another fresh slot, then one
 * backfill per chunk size (src/capture/backfill.ts, watermarks and chunks while streaming). Rate:
 * rows in the change topic from its first message to the N-th (bench/common.ts timeProgress), start-up
 * excluded, the same measurement for both. Not part of `npm run bench` / BENCHMARKS.md yet.
 */
import '../src/core/kafkajs-patch.js';
import { parseConfig } from '../src/core/config/load.js';
import { Runtime } from '../src/runtime.js';
import { topics } from '../src/core/kafka.js';
import { BROKERS, PG, REGISTRY, createSource, deleteTopics, fmt, rateOf, sleep, timeProgress, topicCounter, withAdmin, writeWorkload } from './common.js';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const N = Number(arg('rows', '200000'));
const CHUNKS = arg('chunks', '2000,10000').split(',').map(Number);

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

async function main(): Promise<void> {
  const src = await createSource('narrow', 'bf');
  const runtimes: Runtime[] = [];
  try {
    await writeWorkload(src.db, 'public.bench_rows', 'narrow', N, 0);
    await withAdmin(async (admin) => {
      // (1) the initial snapshot
      const snapPrefix = `${src.prefix}s`;
      const rt1 = new Runtime(config(snapPrefix, src.db, `${src.prefix}_snap`, src.publication, 'initial'), new Set(['capture']));
      runtimes.push(rt1);
      const t1 = timeProgress('snapshot', topicCounter(admin, topics.cdc(snapPrefix, 'public', 'bench_rows')), N);
      await rt1.start();
      const snap = rateOf(await t1, N);
      await rt1.stop();
      console.log(`initial snapshot of ${fmt(N)} rows: ${fmt(snap)} rows/s`);

      // (2) backfills while streaming (nothing else writes: the windows are empty)
      const bfPrefix = `${src.prefix}b`;
      const rt2 = new Runtime(config(bfPrefix, src.db, `${src.prefix}_bf`, src.publication, 'never'), new Set(['capture']));
      runtimes.push(rt2);
      await rt2.start();
      for (let i = 0; i < 600 && !rt2.pipelines[0]?.capture?.backfiller; i++) await sleep(100);
      const bf = rt2.pipelines[0]!.capture!.backfiller!;
      await sleep(1000);
      const count = topicCounter(admin, topics.cdc(bfPrefix, 'public', 'bench_rows'));
      for (const chunk of CHUNKS) {
        const before = await count();
        const t = timeProgress(`backfill, chunks of ${chunk}`, async () => (await count()) - before, N);
        const b = await bf.request({ table: 'public.bench_rows', chunkSize: chunk });
        const rate = rateOf(await t, N);
        for (let i = 0; i < 100 && bf.get(b.id).status !== 'done'; i++) await sleep(100);
        const v = bf.get(b.id);
        console.log(`backfill of ${fmt(N)} rows, chunks of ${fmt(chunk)}: ${fmt(rate)} rows/s (${fmt(rate / snap * 100)}% of the snapshot's); the backfill's own figure: ${fmt(v.rowsPerSec)} rows/s over ${v.chunks} chunks`);
      }
      await rt2.stop();
    });
  } finally {
    await Promise.allSettled(runtimes.map((r) => r.stop()));
    for (const p of ['s', 'b']) await deleteTopics(src.prefix + p).catch(() => undefined);
    await src.cleanup();
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
