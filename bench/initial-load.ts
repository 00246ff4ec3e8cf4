/**
 * Initial load (issue 26): a table of N rows copied to an empty target table (same shape, primary
 * key only), by
 *   - `pg_dump --data-only -t T | psql`: the dump a user would script (its COPY statements),
 *   - `COPY T TO STDOUT | COPY T FROM STDIN` (psql on both ends): the floor of any copy through a pipe,
 *   - syncline end to end: `syncline start` with `snapshot: initial` (capture's snapshot → Kafka →
 *     processor → sink writer → target), timed from the start of the process to the target holding
 *     every row (counted by the sink, checked with count(*) at the end),
 *   - Debezium's snapshot through its JDBC sink (bench/debezium-e2e.ts: the connector with
 *     `snapshot=initial` → Kafka → the JDBC sink in Kafka Connect standalone), timed from the start
 *     of the sink's JVM to count(*) on the target reaching every row (when `debezium` is set),
 * on the narrow (5 columns) and the wide (25 columns, ≈ 1 KB) rows of the pipeline benchmarks.
 * Rate: rows / wall time of the whole copy, start-up included (the tools start fresh too).
 * Also the CPU each process spent per row (bench/cpu.ts), to say where the time goes.
 *
 *   npm run bench -- --only initial-load [--load-rows N (default 1,000,000; 10,000,000 too with --load-10m)] [--load-wide-rows N (250,000)] [--repeat K]
 *   npx tsx bench/initial-load.ts [--rows N] [--wide-rows N] [--repeat K]      (prints only)
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpuPerChange, sampleCpu } from './cpu.js';
import { createTarget } from './end-to-end.js';
import { buildJdbcSink, startDebeziumPipeline } from './debezium-e2e.js';
import { PG, createSource, dropSlots, deleteRedisKeys, deleteTopics, dropDb, e2eSectionFooter, figure, fmt, fmtFigure, ratio, runBenchCli, sleep, spawnSyncline, sql, writeConfig, writeWorkload, type Figure, type Shape, type Source } from './common.js';

const run = promisify(execFile);

export interface LoadCase {
  shape: Shape;
  rows: number;
  /** Rows/s by tool over the repeats. */
  pgDump: Figure;
  copy: Figure;
  syncline: Figure;
  /** Debezium's snapshot through its JDBC sink (when run). */
  debezium?: Figure;
  /** syncline ÷ pg_dump | psql, ÷ COPY | COPY and ÷ Debezium (per-repeat ranges). */
  vsDump: Figure;
  vsCopy: Figure;
  vsDebezium?: Figure;
  /** µs of CPU per row by process role, last syncline repeat. */
  cpu: Record<string, number>;
  peakMb: number;
}

export interface InitialLoadResult {
  repeat: number;
  cases: LoadCase[];
}

/** Targets of issue 26: syncline's initial load end to end at least half as fast as `pg_dump | psql`, and 5× Debezium's. */
export const LOAD_TARGET = 0.5;
export const LOAD_DEBEZIUM_TARGET = 5;
/** Debezium's snapshot runs on tables up to this size: through its JDBC sink (≈ 5,000 rows/s here) 10M rows take over half an hour. */
export const DEBEZIUM_MAX_ROWS = 1_000_000;

const psqlArgs = (db: string) => ['-h', PG.host, '-p', String(PG.port), '-U', PG.user, '-d', db, '-q', '-v', 'ON_ERROR_STOP=1'];

/** Run a shell pipeline (both ends are PostgreSQL client tools), failing with its stderr. */
async function pipeline(cmd: string): Promise<void> {
  try {
    await run('bash', ['-o', 'pipefail', '-c', cmd], { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    throw new Error(`initial load: ${cmd} failed: ${(err as { stderr?: string }).stderr ?? String(err)}`);
  }
}

const q = (args: string[]) => args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');

async function freshTarget(src: Source, tag: string): Promise<string> {
  await dropDb(`${src.db}_${tag}`).catch(() => undefined);
  return createTarget(src, tag);
}

async function countRows(db: string, table: string): Promise<number> {
  return (await sql(db, `select count(*)::int as n from public.${table}`)).rows[0].n as number;
}

/** Rows/s of one copy: `copy` fills `target`; checked by count(*). */
async function timed(rows: number, target: string, table: string, copy: () => Promise<void>): Promise<number> {
  const t0 = Date.now();
  await copy();
  const ms = Date.now() - t0;
  const n = await countRows(target, table);
  if (n !== rows) throw new Error(`initial load: the target holds ${n} rows, expected ${rows}`);
  return (rows * 1000) / ms;
}

async function synclineLoad(src: Source, rows: number, tag: string): Promise<{ perSec: number; cpu: Record<string, number>; peakMb: number }> {
  const prefix = `${src.prefix}${tag}`;
  const targetDb = await freshTarget(src, tag);
  const configFile = writeConfig({ prefix, pipeline: 'load', sourceDb: src.db, targetDb, slot: `${src.prefix}_${tag}`, publication: src.publication, table: src.table, snapshot: 'initial' });
  const t0 = Date.now();
  const child = spawnSyncline(configFile, ['capture', 'process', 'sink']);
  const roles = new Map<number, string>([[child.pid, 'syncline (one process)']]);
  const before = sampleCpu(roles, targetDb);
  try {
    let last = 0;
    let lastAt = Date.now();
    while (child.stats.applied + child.stats.skippedUnchanged < rows) {
      const dead = child.exited();
      if (dead) throw new Error(`initial load: syncline ${dead}`);
      const n = child.stats.applied;
      if (n !== last) [last, lastAt] = [n, Date.now()];
      if (Date.now() - lastAt > 120_000) throw new Error(`initial load: syncline applied nothing for 120 s (${n} of ${rows} rows)`);
      await sleep(50);
    }
    const ms = Date.now() - t0;
    const cpu = cpuPerChange(before, sampleCpu(roles, targetDb), rows);
    const n = await countRows(targetDb, src.table);
    if (n !== rows) throw new Error(`initial load: syncline's target holds ${n} rows, expected ${rows}`);
    return { perSec: (rows * 1000) / ms, cpu, peakMb: child.peakMb() };
  } finally {
    await child.stop();
    await deleteTopics(prefix);
    await deleteRedisKeys(prefix);
    await dropDb(targetDb).catch(() => undefined);
  }
}

/** Debezium's snapshot of the table through its JDBC sink into a fresh target: rows/s, start-up included. */
async function debeziumLoad(src: Source, rows: number, tag: string): Promise<number> {
  const targetDb = await freshTarget(src, tag);
  const t0 = Date.now();
  const p = await startDebeziumPipeline(src, { slot: `${src.prefix}_${tag}`, tag, targetDb, snapshot: 'initial' });
  try {
    let last = 0;
    let lastAt = Date.now();
    for (;;) {
      const n = await countRows(targetDb, src.table);
      if (n === rows) break;
      const dead = p.source.exited() ?? p.sink.exited();
      if (dead) throw new Error(`initial load: Debezium ${dead}`);
      if (n !== last) [last, lastAt] = [n, Date.now()];
      if (Date.now() - lastAt > 180_000) throw new Error(`initial load: Debezium's JDBC sink wrote nothing for 180 s (${n} of ${rows} rows)`);
      await sleep(500);
    }
    return (rows * 1000) / (Date.now() - t0);
  } finally {
    await p.stop();
    await dropSlots(`${src.prefix}_${tag}`);
    await dropDb(targetDb).catch(() => undefined);
  }
}

async function loadCase(shape: Shape, rows: number, repeat: number, debezium: boolean, log: (s: string) => void): Promise<LoadCase> {
  const src = await createSource(shape, `load${shape[0]}`);
  try {
    await writeWorkload(src.db, `public.${src.table}`, shape, rows, 0, 50_000);
    await sql(src.db, `vacuum analyze public.${src.table}`);
    const dump: number[] = [];
    const copy: number[] = [];
    const sync: number[] = [];
    const dbz: number[] = [];
    let last: { cpu: Record<string, number>; peakMb: number } = { cpu: {}, peakMb: NaN };
    const T = `public.${src.table}`;
    for (let i = 0; i < repeat; i++) {
      let target = await freshTarget(src, 'dump');
      dump.push(await timed(rows, target, src.table, () => pipeline(`pg_dump ${q(['-h', PG.host, '-p', String(PG.port), '-U', PG.user, '--data-only', '-t', T, src.db])} | psql ${q(psqlArgs(target))}`)));
      await dropDb(target);
      target = await freshTarget(src, 'copy');
      copy.push(await timed(rows, target, src.table, () => pipeline(`psql ${q([...psqlArgs(src.db), '-c', `COPY ${T} TO STDOUT`])} | psql ${q([...psqlArgs(target), '-c', `COPY ${T} FROM STDIN`])}`)));
      await dropDb(target);
      const s = await synclineLoad(src, rows, `s${i}`);
      sync.push(s.perSec);
      last = s;
      if (debezium && rows <= DEBEZIUM_MAX_ROWS) dbz.push(await debeziumLoad(src, rows, `d${i}`));
      log(`  ${shape} ${fmt(rows)} rows, repeat ${i + 1}: pg_dump | psql ${fmt(dump.at(-1)!)} rows/s, COPY | COPY ${fmt(copy.at(-1)!)} rows/s, syncline ${fmt(s.perSec)} rows/s (peak RSS ${fmt(s.peakMb)} MB)${dbz.length > i ? `, Debezium → JDBC sink ${fmt(dbz[i]!)} rows/s` : ''}`);
    }
    const [d, c, s] = [figure(dump), figure(copy), figure(sync)];
    const z = dbz.length > 0 ? figure(dbz) : undefined;
    return { shape, rows, pgDump: d, copy: c, syncline: s, ...(z ? { debezium: z, vsDebezium: ratio(s, z) } : {}), vsDump: ratio(s, d), vsCopy: ratio(s, c), cpu: last.cpu, peakMb: last.peakMb };
  } finally {
    await src.cleanup();
  }
}

export async function runInitialLoadBench(o: { cases: { shape: Shape; rows: number }[]; repeat: number; /** Debezium's snapshot through its JDBC sink too (built: bench/debezium-e2e.ts buildJdbcSink). */ debezium?: boolean; log?: (s: string) => void }): Promise<InitialLoadResult> {
  const log = o.log ?? (() => undefined);
  const cases: LoadCase[] = [];
  // A shape of 0 rows (`--load-rows 0`: only the wide table) is left out, not printed as a row of zeros.
  for (const c of o.cases) if (c.rows > 0) cases.push(await loadCase(c.shape, c.rows, o.repeat, o.debezium ?? false, log));
  return { repeat: o.repeat, cases };
}

export function initialLoadTable(r: InitialLoadResult): string {
  const lines = [
    '| rows | `pg_dump \\| psql` rows/s | `COPY \\| COPY` rows/s | syncline end to end rows/s | syncline ÷ pg_dump | syncline ÷ COPY | target ≥ 0.5× pg_dump |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const c of r.cases) {
    lines.push(`| ${fmt(c.rows)} ${c.shape} | ${fmtFigure(c.pgDump)} | ${fmtFigure(c.copy)} | ${fmtFigure(c.syncline)} | ${fmtFigure(c.vsDump, 2)} | ${fmtFigure(c.vsCopy, 2)} | ${c.vsDump.median >= LOAD_TARGET ? 'met' : 'not met'} |`);
  }
  const withDbz = r.cases.filter((c) => c.debezium && c.vsDebezium);
  if (withDbz.length > 0) {
    lines.push('', '| rows | Debezium snapshot → JDBC sink rows/s | syncline ÷ Debezium | target ≥ 5× |', '|---|---|---|---|');
    for (const c of withDbz) lines.push(`| ${fmt(c.rows)} ${c.shape} | ${fmtFigure(c.debezium!)} | ${fmtFigure(c.vsDebezium!, 2)} | ${c.vsDebezium!.median >= LOAD_DEBEZIUM_TARGET ? 'met' : 'not met'} |`);
  }
  const roles = [...new Set(r.cases.flatMap((c) => Object.keys(c.cpu)))];
  if (roles.length > 0) {
    lines.push('', `| CPU µs per row (syncline's last repeat) | ${roles.join(' | ')} |`, `|---|${roles.map(() => '---').join('|')}|`);
    for (const c of r.cases) lines.push(`| ${fmt(c.rows)} ${c.shape} | ${roles.map((k) => fmt(c.cpu[k] ?? 0, 1)).join(' | ')} |`);
  }
  return lines.join('\n');
}

export function initialLoadSection(r: InitialLoadResult, m: { nproc: number; cpu: string; node: string; date: string }, command: string): string {
  return [
    '## Initial load',
    '',
    'bench/initial-load.ts: a source table copied into an empty target table (primary key only) by `pg_dump --data-only -t T | psql`,',
    'by `COPY T TO STDOUT | COPY T FROM STDIN` (psql on both ends), and by syncline end to end (`snapshot: initial`: capture →',
    'Kafka → processor → sink writer → target, one `syncline start` process). Rate: rows over the wall time of the whole',
    `copy, start-up included, checked with count(*) on the target; median (min – max) of ${r.repeat} repeat${r.repeat === 1 ? '' : 's'}.`,
    "Debezium: its PostgreSQL connector's snapshot (`snapshot=initial`, Avro through the same registry) → Kafka → its JDBC sink in",
    'Kafka Connect standalone (as in the end-to-end-against-Debezium section), from the start of the sink to count(*) reaching every row;',
    `on tables up to ${fmt(DEBEZIUM_MAX_ROWS)} rows (10M would take it over half an hour).`,
    'Targets (issue 26): syncline ≥ 0.5× `pg_dump | psql`, ≥ 5× Debezium. The CPU table says which process spent the time per row.',
    '',
    initialLoadTable(r),
    '',
    ...e2eSectionFooter(m, command, 'the ratios'),
  ].join('\n');
}

runBenchCli(import.meta.url, async (arg) => {
  const repeat = Number(arg('repeat', '1'));
  const rows = Number(arg('rows', '1000000'));
  const wide = Number(arg('wide-rows', '250000'));
  const debezium = !process.argv.includes('--skip-debezium');
  if (debezium) buildJdbcSink(console.log);
  return runInitialLoadBench({ cases: [{ shape: 'narrow', rows }, ...(wide > 0 ? [{ shape: 'wide' as const, rows: wide }] : [])], repeat, debezium, log: console.log });
}, initialLoadTable);
