/**
 * End to end: a real pipeline polling PostgreSQL (postgres-poll) → Kafka → PostgreSQL, run in-process
 * with the Runtime (capture, process, sink): a snapshot of existing rows, concurrent inserts, updates
 * and deletes (hash mode) and inserts and updates (timestamp mode), a stop and a new start in the
 * middle with writes while nothing runs; the target converges to the source's per-row content
 * (canonical row hashes, read through the sinks' readRows), and the restart read no table again as a
 * snapshot (it resumed from the stored watermarks and chunks).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import '../../index.js';
import { parseConfig } from '../../../src/core/config/load.js';
import { Runtime } from '../../../src/runtime.js';
import { rowHash } from '../../../src/core/hash.js';
import { positionToBigInt, type Row } from '../../../src/core/envelope.js';
import type { Source } from '../../../src/capture/source.js';
import { PostgresSink } from '../sink.js';
import { createDb, deleteTopics, dropDb, PG, uid, waitFor } from '../../../test/helpers.js';

const log = pino({ level: 'silent' });

async function fingerprint(sink: PostgresSink, table: string, keys: Row[]): Promise<{ count: number; sha: string }> {
  const rows = keys.length ? await sink.readRows(table, keys) : new Map<string, Row>();
  const lines = [...rows.entries()].map(([k, r]) => `${k}\t${rowHash(r)}`).sort();
  return { count: lines.length, sha: createHash('sha1').update(lines.join('\n')).digest('hex') };
}

test('a pipeline polling PostgreSQL converges on a PostgreSQL target through concurrent writes and a stop/start', async (t) => {
  const id = uid();
  const prefix = `t${id}`;
  const sourceDb = `syncline_t_${id}_src`;
  const targetDb = `syncline_t_${id}_dst`;
  await createDb(sourceDb);
  await createDb(targetDb);
  const stateDir = mkdtempSync(join(tmpdir(), 'syncline-poll-state-'));
  const src = new pg.Pool({ ...PG, database: sourceDb, max: 6 });
  const dst = new pg.Pool({ ...PG, database: targetDb, max: 1 });
  const conn = (database: string) => ({ ...PG, database, ssl: false, sslVerify: true });
  const srcRead = new PostgresSink({ type: 'postgres', connection: conn(sourceDb), autoCreate: false, autoEvolve: false, poolSize: 2, lockTimeoutMs: 10000 }, { pipeline: 'check', log });
  const dstRead = new PostgresSink({ type: 'postgres', connection: conn(targetDb), autoCreate: false, autoEvolve: false, poolSize: 2, lockTimeoutMs: 10000 }, { pipeline: 'check', log });
  let rt: Runtime | undefined;
  t.after(async () => {
    await rt?.stop().catch(() => undefined);
    await Promise.allSettled([srcRead.close(), dstRead.close(), src.end(), dst.end()]);
    await dropDb(sourceDb);
    await dropDb(targetDb);
    await deleteTopics(prefix).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  });

  await src.query(`
    create table items (id bigint primary key, name text not null, price numeric(12,2), tags text[], doc jsonb, at timestamptz, raw bytea);
    create table events (id int, kind text, payload text, updated_at timestamptz not null default clock_timestamp(), primary key (kind, id));
    insert into items select g, 'item ' || g, g * 1.25, array['a', 'b' || g], jsonb_build_object('g', g), timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute', decode(md5(g::text), 'hex') from generate_series(1, 400) g;
    insert into events (id, kind, payload) select g, 'k' || (g % 3), 'p' || g from generate_series(1, 200) g;`);

  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 3 },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 }, batch: { size: 500 } },
    pipelines: {
      polled: {
        source: {
          type: 'postgres-poll', connection: { ...PG, database: sourceDb }, intervalMs: 200, pageSize: 100, stateDir, lingerMs: 5,
          tables: { 'public.items': { mode: 'hash', chunkSize: 50 }, 'public.events': { mode: 'timestamp', column: 'updated_at', overlapMs: 2000 } },
        },
        target: { type: 'postgres', connection: { ...PG, database: targetDb } },
        conflict: { strategy: 'source-wins' },
        tables: [{ source: 'public.items' }, { source: 'public.events' }],
      },
    },
  };
  const file = join(mkdtempSync(join(tmpdir(), 'syncline-poll-')), 'config.yaml');
  writeFileSync(file, JSON.stringify(doc, null, 2));
  const config = parseConfig(JSON.stringify(doc), file, {});
  const startRt = async () => {
    rt = new Runtime(config, new Set(['capture', 'process', 'sink']));
    const { done } = await rt.start();
    const ended = done.then(() => Promise.reject(new Error('the runtime ended')), (err: unknown) => Promise.reject(err));
    ended.catch(() => undefined);
    return { done, ended };
  };

  let next = 1000;
  const writer = async (w: number, rounds: number) => {
    for (let i = 0; i < rounds; i++) {
      const r = (i * 7 + w * 13) % 10;
      if (r < 3) await src.query(`insert into items values ($1, 'new', 1.5, array['n'], '{"n": 1}', now(), '\\x00ff')`, [next++]);
      else if (r < 6) await src.query(`update items set name = $2, price = price + 1, tags = tags || 'u'::text where id = $1`, [((i * 31 + w) % 400) + 1, `w${w}-${i}`]);
      else if (r < 7) await src.query(`delete from items where id = $1`, [((i * 17 + w * 3) % 400) + 1]);
      else if (r < 9) await src.query(`update events set payload = payload || '!', updated_at = clock_timestamp() where id = $1`, [(i % 200) + 1]);
      else await src.query(`insert into events (id, kind, payload) values ($1, 'w', 'new') on conflict do nothing`, [next++]);
    }
  };

  const converged = async () => {
    const itemKeys = (await src.query('select id from items')).rows.map((r) => ({ id: BigInt(r.id as string) }));
    const eventKeys = (await src.query('select kind, id from events')).rows as Row[];
    const [si, ti, se, te] = await Promise.all([fingerprint(srcRead, 'public.items', itemKeys), fingerprint(dstRead, 'public.items', itemKeys).catch(() => null), fingerprint(srcRead, 'public.events', eventKeys), fingerprint(dstRead, 'public.events', eventKeys).catch(() => null)]);
    const counts = await dst.query('select (select count(*) from items)::int as items, (select count(*) from events)::int as events').then((r) => r.rows[0] as { items: number; events: number }).catch(() => null);
    return ti && te && si.sha === ti.sha && se.sha === te.sha && counts?.items === itemKeys.length && counts?.events === eventKeys.length ? { si, se } : null;
  };

  // First life: the snapshot, then concurrent writers.
  let life = await startRt();
  await Promise.race([Promise.all([0, 1, 2].map((w) => writer(w, 120))), life.ended]);
  await Promise.race([waitFor('the target to converge (first life)', converged, 120_000, 1000), life.ended]);
  const snapshotRows = rt!.pipelines[0]!.capture!.stats.snapshotRows;
  assert.ok(snapshotRows >= 500, `the first pass read both tables as a snapshot (${snapshotRows} rows, writers running)`);
  await rt!.stop();
  await life.done;

  // While nothing runs: inserts, updates, deletes.
  await Promise.all([3, 4].map((w) => writer(w, 60)));
  await src.query(`delete from items where id % 10 = 3`);

  // Second life resumes from the stored state: no snapshot, and it converges again.
  life = await startRt();
  await Promise.race([writer(5, 60), life.ended]);
  const ok = await Promise.race([waitFor('the target to converge (after the restart)', converged, 120_000, 1000), life.ended]);
  const capture = rt!.pipelines[0]!.capture!.stats;
  assert.equal(capture.snapshotRows, 0, `the restart read no table as a snapshot: ${JSON.stringify(capture)}`);
  assert.ok(ok.si.count > 300 && ok.se.count >= 200, JSON.stringify(ok));
  assert.equal(rt!.pipelines[0]!.applier!.stats.deadLettered, 0);
  // The real capture stage acknowledges passes that change nothing: confirmed reaches position()
  // (what a bounded run waits for) twice in a row with no write at all.
  const source = (rt!.pipelines[0]!.capture as unknown as { source: Source }).source;
  const produced = rt!.pipelines[0]!.capture!.stats.produced;
  for (let i = 0; i < 2; i++) {
    const target = await source.position!();
    await Promise.race([waitFor(`confirmed to reach ${target}`, async () => source.confirmed !== '' && positionToBigInt(source.confirmed) >= positionToBigInt(target), 30_000, 50), life.ended]);
  }
  assert.equal(rt!.pipelines[0]!.capture!.stats.produced, produced, 'idle passes produced nothing');
  await rt!.stop();
  await life.done;
});
