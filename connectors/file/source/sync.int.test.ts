/**
 * Manual sync runs over the file source (src/sync/, ADR 0016): a bounded run ends once a whole pass
 * over the files after its start is in Kafka and applied (Source.position()); a run carries inserts,
 * updates and deletes (a row removed, a file deleted); a run with nothing changed ends empty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../index.js';
import { parseConfig } from '../../../src/core/config/load.js';
import { Runtime } from '../../../src/runtime.js';
import type { SyncRun } from '../../../src/sync/runs.js';
import { createDb, deleteTopics, dropDb, PG, sleep, sql, uid, waitFor } from '../../../test/helpers.js';

test('manual runs of a file source: one bounded pass each, deletes included, an empty run when nothing changed', { timeout: 300_000 }, async (t) => {
  const id = uid();
  const prefix = `t${id}`;
  const targetDb = `syncline_t_${id}_fdst`;
  const dir = mkdtempSync(join(tmpdir(), 'syncline-sync-files-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'syncline-sync-file-state-'));
  let rt: Runtime | undefined;
  t.after(async () => {
    await rt?.stop().catch(() => undefined);
    await dropDb(targetDb);
    await deleteTopics(prefix).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });
  await createDb(targetDb);
  await sql(targetDb, `create table items (id bigint primary key, name text not null)`);
  mkdirSync(join(dir, 'in'));
  const files = new Map<string, Map<number, string>>();
  const write = (name: string, rows: [number, string][]) => {
    files.set(name, new Map(rows));
    writeFileSync(join(dir, 'in', name), 'id,name\n' + rows.map(([i, n]) => `${i},${n}\n`).join(''));
  };
  write('a.csv', Array.from({ length: 60 }, (_, i) => [i + 1, `item ${i + 1}`]));
  write('b.csv', Array.from({ length: 40 }, (_, i) => [i + 61, `item ${i + 61}`]));
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 1 },
    observability: { port: 0 },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 } },
    pipelines: {
      nightly: {
        mode: 'manual',
        source: { type: 'file', dir, stateDir, stableMs: 200, lingerMs: 5, tables: [{ table: 'files.items', glob: 'in/*.csv', format: 'csv', key: ['id'], columns: { id: 'int8', name: 'text' } }] },
        target: { type: 'postgres', connection: { ...PG, database: targetDb } },
        conflict: { strategy: 'source-wins' },
        tables: [{ source: 'files.items', target: 'public.items' }],
      },
    },
  };
  const file = join(stateDir, 'config.yaml');
  writeFileSync(file, JSON.stringify(doc));
  await sleep(300); // the files are stable
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
  const target = async () => (await sql(targetDb, `select id::int, name from items order by id`)).rows as { id: number; name: string }[];
  const expected = () => [...files.values()].flatMap((m) => [...m]).map(([id, name]) => ({ id, name })).sort((a, b) => a.id - b.id);

  await sleep(1500);
  assert.equal((await target()).length, 0, 'manual: nothing moves before a run');
  const first = await run();
  assert.equal(first.counts.applied, 100, JSON.stringify(first.counts));
  assert.deepEqual(await target(), expected());

  // 5 rows changed and 3 removed in a.csv, 2 added; b.csv deleted (40 rows).
  const a = [...files.get('a.csv')!].filter(([i]) => ![50, 51, 52].includes(i)).map(([i, n]): [number, string] => [i, i <= 5 ? `${n}!` : n]);
  write('a.csv', [...a, [101, 'new'], [102, 'new']]);
  unlinkSync(join(dir, 'in', 'b.csv'));
  files.delete('b.csv');
  await sleep(1000);
  assert.equal((await target()).length, 100, 'between runs the target is left as it is');
  const second = await run();
  assert.equal(second.counts.read, 50, JSON.stringify(second.counts));
  assert.deepEqual(await target(), expected());

  const third = await run();
  assert.equal(third.counts.read, 0, 'nothing changed: an empty pass');
  assert.deepEqual(await target(), expected());
});
