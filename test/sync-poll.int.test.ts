/**
 * A manual sync run over a polling source (the batch sync of a system without a replication log):
 * nothing moves until a run is asked for; each run is one bounded pass (hash tracking, so deletes
 * too) that ends once the target holds it, with its counts recorded; a run with nothing changed
 * ends empty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../connectors/index.js';
import { parseConfig } from '../src/core/config/load.js';
import { Runtime } from '../src/runtime.js';
import type { SyncRun } from '../src/sync/runs.js';
import { checksum, createDb, deleteTopics, dropDb, PG, sleep, sql, uid, waitFor } from './helpers.js';

test('manual runs of a polling source: one bounded pass each, deletes included, counts recorded', { timeout: 300_000 }, async (t) => {
  const id = uid();
  const prefix = `t${id}`;
  const sourceDb = `syncline_t_${id}_psrc`;
  const targetDb = `syncline_t_${id}_pdst`;
  const stateDir = mkdtempSync(join(tmpdir(), 'syncline-sync-poll-'));
  let rt: Runtime | undefined;
  t.after(async () => {
    await rt?.stop().catch(() => undefined);
    await dropDb(sourceDb);
    await dropDb(targetDb);
    await deleteTopics(prefix).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  });
  await createDb(sourceDb);
  await createDb(targetDb);
  await sql(sourceDb, `create table items (id int primary key, name text not null); insert into items select g, 'item ' || g from generate_series(1, 100) g`);
  await sql(targetDb, `create table items (id int primary key, name text not null)`);
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 1 },
    observability: { port: 0 },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 } },
    pipelines: {
      nightly: {
        mode: 'manual',
        source: { type: 'postgres-poll', connection: { ...PG, database: sourceDb }, stateDir, lingerMs: 5, tables: { 'public.items': { mode: 'hash', chunkSize: 40 } } },
        target: { type: 'postgres', connection: { ...PG, database: targetDb } },
        conflict: { strategy: 'source-wins' },
        tables: [{ source: 'public.items' }],
      },
    },
  };
  const file = join(stateDir, 'config.yaml');
  writeFileSync(file, JSON.stringify(doc));
  rt = new Runtime(parseConfig(JSON.stringify(doc), file, {}), new Set(['capture', 'process', 'sink'] as const));
  const { done } = await rt.start();
  done.catch(() => undefined);
  const base = `http://127.0.0.1:${rt.httpPort}`;
  const run = async (): Promise<SyncRun> => {
    const res = await fetch(`${base}/api/pipelines/nightly/runs`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 202, await res.clone().text());
    const { id: runId } = (await res.json()) as SyncRun;
    const ended = await waitFor('the run to end', async () => {
      const r = (await (await fetch(`${base}/api/runs/${runId}`)).json()) as SyncRun;
      return r.outcome !== 'running' ? r : undefined;
    }, 120_000, 200);
    assert.equal(ended.outcome, 'succeeded', ended.error);
    return ended;
  };

  await sleep(1500);
  assert.equal((await checksum(targetDb, 'items', 'id')).count, 0, 'manual: nothing moves before a run');
  const first = await run();
  assert.equal(first.counts.applied, 100);
  assert.deepEqual(await checksum(targetDb, 'items', 'id'), await checksum(sourceDb, 'items', 'id'));

  await sql(sourceDb, `update items set name = name || '!' where id <= 5; delete from items where id between 50 and 52; insert into items values (101, 'new'), (102, 'new')`);
  await sleep(1000);
  assert.equal((await checksum(targetDb, 'items', 'id')).count, 100, 'between runs the target is left as it is');
  const second = await run();
  assert.equal(second.counts.read, 10, JSON.stringify(second.counts));
  assert.equal(second.counts.applied, 10, JSON.stringify(second.counts));
  assert.deepEqual(await checksum(targetDb, 'items', 'id'), await checksum(sourceDb, 'items', 'id'));

  const third = await run();
  assert.equal(third.counts.read, 0, 'nothing changed: an empty pass');
  assert.deepEqual(await checksum(targetDb, 'items', 'id'), await checksum(sourceDb, 'items', 'id'));
});
