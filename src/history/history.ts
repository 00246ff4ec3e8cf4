/**
 * Change history (ADR 0031): what one applied change looks like in the history, and the pure
 * decisions around it — which tables keep history, the entries of a batch of sink records given the
 * target rows before it, the field diff of a timeline step, and the key text of `--key`.
 *
 * An entry is one change a sink decided on: its before and after images (target column names,
 * values as the target holds them: encrypted columns as ciphertext unless the target decrypts),
 * source position and commit time, apply time, how it was decided, and whether it changed the
 * target (`changed`: asof and rollback replay only those).
 */
import type { HistoryRetention, PipelineConfig, TableConfig } from '../core/config/schema.js';
import { targetTablesOf } from '../core/config/schema.js';
import { setColumn, type Row, type Value } from '../core/envelope.js';
import { keyString, keyStringOf, type Decision, type HistoryNote, type SinkRecord, type TargetRows } from '../sink/sink.js';

/**
 * How a change was decided.
 *  applied               written as it came (no conflict)
 *  conflict_source_won   a conflict the change won (strategy in `strategy`)
 *  conflict_merged       a conflict settled with a merged row
 *  conflict_target_won   a conflict the target row won: nothing written (after = the target row kept)
 *  conflict_parked       a conflict parked for an operator: nothing written yet
 *  resolved_source | resolved_merged | resolved_target   settled by an operator (`by`)
 *  baseline              the target row as it was when history began for the table (see coverage)
 *  rolled_back           written back by `syncline rollback` (`by`: who), to the row as it was at an instant
 */
// The decisions (listed above) and the note a SinkRecord carries live with the record (src/sink/sink.ts).
export type { Decision, HistoryNote } from '../sink/sink.js';

/** JSON as stored (jsonb): values of Row made JSON (bigint → string, Buffer → '\x' hex, non-finite numbers → their text). */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonRow = { [column: string]: Json };

export interface HistoryEntry {
  pipeline: string;
  table: string;
  /** keyString of the key row ('' for a truncate). */
  key: string;
  keyRow: JsonRow | null;
  op: 'upsert' | 'delete' | 'truncate' | 'baseline';
  position: string;
  commitTsMs: number | null;
  decision: Decision;
  strategy: string | null;
  by: string | null;
  /** Target row before the change; null: there was none (or, with beforeKnown false, it was not read). */
  before: JsonRow | null;
  beforeKnown: boolean;
  /** Target row after the change; null: none (deleted). */
  after: JsonRow | null;
  /** The target changed (asof and rollback replay only these). */
  changed: boolean;
  /** Apply time; unset: the store's clock when the row is written (clock_timestamp() in the write's transaction). */
  appliedAt?: Date;
}

/** A stored entry (as read back). */
export interface StoredEntry extends Omit<HistoryEntry, 'appliedAt'> {
  seq: string;
  appliedAt: string;
  commitAt: string | null;
}

export const DEFAULT_HISTORY = { days: 90, maxPerKey: 10_000 } as const;

/** Retention of one table's history: null when it keeps none. */
export type TableRetention = { days: number; maxPerKey: number } | null;

/** A table's effective history setting: the table's override, else the pipeline's; off when neither says on. */
export function tableRetention(p: { history?: HistoryRetention }, t: Pick<TableConfig, 'history'>): TableRetention {
  const base = p.history;
  const enabled = t.history ? (t.history.enabled ?? true) : (base?.enabled ?? false);
  if (!enabled) return null;
  return { days: t.history?.days ?? base?.days ?? DEFAULT_HISTORY.days, maxPerKey: t.history?.maxPerKey ?? base?.maxPerKey ?? DEFAULT_HISTORY.maxPerKey };
}

/** Target table name → retention, for the tables of a pipeline that keep history (empty: none). */
export function pipelineRetention(p: Pick<PipelineConfig, 'tables' | 'history'>): Map<string, { days: number; maxPerKey: number }> {
  const out = new Map<string, { days: number; maxPerKey: number }>();
  for (const t of p.tables) {
    const r = tableRetention(p, t);
    if (r) for (const table of targetTablesOf(t)) out.set(table, r);
  }
  return out;
}

/**
 * A key's text in the history: the JSON array of its values with numbers written as strings, so
 * the same key reads the same whether a value came as a number or a bigint (source decoding and
 * target reads may differ there): {id: 42} → '["42"]', {a: 1, b: 'x'} → '["1","x"]'.
 */
export function historyKey(key: Row): string {
  return keyStringOf(Object.values(key).map((v) => (typeof v === 'number' || typeof v === 'bigint' ? String(v) : v)));
}

export function jsonValue(v: Value): Json {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (typeof v === 'bigint') return v.toString();
  if (Buffer.isBuffer(v)) return '\\x' + v.toString('hex');
  if (Array.isArray(v)) return v.map(jsonValue);
  return String(v);
}

export function jsonRow(r: Row | null | undefined): JsonRow | null {
  if (!r) return null;
  const out: JsonRow = {};
  for (const [k, v] of Object.entries(r)) if (v !== undefined) setColumn(out, k, jsonValue(v));
  return out;
}

/**
 * History entries of records a sink is about to commit, in batch order. `before`: the target rows
 * of their keys before the batch (read in the write's transaction), or undefined for a table not
 * read (before unknown). A key's later records see the earlier ones' after. Records without a
 * history note are left out (but still move the key's row along).
 */
export function entriesOf(pipeline: string, records: SinkRecord[], before: TargetRows | undefined): HistoryEntry[] {
  const out: HistoryEntry[] = [];
  const current = new Map<string, { row: Row | null; known: boolean }>();
  const truncated = new Set<string>();
  for (const r of records) {
    if (r.op === 'sweep') continue;
    if (r.op === 'truncate') {
      truncated.add(r.table);
      for (const k of [...current.keys()]) if (k.startsWith(r.table + '\u0000')) current.set(k, { row: null, known: true });
      if (r.history) out.push({ pipeline, table: r.table, key: '', keyRow: null, op: 'truncate', position: r.position, commitTsMs: r.sourceTsMs ?? null, decision: r.history.decision, strategy: r.history.strategy ?? null, by: r.history.by ?? null, before: null, beforeKnown: false, after: null, changed: true });
      continue;
    }
    const ks = keyString(r.key);
    const ck = r.table + '\u0000' + ks;
    let cur = current.get(ck);
    if (!cur) {
      const t = before?.get(r.table);
      cur = truncated.has(r.table) ? { row: null, known: true } : t ? { row: t.get(ks) ?? null, known: true } : { row: null, known: false };
    }
    const after: Row | null = r.op === 'delete' ? null : { ...(cur.row ?? {}), ...(r.values ?? {}), ...r.key };
    if (r.history) {
      out.push({
        pipeline, table: r.table, key: historyKey(r.key), keyRow: jsonRow(r.key), op: r.op, position: r.position, commitTsMs: r.sourceTsMs ?? null,
        decision: r.history.decision, strategy: r.history.strategy ?? null, by: r.history.by ?? null,
        before: jsonRow(cur.row), beforeKnown: cur.known, after: jsonRow(after), changed: true,
      });
    }
    current.set(ck, { row: after, known: true });
  }
  return out;
}

/** An entry for a decision that wrote nothing (target won, parked): the target row stays as it is. */
export function unchangedEntry(pipeline: string, r: SinkRecord, target: Row | null, read: boolean, note: HistoryNote): HistoryEntry {
  return {
    pipeline, table: r.table, key: historyKey(r.key), keyRow: jsonRow(r.key), op: r.op === 'delete' ? 'delete' : 'upsert', position: r.position, commitTsMs: r.sourceTsMs ?? null,
    decision: note.decision, strategy: note.strategy ?? null, by: note.by ?? null,
    before: jsonRow(target), beforeKnown: read, after: jsonRow(target), changed: false,
  };
}

export interface FieldChange {
  field: string;
  from: Json | undefined;
  to: Json | undefined;
}

/** Fields that differ between two images (added, removed, changed), in column order of `after` then `before`. */
export function fieldDiff(before: JsonRow | null, after: JsonRow | null): FieldChange[] {
  const fields = [...new Set([...Object.keys(after ?? {}), ...Object.keys(before ?? {})])];
  const out: FieldChange[] = [];
  for (const f of fields) {
    const a = before ? before[f] : undefined;
    const b = after ? after[f] : undefined;
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ field: f, from: a, to: b });
  }
  return out;
}

/**
 * The history key text of a `--key` argument: a JSON array of the key's values ('[42]', '[1,"a"]'),
 * a JSON object of key columns ({"id":42}, in key column order), or a bare value (42, abc).
 */
export function keyArgument(k: string): string {
  const t = k.trim();
  let parsed: unknown;
  try {
    parsed = JSON.parse(t);
  } catch {
    return historyKey({ k: t });
  }
  const values = Array.isArray(parsed) ? parsed : parsed !== null && typeof parsed === 'object' ? Object.values(parsed) : [parsed];
  return historyKey(Object.fromEntries(values.map((v, i) => [String(i), v as Value])));
}
