/**
 * End to end on the real stack: PostgreSQL → Kafka → files through the real pipeline, for JSON
 * Lines, CSV and Parquet, read back with readers independent of the sink (JSON.parse, a CSV parser
 * written here, hyparquet). Checked: the last row of each key (by position) is the source's row or
 * its delete (op d), no change twice, every manifest file complete (rows, sha256) and no file outside
 * the manifest; files rolled by size (rollBytes) and by time (rollMs, lingerMs). Then a sink process killed
 * with SIGKILL three times mid-run while a reader follows the manifest: every change logged at the
 * source appears exactly once, and the reader never met a partial or unlisted file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import '../index.js';
import { parseConfig } from '../../src/core/config/load.js';
import { Runtime } from '../../src/runtime.js';
import { createDb, deleteTopics, dropDb, dropSlots, PG, sleep, soak, spawnCli, uid, waitFor } from '../../test/helpers.js';

const DDL = `create sequence seq;
create table items (id int primary key, seq bigint not null, label text, amount numeric(12,2), flag boolean, at timestamptz, data bytea, tags text[]);
create table log (n bigserial primary key, id int not null, seq bigint, op text not null);
create function log_items() returns trigger language plpgsql as $$ begin
  if tg_op = 'DELETE' then insert into log (id, seq, op) values (old.id, null, 'd');
  else insert into log (id, seq, op) values (new.id, new.seq, 'w'); end if; return null; end $$;
create trigger log_items after insert or update or delete on items for each row execute function log_items();`;

type Rec = Record<string, unknown>;

/** A CSV reader independent of the sink's: RFC 4180, an unquoted empty field is null. */
function readCsv(text: string): Rec[] {
  const recs: (string | null)[][] = [];
  let row: (string | null)[] = [];
  let field = '';
  let quoted = false;
  let inQuotes = false;
  const end = () => {
    row.push(field === '' && !quoted ? null : field);
    field = '';
    quoted = false;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inQuotes) {
      if (ch === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') inQuotes = false;
      else field += ch;
    } else if (ch === '"') (inQuotes = true), (quoted = true);
    else if (ch === ',') end();
    else if (ch === '\r' && text[i + 1] === '\n') {
      end();
      recs.push(row);
      row = [];
      i++;
    } else field += ch;
  }
  assert.ok(!inQuotes && row.length === 0 && field === '', 'the CSV file ends with a complete record');
  const [head, ...body] = recs;
  return body.map((r) => Object.fromEntries(head!.map((h, j) => [h!, r[j] ?? null])));
}

async function readFileRows(format: string, path: string): Promise<Rec[]> {
  const buf = readFileSync(path);
  if (format === 'jsonl') return buf.toString('utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Rec);
  if (format === 'csv') return readCsv(buf.toString('utf8'));
  const hp = await import('hyparquet');
  return hp.parquetReadObjects({ file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer, utf8: false }); // BYTE_ARRAY without UTF8 annotation stays bytes
}

interface Entry { file: string; rows: number; bytes: number; sha256: string }

/** Every file the manifest lists, checked (rows, bytes, sha256) and read; then no data file outside it. */
async function readAll(format: string, dir: string, opts: { strict: boolean }): Promise<{ rows: Rec[]; files: number }> {
  const folder = join(dir, 'public.items');
  const mpath = join(folder, '_manifest.jsonl');
  if (!existsSync(mpath)) return { rows: [], files: 0 };
  const text = readFileSync(mpath, 'utf8');
  const lines = text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter((l) => l !== '');
  const entries = lines.map((l) => JSON.parse(l) as Entry);
  const rows: Rec[] = [];
  for (const e of entries) {
    const buf = readFileSync(join(folder, e.file)); // a listed file is there, complete
    assert.equal(buf.length, e.bytes, `${e.file}: size as in the manifest`);
    assert.equal(createHash('sha256').update(buf).digest('hex'), e.sha256, `${e.file}: sha256 as in the manifest`);
    const got = await readFileRows(format, join(folder, e.file));
    assert.equal(got.length, e.rows, `${e.file}: rows as in the manifest`);
    rows.push(...got);
  }
  if (opts.strict) {
    const listed = new Set(entries.map((e) => e.file));
    for (const sub of readdirSync(folder)) {
      if (sub === '_manifest.jsonl') continue;
      for (const name of readdirSync(join(folder, sub))) assert.ok(listed.has(`${sub}/${name}`), `${sub}/${name} is in the manifest (nothing partial or unlisted left)`);
    }
  }
  return { rows, files: entries.length };
}

const str = (v: unknown) => (v === null || v === undefined ? null : typeof v === 'object' && v instanceof Date ? v.toISOString() : String(v));

/** The last row per key by position; asserts no (key, position) twice. */
function lastByKey(rows: Rec[]): Map<string, Rec> {
  const seen = new Set<string>();
  const last = new Map<string, Rec>();
  for (const r of [...rows].sort((a, b) => (String(a._position) < String(b._position) ? -1 : String(a._position) > String(b._position) ? 1 : 0))) {
    const id = `${r._key as string} ${r._position as string}`;
    assert.ok(!seen.has(id), `change ${id} written once`);
    seen.add(id);
    last.set(String(r._key), r);
  }
  return last;
}

async function setup(t: { after(fn: () => Promise<void>): void }, target: Record<string, unknown>) {
  const id = uid();
  const prefix = `t${id}`;
  const sourceDb = `syncline_t_${id}_src`;
  await createDb(sourceDb);
  const dir = mkdtempSync(join(tmpdir(), 'syncline-files-'));
  const src = new pg.Pool({ ...PG, database: sourceDb, max: 6 });
  const runtimes: Runtime[] = [];
  t.after(async () => {
    await Promise.allSettled(runtimes.map((r) => r.stop()));
    await src.end().catch(() => undefined);
    await dropSlots(prefix);
    await dropDb(sourceDb);
    await deleteTopics(prefix).catch(() => undefined);
  });
  await src.query(DDL);
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 3, sessionTimeoutMs: 10_000 }, // a sink after a kill -9 takes over in 10 s
    defaults: { retry: { retries: 20, initialDelayMs: 20, maxDelayMs: 200 }, batch: { size: 300 } },
    pipelines: {
      'to-files': {
        source: { type: 'postgres', connection: { ...PG, database: sourceDb }, slot: `${prefix}_files`, publication: `${prefix}_files`, snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
        target: { type: 'file', dir, ...target },
        conflict: { strategy: 'source-wins' },
        tables: [{ source: 'public.items' }],
      },
    },
  };
  const file = join(mkdtempSync(join(tmpdir(), 'syncline-files-cfg-')), 'config.yaml');
  writeFileSync(file, JSON.stringify(doc, null, 2));
  const config = parseConfig(JSON.stringify(doc, null, 2), file, {});
  const start = async (stages: string[]) => {
    const rt = new Runtime(config, new Set(stages) as never);
    runtimes.push(rt);
    const { done } = await rt.start();
    done.catch(() => undefined);
    return rt;
  };
  return { src, dir, file, start };
}

/** The source rows in the files' text forms (canonical values, src/core/types.ts; connectors/file/format.ts). */
async function sourceRows(src: pg.Pool): Promise<Map<string, Rec>> {
  const r = await src.query(`select id, seq::text, label, amount::text, flag, to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at, encode(data, 'base64') as data, case when tags is null then null else array_to_json(tags)::text end as tags from items`);
  return new Map(r.rows.map((x: Rec) => [`[${x.id as number}]`, x]));
}

function sameRow(format: string, file: Rec, want: Rec): boolean {
  const keys = ['seq', 'label', 'amount', 'flag', 'at', 'data', 'tags'];
  for (const k of keys) {
    let v: unknown = file[k];
    if (format === 'jsonl' && k === 'tags' && v !== null) v = JSON.stringify(v);
    if (v instanceof Uint8Array) v = Buffer.from(v).toString('base64'); // Parquet BYTE_ARRAY
    if (str(v) !== str(want[k])) return false;
  }
  return str(file.id) === str(want.id) && file.op !== 'd';
}

async function matches(format: string, dir: string, src: pg.Pool): Promise<string | null> {
  const { rows } = await readAll(format, dir, { strict: false });
  const last = lastByKey(rows);
  const source = await sourceRows(src);
  for (const [k, want] of source) {
    const got = last.get(k);
    if (!got) return `key ${k}: no row`;
    if (!sameRow(format, got, want)) return `key ${k}: ${JSON.stringify(got, (_k, v) => (typeof v === 'bigint' ? String(v) : v))} vs ${JSON.stringify(want)}`;
  }
  for (const [k, r] of last) if (!source.has(k) && r.op !== 'd') return `key ${k}: the source has no row, the last file row is ${String(r.op)}`;
  return null;
}

const CHANGES = [
  `insert into items select g, nextval('seq'), case when g % 7 = 0 then 'comma, "quote"' || chr(10) || 'line ' || g when g % 11 = 0 then '' else 'snap ' || g end, g * 1.25, g % 2 = 0, timestamptz '2026-12-05 10:00:00.123456+00' + g * interval '1 minute', case when g % 5 = 0 then decode('00ff10', 'hex') end, case when g % 3 = 0 then array['a,b', 'c"d', null] end from generate_series(1, 200) g`,
];
const LATER = [
  `update items set seq = nextval('seq'), label = 'upd ' || id where id % 4 = 0`,
  `delete from items where id % 9 = 0`,
  `insert into items select g, nextval('seq'), 'late ' || g, null, null, null, null, null from generate_series(201, 260) g`,
  `update items set seq = nextval('seq'), amount = -amount where id % 6 = 1`,
  `delete from items where id between 250 and 255`,
];

for (const format of ['jsonl', 'csv', 'parquet'] as const) {
  test(`PostgreSQL → ${format} files: snapshot, updates, deletes as op rows; read back independently; rolled by size and by time`, async (t) => {
    // jsonl: rolled by size (4 KB); csv: by time only (rollMs 300, lingerMs out of reach); parquet: the defaults.
    const roll = format === 'jsonl' ? { rollBytes: 4096 } : format === 'csv' ? { rollMs: 300, lingerMs: 60_000 } : {};
    const { src, dir, start } = await setup(t, { format, ...roll });
    for (const s of CHANGES) await src.query(s);
    await start(['capture', 'process', 'sink']);
    let why: string | null = 'not checked';
    await waitFor('the snapshot in the files', async () => (why = await matches(format, dir, src)) === null, 90_000, 300).catch((e: Error) => {
      throw new Error(`${e.message}: ${why}`);
    });
    for (const s of LATER) await src.query(s);
    await waitFor('every change in the files', async () => (why = await matches(format, dir, src)) === null, 90_000, 300).catch((e: Error) => {
      throw new Error(`${e.message}: ${why}`);
    });
    const { rows, files } = await readAll(format, dir, { strict: true });
    const ops = rows.reduce<Record<string, number>>((a, r) => ((a[String(r.op)] = (a[String(r.op)] ?? 0) + 1), a), {});
    assert.ok((ops.d ?? 0) >= 22 + 6 - 1, `deletes as rows: ${JSON.stringify(ops)}`);
    assert.ok((ops.u ?? 0) >= 50, `updates as rows: ${JSON.stringify(ops)}`);
    // rollBytes 4096: the 200 snapshot rows alone need several files.
    if (format === 'jsonl') assert.ok(files >= 10, `rolled by size: ${files} files`);
    // A single change on a quiet pipeline is finished (csv: by rollMs, the others by lingerMs).
    const before = files;
    await src.query(`update items set seq = nextval('seq'), label = 'alone' where id = 1`);
    await waitFor('the lone change finished by rollMs', async () => (await readAll(format, dir, { strict: false })).files > before && (await matches(format, dir, src)) === null, 30_000, 100);
    t.diagnostic(`${format}: ${files} files, ops ${JSON.stringify(ops)}`);
  });
}

const KILLS = soak(1, 3);
test(`PostgreSQL → files with the sink process killed (SIGKILL) ${KILLS === 1 ? 'once' : `${KILLS} times`} mid-run: every change exactly once, readers never see a partial file`, async (t) => {
  const format = 'jsonl';
  const { src, dir, file, start } = await setup(t, { format, rollBytes: 64 * 1024 });
  await src.query(`insert into items select g, nextval('seq'), 'snap ' || g from generate_series(1, 400) g`);
  await start(['capture', 'process']);
  // What the restarted sinks met (their warn log lines): copies skipped, orphans removed, intents settled.
  const met: Record<string, number> = {};
  const spawnSink = () => {
    const c = spawnCli(['sink', '--config', file]);
    const count = (d: Buffer) => {
      for (const ev of ['sink.file.duplicates_skipped', 'sink.file.orphan_removed', 'sink.file.manifest_torn', 'sink.intents.settled']) met[ev] = (met[ev] ?? 0) + (d.toString().split(ev).length - 1);
    };
    c.stdout?.on('data', count);
    c.stderr?.on('data', count);
    return c;
  };
  let sink = spawnSink();
  t.after(() => {
    sink.kill('SIGKILL');
  });
  const rowsNow = async () => (await readAll(format, dir, { strict: false })).rows.length;
  await waitFor('the snapshot in the files', async () => (await rowsNow()) >= 400, 90_000, 200);
  // A reader following the manifest all along: every listed file complete (readAll asserts it).
  let reading = true;
  let reads = 0;
  const reader = (async () => {
    while (reading) {
      await readAll(format, dir, { strict: false });
      reads++;
      await sleep(30);
    }
  })();
  let writing = true;
  const writer = async (w: number) => {
    const c = await src.connect();
    try {
      for (let i = 0; writing; i++) {
        const id = 4 * ((i * 7 + w) % 120) + w + 1;
        const r = (i * 13 + w + Math.floor(i / 120)) % 10; // the shift: a key is deleted, re-inserted, updated over the rounds
        if (r < 5) await c.query(`insert into items (id, seq, label) values ($1, nextval('seq'), $2) on conflict (id) do update set seq = nextval('seq'), label = excluded.label`, [id, `w${w}-${i}`]);
        else if (r < 8) await c.query(`update items set seq = nextval('seq'), label = $2 where id = $1`, [id, `u${w}-${i}`]);
        else await c.query(`delete from items where id = $1`, [id]);
      }
    } finally {
      c.release();
    }
  };
  const writers = Promise.all([0, 1, 2, 3].map(writer));
  for (let round = 0; round < KILLS; round++) {
    const before = await rowsNow();
    await waitFor('the sink to write some changes', async () => (await rowsNow()) > before + 200, 90_000, 50);
    sink.kill('SIGKILL');
    await once(sink, 'exit');
    await sleep(200);
    sink = spawnSink();
  }
  await sleep(500);
  writing = false;
  await writers;
  // Every logged write (id, seq) and delete after the snapshot, exactly once.
  const log = (await src.query(`select id, seq::text, op from log where n > 400 order by n`)).rows as { id: number; seq: string | null; op: string }[];
  const wantWrites = new Set(log.filter((l) => l.op === 'w').map((l) => `${l.id}/${l.seq}`));
  const wantDeletes = new Map<number, number>();
  for (const l of log) if (l.op === 'd') wantDeletes.set(l.id, (wantDeletes.get(l.id) ?? 0) + 1);
  let why = '';
  await waitFor('every logged change in the files', async () => {
    const { rows } = await readAll(format, dir, { strict: false });
    const writes = new Set(rows.filter((r) => r.op !== 'd').map((r) => `${r.id as number}/${String(r.seq)}`));
    const missing = [...wantWrites].filter((w) => !writes.has(w));
    why = `${missing.length} writes missing, e.g. ${missing.slice(0, 5).join(' ')}`;
    return missing.length === 0;
  }, 120_000, 300).catch((e: Error) => {
    throw new Error(`${e.message}: ${why}`);
  });
  sink.kill('SIGTERM');
  const [code] = await once(sink, 'exit');
  assert.equal(code, 0, 'the sink exits 0 on SIGTERM');
  reading = false;
  await reader;
  const { rows, files } = await readAll(format, dir, { strict: true });
  lastByKey(rows); // no (key, position) twice
  const count = new Map<string, number>();
  for (const r of rows) if (r.op !== 'd') count.set(`${r.id as number}/${String(r.seq)}`, (count.get(`${r.id as number}/${String(r.seq)}`) ?? 0) + 1);
  const twice = [...count].filter(([, n]) => n > 1);
  assert.deepEqual(twice, [], 'no write twice');
  for (const w of wantWrites) assert.equal(count.get(w), 1, `write ${w} exactly once`);
  const deletes = new Map<number, number>();
  for (const r of rows) if (r.op === 'd') deletes.set(Number(r.id), (deletes.get(Number(r.id)) ?? 0) + 1);
  for (const [id, n] of wantDeletes) assert.equal(deletes.get(id), n, `key ${id}: ${n} deletes`);
  const last = lastByKey(rows);
  const source = await sourceRows(src);
  for (const [k, want] of source) assert.equal(str(last.get(k)?.seq), str(want.seq), `key ${k}: last row is the source's`);
  t.diagnostic(`writes ${wantWrites.size}, deletes ${[...wantDeletes.values()].reduce((a, b) => a + b, 0)}, rows ${rows.length}, files ${files}, reader passes ${reads}, after the kills: ${JSON.stringify(met)}`);
});
