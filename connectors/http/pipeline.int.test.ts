/**
 * End to end: PostgreSQL → Kafka → HTTP API through the real pipeline (Runtime: capture, process,
 * sink) into a real node:http server (./test-server.ts) that stores objects by key, applies each
 * Idempotency-Key once, and fails some requests with 429 (Retry-After), 500 and 400. Then a kill -9
 * of a sink process (the CLI as a child) mid-run: nothing lost.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import '../index.js';
import { parseConfig } from '../../src/core/config/load.js';
import { topics } from '../../src/core/kafka.js';
import { Runtime } from '../../src/runtime.js';
import { createDb, deleteTopics, dropDb, dropSlots, PG, readTopic, sleep, soak, spawnCli, uid, waitFor } from '../../test/helpers.js';
import { TestApi } from './test-server.js';

const DDL = `create table items (id bigint primary key, seq int not null default 0, name text not null, doc text)`;
/** ~6 KB of hex: stored out of line (TOAST), so an update that leaves it alone does not carry it. */
const BIG = `(select string_agg(md5(random()::text), '') from generate_series(1, 200))`;

async function setup(t: { after(fn: () => Promise<void>): void }, pipeline: string) {
  const id = uid();
  const prefix = `t${id}`;
  const sourceDb = `syncline_t_${id}_src`;
  await createDb(sourceDb);
  const api = await new TestApi().start();
  const src = new pg.Pool({ ...PG, database: sourceDb, max: 6 });
  const runtimes: Runtime[] = [];
  t.after(async () => {
    await Promise.allSettled(runtimes.map((r) => r.stop()));
    await src.end().catch(() => undefined);
    await api.stop();
    await dropSlots(prefix);
    await dropDb(sourceDb);
    await deleteTopics(prefix).catch(() => undefined);
  });
  await src.query(DDL);
  const doc = {
    version: 1,
    topicPrefix: prefix,
    // A short session: a sink started after a kill -9 gets the dead one's partitions after 10 s, not 30.
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 3, sessionTimeoutMs: 10_000 },
    defaults: { retry: { retries: 40, initialDelayMs: 20, maxDelayMs: 200 }, batch: { size: 200 } },
    pipelines: {
      [pipeline]: {
        source: { type: 'postgres', connection: { ...PG, database: sourceDb }, slot: `${prefix}_http`, publication: `${prefix}_http`, snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
        target: { type: 'http', url: `${api.url}/{table}/{key.id}`, read: { url: `${api.url}/{table}/{key.id}` }, headers: { authorization: 'Bearer ${HTTP_TEST_TOKEN}' }, concurrency: 8, timeoutMs: 5000 },
        conflict: { strategy: 'source-wins' },
        tables: [{ source: 'public.items' }],
      },
    },
  };
  const file = join(mkdtempSync(join(tmpdir(), 'syncline-http-')), 'config.yaml');
  writeFileSync(file, JSON.stringify(doc, null, 2));
  const config = parseConfig(JSON.stringify(doc, null, 2), file, { HTTP_TEST_TOKEN: 'tok' });
  const start = async (stages: string[]) => {
    const rt = new Runtime(config, new Set(stages) as never);
    runtimes.push(rt);
    const { done } = await rt.start();
    done.catch(() => undefined);
    return rt;
  };
  /** The server's objects equal the source rows (content), but for the ids `except`. */
  const matches = async (except: Set<string> = new Set()) => {
    const rows = (await src.query(`select id, seq, name, doc from items order by id`)).rows as { id: string; seq: number; name: string; doc: string | null }[];
    const want = rows.filter((r) => !except.has(r.id));
    if (api.objects.size !== want.length) return false;
    for (const r of want) {
      const o = api.objects.get(`/public.items/${r.id}`);
      if (!o || o.id !== Number(r.id) || o.seq !== r.seq || o.name !== r.name || o.doc !== r.doc) return false;
    }
    return { rows: want.length };
  };
  /** What differs, for a failure message. */
  const diff = async (except: Set<string> = new Set()) => {
    const rows = (await src.query(`select id, seq, name, doc from items order by id`)).rows as { id: string; seq: number; name: string; doc: string | null }[];
    const want = rows.filter((r) => !except.has(r.id));
    const out: unknown[] = [`source ${want.length}, server ${api.objects.size}`];
    const ids = new Set(want.map((r) => `/public.items/${r.id}`));
    for (const p of api.objects.keys()) if (!ids.has(p)) out.push(`extra ${p}`);
    for (const r of want) {
      const o = api.objects.get(`/public.items/${r.id}`);
      if (!o) out.push(`missing ${r.id}: ${JSON.stringify(api.seen.filter((x) => x.path === `/public.items/${r.id}`).map((x) => [x.method, x.status, x.idem]))}`);
      else if (o.seq !== r.seq || o.name !== r.name || o.doc !== r.doc) out.push(`differs ${r.id}: ${JSON.stringify(o).slice(0, 100)} vs ${JSON.stringify(r).slice(0, 100)}`);
    }
    return out.slice(0, 12).join('\n');
  };
  return { prefix, api, src, start, matches, diff, file };
}

test('PostgreSQL → HTTP: snapshot and concurrent changes under 429/500/400; the server holds exactly the source rows, 400s dead-lettered with status and body, per-key order kept', async (t) => {
  const { prefix, api, src, start, matches } = await setup(t, 'to-http');
  // 300 rows for the snapshot, every 10th with a TOASTed doc; 5 rows the API refuses (400).
  await src.query(`insert into items (id, name, doc) select g, 'item ' || g, case when g % 10 = 0 then ${BIG} else 'small ' || g end from generate_series(1, 300) g`);
  const bad = new Set<string>();
  for (let i = 1; i <= 5; i++) {
    await src.query(`insert into items (id, name) values ($1, $2)`, [100_000 + i, `BAD-${i}`]);
    bad.add(String(100_000 + i));
  }
  // 429 (Retry-After: 1) on the first attempt of every 37th key's snapshot row; 500 on the first
  // attempt of updates of every 23rd key; 400 for the BAD rows (always).
  const retried429: { idem: string; at: number }[] = [];
  api.fault = ({ method, path, idem, body }) => {
    const first = idem !== undefined && !api.attempts.has(idem);
    const id = Number(path.split('/').pop());
    if (body.includes('"BAD-')) return { status: 400, body: JSON.stringify({ error: 'name refused', name: body }) };
    if (first && method === 'POST' && id % 37 === 0) {
      retried429.push({ idem: idem!, at: Date.now() });
      return { status: 429, headers: { 'retry-after': '1' } };
    }
    if (first && method === 'PUT' && id % 23 === 0) return { status: 500, body: 'oops' };
    return null;
  };
  const times = new Map<string, number[]>();
  const orig = api.fault;
  api.fault = (req) => {
    if (req.idem) times.set(req.idem, [...(times.get(req.idem) ?? []), Date.now()]);
    return orig(req);
  };

  const rt = await start(['capture', 'process', 'sink']);
  // The writers start once the slot exists (the snapshot's consistent point): a row they delete is
  // then in the snapshot or streamed, so its DELETE is sent (before it, on a quiet machine the
  // writers deleted rows before the slot existed, and no DELETE was ever due for them).
  await waitFor('the slot (the snapshot\'s consistent point)', async () => (await src.query(`select 1 from pg_replication_slots where slot_name = $1`, [`${prefix}_http`])).rowCount, 60_000, 50);
  // Concurrent writers: updates (seq + 1, doc left alone: unchanged TOAST), inserts, deletes.
  const deleted = new Set<string>();
  let next = 1000;
  const worker = async (w: number) => {
    for (let i = 0; i < 120; i++) {
      const r = (i * 7 + w * 13) % 10;
      const id = ((i * 31 + w * 7) % 300) + 1;
      if (r < 2) await src.query(`insert into items (id, name, doc) values ($1, $2, ${BIG})`, [next++, `new ${w}-${i}`]);
      else if (r < 9) await src.query(`update items set seq = seq + 1, name = $2 where id = $1`, [id, `w${w}-${i}`]);
      else {
        const d = String(((i * 17 + w * 3) % 300) + 1);
        if ((await src.query(`delete from items where id = $1`, [d])).rowCount) deleted.add(d);
      }
    }
  };
  await Promise.all([0, 1, 2, 3].map(worker));
  await waitFor('the HTTP server to hold the source rows', () => matches(bad), 180_000, 500);
  const stats = rt.pipelines[0]!.applier!.stats;
  await waitFor('the 400s to be dead-lettered', async () => stats.deadLettered >= bad.size, 30_000);
  // Dead letters: exactly the refused rows, each with its status and the server's body.
  const letters = await readTopic(topics.dlq(prefix, 'to-http'));
  assert.equal(stats.deadLettered, bad.size, JSON.stringify([stats, letters.map((l) => [l.headers['syncline.error.code'], l.headers['syncline.key'], l.headers['syncline.error.message']?.slice(0, 300)]), api.seen.filter((x) => x.path === '/public.items/60' || x.path === '/public.items/80').map((x) => [x.path, x.method, x.status, x.idem, x.body.slice(0, 60)])]));
  assert.equal(letters.length, bad.size);
  for (const l of letters) {
    assert.equal(l.headers['syncline.error.code'], 'HTTP_400');
    assert.match(l.headers['syncline.error.message']!, /POST http:\/\/127\.0\.0\.1:\d+\/public\.items\/10000\d: HTTP 400: \{"error":"name refused"/);
    assert.ok(bad.has(JSON.parse(l.headers['syncline.key']!)[0] as string) || bad.has(String(JSON.parse(l.headers['syncline.key']!)[0])), l.headers['syncline.key']);
  }

  // Per-key order: seq never went backwards at the server.
  assert.deepEqual(api.backwards, []);
  // Deletes arrived as DELETE (and the objects are gone: matches() above).
  assert.ok(deleted.size > 10);
  // (a row deleted before the snapshot's consistent point never reached the server, and has no delete to send)
  let deletes = 0;
  for (const d of deleted) {
    const of = api.seen.filter((s) => s.path === `/public.items/${d}` && s.method !== 'GET');
    if (of.length === 0) continue;
    assert.ok(of.some((s) => s.method === 'DELETE' && s.status === 200), `DELETE of ${d}: ${JSON.stringify(of.map((s) => [s.method, s.status]))}`);
    deletes++;
  }
  assert.ok(deletes > 10, `${deletes} deletes sent`);
  // The faults happened, and were retried: 429s waited for Retry-After (1 s).
  assert.ok(retried429.length >= 5, `429s: ${retried429.length}`);
  for (const r of retried429) {
    const ts = times.get(r.idem)!;
    assert.ok(ts.length >= 2 && ts[1]! - ts[0]! >= 900, `retry of ${r.idem} after ${ts[1]! - ts[0]!} ms`);
  }
  assert.ok(api.seen.some((s) => s.status === 500));
  // Unchanged TOAST values were filled by capture (the http target needs whole rows), never sent
  // missing (the content check covers doc); a GET of the object only for what capture could not fill.
  const toast = rt.pipelines[0]!.capture!.stats.toast;
  assert.ok(toast.cache + toast.reselect > 0, `TOAST fills: ${JSON.stringify(toast)}`);
  assert.ok(toast.miss > 0 || api.seen.every((s) => s.method !== 'GET'), `GETs without a capture miss: ${JSON.stringify(toast)}`);
  assert.ok(api.seen.every((s) => s.method === 'GET' || s.method === 'DELETE' || 'doc' in (JSON.parse(s.body) as object)), 'every body carries doc');
  // Each change applied once: the server applies a key once and counts repeats; a repeat only comes from a retried batch.
  const repeats = [...api.applied.values()].filter((n) => n > 1).length;
  const refusedOnce = api.seen.filter((s) => s.status === 429 || s.status === 500).length;
  assert.ok(repeats === 0 || refusedOnce > 0, `${repeats} keys repeated, ${refusedOnce} refusals`);
  for (const s of api.seen) assert.equal(s.headers.authorization, 'Bearer tok');
  t.diagnostic(`requests ${api.seen.length}, distinct keys applied ${api.applied.size}, keys sent again after success (batch retries) ${repeats}, 429 ${retried429.length}, 500 ${api.seen.filter((s) => s.status === 500).length}`);
});

test('kill -9 of the sink process mid-run, restarted: the HTTP server ends with exactly the source rows', async (t) => {
  const { api, src, start, matches, diff, file } = await setup(t, 'to-http');
  await src.query(`insert into items (id, name, doc) select g, 'item ' || g, 'd' || g from generate_series(1, 200) g`);
  api.delayMs = 2;
  await start(['capture', 'process']);
  const env = { HTTP_TEST_TOKEN: 'tok' };
  let sink = spawnCli(['sink', '--config', file], env);
  let writing = true;
  let next = 10_000;
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      await src.query('begin');
      await src.query(`insert into items (id, name) select g, 'n' || g from generate_series($1::int, $1::int + 9) g`, [next]);
      next += 10;
      await src.query(`update items set seq = seq + 1, name = 'u' || $1::int where id % 7 = $1::int % 7 and id <= 200`, [i]);
      await src.query(`delete from items where id = $1`, [next - 3]);
      await src.query('commit');
      await sleep(100); // a few hundred changes/s: the kills, not a backlog, are what is tested
    }
  })();
  for (let round = 0; round < soak(1, 3); round++) {
    const before = api.seen.length;
    await waitFor('the sink to send requests', async () => api.seen.length > before + 150, 90_000, 50);
    sink.kill('SIGKILL');
    await once(sink, 'exit');
    sink = spawnCli(['sink', '--config', file], env);
  }
  await sleep(500);
  writing = false;
  await writer;
  t.after(async () => {
    sink.kill('SIGKILL');
  });
  const ok = await waitFor('the HTTP server to hold the source rows after the kills', () => matches(), 180_000, 500).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await diff()}`);
  });
  assert.ok(ok.rows > 300, JSON.stringify(ok));
  assert.deepEqual(api.backwards, []);
  sink.kill('SIGTERM');
  const [code] = await once(sink, 'exit');
  assert.equal(code, 0);
});
