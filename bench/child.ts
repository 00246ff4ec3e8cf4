/**
 * syncline as the benchmarks run it: `node --import tsx bench/child.ts CONFIG capture,process,sink`
 * runs those stages of every pipeline of CONFIG (src/runtime.ts, as `syncline start|capture` do) and
 * prints `{"stats":{…}}` on stdout every 100 ms (capture and apply counters), so the benchmark reads
 * progress without polling the target. SIGTERM drains and exits 0; a fatal error exits 1.
 */
import '../src/core/kafkajs-patch.js'; // first: before anything loads kafkajs
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { loadConfig } from '../src/core/config/load.js';
import { Runtime, type Stage } from '../src/runtime.js';

/**
 * SYNCLINE_BENCH_ALLOC_PROF=DIR: V8's sampling heap profiler over the whole run, collected objects
 * included (where the garbage comes from, not only what stays), written to DIR/alloc-PID.heapprofile
 * on SIGTERM; `node --import tsx bench/profile.ts FILE` summarises it by function.
 */
const allocDir = process.env.SYNCLINE_BENCH_ALLOC_PROF;
const allocSession = allocDir ? new Session() : undefined;
if (allocSession) {
  allocSession.connect();
  await allocSession.post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
}
async function writeAllocProfile(): Promise<void> {
  if (!allocSession) return;
  const { profile } = await allocSession.post('HeapProfiler.stopSampling');
  writeFileSync(join(allocDir!, `alloc-${process.pid}.heapprofile`), JSON.stringify(profile));
}

/**
 * SYNCLINE_BENCH_MEM_TRACE=FILE: every 250 ms one line of process.memoryUsage() and V8's heap spaces (MB)
 * appended to FILE, to see what a peak RSS is made of (heap, new space, buffers outside the heap, the rest).
 */
const memTrace = process.env.SYNCLINE_BENCH_MEM_TRACE;
if (memTrace) {
  const { appendFileSync } = await import('node:fs');
  const { getHeapSpaceStatistics } = await import('node:v8');
  const mb = (n: number) => Math.round(n / 104857.6) / 10;
  setInterval(() => {
    const m = process.memoryUsage();
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name.replace(/_space$/, ''), mb(s.space_size)]));
    appendFileSync(memTrace, `${JSON.stringify({ t: Date.now(), rss: mb(m.rss), heapTotal: mb(m.heapTotal), heapUsed: mb(m.heapUsed), external: mb(m.external), arrayBuffers: mb(m.arrayBuffers), spaces })}\n`);
  }, 250).unref();
}

const [configFile, stageList] = process.argv.slice(2);
if (!configFile || !stageList) {
  console.error('usage: child.ts CONFIG capture,process,sink');
  process.exit(2);
}
const runtime = new Runtime(loadConfig(configFile), new Set(stageList.split(',') as Stage[]));

function stats() {
  const s = { produced: 0, snapshotRows: 0, received: 0, applied: 0, skippedUnchanged: 0, skippedStale: 0, conflicts: 0, deadLettered: 0 };
  for (const h of runtime.pipelines) {
    if (h.capture) {
      s.produced += h.capture.stats.produced;
      s.snapshotRows += h.capture.stats.snapshotRows;
    }
    const a = h.applier?.stats;
    if (a) {
      s.received += a.received;
      s.applied += a.applied;
      s.skippedUnchanged += a.skippedUnchanged;
      s.skippedStale += a.skippedStale;
      s.conflicts += a.conflicts;
      s.deadLettered += a.deadLettered;
    }
  }
  return s;
}

const print = () => process.stdout.write(`${JSON.stringify({ stats: stats() })}\n`);
const timer = setInterval(print, 100);
let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void runtime.stop().finally(async () => {
    await writeAllocProfile().catch((err: unknown) => console.error(`allocation profile not written: ${(err as Error).message}`));
    clearInterval(timer);
    print();
    setTimeout(() => process.exit(0), 50);
  });
});

try {
  const { done } = await runtime.start();
  done.catch((err: unknown) => {
    console.error(`syncline failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  });
} catch (err) {
  console.error(`syncline failed to start: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
}
