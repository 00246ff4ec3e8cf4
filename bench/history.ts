/**
 * Cost of the change history end to end (`--only history`, or on its own:
 * `npx tsx bench/history.ts [--changes N] [--repeat K]`, defaults 100,000 and 1). The same workload
 * (N/1.5 inserts then N/3 updates of the 5-column bench row, bench/common.ts 'narrow'), decoded from
 * three slots created before it was written, goes through `syncline start` (one process,
 * bench/end-to-end.ts) three times per repeat, in rotating order: without history, with the history
 * in the target's own database (each history row written in the target write's transaction: the
 * default for a PostgreSQL target) and with the history in a database of its own (written after the
 * target commit, at least once, deduplicated by position). Every change is recorded with its before
 * and after images. Rate = changes / time from the first change at the sink to the target holding
 * the final state (checked in SQL). Target (issue 23): the history costs at most 25%.
 */
import { runEndToEnd } from './end-to-end.js';
import { createSource, figure, fmt, fmtFigure, ratio, sql, writeWorkload, type Figure, runBenchCli, e2eSectionFooter } from './common.js';

export const TARGET_RATIO = 0.75;

const MODES = ['off', 'target-db', 'own-db'] as const;
type Mode = (typeof MODES)[number];

export interface HistoryResult {
  changes: number;
  repeat: number;
  rates: Record<Mode, Figure>;
  /** with history / without, per repeat */
  ratios: Record<Exclude<Mode, 'off'>, Figure>;
}

export async function runHistoryBench(o: { changes: number; repeat: number; log: (s: string) => void }): Promise<HistoryResult> {
  const rates: Record<Mode, number[]> = { off: [], 'target-db': [], 'own-db': [] };
  const inserts = Math.round((o.changes * 2) / 3);
  const updates = o.changes - inserts;
  for (let i = 0; i < o.repeat; i++) {
    const src = await createSource('narrow', `hi${i}`);
    try {
      const slots = { off: await src.slot('off'), 'target-db': await src.slot('tdb'), 'own-db': await src.slot('odb') };
      const w = await writeWorkload(src.db, src.table, 'narrow', inserts, updates);
      const order = MODES.map((_, k) => MODES[(k + i) % MODES.length]!);
      for (const mode of order) {
        const run = await runEndToEnd(src, slots[mode], w, mode.replace('-', ''), mode === 'off' ? {} : { history: mode });
        if (mode !== 'off') {
          // The history holds every change (a run that recorded nothing would be fast for nothing).
          const db = mode === 'target-db' ? run.ctx.targetDb : `${run.ctx.targetDb}_history`;
          const n = (await sql(db, `select count(*)::int as n from syncline_history.changes`)).rows[0].n as number;
          if (n < w.changes) throw new Error(`history (${mode}): ${n} entries for ${w.changes} changes`);
        }
        await run.ctx.cleanup();
        rates[mode].push(run.perSec);
        o.log(`  repeat ${i + 1}: history ${mode} ${fmt(run.perSec)} changes/s`);
      }
    } finally {
      await src.cleanup();
    }
  }
  const f = { off: figure(rates.off), 'target-db': figure(rates['target-db']), 'own-db': figure(rates['own-db']) };
  return { changes: o.changes, repeat: o.repeat, rates: f, ratios: { 'target-db': ratio(f['target-db'], f.off), 'own-db': ratio(f['own-db'], f.off) } };
}

export function historyTable(r: HistoryResult): string {
  return [
    '| Pipeline (`syncline start`, PostgreSQL → PostgreSQL) | changes/s | ratio |',
    '| --- | ---: | ---: |',
    `| no history | ${fmtFigure(r.rates.off)} | 1 |`,
    `| history in the target's database (same transaction) | ${fmtFigure(r.rates['target-db'])} | ${fmtFigure(r.ratios['target-db'], 2)} |`,
    `| history in a database of its own (after the commit) | ${fmtFigure(r.rates['own-db'])} | ${fmtFigure(r.ratios['own-db'], 2)} |`,
  ].join('\n');
}

export function historySection(r: HistoryResult, m: { nproc: number; cpu: string; node: string; date: string }, command: string): string {
  const met = r.ratios['target-db'].median >= TARGET_RATIO && r.ratios['own-db'].median >= TARGET_RATIO;
  return [
    '## Change history',
    '',
    `End to end (bench/history.ts): ${fmt(r.changes)} changes (inserts, then updates of a third of the rows) of a 5-column row`,
    'through one `syncline start` process, without history and with every change recorded (before and after images) in the',
    "target's own database (in the target write's transaction) or in a database of its own; the runs of a repeat read slots",
    `made before the same workload, in rotating order. Median of ${r.repeat} repeat${r.repeat === 1 ? '' : 's'}${r.repeat > 1 ? ' (min – max)' : ''}.`,
    `Target: the history costs at most 25% (ratio ≥ ${TARGET_RATIO}). **${met ? 'Met' : 'Not met'}.**`,
    '',
    historyTable(r),
    '',
    ...e2eSectionFooter(m, command, 'the rows'),
  ].join('\n');
}

runBenchCli(import.meta.url, (arg) => runHistoryBench({ changes: Number(arg('changes', '100000')), repeat: Number(arg('repeat', '1')), log: (s) => console.log(s) }), historyTable);
