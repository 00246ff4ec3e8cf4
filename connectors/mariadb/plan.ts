/**
 * What a batch of the MariaDB sink becomes, as pure functions: the records prepared (validated, `keep`
 * columns resolved, values still canonical), then per table in order of first appearance
 *
 *   DELETE FROM `db`.`t`                                    a truncate (earlier records of the table are moot;
 *                                                           TRUNCATE TABLE would commit implicitly)
 *   DELETE FROM `db`.`t` WHERE `id` IN (1,2)                keys whose last record is a delete
 *   INSERT INTO `db`.`t` (`id`,`v`) VALUES (3,'a'),(4,'b')
 *     ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)             one per distinct column set
 *   INSERT INTO `db`.`t` (`id`,`v`) VALUES (5,'c')          `absent` rows: a plain insert, which fails
 *                                                           (duplicate on PRIMARY) if a row appeared
 *
 * Several records of one key collapse to the last; an upsert after a delete of its key in the same
 * batch deletes first (so columns it keeps do not survive from the deleted row). `keep` columns of an
 * upsert take the value an earlier upsert of the key in this batch carried, else they are left out
 * (existing row: unchanged, ON DUPLICATE KEY UPDATE does not name them; new row: NULL/default).
 */
import { collapseByKey } from '../../src/sink/collapse.js';
import type { Row, Value } from '../../src/core/envelope.js';
import { poison, type SynclineError } from '../../src/core/errors.js';
import { keyString, type FailedRecord, type SinkRecord } from '../../src/sink/sink.js';
import { quoteIdent } from './ddl.js';
import { literal, type ColumnInfo } from './types.js';

export interface Prepared {
  rec: SinkRecord;
  table: string;
  keyCols: string[];
  /** Key identity (column names + keyString), for collapsing. */
  nkey: string;
  /** Columns to write → canonical value (key columns first), for upserts; null otherwise. */
  row: Map<string, Value> | null;
  /** The same as SQL literals, once the table's columns are known (withLiterals). */
  lit?: Map<string, string>;
}

export interface TableMeta {
  table: string;
  /** `db`.`t` */
  ident: string;
  columns: Map<string, ColumnInfo & { generated: boolean }>;
  primaryKey: string[];
  /** A unique index besides the primary key: upserts then must not use ON DUPLICATE KEY UPDATE blindly (see MariadbSink.runUpsert). */
  otherUnique: boolean;
}

export type Stmt =
  | { kind: 'sql'; sql: string; table: string }
  /** Upserts of one column set (rows of literals, key columns first). */
  | { kind: 'upsert'; meta: TableMeta; cols: string[]; keyCols: string[]; rows: string[][]; absent: boolean };

/** Rows per INSERT or DELETE statement, and the SQL text size after which a statement is cut. */
const MAX_ROWS = 5000;
export const MAX_SQL = 4 * 1024 * 1024;

const safeKey = (key: Row | null | undefined): string => {
  try {
    return keyString(key ?? {});
  } catch {
    return '?';
  }
};

/** Validate records (bad ones → `failed`, poison) and resolve `keep` columns within the batch. */
export function prepare(batch: SinkRecord[], failed: FailedRecord[], where: string): Prepared[] {
  const out: Prepared[] = [];
  const known = new Map<string, Map<string, Value> | null>();
  const keeps = batch.some((r) => (r?.keep?.length ?? 0) > 0);
  for (const rec of batch) {
    try {
      if (typeof rec.table !== 'string' || rec.table.length === 0) throw new Error('record has no target table');
      if (rec.op === 'sweep') continue; // the applier turns a sweep into deletes (and ensureTable)
      if (rec.op === 'truncate') {
        if (keeps) for (const k of [...known.keys()]) if (k.startsWith(rec.table + '\u0000')) known.delete(k);
        out.push({ rec, table: rec.table, keyCols: [], nkey: '', row: null });
        continue;
      }
      if (rec.op !== 'upsert' && rec.op !== 'delete') throw new Error(`unknown op '${String(rec.op)}'`);
      const keyCols = Object.keys(rec.key ?? {});
      if (keyCols.length === 0) throw new Error(`${rec.op} without key columns`);
      for (const c of keyCols) if (rec.key[c] === null || rec.key[c] === undefined) throw new Error(`key column ${c} is null`);
      const nkey = keyCols.join(',') + '\u0000' + keyString(rec.key);
      const slot = rec.table + '\u0000' + nkey;
      if (rec.op === 'delete') {
        if (keeps) known.set(slot, null);
        out.push({ rec, table: rec.table, keyCols, nkey, row: null });
        continue;
      }
      if (!rec.values) throw new Error('upsert without values');
      const keep = rec.keep && rec.keep.length > 0 ? new Set(rec.keep) : null;
      const row = new Map<string, Value>();
      for (const c of keyCols) row.set(c, rec.key[c]!);
      for (const [c, v] of Object.entries(rec.values)) {
        if (v === undefined || keep?.has(c) || row.has(c)) continue;
        row.set(c, v);
      }
      if (keep) {
        const prev = known.get(slot);
        for (const c of keep) if (!keyCols.includes(c) && prev?.has(c)) row.set(c, prev.get(c)!);
      }
      if (keeps) known.set(slot, row);
      out.push({ rec, table: rec.table, keyCols, nkey, row });
    } catch (err) {
      failed.push({ record: rec, error: poison('INVALID_RECORD', `${where}: ${rec.op} ${rec.table} key ${safeKey(rec.key)}: ${(err as Error).message}`, err) });
    }
  }
  return out;
}

/**
 * Convert each record's values to SQL literals for its table's columns (generated columns left out).
 * A value MariaDB cannot hold fails its record (poison, naming the column); the rest go on.
 */
export function withLiterals(records: Prepared[], meta: (table: string) => TableMeta, failed: FailedRecord[], recordError: (p: Prepared, e: SynclineError) => SynclineError): Prepared[] {
  const out: Prepared[] = [];
  for (const p of records) {
    if (p.rec.op === 'truncate') {
      out.push(p);
      continue;
    }
    const m = meta(p.table);
    const lit = new Map<string, string>();
    try {
      const cols = p.row ? [...p.row.keys()] : p.keyCols;
      for (const c of cols) {
        const col = m.columns.get(c)!;
        if (col.generated) continue;
        lit.set(c, literal(p.row ? p.row.get(c) : p.rec.key[c], col));
      }
      out.push({ ...p, lit });
    } catch (err) {
      failed.push({ record: p.rec, error: recordError(p, err as SynclineError) });
    }
  }
  return out;
}

/** Records by table (tables in order of first appearance, each table's records in order). */
export function byTable(records: Prepared[]): Map<string, Prepared[]> {
  const out = new Map<string, Prepared[]>();
  for (const p of records) {
    let l = out.get(p.table);
    if (!l) out.set(p.table, (l = []));
    l.push(p);
  }
  return out;
}

/** Statements for a run of prepared records (literals resolved), in apply order. */
export function plan(records: Prepared[], meta: (table: string) => TableMeta): Stmt[] {
  const stmts: Stmt[] = [];
  for (const [table, all] of byTable(records)) {
    const m = meta(table);
    const { truncate, last } = collapseByKey(all);
    if (truncate) stmts.push({ kind: 'sql', sql: `DELETE FROM ${m.ident}`, table });
    const deletes = new Map<string, Prepared[]>();
    const upserts = new Map<string, { cols: string[]; keyCols: string[]; rows: Prepared[]; absent: boolean }>();
    for (const { p, deleteFirst } of last) {
      if (p.rec.op === 'delete' || deleteFirst) {
        const sig = p.keyCols.join('\u0000');
        let g = deletes.get(sig);
        if (!g) deletes.set(sig, (g = []));
        g.push(p);
      }
      if (p.rec.op !== 'upsert') continue;
      const absent = p.rec.absent === true && !deleteFirst;
      const rest = [...p.lit!.keys()].filter((c) => !p.keyCols.includes(c)).sort();
      const sig = (absent ? 'a' : '') + p.keyCols.join('\u0000') + '\u0001' + rest.join('\u0000');
      let g = upserts.get(sig);
      if (!g) upserts.set(sig, (g = { cols: [...p.keyCols, ...rest], keyCols: p.keyCols, rows: [], absent }));
      g.rows.push(p);
    }
    for (const g of deletes.values()) {
      const keyCols = g[0]!.keyCols;
      for (const part of cut(g.map((p) => keyTuple(p, keyCols)))) {
        stmts.push({ kind: 'sql', sql: `DELETE FROM ${m.ident} WHERE ${keyIn(keyCols, part)}`, table });
      }
    }
    for (const g of upserts.values()) {
      const rows = g.rows.map((p) => g.cols.map((c) => p.lit!.get(c)!));
      for (const part of cut(rows.map((r) => ({ r, text: '(' + r.join(',') + ')' })))) {
        stmts.push({ kind: 'upsert', meta: m, cols: g.cols, keyCols: g.keyCols, rows: part.map((x) => x.r), absent: g.absent });
      }
    }
  }
  return stmts;
}

function keyTuple(p: Prepared, keyCols: string[]): { text: string } {
  const vals = keyCols.map((c) => p.lit!.get(c)!);
  return { text: vals.length === 1 ? vals[0]! : '(' + vals.join(',') + ')' };
}

/** `k IN (1,2)` or `(k1,k2) IN ((1,'a'),(2,'b'))` of tuples already written. */
export function keyIn(keyCols: string[], tuples: { text: string }[]): string {
  const lhs = keyCols.length === 1 ? quoteIdent(keyCols[0]!) : '(' + keyCols.map(quoteIdent).join(',') + ')';
  return `${lhs} IN (${tuples.map((t) => t.text).join(',')})`;
}

/** Split rows so that a statement stays under MAX_ROWS rows and about MAX_SQL bytes of text. */
export function cut<T extends { text: string }>(rows: T[]): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let size = 0;
  for (const r of rows) {
    if (cur.length > 0 && (cur.length >= MAX_ROWS || size + r.text.length > MAX_SQL)) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(r);
    size += r.text.length + 1;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** INSERT … [ON DUPLICATE KEY UPDATE] of rows of literals. */
export function insertSql(meta: TableMeta, cols: string[], keyCols: string[], rows: string[][], update: boolean): string {
  const head = `INSERT INTO ${meta.ident} (${cols.map(quoteIdent).join(',')}) VALUES ${rows.map((r) => '(' + r.join(',') + ')').join(',')}`;
  if (!update) return head;
  const set = cols.filter((c) => !keyCols.includes(c));
  // Nothing but the key: an existing row stays as it is (`k = k` changes nothing).
  const assign = set.length > 0 ? set.map((c) => `${quoteIdent(c)} = VALUES(${quoteIdent(c)})`) : [`${quoteIdent(keyCols[0]!)} = ${quoteIdent(keyCols[0]!)}`];
  return `${head} ON DUPLICATE KEY UPDATE ${assign.join(', ')}`;
}
