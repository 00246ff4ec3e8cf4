/**
 * End to end: a real syncline pipeline PostgreSQL → Kafka → MariaDB, run in-process with the Runtime
 * (capture, process, sink). A snapshot of existing rows, then concurrent inserts, updates and deletes;
 * the two sides converge: every row's canonical hash (src/core/hash.ts) is the same on both, the
 * source's read with the PostgreSQL sink's readRows, the target's with the MariaDB sink's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { pino } from 'pino';
import '../index.js';
import { parseConfig } from '../../src/core/config/load.js';
import { Runtime } from '../../src/runtime.js';
import { rowHash } from '../../src/core/hash.js';
import { keyString } from '../../src/sink/sink.js';
import type { Row } from '../../src/core/envelope.js';
import { PostgresSink } from '../postgres/sink.js';
import { MariadbSink } from './sink.js';
import { createDb, deleteTopics, dropDb, dropSlots, PG, uid, waitFor } from '../../test/helpers.js';

const MARIA = { host: '127.0.0.1', port: 3306, user: 'root' };
const log = pino({ level: 'silent' });

const SOURCE_DDL = `
  create table items (
    id bigint primary key, name varchar(40) not null, price numeric(12,2), qty int, small smallint, ratio real,
    score double precision, ok boolean, born date, at timestamp, atz timestamptz, t time, u uuid, doc jsonb,
    raw bytea, tags text[], nums bigint[], note text, updated_at timestamptz not null default clock_timestamp()
  );
  create table pairs (a int, b text, v text, updated_at timestamptz not null default clock_timestamp(), primary key (b, a));`;

/** One item row; `n` varies every column. */
const ITEM = `insert into items (id, name, price, qty, small, ratio, score, ok, born, at, atz, t, u, doc, raw, tags, nums, note)
  values ($1::bigint, 'item ' || $1::bigint || ' 🐘', ($1::bigint % 1000) + 0.25, $1::int, ($1::int % 100)::int2, 1.0 / ($1::int + 3), $1::float8 / 7,
          $1::bigint % 2 = 0, date '2024-02-29' + ($1::int % 400), timestamp '2024-01-01 10:00:00.123456' + $1::int * interval '1 second 1 microsecond',
          timestamptz '2024-01-01 10:00:00.5+02' + $1::int * interval '1 minute', time '12:00:00.25' + $1::int * interval '1 second',
          md5($1::text)::uuid, jsonb_build_object('id', $1::bigint, 'tags', jsonb_build_array('a', $1::bigint)), decode(md5($1::text), 'hex'),
          array['x', null, 'y ' || $1::bigint], array[$1::bigint * 1000000000000, -1], case when $1::bigint % 5 = 0 then null else 'n' || $1::bigint end)`;

/** Sorted (key, row hash) of every row, read through the sinks' readRows (the canonical forms). */
async function fingerprint(sink: PostgresSink | MariadbSink, table: string, keys: Row[]): Promise<{ count: number; sha: string }> {
  const rows = keys.length ? await sink.readRows(table, keys) : new Map<string, Row>();
  const lines = [...rows.entries()].map(([k, r]) => `${k}\t${rowHash(r)}`).sort();
  return { count: lines.length, sha: createHash('sha1').update(lines.join('\n')).digest('hex') };
}

test('a pipeline PostgreSQL → Kafka → MariaDB converges: snapshot, then concurrent inserts, updates and deletes; per-row canonical hashes equal', async (t) => {
  const id = uid();
  const prefix = `t${id}`;
  const sourceDb = `syncline_t_${id}_src`;
  const mdb = `syncline_t_${id}_maria`;
  await createDb(sourceDb);
  const admin = await mysql.createConnection({ ...MARIA });
  await admin.query(`CREATE DATABASE ${mdb}`);
  const src = new pg.Pool({ ...PG, database: sourceDb, max: 6 });
  const pgRead = new PostgresSink({ type: 'postgres', connection: { ...PG, database: sourceDb, ssl: false, sslVerify: true }, autoCreate: false, autoEvolve: false, poolSize: 2, lockTimeoutMs: 10000 }, { pipeline: 'check', log });
  const mariaRead = new MariadbSink({ type: 'mariadb', connection: { ...MARIA, database: mdb, ssl: false, sslVerify: true }, poolSize: 2, autoCreate: false, autoEvolve: false, lockTimeoutS: 10 }, { pipeline: 'check', log });
  let rt: Runtime | undefined;
  t.after(async () => {
    await rt?.stop().catch(() => undefined);
    await Promise.allSettled([pgRead.close(), mariaRead.close(), src.end()]);
    await dropSlots(prefix);
    await dropDb(sourceDb);
    await deleteTopics(prefix).catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${mdb}`);
    await admin.end();
  });

  await src.query(SOURCE_DDL);
  for (let i = 1; i <= 300; i++) await src.query(ITEM, [i]);
  await src.query(`insert into pairs (a, b, v) select g, 'b' || (g % 7), 'v' || g from generate_series(1, 200) g`);

  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 3 },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 }, batch: { size: 500 } },
    pipelines: {
      'to-maria': {
        source: { type: 'postgres', connection: { ...PG, database: sourceDb }, slot: `${prefix}_to_maria`, publication: `${prefix}_to_maria`, snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
        // autoCreate: the MariaDB tables are created from the changes' column types.
        target: { type: 'mariadb', connection: { ...MARIA, database: mdb }, poolSize: 4 },
        tables: [
          { source: 'public.items', target: `${mdb}.items` },
          { source: 'public.pairs', target: `${mdb}.pairs` },
        ],
      },
    },
  };
  const file = join(mkdtempSync(join(tmpdir(), 'syncline-maria-')), 'config.yaml');
  writeFileSync(file, JSON.stringify(doc, null, 2));
  rt = new Runtime(parseConfig(JSON.stringify(doc, null, 2), file, {}), new Set(['capture', 'process', 'sink']));
  const { done } = await rt.start();
  // A stage that fails ends the runtime: fail the test with its error instead of waiting.
  const ended = done.then(
    () => Promise.reject(new Error('the runtime ended')),
    (err: unknown) => Promise.reject(err),
  );
  ended.catch(() => undefined);
  // A dead-lettered change would keep the sides apart for good: fail at once, with its reason.
  let watching = true;
  const deadLetters: Promise<never> = (async (): Promise<never> => {
    while (watching) {
      const s = rt!.pipelines[0]?.applier?.stats;
      if (s && s.deadLettered > 0) throw new Error(`${s.deadLettered} changes dead-lettered (see the sink.record.failed log lines)`);
      await new Promise((r) => setTimeout(r, 200));
    }
    return new Promise<never>(() => undefined);
  })();
  deadLetters.catch(() => undefined);
  t.after(() => (watching = false));

  // Concurrent writers while the snapshot is applied and after: inserts, updates, deletes.
  let next = 1000;
  const worker = async (w: number) => {
    for (let i = 0; i < 150; i++) {
      const r = (i * 7 + w * 13) % 10;
      if (r < 4) await src.query(ITEM, [next++]);
      else if (r < 7) await src.query(`update items set name = 'w${w}-${i}', price = price + 1.01, tags = array['u', null], nums = nums || $2::bigint, note = null, updated_at = clock_timestamp() where id = $1`, [((i * 31 + w) % 300) + 1, -9223372036854775807n + BigInt(i)]);
      else if (r < 8) await src.query(`delete from items where id = $1`, [((i * 17 + w * 3) % 300) + 1]);
      else if (r < 9) await src.query(`update pairs set v = v || '!', updated_at = clock_timestamp() where a = $1`, [(i % 200) + 1]);
      else await src.query(`delete from pairs where a = $1`, [((i * 11 + w) % 200) + 1]);
    }
  };
  await Promise.race([Promise.all([0, 1, 2, 3].map(worker)), ended, deadLetters]);

  const keysOf = async (text: string) => (await src.query(text)).rows as Row[];
  const converged = async () => {
    const itemKeys = (await keysOf('select id from items')).map((r) => ({ id: BigInt(r.id as string) }));
    const pairKeys = await keysOf('select b, a from pairs');
    const [si, ti, sp, tp] = await Promise.all([
      fingerprint(pgRead, 'public.items', itemKeys),
      fingerprint(mariaRead, `${mdb}.items`, itemKeys).catch(() => null),
      fingerprint(pgRead, 'public.pairs', pairKeys),
      fingerprint(mariaRead, `${mdb}.pairs`, pairKeys).catch(() => null),
    ]);
    // The target holds no row the source lost either.
    const [[extra]] = (await admin.query(`SELECT (SELECT COUNT(*) FROM ${mdb}.items) AS items, (SELECT COUNT(*) FROM ${mdb}.pairs) AS pairs`).catch(() => [[{}]])) as unknown as [[{ items?: number; pairs?: number }]];
    return ti !== null && tp !== null && si.sha === ti.sha && sp.sha === tp.sha && Number(extra?.items) === itemKeys.length && Number(extra?.pairs) === pairKeys.length ? { si, sp } : null;
  };
  const ok = await Promise.race([waitFor('PostgreSQL and MariaDB to converge', converged, 180_000, 1000), ended, deadLetters]);
  assert.ok(ok.si.count > 300 && ok.sp.count > 100, JSON.stringify(ok));
  const stats = rt.pipelines[0]!.applier!.stats;
  assert.equal(stats.deadLettered, 0, JSON.stringify(stats));
  // A spot check that the values are the source's, not only equal hashes of something.
  const one = (await mariaRead.readRows(`${mdb}.items`, [{ id: 2n }])).get(keyString({ id: 2n }));
  const src2 = (await pgRead.readRows('public.items', [{ id: 2n }])).get(keyString({ id: 2n }));
  assert.deepEqual(one, src2);
  await rt.stop();
  await done;
});
