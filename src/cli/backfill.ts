/**
 * `syncline backfill PIPELINE --table T [--where SQL] [--chunk-size N] [--wait]`: re-read one table
 * of a running pipeline while it streams (src/capture/backfill.ts);
 * `syncline backfill PIPELINE --status [ID]`, `--pause ID`, `--resume ID`, `--cancel ID`.
 *
 * How the command reaches the capture: as a signal written into the pipeline's own change stream
 * (the source's BackfillSupport.signal: for PostgreSQL a logical message in the WAL). So it needs no
 * running HTTP server and works wherever the capture runs (this process, another host, a split
 * deployment), in order with the changes; a capture that is down reads the signal when it comes
 * back (the slot keeps it). The state the capture keeps (`<prefix>.capture.offsets`, key
 * `backfill:<pipeline>`) is what --status and --wait read. The HTTP API of the process that runs
 * the capture (/api/pipelines/:name/backfills, src/capture/backfill-api.ts) does the same directly.
 */
import { randomUUID } from 'node:crypto';
import '../../connectors/index.js';
import { loadConfig } from '../core/config/load.js';
import type { SynclineConfig } from '../core/config/schema.js';
import { errorMessage, fatal } from '../core/errors.js';
import { KafkaClient } from '../core/kafka.js';
import { rootLogger } from '../core/log.js';
import { tableMatches } from '../core/names.js';
import { sourceRegistration } from '../core/registry.js';
import { sleep } from '../core/retry.js';
import { backfillRecordKey, viewOf, type BackfillRecord, type BackfillSignal, type BackfillView } from '../capture/backfill.js';
import { CaptureOffsets } from '../capture/offsets.js';
import type { Source } from '../capture/source.js';

export interface BackfillOptions {
  config: string;
  table?: string;
  where?: string;
  chunkSize?: string;
  wait?: boolean;
  status?: string | boolean;
  pause?: string;
  resume?: string;
  cancel?: string;
  json?: boolean;
  timeout?: string;
}

function pipelineOf(config: SynclineConfig, name: string) {
  const p = config.pipelines[name];
  if (!p) throw fatal('PIPELINE_UNKNOWN', `no pipeline '${name}' in the config (have: ${Object.keys(config.pipelines).join(', ')})`);
  return p;
}

async function withSource<T>(config: SynclineConfig, pipeline: string, fn: (s: Source) => Promise<T>): Promise<T> {
  const p = pipelineOf(config, pipeline);
  const sc = p.source as { type: string };
  const source = sourceRegistration(sc.type).create(sc, { pipeline, log: rootLogger.child({ stage: 'cli' }) });
  if (!source.backfill) throw fatal('BACKFILL_UNSUPPORTED', `pipeline ${pipeline}: its source (${sc.type}) cannot backfill`);
  try {
    return await fn(source);
  } finally {
    await source.stop().catch(() => undefined);
  }
}

/** The backfill state the pipeline's capture keeps (read from Kafka). */
export async function readBackfills(config: SynclineConfig, pipeline: string): Promise<BackfillView[]> {
  const kafka = new KafkaClient(config.kafka, rootLogger.child({ stage: 'kafka' }));
  try {
    const rec = await new CaptureOffsets(kafka, config.topicPrefix).readRecord<BackfillRecord>(backfillRecordKey(pipeline));
    return (rec?.backfills ?? []).map(viewOf);
  } finally {
    await kafka.close();
  }
}

function line(b: BackfillView): string {
  const eta = b.etaSeconds === null ? '?' : `${b.etaSeconds}s`;
  return `${b.id}  ${b.table}  ${b.status}  ${b.percent}%  rows ${b.rows}/${b.total}  chunks ${b.chunks}  ${b.rowsPerSec} rows/s  eta ${eta}${b.where ? `  where ${b.where}` : ''}${b.error ? `  error: ${b.error}` : ''}`;
}

/** `syncline backfill`'s action (its options: ./commands/backfill.ts, loaded without this module): the exit code. */
export async function backfill(pipeline: string, o: BackfillOptions): Promise<number> {
  const config = loadConfig(o.config);
  const follows = pipelineOf(config, pipeline).follows;
  if (follows) throw fatal('BACKFILL_FOLLOWER', `pipeline ${pipeline} follows ${follows} and has no capture: backfill ${follows} (its capture writes the change topics ${pipeline} reads; ${follows}'s own target skips the rows it already has)`);
  const out = (v: BackfillView | BackfillView[]) => process.stdout.write((o.json ? JSON.stringify(v, null, 2) : (Array.isArray(v) ? v : [v]).map(line).join('\n') || 'no backfills') + '\n');
  const ctl = o.pause !== undefined ? 'pause' : o.resume !== undefined ? 'resume' : o.cancel !== undefined ? 'cancel' : undefined;
  if (o.status !== undefined && ctl === undefined && o.table === undefined) {
    const all = await readBackfills(config, pipeline);
    if (typeof o.status === 'string') {
      const b = all.find((x) => x.id === o.status);
      if (!b) throw fatal('BACKFILL_UNKNOWN', `no backfill ${o.status} in pipeline ${pipeline}`);
      out(b);
    } else out(all);
    return 0;
  }
  let id: string;
  if (ctl) {
    id = (o.pause ?? o.resume ?? o.cancel)!;
    const signal: BackfillSignal = { op: ctl, pipeline, id };
    await withSource(config, pipeline, (s) => s.backfill!.signal(JSON.stringify(signal)));
    process.stderr.write(`${ctl} of backfill ${id} sent to pipeline ${pipeline}\n`);
  } else {
    if (o.table === undefined) throw fatal('BACKFILL_USAGE', 'give --table TABLE to start a backfill, or --status, --pause ID, --resume ID, --cancel ID');
    const p = pipelineOf(config, pipeline);
    const t = p.tables.find((x) => tableMatches(x.source, o.table!));
    if (!t) throw fatal('BACKFILL_TABLE', `pipeline ${pipeline} does not capture table ${o.table} (its tables: ${p.tables.map((x) => x.source).join(', ')})`);
    const chunkSize = o.chunkSize === undefined ? undefined : Number(o.chunkSize);
    if (chunkSize !== undefined && (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > 100_000)) throw fatal('BACKFILL_USAGE', `--chunk-size must be an integer 1-100000 (got ${o.chunkSize})`);
    id = randomUUID().slice(0, 8);
    await withSource(config, pipeline, async (s) => {
      if (o.where) {
        // Refused here, with PostgreSQL's words, rather than in the capture's log.
        await s.connect();
        const [st] = await s.describe([{ source: t.source, key: t.key }]);
        try {
          await s.backfill!.checkWhere?.(st!, o.where);
        } catch (err) {
          throw fatal('BACKFILL_WHERE', `--where '${o.where}' is refused by the source: ${errorMessage(err)}`);
        }
      }
      const signal: BackfillSignal = { op: 'backfill', pipeline, id, table: t.source, where: o.where, chunkSize };
      await s.backfill!.signal(JSON.stringify(signal));
    });
    if (!(o.json && o.wait)) process.stdout.write(`${id}\n`);
    process.stderr.write(`backfill ${id} of ${t.source} requested from pipeline ${pipeline}; progress: syncline backfill ${pipeline} --status ${id}\n`);
  }
  if (!o.wait) return 0;
  const deadline = Date.now() + Number(o.timeout ?? 3600) * 1000;
  const want = ctl === 'pause' ? ['paused'] : ctl === 'cancel' ? ['cancelled'] : ctl === 'resume' ? ['running', 'done'] : ['done', 'failed', 'cancelled'];
  let lastLine = '';
  for (;;) {
    const b = (await readBackfills(config, pipeline)).find((x) => x.id === id);
    if (b) {
      const l = line(b);
      if (l !== lastLine && !o.json) process.stderr.write(l + '\n');
      lastLine = l;
      if (want.includes(b.status)) {
        if (o.json) out(b);
        return b.status === 'failed' ? 1 : 0;
      }
    }
    if (Date.now() > deadline) throw fatal('BACKFILL_TIMEOUT', `backfill ${id} did not reach ${want.join('/')} within ${o.timeout ?? 3600}s (is the pipeline's capture running?)`);
    await sleep(1000);
  }
}
