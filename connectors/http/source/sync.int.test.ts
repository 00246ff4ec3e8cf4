/**
 * Manual sync runs over the HTTP source (src/sync/, ADR 0016): a bounded run ends once a whole
 * listing after its start is in Kafka and applied (Source.position()); hash tracking, so a run carries
 * inserts, updates and deletes; a run with nothing changed at the API ends empty. Link pagination.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../index.js';
import { parseConfig } from '../../../src/core/config/load.js';
import { Runtime } from '../../../src/runtime.js';
import type { SyncRun } from '../../../src/sync/runs.js';
import { createDb, deleteTopics, dropDb, PG, sleep, sql, uid, waitFor } from '../../../test/helpers.js';
import { TestApi } from './test-api.js';

test('manual runs of an HTTP source: one bounded listing each, deletes included, an empty run when nothing changed', { timeout: 300_000 }, async (t) => {
  const id = uid();
  const prefix = `t${id}`;
  const targetDb = `syncline_t_${id}_hdst`;
  const stateDir = mkdtempSync(join(tmpdir(), 'syncline-sync-http-'));
  const api = await new TestApi().start();
  let rt: Runtime | undefined;
  t.after(async () => {
    await rt?.stop().catch(() => undefined);
    await api.stop();
    await dropDb(targetDb);
    await deleteTopics(prefix).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  });
  await createDb(targetDb);
  await sql(targetDb, `create table items (id bigint primary key, name text not null, price numeric, updated_at timestamptz)`);
  for (let i = 1; i <= 100; i++) api.items.set(i, { id: i, name: `item ${i}`, price: i / 4, updated_at: '2026-12-05T10:00:00Z' });
  process.env.SYNCLINE_TEST_HTTP_KEY = 'key-' + id;
  api.auth = null;
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 1 },
    observability: { port: 0 },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 } },
    pipelines: {
      nightly: {
        mode: 'manual',
        source: {
          type: 'http', stateDir, lingerMs: 5, auth: { header: { name: 'X-Api-Key', env: 'SYNCLINE_TEST_HTTP_KEY' } },
          endpoints: {
            'api.items': {
              url: `${api.url}/link`, pagination: { type: 'link' },
              columns: { id: { type: 'long' }, name: { type: 'string' }, price: { type: 'decimal' }, updated_at: { type: 'timestamptz' } }, key: ['id'],
            },
          },
        },
        target: { type: 'postgres', connection: { ...PG, database: targetDb } },
        conflict: { strategy: 'source-wins' },
        tables: [{ source: 'api.items', target: 'public.items' }],
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
  const target = async () => (await sql(targetDb, `select id::int, name, price::text, to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as at from items order by id`)).rows as { id: number; name: string; price: string; at: string }[];
  const expected = () => [...api.items.values()].sort((a, b) => (a.id as number) - (b.id as number)).map((r) => ({ id: r.id, name: r.name, price: String(r.price), at: r.updated_at }));

  await sleep(1500);
  assert.equal((await target()).length, 0, 'manual: nothing moves before a run');
  const first = await run();
  assert.equal(first.counts.applied, 100, JSON.stringify(first.counts));
  assert.deepEqual(await target(), expected());

  for (let i = 1; i <= 5; i++) api.items.set(i, { ...api.items.get(i)!, name: `item ${i}!` });
  for (const i of [50, 51, 52]) api.items.delete(i);
  for (const i of [101, 102]) api.items.set(i, { id: i, name: 'new', price: 1, updated_at: '2026-12-05T11:00:00Z' });
  await sleep(1000);
  assert.equal((await target()).length, 100, 'between runs the target is left as it is');
  const second = await run();
  assert.equal(second.counts.read, 10, JSON.stringify(second.counts));
  assert.equal(second.counts.applied, 10, JSON.stringify(second.counts));
  assert.deepEqual(await target(), expected());

  const third = await run();
  assert.equal(third.counts.read, 0, 'nothing changed: an empty pass');
  assert.deepEqual(await target(), expected());
  assert.ok(api.requests.length > 0 && api.requests.every((r) => r.headers['x-api-key'] === 'key-' + id), 'every request carried the header from the environment');
});
