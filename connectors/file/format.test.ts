import { test } from 'node:test';
import assert from 'node:assert/strict';
import { csvField, csvText, jsonLine, jsonValue, misfit, parquetKind, parseCsv, textValue, type FileRow } from './format.js';
import { tableFolder } from './sink.js';

const M = { op: 'op', position: '_position', key: '_key', ts: '_ts' };

test('canonical values in JSON and as text', () => {
  assert.equal(jsonValue(12345678901234567890n), '12345678901234567890');
  assert.equal(jsonValue(NaN), '"NaN"');
  assert.equal(jsonValue(-Infinity), '"-Infinity"');
  assert.equal(jsonValue(Buffer.from([0, 255])), '"AP8="');
  assert.equal(jsonValue([1, null, ['a"b']]), '[1,null,["a\\"b"]]');
  assert.equal(textValue(true), 'true');
  assert.equal(textValue(null), null);
  assert.equal(textValue([1n, 2n]), '[1,2]');
});

test('CSV fields are quoted per RFC 4180; null is an empty unquoted field, an empty string ""', () => {
  assert.equal(csvField(null), '');
  assert.equal(csvField(''), '""');
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\r\nlines'), '"two\r\nlines"');
});

test('CSV file: header, CRLF, columns a row lacks are null, and it parses back exactly', () => {
  const rows: FileRow[] = [
    { op: 'c', position: '0/10:0', key: '[1]', tsMs: 0, values: { id: 1, label: 'x,"y"\nz', n: 5n } },
    { op: 'd', position: '0/20:0', key: '[2]', tsMs: 1000, values: { id: 2 } },
    { op: 'u', position: '0/30:1', key: '[1]', tsMs: 2000, values: { id: 1, label: '', n: null } },
  ];
  const text = csvText(rows, M);
  assert.ok(text.startsWith('op,_position,_key,_ts,id,label,n\r\n'));
  const parsed = parseCsv(text);
  assert.deepEqual(parsed, [
    ['op', '_position', '_key', '_ts', 'id', 'label', 'n'],
    ['c', '0/10:0', '[1]', '1970-01-01T00:00:00.000Z', '1', 'x,"y"\nz', '5'],
    ['d', '0/20:0', '[2]', '1970-01-01T00:00:01.000Z', '2', null, null],
    ['u', '0/30:1', '[1]', '1970-01-01T00:00:02.000Z', '1', '', null],
  ]);
  assert.throws(() => parseCsv('a,"b\r\n'), /unclosed/);
  assert.throws(() => parseCsv('a,b"c\r\n'), /quote inside/);
});

test('a JSON line holds the metadata, then the values', () => {
  const line = jsonLine({ op: 'c', position: '0/1:0', key: '[7]', tsMs: 86_400_000, values: { id: 7, big: 2n ** 63n - 1n, b: Buffer.from('hi') } }, M);
  assert.equal(line, '{"op":"c","_position":"0/1:0","_key":"[7]","_ts":"1970-01-02T00:00:00.000Z","id":7,"big":9223372036854775807,"b":"aGk="}\n');
});

test('Parquet kinds from SQL types, and values that do not fit', () => {
  assert.equal(parquetKind('int4'), 'INT32');
  assert.equal(parquetKind('bigint'), 'INT64');
  assert.equal(parquetKind('numeric(12,2)'), 'STRING');
  assert.equal(parquetKind('int4[]'), 'STRING');
  assert.equal(parquetKind('double precision'), 'DOUBLE');
  assert.equal(misfit('INT32', 2 ** 31), 'not a 32-bit integer');
  assert.equal(misfit('INT64', 5n), null);
  assert.equal(misfit('BOOLEAN', 'true'), 'not a boolean');
  assert.equal(misfit('STRING', 5), null);
});

test('table folders: canonical names, anything unusual percent-encoded', () => {
  assert.equal(tableFolder('public.users'), 'public.users');
  assert.equal(tableFolder('"My Schema"."Order/Lines"'), 'My%20Schema.Order%2FLines');
});
