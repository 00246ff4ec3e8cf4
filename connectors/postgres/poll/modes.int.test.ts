/**
 * The polling source's tracking modes against a real PostgreSQL, under concurrent writes: what it
 * emits, applied as a sink applies it (src/capture/poll/harness.ts), equals the table; timestamp
 * mode catches same-timestamp rows and a transaction that commits after a pass moved past its
 * timestamp (and misses it without overlap: the overlap is what catches it); version mode; hash mode
 * finds deletes, splits growing chunks, resumes from its stored state, and reads a table again as a
 * snapshot when its chunk files are lost; confirmed reaches position(), with passes that change nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { createDb, dropDb, PG, sleep, uid, waitFor } from '../../../test/helpers.js';
import { PollSource } from '../../../src/capture/poll/poll-source.js';
import { pollTableSpec, type PollTableConfig } from '../../../src/capture/poll/spec.js';
import { applyChanges, liveRows, MemoryHandler, MemoryOffsets } from '../../../src/capture/poll/harness.js';
import { positionToBigInt, type Row } from '../../../src/core/envelope.js';
import { keyString } from '../../../src/sink/sink.js';
import { canonicalTableName } from '../../../src/core/names.js';
import { PgPollDialect } from './dialect.js';

const log = pino({ level: 'silent' });

interface Run {
  source: PollSource;
  handler: MemoryHandler;
  done: Promise<void>;
}

function start(db: string, offsets: MemoryOffsets, stateDir: string, tables: Record<string, Partial<PollTableConfig>>, opts: { intervalMs?: number; pageSize?: number } = {}): Promise<Run> {
  const parsed = Object.fromEntries(Object.entries(tables).map(([k, v]) => [k, pollTableSpec.parse(v)]));
  const source = new PollSource(new PgPollDialect({ ...PG, database: db, ssl: false, sslVerify: true }, 'poll-test'), {
    pipeline: 'poll-test', log, streamId: 'postgres_poll_test', intervalMs: opts.intervalMs ?? 100, pageSize: opts.pageSize ?? 7, stateDir, tables: parsed, batchSize: 100, lingerMs: 0,
  });
  const handler = new MemoryHandler(offsets, source);
  return (async () => {
    await source.connect();
    await source.describe(Object.keys(tables).map((name) => ({ source: canonicalTableName(name) })));
    const done = source.run(handler);
    done.catch(() => undefined);
    return { source, handler, done };
  })();
}

async function stop(r: Run): Promise<void> {
  await r.source.quiesce();
  await r.source.stop();
  await r.done;
}

/** Wait until a pass that began after now is acknowledged. */
async function nextPass(r: Run): Promise<void> {
  const target = await r.source.position();
  await waitFor(`confirmed to reach ${target}`, async () => r.source.confirmed !== '' && positionToBigInt(r.source.confirmed) >= positionToBigInt(target), 30_000, 20);
}

/** The table's rows as the source's dialect reads them (canonical), by key string. */
async function tableRows(db: string, table: string, key: string[]): Promise<Map<string, Row>> {
  const d = new PgPollDialect({ ...PG, database: db, ssl: false, sslVerify: true }, 'check');
  await d.connect();
  try {
    const rel = await d.describe({ source: table }, undefined, 'check');
    const rows = await d.query(`SELECT ${rel.columns.map((c) => d.select(c)).join(', ')} FROM ${rel.from}`, []);
    const out = new Map<string, Row>();
    for (const raw of rows) {
      const row: Row = {};
      rel.columns.forEach((c, i) => (row[c.name] = d.canonical(raw[i], c)));
      out.set(keyString(Object.fromEntries(key.map((k) => [k, row[k]!]))), row);
    }
    return out;
  } finally {
    await d.close();
  }
}

function assertConverged(model: Map<string, Row>, table: Map<string, Row>): void {
  assert.equal(model.size, table.size, `rows: emitted model ${model.size}, table ${table.size}`);
  for (const [k, row] of table) assert.deepEqual(model.get(k), row, `row ${k}`);
}

async function withDb(t: { after(fn: () => Promise<void>): void }): Promise<{ db: string; pool: pg.Pool; stateDir: string }> {
  const db = `syncline_t_${uid()}_poll`;
  await createDb(db);
  const pool = new pg.Pool({ ...PG, database: db, max: 6, options: '-c TimeZone=UTC' });
  // pool.end() resolves before its clients' connections are closed: the drop below (WITH FORCE) can
  // terminate one that is still closing, whose error then has no listener (an uncaught exception).
  pool.on('connect', (c) => c.on('error', () => undefined));
  const stateDir = mkdtempSync(join(tmpdir(), 'syncline-poll-'));
  t.after(async () => {
    await pool.end();
    await dropDb(db);
    rmSync(stateDir, { recursive: true, force: true });
  });
  return { db, pool, stateDir };
}

test('timestamp mode: same-timestamp rows and a transaction committing after the watermark moved past it are caught by the overlap; unchanged rows are not emitted twice', async (t) => {
  const { db, pool, stateDir } = await withDb(t);
  await pool.query(`create table ts (id int primary key, v text, updated_at timestamptz not null)`);
  await pool.query(`insert into ts select g, 'v' || g, timestamptz '2026-01-01 00:00:00+00' from generate_series(1, 20) g`);

  for (const overlapMs of [3000, 0]) {
    await pool.query(`delete from ts where id > 20`);
    const offsets = new MemoryOffsets();
    const r = await start(db, offsets, stateDir, { 'public.ts': { mode: 'timestamp', column: 'updated_at', overlapMs } });
    await nextPass(r);
    assert.equal(r.handler.changes.filter((e) => e.op === 'r').length, 20);
    assert.equal(r.handler.changes.filter((e) => e.op === 'm').length, 1);

    // Same timestamp as the watermark (rows 1–20 all have it): a '>' alone would skip row 101.
    await pool.query(`insert into ts values (100, 'a', now())`);
    await nextPass(r);
    const same = (await pool.query(`select updated_at from ts where id = 100`)).rows[0].updated_at as Date;
    await pool.query(`insert into ts values (101, 'same', $1)`, [same]);
    await nextPass(r);

    // A transaction takes its timestamp now and commits after a pass has moved the watermark past it.
    const late = await pool.connect();
    await late.query('begin');
    await late.query(`insert into ts values (200, 'late', clock_timestamp())`);
    await sleep(20);
    await pool.query(`insert into ts values (201, 'after', clock_timestamp())`);
    await nextPass(r);
    assert.ok(r.handler.changes.some((e) => e.after?.id === 201), 'row 201 seen: the watermark is past row 200\'s timestamp');
    await late.query('commit');
    late.release();
    await nextPass(r);
    await nextPass(r);
    await stop(r);

    const seen = (id: number) => r.handler.changes.filter((e) => e.op === 'u' && e.after?.id === id).length;
    if (overlapMs > 0) {
      assert.equal(seen(101), 1, 'same-timestamp row 101 emitted once');
      assert.equal(seen(200), 1, 'late-committing row 200 emitted once');
      assert.equal(seen(100), 1, 'row 100 emitted once, though read again in the overlap');
      assertConverged(liveRows(applyChanges(r.handler.changes, ['id'])), await tableRows(db, 'public.ts', ['id']));
    } else {
      // Without overlap the same scenario loses both: what the test above proves is the overlap's doing.
      assert.equal(seen(101), 0, 'without overlap the same-timestamp row is missed');
      assert.equal(seen(200), 0, 'without overlap the late transaction is missed');
    }
  }
});

test('version mode under concurrent writers: every row converges; hard deletes are not seen', async (t) => {
  const { db, pool, stateDir } = await withDb(t);
  await pool.query(`create sequence ver; create table vt (id int primary key, v text, n int, version bigint not null default nextval('ver'));
    create function bump() returns trigger language plpgsql as $$ begin new.version := nextval('ver'); return new; end $$;
    create trigger vt_bump before update on vt for each row execute function bump();
    insert into vt (id, v, n) select g, 'v' || g, 0 from generate_series(1, 50) g;`);
  const offsets = new MemoryOffsets();
  const r = await start(db, offsets, stateDir, { 'public.vt': { mode: 'version', column: 'version', overlap: 100 } });
  let stopWriters = false;
  const writer = async (w: number) => {
    for (let i = 0; !stopWriters; i++) {
      const id = ((i * 7 + w * 13) % 80) + 1;
      await pool.query(`insert into vt (id, v, n) values ($1, $2, 0) on conflict (id) do update set v = excluded.v, n = vt.n + 1`, [id, `w${w}-${i}`]);
      if (i % 5 === 0) await sleep(5);
    }
  };
  const writers = [0, 1, 2].map(writer);
  await sleep(2000);
  stopWriters = true;
  await Promise.all(writers);
  await nextPass(r);
  await nextPass(r);
  assertConverged(liveRows(applyChanges(r.handler.changes, ['id'])), await tableRows(db, 'public.vt', ['id']));
  // A hard delete leaves no row with a higher version: version mode cannot see it (README says so).
  await pool.query(`delete from vt where id = 1`);
  await nextPass(r);
  await stop(r);
  assert.equal(r.handler.changes.filter((e) => e.op === 'd').length, 0);
  assert.ok(liveRows(applyChanges(r.handler.changes, ['id'])).has(keyString({ id: 1 })));
});

test('hash mode under concurrent writers: inserts, updates and deletes across chunks converge; stop/start resumes from the stored state; lost chunk files mean a snapshot with a sweep', async (t) => {
  const { db, pool, stateDir } = await withDb(t);
  await pool.query(`create table ht (a int, b text, v text, n numeric(10,2), primary key (b, a));
    insert into ht select g, 'k' || (g % 4), 'v' || g, g / 3.0 from generate_series(1, 60) g;`);
  const offsets = new MemoryOffsets();
  const cfg = { 'public.ht': { mode: 'hash' as const, chunkSize: 10 } };
  const r = await start(db, offsets, stateDir, cfg);
  await nextPass(r);
  const stored = () => (offsets.records.get('postgres_poll_test')!.state as { tables: Record<string, { chunks: { count: number }[] }> }).tables['public.ht']!.chunks;
  assert.equal(stored().length, 7, JSON.stringify(stored())); // 60 rows in chunks of 10, and the open end

  let stopWriters = false;
  const writer = async (w: number) => {
    for (let i = 0; !stopWriters; i++) {
      const a = ((i * 11 + w * 17) % 150) + 1;
      const k = i % 10;
      if (k < 4) await pool.query(`insert into ht values ($1, $2, 'new', 1) on conflict do nothing`, [a, 'k' + (a % 4)]);
      else if (k < 8) await pool.query(`update ht set v = v || '.', n = n + 1 where a = $1`, [a]);
      else await pool.query(`delete from ht where a = $1`, [a]);
      if (i % 4 === 0) await sleep(5);
    }
  };
  const writers = [0, 1, 2].map(writer);
  await sleep(2500);
  stopWriters = true;
  await Promise.all(writers);
  await nextPass(r);
  const deletes = r.handler.changes.filter((e) => e.op === 'd').length;
  assert.ok(deletes > 0, 'deletes found');
  assertConverged(liveRows(applyChanges(r.handler.changes, ['b', 'a'])), await tableRows(db, 'public.ht', ['b', 'a']));
  assert.ok(stored().every((c) => c.count <= 10), 'grown chunks are split');
  // Nothing changed: a pass reads only digests and emits nothing, but still moves confirmed.
  const before = r.handler.changes.length;
  const confirmedBefore = r.source.confirmed;
  await nextPass(r);
  assert.equal(r.handler.changes.length, before);
  assert.ok(positionToBigInt(r.source.confirmed) > positionToBigInt(confirmedBefore));
  await stop(r);

  // Changes while stopped (deletes among them) are found after a restart from the stored state.
  await pool.query(`delete from ht where a in (select a from ht order by a limit 5); update ht set v = 'while-stopped' where a % 9 = 0; insert into ht values (1000, 'k0', 'x', 0)`);
  const r2 = await start(db, offsets, stateDir, cfg);
  await nextPass(r2);
  await stop(r2);
  assert.equal(r2.handler.changes.filter((e) => e.op === 'r').length, 0, 'no snapshot after a restart with the state intact');
  assert.ok(r2.handler.changes.filter((e) => e.op === 'd').length >= 5);
  const firstNew = r2.handler.changes[0]!;
  const lastOld = r.handler.changes.at(-1)!;
  assert.ok(positionToBigInt(firstNew.source.commitPos) > positionToBigInt(lastOld.source.commitPos), 'positions after the restart are above those before it');
  const all = [...r.handler.changes, ...r2.handler.changes];
  assertConverged(liveRows(applyChanges(all, ['b', 'a'])), await tableRows(db, 'public.ht', ['b', 'a']));

  // The per-key hashes are lost (a new machine): a snapshot, whose end marker sweeps what is gone.
  rmSync(stateDir, { recursive: true, force: true });
  await pool.query(`delete from ht where a in (select a from ht order by a limit 3)`);
  const r3 = await start(db, offsets, stateDir, cfg);
  await nextPass(r3);
  await stop(r3);
  assert.ok(r3.handler.changes.some((e) => e.op === 'r') && r3.handler.changes.some((e) => e.op === 'm'));
  assertConverged(liveRows(applyChanges([...all, ...r3.handler.changes], ['b', 'a'])), await tableRows(db, 'public.ht', ['b', 'a']));
});

test('a view and a query are polled with a configured key; position() is reached by confirmed while nothing changes', async (t) => {
  const { db, pool, stateDir } = await withDb(t);
  await pool.query(`create table base (id int primary key, v text, hidden boolean default false, updated_at timestamptz default clock_timestamp());
    insert into base (id, v) select g, 'v' || g from generate_series(1, 30) g;
    create view visible as select id, v, updated_at from base where not hidden;`);
  const offsets = new MemoryOffsets();
  const parsed = { 'public.visible': pollTableSpec.parse({ mode: 'hash', chunkSize: 10 }), 'app.q': pollTableSpec.parse({ mode: 'timestamp', column: 'updated_at', query: 'select id, upper(v) as v, updated_at from base' }) };
  const source = new PollSource(new PgPollDialect({ ...PG, database: db, ssl: false, sslVerify: true }, 'poll-test'), {
    pipeline: 'poll-test', log, streamId: 's', intervalMs: 50, pageSize: 10, stateDir, tables: parsed, batchSize: 100, lingerMs: 0,
  });
  await source.connect();
  await assert.rejects(source.describe([{ source: 'public.visible' }, { source: 'app.q' }]), /POLL_KEY_REQUIRED|no primary key/);
  const described = await source.describe([{ source: 'public.visible', key: ['id'] }, { source: 'app.q', key: ['id'] }]);
  assert.deepEqual(described.map((d) => d.columns.map((c) => c.name)), [['id', 'v', 'updated_at'], ['id', 'v', 'updated_at']]);
  const handler = new MemoryHandler(offsets, source);
  const done = source.run(handler);
  const r = { source, handler, done };
  await nextPass(r);
  await pool.query(`update base set hidden = true where id <= 3; update base set v = 'changed', updated_at = clock_timestamp() where id = 10`);
  await nextPass(r);
  const ofTable = (table: string) => r.handler.changes.filter((e) => e.source.table === table);
  assert.equal(ofTable('visible').filter((e) => e.op === 'd').length, 3, 'rows leaving the view are deletes (hash)');
  // The last change of row 10 (the first incremental pass after the snapshot also re-reads its overlap).
  assert.equal(ofTable('q').filter((e) => e.op === 'u' && e.after?.id === 10).at(-1)?.after?.v, 'CHANGED');
  for (let i = 0; i < 3; i++) {
    const n = r.handler.changes.length;
    await nextPass(r);
    assert.equal(r.handler.changes.length, n, 'an idle pass emits nothing');
  }
  await stop(r);
});

/**
 * A hash-mode PollSource of `table` (chunks of 10 rows) that fails, as a kill would, right after it hands a
 * change on once `crashNext()` was called; `restart()` starts another on the same offsets and chunk files.
 */
async function crashable(db: string, stateDir: string, table: string, streamId: string, intervalMs: number) {
  const offsets = new MemoryOffsets();
  const tables = { [table]: pollTableSpec.parse({ mode: 'hash', chunkSize: 10 }) };
  const start = async (onChange?: () => void) => {
    const source = new PollSource(new PgPollDialect({ ...PG, database: db, ssl: false, sslVerify: true }, 'poll-test'), {
      pipeline: 'poll-test', log, streamId, intervalMs, pageSize: 100, stateDir, tables, batchSize: 100, lingerMs: 0,
    });
    const handler = new MemoryHandler(offsets, source, true, onChange);
    await source.connect();
    await source.describe([{ source: table }]);
    const done = source.run(handler);
    done.catch(() => undefined);
    return { source, handler, done };
  };
  let crash = false;
  const first = await start(() => {
    if (crash) throw new Error('killed after the change was handed on');
  });
  return { first, crashNext: () => void (crash = true), restart: () => start() };
}

test('a pass cut short (its changes handed on, the pass never acknowledged) is never numbered again, even with pass numbers ahead of the clock', async (t) => {
  const { db, pool, stateDir } = await withDb(t);
  await pool.query(`create table ct (id int primary key, v text); insert into ct select g, 'v' || g from generate_series(1, 10) g`);
  const c = await crashable(db, stateDir, 'public.ct', 'crash', 5);
  const { source: s1, handler: h1, done: done1 } = c.first;
  // Passes every few ms: their numbers run ahead of the clock (seconds since the epoch).
  const passOf = (p: string) => Number(positionToBigInt(p) >> 32n);
  await waitFor('pass numbers ahead of the clock', async () => s1.confirmed !== '' && passOf(s1.confirmed) > Date.now() / 1000 + 5, 30_000, 20);
  c.crashNext();
  await pool.query(`update ct set v = 'x' where id = 3`);
  await assert.rejects(done1, /killed after the change/);
  const cut = passOf(h1.changes.at(-1)!.source.commitPos);
  assert.ok(cut > passOf(s1.confirmed), 'the cut pass was not acknowledged');
  await s1.stop();

  const { source: s2, handler: h2, done: done2 } = await c.restart();
  // (With the rest of the table: after a cut pass the next one emits every row, see the next test.)
  const again = () => h2.changes.find((e) => e.after?.id === 3);
  await waitFor('the change again', async () => again() !== undefined, 30_000, 20);
  await s2.quiesce();
  await s2.stop();
  await done2;
  assert.equal(again()!.after?.v, 'x');
  assert.ok(passOf(again()!.source.commitPos) > cut, `the change is emitted again in a later pass (${passOf(again()!.source.commitPos)} > ${cut}), above what Kafka may hold of the cut pass`);
});

test('after a pass cut short, the next pass reads every chunk and emits every row: a row changed by the cut pass and changed back is sent again', async (t) => {
  // The cut pass's change may be applied at the target; the stored state is the pass before it, and a row
  // changed back since (or deleted and inserted again as it was) has that state's hash: compared with it
  // alone, the target would keep the cut pass's value for good.
  const { db, pool, stateDir } = await withDb(t);
  await pool.query(`create table cb (id int primary key, v text); insert into cb select g, 'v' || g from generate_series(1, 25) g`);
  const c = await crashable(db, stateDir, 'public.cb', 'changed-back', 20);
  const { source: s1, handler: h1, done: done1 } = c.first;
  await waitFor('a pass after the snapshot', async () => s1.stats.passes >= 2, 30_000, 20);
  c.crashNext();
  await pool.query(`update cb set v = 'x' where id = 3`);
  await assert.rejects(done1, /killed after the change/);
  assert.equal(h1.changes.at(-1)!.after?.v, 'x', 'the cut pass handed the change on');
  await s1.stop();
  await pool.query(`update cb set v = 'v3' where id = 3`);

  const { source: s2, handler: h2, done: done2 } = await c.restart();
  try {
    await waitFor('the first pass after the restart', async () => s2.stats.passes >= 1, 30_000, 20);
    const first = h2.changes.map((e) => `${e.op}:${String(e.after?.id)}:${String(e.after?.v)}`).sort();
    assert.deepEqual(first, Array.from({ length: 25 }, (_, i) => `u:${i + 1}:v${i + 1}`).sort(), 'every row emitted again, id 3 with its value as it is now');
    const at = h2.changes.length;
    await waitFor('another pass', async () => s2.stats.passes >= 3, 30_000, 20);
    assert.equal(h2.changes.length, at, 'then nothing while nothing changes');
  } finally {
    await s2.quiesce();
    await s2.stop();
    await done2;
  }
});

test('ALTER TABLE while polling: the stage is told the new columns and the next pass reads them (hash and timestamp)', async (t) => {
  const { db, pool, stateDir } = await withDb(t);
  await pool.query(`create table al (id int primary key, v text, updated_at timestamptz not null default clock_timestamp());
    insert into al (id, v) select g, 'v' || g from generate_series(1, 12) g;
    create table al2 (id int primary key, v text); insert into al2 select g, 'w' || g from generate_series(1, 12) g;`);
  const r = await start(db, new MemoryOffsets(), stateDir, { 'public.al': { mode: 'timestamp', column: 'updated_at' }, 'public.al2': { mode: 'hash', chunkSize: 10 } });
  await nextPass(r);
  await pool.query(`alter table al add column extra text default 'd'; alter table al2 add column extra int default 7; update al set v = 'after', updated_at = clock_timestamp() where id = 1`);
  await nextPass(r);
  assert.deepEqual(r.handler.columnChanges.sort(), ['public.al2: id, v, extra', 'public.al: id, v, updated_at, extra']);
  const last = (table: string, id: number) => r.handler.changes.filter((e) => e.source.table === table && e.after?.id === id).at(-1)!.after!;
  assert.deepEqual(last('al', 1), { ...last('al', 1), v: 'after', extra: 'd' });
  assert.equal(last('al2', 5).extra, 7, 'hash mode: every row emitted again with the new column');
  await pool.query(`alter table al2 drop column v`);
  await nextPass(r);
  assert.ok(!('v' in last('al2', 5)), 'a dropped column is gone from the next pass');
  await stop(r);
  assertConverged(liveRows(applyChanges(r.handler.changes.filter((e) => e.source.table === 'al2'), ['id'])), await tableRows(db, 'public.al2', ['id']));
});
