/**
 * Fan-out (ADR 0039): one capture, three targets. Pipeline `orders-pg` captures public.orders into
 * PostgreSQL; `orders-api` (HTTP API, column `note` excluded, source-wins, a long retry policy) and
 * `orders-files` (JSON Lines, rows with status 'draft' filtered out) follow it: no capture of their
 * own, their own consumer groups, transforms, retries, dead letters and lag metric.
 *
 * The API server is down for a minute while writers insert, update (in and out of the filter),
 * delete and re-insert rows: PostgreSQL and the files keep up meanwhile (their lag returns to 0 while
 * the API's grows), the API catches up when it is back, and at the end every target holds exactly its
 * view of the source: nothing lost, nothing dead-lettered, no key's seq going backwards, one slot.
 * A fourth follower (PostgreSQL) is verified and repaired through the capture it follows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { TestApi } from '../connectors/http/test-server.js';
import { topics } from '../src/core/kafka.js';
import { checksum, createDb, dropDb, PG, readTopic, sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { openClients } from '../src/cli/clients.js';
import { verifyPipeline } from '../src/verify/run.js';

const DDL = `create table orders (id int primary key, region text not null, status text not null, total numeric(12,2) not null,
  note text, seq int not null default 0, updated_at timestamptz not null default clock_timestamp())`;
const DOWN_MS = 60_000;

interface Row { id: number; region: string; status: string; total: string; note: string | null; seq: number }

test('fan-out: one capture writes PostgreSQL, an HTTP API and files; the API down for a minute holds back neither of the others, catches up, nothing lost', async (t) => {
  const api = await new TestApi().start();
  const dir = mkdtempSync(join(tmpdir(), 'syncline-fanout-'));
  const env = await testEnv([{ name: 'orders-pg', tables: [{ source: 'public.orders' }], conflict: { strategy: 'source-wins' } }]);
  // The followers: written into the env's config document and parsed again (what a user writes).
  const { parseConfig } = await import('../src/core/config/load.js');
  const doc = JSON.parse(readFileSync(env.configFile, 'utf8')) as { pipelines: Record<string, unknown> };
  doc.pipelines['orders-api'] = {
    follows: 'orders-pg',
    target: { type: 'http', url: `${api.url}/{table}/{key.id}`, concurrency: 4, timeoutMs: 2000 },
    conflict: { strategy: 'source-wins' },
    // Its own retry policy: long enough to outlast the outage (the others keep the env's short one).
    retry: { retries: 100, initialDelayMs: 200, maxDelayMs: 1500 },
    tables: [{ source: 'public.orders', transform: [{ exclude: ['note'] }] }],
  };
  // A second PostgreSQL target following too: `verify --repair` of a follower goes through the capture it follows.
  const target2 = `${env.targetDb}2`;
  await createDb(target2);
  doc.pipelines['orders-pg2'] = {
    follows: 'orders-pg',
    target: { type: 'postgres', connection: { ...PG, database: target2 } },
    conflict: { strategy: 'source-wins' },
    tables: [{ source: 'public.orders' }],
  };
  doc.pipelines['orders-files'] = {
    follows: 'orders-pg',
    target: { type: 'file', dir, format: 'jsonl', partitionBy: 'none', lingerMs: 20 },
    conflict: { strategy: 'source-wins' },
    tables: [{ source: 'public.orders', transform: [{ where: "status != 'draft'" }] }],
  };
  env.config = parseConfig(JSON.stringify(doc), env.configFile, {});
  const src = new pg.Pool({ ...PG, database: env.sourceDb, max: 4 });
  src.on('error', () => undefined); // idle clients ended by the database drop at cleanup
  t.after(async () => {
    await src.end().catch(() => undefined);
    await env.cleanup();
    await dropDb(target2);
    await api.stop().catch(() => undefined);
  });
  await src.query(DDL);
  await src.query(`alter table orders replica identity full`); // the filter sees the old row of an update (rows leaving it)
  await src.query(`insert into orders (id, region, status, total, note) select g, case when g % 2 = 0 then 'eu' else 'us' end,
    case when g % 5 = 0 then 'draft' else 'open' end, g * 1.25, 'note ' || g from generate_series(1, 300) g`);

  const { rt } = await startRuntime(env);

  const rows = async () => (await src.query(`select id, region, status, total::text, note, seq from orders order by id`)).rows as Row[];
  const pgSame = async () => {
    const [a, b, c] = await Promise.all([checksum(env.sourceDb, 'orders', 'id'), checksum(env.targetDb, 'orders', 'id'), checksum(target2, 'orders', 'id')]);
    return a.count > 0 && a.md5 === b.md5 && a.md5 === c.md5;
  };
  const apiSame = async () => {
    const want = await rows();
    if (api.objects.size !== want.length) return false;
    return want.every((r) => {
      const o = api.objects.get(`/public.orders/${r.id}`);
      return o !== undefined && o.seq === r.seq && o.status === r.status && Number(o.total) === Number(r.total) && o.region === r.region && !('note' in o);
    });
  };
  const filesSame = async () => {
    const want = (await rows()).filter((r) => r.status !== 'draft');
    const have = fileState(dir);
    if (have.size !== want.length) return false;
    return want.every((r) => {
      const o = have.get(r.id);
      return o !== undefined && o.seq === r.seq && o.status === r.status && o.note === r.note;
    });
  };
  const lag = async (pipeline: string) => {
    const text = await rt.metrics.render();
    let sum = 0;
    let seen = false;
    for (const m of text.matchAll(/^syncline_consumer_lag_messages\{([^}]*)\} (\S+)$/gm)) {
      if (!m[1]!.includes(`pipeline="${pipeline}"`)) continue;
      seen = true;
      sum += Number(m[2]);
    }
    return seen ? sum : undefined;
  };

  await waitFor('the snapshot on all three targets', async () => (await pgSame()) && (await apiSame()) && (await filesSame()), 90_000, 300);
  assert.equal((await sql('postgres', `select count(*)::int n from pg_replication_slots where database = $1`, [env.sourceDb])).rows[0].n, 1, 'one replication slot for the three targets');

  // Writers: updates (seq + 1, status in and out of 'draft'), inserts, deletes and re-inserts of deleted ids.
  let stop = false;
  let next = 1000;
  let changes = 0;
  const writer = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const id = ((i * 37 + w * 101) % 300) + 1;
      const r = (i + w) % 10;
      if (r < 6) await src.query(`update orders set seq = seq + 1, status = case when status = 'draft' then 'open' when $2 then 'draft' else 'paid' end, total = total + 1, note = 'w${w} ' || $3, updated_at = clock_timestamp() where id = $1`, [id, i % 4 === 0, i]);
      else if (r < 8) await src.query(`insert into orders (id, region, status, total, note) values ($1, 'eu', 'open', 9.99, 'new') on conflict (id) do nothing`, [next++]);
      else if (r === 8) await src.query(`delete from orders where id = $1`, [id]);
      else await src.query(`insert into orders (id, region, status, total, note, seq) values ($1, 'us', 'open', 1, 'back', 1000) on conflict (id) do nothing`, [((i * 41 + w) % 300) + 1]);
      changes++;
      await sleep(5);
    }
  };
  let writers = [1, 2, 3].map(writer);
  await sleep(1500);

  // The API goes down (connection refused) for DOWN_MS while the writers go on for the first part of it.
  const port = api.port;
  await api.stop();
  const downAt = Date.now();
  await sleep(8000);
  stop = true;
  await Promise.all(writers);
  t.diagnostic(`${changes} changes written; the API is down`);

  // PostgreSQL and the files keep up while the API is down; the API's lag is its own.
  await waitFor('PostgreSQL and the files to hold the source while the API is down', async () => (await pgSame()) && (await filesSame()), 40_000, 300);
  const keptUpAfter = Date.now() - downAt;
  const lagDown = await waitFor('the lag metrics', async () => {
    const [p, f, a] = await Promise.all([lag('orders-pg'), lag('orders-files'), lag('orders-api')]);
    return p === 0 && f === 0 && a !== undefined && a > 0 ? { pg: p, files: f, api: a } : false;
  }, 30_000, 500);
  t.diagnostic(`while the API was down: PostgreSQL and files equal to the source ${(keptUpAfter / 1000).toFixed(1)} s after it went down; lag pg ${lagDown.pg}, files ${lagDown.files}, api ${lagDown.api}`);
  assert.equal(await apiSame(), false, 'the API, down, is behind');

  // A minute later the API is back on its port; its pipeline catches up by itself (no restart).
  await sleep(Math.max(0, DOWN_MS - (Date.now() - downAt)));
  await api.start(port);
  const backAt = Date.now();
  stop = false;
  writers = [1, 2].map(writer);
  await sleep(1500);
  stop = true;
  await Promise.all(writers);
  await waitFor('every target to hold the source', async () => (await pgSame()) && (await apiSame()) && (await filesSame()), 90_000, 300);
  t.diagnostic(`the API caught up ${((Date.now() - backAt) / 1000).toFixed(1)} s after it came back (down ${(backAt - downAt) / 1000} s); ${changes} changes in all`);

  assert.deepEqual(api.backwards, [], 'no key of the API went back in seq (per-key order)');
  for (const p of ['orders-pg', 'orders-api', 'orders-files']) {
    assert.equal((await readTopic(topics.dlq(env.prefix, p)).catch(() => [])).length, 0, `nothing dead-lettered by ${p}`);
  }
  assert.equal((await sql('postgres', `select count(*)::int n from pg_replication_slots where database = $1`, [env.sourceDb])).rows[0].n, 1, 'still one slot');
  assert.ok(existsSync(join(dir, 'public.orders', '_manifest.jsonl')));

  // verify --repair of a follower: the differing keys are re-read by the capture it follows; the
  // followed pipeline's own target is unchanged (hash delta), the follower's is repaired.
  const xmins = async (db: string) => (await sql(db, `select string_agg(id || ':' || xmin::text, ',' order by id) x from orders`)).rows[0].x as string;
  const leaderBefore = await xmins(env.targetDb);
  const [gone, changed] = (await src.query(`select id from orders order by id limit 2`)).rows.map((r) => r.id as number);
  await sql(target2, `delete from orders where id = $1`, [gone]);
  await sql(target2, `update orders set status = 'tampered' where id = $1`, [changed]);
  const clients = await openClients(env.config);
  try {
    const r = await verifyPipeline(env.config, { pipeline: 'orders-pg2', repair: true }, { kafka: clients.kafka, redis: clients.redis, log: clients.log });
    assert.equal(r.repair?.status, 'done', JSON.stringify(r.repair));
    assert.deepEqual(r.tables[0]!.diffs.map((d) => `${d.kind} ${String(d.key.id)}`).sort(), [`different ${changed}`, `missing ${gone}`].sort());
  } finally {
    await clients.close();
  }
  assert.ok(await pgSame(), 'the follower\'s target repaired');
  assert.equal(await xmins(env.targetDb), leaderBefore, 'the followed pipeline\'s target: no row rewritten');
});

/** The files target's final state: each key's last row by position (a `d` row deletes it). */
function fileState(dir: string): Map<number, Record<string, unknown>> {
  const folder = join(dir, 'public.orders');
  const manifest = join(folder, '_manifest.jsonl');
  const out = new Map<number, { pos: string; row: Record<string, unknown> | null }>();
  if (!existsSync(manifest)) return new Map();
  for (const line of readFileSync(manifest, 'utf8').split('\n')) {
    if (line === '') continue;
    const entry = JSON.parse(line) as { file: string };
    for (const l of readFileSync(join(folder, entry.file), 'utf8').split('\n')) {
      if (l === '') continue;
      const r = JSON.parse(l) as Record<string, unknown> & { op: string; _position: string; _key: string | unknown[] };
      const key = typeof r._key === 'string' ? (JSON.parse(r._key) as unknown[]) : r._key;
      const id = Number(key[0]);
      const prev = out.get(id);
      if (prev && prev.pos > r._position) continue;
      out.set(id, { pos: r._position, row: r.op === 'd' ? null : r });
    }
  }
  const state = new Map<number, Record<string, unknown>>();
  for (const [id, v] of out) if (v.row) state.set(id, v.row);
  return state;
}
