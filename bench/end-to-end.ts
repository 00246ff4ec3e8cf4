/**
 * Benchmark 4, end to end at full speed: every stage of syncline in one child process (capture,
 * processor, sink: `syncline start`) streaming the workload from a fresh slot into a fresh target
 * database, with its own topic prefix, consumer group and Redis key prefix. Rate = changes / time
 * from the first change reaching the sink to the target holding the final state (every row
 * inserted, every update applied: checked in SQL). Also the child's peak RSS (benchmark 7).
 * `split`: the same in two processes, as a deployment that wants more than one core runs it:
 * `syncline capture` in one, `syncline process` + `sink` (processor and sink writer together, no
 * apply topic) in the other.
 */
import { randomBytes } from 'node:crypto';
import { cpuPerChange, sampleCpu } from './cpu.js';
import { createDb, dropDb, PG, rateOf, spawnSyncline, sql, sleep, timeProgress, writeConfig, deleteTopics, deleteRedisKeys, tableDdl, type Source, type Workload } from './common.js';

export interface E2eRun {
  changes: number;
  perSec: number;
  perSecWithStartup: number;
  peakMb: number;
  /** split: peak RSS of the capture process (peakMb is the process+sink one's). */
  capturePeakMb?: number;
  applied: number;
  /** µs of CPU per change by process role over the run (bench/cpu.ts; empty off Linux). */
  cpu: Record<string, number>;
  /** What the no-op replay (bench/noop-replay.ts) needs; call cleanup() when done. */
  ctx: E2eContext;
}

export interface E2eContext {
  prefix: string;
  pipeline: string;
  configFile: string;
  targetDb: string;
  table: string;
  workload: Workload;
  cleanup(): Promise<void>;
}

/** Fresh target database with the table (same shape as the source's). */
export async function createTarget(src: Source, tag: string): Promise<string> {
  const db = `${src.db}_${tag}`;
  await createDb(db);
  await sql(db, tableDdl(`public.${src.table}`, src.shape));
  return db;
}

/** Wait until the target holds `inserts` rows of which `updates` updated. */
export async function targetDone(db: string, table: string, w: Workload): Promise<boolean> {
  const r = await sql(db, `select count(*)::int as n, count(*) filter (where v = 2)::int as u from public.${table}`);
  return r.rows[0].n === w.inserts && r.rows[0].u === w.updates;
}

export async function runEndToEnd(src: Source, slot: string, w: Workload, tag: string, opts: { nodeArgs?: string[]; root?: string; split?: boolean; /** Field encryption of these columns (decrypting target; key generated here). */ encrypt?: string[]; /** Transform steps of the table. */ transform?: unknown[]; /** Change history: kept in the target's database (written in the target write's transaction) or in a database of its own. */ history?: 'target-db' | 'own-db' } = {}): Promise<E2eRun> {
  const prefix = `${src.prefix}${tag}`;
  const targetDb = await createTarget(src, tag);
  const historyDb = opts.history === 'own-db' ? `${targetDb}_history` : opts.history === 'target-db' ? targetDb : undefined;
  if (opts.history === 'own-db') await createDb(historyDb!);
  const historyUrl = historyDb ? `postgres://${PG.user}@${PG.host}:${PG.port}/${historyDb}` : undefined;
  const configFile = writeConfig({ prefix, pipeline: 'bench', sourceDb: src.db, targetDb, slot, publication: src.publication, table: src.table, snapshot: 'never', ...(opts.encrypt ? { encrypt: opts.encrypt } : {}), ...(opts.transform ? { transform: opts.transform } : {}), ...(historyUrl ? { historyUrl } : {}) });
  const ctx: E2eContext = {
    prefix, pipeline: 'bench', configFile, targetDb, table: src.table, workload: w,
    async cleanup() {
      await deleteTopics(prefix);
      await deleteRedisKeys(prefix);
      await dropDb(targetDb);
      if (opts.history === 'own-db') await dropDb(historyDb!);
    },
  };
  const started = Date.now();
  const spawnOpts = { nodeArgs: opts.nodeArgs, root: opts.root, ...(opts.encrypt ? { env: { SYNCLINE_ENCRYPTION_KEYS: `k1=${randomBytes(32).toString('hex')}` } } : {}) };
  const capture = opts.split ? spawnSyncline(configFile, ['capture'], spawnOpts) : undefined;
  const child = spawnSyncline(configFile, opts.split ? ['process', 'sink'] : ['capture', 'process', 'sink'], spawnOpts);
  const exited = () => child.exited() ?? (capture?.exited() ? `capture: ${capture.exited()}` : undefined);
  const roles = new Map<number, string>([[child.pid, opts.split ? 'syncline process+sink' : 'syncline (one process)']]);
  if (capture) roles.set(capture.pid, 'syncline capture');
  const cpuBefore = sampleCpu(roles, targetDb);
  try {
    // Progress = records that reached the sink; done = the target holds the final state.
    const t = await timeProgress('end to end', async () => child.stats.received, w.changes, { alive: exited });
    for (;;) {
      if (await targetDone(targetDb, src.table, w)) break;
      const dead = exited();
      if (dead) throw new Error(`end to end: ${dead}`);
      if (Date.now() - t.doneAt > 120_000) throw new Error('end to end: the target did not reach the final state within 120 s of the last record');
      await sleep(100);
    }
    const doneAt = Date.now();
    const cpu = cpuPerChange(cpuBefore, sampleCpu(roles, targetDb), w.changes);
    const timing = { ...t, doneAt };
    return { changes: w.changes, perSec: rateOf(timing, w.changes), perSecWithStartup: w.changes / ((doneAt - started) / 1000), peakMb: child.peakMb(), capturePeakMb: capture?.peakMb(), applied: child.stats.applied, cpu, ctx };
  } catch (err) {
    await Promise.all([child.stop(), capture?.stop()]);
    await ctx.cleanup();
    throw err;
  } finally {
    await Promise.all([child.stop(), capture?.stop()]);
  }
}
