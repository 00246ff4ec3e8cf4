/**
 * Conflict strategies: given one conflicting change (the source version, the target row as it is
 * now, and the row syncline last wrote), say what happens to it. Detection (is it a conflict at
 * all?) is the applier's; this module only decides.
 *
 *   source-wins       'source'
 *   target-wins       'target'
 *   latest-timestamp  the later `field` wins; equal (or both null) → the greater content hash,
 *                     so both pipelines of a two-way pair pick the same row; a row without the
 *                     column at all → 'manual' (refused at start already: timestampFieldProblem)
 *   manual            'manual' (parked as a `conflict` dead letter for an operator)
 *   custom            the user's resolve(conflict) from `module`; a throw or an answer that is not
 *                     'source' | 'target' | 'manual' | { merged: row } | a row object → 'manual' with
 *                     the error, so the change is parked, never lost, and the pipeline goes on.
 */
import { pathToFileURL } from 'node:url';
import { resolve as resolvePath } from 'node:path';
import { own, type Row, type Value } from '../core/envelope.js';
import type { ConflictConfig, TableConfig } from '../core/config/schema.js';
import { fatal, poison, SynclineError } from '../core/errors.js';
import { rowHash } from '../core/hash.js';

/** What the resolver sees (and what a custom module receives). */
export interface Conflict {
  pipeline: string;
  table: string;
  op: 'upsert' | 'delete';
  key: Row;
  /** The change's row (null for a delete). */
  source: Row | null;
  /** The target row now (null: no row). */
  target: Row | null;
  /** The row syncline last wrote for this key (null: deleted or not kept; kept for manual/custom tables). */
  lastSynced: Row | null;
  position: string;
  sourceTsMs: number;
}

export type Choice =
  | { kind: 'source' }
  | { kind: 'target' }
  | { kind: 'merged'; row: Row }
  | { kind: 'manual'; error?: SynclineError };

export type ResolveFn = (c: Conflict) => unknown;

export interface Resolver {
  readonly strategy: ConflictConfig['strategy'];
  resolve(c: Conflict): Promise<Choice>;
}

/** Order of two canonical values of one column (timestamps are fixed-width ISO strings). */
export function compareValues(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The change's timestamp: its `field`, or for a delete its commit time (ISO, comparable with timestamptz text). */
function sourceTime(c: Conflict, field: string): Value {
  // The commit time is known to the millisecond; a row written in the same transaction may carry a
  // later microsecond of that millisecond, so the delete counts as happening at its end (.xxx999).
  if (c.op === 'delete') return new Date(c.sourceTsMs).toISOString().replace('Z', '999Z'); // timestamptz canonical form
  return c.source?.[field] ?? null;
}

/**
 * latest-timestamp without a conflict: the target row's `field` is later than the change's. With
 * `tieBreak` (a mesh), also the same time where latestTimestamp's tie-break keeps the target row (a
 * delete loses a tie, rows by content hash): (time, content hash) is then one total order that
 * every node applies on every path, whatever it recorded of the key, so the nodes converge in
 * whatever order the changes reach them. Without it (one-way, a pair) a tie applies the change: an
 * update that leaves the timestamp as it was (an application that does not bump it) is still an
 * update of the row syncline wrote.
 */
export function olderThanTarget(c: Pick<Conflict, 'op' | 'source' | 'target' | 'sourceTsMs'>, field: string, tieBreak = false): boolean {
  if (c.target === null) return false;
  const theirs = c.target[field] ?? null;
  const ours = sourceTime(c as Conflict, field);
  if (theirs === null || ours === null) return false;
  const d = compareValues(theirs, ours);
  return d > 0 || (tieBreak && d === 0 && latestTimestamp(c as Conflict, field) === 'target');
}

export function latestTimestamp(c: Conflict, field: string): 'source' | 'target' {
  if (c.target === null) return 'source';
  const theirs = c.target[field] ?? null;
  const ours = sourceTime(c, field);
  if (theirs !== null && ours !== null) {
    const d = compareValues(theirs, ours);
    if (d !== 0) return d > 0 ? 'target' : 'source';
  } else if (theirs !== null) return 'target';
  else if (ours !== null) return 'source';
  // Tie: the same answer from either side of a two-way pair (deleted loses to a row).
  if (c.source === null) return 'target';
  const cols = Object.keys(c.source);
  const pick = (r: Row) => Object.fromEntries(cols.map((k) => [k, r[k] ?? null])) as Row;
  return rowHash(pick(c.target)) > rowHash(c.source) ? 'target' : 'source';
}

/**
 * Start-up check of latest-timestamp (capture, where the source columns are known): a table whose
 * strategy is latest-timestamp must have the column it compares. `field` names a target column, so
 * the source column is the one the table's renames map to it. Without it every conflict would be a
 * tie decided by content hash, i.e. a target-side edit overwritten or kept by chance: refused.
 * Returns the error message, or null when the table is fine (or uses another strategy).
 */
export function timestampFieldProblem(pipeline: string, t: Pick<TableConfig, 'source' | 'columns' | 'conflict'>, base: ConflictConfig, sourceColumns: readonly string[]): string | null {
  const c = t.conflict ?? base;
  if (c.strategy !== 'latest-timestamp') return null;
  if (sourceColumns.some((col) => (own(t.columns, col) ?? col) === c.field)) return null;
  const where = t.conflict ? `tables[].conflict of ${t.source}` : "the pipeline's conflict (or defaults.conflict)";
  return (
    `pipeline ${pipeline}: table ${t.source} has no column ${c.field}, which its conflict strategy latest-timestamp compares (${where}: ` +
    `field defaults to updated_at); without it a target-side edit would be overwritten or kept by chance. Set conflict.field to a timestamp ` +
    `column of the table (for this table only: tables[].conflict: { strategy: latest-timestamp, field: <column> }), or choose another ` +
    `strategy: conflict: { strategy: source-wins } (target-side edits are overwritten), target-wins, or manual (conflicts wait for an operator)`
  );
}

/** Interpret what a custom resolve() returned. */
export function interpretChoice(v: unknown, c: Conflict): Choice {
  if (v === 'source' || v === 'target') return { kind: v };
  if (v === 'manual') return { kind: 'manual' };
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v)) {
    const o = v as Record<string, unknown>;
    const row = 'merged' in o && Object.keys(o).length === 1 ? o.merged : o;
    if (row === null || typeof row !== 'object' || Array.isArray(row)) throw poison('CONFLICT_RESOLVER_BAD_RESULT', `merged must be a row object, got ${describe(row)}`);
    const merged = row as Row;
    for (const [k, val] of Object.entries(merged)) {
      if (!isValue(val)) throw poison('CONFLICT_RESOLVER_BAD_RESULT', `merged row: column ${k} has ${describe(val)} value`);
    }
    for (const [k, val] of Object.entries(c.key)) {
      if (k in merged && JSON.stringify(String(merged[k])) !== JSON.stringify(String(val))) {
        throw poison('CONFLICT_RESOLVER_BAD_RESULT', `merged row changes key column ${k} (${String(val)} → ${String(merged[k])})`);
      }
    }
    return { kind: 'merged', row: { ...merged, ...c.key } };
  }
  throw poison('CONFLICT_RESOLVER_BAD_RESULT', `resolve() returned ${describe(v)}; expected 'source', 'target', 'manual', { merged: row } or a row object`);
}

function isValue(v: unknown): boolean {
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'bigint' || Buffer.isBuffer(v)) return true;
  if (typeof v === 'number') return true;
  if (Array.isArray(v)) return v.every(isValue);
  return false;
}

function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (typeof v === 'string') return `the string '${v.slice(0, 40)}'`;
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

/** Load a custom resolver module (path relative to the config file's directory). */
export async function loadResolveFn(moduleSpec: string, baseDir: string, where: string): Promise<ResolveFn> {
  const path = resolvePath(baseDir, moduleSpec);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (err) {
    throw fatal('CONFLICT_MODULE_LOAD', `${where}: cannot load conflict module ${path}: ${(err as Error).message}`, err);
  }
  const fn = mod.resolve ?? (mod.default as Record<string, unknown> | undefined)?.resolve ?? mod.default;
  if (typeof fn !== 'function') throw fatal('CONFLICT_MODULE_NO_RESOLVE', `${where}: conflict module ${path} does not export a resolve(conflict) function`);
  return fn as ResolveFn;
}

export function makeResolver(cfg: ConflictConfig, fn?: ResolveFn): Resolver {
  const strategy = cfg.strategy;
  return {
    strategy,
    async resolve(c: Conflict): Promise<Choice> {
      switch (strategy) {
        case 'source-wins':
          return { kind: 'source' };
        case 'target-wins':
          return { kind: 'target' };
        case 'latest-timestamp': {
          // Checked at start (timestampFieldProblem); a column dropped since, or a target table
          // without it, would make the decision a coin toss: parked for an operator instead.
          const lacking = c.target !== null && !(cfg.field in c.target) ? 'target row' : c.source !== null && !(cfg.field in c.source) ? 'change' : null;
          if (lacking) return { kind: 'manual', error: poison('CONFLICT_FIELD_MISSING', `latest-timestamp: the ${lacking} of ${c.table} has no column ${cfg.field} to compare; parked instead of deciding by chance (set conflict.field, or another strategy)`) };
          return { kind: latestTimestamp(c, cfg.field) };
        }
        case 'manual':
          return { kind: 'manual' };
        case 'custom': {
          if (!fn) return { kind: 'manual', error: fatal('CONFLICT_MODULE_MISSING', 'no resolver loaded') };
          try {
            return interpretChoice(await fn({ ...c, key: { ...c.key }, source: c.source && { ...c.source }, target: c.target && { ...c.target }, lastSynced: c.lastSynced && { ...c.lastSynced } }), c);
          } catch (err) {
            const e = err instanceof SynclineError ? err : poison('CONFLICT_RESOLVER_THREW', `resolve() threw: ${(err as Error)?.message ?? String(err)}`, err);
            return { kind: 'manual', error: e };
          }
        }
      }
    },
  };
}

/**
 * Field-by-field diff of a conflict: every column where source, target and last-synced are not all
 * equal. `open` (field encryption): a copy of a row with its encrypted values decrypted, used for the
 * comparison only — an encrypted column is compared by its plaintext (its ciphertexts differ at every
 * encryption, random nonce), and the diff still lists the values as they are (ciphertexts).
 */
export function conflictDiff(c: Pick<Conflict, 'source' | 'target' | 'lastSynced'>, open?: (row: Row) => Row): { field: string; source: Value; target: Value; lastSynced: Value }[] {
  const cols = new Set<string>([...Object.keys(c.source ?? {}), ...Object.keys(c.target ?? {}), ...Object.keys(c.lastSynced ?? {})]);
  const out: { field: string; source: Value; target: Value; lastSynced: Value }[] = [];
  const same = (a: Value, b: Value) => rowHash({ v: a }) === rowHash({ v: b });
  const o = (r: Row | null) => (r && open ? open(r) : r);
  const [os, ot, ol] = [o(c.source), o(c.target), o(c.lastSynced)];
  for (const f of cols) {
    const s = os?.[f] ?? null;
    const t = ot?.[f] ?? null;
    const l = ol?.[f] ?? null;
    if (!same(s, t) || !same(s, l)) out.push({ field: f, source: c.source?.[f] ?? null, target: c.target?.[f] ?? null, lastSynced: c.lastSynced?.[f] ?? null });
  }
  return out;
}
