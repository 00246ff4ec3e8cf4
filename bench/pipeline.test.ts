/**
 * Smoke test of the pipeline benchmark harness at tiny sizes on the real stack: every benchmark runs,
 * produces positive figures and the counts it checks equal what was written. Not a speed test
 * (`npm run bench` measures that). Debezium runs only if its harness is already built (the first
 * build downloads Debezium from Maven Central, which `npm run bench` does).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runPipelineBench, targets, throughputTable, memoryTable, latencyTable, cpuTable, mariadbTable, MARIADB_BENCHES, PIPELINE_BENCHES, type PipelineBench, type PipelineResult } from './pipeline.js';
import { clockTicks, cpuPerChange } from './cpu.js';
import { machine, mariadbSection, parseArgs, pipelineSection, updateBenchmarks } from './index.js';
import { my } from './mariadb.js';
import { figure, ratio, sql } from './common.js';
import { runTargetsBench, TARGETS, targetsSection, targetsTable } from './targets.js';
import { instancesSection, instancesTable, runInstancesBench } from './instances.js';
import { initialLoadSection, initialLoadTable, runInitialLoadBench } from './initial-load.js';
import { debeziumE2eSection, debeziumE2eTable, jdbcSinkBuilt, runDebeziumE2eBench } from './debezium-e2e.js';
import { debeziumBuilt } from './debezium.js';
import { kafkaClientSection, kafkaClientTable, runKafkaClientBench } from './kafka-client.js';

test('figures: median, min – max, spread; ratios of medians', () => {
  const f = figure([10, 30, 20]);
  assert.deepEqual([f.median, f.min, f.max], [20, 10, 30]);
  assert.equal(f.spreadPct, 50);
  assert.equal(figure([1, 2, 3, 4]).median, 2.5);
  const q = ratio(figure([10, 20, 30]), figure([5, 10, 10]));
  assert.equal(q.median, 2);
  assert.deepEqual([q.min, q.max], [2, 3]);
});

test('CPU per change: tick deltas by role, a process started meanwhile from zero; the table sums them', () => {
  const tick = 1e6 / clockTicks();
  const before = { byPid: new Map([[1, { ticks: 100, role: 'syncline capture' }], [2, { ticks: 50, role: 'Redis' }]]) };
  const after = { byPid: new Map([[1, { ticks: 300, role: 'syncline capture' }], [2, { ticks: 60, role: 'Redis' }], [3, { ticks: 40, role: 'PostgreSQL target connections' }], [4, { ticks: 60, role: 'PostgreSQL target connections' }]]) };
  const c = cpuPerChange(before, after, 1000);
  assert.deepEqual(c, { 'syncline capture': (200 * tick) / 1000, Redis: (10 * tick) / 1000, 'PostgreSQL target connections': (100 * tick) / 1000 });
  const r = { shapes: [{ shape: 'narrow', cpu: { e2e: [], e2eSplit: [{ 'syncline capture': 10, 'syncline process+sink': 30, Redis: 5 }, { 'syncline capture': 12, 'syncline process+sink': 40, Redis: 6 }, { 'syncline capture': 11, 'syncline process+sink': 35, Redis: 7 }] }, e2eSplit: figure([20_000]), limit: figure([100_000]) }] } as unknown as PipelineResult;
  const t = cpuTable(r, 2);
  assert.match(t, /\| syncline capture \| 11 \|/);
  assert.match(t, /\| syncline process\+sink \| 35 \|/);
  assert.match(t, /\| Redis \| 6\.0 \|/);
  assert.match(t, /\| \*\*all of them\*\* \| \*\*52\*\* \|/, t); // 11 + 35 + 6
  assert.match(t, /\| rate with 2 CPUs all busy \(2 × 10⁶ ÷ sum\) \| 38,462\/s \|/);
  assert.match(t, /\| sum that 0\.25 × the limit \(25,000\/s\) allows \| 80 \|/);
  assert.match(t, /\| the others \(all but syncline's processes\) \| 6\.0 \|/);
  assert.match(t, /\| ceiling with syncline's processes at 0 µs \(2 × 10⁶ ÷ the others\) \| 333,333\/s \(3\.33× the limit\) \|/);
  assert.ok(!t.includes('one process'), 'no column for a run that did not happen');
});

test('flags: --changes, --only, --repeat, --quick, --skip-debezium, --snapshot-rows', () => {
  const d = parseArgs([]);
  assert.equal(d.changes, 1_000_000);
  assert.equal(d.repeat, 3);
  assert.equal(d.snapshotRows, 10_000_000);
  assert.equal(d.write, true);
  const a = parseArgs(['--changes', '100000', '--only', 'limit,capture', '--repeat', '5', '--skip-debezium', '--snapshot-rows=2000000', '--no-write']);
  assert.equal(a.changes, 100_000);
  assert.equal(a.wideChanges, 25_000);
  assert.deepEqual([...a.only], ['limit', 'capture']);
  assert.equal(a.repeat, 5);
  assert.equal(a.skipDebezium, true);
  assert.equal(a.snapshotRows, 2_000_000);
  assert.equal(a.write, false);
  assert.equal(parseArgs(['--quick']).write, false);
  assert.throws(() => parseArgs(['--only', 'nope']), /unknown benchmark 'nope'/);
  assert.deepEqual([...parseArgs(['--only', 'mariadb-capture,mariadb-sink']).only], ['mariadb-capture', 'mariadb-sink']);
  for (const b of MARIADB_BENCHES) assert.ok(d.only.has(b), `${b} is in the default full run`);
});

test('the pipeline benchmarks run end to end at tiny sizes and count what was written', { timeout: 600_000 }, async () => {
  const before = await sql('postgres', `select count(*)::int as n from pg_replication_slots where slot_name like 'bench%'`);
  const r = await runPipelineBench({
    // The MariaDB parts have their own smoke below.
    changes: 2000, wideChanges: 500, repeat: 1, only: new Set(PIPELINE_BENCHES.filter((b) => !(MARIADB_BENCHES as readonly string[]).includes(b))), debezium: 'if-built',
    latencyRate: 1000, latencySeconds: 3, snapshotRows: 3000, log: () => undefined,
  });
  const n = r.shapes.find((s) => s.shape === 'narrow')!;
  assert.equal(n.workload.changes, 3000);
  for (const f of [n.limit, n.capture, n.e2e, n.e2eSplit, n.replay]) assert.ok(f && f.median > 0, 'a positive rate');
  if (r.debeziumNote) assert.match(r.debeziumNote, /skipped/);
  else assert.ok(n.debezium && n.debezium.median > 0);
  assert.ok(n.checks.some((c) => /end to end .*: target holds 2,000 rows, 1,000 updated/.test(c)), n.checks.join('\n'));
  assert.ok(n.checks.some((c) => /end to end, split .*: target holds 2,000 rows, 1,000 updated/.test(c)), n.checks.join('\n'));
  assert.ok(n.peakMb['syncline capture (split end to end)']! > 0 && n.peakMb['syncline process+sink (split end to end)']! > 0);
  assert.ok(n.checks.some((c) => /no-op replay .*: 3,000 of 3,000 skipped, 0 written/.test(c)), n.checks.join('\n'));
  const w = r.shapes.find((s) => s.shape === 'wide')!;
  assert.equal(w.workload.changes, 750);
  assert.ok(w.capture && w.capture.median > 0 && w.limit && w.limit.median > 0);
  assert.ok(r.latency && r.latency.runs[0]!.rows === 3000 && r.latency.p99.median > 0);
  assert.equal(r.snapshot?.length, 2);
  for (const s of r.snapshot!) assert.ok(s.peakMb > 0 && s.perSec > 0);
  assert.ok(n.peakMb['syncline start (all stages)']! > 0);

  const t = targets(r);
  assert.deepEqual(t.map((x) => x.name.slice(0, 3)).sort(), ['(2)', '(4)', '(4)', '(5)', '(6)', '(7)', ...(r.debeziumNote ? [] : ['(2)']), ...(r.rdkafkaNote ? [] : ['(2)'])].sort());
  if (!r.rdkafkaNote) assert.ok(n.captureRdkafka && n.captureRdkafka.median > 0, 'the librdkafka producer measured');
  for (const x of t) assert.equal(typeof x.met, 'boolean');
  assert.match(throughputTable(r), /\| narrow \| \(1\) capture limit/);
  assert.match(latencyTable(r), /p99/);
  assert.match(memoryTable(r), /snapshot of 3,000 rows/);
  // CPU per change of the processes (4) keeps busy, read from /proc: each syncline process did some
  // work (the others may take less than a clock tick at this size).
  for (const [c, own] of [[n.cpu.e2e[0]!, ['syncline (one process)']], [n.cpu.e2eSplit[0]!, ['syncline capture', 'syncline process+sink']]] as const) {
    for (const role of own) assert.ok((c[role] ?? 0) > 0, `CPU of ${role}: ${JSON.stringify(c)}`);
  }
  const cpu = cpuTable(r, 2);
  assert.match(cpu, /\| syncline process\+sink \| +\| \d/);
  assert.match(cpu, /\| \*\*all of them\*\* \| \*\*\d+\*\* \| \*\*\d+\*\* \|/);
  assert.match(cpu, /sum that 0\.25 × the limit/);
  const section = pipelineSection(r, machine(), parseArgs(['--quick']));
  assert.match(section, /^## Pipeline: throughput, latency, memory/);
  assert.match(section, /Reproduce: `npm run stack:up && npm run bench -- --quick`/);
  const doc = updateBenchmarks(updateBenchmarks(undefined, 'validation', '## Validation rules\nfigures'), 'pipeline', section);
  assert.ok(doc.includes('## Validation rules') && doc.includes('## Pipeline'));

  // Every slot the harness made is gone (an inactive slot retains WAL).
  const after = await sql('postgres', `select count(*)::int as n from pg_replication_slots where slot_name like 'bench%'`);
  assert.ok(after.rows[0].n <= before.rows[0].n, 'the benchmark dropped its slots');
});

test('the MariaDB parts run at tiny sizes next to their PostgreSQL baselines and clean up', { timeout: 120_000 }, async () => {
  const myDbs = async () => (await my(undefined, `SHOW DATABASES LIKE 'syncline\\_bench\\_%'`)).length;
  const before = await myDbs();
  const r = await runPipelineBench({
    changes: 1000, wideChanges: 0, repeat: 1, only: new Set<PipelineBench>(MARIADB_BENCHES), debezium: 'skip',
    latencyRate: 1000, latencySeconds: 1, snapshotRows: 0, log: () => undefined,
  });
  assert.equal(r.shapes.length, 1, 'the narrow workload only');
  const n = r.shapes[0]!;
  assert.equal(n.mariadb?.workload.changes, 1500);
  for (const f of [n.capture, n.mariadb?.capture, n.sink?.postgres, n.sink?.mariadb]) assert.ok(f && f.median > 0, 'a positive rate');
  assert.ok(n.checks.some((c) => /MariaDB capture .*: 1,500 messages in the topic = 1,500 changes written/.test(c)), n.checks.join('\n'));
  for (const t of ['PostgreSQL', 'MariaDB']) assert.ok(n.checks.some((c) => new RegExp(`sink → ${t} .*: target holds 1,000 rows, 500 updated`).test(c)), n.checks.join('\n'));
  assert.ok(n.peakMb['syncline capture, MariaDB source']! > 0 && n.peakMb['syncline process+sink → MariaDB (from a filled topic)']! > 0);
  const t = mariadbTable(r);
  assert.match(t, /\| capture → Kafka .* \| \*\*\d+\.\d\d×\*\* \(/);
  assert.match(t, /\| process \+ sink from a filled change topic → target .* MB \/ \d+ MB \|/);
  const section = mariadbSection(r, machine(), parseArgs(['--quick', '--only', 'mariadb-capture,mariadb-sink']));
  assert.match(section, /^## MariaDB next to PostgreSQL/);
  assert.match(section, /Reproduce: `npm run stack:up && npm run bench -- --quick --only mariadb-capture,mariadb-sink`/);
  assert.equal(await myDbs(), before, 'the MariaDB databases were dropped');
});

test('the targets bench writes to PostgreSQL, RabbitMQ, HTTP and files at tiny sizes, checks their counts and reports ratios', { timeout: 120_000 }, async () => {
  const r = await runTargetsBench({ changes: 1000, repeat: 1, log: () => undefined });
  for (const t of TARGETS) assert.ok(r.rates[t].median > 0, `${t}: a positive rate`);
  const table = targetsTable(r);
  assert.match(table, /\| RabbitMQ .* \| \d+\.\d\d \(/);
  assert.match(table, /\| HTTP, batched .* \| \d+\.\d\d \(/);
  assert.match(table, /\| Files, Parquet .* \| \d+\.\d\d \(/);
  assert.match(targetsSection(r, machine(), 'npm run bench -- --only targets'), /^## Targets next to PostgreSQL/);
});

test('the instances bench applies one captured workload with 1 and 2 process+sink instances at a tiny size and reports each rate and its CPU', { timeout: 180_000 }, async () => {
  const r = await runInstancesBench({ changes: 1000, repeat: 1, counts: [1, 2], log: () => undefined });
  assert.deepEqual(r.runs.map((x) => x.n), [1, 2]);
  for (const x of r.runs) assert.ok(x.perSec.median > 0, `${x.n} instances: a positive rate`);
  const table = instancesTable(r);
  assert.match(table, /^\| 2 \| [\d,]+ \(.*\) \| \d+\.\d\d \| \d/m);
  assert.match(instancesSection(r, machine(), 'npm run bench -- --only instances'), /^## Instances of one pipeline/);
});

test('the initial-load bench copies a tiny table by pg_dump | psql, COPY | COPY and syncline, checks each target count and reports the ratios', { timeout: 180_000 }, async () => {
  const r = await runInitialLoadBench({ cases: [{ shape: 'narrow', rows: 2000 }], repeat: 1, log: () => undefined });
  const c = r.cases[0]!;
  for (const f of [c.pgDump, c.copy, c.syncline]) assert.ok(f.median > 0, 'a positive rate');
  assert.ok(Math.abs(c.vsDump.median - c.syncline.median / c.pgDump.median) < 1e-9);
  assert.ok((c.cpu['syncline (one process)'] ?? 0) > 0, "syncline's CPU per row is measured");
  assert.match(initialLoadTable(r), /^\| 2,000 narrow \| [\d,]+ \(.*\) \| [\d,]+ \(.*\) \| [\d,]+ \(.*\) \| \d+\.\d\d .*\| (met|not met) \|$/m);
  assert.match(initialLoadSection(r, machine(), 'npm run bench -- --only initial-load'), /^## Initial load/);
  const a = parseArgs(['--only', 'initial-load', '--load-rows', '300000', '--load-wide-rows', '0']);
  assert.deepEqual([a.loadRows, a.loadWideRows], [[300_000], 0]);
  assert.deepEqual(parseArgs([]).loadRows, [1_000_000, 10_000_000]);
});

test('the Debezium end-to-end bench carries one tiny workload by syncline and by Debezium → JDBC sink into fresh targets and reports the ratio and both CPU tables (when the Debezium harness is built)', { timeout: 300_000 }, async (t) => {
  if (!debeziumBuilt() || !jdbcSinkBuilt()) {
    t.skip('Debezium and its JDBC sink are not built here (`npm run bench -- --only debezium-e2e` builds them from Maven Central)');
    return;
  }
  const r = await runDebeziumE2eBench({ changes: 1000, wideChanges: 0, repeat: 1, log: () => undefined });
  const c = r.cases[0]!;
  assert.equal(c.workload.changes, 1500);
  for (const f of [c.syncline, c.debezium]) assert.ok(f.median > 0, 'a positive rate');
  assert.ok(Math.abs(c.ratio.median - c.syncline.median / c.debezium.median) < 1e-9);
  assert.ok((c.cpu.syncline['syncline (one process)'] ?? 0) > 0, "syncline's CPU per change is measured");
  assert.ok((c.cpu.debezium['Debezium JDBC sink, Kafka Connect (JVM)'] ?? 0) > 0, "the JDBC sink's CPU per change is measured");
  assert.match(debeziumE2eTable(r), /^\| narrow \| 1,500 \| [\d,]+ \(.*\) \| [\d,]+ \(.*\) \| \d+\.\d\d .*\| ≥ 3× \| (met|not met) \|$/m);
  assert.match(debeziumE2eSection(r, machine(), 'npm run bench -- --only debezium-e2e'), /^## End to end against Debezium/);
  assert.equal(parseArgs(['--changes', '500000']).peerChanges, 50_000);
});

test('the Kafka client bench produces and consumes the same messages with @platformatic/kafka and with kafkajs as syncline runs it, and reports the ratios', { timeout: 120_000 }, async () => {
  const r = await runKafkaClientBench({ messages: 2000, repeat: 1, log: () => undefined });
  assert.equal(r.patched, true, "kafkajs is measured with syncline's produce patches");
  for (const f of [r.kafkajs.produce, r.kafkajs.consume, r.platformatic.produce, r.platformatic.consume]) assert.ok(f.median > 0, 'a positive rate');
  assert.ok(Math.abs(r.produceRatio.median - r.platformatic.produce.median / r.kafkajs.produce.median) < 1e-9);
  assert.match(kafkaClientTable(r), /^\| produce \| [\d,]+ \(.*\) \| \d[\d.,]* \| [\d,]+ \(.*\) \| \d[\d.,]* \| \d+\.\d\d .*\| (≥|<) 1\.3×/m);
  assert.match(kafkaClientSection(r, machine(), 'npm run bench -- --only kafka-client'), /^## Kafka client: @platformatic\/kafka against kafkajs/);
  assert.equal(parseArgs(['--only', 'kafka-client', '--client-messages', '5000']).clientMessages, 5000);
});
