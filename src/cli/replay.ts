/** `syncline replay`: re-run a range of a pipeline's change topics (src/replay/replay.ts) with a progress bar and a summary. */
import '../../connectors/index.js'; // the config spec knows the connectors' sources and targets
import type { OptionValues } from 'commander';
import { loadConfig } from '../core/config/load.js';
import { replay, ReplayError, type ReplaySummary } from '../replay/replay.js';
import type { ReadProgress } from '../core/topic-reader.js';
import { openClients } from './clients.js';

function progressBar(): (p: ReadProgress) => void {
  const tty = process.stderr.isTTY;
  let lastPct = -1;
  let lastAt = 0;
  return (p) => {
    const pct = p.total === 0 ? 100 : Math.floor((p.read / p.total) * 100);
    if (tty) {
      if (Date.now() - lastAt < 100 && pct !== 100) return;
      lastAt = Date.now();
      const w = 30;
      const fill = Math.round((pct / 100) * w);
      process.stderr.write(`\r[${'#'.repeat(fill)}${'.'.repeat(w - fill)}] ${String(pct).padStart(3)}%  ${p.read.toLocaleString('en-US')}/${p.total.toLocaleString('en-US')} changes`);
      if (p.read >= p.total) process.stderr.write('\n');
    } else if (Math.floor(pct / 10) !== Math.floor(lastPct / 10) || p.read >= p.total) {
      process.stderr.write(`replay: ${pct}% (${p.read}/${p.total} changes)\n`);
    }
    lastPct = pct;
  };
}

export function summaryText(s: ReplaySummary): string {
  const n = (x: number) => x.toLocaleString('en-US');
  return [
    `replay of ${s.pipeline}${s.dryRun ? ' (dry run: nothing was written)' : ''} in ${(s.durationMs / 1000).toFixed(1)} s`,
    ...(s.transforms.hash ? [`  transforms             ${s.transforms.asOf ? `as of version ${s.transforms.hash} (last run ${s.transforms.recordedAt})` : `in force now (version ${s.transforms.hash})`}`] : []),
    `  read                   ${n(s.read)}`,
    `  applied${s.dryRun ? ' (would be)  ' : '              '} ${n(s.applied)}${s.repaired ? ` (${n(s.repaired)} the target had lost, written again)` : ''}`,
    `  skipped, unchanged     ${n(s.skippedUnchanged)}`,
    `  skipped, already newer ${n(s.skippedStale)}`,
    `  conflicts              ${n(s.conflicts)}`,
    ...(s.control ? [`  snapshot markers       ${n(s.control)}`] : []),
    `  dead-lettered          ${n(s.deadLettered)}${s.invalid ? ` (${n(s.invalid)} invalid)` : ''}${s.parked ? ` (${n(s.parked)} parked)` : ''}`,
  ].join('\n');
}

/** `syncline replay`'s action (its options: ./commands/replay.ts, loaded without this module). */
export async function replayAction(o: OptionValues): Promise<void> {
  const c = await openClients(loadConfig(o.config));
  try {
    const s = await replay(c, { pipeline: o.pipeline, from: o.from, to: o.to, table: o.table, dryRun: o.dryRun === true, transformsAsOf: o.transformsAsOf, onProgress: progressBar() });
    process.stdout.write((o.json ? JSON.stringify(s, null, 2) : summaryText(s)) + '\n');
  } catch (err) {
    if (!(err instanceof ReplayError)) throw err;
    process.stderr.write(`syncline replay: ${err.message}\n`);
    process.exitCode = 1;
  } finally {
    await c.close();
  }
}
