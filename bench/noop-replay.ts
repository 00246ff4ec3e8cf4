/**
 * Benchmark 6, no-op replay: after an end-to-end run, the processor's consumer group is rewound to
 * the start of the change topic and processor+sink run again (bench/child.ts, a fresh process) over
 * every change the target already holds. Version state in Redis (position + content hash) makes each
 * a skip without a target write. Rate = changes / time from the first skipped record to the last;
 * the run also checks that nothing was written (applied = 0).
 */
import { rateOf, spawnSyncline, timeProgress, withAdmin } from './common.js';
import type { E2eContext } from './end-to-end.js';

export interface ReplayRun {
  changes: number;
  perSec: number;
  peakMb: number;
  applied: number;
  skippedStale: number;
  skippedUnchanged: number;
}

export async function runNoopReplay(ctx: E2eContext, opts: { nodeArgs?: string[]; /** Another checkout (A/B against a baseline). */ root?: string } = {}): Promise<ReplayRun> {
  const topic = `${ctx.prefix}.cdc.public.${ctx.table}`;
  await withAdmin((a) => a.resetOffsets({ groupId: `${ctx.prefix}.${ctx.pipeline}.processor`, topic, earliest: true }));
  const n = ctx.workload.changes;
  const child = spawnSyncline(ctx.configFile, ['process', 'sink'], { nodeArgs: opts.nodeArgs, root: opts.root });
  try {
    const t = await timeProgress('no-op replay', async () => {
      const s = child.stats;
      return s.skippedStale + s.skippedUnchanged + s.applied + s.deadLettered;
    }, n, { alive: child.exited });
    const s = child.stats;
    return { changes: n, perSec: rateOf(t, n), peakMb: child.peakMb(), applied: s.applied, skippedStale: s.skippedStale, skippedUnchanged: s.skippedUnchanged };
  } finally {
    await child.stop();
  }
}
