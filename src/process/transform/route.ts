/**
 * Content-based routing (`tables[].route`, ADR 0038): picks each change's target table from the row,
 * after the table's transform steps and before validation. Compiled once; pure (no state, no I/O),
 * so a redelivery or a replay routes every change exactly as the first time (with the same config).
 *
 * The rule (docs/routing.md):
 *  - insert, snapshot row: upsert into route(after).
 *  - update: upsert into route(after); the old route gets a delete when it differs. The old route is
 *    route(before) when the source sent the full old row (REPLICA IDENTITY FULL) and the route reads
 *    only columns it has; otherwise (REPLICA IDENTITY DEFAULT) it cannot be told, and every other
 *    route table gets the delete (idempotent: a no-op where the row is not). An old row that matched
 *    no route (it was dead-lettered) gets no delete.
 *  - delete: to route(old row, or the key alone when the route reads only key columns); when that
 *    cannot be told, or matches nothing, to every route table.
 *  - a row (insert/update/snapshot) that matches no route: `default` when set, else poison
 *    ROUTE_UNMATCHED (dead-lettered as invalid, nothing written for it).
 * Each route table has its own version state and conflict checks (records carry the route table),
 * so two routes of one key never see each other's positions.
 */
import type { Row } from '../../core/envelope.js';
import type { RouteConfig } from '../../core/config/schema.js';
import { poison, SynclineError } from '../../core/errors.js';
import { compileCheck, compileExpression, EvalFailure, ExprError, type EvalContext } from '../validation/expr.js';
import { Dec } from '../validation/values.js';
import type { Change, ChangeOp, StepProblem } from './compile.js';

const OP_COLUMN = '_op';

export interface CompiledRoute {
  /** Every table a row of this source table can go to (each once, `default` included). */
  tables: string[];
  /** Columns the route reads (target names, without `_op`). */
  refs: string[];
  /** The routed changes: each with its target table. Throws poison errors (unmatched, unknown column, evaluation). */
  route(changes: Change[], ctx: EvalContext): { table: string; change: Change }[];
}

export interface RouteCompileOptions {
  /** The source table (for messages). */
  table: string;
  /** Columns the transform steps drop for sure (exclude), and the include list if any: a route reading them is refused. */
  dropped?: ReadonlySet<string>;
  included?: ReadonlySet<string>;
  /** Key columns when the config names them (include keeps them). */
  key?: string[];
}

type Pick = (row: Row, op: ChangeOp, ctx: EvalContext) => string | undefined;

/** What a route value becomes as a `to` key: its text ('1' for 1 and 1n, 'true' for true). */
function asKey(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (v instanceof Dec) return v.toString();
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  return undefined;
}

export function compileRoute(r: RouteConfig, opts: RouteCompileOptions): { route?: CompiledRoute; problems: StepProblem[] } {
  const problems: StepProblem[] = [];
  const table = opts.table;
  const fail = (what: string) => (err: unknown) => {
    if (err instanceof EvalFailure) return poison('TRANSFORM_FAILED', `${table} route: ${err.safeMessage} (in "${what}")`);
    return err;
  };
  let pick: Pick | undefined;
  let refs: string[] = [];
  const tables: string[] = [];
  const addTable = (t: string) => {
    if (!tables.includes(t)) tables.push(t);
  };
  const exprProblem = (path: (string | number)[], text: string, err: unknown) => {
    if (!(err instanceof ExprError)) throw err;
    problems.push({ path, message: `table ${table}, route: ${err.message} (at character ${err.pos + 1} of "${text}")` });
  };
  if (r.by !== undefined) {
    try {
      const e = compileExpression(r.by);
      refs = e.refs;
      const to = new Map(Object.entries(r.to ?? {}));
      for (const t of to.values()) addTable(t);
      const readsOp = e.refs.includes(OP_COLUMN);
      const by = r.by;
      pick = (row, op, ctx) => {
        let v: unknown;
        try {
          v = e.value(readsOp ? { ...row, [OP_COLUMN]: op } : row, ctx);
        } catch (err) {
          throw fail(by)(err);
        }
        const k = asKey(v);
        return k === undefined ? undefined : to.get(k);
      };
    } catch (err) {
      exprProblem(['by'], r.by, err);
    }
  } else if (r.cases !== undefined) {
    const cases: { test: ReturnType<typeof compileCheck>['test']; table: string; readsOp: boolean; text: string }[] = [];
    const all = new Set<string>();
    r.cases.forEach((c, i) => {
      try {
        const chk = compileCheck(c.when);
        for (const f of chk.refs) all.add(f);
        cases.push({ test: chk.test, table: c.table, readsOp: chk.refs.includes(OP_COLUMN), text: c.when });
        addTable(c.table);
      } catch (err) {
        exprProblem(['cases', i, 'when'], c.when, err);
      }
    });
    refs = [...all];
    pick = (row, op, ctx) => {
      for (const c of cases) {
        let ok: boolean | null;
        try {
          ok = c.test(c.readsOp ? { ...row, [OP_COLUMN]: op } : row, ctx);
        } catch (err) {
          throw fail(c.text)(err);
        }
        if (ok === true) return c.table;
      }
      return undefined;
    };
  }
  if (r.default !== undefined) addTable(r.default);
  refs = refs.filter((f) => f !== OP_COLUMN);
  const keySet = new Set(opts.key ?? []);
  const where: (string | number)[] = r.by !== undefined ? ['by'] : ['cases'];
  for (const f of refs) {
    if (opts.dropped?.has(f)) problems.push({ path: where, message: `table ${table}, route: reads ${f}, which a transform step drops (exclude) before routing` });
    else if (opts.included && !opts.included.has(f) && !keySet.has(f)) problems.push({ path: where, message: `table ${table}, route: reads ${f}, which a transform step drops (include does not list it) before routing` });
  }
  if (problems.length > 0 || !pick) return { problems };
  const p = pick;
  const dflt = r.default;
  const describe = r.by !== undefined ? `by "${r.by}" (to: ${Object.keys(r.to ?? {}).join(', ')})` : `cases (${(r.cases ?? []).map((c) => `"${c.when}"`).join(', ')})`;
  const knows = (row: Row) => refs.every((f) => Object.hasOwn(row, f));

  /** The route of a row to write; throws when it matches none and there is no default. */
  const routeOf = (c: Change, ctx: EvalContext): string => {
    const row = c.after!;
    for (const f of refs) {
      if (Object.hasOwn(row, f)) continue;
      if (c.keep.includes(f)) throw poison('TRANSFORM_VALUE_UNKNOWN', `${table} route: column ${f} was not sent by the source (an unchanged TOASTed value) and the old row is not known; set REPLICA IDENTITY FULL on the source table to route by it`);
      throw poison('ROUTE_COLUMN_UNKNOWN', `${table} route reads ${f}, which the row does not have (columns: ${Object.keys(row).join(', ')})`);
    }
    const t = p(row, c.op, ctx) ?? dflt;
    if (t === undefined) throw poison('ROUTE_UNMATCHED', `${table}: the row matches no route of ${describe} and the route has no default (values: ${refs.map((f) => `${f}=${show(row[f])}`).join(', ')})`);
    return t;
  };
  /** The route of an old row (with the key), or undefined when it cannot be told; null: it matched none. */
  const oldRouteOf = (c: Change, ctx: EvalContext): string | null | undefined => {
    const row = fullOld(c) ? { ...c.before, ...c.key } : c.key;
    if (!knows(row)) return undefined;
    try {
      return p(row, c.op === 'delete' ? 'delete' : 'update', ctx) ?? dflt ?? null;
    } catch (err) {
      if (err instanceof SynclineError) return undefined; // cannot be told: the delete goes everywhere
      throw err;
    }
  };
  const del = (c: Change): Change => ({ op: 'delete', key: c.key, before: c.before, after: null, keep: [] });

  return {
    problems,
    route: {
      tables,
      refs,
      route(changes, ctx) {
        const out: { table: string; change: Change }[] = [];
        for (const c of changes) {
          if (c.after === null) {
            const old = oldRouteOf(c, ctx);
            if (typeof old === 'string') out.push({ table: old, change: c });
            else for (const t of tables) out.push({ table: t, change: c });
            continue;
          }
          const now = routeOf(c, ctx);
          if (c.op === 'update') {
            const old = oldRouteOf(c, ctx);
            if (typeof old === 'string' && old !== now) out.push({ table: old, change: del(c) });
            else if (old === undefined) for (const t of tables) if (t !== now) out.push({ table: t, change: del(c) });
          }
          out.push({ table: now, change: c });
        }
        return out;
      },
    },
  };
}

/**
 * Whether a change's old row is a full one (REPLICA IDENTITY FULL). A delete under REPLICA IDENTITY
 * DEFAULT carries the key with every other column null; such an old row (or a real one whose other
 * columns are all null: then deletes go to every route, which changes nothing) says nothing.
 */
function fullOld(c: Change): boolean {
  const b = c.before;
  if (!b) return false;
  for (const k of Object.keys(b)) if (!(k in c.key) && b[k] !== null && b[k] !== undefined) return true;
  return false;
}

function show(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 37)}...` : v}'`;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  return typeof v;
}

/** Load-time check of a table's route (raw config data, after the schema accepted its shape). */
export function checkTableRoute(raw: unknown, steps: unknown, opts: Omit<RouteCompileOptions, 'dropped' | 'included'>): StepProblem[] {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return [];
  const dropped = new Set<string>();
  let included: Set<string> | undefined;
  if (Array.isArray(steps)) {
    for (const s of steps as Record<string, unknown>[]) {
      if (s === null || typeof s !== 'object') continue;
      if (Array.isArray(s.exclude)) for (const c of s.exclude) if (typeof c === 'string') dropped.add(c);
      if (Array.isArray(s.include)) {
        const next = new Set((s.include as unknown[]).filter((c): c is string => typeof c === 'string'));
        included = included ? new Set([...included].filter((c) => next.has(c))) : next;
      }
      // A later compute or set brings a column back.
      for (const k of ['compute', 'set', 'extract', 'cast']) {
        const o = s[k];
        if (o && typeof o === 'object' && !Array.isArray(o)) for (const c of Object.keys(o)) {
          dropped.delete(c);
          included?.add(c);
        }
      }
    }
  }
  const r = raw as RouteConfig;
  if (r.by !== undefined && typeof r.by !== 'string') return [];
  if (r.cases !== undefined && (!Array.isArray(r.cases) || r.cases.some((c) => c === null || typeof c !== 'object' || typeof c.when !== 'string' || typeof c.table !== 'string'))) return [];
  try {
    return compileRoute(r, { ...opts, dropped, included }).problems;
  } catch {
    return []; // a malformed route the schema reports
  }
}
