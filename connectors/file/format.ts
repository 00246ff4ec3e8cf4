/**
 * Rows of the file target and their encodings: JSON Lines, CSV (RFC 4180) and Parquet. Pure, apart
 * from the Parquet writer's module (loaded on first use).
 *
 * A row is the change's metadata (op, position, key, commit time) and its values. Canonical values
 * (src/core/types.ts) are written in one text form everywhere a format has no native type for them:
 *   null            JSON null; CSV an empty unquoted field (an empty string is written "")
 *   boolean         true / false
 *   int, float      the number; NaN, Infinity, -Infinity as those words (JSON: strings)
 *   long (bigint)   all its digits (JSON: a bare number, exact; a JavaScript reader keeps values above 2^53 only with a big-number parse)
 *   decimal         the source's text, exact ('12.50', 'NaN'): JSON string, never a float
 *   date, timestamp(tz), uuid, enum, json, text: the canonical string as is
 *   bytes           base64
 *   array           JSON array text of its elements by these rules (JSON Lines: the array itself)
 * Parquet keeps native types where they are lossless (INT32, INT64, FLOAT, DOUBLE, BOOLEAN,
 * BYTE_ARRAY) and writes everything else as UTF8 strings in the form above (parquetKind).
 */
import type { Row, Value } from '../../src/core/envelope.js';

export type Format = 'jsonl' | 'csv' | 'parquet';
export const EXT: Record<Format, string> = { jsonl: 'jsonl', csv: 'csv', parquet: 'parquet' };

/** The metadata column names (config: opColumn, positionColumn, keyColumn, timeColumn). */
export interface MetaNames {
  op: string;
  position: string;
  key: string;
  ts: string;
}

export interface FileRow {
  op: 'c' | 'u' | 'd' | 't';
  position: string;
  /** keyString of the key (JSON array text of the key values). */
  key: string;
  tsMs: number;
  values: Row;
}

/** JSON text of a canonical value (bigint as a bare number, bytes as base64, non-finite numbers as strings). */
export function jsonValue(v: Value): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? String(v) : JSON.stringify(String(v));
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? 'true' : 'false';
  }
  if (Buffer.isBuffer(v)) return JSON.stringify(v.toString('base64'));
  if (Array.isArray(v)) return '[' + v.map(jsonValue).join(',') + ']';
  throw new Error(`not a canonical value: ${Object.prototype.toString.call(v)}`);
}

/** The one text form of a canonical value (CSV fields, Parquet strings); null stays null. */
export function textValue(v: Value): string | null {
  if (v === null) return null;
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'bigint':
      return String(v);
    case 'boolean':
      return v ? 'true' : 'false';
  }
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (Array.isArray(v)) return jsonValue(v);
  throw new Error(`not a canonical value: ${Object.prototype.toString.call(v)}`);
}

export const isoTime = (ms: number) => new Date(ms).toISOString();

/** One JSON Lines line (with its \n): metadata columns first, then the values in row order. */
export function jsonLine(r: FileRow, m: MetaNames): string {
  let s = '{' + JSON.stringify(m.op) + ':"' + r.op + '",' + JSON.stringify(m.position) + ':' + JSON.stringify(r.position) + ',' + JSON.stringify(m.key) + ':' + JSON.stringify(r.key) + ',' + JSON.stringify(m.ts) + ':"' + isoTime(r.tsMs) + '"';
  for (const c of Object.keys(r.values)) s += ',' + JSON.stringify(c) + ':' + jsonValue(r.values[c]!);
  return s + '}\n';
}

/** RFC 4180 field: quoted when it holds a quote, comma, CR or LF, or is empty (an empty unquoted field is null). */
export function csvField(t: string | null): string {
  if (t === null) return '';
  if (t === '' || /[",\r\n]/.test(t)) return '"' + t.replaceAll('"', '""') + '"';
  return t;
}

/** The columns of a file: metadata first, then every data column in the order first seen. */
export function fileColumns(rows: FileRow[]): string[] {
  const seen = new Set<string>();
  for (const r of rows) for (const c of Object.keys(r.values)) seen.add(c);
  return [...seen];
}

/** A CSV file: header row, then one record per row, CRLF line ends; a column a row lacks is null. */
export function csvText(rows: FileRow[], m: MetaNames): string {
  const cols = fileColumns(rows);
  const out: string[] = [[m.op, m.position, m.key, m.ts, ...cols].map(csvField).join(',') + '\r\n'];
  for (const r of rows) {
    let s = r.op + ',' + csvField(r.position) + ',' + csvField(r.key) + ',' + isoTime(r.tsMs);
    for (const c of cols) {
      const v = r.values[c];
      s += ',' + csvField(v === undefined ? null : textValue(v));
    }
    out.push(s + '\r\n');
  }
  return out.join('');
}

/**
 * RFC 4180 parse (for reading the target's own files back): records of fields; an empty unquoted
 * field is null, a quoted one a string. Throws on a quote inside an unquoted field or an unclosed quote.
 */
export function parseCsv(text: string): (string | null)[][] {
  const rows: (string | null)[][] = [];
  let row: (string | null)[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    let field: string | null;
    if (text[i] === '"') {
      let s = '';
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) throw new Error('unclosed quoted field');
        s += text.slice(i, q);
        if (text[q + 1] === '"') {
          s += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      field = s;
    } else {
      let j = i;
      while (j < n && text[j] !== ',' && text[j] !== '\r' && text[j] !== '\n') j++;
      const s = text.slice(i, j);
      if (s.includes('"')) throw new Error(`a quote inside an unquoted field: ${s.slice(0, 40)}`);
      field = s === '' ? null : s;
      i = j;
    }
    row.push(field);
    if (i >= n) break;
    if (text[i] === ',') {
      i++;
      if (i >= n) row.push(null);
      continue;
    }
    if (text[i] === '\r' && text[i + 1] === '\n') i += 2;
    else if (text[i] === '\n' || text[i] === '\r') i++;
    else throw new Error(`unexpected character after a field at ${i}`);
    rows.push(row);
    row = [];
  }
  if (row.length > 0) rows.push(row);
  return rows;
}

// ---------------------------------------------------------------------------------------------------
// Parquet

/** Parquet column kinds: native where lossless, else the text form above. */
export type ParquetKind = 'INT32' | 'INT64' | 'FLOAT' | 'DOUBLE' | 'BOOLEAN' | 'BYTE_ARRAY' | 'STRING';

/** The Parquet kind of a column from its SQL type (SinkRecord.columnTypes, PostgreSQL spelling). */
export function parquetKind(pgType: string): ParquetKind {
  const t = pgType.trim().toLowerCase();
  if (t.endsWith(']')) return 'STRING';
  if (t === 'int2' || t === 'int4' || t === 'smallint' || t === 'integer' || t === 'int') return 'INT32';
  if (t === 'int8' || t === 'bigint') return 'INT64';
  if (t === 'float4' || t === 'real') return 'FLOAT';
  if (t === 'float8' || t === 'double precision') return 'DOUBLE';
  if (t === 'bool' || t === 'boolean') return 'BOOLEAN';
  if (t === 'bytea') return 'BYTE_ARRAY';
  return 'STRING';
}

/** The kind of a column no record of the file declared (a delete's key): from a value. */
export function kindOfValue(v: Value): ParquetKind {
  switch (typeof v) {
    case 'number':
      return 'DOUBLE';
    case 'bigint':
      return 'INT64';
    case 'boolean':
      return 'BOOLEAN';
  }
  return Buffer.isBuffer(v) ? 'BYTE_ARRAY' : 'STRING';
}

/** Why `v` cannot go into a column of `kind`, or null if it can (null always can). */
export function misfit(kind: ParquetKind, v: Value): string | null {
  if (v === null) return null;
  switch (kind) {
    case 'INT32':
      return typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31 ? null : 'not a 32-bit integer';
    case 'INT64':
      return typeof v === 'bigint' || (typeof v === 'number' && Number.isSafeInteger(v)) ? null : 'not a 64-bit integer';
    case 'FLOAT':
    case 'DOUBLE':
      return typeof v === 'number' ? null : 'not a number';
    case 'BOOLEAN':
      return typeof v === 'boolean' ? null : 'not a boolean';
    case 'BYTE_ARRAY':
      return Buffer.isBuffer(v) ? null : 'not bytes';
    case 'STRING':
      return null;
  }
}

function parquetValue(kind: ParquetKind, v: Value | undefined): unknown {
  if (v === null || v === undefined) return null;
  switch (kind) {
    case 'INT64':
      return typeof v === 'bigint' ? v : BigInt(v as number);
    case 'STRING':
      return textValue(v);
    default:
      return v;
  }
}

type ParquetWriterModule = typeof import('hyparquet-writer');
let writerModule: Promise<ParquetWriterModule> | null = null;
/** hyparquet-writer, loaded on first use (a pipeline writing JSON Lines or CSV never loads it). */
export function parquetWriter(): Promise<ParquetWriterModule> {
  return (writerModule ??= import('hyparquet-writer'));
}

/** A Parquet file of these rows; `kinds` gives each data column's kind (fileColumns order decides the column order). */
export async function parquetBuffer(rows: FileRow[], kinds: Map<string, ParquetKind>, m: MetaNames): Promise<Buffer> {
  const w = await parquetWriter();
  const cols = fileColumns(rows);
  const columnData: import('hyparquet-writer').ColumnSource[] = [
    { name: m.op, data: rows.map((r) => r.op), type: 'STRING', nullable: false },
    { name: m.position, data: rows.map((r) => r.position), type: 'STRING', nullable: false },
    { name: m.key, data: rows.map((r) => r.key), type: 'STRING', nullable: false },
    { name: m.ts, data: rows.map((r) => new Date(r.tsMs)), type: 'TIMESTAMP', nullable: false },
    ...cols.map((c) => {
      const kind = kinds.get(c) ?? 'STRING';
      return { name: c, data: rows.map((r) => parquetValue(kind, r.values[c])) as import('hyparquet').DecodedArray, type: kind };
    }),
  ];
  return Buffer.from(w.parquetWriteBuffer({ columnData, kvMetadata: [{ key: 'writer', value: 'syncline file target' }] }));
}

/** The (key, position) ids of a file's rows, read back from its bytes (recovery after a crash; ./sink.ts). */
export async function idsOf(format: Format, bytes: Buffer, m: MetaNames): Promise<Set<string>> {
  const ids = new Set<string>();
  if (format === 'jsonl') {
    for (const line of bytes.toString('utf8').split('\n')) {
      if (line === '') continue;
      const o = JSON.parse(line) as Record<string, unknown>;
      ids.add(idOf(String(o[m.key]), String(o[m.position])));
    }
  } else if (format === 'csv') {
    const rows = parseCsv(bytes.toString('utf8'));
    const head = rows[0] ?? [];
    const k = head.indexOf(m.key);
    const p = head.indexOf(m.position);
    for (const r of rows.slice(1)) ids.add(idOf(String(r[k]), String(r[p])));
  } else {
    const hp = await import('hyparquet');
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    for (const o of await hp.parquetReadObjects({ file: ab, columns: [m.key, m.position] })) ids.add(idOf(String(o[m.key]), String(o[m.position])));
  }
  return ids;
}

/** A row's identity: its key and its commit position (unique per change of a key). */
export const idOf = (key: string, position: string) => position + '\u0000' + key;

/** A rough size of a row in bytes (what rollBytes counts). */
export function rowSize(r: FileRow): number {
  let n = 40 + r.key.length + r.position.length;
  for (const c of Object.keys(r.values)) {
    const v = r.values[c]!;
    n += c.length + 2;
    if (typeof v === 'string') n += v.length;
    else if (Buffer.isBuffer(v)) n += Math.ceil(v.length * 1.34);
    else if (Array.isArray(v)) n += jsonValue(v).length;
    else n += 8;
  }
  return n;
}
