/**
 * Reading the files of the file source, streamed (./file-source.ts): the glob, the content hash, and
 * the records of JSON Lines, CSV and Parquet files, one at a time with their line (row) number. Memory
 * stays flat whatever the file's size: a line, a CSV record, or one Parquet row group at a time.
 * Only the first `size` bytes are read (the size the file had when it was found stable), so a writer
 * appending meanwhile is not half read.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

// ------------------------------------------------------------------ glob

/** A glob (relative, / separators) → a regular expression of the whole path. */
export function globRegex(glob: string): RegExp {
  let re = '';
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        const slash = glob[i + 2] === '/';
        re += slash ? '(?:[^/.][^/]*/)*' : '(?:[^/.][^/]*(?:/[^/.][^/]*)*)?';
        i += slash ? 2 : 1;
      } else re += '[^/]*';
    } else if (ch === '?') re += '[^/]';
    else if (ch === '{') {
      braces++;
      re += '(?:';
    } else if (ch === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (ch === ',' && braces > 0) re += '|';
    else re += ch.replace(/[.+^$()|[\]\\]/g, '\\$&');
  }
  return new RegExp('^' + re + '$');
}

/** Files under `dir` matching `glob`, relative paths with /, sorted. Names starting with a dot (temporary files) are skipped. */
export function listFiles(dir: string, glob: string): string[] {
  const re = globRegex(glob);
  const parts = glob.split('/');
  const fixed: string[] = [];
  for (const p of parts.slice(0, -1)) {
    if (/[*?{]/.test(p)) break;
    fixed.push(p);
  }
  const deep = parts.length - fixed.length > 1 || glob.includes('**');
  const out: string[] = [];
  const walk = (rel: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(join(dir, rel), { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
      throw err;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (deep) walk(path);
      } else if (e.isFile() && re.test(path)) out.push(path);
    }
  };
  walk(fixed.join('/'));
  return out.sort();
}

// ------------------------------------------------------------------ content

/** sha256 of the first `size` bytes of a file, streamed. */
export async function hashFile(path: string, size: number): Promise<string> {
  const h = createHash('sha256');
  if (size > 0) for await (const chunk of createReadStream(path, { start: 0, end: size - 1 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** One record read from a file: its fields by name, or why it could not be read; with its 1-based line (Parquet: row) and raw text. */
export type FileRecord = { line: number; raw: string; fields: Record<string, unknown> } | { line: number; raw: string; bad: string };

const stream = (path: string, size: number) => createReadStream(path, { start: 0, end: Math.max(0, size - 1), encoding: 'utf8' });

export async function* jsonlRecords(path: string, size: number): AsyncGenerator<FileRecord> {
  if (size === 0) return;
  const rl = createInterface({ input: stream(path, size), crlfDelay: Infinity });
  let line = 0;
  for await (const text of rl) {
    line++;
    if (text.trim() === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err) {
      yield { line, raw: text, bad: `not JSON: ${(err as Error).message}` };
      continue;
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) yield { line, raw: text, bad: `not a JSON object: ${text.slice(0, 100)}` };
    else yield { line, raw: text, fields: v as Record<string, unknown> };
  }
}

/** RFC 4180 records from text chunks: fields (null: an empty unquoted field), the record's first line and raw text. */
export async function* csvRecords(chunks: AsyncIterable<string>, delimiter = ','): AsyncGenerator<{ fields: (string | null)[]; line: number; raw: string } | { bad: string; line: number; raw: string }> {
  let fields: (string | null)[] = [];
  let field = '';
  let quoted = false; // the current field was quoted
  let inQuotes = false;
  let afterQuote = false; // a closing quote was just read (a second quote is an escaped quote)
  let line = 1;
  let start = 1;
  let raw = '';
  let junk = false;
  let afterCR = false; // a \r ended the last record: a \n right after it belongs to it (CRLF, maybe split across chunks)
  const endField = () => {
    fields.push(quoted || field !== '' ? field : null);
    field = '';
    quoted = false;
    afterQuote = false;
  };
  for await (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i++) {
      const ch = chunk[i]!;
      if (afterCR) {
        afterCR = false;
        if (ch === '\n') continue;
      }
      if (inQuotes) {
        if (ch === '"') {
          inQuotes = false;
          afterQuote = true;
        } else {
          if (ch === '\n') line++;
          field += ch;
        }
        raw += ch;
        continue;
      }
      if (ch === '"' && afterQuote) {
        field += '"';
        inQuotes = true;
        afterQuote = false;
        raw += ch;
        continue;
      }
      if (ch === '"' && field === '' && !quoted) {
        inQuotes = true;
        quoted = true;
        raw += ch;
        continue;
      }
      if (ch === delimiter) {
        endField();
        raw += ch;
        continue;
      }
      if (ch === '\n' || ch === '\r') {
        afterCR = ch === '\r';
        endField();
        const rec = fields;
        fields = [];
        const r = raw;
        raw = '';
        const bad = junk;
        junk = false;
        if (!(rec.length === 1 && rec[0] === null && !r)) yield bad ? { bad: 'text after a closing quote', line: start, raw: r } : { fields: rec, line: start, raw: r };
        line++;
        start = line;
        continue;
      }
      if (afterQuote || (quoted && !inQuotes)) junk = true;
      field += ch;
      raw += ch;
    }
  }
  if (inQuotes) {
    yield { bad: 'a quoted field is not closed at the end of the file', line: start, raw };
    return;
  }
  if (field !== '' || quoted || fields.length > 0) {
    endField();
    yield junk ? { bad: 'text after a closing quote', line: start, raw } : { fields, line: start, raw };
  }
}

export async function* csvFileRecords(path: string, size: number, delimiter: string): AsyncGenerator<FileRecord> {
  if (size === 0) return;
  let header: string[] | null = null;
  for await (const r of csvRecords(stream(path, size) as AsyncIterable<string>, delimiter)) {
    if ('bad' in r) {
      yield r;
      continue;
    }
    if (!header) {
      header = r.fields.map((f) => (f ?? '').trim());
      const dup = header.find((h, i) => header!.indexOf(h) !== i);
      if (dup !== undefined) {
        yield { line: r.line, raw: r.raw, bad: `the header names column '${dup}' twice` };
        return;
      }
      continue;
    }
    if (r.fields.length !== header.length) {
      yield { line: r.line, raw: r.raw, bad: `${r.fields.length} field${r.fields.length === 1 ? '' : 's'}, the header has ${header.length}` };
      continue;
    }
    const fields: Record<string, unknown> = {};
    header.forEach((h, i) => (fields[h] = r.fields[i]));
    yield { line: r.line, raw: r.raw, fields };
  }
}

/** The header of a CSV file (null: empty file), to check it names the key columns. */
export async function csvHeader(path: string, size: number, delimiter: string): Promise<string[] | null> {
  if (size === 0) return null;
  for await (const r of csvRecords(stream(path, size) as AsyncIterable<string>, delimiter)) return 'bad' in r ? [] : r.fields.map((f) => (f ?? '').trim());
  return null;
}

const plain = (v: unknown): unknown => {
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  return v;
};

export async function* parquetRecords(path: string, size: number): AsyncGenerator<FileRecord> {
  if (size === 0) return;
  const hp = await import('hyparquet');
  const whole = await hp.asyncBufferFromFile(path);
  const file = { byteLength: Math.min(size, whole.byteLength), slice: whole.slice.bind(whole) };
  let metadata;
  try {
    metadata = await hp.parquetMetadataAsync(file);
  } catch (err) {
    yield { line: 0, raw: '', bad: `not a Parquet file: ${(err as Error).message}` };
    return;
  }
  let rowStart = 0;
  for (const rg of metadata.row_groups) {
    const rowEnd = rowStart + Number(rg.num_rows);
    const rows = (await hp.parquetReadObjects({ file, metadata, rowStart, rowEnd })) as Record<string, unknown>[];
    for (let i = 0; i < rows.length; i++) {
      const fields: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(rows[i]!)) fields[k] = plain(v);
      yield { line: rowStart + i + 1, raw: JSON.stringify(fields, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)), fields };
    }
    rowStart = rowEnd;
  }
}
