/**
 * `npm run bench`: runs the benchmarks, prints their tables and updates BENCHMARKS.md.
 *
 *   npm run bench                          full run: validation, then the pipeline benchmarks
 *                                          (1,000,000 inserts + 500,000 updates, 3 repeats), writes BENCHMARKS.md
 *   npm run bench -- --changes 100000      smaller run (100,000 inserts + 50,000 updates)
 *   npm run bench -- --quick               smoke sizes to check the harness; does not touch BENCHMARKS.md
 *   npm run bench -- --quick --write       … and writes it anyway (marked as a quick run)
 *   npm run bench -- --no-write            full run, print only
 *   --only validation,limit,capture,debezium,e2e,e2e-split,latency,replay,memory,mariadb-capture,mariadb-sink,backfill,targets,encryption,transforms,history,verify,instances,initial-load,debezium-e2e,kafka-client
 *                                          run only these; the MariaDB parts run their PostgreSQL baseline
 *                                          themselves (the capture (2)) and write only the MariaDB section
 *   --repeat K (default 3)  --skip-debezium  --snapshot-rows N (default 10,000,000)
 *   --wide-changes N (default changes/4)  --latency-seconds S (60)  --latency-rate R (5,000)
 *   --backfill-rows N (default 200,000): the table of the backfill benchmark (bench/backfill.ts)
 *   --target-changes N (default changes/10): inserts written to each target by bench/targets.ts (+ N/2 updates)
 *   --encryption-changes N (default changes/10): changes of bench/encryption.ts (plain and with 3 encrypted columns)
 *   --transform-changes N (default changes/10): changes of bench/transforms.ts (plain and with a 5-step transform chain)
 *   --history-changes N (default changes/10): changes of bench/history.ts (without and with the change history, two stores)
 *   --verify-rows N (default 1,000,000): rows of each table of bench/verify.ts (syncline verify vs md5(string_agg))
 *   --instance-changes N (default changes/10): changes of bench/instances.ts (1, 2, 3 process+sink instances)
 *   --load-rows N (default 1,000,000; 10,000,000 is run too unless --load-rows is given) --load-wide-rows N (default 250,000):
 *                                          the tables of bench/initial-load.ts (pg_dump | psql, COPY | COPY, syncline's snapshot)
 *   --peer-changes N (default changes/10): inserts of bench/debezium-e2e.ts's narrow workload (+ N/2 updates; the wide
 *                                          one is half of that): syncline end to end against Debezium → JDBC sink,
 *                                          then syncline's latency at 80 % of its rate (--latency-seconds, at most 30)
 *   --client-messages N (default 200,000): messages of bench/kafka-client.ts (@platformatic/kafka against kafkajs)
 *
 * BENCHMARKS.md keeps one section per benchmark between `<!-- bench:NAME:start -->` and
 * `<!-- bench:NAME:end -->`; a run replaces only its own sections, so benchmarks added later keep
 * theirs. Each section records the machine, Node version, date and the command that reproduces it.
 * A missed target is printed as "not met" and never fails the run; only a harness error exits 1.
 * Needs the local stack (`npm run stack:up`) for everything but validation.
 */
import '../src/core/kafkajs-patch.js'; // first: before kafkajs loads (bench/kafka-client.ts measures kafkajs as syncline runs it)
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runValidationBench, TARGET_PER_SEC, validationTable, type ValidationBenchResult } from './validation.js';
import { cpuTable, latencyTable, mariadbCpuTable, mariadbTable, MARIADB_BENCHES, memoryTable, PIPELINE_BENCHES, runPipelineBench, targets, targetsTable, throughputTable, type PipelineBench, type PipelineResult } from './pipeline.js';
import { buildChildren, fmt } from './common.js';
import { backfillSection, backfillTable, runBackfillBench } from './backfill.js';
import { runTargetsBench, targetsSection, targetsTable as targetRatesTable } from './targets.js';
import { encryptionSection, encryptionTable, runEncryptionBench } from './encryption.js';
import { runTransformsBench, transformsSection, transformsTable } from './transforms.js';
import { historySection, historyTable, runHistoryBench } from './history.js';
import { runVerifyBench, verifyBenchSection, verifyBenchTable } from './verify.js';
import { instancesSection, instancesTable, runInstancesBench } from './instances.js';
import { initialLoadSection, initialLoadTable, runInitialLoadBench } from './initial-load.js';
import { buildJdbcSink, debeziumE2eSection, debeziumE2eTable, runDebeziumE2eBench } from './debezium-e2e.js';
import { kafkaClientSection, kafkaClientTable, runKafkaClientBench } from './kafka-client.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BENCHMARKS_FILE = resolve(ROOT, 'BENCHMARKS.md');

export interface Machine {
  nproc: number;
  cpu: string;
  node: string;
  date: string;
}

export function machine(): Machine {
  let nproc = cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || nproc;
  } catch {
    /* nproc missing: keep os.cpus() */
  }
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1]!.trim();
  } catch {
    /* not Linux */
  }
  return { nproc, cpu, node: process.version, date: new Date().toISOString().slice(0, 10) };
}

export function validationSection(r: ValidationBenchResult, m: Machine, quick: boolean): string {
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  return [
    '## Validation rules',
    '',
    `Validations per second of one ${r.fieldCount}-field record against ${r.ruleCount} rules (required, type, email`,
    'format, pattern, min, max, enum, maxLength, a date range relative to now, a cross-field rule), on one',
    'thread, through the compiled validator the processor uses (`bench/validation.ts`). Target:',
    `${n(TARGET_PER_SEC)}/s. **${r.met ? 'Met' : 'Not met'}: median ${n(r.validator.median)}/s** (${(r.validator.median / TARGET_PER_SEC).toFixed(1)}× the target).`,
    '',
    validationTable(r),
    '',
    `${r.runs} timed runs of ${n(r.iterations)} validations each after a warm-up, the four measurements`,
    'interleaved run by run; spread = ±half of (max − min) / median. Records cycle through a pool of',
    '1,024 distinct rows. The hand-written baseline does the same checks with `Number()` and',
    '`Date.parse()` instead of exact decimals and canonical timestamps; it is slower partly because',
    '`Date.parse()` is (about 170 ns against 80 ns for the validator\'s parser of canonical timestamps,',
    'measured on the machine below).',
    '',
    `Machine: ${m.nproc} CPU${m.nproc === 1 ? '' : 's'} (\`nproc\`), ${m.cpu}, Node ${m.node}; measured ${m.date}${quick ? ' (quick run: fewer, shorter runs)' : ''}.`,
    `Reproduce: \`npm run bench\`${quick ? ' (this was `npm run bench -- --quick --write`)' : ''}.`,
  ].join('\n');
}

/** Replace (or append) the section `name` of BENCHMARKS.md. */
export function updateBenchmarks(text: string | undefined, name: string, body: string): string {
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const block = `${start}\n${body}\n${end}`;
  const base =
    text ??
    [
      '# Benchmarks',
      '',
      'Written by `npm run bench` (bench/index.ts): each section is replaced by the run that measured it.',
      'Figures depend on the machine; each section says which one and how to reproduce it.',
      '',
    ].join('\n');
  const i = base.indexOf(start);
  const j = base.indexOf(end);
  if (i >= 0 && j > i) return base.slice(0, i) + block + base.slice(j + end.length);
  return `${base.trimEnd()}\n\n${block}\n`;
}

export interface BenchArgs {
  quick: boolean;
  write: boolean;
  only: Set<string>;
  changes: number;
  wideChanges: number;
  repeat: number;
  skipDebezium: boolean;
  snapshotRows: number;
  latencySeconds: number;
  latencyRate: number;
  /** Rows of the backfill benchmark's table (bench/backfill.ts). */
  backfillRows: number;
  /** Inserts written to each target by bench/targets.ts (+ half as many updates). */
  targetChanges: number;
  /** Changes of the field encryption benchmark (bench/encryption.ts), each way. */
  encryptionChanges: number;
  /** Changes of the transform chain benchmark (bench/transforms.ts), each way. */
  transformChanges: number;
  /** Changes of the change history benchmark (bench/history.ts), each way. */
  historyChanges: number;
  /** Rows of each table of the verify benchmark (bench/verify.ts). */
  verifyRows: number;
  /** Changes of the instances benchmark (bench/instances.ts). */
  instanceChanges: number;
  /** Narrow table sizes of the initial-load benchmark (bench/initial-load.ts), and its wide table's rows. */
  loadRows: number[];
  loadWideRows: number;
  /** Inserts of the narrow workload of bench/debezium-e2e.ts (its wide one has half as many). */
  peerChanges: number;
  /** Messages of bench/kafka-client.ts. */
  clientMessages: number;
  /** The command line as given, for "Reproduce:". */
  command: string;
}

export const ALL_BENCHES = ['validation', ...PIPELINE_BENCHES, 'backfill', 'targets', 'encryption', 'transforms', 'history', 'verify', 'instances', 'initial-load', 'debezium-e2e', 'kafka-client'] as const;

export function parseArgs(argv: string[]): BenchArgs {
  const flags = new Set(argv.filter((a) => a.startsWith('--')));
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    if (i >= 0) return argv[i + 1];
    const eq = argv.find((a) => a.startsWith(name + '='));
    return eq?.slice(name.length + 1);
  };
  const num = (name: string, dflt: number): number => {
    const v = value(name);
    if (v === undefined) return dflt;
    const n = Number(v.replace(/_/g, ''));
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} needs a number, got '${v}'`);
    return Math.round(n);
  };
  const quick = flags.has('--quick');
  const only = new Set((value('--only') ?? ALL_BENCHES.join(',')).split(',').map((x) => x.trim()).filter(Boolean));
  for (const o of only) if (!(ALL_BENCHES as readonly string[]).includes(o)) throw new Error(`--only: unknown benchmark '${o}' (have ${ALL_BENCHES.join(', ')})`);
  const changes = num('--changes', quick ? 10_000 : 1_000_000);
  return {
    quick,
    write: flags.has('--write') || (!quick && !flags.has('--no-write')),
    only,
    changes,
    wideChanges: num('--wide-changes', Math.round(changes / 4)),
    repeat: Math.max(1, num('--repeat', quick ? 1 : 3)),
    skipDebezium: flags.has('--skip-debezium'),
    backfillRows: num('--backfill-rows', quick ? 20_000 : 200_000),
    targetChanges: num('--target-changes', Math.max(1000, Math.round(changes / 10))),
    encryptionChanges: num('--encryption-changes', Math.max(1000, Math.round(changes / 10))),
    transformChanges: num('--transform-changes', Math.max(1000, Math.round(changes / 10))),
    historyChanges: num('--history-changes', Math.max(1000, Math.round(changes / 10))),
    verifyRows: num('--verify-rows', quick ? 20_000 : 1_000_000),
    instanceChanges: num('--instance-changes', Math.max(1000, Math.round(changes / 10))),
    loadRows: value('--load-rows') !== undefined ? [num('--load-rows', 0)] : quick ? [20_000] : [1_000_000, 10_000_000],
    loadWideRows: num('--load-wide-rows', quick ? 5_000 : 250_000),
    peerChanges: num('--peer-changes', Math.max(1000, Math.round(changes / 10))),
    clientMessages: num('--client-messages', quick ? 5_000 : 200_000),
    snapshotRows: num('--snapshot-rows', quick ? 50_000 : 10_000_000),
    latencySeconds: num('--latency-seconds', quick ? 10 : 60),
    latencyRate: num('--latency-rate', 5_000),
    command: ['npm run bench', ...(argv.length ? ['--', ...argv] : [])].join(' '),
  };
}

export function pipelineSection(r: PipelineResult, m: Machine, a: BenchArgs): string {
  const n = r.shapes.find((s) => s.shape === 'narrow');
  const w = r.shapes.find((s) => s.shape === 'wide');
  const t = targets(r);
  const lines = [
    '## Pipeline: throughput, latency, memory',
    '',
    'Side by side in one run on one machine (shared and noisy): every figure is the median of',
    `${a.repeat} interleaved repeat${a.repeat === 1 ? '' : 's'} with min – max; ratios are of medians (min – max of the per-repeat ratios).`,
    '',
    targetsTable(t),
    '',
    '### Throughput (changes per second)',
    '',
    `Workload: ${n ? `${fmt(n.workload.inserts)} inserts then ${fmt(n.workload.updates)} updates of a 5-column table` : 'none'}${w ? `; wide rows: ${fmt(w.workload.inserts)} inserts + ${fmt(w.workload.updates)} updates of a 25-column table (≈ 1 KB per row)` : ''};`,
    `${n ? fmt(n.workload.txRows) : '10,000'} rows per source transaction. Every tool decodes the same WAL from its own fresh slot`,
    '(all slots created before the workload is written). (1) is changes / wall time of `pg_recvlogical` to',
    '`--endpos`; (2), (3) are changes / time from the first to the last message seen in the topic (offsets',
    'polled every 100 ms; start-up excluded); (4) is changes / time from the first change reaching the',
    'sink to the target holding the final state (checked in SQL); (6) is changes / time from the first',
    'to the last skipped record. syncline ran compiled (`tsc`, `node dist/…`, as the package\'s `syncline` bin and the',
    'container image run it; SYNCLINE_BENCH_RUNTIME=tsx runs the sources through tsx instead), 3 partitions, batch',
    '2,000 (capture) / 1,000 (sink), acks=all, no compression; Debezium with its defaults',
    '(max.batch.size 2,048, max.queue.size 8,192), acks=all, idempotent producer, linger 5 ms, no compression.',
    r.debeziumNote ? `${r.debeziumNote}.` : '',
    r.rdkafkaNote ? `${r.rdkafkaNote}.` : '',
    '',
    throughputTable(r),
    '',
  ];
  const cpu = cpuTable(r, m.nproc);
  if (cpu) {
    lines.push('### Where the CPUs go during (4)', '', 'CPU time (utime + stime from /proc/<pid>/stat) of each process the run keeps busy, from the start of the',
      'syncline processes to the target holding the final state (their start-up included), divided by the changes; median of the',
      'repeats (bench/cpu.ts). Every process shares the same CPUs, so (4) can go no faster than the CPUs divided by the sum.', '', cpu, '');
  }
  if (r.latency) {
    lines.push('### Latency at a fixed load', '', `Source commit → applied in the target, per row, over every row of the run (${a.repeat} run${a.repeat === 1 ? '' : 's'}; syncline`,
      'capture linger 5 ms, all stages in one process). Each row carries its write time (clock_timestamp(), committed',
      'within a millisecond or two); a trigger on the target stamps the apply time. Each run starts on a settled machine',
      `(CHECKPOINT, then CPUs ≥ 80 % idle over a second: waited ${r.latency.runs.map((x) => (x.settledMs / 1000).toFixed(1)).join(' / ')} s), so the tail is not the clean-up of the benchmark before it.`, '', latencyTable(r), '');
  }
  lines.push('### Memory', '', 'Peak RSS (VmHWM from /proc/<pid>/status, sampled every 200 ms and just before exit) of each process.', '', memoryTable(r), '');
  if (n) {
    lines.push('### Checks (the harness, not the speed)', '', ...[...new Set(n.checks.map((c) => c.replace(/ r\d+\/\d+:/, ':')))].map((c) => `- ${c}`), '');
  }
  lines.push(
    `Machine: ${m.nproc} CPU${m.nproc === 1 ? '' : 's'} (\`nproc\`), ${m.cpu}, Node ${m.node}, PostgreSQL 15, Kafka 4.1.1 (one broker), Apicurio 2.6 registry, all on the same machine; measured ${m.date}${a.quick ? ' (quick run)' : ''}.`,
    `Reproduce: \`npm run stack:up && ${a.command}\`.`,
  );
  return lines.filter((l, i, arr) => !(l === '' && arr[i - 1] === '')).join('\n');
}

export function mariadbSection(r: PipelineResult, m: Machine, a: BenchArgs): string {
  const s = r.shapes.find((x) => x.shape === 'narrow');
  const w = s?.workload;
  const lines = [
    '## MariaDB next to PostgreSQL',
    '',
    `Measured in one run on one machine (shared and noisy), the MariaDB figure and its PostgreSQL peer interleaved repeat by repeat:`,
    `every figure is the median of ${a.repeat} repeat${a.repeat === 1 ? '' : 's'} with min – max; a ratio is of the medians, with the min – max of the`,
    'per-repeat ratios (repeat i of MariaDB against repeat i of PostgreSQL). Only the ratios compare across runs.',
    '',
    mariadbTable(r),
    '',
    `Workload: ${w ? `${fmt(w.inserts)} inserts then ${fmt(w.updates)} updates` : 'none'} of the 5-column table (id bigint key, name text, amount numeric(12,2) /`,
    'DECIMAL(12,2), updated_at timestamptz / TIMESTAMP(6), v int), 10,000 rows per source transaction, the same on both',
    'servers (no deletes: the PostgreSQL workload has none). Both produce the same Avro schema.',
    '',
    '- **Capture** (`--only mariadb-capture`): the capture stage alone (a child process, compiled, batch 2,000, linger 20 ms,',
    '  acks=all, 3 partitions) carrying a backlog into Kafka. PostgreSQL: the capture (2) of the pipeline section, from a',
    '  fresh slot created before the workload. MariaDB: the MariaDB source (row binlog, `@vlasky/zongji`), whose capture for',
    '  each repeat was started and stopped before the workload so that it resumes from a binlog position just before it.',
    '  Rate = changes / time from the first to the last message seen in the topic (offsets polled every 100 ms; start-up',
    '  excluded). The binlog is the whole server\'s: the MariaDB capture also reads (and drops) whatever else was written to',
    '  the server meanwhile (other tests on this machine); a slot decodes only its database.',
    '- **Sink** (`--only mariadb-sink`): processor + sink (one child process, `process,sink`, batch 1,000) applying the change',
    '  topic the PostgreSQL capture filled in the same repeat into a fresh empty target, once PostgreSQL (table created',
    '  beforehand) and once MariaDB (table created by the sink\'s autoCreate on the first record), each with a fresh consumer',
    '  group and Redis key prefix, the order alternating by repeat. Rate = changes / time from the first change reaching',
    '  the sink to the target holding the final state (checked in SQL), as for the end-to-end run (4). Capture is out of',
    '  the measurement, so the ratio is the target\'s alone: the processor, Redis and Kafka reads are the same work on both.',
    '- Peak RSS: VmHWM of the child process, sampled every 200 ms and just before it stops; max over the repeats.',
    '',
  ];
  const cpu = mariadbCpuTable(r);
  if (cpu) {
    lines.push('### CPU per change', '', 'µs of CPU (utime + stime from /proc/<pid>/stat, bench/cpu.ts) per change, median of the repeats, from the start of the',
      'syncline child to the end of the measurement (its start-up included). The MariaDB server is one process: its figure holds',
      'its binlog dump thread or the sink\'s sessions *and* whatever else the machine\'s other users ran on it meanwhile.', '', cpu, '');
  }
  if (s) lines.push('Checks:', '', ...[...new Set(s.checks.filter((c) => /MariaDB|sink →/.test(c)).map((c) => c.replace(/ r\d+\/\d+:/, ':')))].map((c) => `- ${c}`), '');
  lines.push(
    `Machine: ${m.nproc} CPU${m.nproc === 1 ? '' : 's'} (\`nproc\`), ${m.cpu}, Node ${m.node}, PostgreSQL 15, MariaDB 10.11 (binlog_format ROW), Kafka 4.1.1 (one broker), Apicurio 2.6 registry, all on the same machine; measured ${m.date}${a.quick ? ' (quick run)' : ''}.`,
    `Reproduce: \`npm run stack:up && ${a.command}\`.`,
  );
  return lines.filter((l, i, arr) => !(l === '' && arr[i - 1] === '')).join('\n');
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  buildChildren(); // before any timed window (a child's first start would build inside it)
  const m = machine();
  console.log(`machine: ${m.nproc} CPUs, ${m.cpu}, Node ${m.node}${a.quick ? ' (quick)' : ''}`);
  let text = existsSync(BENCHMARKS_FILE) ? readFileSync(BENCHMARKS_FILE, 'utf8') : undefined;

  if (a.only.has('validation')) {
    console.log('\nvalidation: compiled rules vs baselines (one thread)');
    const r = runValidationBench(a.quick ? { iterations: 100_000, runs: 5, warmupIterations: 50_000 } : { iterations: 1_000_000, runs: 7, warmupIterations: 500_000 });
    console.log(validationTable(r));
    console.log(`target (8) ${TARGET_PER_SEC.toLocaleString('en-US')}/s: ${r.met ? 'met' : 'NOT met'}`);
    text = updateBenchmarks(text, 'validation', validationSection(r, m, a.quick));
  }

  const only = new Set([...a.only].filter((x): x is PipelineBench => (PIPELINE_BENCHES as readonly string[]).includes(x)));
  if (only.size > 0) {
    const r = await runPipelineBench({
      changes: a.changes, wideChanges: a.wideChanges, repeat: a.repeat, only, debezium: a.skipDebezium ? 'skip' : 'build',
      latencyRate: a.latencyRate, latencySeconds: a.latencySeconds, snapshotRows: a.snapshotRows, log: (s) => console.log(s),
    });
    console.log('\n' + throughputTable(r));
    const cpu = cpuTable(r, m.nproc);
    if (cpu) console.log('\n' + cpu);
    if (r.latency) console.log('\n' + latencyTable(r));
    console.log('\n' + memoryTable(r));
    console.log('\ntargets (printed, never a failure)\n' + targetsTable(targets(r)));
    const my = mariadbTable(r);
    if (my) {
      console.log('\nMariaDB next to PostgreSQL (same run)\n' + my);
      const myCpu = mariadbCpuTable(r);
      if (myCpu) console.log('\n' + myCpu);
      text = updateBenchmarks(text, 'mariadb', mariadbSection(r, m, a));
    }
    // Only the MariaDB parts (and the PostgreSQL baseline they ran themselves): the pipeline section stays.
    if ([...only].some((b) => !(MARIADB_BENCHES as readonly string[]).includes(b))) text = updateBenchmarks(text, 'pipeline', pipelineSection(r, m, a));
  }

  if (a.only.has('backfill')) {
    console.log(`\nbackfill next to the initial snapshot: ${fmt(a.backfillRows)} rows`);
    const r = await runBackfillBench({ rows: a.backfillRows, repeat: a.repeat, log: (s) => console.log(s) });
    console.log('\n' + backfillTable(r));
    const my = await runBackfillBench({ rows: a.backfillRows, repeat: a.repeat, source: 'mariadb', log: (s) => console.log(s) });
    console.log('\n' + backfillTable(my));
    text = updateBenchmarks(text, 'backfill', backfillSection(r, m, a.command, my));
  }

  if (a.only.has('targets')) {
    console.log(`\ntargets next to PostgreSQL: ${fmt(a.targetChanges)} inserts + ${fmt(a.targetChanges / 2)} updates each`);
    const r = await runTargetsBench({ changes: a.targetChanges, repeat: a.repeat, log: (s) => console.log(s) });
    console.log('\n' + targetRatesTable(r));
    text = updateBenchmarks(text, 'targets', targetsSection(r, m, a.command));
  }

  if (a.only.has('encryption')) {
    console.log(`\nfield encryption: ${fmt(a.encryptionChanges)} changes, plain and with 3 encrypted columns`);
    const r = await runEncryptionBench({ changes: a.encryptionChanges, repeat: a.repeat, log: (s) => console.log(s) });
    console.log('\n' + encryptionTable(r));
    text = updateBenchmarks(text, 'encryption', encryptionSection(r, m, a.command));
  }

  if (a.only.has('transforms')) {
    console.log(`\ntransform chain: ${fmt(a.transformChanges)} changes, plain and with a 5-step chain`);
    const r = await runTransformsBench({ changes: a.transformChanges, repeat: a.repeat, log: (s) => console.log(s) });
    console.log('\n' + transformsTable(r));
    text = updateBenchmarks(text, 'transforms', transformsSection(r, m, a.command));
  }
  if (a.only.has('history')) {
    console.log(`\nchange history: ${fmt(a.historyChanges)} changes, without history and with it in two stores`);
    const r = await runHistoryBench({ changes: a.historyChanges, repeat: a.repeat, log: (s) => console.log(s) });
    console.log('\n' + historyTable(r));
    text = updateBenchmarks(text, 'history', historySection(r, m, a.command));
  }
  if (a.only.has('instances')) {
    console.log(`\ninstances: ${fmt(a.instanceChanges)} changes applied by 1, 2 and 3 process+sink instances`);
    const r = await runInstancesBench({ changes: a.instanceChanges, repeat: a.repeat, log: (s) => console.log(s) });
    console.log('\n' + instancesTable(r));
    text = updateBenchmarks(text, 'instances', instancesSection(r, m, a.command));
  }
  if (a.only.has('initial-load')) {
    console.log(`\ninitial load: ${a.loadRows.map((n) => fmt(n)).join(' and ')} narrow rows, ${fmt(a.loadWideRows)} wide rows, by pg_dump | psql, COPY | COPY and syncline`);
    let debezium = !a.skipDebezium;
    if (debezium) {
      try {
        buildJdbcSink((s) => console.log(s));
      } catch (err) {
        debezium = false;
        console.log(`  Debezium skipped: its JDBC sink did not build (${(err as Error).message.split('\n')[0]})`);
      }
    }
    const r = await runInitialLoadBench({ cases: [...a.loadRows.map((rows) => ({ shape: 'narrow' as const, rows })), ...(a.loadWideRows > 0 ? [{ shape: 'wide' as const, rows: a.loadWideRows }] : [])], repeat: a.repeat, debezium, log: (s) => console.log(s) });
    console.log('\n' + initialLoadTable(r));
    text = updateBenchmarks(text, 'initial-load', initialLoadSection(r, m, a.command));
  }
  if (a.only.has('debezium-e2e') && !a.skipDebezium) {
    console.log(`\nend to end against Debezium → JDBC sink: ${fmt(a.peerChanges)} narrow and ${fmt(a.peerChanges / 2)} wide inserts (+ half as many updates)`);
    const r = await runDebeziumE2eBench({ changes: a.peerChanges, wideChanges: Math.round(a.peerChanges / 2), repeat: a.repeat, latencySeconds: Math.min(30, a.latencySeconds), log: (s) => console.log(s) });
    console.log('\n' + debeziumE2eTable(r));
    // Not measured (the JDBC sink did not build): the section keeps its last figures.
    if (!r.note) text = updateBenchmarks(text, 'debezium-e2e', debeziumE2eSection(r, m, a.command));
  }
  if (a.only.has('kafka-client')) {
    console.log(`\nKafka client: ${fmt(a.clientMessages)} messages produced and consumed by @platformatic/kafka and by kafkajs`);
    const r = await runKafkaClientBench({ messages: a.clientMessages, repeat: a.repeat, log: (s) => console.log(s) });
    console.log('\n' + kafkaClientTable(r));
    text = updateBenchmarks(text, 'kafka-client', kafkaClientSection(r, m, a.command));
  }
  if (a.only.has('verify')) {
    console.log(`\nverify next to md5(string_agg): two tables of ${fmt(a.verifyRows)} rows`);
    const r = await runVerifyBench({ rows: a.verifyRows, repeat: a.repeat, log: (s) => console.log(s) });
    console.log('\n' + verifyBenchTable(r));
    text = updateBenchmarks(text, 'verify', verifyBenchSection(r, m, a.command));
  }

  if (a.write && text !== undefined) {
    writeFileSync(BENCHMARKS_FILE, text);
    console.log(`\nwrote ${BENCHMARKS_FILE}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
