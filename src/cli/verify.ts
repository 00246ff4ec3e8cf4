/**
 * `syncline verify --pipeline P [--table T] [--repair] [--json]`: compare a running pipeline's
 * source and target (src/verify/: key-range digests on both sides, bisection down to keys, a
 * re-check after the pipeline caught up) and list what is missing, extra or different on the
 * target; `--repair` re-syncs exactly those keys through the pipeline. Exit code 0: in sync (or
 * repaired), 1: differences left, 2 (fatal): could not verify.
 */
import '../../connectors/index.js'; // the config spec knows the connectors' sources and targets
import { loadConfig } from '../core/config/load.js';
import { verifyPipeline, type PipelineVerifyResult } from '../verify/run.js';
import { openClients } from './clients.js';

export interface VerifyOptions {
  config: string;
  pipeline: string;
  table?: string;
  repair?: boolean;
  json?: boolean;
  rangeRows?: string;
}

export function verifyText(r: PipelineVerifyResult): string {
  const lines: string[] = [];
  for (const t of r.tables) {
    lines.push(`${t.table} → ${t.target}: ${t.sourceRows} source rows, ${t.targetRows} target rows, ${t.ranges} ranges (${t.rangesDiffering} differing), ${t.diffs.length} difference(s), ${t.rowsPerSec} rows/s${t.skippedColumns.length ? `; not compared: ${t.skippedColumns.join(', ')}` : ''}${t.truncated ? '; more differences than listed (first 10000)' : ''}`);
    for (const d of t.diffs) {
      const key = Object.entries(d.key).map(([k, v]) => `${k}=${v}`).join(',');
      lines.push(`  ${d.kind.padEnd(9)} ${key}${d.columns ? `  columns: ${d.columns.join(', ')}` : ''}${d.settled ? '' : '  (kept changing at the source)'}`);
    }
  }
  if (r.repair) lines.push(`repair: ${r.repair.keys} key(s) re-synced through the pipeline (backfills ${r.repair.backfills.join(', ')}): ${r.repair.status}${r.repair.error ? `: ${r.repair.error}` : ''}`);
  lines.push(r.mismatches === 0 ? 'in sync' : `${r.mismatches} difference(s)`);
  return lines.join('\n');
}

/** `syncline verify`'s action (its options: ./commands/verify.ts, loaded without this module). */
export async function verifyAction(o: VerifyOptions): Promise<void> {
  const config = loadConfig(o.config);
  const rangeRows = o.rangeRows === undefined ? undefined : Number(o.rangeRows);
  if (rangeRows !== undefined && (!Number.isInteger(rangeRows) || rangeRows < 10)) throw new Error(`--range-rows must be an integer ≥ 10 (got ${o.rangeRows})`);
  const c = await openClients(config);
  let code = 0;
  try {
    const r = await verifyPipeline(config, { pipeline: o.pipeline, table: o.table, repair: o.repair, rangeRows }, { kafka: c.kafka, redis: c.redis, log: c.log });
    process.stdout.write((o.json ? JSON.stringify(r, null, 2) : verifyText(r)) + '\n');
    code = r.mismatches === 0 || r.repair?.status === 'done' ? 0 : 1;
  } finally {
    await c.close();
  }
  process.stdout.write('', () => process.exit(code));
}
