/**
 * The pipeline benchmarks (issue 5), run side by side on one machine in one run:
 *   1 capture limit (pg_recvlogical)     2 syncline capture → Kafka     3 Debezium → Kafka
 *   4 end to end → PostgreSQL target (one process; and split: capture + process&sink)
 *   5 latency at a fixed load            6 no-op replay
 *   7 memory (peak RSS; snapshot at two table sizes)
 *   mariadb-capture: the MariaDB source's capture → Kafka next to (2); mariadb-sink: processor + sink
 *   from a filled change topic into MariaDB vs into PostgreSQL (bench/mariadb.ts)
 * 1–4 and 6 read the same changes: one source database, one slot per tool and repeat created before
 * the workload is written, so each tool decodes exactly the same WAL from a fresh slot. Repeats are
 * interleaved (limit, syncline, Debezium, end to end, replay; then again) so drift in the machine's
 * load hits every tool alike; each slot is dropped as soon as its run ends.
 */
import { createSource, deleteTopics, dropSlots, figure, fmt, ratio, ROOT, sql, writeWorkload, type Figure, type Shape, type Workload } from './common.js';
import { runCaptureLimit } from './capture-limit.js';
import { runSynclineCapture } from './syncline-capture.js';
import { createMariadbSource, runMariadbCapture, runSinkOnly, type MariadbSource } from './mariadb.js';
import { loadRdkafka, RDKAFKA_PACKAGE } from '../src/core/rdkafka.js';
import { buildDebezium, debeziumBuilt, runDebezium, DEBEZIUM_VERSION } from './debezium.js';
import { runEndToEnd } from './end-to-end.js';
import { CPU_ROLES } from './cpu.js';
import { runNoopReplay } from './noop-replay.js';
import { runLatency, type LatencyRun } from './latency.js';
import { MEMORY_TARGET_MB, runSnapshotMemory, type SnapshotMemoryRun } from './memory.js';

export const PIPELINE_BENCHES = ['limit', 'capture', 'debezium', 'e2e', 'e2e-split', 'latency', 'replay', 'memory', 'mariadb-capture', 'mariadb-sink'] as const;
/** Parts that measure MariaDB next to a PostgreSQL baseline they run themselves (bench/mariadb.ts). */
export const MARIADB_BENCHES = ['mariadb-capture', 'mariadb-sink'] as const;
export type PipelineBench = (typeof PIPELINE_BENCHES)[number];

export interface PipelineOptions {
  /** Inserts of the narrow workload; updates = inserts / 2. */
  changes: number;
  /** Inserts of the wide-row workload (0: no wide run). */
  wideChanges: number;
  repeat: number;
  only: Set<PipelineBench>;
  /** 'skip' | 'if-built' (smoke test) | 'build' (default: build on first use). */
  debezium: 'skip' | 'if-built' | 'build';
  latencyRate: number;
  latencySeconds: number;
  snapshotRows: number;
  log: (s: string) => void;
}

export interface ShapeResult {
  shape: Shape;
  workload: Workload;
  limit?: Figure;
  capture?: Figure;
  captureWithStartup?: Figure;
  /** syncline capture with kafka.producer librdkafka (when the optional package loads). */
  captureRdkafka?: Figure;
  debezium?: Figure;
  debeziumWithStartup?: Figure;
  e2e?: Figure;
  /** End to end with capture in one process, processor + sink in another. */
  e2eSplit?: Figure;
  replay?: Figure;
  /** Peak RSS (MB) per process kind, max over repeats. */
  peakMb: Record<string, number>;
  /** µs of CPU per change by process role (bench/cpu.ts), one entry per repeat: 'e2e' and 'e2eSplit'. */
  cpu: { e2e: Record<string, number>[]; e2eSplit: Record<string, number>[] };
  /** Per-run checks: counts equal to what was written. */
  checks: string[];
  /** mariadb-capture: the same workload written to MariaDB, and its capture → Kafka (paired with `capture`, repeat by repeat). */
  mariadb?: { workload: Workload; capture?: Figure; captureWithStartup?: Figure };
  /** mariadb-sink: processor + sink from the filled change topic of (2) into PostgreSQL and into MariaDB. */
  sink?: { postgres: Figure; mariadb: Figure };
  /** µs of CPU per change by process role, one entry per repeat, of the MariaDB parts and their PostgreSQL peers. */
  myCpu: { capturePg: Record<string, number>[]; captureMy: Record<string, number>[]; sinkPg: Record<string, number>[]; sinkMy: Record<string, number>[] };
}

export interface PipelineResult {
  options: Omit<PipelineOptions, 'log' | 'only'> & { only: string[] };
  shapes: ShapeResult[];
  latency?: { runs: LatencyRun[]; p50: Figure; p95: Figure; p99: Figure; achieved: Figure };
  snapshot?: SnapshotMemoryRun[];
  debeziumNote?: string;
  /** Why the librdkafka producer was not measured. */
  rdkafkaNote?: string;
}

const wants = (o: PipelineOptions, b: PipelineBench) => o.only.has(b);

async function runShape(o: PipelineOptions, shape: Shape, inserts: number, dbz: boolean, rdkafka = false): Promise<ShapeResult> {
  const src = await createSource(shape, shape === 'narrow' ? 'n' : 'w');
  const narrow = shape === 'narrow';
  const doE2e = narrow && (wants(o, 'e2e') || wants(o, 'replay') || wants(o, 'memory'));
  const doReplay = narrow && wants(o, 'replay');
  const doMyCapture = narrow && wants(o, 'mariadb-capture');
  const doSink = narrow && wants(o, 'mariadb-sink');
  // The MariaDB parts' PostgreSQL baseline is the capture (2) (and its topic feeds the sink part).
  const doCapture = wants(o, 'capture') || doMyCapture || doSink;
  let my: MariadbSource | undefined;
  const keptTopics: string[] = [];
  const res: ShapeResult = { shape, workload: undefined as unknown as Workload, peakMb: {}, checks: [], cpu: { e2e: [], e2eSplit: [] }, myCpu: { capturePg: [], captureMy: [], sinkPg: [], sinkMy: [] } };
  try {
    const doSplit = narrow && wants(o, 'e2e-split');
    const slots: Record<string, string[]> = { limit: [], capture: [], captureRd: [], debezium: [], e2e: [], e2eSplit: [] };
    for (let r = 0; r < o.repeat; r++) {
      if (wants(o, 'limit')) slots.limit!.push(await src.slot(`l${r}`));
      if (doCapture) slots.capture!.push(await src.slot(`c${r}`));
      if (rdkafka) slots.captureRd!.push(await src.slot(`k${r}`));
      if (dbz) slots.debezium!.push(await src.slot(`d${r}`));
      if (doE2e) slots.e2e!.push(await src.slot(`e${r}`));
      if (doSplit) slots.e2eSplit!.push(await src.slot(`s${r}`));
    }
    const w = await writeWorkload(src.db, `public.${src.table}`, shape, inserts, Math.floor(inserts / 2));
    res.workload = w;
    const wal = await sql(src.db, `select pg_size_pretty(pg_current_wal_lsn() - $1::pg_lsn) as s`, ['0/0']).catch(() => undefined);
    o.log(`  ${shape}: ${fmt(w.inserts)} inserts + ${fmt(w.updates)} updates written in ${w.seconds.toFixed(1)} s (${w.txRows} rows per transaction)${wal ? '' : ''}`);
    if (doMyCapture) {
      my = await createMariadbSource();
      await my.register(o.repeat);
      const mw = await my.writeWorkload(inserts, Math.floor(inserts / 2), w.txRows);
      res.mariadb = { workload: mw };
      o.log(`  ${shape}: MariaDB: ${fmt(mw.inserts)} inserts + ${fmt(mw.updates)} updates written in ${mw.seconds.toFixed(1)} s (${mw.txRows} rows per transaction)`);
    }
    const runs: Record<string, number[]> = { limit: [], capture: [], captureS: [], captureRd: [], debezium: [], debeziumS: [], e2e: [], e2eSplit: [], replay: [], myCapture: [], myCaptureS: [], sinkPg: [], sinkMy: [] };
    const peak = (k: string, mb: number) => (res.peakMb[k] = Math.max(res.peakMb[k] ?? 0, mb));
    const drop = (slot: string) => dropSlots(slot);
    for (let r = 0; r < o.repeat; r++) {
      const tag = `r${r + 1}/${o.repeat}`;
      if (wants(o, 'limit')) {
        const x = await runCaptureLimit(src, slots.limit![r]!, w);
        await drop(slots.limit![r]!);
        runs.limit!.push(x.perSec);
        peak('pg_recvlogical', x.peakMb);
        o.log(`  ${shape} ${tag} capture limit (pg_recvlogical): ${fmt(x.perSec)} changes/s`);
      }
      if (doCapture) {
        if (doSink) keptTopics.push(`${src.prefix}c${r}`);
        const x = await runSynclineCapture(src, slots.capture![r]!, w, `c${r}`, { keepTopic: doSink });
        await drop(slots.capture![r]!);
        runs.capture!.push(x.perSec);
        runs.captureS!.push(x.perSecWithStartup);
        if (x.cpu) res.myCpu.capturePg.push(x.cpu);
        peak('syncline capture', x.peakMb);
        res.checks.push(`syncline capture ${tag}: ${fmt(x.changes)} messages in the topic = ${fmt(w.changes)} changes written`);
        const ownCpu = x.cpu?.['syncline capture'];
        o.log(`  ${shape} ${tag} syncline capture → Kafka: ${fmt(x.perSec)} changes/s (${fmt(x.perSecWithStartup)}/s with start-up), peak RSS ${x.peakMb.toFixed(0)} MB${ownCpu === undefined ? '' : `, its CPU ${ownCpu.toFixed(1)} µs per change (start-up included)`}`);
      }
      if (my && res.mariadb) {
        const x = await runMariadbCapture(my, r, res.mariadb.workload);
        runs.myCapture!.push(x.perSec);
        runs.myCaptureS!.push(x.perSecWithStartup);
        res.myCpu.captureMy.push(x.cpu);
        peak('syncline capture, MariaDB source', x.peakMb);
        res.checks.push(`MariaDB capture ${tag}: ${fmt(x.changes)} messages in the topic = ${fmt(res.mariadb.workload.changes)} changes written`);
        o.log(`  ${shape} ${tag} syncline capture, MariaDB source (binlog) → Kafka: ${fmt(x.perSec)} changes/s (${fmt(x.perSecWithStartup)}/s with start-up), peak RSS ${x.peakMb.toFixed(0)} MB`);
      }
      if (doSink) {
        // The order alternates repeat by repeat, so neither target always runs on the machine the other left.
        const order = r % 2 === 0 ? (['postgres', 'mariadb'] as const) : (['mariadb', 'postgres'] as const);
        for (const target of order) {
          const x = await runSinkOnly({ changePrefix: `${src.prefix}c${r}`, sourceDb: src.db, table: src.table, w, target, tag: target === 'mariadb' ? `sm${r}` : `sp${r}` });
          (target === 'mariadb' ? runs.sinkMy! : runs.sinkPg!).push(x.perSec);
          (target === 'mariadb' ? res.myCpu.sinkMy : res.myCpu.sinkPg).push(x.cpu);
          const name = target === 'mariadb' ? 'MariaDB' : 'PostgreSQL';
          peak(`syncline process+sink → ${name} (from a filled topic)`, x.peakMb);
          res.checks.push(`sink → ${name} ${tag}: target holds ${fmt(w.inserts)} rows, ${fmt(w.updates)} updated`);
          o.log(`  ${shape} ${tag} process+sink from the filled topic → ${name}: ${fmt(x.perSec)} changes/s, peak RSS ${x.peakMb.toFixed(0)} MB`);
        }
        await deleteTopics(`${src.prefix}c${r}`);
      }
      if (rdkafka) {
        const x = await runSynclineCapture(src, slots.captureRd![r]!, w, `k${r}`, { producer: 'librdkafka' });
        await drop(slots.captureRd![r]!);
        runs.captureRd!.push(x.perSec);
        peak('syncline capture (librdkafka producer)', x.peakMb);
        res.checks.push(`syncline capture, librdkafka producer ${tag}: ${fmt(x.changes)} messages in the topic = ${fmt(w.changes)} changes written`);
        o.log(`  ${shape} ${tag} syncline capture → Kafka, librdkafka producer: ${fmt(x.perSec)} changes/s, peak RSS ${x.peakMb.toFixed(0)} MB`);
      }
      if (dbz) {
        const x = await runDebezium(src, slots.debezium![r]!, w, `d${r}`);
        await drop(slots.debezium![r]!);
        runs.debezium!.push(x.perSec);
        runs.debeziumS!.push(x.perSecWithStartup);
        peak('Debezium (JVM)', x.peakMb);
        o.log(`  ${shape} ${tag} Debezium → Kafka: ${fmt(x.perSec)} changes/s (${fmt(x.perSecWithStartup)}/s with start-up), peak RSS ${x.peakMb.toFixed(0)} MB`);
      }
      if (doE2e) {
        const x = await runEndToEnd(src, slots.e2e![r]!, w, `e${r}`);
        await drop(slots.e2e![r]!);
        try {
          runs.e2e!.push(x.perSec);
          res.cpu.e2e.push(x.cpu);
          peak('syncline start (all stages)', x.peakMb);
          res.checks.push(`end to end ${tag}: target holds ${fmt(w.inserts)} rows, ${fmt(w.updates)} updated`);
          o.log(`  ${shape} ${tag} end to end → PostgreSQL: ${fmt(x.perSec)} changes/s, peak RSS ${x.peakMb.toFixed(0)} MB`);
          if (doReplay) {
            const y = await runNoopReplay(x.ctx);
            runs.replay!.push(y.perSec);
            peak('syncline process+sink (replay)', y.peakMb);
            res.checks.push(`no-op replay ${tag}: ${fmt(y.skippedStale + y.skippedUnchanged)} of ${fmt(w.changes)} skipped, ${fmt(y.applied)} written`);
            o.log(`  ${shape} ${tag} no-op replay: ${fmt(y.perSec)} changes/s (${fmt(y.skippedStale)} stale, ${fmt(y.skippedUnchanged)} unchanged, ${fmt(y.applied)} written), peak RSS ${y.peakMb.toFixed(0)} MB`);
          }
        } finally {
          await x.ctx.cleanup();
        }
      }
      if (doSplit) {
        const x = await runEndToEnd(src, slots.e2eSplit![r]!, w, `s${r}`, { split: true });
        await drop(slots.e2eSplit![r]!);
        try {
          runs.e2eSplit!.push(x.perSec);
          res.cpu.e2eSplit.push(x.cpu);
          peak('syncline capture (split end to end)', x.capturePeakMb ?? 0);
          peak('syncline process+sink (split end to end)', x.peakMb);
          res.checks.push(`end to end, split ${tag}: target holds ${fmt(w.inserts)} rows, ${fmt(w.updates)} updated`);
          o.log(`  ${shape} ${tag} end to end, split (capture + process&sink) → PostgreSQL: ${fmt(x.perSec)} changes/s, peak RSS ${(x.capturePeakMb ?? 0).toFixed(0)} + ${x.peakMb.toFixed(0)} MB`);
        } finally {
          await x.ctx.cleanup();
        }
      }
    }
    if (runs.limit!.length) res.limit = figure(runs.limit!);
    if (runs.e2eSplit!.length) res.e2eSplit = figure(runs.e2eSplit!);
    if (runs.capture!.length) [res.capture, res.captureWithStartup] = [figure(runs.capture!), figure(runs.captureS!)];
    if (res.mariadb && runs.myCapture!.length) [res.mariadb.capture, res.mariadb.captureWithStartup] = [figure(runs.myCapture!), figure(runs.myCaptureS!)];
    if (runs.sinkPg!.length) res.sink = { postgres: figure(runs.sinkPg!), mariadb: figure(runs.sinkMy!) };
    if (runs.captureRd!.length) res.captureRdkafka = figure(runs.captureRd!);
    if (runs.debezium!.length) [res.debezium, res.debeziumWithStartup] = [figure(runs.debezium!), figure(runs.debeziumS!)];
    if (runs.e2e!.length && wants(o, 'e2e')) res.e2e = figure(runs.e2e!);
    if (runs.replay!.length) res.replay = figure(runs.replay!);
    return res;
  } finally {
    for (const p of keptTopics) await deleteTopics(p);
    await my?.cleanup();
    await src.cleanup();
  }
}

export async function runPipelineBench(o: PipelineOptions): Promise<PipelineResult> {
  const result: PipelineResult = { options: { ...o, only: [...o.only] } as PipelineResult['options'], shapes: [] };
  delete (result.options as { log?: unknown }).log;
  let dbz = wants(o, 'debezium') && o.debezium !== 'skip';
  if (dbz && o.debezium === 'if-built' && !debeziumBuilt()) {
    dbz = false;
    result.debeziumNote = 'Debezium skipped: harness not built (`npm run bench` builds it)';
  } else if (dbz) {
    try {
      buildDebezium(o.log);
    } catch (err) {
      dbz = false;
      result.debeziumNote = `Debezium skipped: the harness did not build (${(err as Error).message.split('\n')[0]})`;
      o.log(`  ${result.debeziumNote}`);
    }
  } else if (wants(o, 'debezium')) result.debeziumNote = 'Debezium skipped (--skip-debezium)';
  // The librdkafka producer is measured next to kafkajs' when the optional package loads.
  let rdkafka = false;
  if (wants(o, 'capture')) {
    const rd = await loadRdkafka();
    rdkafka = rd.api !== undefined;
    // The loader's message names the checkout's absolute path: BENCHMARKS.md says it relative to the repository.
    const why = rd.error?.split(ROOT + '/').join('');
    if (!rdkafka) result.rdkafkaNote = `librdkafka producer not measured: ${RDKAFKA_PACKAGE} is not installed here (${why}; \`bash scripts/install-rdkafka.sh\` builds it)`;
  }
  const capture = ['limit', 'capture', 'debezium', 'e2e', 'e2e-split', 'replay', 'memory', ...MARIADB_BENCHES].some((b) => wants(o, b as PipelineBench));
  if (capture) {
    o.log(`\npipeline: narrow rows (5 columns), ${o.repeat} interleaved repeats`);
    result.shapes.push(await runShape(o, 'narrow', o.changes, dbz, rdkafka));
  }
  if (o.wideChanges > 0 && ['limit', 'capture', 'debezium'].some((b) => wants(o, b as PipelineBench))) {
    o.log(`\npipeline: wide rows (25 columns, ≈ 1 KB), ${o.repeat} interleaved repeats`);
    result.shapes.push(await runShape({ ...o, only: new Set([...o.only].filter((b) => b === 'limit' || b === 'capture' || b === 'debezium')) }, 'wide', o.wideChanges, dbz, rdkafka));
  }
  if (wants(o, 'latency')) {
    o.log(`\nlatency: ${fmt(o.latencyRate)} changes/s offered for ${o.latencySeconds} s, ${o.repeat} repeats`);
    const runs: LatencyRun[] = [];
    for (let r = 0; r < o.repeat; r++) {
      const x = await runLatency({ rate: o.latencyRate, seconds: o.latencySeconds, log: o.log });
      runs.push(x);
      o.log(`  r${r + 1}/${o.repeat}: p50 ${x.p50.toFixed(0)} ms, p95 ${x.p95.toFixed(0)} ms, p99 ${x.p99.toFixed(0)} ms, max ${x.max.toFixed(0)} ms (achieved ${fmt(x.achievedPerSec)}/s), peak RSS ${x.peakMb.toFixed(0)} MB`);
    }
    result.latency = { runs, p50: figure(runs.map((x) => x.p50)), p95: figure(runs.map((x) => x.p95)), p99: figure(runs.map((x) => x.p99)), achieved: figure(runs.map((x) => x.achievedPerSec)) };
  }
  if (wants(o, 'memory') && o.snapshotRows > 0) {
    o.log(`\nmemory: snapshot of ${fmt(o.snapshotRows / 10)} and ${fmt(o.snapshotRows)} rows`);
    result.snapshot = [];
    for (const rows of [Math.round(o.snapshotRows / 10), o.snapshotRows]) {
      const x = await runSnapshotMemory(rows, o.log);
      result.snapshot.push(x);
      o.log(`  snapshot of ${fmt(rows)} rows: peak RSS ${x.peakMb.toFixed(0)} MB, ${fmt(x.perSec)} rows/s`);
    }
  }
  return result;
}

// ------------------------------------------------------------------ targets and tables

export interface Target {
  name: string;
  wanted: string;
  measured: string;
  met: boolean | undefined;
}

const x = (f: Figure | undefined) => (f ? `${f.median.toFixed(2)}× (${f.min.toFixed(2)} – ${f.max.toFixed(2)})` : 'n/a');

export function targets(r: PipelineResult): Target[] {
  const n = r.shapes.find((s) => s.shape === 'narrow');
  const out: Target[] = [];
  if (n?.e2e && n.limit) {
    const q = ratio(n.e2e, n.limit);
    out.push({ name: '(4) end to end vs capture limit', wanted: '≥ 0.25×', measured: x(q), met: q.median >= 0.25 });
  }
  if (n?.e2eSplit && n.limit) {
    const q = ratio(n.e2eSplit, n.limit);
    out.push({ name: '(4) end to end, split in two processes, vs capture limit', wanted: '≥ 0.25×', measured: x(q), met: q.median >= 0.25 });
  }
  if (n?.capture && n.limit) {
    const q = ratio(n.capture, n.limit);
    out.push({ name: '(2) syncline capture vs capture limit', wanted: '≥ 0.5×', measured: x(q), met: q.median >= 0.5 });
  }
  if (n?.captureRdkafka && n.limit) {
    const q = ratio(n.captureRdkafka, n.limit);
    out.push({ name: '(2) syncline capture, librdkafka producer, vs capture limit', wanted: '≥ 0.5×', measured: x(q), met: q.median >= 0.5 });
  }
  if (n?.capture && n.debezium) {
    const q = ratio(n.capture, n.debezium);
    out.push({ name: '(2) syncline capture vs Debezium', wanted: '≥ 1.0×', measured: x(q), met: q.median >= 1 });
  }
  if (r.latency) out.push({ name: `(5) p99 latency at ${fmt(r.options.latencyRate)}/s`, wanted: '< 250 ms', measured: `${fmt(r.latency.p99.median)} ms (${fmt(r.latency.p99.min)} – ${fmt(r.latency.p99.max)})`, met: r.latency.p99.median < 250 });
  if (n?.replay) out.push({ name: '(6) no-op replay', wanted: '≥ 100,000/s', measured: `${fmt(n.replay.median)}/s (${fmt(n.replay.min)} – ${fmt(n.replay.max)})`, met: n.replay.median >= 100_000 });
  const mem: [string, number][] = [];
  for (const s of r.shapes) for (const [k, v] of Object.entries(s.peakMb)) if (k.startsWith('syncline')) mem.push([`${k}, ${s.shape}`, v]);
  for (const s of r.snapshot ?? []) mem.push([`syncline capture, snapshot of ${fmt(s.rows)} rows`, s.peakMb]);
  if (mem.length) {
    const worst = mem.reduce((a, b) => (b[1] > a[1] ? b : a));
    out.push({ name: '(7) peak RSS per syncline process', wanted: `< ${MEMORY_TARGET_MB} MB`, measured: `${worst[1].toFixed(0)} MB max (${worst[0]})`, met: worst[1] < MEMORY_TARGET_MB });
  }
  return out;
}

export function targetsTable(t: Target[]): string {
  return ['| Target | Wanted | Measured (median, min – max of the repeats) | |', '|---|---|---|---|', ...t.map((z) => `| ${z.name} | ${z.wanted} | ${z.measured} | ${z.met ? 'met' : '**not met**'} |`)].join('\n');
}

export function throughputTable(r: PipelineResult): string {
  const rows: string[] = ['| Rows | Measurement | Median changes/s | Min – max | Spread | × limit |', '|---|---|---:|---:|---:|---:|'];
  for (const s of r.shapes) {
    const row = (name: string, f: Figure | undefined) => {
      if (!f) return;
      const q = s.limit ? ratio(f, s.limit) : undefined;
      rows.push(`| ${s.shape} | ${name} | ${fmt(f.median)} | ${fmt(f.min)} – ${fmt(f.max)} | ±${f.spreadPct.toFixed(1)}% | ${q ? q.median.toFixed(2) : ''} |`);
    };
    row('(1) capture limit: pg_recvlogical, pgoutput', s.limit);
    row('(2) syncline capture → Kafka (Avro, acks=all)', s.capture);
    row('(2) syncline capture → Kafka, librdkafka producer (kafka.producer: librdkafka)', s.captureRdkafka);
    row('(3) Debezium ' + DEBEZIUM_VERSION + ' embedded → Kafka (JSON, acks=all)', s.debezium);
    row('(4) syncline end to end → PostgreSQL target (one process)', s.e2e);
    row('(4) syncline end to end, split: capture + process&sink in two processes', s.e2eSplit);
    row('(6) no-op replay (processor + sink, all skipped)', s.replay);
    if (s.capture && s.debezium) rows.push(`| ${s.shape} | syncline capture ÷ Debezium | ${ratio(s.capture, s.debezium).median.toFixed(2)}× | ${ratio(s.capture, s.debezium).min.toFixed(2)} – ${ratio(s.capture, s.debezium).max.toFixed(2)} | | |`);
  }
  return rows.join('\n');
}

/**
 * MariaDB next to PostgreSQL, each pair measured in the same repeats: changes/s (median, min – max),
 * MariaDB ÷ PostgreSQL (ratio of the medians, min – max of the per-repeat ratios) and peak RSS (max
 * over the repeats). Empty when no MariaDB part ran.
 */
export function mariadbTable(r: PipelineResult): string {
  const s = r.shapes.find((x) => x.shape === 'narrow');
  if (!s || (!s.mariadb?.capture && !s.sink)) return '';
  const rows = [
    '| Measurement | PostgreSQL: changes/s (min – max) | MariaDB: changes/s (min – max) | MariaDB ÷ PostgreSQL (min – max of the repeats) | Peak RSS, PostgreSQL / MariaDB |',
    '|---|---:|---:|---:|---:|',
  ];
  const cell = (f: Figure) => `${fmt(f.median)} (${fmt(f.min)} – ${fmt(f.max)})`;
  const q = (a: Figure, b: Figure) => {
    const x = ratio(a, b);
    return `**${x.median.toFixed(2)}×** (${x.min.toFixed(2)} – ${x.max.toFixed(2)})`;
  };
  const mb = (k: string) => (s.peakMb[k] !== undefined ? `${s.peakMb[k]!.toFixed(0)} MB` : 'n/a');
  if (s.mariadb?.capture && s.capture) {
    rows.push(`| capture → Kafka (syncline capture stage; PostgreSQL: pgoutput slot, MariaDB: binlog) | ${cell(s.capture)} | ${cell(s.mariadb.capture)} | ${q(s.mariadb.capture, s.capture)} | ${mb('syncline capture')} / ${mb('syncline capture, MariaDB source')} |`);
  }
  if (s.mariadb?.captureWithStartup && s.captureWithStartup) {
    rows.push(`| capture → Kafka, start-up included (process start to the last message) | ${cell(s.captureWithStartup)} | ${cell(s.mariadb.captureWithStartup)} | ${q(s.mariadb.captureWithStartup, s.captureWithStartup)} | |`);
  }
  if (s.sink) {
    rows.push(`| process + sink from a filled change topic → target | ${cell(s.sink.postgres)} | ${cell(s.sink.mariadb)} | ${q(s.sink.mariadb, s.sink.postgres)} | ${mb('syncline process+sink → PostgreSQL (from a filled topic)')} / ${mb('syncline process+sink → MariaDB (from a filled topic)')} |`);
  }
  return rows.join('\n');
}

/**
 * Where the CPU goes in the MariaDB parts and their PostgreSQL peers: µs of CPU per change by
 * process (median of the repeats; bench/cpu.ts). The MariaDB server is one process (its binlog
 * dump thread, the sink's sessions and anyone else's queries); on PostgreSQL the walsender
 * (capture) and the target database's backends (sink) are counted.
 */
export function mariadbCpuTable(r: PipelineResult): string {
  const s = r.shapes.find((x) => x.shape === 'narrow');
  if (!s) return '';
  const c = s.myCpu;
  const cols: [string, Record<string, number>[]][] = [
    ['capture, PostgreSQL', c.capturePg], ['capture, MariaDB', c.captureMy], ['sink → PostgreSQL', c.sinkPg], ['sink → MariaDB', c.sinkMy],
  ].filter(([, x]) => (x as Record<string, number>[]).length > 0) as [string, Record<string, number>[]][];
  if (cols.length === 0 || cols.every(([, x]) => Object.keys(x[0]!).length === 0)) return '';
  const roles = ['syncline capture', 'syncline process+sink', 'PostgreSQL walsender (source)', 'PostgreSQL target connections', 'MariaDB server (all of it)', 'Kafka broker', 'schema registry', 'Redis'];
  const med = (x: Record<string, number>[], role: string) => figure(x.map((y) => y[role] ?? 0)).median;
  const us = (v: number) => (v === 0 ? '' : v >= 10 ? v.toFixed(0) : v.toFixed(1));
  const rows = [`| Process | ${cols.map(([n]) => n).join(' | ')} |`, `|---|${cols.map(() => '---:').join('|')}|`];
  for (const role of roles) {
    if (cols.every(([, x]) => med(x, role) === 0)) continue;
    rows.push(`| ${role} | ${cols.map(([, x]) => us(med(x, role))).join(' | ')} |`);
  }
  return rows.join('\n');
}

export function memoryTable(r: PipelineResult): string {
  const rows = ['| Process | During | Peak RSS (VmHWM), max of repeats |', '|---|---|---:|'];
  for (const s of r.shapes) for (const [k, v] of Object.entries(s.peakMb)) rows.push(`| ${k} | ${s.shape} workload, ${fmt(s.workload.changes)} changes | ${v.toFixed(0)} MB |`);
  for (const s of r.snapshot ?? []) rows.push(`| syncline capture | snapshot of ${fmt(s.rows)} rows (${fmt(s.perSec)} rows/s) | ${s.peakMb.toFixed(0)} MB |`);
  return rows.join('\n');
}

/**
 * Where the CPUs go during (4): µs of CPU per change by process (median of the repeats), their sum,
 * the rate that sum allows with every CPU busy, and the sum target (4) allows. Empty without samples.
 */
export function cpuTable(r: PipelineResult, nproc: number): string {
  const s = r.shapes.find((x) => x.cpu.e2e.length + x.cpu.e2eSplit.length > 0);
  if (!s) return '';
  const runs = [['one process', s.cpu.e2e, s.e2e], ['split', s.cpu.e2eSplit, s.e2eSplit]] as const;
  const cols = runs.filter(([, c]) => c.length > 0 && Object.keys(c[0]!).length > 0);
  if (cols.length === 0) return '';
  const med = (c: readonly Record<string, number>[], role: string) => figure(c.map((x) => x[role] ?? 0)).median;
  const us = (x: number) => (x >= 10 ? x.toFixed(0) : x.toFixed(1));
  const rows = [`| Process | ${cols.map(([n]) => `µs per change, ${n}`).join(' | ')} |`, `|---|${cols.map(() => '---:').join('|')}|`];
  for (const role of CPU_ROLES) {
    if (cols.every(([, c]) => med(c, role) === 0)) continue;
    rows.push(`| ${role} | ${cols.map(([, c]) => (med(c, role) === 0 ? '' : us(med(c, role)))).join(' | ')} |`);
  }
  // The sum of the medians shown (not the median of the sums), so that the column adds up.
  const sums = cols.map(([, c]) => CPU_ROLES.reduce((a, role) => a + med(c, role), 0));
  rows.push(`| **all of them** | ${sums.map((x) => `**${us(x)}**`).join(' | ')} |`);
  rows.push(`| rate with ${nproc} CPUs all busy (${nproc} × 10⁶ ÷ sum) | ${sums.map((x) => fmt((nproc * 1e6) / x) + '/s').join(' | ')} |`);
  rows.push(`| measured rate (median) | ${cols.map(([, , f]) => (f ? fmt(f.median) + '/s' : '')).join(' | ')} |`);
  if (s.limit) rows.push(`| sum that 0.25 × the limit (${fmt(0.25 * s.limit.median)}/s) allows | ${cols.map(() => us((nproc * 1e6) / (0.25 * s.limit!.median))).join(' | ')} |`);
  // What the processes syncline drives (walsender, target, Redis, Kafka, registry) leave: the rate
  // with syncline's own processes at no CPU at all, the ceiling of (4) on this machine.
  const others = cols.map(([, c]) => CPU_ROLES.filter((role) => !role.startsWith('syncline')).reduce((a, role) => a + med(c, role), 0));
  const ceiling = (x: number) => fmt((nproc * 1e6) / x) + '/s' + (s.limit ? ` (${((nproc * 1e6) / x / s.limit.median).toFixed(2)}× the limit)` : '');
  rows.push(`| the others (all but syncline's processes) | ${others.map(us).join(' | ')} |`);
  rows.push(`| ceiling with syncline's processes at 0 µs (${nproc} × 10⁶ ÷ the others) | ${others.map(ceiling).join(' | ')} |`);
  return rows.join('\n');
}

export function latencyTable(r: PipelineResult): string {
  const l = r.latency;
  if (!l) return '';
  return [
    '| Offered | Achieved (median) | p50 | p95 | p99 | max (worst run) |',
    '|---:|---:|---:|---:|---:|---:|',
    `| ${fmt(r.options.latencyRate)}/s for ${r.options.latencySeconds} s | ${fmt(l.achieved.median)}/s | ${fmtMs(l.p50)} | ${fmtMs(l.p95)} | ${fmtMs(l.p99)} | ${fmt(Math.max(...l.runs.map((z) => z.max)))} ms |`,
  ].join('\n');
}

const fmtMs = (f: Figure) => `${fmt(f.median)} ms (${fmt(f.min)} – ${fmt(f.max)})`;

export function memoryTargetMb(): number {
  return MEMORY_TARGET_MB;
}
