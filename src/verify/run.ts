/**
 * `syncline verify` for one pipeline, from its config alone (the CLI, the HTTP API and the verify
 * schedule all call verifyPipeline): each table compared by ./verify.ts through the source's and
 * target's VerifySide (registered by their connectors), with the re-check waiting for the running
 * pipeline to catch up; `repair` re-syncs exactly the differing keys through the pipeline.
 *
 * Caught up (the re-check's wait): the source's end is asked (Source.position()); then the wait is
 * for the capture's acknowledged position (SourceMonitor.acknowledged: PostgreSQL's slot
 * confirmed_flush_lsn) to reach it, and then for the processor group's committed offsets to reach
 * the ends the change topics had at that moment: the target then holds every change the source had.
 *
 * Repair, through the pipeline (version state, conflict rules, metrics and the target's writer all
 * as for any change):
 *  1. the keys' stored hashes are forgotten (VersionState.forget: position kept, hash unknown), so
 *     the repair rows are written even though their content is what syncline last wrote;
 *  2. a repair backfill of exactly those keys is requested through the source (a signal, like
 *     `syncline backfill`; src/capture/backfill.ts, BackfillState.keys): one watermarked chunk reads
 *     the keys' current rows and emits them as snapshot reads; the keys it does not find (extra rows
 *     on the target) are emitted as deletes; keys the stream changes inside the chunk's window are
 *     left to the streamed change, as in every backfill;
 *  3. it waits for the backfills to be done and for the pipeline to apply them.
 */
import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../core/redis.js';
import type { Logger } from 'pino';
import type { SynclineConfig } from '../core/config/schema.js';
import { changeTopicPrefix } from '../core/config/schema.js';
import { position } from '../core/envelope.js';
import { fatal } from '../core/errors.js';
import { groups, topics, type KafkaClient } from '../core/kafka.js';
import { parseTableName, tableMatches } from '../core/names.js';
import { sinkRegistration, sourceRegistration } from '../core/registry.js';
import { sleep } from '../core/retry.js';
import { audit } from '../security/audit/recorder.js';
import { backfillRecordKey, MAX_REPAIR_KEYS, type BackfillRecord, type BackfillSignal } from '../capture/backfill.js';
import { CaptureOffsets } from '../capture/offsets.js';
import type { Source } from '../capture/source.js';
import { keyStringOf } from '../sink/sink.js';
import { VersionState } from '../sink/version-state.js';
import type { VerifySide } from './side.js';
import { verifyTable, type TableVerifyResult, type VerifyTableSpec } from './verify.js';

export interface VerifyRequest {
  pipeline: string;
  /** One table (source name as configured, or any spelling names.ts matches); default every table. */
  table?: string;
  repair?: boolean;
  rangeRows?: number;
  leafRows?: number;
  /** How long the re-check may wait for the pipeline to catch up (default 120 s). */
  catchUpTimeoutMs?: number;
}

export interface RepairSummary {
  keys: number;
  /** Keys whose stored hash was forgotten (the rest had none). */
  forgotten: number;
  backfills: string[];
  status: 'done' | 'failed' | 'timed-out';
  error?: string;
}

export interface PipelineVerifyResult {
  pipeline: string;
  startedAt: string;
  endedAt: string;
  /** Source position when the verification started. */
  sourcePosition: string;
  tables: TableVerifyResult[];
  /** Differences found (every table). */
  mismatches: number;
  repair?: RepairSummary;
}

export interface VerifyDeps {
  kafka: KafkaClient;
  redis: RedisClient;
  log: Logger;
}

export async function verifyPipeline(config: SynclineConfig, req: VerifyRequest, deps: VerifyDeps): Promise<PipelineVerifyResult> {
  const name = req.pipeline;
  const p = config.pipelines[name];
  if (!p) throw fatal('PIPELINE_UNKNOWN', `no pipeline '${name}' in the config (have: ${Object.keys(config.pipelines).join(', ')})`);
  const tables = req.table === undefined ? p.tables : p.tables.filter((t) => tableMatches(t.source, req.table!));
  if (tables.length === 0) throw fatal('VERIFY_TABLE', `pipeline ${name} does not capture table ${req.table} (its tables: ${p.tables.map((t) => t.source).join(', ')})`);
  // A routed table (tables[].route) spreads over several target tables: one source table against one target table does not fit it.
  const routed = tables.filter((t) => t.route !== undefined);
  if (routed.length > 0) throw fatal('VERIFY_UNSUPPORTED', `pipeline ${name}: table${routed.length > 1 ? 's' : ''} ${routed.map((t) => t.source).join(', ')} ${routed.length > 1 ? 'are' : 'is'} routed (tables[].route) to several target tables, which verify does not compare yet${req.table === undefined ? '; verify the other tables with --table' : ''}`);
  const sc = p.source as { type: string };
  const tc = p.target as { type: string };
  const srcReg = sourceRegistration(sc.type);
  const sinkReg = sinkRegistration(tc.type);
  if (!srcReg.verify) throw fatal('VERIFY_UNSUPPORTED', `pipeline ${name}: its source type '${sc.type}' cannot be verified (verify needs SQL on both sides: postgres)`);
  if (!sinkReg.verify) throw fatal('VERIFY_UNSUPPORTED', `pipeline ${name}: its target type '${tc.type}' cannot be verified (verify needs SQL on both sides: postgres)`);
  const log = deps.log;
  const startedAt = new Date().toISOString();
  const src = srcReg.verify(p.source as never, name);
  const dst = sinkReg.verify(p.target as never, name);
  const source: Source = srcReg.create(p.source as never, { pipeline: name, log });
  const monitor = srcReg.monitor(p.source as never, 10_000, name);
  audit.record({ action: 'verify.start', object: `verify:${name}`, details: { pipeline: name, tables: tables.map((t) => t.source), repair: req.repair === true } });
  try {
    await source.connect();
    if (!source.position || !monitor.acknowledged) throw fatal('VERIFY_UNSUPPORTED', `pipeline ${name}: its source cannot tell its position and the capture's acknowledged one, which the re-check waits for`);
    const sourcePosition = await source.position();
    const prefix = changeTopicPrefix(config, p);
    const changeTopics = tables.map((t) => {
      const n = parseTableName(t.source);
      return topics.cdc(prefix, n.schema, n.table);
    });
    const caughtUp = () => waitCaughtUp({ source, monitor: monitor as Required<typeof monitor>, kafka: deps.kafka, groupId: groups.processor(config.topicPrefix, name), topics: changeTopics, timeoutMs: req.catchUpTimeoutMs ?? 120_000, pipeline: name });
    const results: TableVerifyResult[] = [];
    for (const t of tables) {
      const spec = await tableSpec(t, src, dst);
      const r = await verifyTable(spec, src, dst, { caughtUp, rangeRows: req.rangeRows, leafRows: req.leafRows, log: (msg, data) => log.info(data ?? {}, msg) });
      log.info({ table: t.source, rows: r.sourceRows, ranges: r.ranges, differing: r.rangesDiffering, candidates: r.candidates, diffs: r.diffs.length, rowsPerSec: r.rowsPerSec }, 'verify.table');
      results.push(r);
    }
    const out: PipelineVerifyResult = { pipeline: name, startedAt, endedAt: '', sourcePosition, tables: results, mismatches: results.reduce((a, r) => a + r.diffs.length, 0) };
    if (req.repair && out.mismatches > 0) out.repair = await repair(config, name, tables, results, source, deps, caughtUp);
    out.endedAt = new Date().toISOString();
    audit.record({ action: 'verify.end', object: `verify:${name}`, details: { pipeline: name, mismatches: out.mismatches, byTable: Object.fromEntries(results.map((r) => [r.table, r.diffs.length])), ...(out.repair ? { repaired: out.repair.keys, repairStatus: out.repair.status } : {}) } });
    return out;
  } finally {
    await Promise.allSettled([src.close(), dst.close(), source.stop(), monitor.close()]);
  }
}

type TableConf = SynclineConfig['pipelines'][string]['tables'][number];

/** Which columns are compared, under which names on each side. */
async function tableSpec(t: TableConf, src: VerifySide, dst: VerifySide): Promise<VerifyTableSpec> {
  const s = parseTableName(t.source);
  const d = parseTableName(t.target ?? t.source);
  const rename = (c: string) => t.columns?.[c] ?? c;
  const [srcCols, dstCols] = await Promise.all([src.columnsOf(s.schema, s.table), dst.columnsOf(d.schema, d.table)]);
  const key = t.key ?? (await src.primaryKey(s.schema, s.table));
  if (key.length === 0) throw fatal('VERIFY_NO_KEY', `table ${t.source} has no primary key and the config gives no key: verify needs one`);
  const encrypted = new Set(t.encrypt ?? []);
  const compared: string[] = [];
  const skipped: string[] = [];
  for (const c of srcCols) {
    // Encrypted columns hold ciphertext (random nonces) on the target; a column the target lacks is not synced.
    if (encrypted.has(c) || !dstCols.includes(rename(c))) skipped.push(rename(c));
    else compared.push(c);
  }
  for (const k of key) if (!compared.includes(k)) throw fatal('VERIFY_KEY_COLUMN', `table ${t.source}: key column ${k} is not on both sides (target ${d.schema}.${d.table} needs column ${rename(k)})`);
  return {
    name: t.source,
    source: { schema: s.schema, table: s.table, key, columns: compared },
    target: { schema: d.schema, table: d.table, key: key.map(rename), columns: compared.map(rename) },
    skippedColumns: skipped,
  };
}

async function waitCaughtUp(o: { source: Source; monitor: { acknowledged(): Promise<string | null> }; kafka: KafkaClient; groupId: string; topics: string[]; timeoutMs: number; pipeline: string }): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  const end = position(await o.source.position!(), 0);
  for (;;) {
    const ack = await o.monitor.acknowledged();
    if (ack && position(ack, 0) >= end) break;
    if (Date.now() > deadline) throw fatal('VERIFY_NOT_CAUGHT_UP', `pipeline ${o.pipeline}: its capture did not acknowledge the source position ${end} within ${o.timeoutMs} ms (acknowledged: ${ack ?? 'none'}); is the pipeline running?`);
    await sleep(200);
  }
  const ends = new Map<string, bigint>();
  for (const t of o.topics) {
    for (const p of await o.kafka.topicOffsets(t).catch(() => [])) ends.set(`${t}:${p.partition}`, BigInt(p.high));
  }
  for (;;) {
    const committed = new Map<string, bigint>();
    for (const t of await o.kafka.withAdmin((admin) => admin.fetchOffsets({ groupId: o.groupId, topics: o.topics }))) {
      for (const p of t.partitions) committed.set(`${t.topic}:${p.partition}`, BigInt(p.offset));
    }
    const behind = [...ends].filter(([k, e]) => e > 0n && (committed.get(k) ?? -1n) < e);
    if (behind.length === 0) return;
    if (Date.now() > deadline) throw fatal('VERIFY_NOT_CAUGHT_UP', `pipeline ${o.pipeline}: its processor group ${o.groupId} did not reach the change topics' ends within ${o.timeoutMs} ms (behind: ${behind.map(([k]) => k).join(', ')}); is the pipeline running?`);
    await sleep(200);
  }
}

async function repair(config: SynclineConfig, name: string, tables: TableConf[], results: TableVerifyResult[], source: Source, deps: VerifyDeps, caughtUp: () => Promise<void>): Promise<RepairSummary> {
  if (!source.backfill?.keyRow || !source.backfill.keysWhere) throw fatal('VERIFY_REPAIR_UNSUPPORTED', `pipeline ${name}: its source cannot backfill a list of keys, so verify cannot repair`);
  const support = source.backfill;
  const state = new VersionState(deps.redis, config.redis.keyPrefix ?? config.topicPrefix, name);
  // A follower's rows come from the followed pipeline's capture (ADR 0039): the repair backfill is
  // that capture's (its own target skips the rows it already has: hash delta).
  const capturedBy = config.pipelines[name]?.follows ?? name;
  const summary: RepairSummary = { keys: 0, forgotten: 0, backfills: [], status: 'done' };
  for (const r of results) {
    if (r.diffs.length === 0) continue;
    const t = tables.find((x) => x.source === r.table)!;
    const [st] = await source.describe([{ source: t.source, key: t.key }]);
    if (!st) continue;
    const rename = (c: string) => t.columns?.[c] ?? c;
    // Keys in the source's key order, as text (the target's key columns are the renamed source ones).
    const keys = r.diffs.map((d) => st.key.map((k) => d.key[rename(k)]!));
    const keyStrings = keys.map((k) => {
      const row = support.keyRow!(st, k);
      return keyStringOf(st.key.map((c) => row[c] ?? null));
    });
    summary.forgotten += await state.forget(t.target ?? t.source, keyStrings);
    for (let i = 0; i < keys.length; i += MAX_REPAIR_KEYS) {
      const id = `verify-${randomUUID().slice(0, 8)}`;
      const signal: BackfillSignal = { op: 'backfill', pipeline: capturedBy, id, table: t.source, keys: keys.slice(i, i + MAX_REPAIR_KEYS) };
      await support.signal(JSON.stringify(signal));
      summary.backfills.push(id);
    }
    summary.keys += keys.length;
  }
  deps.log.info({ keys: summary.keys, forgotten: summary.forgotten, backfills: summary.backfills }, 'verify.repair.requested');
  audit.record({ action: 'verify.repair', object: `verify:${name}`, details: { pipeline: name, keys: summary.keys, backfills: summary.backfills } });
  // Wait for the backfills (read from the capture's state in Kafka), then for the pipeline to apply them.
  const offsets = new CaptureOffsets(deps.kafka, config.topicPrefix);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const rec = await offsets.readRecord<BackfillRecord>(backfillRecordKey(capturedBy));
    const mine = (rec?.backfills ?? []).filter((b) => summary.backfills.includes(b.id));
    const bad = mine.find((b) => b.status === 'failed' || b.status === 'cancelled');
    if (bad) return { ...summary, status: 'failed', error: `repair backfill ${bad.id} is ${bad.status}${bad.error ? `: ${bad.error}` : ''}` };
    if (mine.length === summary.backfills.length && mine.every((b) => b.status === 'done')) break;
    if (Date.now() > deadline) return { ...summary, status: 'timed-out', error: `the repair backfills were not done within 120 s (is the capture of pipeline ${capturedBy} running?)` };
    await sleep(300);
  }
  await caughtUp();
  return summary;
}
