/**
 * GET /api/history through the real HTTP server and access control, on a real history store: a
 * viewer gets the key's timeline with masked columns as '***' (a table's `mask`, the default
 * patterns) in the images and the diff; an admin gets them unmasked; bad or missing parameters are
 * 400 naming them; a table without history is 404; no token is 401.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ObservabilityServer } from '../src/observe/http.js';
import { ApiAccess } from '../src/security/access/access.js';
import { newToken, tokenHash } from '../src/security/access/tokens.js';
import { parseConfig } from '../src/core/config/load.js';
import { historyApi } from '../src/history/api.js';
import { HistoryStore } from '../src/history/store.js';
import type { HistoryEntry } from '../src/history/history.js';
import { createDb, dropDb, PG, uid } from './helpers.js';

test('GET /api/history: masked for a viewer, unmasked for an admin, 400/404/401 where it must', async (t) => {
  const db = `syncline_t_${uid()}_hapi`;
  await createDb(db);
  const url = `postgres://${PG.user}@${PG.host}:${PG.port}/${db}`;
  const store = new HistoryStore(url, 'h');
  t.after(async () => {
    await store.close();
    await dropDb(db);
  });
  const viewer = newToken();
  const admin = newToken();
  const config = parseConfig(JSON.stringify({
    version: 1,
    history: { url, schema: 'h' },
    api: { tokens: [{ name: 'v', role: 'viewer', hash: tokenHash(viewer) }, { name: 'a', role: 'admin', hash: tokenHash(admin) }] },
    pipelines: {
      p: {
        source: { type: 'postgres', connection: { ...PG, database: 'x' }, slot: 's', publication: 'p' },
        target: { type: 'postgres', connection: { ...PG, database: db } },
        conflict: { strategy: 'source-wins' },
        history: {},
        tables: [{ source: 'public.users', mask: ['phone'] }, { source: 'public.other', history: { enabled: false } }],
      },
    },
  }), 'config.json', {});
  const e = (op: 'upsert' | 'delete', after: HistoryEntry['after'], before: HistoryEntry['before'], position: string, h: number): HistoryEntry => ({
    pipeline: 'p', table: 'public.users', key: '["7"]', keyRow: { id: 7 }, op, position, commitTsMs: Date.UTC(2026, 11, 6, h), decision: 'applied', strategy: null, by: null, before, beforeKnown: true, after, changed: true, appliedAt: new Date(Date.UTC(2026, 11, 6, h, 0, 1)),
  });
  await store.insert([
    e('upsert', { id: 7, name: 'Ann', phone: '555-1', password: 'x1' }, null, '0/1:0', 1),
    e('upsert', { id: 7, name: 'Anne', phone: '555-2', password: 'x1' }, { id: 7, name: 'Ann', phone: '555-1', password: 'x1' }, '0/2:0', 2),
  ], Date.UTC(2026, 11, 6, 3));

  const log = pino({ level: 'silent' });
  const server = new ObservabilityServer({
    metrics: async () => '', metricsContentType: 'text/plain', health: () => ({ status: 'ok' }) as never, ready: async () => ({ ready: true, checks: [] }) as never, alerts: () => ({ alerts: [] }),
    api: historyApi(() => config),
    access: new ApiAccess(config.api, { log }),
  }, log);
  const port = await server.start(0, '127.0.0.1');
  t.after(() => server.close());
  const get = (q: string, token?: string) => fetch(`http://127.0.0.1:${port}/api/history?${q}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  const asViewer = await get('pipeline=p&table=public.users&key=7', viewer);
  assert.equal(asViewer.status, 200);
  const v = (await asViewer.json()) as { key: string; steps: { after: Record<string, unknown>; diff: { field: string; from: unknown; to: unknown }[] }[] };
  assert.equal(v.key, '["7"]');
  assert.deepEqual(v.steps.map((s) => s.after), [{ id: 7, name: 'Ann', phone: '***', password: '***' }, { id: 7, name: 'Anne', phone: '***', password: '***' }]);
  assert.deepEqual(v.steps[1]!.diff, [{ field: 'name', from: 'Ann', to: 'Anne' }, { field: 'phone', from: '***', to: '***' }]);
  assert.ok(!JSON.stringify(v).includes('555-'), 'no masked value anywhere in the answer');

  const asAdmin = (await (await get('pipeline=p&table=public.users&key=[7]', admin)).json()) as typeof v;
  assert.deepEqual(asAdmin.steps[1]!.diff, [{ field: 'name', from: 'Ann', to: 'Anne' }, { field: 'phone', from: '555-1', to: '555-2' }]);
  // --since/--until bound the timeline.
  const bounded = (await (await get(`pipeline=p&table=public.users&key=7&since=${new Date(Date.UTC(2026, 11, 6, 2)).toISOString()}`, admin)).json()) as typeof v;
  assert.equal(bounded.steps.length, 1);

  const missing = await get('pipeline=p&key=7', viewer);
  assert.equal(missing.status, 400);
  assert.match(((await missing.json()) as { error: string }).error, /missing query parameter table/);
  const badTime = await get('pipeline=p&table=public.users&key=7&until=yesterday', viewer);
  assert.equal(badTime.status, 400);
  assert.match(((await badTime.json()) as { error: string }).error, /until must be an ISO time/);
  const off = await get('pipeline=p&table=public.other&key=7', viewer);
  assert.equal(off.status, 404);
  assert.match(((await off.json()) as { error: string }).error, /keeps no change history of table public.other/);
  assert.equal((await get('pipeline=p&table=public.users&key=7')).status, 401);
});
