/**
 * Benchmark 7, memory: peak RSS (VmHWM from /proc/<pid>/status) of the syncline capture process
 * while it snapshots a table of `rows` rows (5 columns) into Kafka, at two table sizes (rows/10 and
 * rows), so growth with table size shows. The peak RSS during the end-to-end run (all stages in one
 * process) comes from bench/end-to-end.ts. Target: < 300 MB per process at any table size.
 */
import { createSource, deleteTopics, dropSlots, rateOf, spawnSyncline, sql, timeProgress, writeConfig, fmt } from './common.js';

export const MEMORY_TARGET_MB = 300;

export interface SnapshotMemoryRun {
  rows: number;
  peakMb: number;
  perSec: number;
  seconds: number;
}

export async function runSnapshotMemory(rows: number, log: (s: string) => void = () => undefined): Promise<SnapshotMemoryRun> {
  const src = await createSource('narrow', 'snap');
  try {
    const t0 = Date.now();
    const chunk = 1_000_000;
    for (let a = 1; a <= rows; a += chunk) {
      await sql(src.db, `insert into public.${src.table} select g, 'name ' || g, (g % 100000) + 0.25, now(), 1 from generate_series($1::bigint, $2::bigint) g`, [a, Math.min(rows, a + chunk - 1)]);
    }
    await sql(src.db, `vacuum analyze public.${src.table}`);
    log(`  snapshot source: ${fmt(rows)} rows written in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    const configFile = writeConfig({ prefix: src.prefix, pipeline: 'bench', sourceDb: src.db, slot: `${src.prefix}_snap`, publication: src.publication, table: src.table, snapshot: 'initial' });
    const started = Date.now();
    const child = spawnSyncline(configFile, ['capture']);
    try {
      const t = await timeProgress('snapshot', async () => child.stats.produced, rows, { alive: child.exited, everyMs: 200 });
      return { rows, peakMb: child.peakMb(), perSec: rateOf(t, rows), seconds: (t.doneAt - started) / 1000 };
    } finally {
      await child.stop();
    }
  } finally {
    await dropSlots(src.prefix);
    await deleteTopics(src.prefix);
    await src.cleanup();
  }
}
