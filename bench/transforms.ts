/**
 * Cost of a 5-step transform chain end to end (`--only transforms`, or on its own:
 * `npx tsx bench/transforms.ts [--changes N] [--repeat K]`, defaults 100,000 and 1). The same
 * workload (N/1.5 inserts then N/3 updates of the 5-column bench row, bench/common.ts 'narrow'),
 * decoded from two slots created before it was written, goes through `syncline start` (one process,
 * bench/end-to-end.ts) twice per repeat, in alternating order: once plain, once with the chain below
 * (every row passes the filter, so both runs write the same number of rows; the values the chain
 * writes are those of the plain run but for updated_at, shown as Berlin wall time). Rate = changes /
 * time from the first change at the sink to the target holding the final state (checked in SQL).
 * Target (issue 27): the chain costs at most 15%.
 */
import { runEndToEnd } from './end-to-end.js';
import { createSource, figure, fmt, fmtFigure, ratio, writeWorkload, type Figure, runBenchCli, e2eSectionFooter } from './common.js';

/** Five steps of five kinds: a filter, a computed column (exact decimal arithmetic), a cast, a value map, a time zone conversion. */
export const CHAIN = [
  { where: "amount >= 0 and name != 'x'" },
  { compute: { amount: 'amount + 0' } },
  { cast: { name: 'string' } },
  { map: { v: { values: { '1': 1, '2': 2 } } } },
  { timezone: { columns: ['updated_at'], to: 'Europe/Berlin' } },
];

export const TARGET_RATIO = 0.85;

export interface TransformsResult {
  changes: number;
  repeat: number;
  plain: Figure;
  transformed: Figure;
  /** transformed / plain, per repeat */
  ratio: Figure;
}

export async function runTransformsBench(o: { changes: number; repeat: number; log: (s: string) => void }): Promise<TransformsResult> {
  const plain: number[] = [];
  const chained: number[] = [];
  const inserts = Math.round((o.changes * 2) / 3);
  const updates = o.changes - inserts;
  for (let i = 0; i < o.repeat; i++) {
    const src = await createSource('narrow', `tr${i}`);
    try {
      const slots = [await src.slot('plain'), await src.slot('chain')];
      const w = await writeWorkload(src.db, src.table, 'narrow', inserts, updates);
      const order = i % 2 === 0 ? ['plain', 'chain'] : ['chain', 'plain'];
      for (const which of order) {
        const run = await runEndToEnd(src, slots[which === 'plain' ? 0 : 1]!, w, which, which === 'chain' ? { transform: CHAIN } : {});
        await run.ctx.cleanup();
        (which === 'plain' ? plain : chained).push(run.perSec);
        o.log(`  repeat ${i + 1}: ${which === 'plain' ? 'plain' : '5-step chain'} ${fmt(run.perSec)} changes/s`);
      }
    } finally {
      await src.cleanup();
    }
  }
  const p = figure(plain);
  const t = figure(chained);
  return { changes: o.changes, repeat: o.repeat, plain: p, transformed: t, ratio: ratio(t, p) };
}

export function transformsTable(r: TransformsResult): string {
  return [
    '| Pipeline (`syncline start`, PostgreSQL → PostgreSQL) | changes/s | ratio |',
    '| --- | ---: | ---: |',
    `| plain | ${fmtFigure(r.plain)} | 1 |`,
    `| 5-step transform chain (where, compute, cast, map, timezone) | ${fmtFigure(r.transformed)} | ${fmtFigure(r.ratio, 2)} |`,
  ].join('\n');
}

export function transformsSection(r: TransformsResult, m: { nproc: number; cpu: string; node: string; date: string }, command: string): string {
  const met = r.ratio.median >= TARGET_RATIO;
  return [
    '## Transform chain',
    '',
    `End to end (bench/transforms.ts): ${fmt(r.changes)} changes (inserts, then updates of a third of the rows) of a 5-column row`,
    'through one `syncline start` process, plain and with a 5-step transform chain on the table (a filter every row passes,',
    'a computed column, a cast, a value map, a time zone conversion: bench/transforms.ts CHAIN), the two runs of a repeat from',
    `slots made before the same workload, in alternating order. Median of ${r.repeat} repeat${r.repeat === 1 ? '' : 's'}${r.repeat > 1 ? ' (min – max)' : ''}.`,
    `Target: at most 15% slower (ratio ≥ ${TARGET_RATIO}). **${met ? 'Met' : 'Not met'}.**`,
    '',
    transformsTable(r),
    '',
    ...e2eSectionFooter(m, command, 'the two rows'),
  ].join('\n');
}

runBenchCli(import.meta.url, (arg) => runTransformsBench({ changes: Number(arg('changes', '100000')), repeat: Number(arg('repeat', '1')), log: (s) => console.log(s) }), transformsTable);
