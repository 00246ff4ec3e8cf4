/**
 * End to end: a real paginated HTTP API (./test-api.ts, node:http in this process) → syncline capture
 * (`syncline capture`, a child process, killed with SIGKILL mid-listing) → Kafka → processor and
 * PostgreSQL sink (in process, autoCreate). Five endpoints on one dataset that the test mutates while
 * they are listed: the same items through cursor, page, offset and Link pagination (hash mode:
 * inserts, updates, deletes), and events in timestamp mode (`updated_since`, updated_at in whole
 * seconds so many records share a timestamp across page boundaries). The API answers a few requests
 * with 429 (Retry-After: 1) and 500, wants a bearer token from the environment, and records every
 * request so the rate limit is checked on the server's side. Two records that do not fit (a price
 * that is no number, no id) are dead-lettered once each per table, naming URL, page and index.
 *  - Busy phase: writers run, capture is killed twice mid-listing → the target equals the dataset.
 *  - Quiet phase: capture killed mid-listing again and restarted → no target row is written again
 *    (xmin unchanged, the applier's `applied` unchanged: records read again are skipped by position
 *    or content hash).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Row } from '../../../src/core/envelope.js';
import { sleep, waitFor } from '../../../test/helpers.js';
import { canon, contractEnv, deadLetters, kill9, stat } from '../../../test/contract/env.js';
import { rowDiff } from '../../../test/contract/sink-contract.js';
import { postgresSink, sortByKey } from '../../../test/contract/postgres-fixtures.js';
import { TestApi } from './test-api.js';
import { canonicalValue } from './values.js';

const TOKEN = 'tok-' + Math.random().toString(36).slice(2);
process.env.SYNCLINE_TEST_HTTP_TOKEN = TOKEN;
const RATE = 40;
const BURST = 2;
const KINDS = ['cursor', 'page', 'offset', 'link'] as const;

const itemColumns = { id: { type: 'long' }, name: { type: 'string' }, price: { type: 'decimal' }, updated_at: { type: 'timestamptz' } };

function endpoints(url: string): Record<string, unknown> {
  const items = (kind: string, pagination: Record<string, unknown>, recordsPath: string) => ({
    url: `${url}/${kind}`, pagination, recordsPath, columns: itemColumns, key: ['id'], mode: 'hash',
  });
  return {
    'api.cursor_items': items('cursor', { type: 'cursor', param: 'cursor', path: '$.next_cursor' }, '$.data.items'),
    'api.page_items': { ...items('page', { type: 'page', param: 'page', start: 1, sizeParam: 'per_page', size: 25 }, '$.results[*]') },
    'api.offset_items': items('offset', { type: 'offset', param: 'offset', limitParam: 'limit', limit: 25 }, '$.results'),
    'api.link_items': items('link', { type: 'link' }, '$'),
    'api.events': {
      url: `${url}/events`, pagination: { type: 'cursor' }, recordsPath: "$['data'].items",
      columns: { id: { type: 'long' }, kind: { type: 'string', path: '$.kind' }, payload: { type: 'string' }, updated_at: { type: 'timestamptz' } },
      key: ['id'], mode: 'timestamp', column: 'updated_at', since: { param: 'updated_since' }, overlapMs: 3000,
    },
  };
}

/** ISO time in whole seconds: records written within one second share their timestamp. */
const secondNow = () => new Date(Math.floor(Date.now() / 1000) * 1000).toISOString();

test('HTTP API → PostgreSQL: four pagination kinds and timestamp mode under concurrent writes, 429/500, auth, rate limit, capture killed with SIGKILL mid-listing', async (t) => {
  const api = await new TestApi().start();
  api.auth = `Bearer ${TOKEN}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'syncline-http-source-'));
  const env = await contractEnv({
    source: async () => ({
      database: 'api',
      config: () => ({
        type: 'http', endpoints: endpoints(api.url), auth: { bearer: { env: 'SYNCLINE_TEST_HTTP_TOKEN' } },
        rateLimit: { requestsPerSecond: RATE, burst: BURST }, retry: { retries: 6, initialDelayMs: 50, maxDelayMs: 1000 },
        intervalMs: 300, stateDir, lingerMs: 5, timeoutMs: 5000,
      }),
      qualified: (table: string) => `api.${table}`,
      createTable: async () => undefined, insertLiterals: async () => undefined, updateLiterals: async () => undefined,
      session: async () => { throw new Error('no sessions'); }, readAll: async () => [], drop: async () => undefined,
    }),
    target: (id) => postgresSink.createTarget(id),
  }, ['cursor_items', 'page_items', 'offset_items', 'link_items', 'events']);
  t.after(async () => {
    await env.cleanup();
    await api.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  // The dataset: 300 items, 200 events; two records that do not fit (a price that is no number, no id).
  let nextId = 1;
  const item = (id: number, gen: number) => ({ id, name: `item ${id} g${gen}`, price: ((id * 7 + gen) % 4000) / 4, updated_at: new Date(Date.UTC(2026, 0, 1) + id * 60_000 + gen).toISOString() });
  for (; nextId <= 300; nextId++) api.items.set(nextId, item(nextId, 0));
  api.items.set(100_000, { id: 100_000, name: 'bad price', price: 'twelve', updated_at: '2026-01-01T00:00:00Z' });
  api.items.set(100_001, { name: 'no id', price: 1, updated_at: '2026-01-01T00:00:00Z' });
  for (let i = 1; i <= 200; i++) api.events.set(i, { id: i, kind: `k${i % 3}`, payload: `p${i}`, updated_at: secondNow() });
  // A few refusals: 429 with Retry-After: 1 (seconds), and 500.
  const refuse = new Map<number, number>([[7, 429], [40, 500], [95, 429], [160, 500], [230, 500]]);
  api.fault = (n) => {
    const status = refuse.get(n);
    if (status === undefined) return null;
    const headers: Record<string, string> = status === 429 ? { 'retry-after': '1' } : {};
    return { status, headers };
  };

  await env.start(['process', 'sink']);
  const rt = env.runtimes[0]!;
  let capture = env.spawnCapture();

  const expected = (table: string): Row[] => {
    const good = (r: Record<string, unknown>) => typeof r.id === 'number' && typeof r.price === 'number';
    if (table === 'events') {
      return sortByKey([...api.events.values()].map((e) => ({ id: BigInt(e.id), kind: e.kind, payload: e.payload, updated_at: canonicalValue('updated_at', 'timestamptz', e.updated_at) })), ['id']);
    }
    return sortByKey([...api.items.values()].filter(good).map((r) => ({ id: BigInt(r.id as number), name: r.name as string, price: canonicalValue('price', 'decimal', r.price), updated_at: canonicalValue('updated_at', 'timestamptz', r.updated_at) })), ['id']);
  };
  const converge = async (what: string) => {
    for (const table of [...KINDS.map((k) => `${k}_items`), 'events']) {
      let diff: string[] = [];
      await waitFor(`${what}: ${table} on the target as in the API`, async () => {
        const [want, have] = [expected(table), await env.target.readAll(table, ['id'])];
        diff = rowDiff(want, have);
        return canon(want) === canon(have);
      }, 120_000, 500).catch((err: Error) => assert.fail(`${err.message}\n${diff.slice(0, 20).join('\n')}`));
    }
  };

  // Busy phase: a writer inserts, updates and deletes items and updates events while capture lists.
  let writing = true;
  let writes = 0;
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      const r = i % 10;
      const id = ((i * 37) % 300) + 1;
      if (r < 3) api.items.set(nextId, item(nextId++, 0));
      else if (r < 6) api.items.has(id) && api.items.set(id, item(id, i));
      else if (r < 7) api.items.delete(id);
      else {
        const e = api.events.get((i % 200) + 1)!;
        api.events.set(e.id, { ...e, payload: `${e.payload}!`, updated_at: secondNow() });
      }
      writes++;
      await sleep(15);
    }
  })();
  await waitFor('the snapshot to reach the target', async () => {
    const n = (await env.target.readAll('link_items', ['id'])).length;
    if (process.env.SYNCLINE_TEST_DEBUG) console.log(`link_items ${n}, requests ${api.requests.length}, capture ${capture.exitCode ?? capture.signalCode ?? 'running'}`);
    return n >= 250;
  }, 120_000, 300);
  const mark = () => api.requests.length;
  for (let round = 0; round < 2; round++) {
    const from = mark();
    // Mid-listing: a few pages into a pass.
    await waitFor('capture to be a few pages into a listing', async () => api.requests.slice(from).some((r) => r.path === '/offset' && Number(r.query.get('offset')) >= 100), 60_000, 20);
    await kill9(capture);
    capture = env.spawnCapture();
  }
  await sleep(1500);
  writing = false;
  await writer;
  assert.ok(writes > 100, `${writes} writes`);
  await converge('busy phase');

  // The records that do not fit: dead-lettered once per table while a capture runs (not once per pass),
  // naming where they were read. A capture killed before its pass was acknowledged reads them again and
  // dead-letters them again (the once-per-content memory is the process's): at least once, at most once
  // more per kill (CI saw the record without an id dead-lettered 3 times across the 2 kills).
  const letters = await deadLetters(env);
  const byTable = new Map<string, string[]>();
  for (const l of letters) byTable.set(l.table ?? '', [...(byTable.get(l.table ?? '') ?? []), `${l.errorCode} ${l.errorMessage}`]);
  let kinds = 0;
  for (const k of KINDS) {
    const got = byTable.get(`public.${k}_items`) ?? [];
    // The keyset cursor (id > cursor) never lists the record without an id.
    const codes = [...new Set(got.map((m) => m.split(' ')[0]))].sort();
    assert.deepEqual(codes, k === 'cursor' ? ['HTTP_VALUE_TYPE'] : ['HTTP_KEY_MISSING', 'HTTP_VALUE_TYPE'], `${k}: ${JSON.stringify(got)}`);
    assert.ok(got.length <= codes.length * 3, `${k}: at most once more per kill: ${JSON.stringify(got)}`);
    kinds += codes.length;
    assert.ok(got.some((m) => m.startsWith('HTTP_VALUE_TYPE') && /column price \(decimal\): "twelve"/.test(m) && /record \d+ of page \d+ \(GET http:\/\/127\.0\.0\.1:\d+\/\w+/.test(m)), JSON.stringify(got));
    if (k !== 'cursor') assert.ok(got.some((m) => m.startsWith('HTTP_KEY_MISSING') && /record \d+ of page \d+/.test(m)), JSON.stringify(got));
  }
  assert.equal(kinds, 7, JSON.stringify(letters.map((l) => `${l.table} ${l.errorMessage}`)));
  const eventLetters = letters.filter((l) => !KINDS.some((k) => l.table === `public.${k}_items`));
  assert.deepEqual(eventLetters, [], 'nothing of the events table dead-lettered');
  assert.equal(stat(rt, 'deadLettered'), 0, 'nothing failed at the target');

  // Quiet phase: nothing changes at the API; capture killed mid-listing and restarted writes nothing again.
  await sleep(1000);
  const marks = new Map<string, Map<string, string>>();
  for (const table of [...KINDS.map((k) => `${k}_items`), 'events']) marks.set(table, await env.target.writeMarks!(table, ['id']));
  const applied = stat(rt, 'applied');
  const received = stat(rt, 'received');
  let from = mark();
  await waitFor('capture to be a few pages into a listing', async () => api.requests.slice(from).some((r) => r.path === '/cursor' && Number(r.query.get('cursor')) >= 100), 60_000, 20);
  await kill9(capture);
  capture = env.spawnCapture();
  from = mark();
  // Two listings of the events endpoint started after the restart: a whole pass went by.
  await waitFor('a whole pass after the restart', async () => api.requests.slice(from).filter((r) => r.path === '/events' && !r.query.has('cursor') && r.status === 200).length >= 2, 60_000, 50);
  await sleep(1000);
  for (const [table, before] of marks) {
    const after = await env.target.writeMarks!(table, ['id']);
    const rewritten = [...after].filter(([k, x]) => before.get(k) !== x).map(([k]) => k);
    assert.deepEqual(rewritten, [], `${table}: rows written again after the restart`);
  }
  assert.equal(stat(rt, 'applied'), applied, 'nothing applied twice');
  await converge('quiet phase');

  // Auth on every request; refusals answered and retried; the rate limit held on the server's side.
  assert.ok(api.requests.every((r) => r.headers.authorization === `Bearer ${TOKEN}`), 'every request carried the bearer token');
  assert.ok(api.requests.filter((r) => r.status === 429).length >= 2 && api.requests.filter((r) => r.status === 500).length >= 2);
  const peak = api.maxPerSecond();
  assert.ok(peak <= RATE + BURST + 1, `at most ${RATE + BURST} requests in any second (token bucket ${RATE}/s, burst ${BURST}; one more for timer rounding): ${peak}`);
  console.log(`http → postgres: ${api.requests.length} requests (peak ${peak}/s), ${writes} concurrent writes, ${letters.length} dead letters, capture killed 3 times; re-read after the last kill: ${stat(rt, 'received') - received} received, 0 applied`);
});
