/**
 * Scale-out of the consuming side (issue 25; `--only instances`, or on its own:
 * `npx tsx bench/instances.ts [--changes N] [--repeat K]`, defaults 100,000 and 1). The workload
 * (N/1.5 inserts then N/3 updates of the 5-column bench row) is first captured into a change topic of
 * 6 partitions (`syncline capture` until the topic holds every change); then 1, 2 and 3 processes of
 * `syncline process,sink` in one consumer group (a pipeline of its own per count, so a fresh group
 * reading from the start, and a fresh target) apply it. Rate = changes / time from the first change
 * at a sink to the target holding the final state (SQL). CPU per change of the syncline processes
 * and of the services they drive (bench/cpu.ts), so the scaling can be read on a machine whose
 * cores the services share: on 2 cores the gain is bounded by the target PostgreSQL, Kafka and Redis.
 */
import { cpuPerChange, CPU_ROLES, sampleCpu } from './cpu.js';
import { createTarget, targetDone } from './end-to-end.js';
import { createSource, rateOf, deleteRedisKeys, deleteTopics, dropDb, figure, fmt, fmtFigure, kafka, runBenchCli, sleep, spawnSyncline, timeProgress, topicCounter, writeConfig, writeWorkload, e2eSectionFooter, type Child, type Figure } from './common.js';

export const DEFAULT_COUNTS = [1, 2, 3] as const;
const PARTITIONS = 6;

export interface InstancesResult {
  changes: number;
  repeat: number;
  /** By instance count: changes/s, and µs of CPU per change by role. */
  runs: { n: number; perSec: Figure; cpu: Record<string, number> }[];
}

export async function runInstancesBench(o: { changes: number; repeat: number; log: (s: string) => void; /** Instance counts (default 1, 2, 3). */ counts?: readonly number[] }): Promise<InstancesResult> {
  const counts = o.counts ?? DEFAULT_COUNTS;
  const rates = new Map<number, number[]>(counts.map((n) => [n, []]));
  const cpus = new Map<number, Record<string, number>[]>(counts.map((n) => [n, []]));
  const inserts = Math.round((o.changes * 2) / 3);
  const updates = o.changes - inserts;
  for (let i = 0; i < o.repeat; i++) {
    const src = await createSource('narrow', `in${i}`);
    const prefix = `${src.prefix}in`;
    try {
      const slot = await src.slot('inst');
      const w = await writeWorkload(src.db, src.table, 'narrow', inserts, updates);
      // 1. Captured once into the change topic.
      const spec = { prefix, sourceDb: src.db, slot, publication: src.publication, table: src.table, snapshot: 'never' as const, partitions: PARTITIONS };
      const capture = spawnSyncline(writeConfig({ ...spec, pipeline: 'capture' }), ['capture']);
      const admin = kafka().admin();
      await admin.connect();
      try {
        const count = topicCounter(admin, `${prefix}.cdc.public.${src.table}`);
        await timeProgress('capture into the change topic', count, w.changes, { alive: () => capture.exited() });
      } finally {
        await capture.stop();
        await admin.disconnect();
      }
      // 2. N consumers, in alternating order of N between repeats.
      const order = i % 2 === 0 ? [...counts] : [...counts].reverse();
      for (const n of order) {
        const targetDb = await createTarget(src, `n${n}`);
        const children: Child[] = [];
        try {
          const file = writeConfig({ ...spec, pipeline: `inst${n}`, targetDb });
          for (let k = 0; k < n; k++) children.push(spawnSyncline(file, ['process', 'sink']));
          const roles = new Map(children.map((c) => [c.pid, 'syncline process+sink'] as [number, string]));
          const before = sampleCpu(roles, targetDb);
          const dead = () => children.map((c) => c.exited()).find((x) => x !== undefined);
          const t = await timeProgress(`${n} instance${n > 1 ? 's' : ''}`, async () => children.reduce((s, c) => s + c.stats.received, 0), w.changes, { alive: dead });
          for (;;) {
            if (await targetDone(targetDb, src.table, w)) break;
            const d = dead();
            if (d) throw new Error(`${n} instances: ${d}`);
            if (Date.now() - t.doneAt > 120_000) throw new Error(`${n} instances: the target did not reach the final state within 120 s of the last record`);
            await sleep(100);
          }
          const doneAt = Date.now();
          cpus.get(n)!.push(cpuPerChange(before, sampleCpu(roles, targetDb), w.changes));
          const perSec = rateOf({ ...t, doneAt }, w.changes);
          rates.get(n)!.push(perSec);
          o.log(`  repeat ${i + 1}: ${n} instance${n > 1 ? 's' : ''} ${fmt(perSec)} changes/s`);
        } finally {
          await Promise.all(children.map((c) => c.stop()));
          await deleteRedisKeys(prefix);
          await dropDb(targetDb);
        }
      }
    } finally {
      await deleteTopics(prefix);
      await src.cleanup();
    }
  }
  const med = (list: Record<string, number>[]) => Object.fromEntries(CPU_ROLES.map((r) => [r, figure(list.map((c) => c[r] ?? 0)).median]).filter(([, v]) => (v as number) > 0));
  return { changes: o.changes, repeat: o.repeat, runs: counts.map((n) => ({ n, perSec: figure(rates.get(n)!), cpu: med(cpus.get(n)!) })) };
}

export function instancesTable(r: InstancesResult): string {
  const one = r.runs[0]!.perSec.median;
  const us = (x: number | undefined) => (x === undefined ? '' : x >= 10 ? x.toFixed(0) : x.toFixed(1));
  const services = (c: Record<string, number>) => Object.entries(c).filter(([k]) => !k.startsWith('syncline')).reduce((s, [, v]) => s + v, 0);
  return [
    '| `syncline process,sink` instances | changes/s | × one instance | CPU µs per change: syncline (all instances) | the services (PostgreSQL, Redis, Kafka, registry) |',
    '| ---: | ---: | ---: | ---: | ---: |',
    ...r.runs.map((x) => `| ${x.n} | ${fmtFigure(x.perSec)} | ${(x.perSec.median / one).toFixed(2)} | ${us(x.cpu['syncline process+sink'])} | ${us(services(x.cpu))} |`),
  ].join('\n');
}

/** What the table says about the machine: how many of its CPUs one instance and the services it drives keep busy. */
function reading(r: InstancesResult, nproc: number): string[] {
  const one = r.runs[0]!;
  const last = r.runs.at(-1)!;
  const all = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
  if (all(one.cpu) === 0) return [];
  const busy = (all(one.cpu) * one.perSec.median) / 1e6;
  return [
    `Reading: one instance and the services it drives use ${busy.toFixed(2)} of the ${nproc} CPUs (${all(one.cpu).toFixed(0)} µs per change × ${fmt(one.perSec.median)}/s);`,
    `${last.n} instances change the rate ×${(last.perSec.median / one.perSec.median).toFixed(2)} and syncline's CPU per change from ${(one.cpu['syncline process+sink'] ?? 0).toFixed(0)} to ${(last.cpu['syncline process+sink'] ?? 0).toFixed(0)} µs`,
    '(each member fetches, commits and applies smaller batches of its own). Where a core is idle per instance, the rate grows with the',
    'instances up to the partitions, the target or Redis; where the CPUs are already busy, as here, more instances only cost.',
    '',
  ];
}

export function instancesSection(r: InstancesResult, m: { nproc: number; cpu: string; node: string; date: string }, command: string): string {
  return [
    '## Instances of one pipeline (scale-out)',
    '',
    `bench/instances.ts: ${fmt(r.changes)} changes (inserts, then updates of a third of the rows) of a 5-column row, captured`,
    `first into a change topic of ${PARTITIONS} partitions, then applied by 1, 2 and 3 \`syncline process,sink\` processes in one`,
    'consumer group (a fresh group and target for each count, the counts in alternating order between repeats). Rate = changes',
    '/ time from the first change at a sink to the target holding the final state. CPU per change from /proc over the run:',
    'the syncline column is the sum over its instances, the services column what they caused in PostgreSQL, Redis, Kafka and the',
    `registry. With ${m.nproc} CPUs shared by all of them, more instances add parallel work only while a core is idle: read the`,
    'gain next to the CPU columns (a constant sum per change means the work spread, not grew).',
    `Median of ${r.repeat} repeat${r.repeat === 1 ? '' : 's'}${r.repeat > 1 ? ' (min – max)' : ''}.`,
    '',
    instancesTable(r),
    '',
    ...reading(r, m.nproc),
    ...e2eSectionFooter(m, command, 'the three rows'),
  ].join('\n');
}

runBenchCli(import.meta.url, (arg) => runInstancesBench({ changes: Number(arg('changes', '100000')), repeat: Number(arg('repeat', '1')), log: (s) => console.log(s) }), instancesTable);
