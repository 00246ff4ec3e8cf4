/**
 * `syncline rollback` (ADR 0031, "How rollback and verify build on it"): put a pipeline's target
 * rows back to their state at an instant, with compensating writes through the pipeline's own
 * Applier, so version state, history and metrics stay right.
 *
 * Runs in the process that runs the pipeline's sink (it has the Applier; src/history/rollback-api.ts
 * serves POST /api/pipelines/:name/rollback there, the CLI asks it). Per table:
 *  1. refused, before anything is held or written, when the history does not reach back to `to`
 *     (HistoryStore.covers: HISTORY_NOT_COVERED);
 *  2. with `pause`, the pipeline's consumer stage is held and the batches it had fetched finish;
 *  3. with no batch being applied (Applier.exclusively; a dry run reads without it), so that the
 *     history holds every change the target does: want = `asof(to)`; candidates = the keys with a
 *     changed entry applied after `to` (every key the table had at `to` as well when a truncate came
 *     after it), narrowed to `--key`; their current target rows are read and compared with want
 *     (planRollback: over the columns the history holds for the key at `to`), giving per key
 *     "upsert this row", "delete" or nothing;
 *  4. unless a dry run, those are written by Applier.rollbackWrite: decision `rolled_back`, each
 *     key's version state moved just past its stored position (rollbackPosition), so the key's next
 *     source change applies again as usual.
 * Idempotent: a second run finds the target equal to want (the rolled_back entries are the keys'
 * latest changes; their rows are read back equal). `pause` holds the pipeline's consumer stage first
 * (the pipeline pause of src/sync/pause.ts, then ConsumerStage.settled) so no later change — already waiting in Kafka or yet to come —
 * overwrites what the rollback wrote until an operator resumes it (POST …/resume, `syncline pipeline resume`).
 * Every run, dry or not, is recorded in the audit trail (action `rollback`).
 */
import type { SynclineConfig } from '../core/config/schema.js';
import type { Row } from '../core/envelope.js';
import { fatal } from '../core/errors.js';
import { tableMatches } from '../core/names.js';
import { audit } from '../security/audit/recorder.js';
import type { MaskPolicy } from '../security/masking/policy.js';
import type { Applier } from '../sink/applier.js';
import { keyString } from '../sink/sink.js';
import { fieldDiff, jsonRow, keyArgument, pipelineRetention, type FieldChange, type Json, type JsonRow } from './history.js';
import { openStore, requireHistory } from './recorder.js';

export interface RollbackRequest {
  pipeline: string;
  to: Date;
  /** One target table (default: every table of the pipeline that keeps history). */
  table?: string;
  /** One key of `table` (as `history show --key`). */
  key?: string;
  dryRun?: boolean;
  /** Hold the pipeline's consumer stage (before writing) until resumed. */
  pause?: boolean;
  /** Who asked (the history entries' `by`). */
  by?: string;
}

export interface KeyChange {
  table: string;
  key: string;
  action: 'upsert' | 'delete';
  /** The target row now (null: none). */
  current: JsonRow | null;
  /** The row at `to` (null: none, deleted). */
  target: JsonRow | null;
  diff: FieldChange[];
}

export interface TableRollback {
  table: string;
  /** How far the table's history reaches back. */
  historySince: string;
  /** Keys compared (changed after `to`). */
  examined: number;
  upserts: number;
  deletes: number;
  changes: KeyChange[];
  /** Written (0 in a dry run). */
  written: number;
  /** Keys left alone: parked behind an open conflict (settle it first). */
  parked: string[];
  /** Keys whose write failed (dead-lettered) or whose position could not move on. */
  failed: string[];
}

export interface RollbackResult {
  pipeline: string;
  to: string;
  dryRun: boolean;
  table?: string;
  key?: string;
  tables: TableRollback[];
  /** Keys that differ(ed) from `to` (upserts + deletes). */
  changes: number;
  written: number;
  /** The pipeline is held (pause) and waits for resume. */
  held: boolean;
  startedAt: string;
  endedAt: string;
}

/** What rollback needs of the process that runs the pipeline's sink. */
export interface RollbackDeps {
  applier: Applier;
  /** Current target rows of these keys, keyed by keyString(key) (Sink.readRows). */
  readRows(table: string, keys: Row[]): Promise<Map<string, Row>>;
  /** Hold the pipeline (pause), resolving once no batch fetched before is being applied; absent: it cannot be held here (refused when asked). */
  hold?: (by: string | undefined) => Promise<void>;
}

/** One candidate key: its history key text and key row, and its row at `to` (null: none). */
export interface Wanted {
  key: string;
  keyRow: Row;
  want: JsonRow | null;
}

const same = (a: Json | undefined, b: Json | undefined) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * Per key, what makes the target equal to the row at `to`: nothing when it already is (over the
 * columns the history holds for it; a column the target gained since is left as it is), a delete
 * when the key had no row then, else an upsert of that row. `current`: the target rows read, by
 * keyString(keyRow).
 */
export function planRollback(table: string, wanted: Wanted[], current: Map<string, Row>): KeyChange[] {
  const out: KeyChange[] = [];
  for (const w of wanted) {
    const now = jsonRow(current.get(keyString(w.keyRow)) ?? null);
    if (w.want === null) {
      if (now !== null) out.push({ table, key: w.key, action: 'delete', current: now, target: null, diff: fieldDiff(now, null) });
      continue;
    }
    if (now !== null && Object.entries(w.want).every(([c, v]) => same(now[c], v))) continue;
    const shown = now === null ? null : Object.fromEntries(Object.keys(w.want).map((c) => [c, now[c] ?? null])) as JsonRow;
    out.push({ table, key: w.key, action: 'upsert', current: now, target: w.want, diff: fieldDiff(shown, w.want) });
  }
  return out;
}

/** A change as a dry run shows it to someone who may not see sensitive values. */
export function maskChange(c: KeyChange, mask?: MaskPolicy): KeyChange {
  if (!mask) return c;
  const m = (r: JsonRow | null) => (r === null ? null : (Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v !== null && mask.sensitive(k, c.table) ? '***' : v])) as JsonRow));
  const mv = (f: string, v: Json | undefined) => (v === undefined || v === null || !mask.sensitive(f, c.table) ? v : ('***' as Json));
  return { ...c, current: m(c.current), target: m(c.target), diff: c.diff.map((d) => ({ field: d.field, from: mv(d.field, d.from), to: mv(d.field, d.to) })) };
}

const asRow = (r: JsonRow): Row => r as Row;

/** Run a rollback (see the header). Throws fatal errors naming what is wrong (unknown pipeline or table, history not reaching back, pause not possible). */
export async function rollback(config: SynclineConfig, req: RollbackRequest, deps: RollbackDeps, mask?: MaskPolicy): Promise<RollbackResult> {
  const startedAt = new Date().toISOString();
  const p = config.pipelines[req.pipeline];
  if (!p) throw fatal('PIPELINE_UNKNOWN', `no pipeline '${req.pipeline}' (have: ${Object.keys(config.pipelines).join(', ')})`);
  const kept = [...pipelineRetention(p).keys()];
  let tables = kept;
  if (req.table !== undefined) {
    const t = kept.find((x) => x === req.table) ?? kept.find((x) => tableMatches(x, req.table!));
    tables = [t ?? req.table];
  }
  const keyFilter = req.key === undefined ? undefined : keyArgument(req.key);
  let release = async () => undefined as void;
  try {
    if (req.key !== undefined && req.table === undefined) throw fatal('USAGE', 'a key (--key) needs its table (--table)');
    const where = requireHistory(config, req.pipeline, tables[0]);
    for (const t of tables) requireHistory(config, req.pipeline, t);
    if (req.pause && !req.dryRun && !deps.hold) throw fatal('ROLLBACK_PAUSE_UNSUPPORTED', `pipeline ${req.pipeline} cannot be held here (a scheduled or manual pipeline applies only during its runs, or its consumer stage does not run in this process): roll back without pause`);
    const opened = openStore(where.url, where.schema);
    const store = opened.store;
    release = opened.release;
    // Refused before anything is held or written when the history does not reach back that far.
    for (const table of tables) await store.covers(req.pipeline, table, req.to);
    const run = async (): Promise<TableRollback[]> => {
      const out: TableRollback[] = [];
      for (const table of tables) {
        // Read with no batch being applied (exclusively): the history holds every change the target does.
        const at = await store.asof(req.pipeline, table, req.to);
        const changed = await store.changedAfter(req.pipeline, table, req.to);
        const atKeys = new Map(at.rows.map((r) => [r.key, r]));
        const keys = new Map<string, JsonRow>();
        for (const [k, kr] of changed.keys) keys.set(k, kr);
        if (changed.truncated) for (const r of at.rows) if (r.keyRow && !keys.has(r.key)) keys.set(r.key, r.keyRow);
        const wanted: Wanted[] = [];
        for (const [k, kr] of keys) {
          if (keyFilter !== undefined && k !== keyFilter) continue;
          wanted.push({ key: k, keyRow: asRow(kr), want: atKeys.get(k)?.row ?? null });
        }
        const since = at.since;
        const current = new Map<string, Row>();
        for (let i = 0; i < wanted.length; i += 1000) {
          for (const [k, r] of await deps.readRows(table, wanted.slice(i, i + 1000).map((w) => w.keyRow))) current.set(k, r);
        }
        const changes = planRollback(table, wanted, current);
        const t: TableRollback = { table, historySince: since.toISOString(), examined: wanted.length, upserts: changes.filter((c) => c.action === 'upsert').length, deletes: changes.filter((c) => c.action === 'delete').length, changes, written: 0, parked: [], failed: [] };
        if (!req.dryRun && changes.length > 0) {
          const byKey = new Map(wanted.map((w) => [w.key, w]));
          const r = await deps.applier.rollbackWrite(table, changes.map((c) => ({ key: byKey.get(c.key)!.keyRow, values: c.target === null ? null : asRow(c.target) })), req.by);
          t.written = r.written;
          t.parked = r.parked;
          t.failed = r.failed;
        }
        out.push(t);
      }
      return out;
    };
    if (req.pause && !req.dryRun) await deps.hold!(req.by);
    const results = req.dryRun ? await run() : await deps.applier.exclusively(run);
    const result: RollbackResult = {
      pipeline: req.pipeline, to: req.to.toISOString(), dryRun: req.dryRun === true, ...(req.table !== undefined ? { table: tables[0] } : {}), ...(req.key !== undefined ? { key: keyFilter } : {}),
      tables: results.map((t) => ({ ...t, changes: t.changes.map((c) => maskChange(c, mask)) })),
      changes: results.reduce((n, t) => n + t.changes.length, 0), written: results.reduce((n, t) => n + t.written, 0),
      held: req.pause === true && !req.dryRun, startedAt, endedAt: new Date().toISOString(),
    };
    audit.record({
      action: 'rollback', object: `pipeline:${req.pipeline}`,
      details: {
        pipeline: req.pipeline, to: result.to, dryRun: result.dryRun, pause: result.held, tables: tables, ...(req.key !== undefined ? { key: keyFilter } : {}),
        upserts: results.reduce((n, t) => n + t.upserts, 0), deletes: results.reduce((n, t) => n + t.deletes, 0), written: result.written,
        parked: results.reduce((n, t) => n + t.parked.length, 0), failed: results.reduce((n, t) => n + t.failed.length, 0),
      },
    });
    return result;
  } catch (err) {
    audit.record({ action: 'rollback', object: `pipeline:${req.pipeline}`, details: { pipeline: req.pipeline, to: req.to.toISOString(), dryRun: req.dryRun === true, tables, refused: (err as Error).message.slice(0, 300) } });
    throw err;
  } finally {
    await release();
  }
}
