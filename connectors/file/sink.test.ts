/**
 * The file sink on real files in a temp dir, without the pipeline: what a crash leaves and what a
 * restarted sink makes of it. A "restart" is a new FileSink on the same directory; a "crash" after a
 * file was committed is a batch written again whole (its version state never committed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { fileSinkSpec } from './spec.js';
import { FileSink, MANIFEST, type ManifestEntry } from './sink.js';
import type { SinkRecord } from '../../src/sink/sink.js';

const log = pino({ level: 'silent' });
const DAY = Date.UTC(2026, 11, 5, 12);

function sink(dir: string, over: Record<string, unknown> = {}) {
  return new FileSink(fileSinkSpec.parse({ type: 'file', dir, rollMs: 20, ...over }), { pipeline: 'p', log });
}

function rec(id: number, offset: number, over: Partial<SinkRecord> = {}): SinkRecord {
  return {
    table: 'public.items', op: 'upsert', key: { id }, values: { id, label: `item ${id}`, n: BigInt(id) * 10n }, keep: [], hash: null,
    position: `00000000000000a0:${String(offset).padStart(8, '0')}`, sourceTsMs: DAY, columnTypes: { id: 'int4', label: 'text', n: 'int8' },
    origin: { topic: 't.cdc.public.items', partition: 0, offset: String(offset) }, ...over,
  };
}

const manifest = (dir: string): ManifestEntry[] => {
  const p = join(dir, 'public.items', MANIFEST);
  return existsSync(p) ? readFileSync(p, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as ManifestEntry) : [];
};
const rowsOf = (dir: string) => manifest(dir).flatMap((e) => readFileSync(join(dir, 'public.items', e.file), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>));

test('a batch comes back only once its rows are in a finished file listed in the manifest', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-fs-'));
  const s = sink(dir);
  const batch = [rec(1, 0), rec(2, 1), rec(1, 2, { update: true, values: { id: 1, label: 'again', n: 1n } }), rec(2, 3, { op: 'delete', values: null })];
  const r = await s.writeBatch(batch);
  assert.deepEqual(r.failed, []);
  const m = manifest(dir);
  assert.equal(m.length, 1);
  assert.equal(m[0]!.rows, 4);
  assert.match(m[0]!.file, /^date=2026-12-05\/part-.*\.jsonl$/);
  assert.deepEqual(m[0]!.origins, { 't.cdc.public.items:0': ['0', '3'] });
  assert.deepEqual(m[0]!.ops, { c: 2, u: 1, d: 1 });
  assert.deepEqual(rowsOf(dir).map((x) => [x.op, x._key, x.label ?? null]), [['c', '[1]', 'item 1'], ['c', '[2]', 'item 2'], ['u', '[1]', 'again'], ['d', '[2]', null]]);
  assert.deepEqual(readdirSync(join(dir, 'public.items', 'date=2026-12-05')).filter((n) => n.endsWith('.tmp')), []);
  await s.close();
});

for (const format of ['jsonl', 'csv'] as const) {
  test(`${format}: a batch written again after a restart (its state never committed) adds nothing; new records of it are written`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'syncline-fs-'));
    const a = sink(dir, { format });
    const batch = Array.from({ length: 50 }, (_, i) => rec(i, 100 + i));
    await a.writeBatch(batch);
    await a.close();
    const b = sink(dir, { format });
    const again = await b.writeBatch(batch);
    assert.deepEqual(again.failed, []);
    assert.equal(b.stats.duplicatesSkipped, 50);
    assert.equal(manifest(dir).length, 1, 'no new file');
    // Half of it again plus new records (a redelivery reaching past what was written).
    await b.writeBatch([...batch.slice(25), rec(50, 150), rec(51, 151)]);
    assert.equal(b.stats.duplicatesSkipped, 75);
    const m = manifest(dir);
    assert.equal(m.length, 2);
    assert.equal(m[1]!.rows, 2);
    await b.close();
  });
}

test('the same records retried while their file is still open wait for it instead of being added twice', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-fs-'));
  const s = sink(dir, { rollMs: 200 });
  const batch = [rec(1, 0), rec(2, 1)];
  const first = s.writeBatch(batch);
  const second = s.writeBatch(batch);
  await Promise.all([first, second]);
  assert.equal(manifest(dir).length, 1);
  assert.equal(manifest(dir)[0]!.rows, 2);
  await s.close();
});

test('recovery: temporary files, finished files the manifest does not list and a torn manifest line are removed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-fs-'));
  const a = sink(dir);
  await a.writeBatch([rec(1, 0)]);
  await a.close();
  const folder = join(dir, 'public.items', 'date=2026-12-05');
  writeFileSync(join(folder, '.part-x.jsonl.tmp'), '{"op":"c"');
  writeFileSync(join(folder, 'part-orphan.jsonl'), '{"op":"c","_position":"00000000000000a0:00000001","_key":"[2]"}\n');
  appendFileSync(join(dir, 'public.items', MANIFEST), '{"file":"date=2026-12-05/part-orphan.jsonl","rows"');
  const b = sink(dir);
  // The orphan's record comes again (it was never acknowledged) and is written.
  await b.writeBatch([rec(2, 1)]);
  assert.equal(b.stats.tmpRemoved, 1);
  assert.equal(b.stats.orphansRemoved, 1);
  assert.equal(b.stats.duplicatesSkipped, 0);
  assert.ok(!existsSync(join(folder, 'part-orphan.jsonl')));
  assert.equal(manifest(dir).length, 2, 'the torn line is gone, the new file listed');
  assert.deepEqual(rowsOf(dir).map((x) => x._key), ['[1]', '[2]']);
  await b.close();
});

test('rolled by size: a batch larger than rollBytes spans several files; sweep deletes sharing one offset are told apart by key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-fs-'));
  const s = sink(dir, { rollBytes: 1024 });
  await s.writeBatch(Array.from({ length: 100 }, (_, i) => rec(i, i)));
  const files = manifest(dir).length;
  assert.ok(files >= 5, `${files} files`);
  assert.equal(manifest(dir).reduce((a, e) => a + e.rows, 0), 100);
  // A sweep's deletes all carry the marker's offset and position, in chunks: the second chunk is not a copy of the first.
  const del = (id: number) => rec(id, 500, { op: 'delete', values: null, position: '00000000000000b0:00000000' });
  await s.writeBatch([del(1), del(2)]);
  await s.writeBatch([del(3), del(4)]);
  await s.writeBatch([del(1), del(2), del(3), del(4)]); // redelivered after a crash
  assert.equal(rowsOf(dir).filter((x) => x.op === 'd').length, 4);
  await s.close();
});

test('a value the file cannot hold fails that record alone (a column named like a metadata column)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-fs-'));
  const s = sink(dir);
  const bad = rec(2, 1, { values: { id: 2, op: 'x' } });
  const r = await s.writeBatch([rec(1, 0), bad]);
  assert.equal(r.failed.length, 1);
  assert.equal(r.failed[0]!.record, bad);
  assert.equal(r.failed[0]!.error.kind, 'poison');
  assert.match(r.failed[0]!.error.message, /column named 'op'.*opColumn/);
  assert.equal(manifest(dir)[0]!.rows, 1);
  await s.close();
});

test('an unwritable directory is fatal, naming it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-fs-'));
  mkdirSync(join(dir, 'ro'), { mode: 0o500 });
  if (process.getuid?.() === 0) return; // root writes anywhere
  const s = sink(join(dir, 'ro', 'out'));
  await assert.rejects(s.connect(), (e: Error & { kind?: string }) => e.kind === 'fatal' && e.message.includes(join(dir, 'ro', 'out')));
});

test('parquet: a batch written again after a restart adds nothing (ids read back with hyparquet); the file reads back with the declared types', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-fs-'));
  const a = sink(dir, { format: 'parquet' });
  const batch = [...Array.from({ length: 20 }, (_, i) => rec(i, i)), rec(3, 20, { op: 'delete', values: null })];
  await a.writeBatch(batch);
  await a.close();
  const b = sink(dir, { format: 'parquet' });
  await b.writeBatch(batch);
  assert.equal(b.stats.duplicatesSkipped, 21);
  assert.equal(manifest(dir).length, 1);
  // A value that does not fit its declared column type fails alone.
  const bad = rec(30, 30, { values: { id: 30, label: 'x', n: 'not a number' } });
  const r = await b.writeBatch([rec(31, 31), bad]);
  assert.equal(r.failed.length, 1);
  assert.equal(r.failed[0]!.record, bad);
  await b.close();
  const { parquetReadObjects } = await import('hyparquet');
  const buf = readFileSync(join(dir, 'public.items', manifest(dir)[0]!.file));
  const rows = await parquetReadObjects({ file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer });
  assert.equal(rows.length, 21);
  assert.deepEqual({ ...rows[1] }, { op: 'c', _position: '00000000000000a0:00000001', _key: '[1]', _ts: new Date(DAY), id: 1, label: 'item 1', n: 10n });
  assert.deepEqual([rows[20]!.op, rows[20]!.id, rows[20]!.label], ['d', 3, null]);
});
