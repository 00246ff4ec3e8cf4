/**
 * Whole rows for targets that cannot keep a column (src/capture/toast-fill.ts), end to end on the
 * real stack: PostgreSQL (100 KB text and bytea values, stored out of line) → Kafka → MariaDB.
 * An update that does not touch those columns arrives from pgoutput without them; the MariaDB
 * target must still end with the real values, also where its row was missing (an insert).
 *  - filled from the values capture saw (the snapshot rows);
 *  - after a restart (nothing seen yet), re-read at the source;
 *  - REPLICA IDENTITY FULL: taken from the old row the source sends (no re-read);
 *  - a row updated and deleted in one transaction: not fillable, counted as a miss, and gone at the end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import '../connectors/index.js';
import { parseConfig } from '../src/core/config/load.js';
import { Runtime } from '../src/runtime.js';
import { createDb, deleteTopics, dropDb, dropSlots, PG, uid, waitFor } from './helpers.js';

const MARIA = { host: '127.0.0.1', port: 3306, user: 'root' };

test('a MariaDB target gets the unchanged TOASTed values of an update (filled from what capture saw, re-read at the source, or the FULL old row); a row gone is a counted miss', async (t) => {
  const id = uid();
  const prefix = `t${id}`;
  const sourceDb = `syncline_t_${id}_src`;
  const mdb = `syncline_t_${id}_maria`;
  await createDb(sourceDb);
  const maria = await mysql.createConnection({ ...MARIA });
  await maria.query(`CREATE DATABASE ${mdb}`);
  const src = new pg.Pool({ ...PG, database: sourceDb, max: 3 });
  let rt: Runtime | undefined;
  t.after(async () => {
    await rt?.stop().catch(() => undefined);
    await src.end();
    await dropSlots(prefix);
    await dropDb(sourceDb);
    await deleteTopics(prefix).catch(() => undefined);
    await maria.query(`DROP DATABASE IF EXISTS ${mdb}`);
    await maria.end();
  });

  // 100 KB of hex from random md5s: too big to stay in the row even compressed, so TOASTed out of line.
  const big = `(select string_agg(md5(random()::text || g || i), '') from generate_series(1, 3200) g)`;
  await src.query(`create table docs (id bigint primary key, name text not null, body text, bin bytea);
    create table fulls (id bigint primary key, name text not null, body text);
    alter table fulls replica identity full`);
  await src.query(`insert into docs select i, 'doc ' || i, ${big}, decode(${big}, 'hex') from generate_series(1, 6) i`);
  await src.query(`insert into fulls select i, 'full ' || i, ${big} from generate_series(1, 2) i`);
  const stored = await src.query(`select count(*)::int as n from docs where pg_column_size(body) > 2000`);
  assert.equal(stored.rows[0].n, 6, 'the test values are stored out of line');

  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 2 },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 }, batch: { size: 100 }, conflict: { strategy: 'source-wins' } },
    pipelines: {
      'to-maria': {
        source: { type: 'postgres', connection: { ...PG, database: sourceDb }, slot: `${prefix}_toast`, publication: `${prefix}_toast`, snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
        target: { type: 'mariadb', connection: { ...MARIA, database: mdb }, poolSize: 2 },
        tables: [
          { source: 'public.docs', target: `${mdb}.docs` },
          { source: 'public.fulls', target: `${mdb}.fulls` },
        ],
      },
    },
  };
  const start = async () => {
    rt = new Runtime(parseConfig(JSON.stringify(doc), join(mkdtempSync(join(tmpdir(), 'syncline-toast-')), 'config.yaml'), {}), new Set(['capture', 'process', 'sink']));
    const { done } = await rt.start();
    done.then(() => undefined, (err: unknown) => (failed = err));
    return rt;
  };
  let last = '';
  let failed: unknown;
  t.after(() => { if (last) console.log(last); });
  const toast = () => rt!.pipelines[0]!.capture!.stats.toast;
  const same = async (table: string, ids: number[]) => {
    if (failed) throw failed;
    const s = await src.query(`select id::int, name, md5(body) as body${table === 'docs' ? ', md5(bin) as bin' : ''} from ${table} where id = any($1) order by id`, [ids]);
    const [rows] = (await maria.query(`SELECT id, name, md5(body) AS body${table === 'docs' ? ', md5(bin) AS bin' : ''} FROM ${mdb}.${table} WHERE id IN (${ids.join(',')}) ORDER BY id`).catch(() => [[]])) as unknown as [Record<string, unknown>[]];
    const a = JSON.stringify(rows.map((r) => ({ ...r, id: Number(r.id) })));
    const b = JSON.stringify(s.rows);
    if (a !== b) last = `${table}: MariaDB ${a} PostgreSQL ${b}`;
    return a === b ? true : null;
  };

  // 1. Snapshot, then updates of `name` only: the values come from what capture saw in the snapshot.
  await start();
  await waitFor('the snapshot in MariaDB', () => same('docs', [1, 2, 3, 4, 5, 6]), 120_000, 500);
  await maria.query(`DELETE FROM ${mdb}.docs WHERE id = 2`); // the target lost row 2: the update must insert it whole
  await src.query(`update docs set name = name || ' (renamed)' where id in (1, 2)`);
  await waitFor('the renamed rows, whole, in MariaDB', () => same('docs', [1, 2]), 60_000, 300);
  assert.equal(toast().cache, 2, JSON.stringify(toast()));
  assert.equal(toast().reselect, 0);

  // 2. A restart forgets what capture saw: the values are re-read at the source.
  await rt!.stop();
  await start();
  await maria.query(`DELETE FROM ${mdb}.docs WHERE id = 3`);
  await src.query(`update docs set name = name || ' (again)' where id in (3, 4)`);
  await waitFor('rows 3 and 4, whole, in MariaDB', () => same('docs', [3, 4]), 60_000, 300);
  assert.equal(toast().reselect, 2, JSON.stringify(toast()));

  // 3. REPLICA IDENTITY FULL: the old row carries the value; no re-read.
  await maria.query(`DELETE FROM ${mdb}.fulls WHERE id = 1`).catch(() => undefined);
  await src.query(`update fulls set name = 'full renamed' where id = 1`);
  await waitFor('the FULL table row, whole, in MariaDB', () => same('fulls', [1, 2]), 60_000, 300);
  assert.equal(toast().reselect, 2, `the old row filled it: ${JSON.stringify(toast())}`);

  // 4. Updated, then deleted in the same transaction: nothing to fill from (a miss), and the row is gone at the end.
  await src.query(`begin; update docs set name = 'gone soon' where id = 5; delete from docs where id = 5; commit`);
  await waitFor('row 5 deleted in MariaDB', async () => {
    const [rows] = (await maria.query(`SELECT id FROM ${mdb}.docs WHERE id = 5`)) as unknown as [unknown[]];
    return rows.length === 0 ? true : null;
  }, 60_000, 300);
  assert.equal(toast().miss, 1, JSON.stringify(toast()));
  assert.ok(await same('docs', [1, 2, 3, 4, 6]));
  assert.equal(rt!.pipelines[0]!.applier!.stats.deadLettered, 0);
});
