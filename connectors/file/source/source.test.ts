/** The file source's pure parts: glob, CSV and JSON Lines records with line numbers, content hash, record → row. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { columnTypeOf } from '../../kafka-topic/envelope.js';
import { csvFileRecords, csvRecords, globRegex, hashFile, jsonlRecords, listFiles, parquetRecords, type FileRecord } from './read.js';
import { convertRecord } from './rows.js';
import { fileSourceSpec } from './spec.js';

async function all<T>(g: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of g) out.push(x);
  return out;
}
async function* chunks(...parts: string[]): AsyncGenerator<string> {
  for (const p of parts) yield p;
}

test('glob: *, **, ?, {a,b}; dot files skipped; sorted', () => {
  assert.ok(globRegex('orders/*.jsonl').test('orders/a.jsonl'));
  assert.ok(!globRegex('orders/*.jsonl').test('orders/x/a.jsonl'));
  assert.ok(globRegex('**/*.csv').test('a.csv') && globRegex('**/*.csv').test('x/y/a.csv'));
  assert.ok(globRegex('d/**').test('d/x/y.csv'));
  assert.ok(globRegex('o-?.{csv,jsonl}').test('o-1.jsonl') && !globRegex('o-?.{csv,jsonl}').test('o-12.csv'));
  assert.ok(!globRegex('a.csv').test('aXcsv'), 'a dot is a dot');
  const dir = mkdtempSync(join(tmpdir(), 'syncline-glob-'));
  try {
    mkdirSync(join(dir, 'in', 'deep'), { recursive: true });
    for (const f of ['in/b.jsonl', 'in/a.jsonl', 'in/.a.jsonl.tmp', 'in/.hidden.jsonl', 'in/c.csv', 'in/deep/d.jsonl']) writeFileSync(join(dir, f), '');
    assert.deepEqual(listFiles(dir, 'in/*.jsonl'), ['in/a.jsonl', 'in/b.jsonl']);
    assert.deepEqual(listFiles(dir, 'in/**/*.jsonl'), ['in/a.jsonl', 'in/b.jsonl', 'in/deep/d.jsonl']);
    assert.deepEqual(listFiles(dir, 'missing/*.jsonl'), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CSV records: quotes, escaped quotes, line breaks in quotes, CRLF split across chunks, empty = null, "" = empty string', async () => {
  const got = await all(csvRecords(chunks('id,name,note\r', '\n1,"a ""b""",\r\n2,"x\ny",""\r\n', '3,plain,z')));
  assert.deepEqual(got, [
    { fields: ['id', 'name', 'note'], line: 1, raw: 'id,name,note' },
    { fields: ['1', 'a "b"', null], line: 2, raw: '1,"a ""b""",' },
    { fields: ['2', 'x\ny', ''], line: 3, raw: '2,"x\ny",""' },
    { fields: ['3', 'plain', 'z'], line: 5, raw: '3,plain,z' },
  ]);
  const bad = await all(csvRecords(chunks('1,"x"y\n2,"open\n')));
  assert.deepEqual(bad.map((r) => ('bad' in r ? `bad@${r.line}: ${r.bad}` : `ok@${r.line}`)), ['bad@1: text after a closing quote', 'bad@2: a quoted field is not closed at the end of the file']);
  assert.deepEqual(await all(csvRecords(chunks('a;b\n1;2\n'), ';')), [{ fields: ['a', 'b'], line: 1, raw: 'a;b' }, { fields: ['1', '2'], line: 2, raw: '1;2' }]);
});

test('files: JSON Lines and CSV records with their line numbers; wrong field count and bad JSON named; read only up to the size given', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-read-'));
  try {
    const jl = join(dir, 'a.jsonl');
    const text = '{"id":1}\n\n{"id":2,\n[1]\n{"id":3}\n{"id":4,"half';
    writeFileSync(jl, text);
    const size = text.lastIndexOf('\n') + 1; // the half-written last line is past the size
    const j = await all(jsonlRecords(jl, size));
    assert.deepEqual(j.map((r) => `${r.line} ${'bad' in r ? 'bad: ' + r.bad.split(':')[0] : JSON.stringify(r.fields)}`), ['1 {"id":1}', '3 bad: not JSON', '4 bad: not a JSON object', '5 {"id":3}']);
    const csv = join(dir, 'a.csv');
    writeFileSync(csv, 'id,name\n1,a\n2\n3,c,extra\n4,"d\ne"\n');
    const c = await all(csvFileRecords(csv, 1e9, ','));
    assert.deepEqual(c.map((r) => `${r.line} ${'bad' in r ? 'bad: ' + r.bad : JSON.stringify(r.fields)}`), ['2 {"id":"1","name":"a"}', '3 bad: 1 field, the header has 2', '4 bad: 3 fields, the header has 2', '5 {"id":"4","name":"d\\ne"}']);
    assert.equal(await hashFile(jl, size), createHash('sha256').update(text.slice(0, size)).digest('hex'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Parquet: rows with their numbers, values as plain JSON-like values', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-pq-'));
  try {
    const { parquetWriteBuffer } = await import('hyparquet-writer');
    const buf = parquetWriteBuffer({ columnData: [{ name: 'id', data: [1n, 2n, 3n], type: 'INT64' }, { name: 'name', data: ['a', 'b', null], type: 'STRING' }], rowGroupSize: 2 });
    const p = join(dir, 'a.parquet');
    writeFileSync(p, Buffer.from(buf));
    const rows = await all(parquetRecords(p, Buffer.from(buf).length));
    assert.deepEqual(rows.map((r) => [r.line, 'fields' in r ? r.fields : r.bad]), [[1, { id: 1n, name: 'a' }], [2, { id: 2n, name: 'b' }], [3, { id: 3n, name: null }]]);
    writeFileSync(join(dir, 'b.parquet'), 'not parquet at all');
    const bad = await all(parquetRecords(join(dir, 'b.parquet'), 18));
    assert.ok(bad.length === 1 && 'bad' in bad[0]! && /not a Parquet file/.test(bad[0].bad), JSON.stringify(bad));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('record → row: declared types, CSV booleans, key missing and wrong values named with file:line; the same row, the same hash', () => {
  const columns = [{ name: 'id', type: columnTypeOf('int8') }, { name: 'price', type: columnTypeOf('numeric(10,2)') }, { name: 'ok', type: columnTypeOf('boolean') }, { name: 'at', type: columnTypeOf('timestamptz') }];
  const rec = (fields: Record<string, unknown>, line = 7): FileRecord => ({ line, raw: JSON.stringify(fields), fields });
  const a = convertRecord(rec({ id: '5', price: '1.50', ok: 'yes', at: '2026-12-05 10:00:00+01' }), columns, ['id'], true, 'in/a.csv:7');
  assert.ok(a.ok, a.ok ? "" : a.error.message);
  assert.deepEqual(a.row, { id: 5n, price: '1.50', ok: true, at: '2026-12-05T09:00:00.000000Z' });
  assert.equal(a.kt, '[{"$n":"5"}]');
  const b = convertRecord(rec({ id: 5, price: 1.5, ok: true, at: '2026-12-05T09:00:00Z', extra: 1 }), columns, ['id'], false, 'a.jsonl:1');
  assert.ok(b.ok);
  const noKey = convertRecord(rec({ price: '1' }), columns, ['id'], true, 'in/a.csv:9');
  assert.ok(!noKey.ok && noKey.error.code === 'FILE_KEY_MISSING' && noKey.error.message.startsWith('in/a.csv:9: ') && noKey.kt.startsWith('!'), JSON.stringify(noKey));
  const wrong = convertRecord(rec({ id: '6', price: 'twelve' }), columns, ['id'], true, 'in/a.csv:10');
  assert.ok(!wrong.ok && wrong.error.code === 'FILE_VALUE_TYPE' && /^in\/a\.csv:10: column price/.test(wrong.error.message) && wrong.kt === '[{"$n":"6"}]', JSON.stringify(wrong));
  const bad = convertRecord({ line: 3, raw: '{x', bad: 'not JSON: Unexpected token' }, columns, ['id'], false, 'a.jsonl:3');
  assert.ok(!bad.ok && bad.error.code === 'FILE_RECORD_INVALID' && bad.error.message === 'a.jsonl:3: not JSON: Unexpected token');
  const again = convertRecord(rec({ id: '5', price: '1.50', ok: 't', at: '2026-12-05T09:00:00.000Z' }, 99), columns, ['id'], true, 'other.csv:99');
  assert.ok(again.ok && a.ok && again.hash === a.hash, 'the content hash is the row\'s, not the line\'s');
});

test('spec: key columns must be declared, tables once, globs relative', () => {
  const base = { type: 'file', dir: '/tmp', tables: [{ table: 'f.a', glob: '*.jsonl', format: 'jsonl', key: ['id'], columns: { id: 'int8' } }] };
  assert.ok(fileSourceSpec.safeParse(base).success);
  const issues = (v: unknown) => (fileSourceSpec.safeParse(v).error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);
  assert.deepEqual(issues({ ...base, tables: [{ ...base.tables[0], key: ['nope'] }] }), ['tables.0.key.0: key column nope is not in columns (id)']);
  assert.deepEqual(issues({ ...base, tables: [base.tables[0], base.tables[0]] }), ['tables.1.table: table f.a is listed twice']);
  assert.deepEqual(issues({ ...base, tables: [{ ...base.tables[0], glob: '../x/*.csv' }] }), ['tables.0.glob: a pattern relative to source.dir, without ..']);
});
