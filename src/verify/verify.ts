/**
 * Verification of one table of a pipeline: source and target compared by key-range digests computed
 * on each side (./side.ts), ranges that differ bisected down to keys, and each differing key checked
 * again once the pipeline has caught up, so that changes in flight are not reported.
 *
 *  1. Ranges: the source's keys are walked in key order `rangeRows` at a time (one `OFFSET … LIMIT 1`
 *     per range boundary); each range (lo, hi] gets a digest (count + order-independent hash sum)
 *     on both sides. The last range is open above, so target rows beyond the source's last key land
 *     in it.
 *  2. Bisection: a range whose digests differ is split at the middle key of the side with more rows,
 *     and each half digested again, until a half has at most `leafRows` rows on either side; those
 *     rows are read from both sides and compared column by column.
 *  3. Re-check (at most `rounds` times): for the candidate keys, the source rows are read (S1), the
 *     source position is taken, the pipeline is waited for until it has applied up to it
 *     (`caughtUp`), the target rows are read (T) and the source rows again (S2). T = S2: in sync (the
 *     difference was a change in flight). S1 = S2 ≠ T: the key did not change at the source across
 *     the wait, yet the target differs: reported. S1 ≠ S2: the key is changing; checked again in the
 *     next round (after the last round it is reported with `settled: false`).
 * Memory: one range digest at a time, rows only of leaf ranges and candidate keys (capped by
 * `maxKeys`). Nothing is locked; each query is one short read-only statement.
 */
import type { CanonicalRow, KeyText, RangeDigest, VerifySide, VerifyTable } from './side.js';

export type DiffKind = 'missing' | 'extra' | 'different';

export interface KeyDiff {
  /** Key as canonical text, by key column name (target names). */
  key: Record<string, string>;
  kind: DiffKind;
  /** different: the columns (target names) whose values differ. */
  columns?: string[];
  /** false: the key kept changing at the source through every re-check. */
  settled: boolean;
}

export interface TableVerifyResult {
  /** Source table (canonical config name) and target table. */
  table: string;
  target: string;
  sourceRows: number;
  targetRows: number;
  ranges: number;
  rangesDiffering: number;
  /** Keys that differed in the range scan (before the re-check). */
  candidates: number;
  diffs: KeyDiff[];
  /** More candidates than maxKeys: the rest were not re-checked nor listed. */
  truncated: boolean;
  /** Columns not compared (encrypted ones), target names. */
  skippedColumns: string[];
  /** Rows per second of the range scan (source rows). */
  rowsPerSec: number;
  durationMs: number;
}

export interface VerifyTableSpec {
  name: string;
  source: VerifyTable;
  target: VerifyTable;
  skippedColumns: string[];
}

export interface VerifyOptions {
  rangeRows?: number;
  leafRows?: number;
  maxKeys?: number;
  rounds?: number;
  /** Resolves once the pipeline has applied everything the source had when it was called. */
  caughtUp: () => Promise<void>;
  log?: (msg: string, data?: Record<string, unknown>) => void;
}

const BATCH_KEYS = 500;

const sameDigest = (a: RangeDigest, b: RangeDigest) => a.count === b.count && a.sum === b.sum;
const keyId = (k: KeyText) => JSON.stringify(k);

/** Compare two canonical rows of the same key: the differing column indexes. */
export function differingColumns(a: CanonicalRow, b: CanonicalRow): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.values.length; i++) if (a.values[i] !== b.values[i]) out.push(i);
  return out;
}

interface Candidate {
  key: KeyText;
  kind: DiffKind;
  columns?: number[];
}

/** Pure: the differences between source and target rows (any order). */
export function compareRows(src: CanonicalRow[], dst: CanonicalRow[]): Candidate[] {
  const d = new Map(dst.map((r) => [keyId(r.key), r]));
  const out: Candidate[] = [];
  for (const s of src) {
    const id = keyId(s.key);
    const t = d.get(id);
    if (!t) out.push({ key: s.key, kind: 'missing' });
    else {
      const cols = differingColumns(s, t);
      if (cols.length > 0) out.push({ key: s.key, kind: 'different', columns: cols });
      d.delete(id);
    }
  }
  for (const t of d.values()) out.push({ key: t.key, kind: 'extra' });
  return out;
}

export async function verifyTable(spec: VerifyTableSpec, src: VerifySide, dst: VerifySide, o: VerifyOptions): Promise<TableVerifyResult> {
  const rangeRows = o.rangeRows ?? 10_000;
  const leafRows = o.leafRows ?? 256;
  const maxKeys = o.maxKeys ?? 10_000;
  const rounds = o.rounds ?? 3;
  const started = Date.now();
  const res: TableVerifyResult = { table: spec.name, target: `${spec.target.schema}.${spec.target.table}`, sourceRows: 0, targetRows: 0, ranges: 0, rangesDiffering: 0, candidates: 0, diffs: [], truncated: false, skippedColumns: spec.skippedColumns, rowsPerSec: 0, durationMs: 0 };
  const found = new Map<string, Candidate>();
  const add = (cs: Candidate[]) => {
    for (const c of cs) {
      if (found.size >= maxKeys) {
        res.truncated = true;
        return;
      }
      found.set(keyId(c.key), c);
    }
  };

  const bisect = async (lo: KeyText | null, hi: KeyText | null, ds: RangeDigest, dt: RangeDigest): Promise<void> => {
    if (found.size >= maxKeys) return void (res.truncated = true);
    if (Math.max(ds.count, dt.count) <= leafRows) {
      const [a, b] = await Promise.all([src.rows(spec.source, lo, hi), dst.rows(spec.target, lo, hi)]);
      add(compareRows(a, b));
      return;
    }
    const [side, t, n] = ds.count >= dt.count ? [src, spec.source, ds.count] : [dst, spec.target, dt.count];
    const mid = await side.keyAt(t, lo, hi, Math.floor(n / 2) - 1);
    if (mid === null) return;
    for (const [l, h] of [[lo, mid], [mid, hi]] as [KeyText | null, KeyText | null][]) {
      const [a, b] = await Promise.all([src.digest(spec.source, l, h), dst.digest(spec.target, l, h)]);
      if (!sameDigest(a, b)) await bisect(l, h, a, b);
    }
  };

  let lo: KeyText | null = null;
  for (;;) {
    const hi = await src.keyAt(spec.source, lo, null, rangeRows - 1);
    const [a, b] = await Promise.all([src.digest(spec.source, lo, hi), dst.digest(spec.target, lo, hi)]);
    res.ranges++;
    res.sourceRows += a.count;
    res.targetRows += b.count;
    if (!sameDigest(a, b)) {
      res.rangesDiffering++;
      await bisect(lo, hi, a, b);
    }
    if (hi === null) break;
    lo = hi;
  }
  const scanMs = Date.now() - started;
  res.rowsPerSec = scanMs > 0 ? Math.round((res.sourceRows * 1000) / scanMs) : res.sourceRows;
  res.candidates = found.size;
  o.log?.('verify.scan', { table: spec.name, ranges: res.ranges, differing: res.rangesDiffering, candidates: found.size, ms: scanMs });

  // Re-check the candidates once the pipeline has caught up.
  let open = [...found.values()].map((c) => c.key);
  const confirmed: Candidate[] = [];
  for (let round = 1; round <= rounds && open.length > 0; round++) {
    const s1 = await byKeys(src, spec.source, open);
    await o.caughtUp();
    const t = await byKeys(dst, spec.target, open);
    const s2 = await byKeys(src, spec.source, open);
    const next: KeyText[] = [];
    for (const k of open) {
      const id = keyId(k);
      const a = s2.get(id);
      const b = t.get(id);
      const [c] = compareRows(a ? [a] : [], b ? [b] : []);
      if (!c) continue; // in sync now: it was in flight
      const before = s1.get(id);
      const stable = (before === undefined && a === undefined) || (before !== undefined && a !== undefined && differingColumns(before, a).length === 0);
      if (stable) confirmed.push(c);
      else if (round === rounds) confirmed.push({ ...c, settled: false } as Candidate);
      else next.push(k);
    }
    open = next;
  }
  const keyCols = spec.target.key;
  res.diffs = confirmed.map((c) => ({
    key: Object.fromEntries(keyCols.map((k, i) => [k, c.key[i]!])),
    kind: c.kind,
    ...(c.columns ? { columns: c.columns.map((i) => spec.target.columns[i]!) } : {}),
    settled: (c as { settled?: boolean }).settled !== false,
  }));
  res.durationMs = Date.now() - started;
  return res;
}

async function byKeys(side: VerifySide, t: VerifyTable, keys: KeyText[]): Promise<Map<string, CanonicalRow>> {
  const out = new Map<string, CanonicalRow>();
  for (let i = 0; i < keys.length; i += BATCH_KEYS) {
    for (const r of await side.rowsByKeys(t, keys.slice(i, i + BATCH_KEYS))) out.set(keyId(r.key), r);
  }
  return out;
}
