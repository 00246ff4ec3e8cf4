/**
 * Lag of a polling source (src/capture/poll/lag.ts): the registration's monitor reports seconds since
 * the start of the last acknowledged pass, exported as syncline_source_lag_seconds; unknown (no
 * series) before the first pass and after the source stopped; bounded by the interval plus a pass
 * while passes run, and growing while none is acknowledged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import '../../index.js';
import { createDb, dropDb, PG, sleep, sql, uid, waitFor } from '../../../test/helpers.js';
import { PollSource } from '../../../src/capture/poll/poll-source.js';
import { pollTableSpec } from '../../../src/capture/poll/spec.js';
import { MemoryHandler, MemoryOffsets } from '../../../src/capture/poll/harness.js';
import { sourceRegistration } from '../../../src/core/registry.js';
import { Metrics } from '../../../src/observe/metrics.js';
import { PgPollDialect } from './dialect.js';
import { pgPollStreamId } from './index.js';

const log = pino({ level: 'silent' });

test('poll source lag: seconds since the last acknowledged pass began, as syncline_source_lag_seconds', async (t) => {
  const db = `syncline_t_${uid()}_lag`;
  await createDb(db);
  const stateDir = mkdtempSync(join(tmpdir(), 'syncline-poll-lag-'));
  t.after(async () => {
    await dropDb(db);
    rmSync(stateDir, { recursive: true, force: true });
  });
  await sql(db, 'create table items (id int primary key, updated_at timestamptz not null default now())');
  await sql(db, 'insert into items select g from generate_series(1, 100) g');
  const pipeline = 'poll-lag';
  const connection = { ...PG, database: db, ssl: false, sslVerify: true };
  const monitor = sourceRegistration('postgres-poll').monitor({ type: 'postgres-poll', connection } as never, 2000, pipeline);
  t.after(() => monitor.close());
  const metrics = new Metrics({ pipelines: () => [], log, refreshMs: 0, processMetrics: false });
  metrics.watchSource({ pipeline, monitor });
  const scraped = async (): Promise<number | null> => {
    const m = /^syncline_source_lag_seconds\{pipeline="poll-lag"\} (\S+)$/m.exec(await metrics.registry.metrics());
    return m ? Number(m[1]) : null;
  };

  await monitor.ping();
  assert.equal(await monitor.lag(), null, 'no pass yet: unknown');
  assert.equal(await scraped(), null, 'no series before the first pass');

  const INTERVAL = 1500;
  const source = new PollSource(new PgPollDialect(connection, pipeline), {
    pipeline, log, streamId: pgPollStreamId(pipeline), intervalMs: INTERVAL, pageSize: 50, stateDir,
    tables: { 'public.items': pollTableSpec.parse({ mode: 'timestamp', column: 'updated_at' }) }, batchSize: 100, lingerMs: 0,
  });
  const handler = new MemoryHandler(new MemoryOffsets(), source);
  await source.connect();
  await source.describe([{ source: 'public.items' }]);
  const done = source.run(handler);
  done.catch(() => undefined);

  await waitFor('a pass acknowledged', async () => (await monitor.lag()) !== null, 30_000, 20);
  // While passes run, the lag stays below the interval plus a pass (and some scheduling slack).
  const seen: number[] = [];
  for (let i = 0; i < 12; i++) {
    const l = (await monitor.lag())!;
    assert.equal(l.active, true);
    assert.equal(l.lagBytes, null);
    seen.push(l.lagSeconds!);
    await sleep(250);
  }
  t.diagnostic(`lag samples (s): ${seen.map((x) => x.toFixed(2)).join(' ')}`);
  assert.ok(seen.every((x) => x >= 0 && x < INTERVAL / 1000 + 3), `lag within interval + pass: ${seen.join(', ')}`);
  assert.ok(Math.max(...seen) >= 0.5, 'the lag grows while the source waits for its next pass');
  assert.ok(seen.some((x, i) => i > 0 && x < seen[i - 1]!), 'and drops when a pass is acknowledged');
  const s = await scraped();
  assert.ok(s !== null && s >= 0 && s < INTERVAL / 1000 + 3, `scraped ${s}`);

  // Passes that are no longer acknowledged: the lag keeps growing (the handler stops acknowledging).
  const ack = source.acknowledge.bind(source);
  source.acknowledge = () => undefined;
  const before = (await monitor.lag())!.lagSeconds!;
  await sleep(INTERVAL * 2);
  const after = (await monitor.lag())!.lagSeconds!;
  assert.ok(after >= before + (INTERVAL * 2) / 1000 - 0.2, `lag grew from ${before} to ${after} without acknowledged passes`);
  source.acknowledge = ack;

  await source.quiesce();
  await source.stop();
  await done;
  assert.equal(await monitor.lag(), null, 'the source stopped: unknown again');
});
