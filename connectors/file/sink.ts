/**
 * File target: each change appended as a row to JSON Lines, CSV or Parquet files (./format.ts), one
 * folder per table, a date=YYYY-MM-DD folder per UTC day of the source commit time, and per table a
 * manifest (_manifest.jsonl) listing every finished file. ADR 0022.
 *
 * Lifecycle: owned by the sink stage of one pipeline; one sink process per directory. create()
 * touches nothing; a table's folder is recovered on its first batch in this process (recover()):
 * a torn last manifest line is cut off, temporary files and finished-looking files the manifest
 * does not list (a crash between rename and manifest line) are deleted — their rows were never
 * acknowledged and come again.
 *
 * Buffers: the rows of the open file of each (table, date folder), in memory, until it is finished:
 * when its rows reach rollBytes, lingerMs after the last batch added rows, rollMs after its first
 * row, or at close(). Batches of different Kafka partitions share the open file (group commit).
 *
 * Guarantee: writeBatch resolves only when every row it was given is in a finished file, i.e.
 * written under a temporary name, fsynced, renamed, its directory fsynced, and its manifest line
 * appended and fsynced. The manifest line is the commit: a file not in the manifest does not exist.
 * So the Applier commits version state and the processor commits Kafka offsets only for rows that
 * are durable, and a reader who follows the manifest never sees a partial or uncommitted file.
 * Crash/replay: a change redelivered after its file was committed (kill -9 between the manifest
 * line and the version-state commit, Redis failing at that commit, a retried batch part of which
 * had been finished) is recognised and not written again: the manifest line records, per Kafka
 * partition the rows came from, the offsets' range; a record whose offset falls in a finished
 * file's range has that file's (key, position) ids read back (rare: after a crash or a retry) and
 * is skipped when it is there. Rows of an open file are recognised too (a retried batch waits for
 * that file instead of adding them again). Result: every change exactly once across finished files.
 *
 * readRows: files are a log, not rows: every key reads as a row of unknown content (as RabbitMQ,
 * ADR 0018); conflict strategies other than source-wins are refused at config load.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Row } from '../../src/core/envelope.js';
import { fatal, poison, retriable, type SynclineError } from '../../src/core/errors.js';
import { parseTableName } from '../../src/core/names.js';
import type { ConnectorContext } from '../../src/core/registry.js';
import { keyString, type FailedRecord, type Sink, type SinkRecord, type WriteResult } from '../../src/sink/sink.js';
import { csvText, EXT, idOf, idsOf, jsonLine, kindOfValue, misfit, parquetBuffer, parquetKind, rowSize, type FileRow, type MetaNames, type ParquetKind } from './format.js';
import type { FileSinkConfig } from './spec.js';

export const MANIFEST = '_manifest.jsonl';

/** One line of a table's manifest: a finished file. */
export interface ManifestEntry {
  /** Path relative to the table folder ('date=2026-12-05/part-….jsonl'). */
  file: string;
  format: string;
  rows: number;
  bytes: number;
  sha256: string;
  /** Rows by op. */
  ops: Record<string, number>;
  /** Smallest and largest commit position of its rows. */
  positions: [string, string];
  /** Kafka '<topic>:<partition>' the rows came from → [first, last] offset (decimal strings). */
  origins: Record<string, [string, string]>;
  finishedAt: string;
}

/** A table folder: its manifest, and what the dedup check needs of it. */
interface TableDir {
  table: string;
  path: string;
  /** Finished files by origin partition: offset ranges. */
  ranges: Map<string, { lo: number; hi: number; file: string }[]>;
  /** Largest offset in any finished file, per origin partition (the fast path of the dedup check). */
  maxHi: Map<string, number>;
  /** Manifest appends, one at a time. */
  chain: Promise<void>;
  /** (key, position) ids of finished files read back, by file (a few, most recent). */
  ids: Map<string, Promise<Set<string>>>;
  /** Date folders known to exist. */
  dirs: Set<string>;
}

interface OpenFile {
  dir: TableDir;
  part: string;
  rows: FileRow[];
  ids: Set<string>;
  bytes: number;
  origins: Map<string, [number, number]>;
  kinds: Map<string, ParquetKind>;
  /** rollMs after the first row. */
  timer: NodeJS.Timeout | null;
  /** lingerMs after the last batch that added rows. */
  linger: NodeJS.Timeout | null;
  done: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class FileSink implements Sink {
  /** Files finished, rows written, rows recognised as already written (redeliveries), orphans removed at recovery. */
  readonly stats = { files: 0, rows: 0, duplicatesSkipped: 0, orphansRemoved: 0, tmpRemoved: 0 };
  private readonly log: Logger;
  private readonly meta: MetaNames;
  private readonly dirs = new Map<string, Promise<TableDir>>();
  private readonly open = new Map<string, OpenFile>();
  /** Finishes under way (close() waits for them). */
  private readonly finishing = new Set<Promise<void>>();
  private readonly instance = randomBytes(4).toString('hex');
  private seq = 0;
  private closed = false;

  constructor(
    private readonly cfg: FileSinkConfig,
    ctx: ConnectorContext,
  ) {
    this.log = ctx.log;
    this.meta = { op: cfg.opColumn, position: cfg.positionColumn, key: cfg.keyColumn, ts: cfg.timeColumn };
  }

  get where(): string {
    return `file sink ${this.cfg.dir} (${this.cfg.format})`;
  }

  async connect(): Promise<void> {
    await this.ping();
  }

  async ping(): Promise<void> {
    try {
      await fs.mkdir(this.cfg.dir, { recursive: true });
      await fs.access(this.cfg.dir, constants.W_OK);
    } catch (err) {
      throw classifyFileError(err, `${this.where}: the directory`);
    }
  }

  /** Finishes every open file (their batches resolve), then refuses further batches. */
  async close(): Promise<void> {
    for (const f of [...this.open.values()]) this.finishNow(f);
    this.closed = true;
    await Promise.allSettled([...this.finishing]);
  }

  /** See the header: every key reads as a row of unknown content. */
  async readRows(_table: string, keys: Row[]): Promise<Map<string, Row>> {
    return new Map(keys.map((k) => [keyString(k), {}]));
  }

  async writeBatch(batch: SinkRecord[]): Promise<WriteResult> {
    if (this.closed) throw retriable('FILE_CLOSED', `${this.where}: the sink is closed`);
    const failed: FailedRecord[] = [];
    const waits = new Set<Promise<void>>();
    let copies = 0;
    const added = new Set<OpenFile>();
    let dir: TableDir | undefined;
    let dirOf: string | undefined;
    for (const rec of batch) {
      if (rec.op === 'sweep') continue; // the Applier turns a sweep into deletes
      const made = this.row(rec);
      if (typeof made === 'string') {
        failed.push({ record: rec, error: poison('FILE_VALUE', `${this.where}: ${describe(rec)}: ${made}`) });
        continue;
      }
      if (rec.table !== dirOf) {
        dir = await this.tableDir(rec.table);
        dirOf = rec.table;
      }
      const id = idOf(made.key, made.position);
      const tp = rec.origin.topic + ':' + rec.origin.partition;
      const off = Number(rec.origin.offset);
      // Beyond every finished file's offsets of its partition (the normal case): new, no await.
      const max = dir!.maxHi.get(tp);
      if (max !== undefined && off <= max && (await this.finished(dir!, tp, off, id))) {
        this.stats.duplicatesSkipped++;
        copies++;
        continue;
      }
      const part = this.cfg.partitionBy === 'none' ? '' : 'date=' + new Date(rec.sourceTsMs).toISOString().slice(0, 10);
      const k = dir!.path + '\u0000' + part;
      let f = this.open.get(k);
      if (f?.ids.has(id)) {
        // Already added by an earlier attempt of this batch: wait for that file, do not add it twice.
        waits.add(f.done);
        continue;
      }
      if (this.cfg.format === 'parquet') {
        const why = f ? this.kindsFit(f, rec, made) : this.kindsFit(null, rec, made);
        if (why) {
          failed.push({ record: rec, error: poison('FILE_VALUE', `${this.where}: ${describe(rec)}: ${why}`) });
          continue;
        }
      }
      if (!f) this.open.set(k, (f = this.newFile(dir!, part)));
      if (this.cfg.format === 'parquet') this.addKinds(f, rec, made);
      f.rows.push(made);
      f.ids.add(id);
      f.bytes += rowSize(made);
      const o = f.origins.get(tp);
      if (!o) f.origins.set(tp, [off, off]);
      else {
        if (off < o[0]) o[0] = off;
        if (off > o[1]) o[1] = off;
      }
      waits.add(f.done);
      if (f.bytes >= this.cfg.rollBytes) this.finishNow(f);
      else {
        f.timer ??= setTimeout(() => this.finishNow(f), this.cfg.rollMs);
        added.add(f);
      }
    }
    for (const f of added) {
      if (f.linger) clearTimeout(f.linger);
      f.linger = setTimeout(() => this.finishNow(f), this.cfg.lingerMs);
    }
    if (copies > 0) this.log.warn({ copies, batch: batch.length }, 'sink.file.duplicates_skipped: redelivered changes already in finished files (a crash or a retry after their file was committed); not written again');
    const results = await Promise.allSettled([...waits]);
    const bad = results.find((r) => r.status === 'rejected');
    if (bad) throw (bad as PromiseRejectedResult).reason;
    return { failed };
  }

  /** The file row of a record, or why it cannot be written. */
  private row(rec: SinkRecord): FileRow | string {
    const op = rec.op === 'truncate' ? 't' : rec.op === 'delete' ? 'd' : rec.update ? 'u' : 'c';
    let values: Row;
    if (rec.op === 'upsert') {
      if (!rec.values) return 'an upsert without values';
      values = rec.values;
      if (rec.keep.length > 0) {
        // Columns the source did not send (unchanged TOAST): left out rather than written as null.
        values = { ...values };
        for (const c of rec.keep) delete values[c];
      }
    } else values = rec.op === 'delete' ? rec.key : {};
    for (const m of [this.meta.op, this.meta.position, this.meta.key, this.meta.ts]) {
      if (Object.hasOwn(values, m)) return `the table has a column named '${m}', which the target uses for its own metadata: set opColumn, positionColumn, keyColumn or timeColumn to another name`;
    }
    return { op, position: rec.position, key: rec.op === 'truncate' ? '[]' : keyString(rec.key), tsMs: rec.sourceTsMs, values };
  }

  /** Parquet: why a value does not fit its column's type (the file's, else the record's declared type), or null. */
  private kindsFit(f: OpenFile | null, rec: SinkRecord, r: FileRow): string | null {
    for (const c of Object.keys(r.values)) {
      const declared = rec.columnTypes?.[c];
      const kind = f?.kinds.get(c) ?? (declared !== undefined ? parquetKind(declared) : null);
      if (!kind) continue;
      const why = misfit(kind, r.values[c]!);
      if (why) return `column ${c}: ${why} (${typeof r.values[c]}) for the file's Parquet type ${kind}${declared ? ` (declared ${declared})` : ''}`;
    }
    return null;
  }

  private addKinds(f: OpenFile, rec: SinkRecord, r: FileRow): void {
    for (const c of Object.keys(r.values)) {
      if (f.kinds.has(c)) continue;
      const declared = rec.columnTypes?.[c];
      if (declared !== undefined) f.kinds.set(c, parquetKind(declared));
      else if (r.values[c] !== null) f.kinds.set(c, kindOfValue(r.values[c]!));
    }
  }

  private newFile(dir: TableDir, part: string): OpenFile {
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    done.catch(() => undefined); // every batch that added rows awaits it; none may be left to reject unheard
    return { dir, part, rows: [], ids: new Set(), bytes: 0, origins: new Map(), kinds: new Map(), timer: null, linger: null, done, resolve, reject };
  }

  /** Close the file to new rows and finish it in the background (its batches await `done`). */
  private finishNow(f: OpenFile): void {
    const k = f.dir.path + '\u0000' + f.part;
    if (this.open.get(k) !== f) return;
    this.open.delete(k);
    if (f.timer) clearTimeout(f.timer);
    if (f.linger) clearTimeout(f.linger);
    const p = this.finish(f).then(f.resolve, f.reject);
    this.finishing.add(p);
    void p.finally(() => this.finishing.delete(p));
  }

  /** Encode, write to a temporary name, fsync, rename, fsync the folder, append the manifest line. */
  private async finish(f: OpenFile): Promise<void> {
    const name = `part-${new Date().toISOString().replace(/[-:.]/g, '')}-${this.instance}-${String(++this.seq).padStart(6, '0')}.${EXT[this.cfg.format]}`;
    const rel = f.part ? `${f.part}/${name}` : name;
    const folder = f.part ? join(f.dir.path, f.part) : f.dir.path;
    const tmp = join(folder, `.${name}.tmp`);
    const final = join(folder, name);
    let bytes: Buffer;
    try {
      bytes = await this.encode(f);
    } catch (err) {
      throw poison('FILE_ENCODE', `${this.where}: encoding ${f.rows.length} rows of ${f.dir.table} as ${this.cfg.format}: ${(err as Error).message}`, err);
    }
    let renamed = false;
    try {
      if (!f.dir.dirs.has(folder)) {
        await fs.mkdir(folder, { recursive: true });
        await syncDir(f.dir.path);
        f.dir.dirs.add(folder);
      }
      const fh = await fs.open(tmp, 'wx');
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, final);
      renamed = true;
      await syncDir(folder);
      const ops: Record<string, number> = {};
      let lo = f.rows[0]!.position;
      let hi = lo;
      for (const r of f.rows) {
        ops[r.op] = (ops[r.op] ?? 0) + 1;
        if (r.position < lo) lo = r.position;
        if (r.position > hi) hi = r.position;
      }
      const entry: ManifestEntry = {
        file: rel,
        format: this.cfg.format,
        rows: f.rows.length,
        bytes: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        ops,
        positions: [lo, hi],
        origins: Object.fromEntries([...f.origins].map(([tp, [a, b]]) => [tp, [String(a), String(b)]])),
        finishedAt: new Date().toISOString(),
      };
      await this.appendManifest(f.dir, entry);
      index(f.dir, entry);
      this.stats.files++;
      this.stats.rows += f.rows.length;
    } catch (err) {
      await fs.unlink(renamed ? final : tmp).catch(() => undefined);
      throw classifyFileError(err, `${this.where}: finishing ${rel} of ${f.dir.table} (${f.rows.length} rows)`);
    }
  }

  private async encode(f: OpenFile): Promise<Buffer> {
    switch (this.cfg.format) {
      case 'jsonl':
        return Buffer.from(f.rows.map((r) => jsonLine(r, this.meta)).join(''), 'utf8');
      case 'csv':
        return Buffer.from(csvText(f.rows, this.meta), 'utf8');
      case 'parquet':
        return parquetBuffer(f.rows, f.kinds, this.meta);
    }
  }

  /** One manifest line, appended and fsynced; a failed append is cut off again (no torn line stays). */
  private appendManifest(dir: TableDir, entry: ManifestEntry): Promise<void> {
    const line = JSON.stringify(entry) + '\n';
    const p = dir.chain.then(async () => {
      const path = join(dir.path, MANIFEST);
      const fh = await fs.open(path, 'a');
      const size = (await fh.stat()).size;
      try {
        await fh.writeFile(line);
        await fh.sync();
      } catch (err) {
        await fh.truncate(size).catch(() => undefined);
        throw err;
      } finally {
        await fh.close();
      }
    });
    dir.chain = p.catch(() => undefined);
    return p;
  }

  /** Whether (key, position) `id` is in a finished file: only files whose offset range of `tp` holds `off` can have it. */
  private async finished(dir: TableDir, tp: string, off: number, id: string): Promise<boolean> {
    const max = dir.maxHi.get(tp);
    if (max === undefined || off > max || !Number.isFinite(off)) return false;
    for (const r of dir.ranges.get(tp) ?? []) {
      if (off < r.lo || off > r.hi) continue;
      let ids = dir.ids.get(r.file);
      if (!ids) {
        if (dir.ids.size >= 16) dir.ids.delete(dir.ids.keys().next().value!);
        ids = fs.readFile(join(dir.path, r.file)).then((b) => idsOf(this.cfg.format, b, this.meta));
        ids.catch(() => dir.ids.delete(r.file));
        dir.ids.set(r.file, ids);
      }
      let set: Set<string>;
      try {
        set = await ids;
      } catch (err) {
        throw fatal('FILE_UNREADABLE', `${this.where}: ${dir.table}: cannot read back finished file ${r.file} (listed in ${MANIFEST}) to check a redelivered change against it: ${(err as Error).message}`, err);
      }
      if (set.has(id)) return true;
    }
    return false;
  }

  private tableDir(table: string): Promise<TableDir> {
    let d = this.dirs.get(table);
    if (!d) {
      d = this.recover(table);
      this.dirs.set(table, d);
      d.catch(() => this.dirs.delete(table));
    }
    return d;
  }

  /** Load a table's manifest and clean its folder of what a crash left (see the header). */
  private async recover(table: string): Promise<TableDir> {
    const path = join(this.cfg.dir, tableFolder(table));
    const dir: TableDir = { table, path, ranges: new Map(), maxHi: new Map(), chain: Promise.resolve(), ids: new Map(), dirs: new Set() };
    const mpath = join(path, MANIFEST);
    try {
      await fs.mkdir(path, { recursive: true });
      let text = '';
      try {
        text = await fs.readFile(mpath, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      const end = text.lastIndexOf('\n') + 1;
      if (end < text.length) {
        this.log.warn({ table, manifest: mpath, torn: text.length - end }, 'sink.file.manifest_torn: a manifest line cut by a crash is removed (its file is not committed)');
        await fs.truncate(mpath, Buffer.byteLength(text.slice(0, end)));
      }
      const listed = new Set<string>();
      const lines = text.slice(0, end).split('\n');
      for (let i = 0; i < lines.length; i++) {
        if (lines[i] === '') continue;
        let e: ManifestEntry;
        try {
          e = JSON.parse(lines[i]!) as ManifestEntry;
        } catch {
          throw fatal('FILE_MANIFEST', `${this.where}: ${mpath} line ${i + 1} is not JSON: the manifest was edited or damaged; repair or move it`);
        }
        listed.add(e.file);
        index(dir, e);
      }
      for (const sub of ['', ...(await fs.readdir(path, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name)]) {
        const folder = sub ? join(path, sub) : path;
        for (const name of await fs.readdir(folder)) {
          const rel = sub ? `${sub}/${name}` : name;
          if (name.startsWith('.part-') && name.endsWith('.tmp')) {
            await fs.unlink(join(folder, name));
            this.stats.tmpRemoved++;
          } else if (name.startsWith('part-') && !listed.has(rel)) {
            await fs.unlink(join(folder, name));
            this.stats.orphansRemoved++;
            this.log.warn({ table, file: rel }, 'sink.file.orphan_removed: a finished file not in the manifest (crash before its manifest line); its rows come again');
          }
        }
        if (sub) dir.dirs.add(folder);
      }
    } catch (err) {
      throw classifyFileError(err, `${this.where}: recovering ${path}`);
    }
    return dir;
  }
}

/** Record a finished file in the dedup index. */
function index(dir: TableDir, e: ManifestEntry): void {
  for (const [tp, [a, b]] of Object.entries(e.origins ?? {})) {
    const lo = Number(a);
    const hi = Number(b);
    let l = dir.ranges.get(tp);
    if (!l) dir.ranges.set(tp, (l = []));
    l.push({ lo, hi, file: e.file });
    if (hi > (dir.maxHi.get(tp) ?? -1)) dir.maxHi.set(tp, hi);
  }
}

/** The folder of a table: '<schema>.<table>', characters other than letters, digits, _ $ - percent-encoded. */
export function tableFolder(table: string): string {
  const n = parseTableName(table);
  const enc = (s: string) => s.replace(/[^A-Za-z0-9_$-]/g, (ch) => [...Buffer.from(ch, 'utf8')].map((b) => '%' + b.toString(16).toUpperCase().padStart(2, '0')).join(''));
  return `${enc(n.schema)}.${enc(n.table)}`;
}

async function syncDir(path: string): Promise<void> {
  const fh = await fs.open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** File-system errors → the taxonomy: a full disk or an I/O error may pass (retriable); rights and a read-only or wrong path need the operator (fatal). */
export function classifyFileError(err: unknown, context: string): SynclineError {
  if (err && typeof err === 'object' && 'kind' in err && (err as SynclineError).kind) return err as SynclineError;
  const code = (err as NodeJS.ErrnoException | null)?.code ?? 'UNKNOWN';
  const msg = `${context}: ${(err as Error)?.message ?? String(err)}`;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
    case 'ENOTDIR':
    case 'EISDIR':
    case 'ENAMETOOLONG':
      return fatal(`FILE_${code}`, `${msg} (give the sink's user write access to the directory, or change dir)`, err);
    default:
      return retriable(`FILE_${code}`, msg, err);
  }
}

function describe(rec: SinkRecord): string {
  return rec.op === 'truncate' ? `truncate ${rec.table}` : `${rec.op} ${rec.table} key ${keyString(rec.key)} at ${rec.position}`;
}
