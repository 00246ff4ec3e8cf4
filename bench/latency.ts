/**
 * Benchmark 5, latency at a fixed offered load: syncline (all stages, one child process) runs on a
 * fresh source and target; a generator commits `rate` inserts per second for `seconds` seconds
 * (transactions of rate/100 rows every 10 ms, paced on the clock: a late transaction is caught up,
 * not dropped). Each row carries the time it was written (clock_timestamp(), the commit follows
 * within a millisecond or two); a trigger on the target stamps the time it was applied. Latency =
 * applied − written, per row: p50, p95, p99 and max over every row of the run, from SQL. Each run
 * starts on a settled machine (common.ts settle(): checkpoint, CPUs idle), so the tail is
 * syncline's and not the clean-up of the benchmark before it.
 */
import { createDb, dropDb, spawnSyncline, sql, sleep, withClient, writeConfig, deleteTopics, deleteRedisKeys, createSource, dropSlots, fmt, settle } from './common.js';

export interface LatencyRun {
  offeredPerSec: number;
  /** Rows committed per second by the generator, as achieved. */
  achievedPerSec: number;
  rows: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  peakMb: number;
  /** How long the machine took to settle before the run (settle()). */
  settledMs: number;
}

export async function runLatency(opts: { rate: number; seconds: number; log?: (s: string) => void; /** Another checkout (A/B against a baseline). */ root?: string }): Promise<LatencyRun> {
  const src = await createSource('narrow', 'lat');
  const targetDb = `${src.db}_dst`;
  const prefix = src.prefix;
  await createDb(targetDb);
  await sql(targetDb, `create table public.${src.table} (id bigint primary key, name text not null, amount numeric(12,2) not null, updated_at timestamptz not null, v int not null, applied_at timestamptz)`);
  await sql(targetDb, `create function stamp() returns trigger language plpgsql as $$ begin new.applied_at := clock_timestamp(); return new; end $$`);
  await sql(targetDb, `create trigger stamp before insert or update on public.${src.table} for each row execute function stamp()`);
  const quiet = await settle();
  opts.log?.(`  latency: machine settled in ${(quiet.waitedMs / 1000).toFixed(1)} s (CPUs ${(quiet.idle * 100).toFixed(0)} % idle)`);
  // The slot exists before syncline starts, so the warm-up row below is in its stream.
  const slot = await src.slot('lat');
  const configFile = writeConfig({ prefix, pipeline: 'bench', sourceDb: src.db, targetDb, slot, publication: src.publication, table: src.table, snapshot: 'never', lingerMs: 5, sinkBatch: 1000 });
  const child = spawnSyncline(configFile, ['capture', 'process', 'sink'], { root: opts.root });
  try {
    // Ready = one warm-up row went all the way through.
    await sql(src.db, `insert into public.${src.table} values (0, 'warm-up', 0, clock_timestamp(), 1)`);
    for (let i = 0; ; i++) {
      const r = await sql(targetDb, `select 1 from public.${src.table} where id = 0`);
      if (r.rowCount) break;
      const dead = child.exited();
      if (dead) throw new Error(`latency: syncline ${dead}`);
      if (i > 1200) throw new Error('latency: the warm-up row did not arrive within 120 s');
      await sleep(100);
    }
    const perTx = Math.max(1, Math.round(opts.rate / 100));
    const total = Math.round(opts.rate * opts.seconds);
    const t0 = Date.now();
    let written = 0;
    await withClient(src.db, async (c) => {
      for (let k = 0; written < total; k++) {
        const due = t0 + k * 10;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        const n = Math.min(perTx, total - written);
        await c.query(`insert into public.${src.table} select g, 'name ' || g, g % 1000, clock_timestamp(), 1 from generate_series($1::bigint, $2::bigint) g`, [written + 1, written + n]);
        written += n;
      }
    });
    const genSeconds = (Date.now() - t0) / 1000;
    opts.log?.(`  latency: ${fmt(written)} rows offered in ${genSeconds.toFixed(1)} s`);
    for (let i = 0; ; i++) {
      const r = await sql(targetDb, `select count(*)::int as n from public.${src.table} where id > 0`);
      if (r.rows[0].n >= written) break;
      const dead = child.exited();
      if (dead) throw new Error(`latency: syncline ${dead}`);
      if (i > 3000) throw new Error(`latency: only ${r.rows[0].n} of ${written} rows arrived within 300 s of the end of the load`);
      await sleep(100);
    }
    const q = await sql(targetDb, `select percentile_cont(array[0.5, 0.95, 0.99]) within group (order by ms) as p, max(ms) as max
      from (select extract(epoch from applied_at - updated_at) * 1000 as ms from public.${src.table} where id > 0) x`);
    const p = q.rows[0].p as number[];
    return { offeredPerSec: opts.rate, achievedPerSec: written / genSeconds, rows: written, p50: p[0]!, p95: p[1]!, p99: p[2]!, max: Number(q.rows[0].max), peakMb: child.peakMb(), settledMs: quiet.waitedMs };
  } finally {
    await child.stop();
    await dropSlots(prefix);
    await deleteTopics(prefix);
    await deleteRedisKeys(prefix);
    await dropDb(targetDb);
    await src.cleanup();
  }
}
