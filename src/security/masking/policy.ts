/**
 * Masking: one policy for every place that shows row values to people — dead letters shown by the
 * CLI and the HTTP API (src/dlq/api.ts entryJson), reports and alert texts that quote them.
 *
 * A column is sensitive when it is listed in its table's `mask`, or its table's `encrypt` (its value
 * is a ciphertext anyway: shown as '***' too), or in the pipeline's `validation.mask`, or its name
 * matches one of `masking.patterns` (case-insensitive regular expressions, default: password,
 * secret, token, ssn, card number, iban). Tables are matched by source or target name.
 *
 * Revealing is a separate, explicit function: revealEntry() in src/dlq/api.ts gives a dead letter
 * unmasked (raw bytes included). It is meant for an admin-only route that records an audit entry per
 * call; nothing in syncline calls it on a viewer's behalf.
 */
import { setColumn, type Row, type Value } from '../../core/envelope.js';

export const MASK = '***';

export const DEFAULT_PATTERNS = ['passw(or)?d', 'secret', 'token', '(^|_)ssn($|_)', 'card_?(number|no)', '(^|_)iban($|_)'];

/** The config this module reads (a SynclineConfig has it). */
export interface MaskingConfigView {
  masking?: { patterns?: string[]; defaults?: boolean };
  pipelines: Record<string, { tables: { source: string; target?: string; columns?: Record<string, string>; mask?: string[]; encrypt?: string[] }[]; validation?: { mask?: string[] } }>;
}

export class MaskPolicy {
  constructor(
    /** table (source or target name) → sensitive columns (source and target names) */
    private readonly tables: ReadonlyMap<string, ReadonlySet<string>>,
    private readonly everywhere: ReadonlySet<string>,
    private readonly patterns: readonly RegExp[],
  ) {}

  sensitive(column: string, table?: string): boolean {
    if (this.everywhere.has(column)) return true;
    if (table !== undefined && this.tables.get(table)?.has(column)) return true;
    return this.patterns.some((p) => p.test(column));
  }

  /** Sensitive in some table (or everywhere, or by a pattern): for text whose table is not known. */
  sensitiveAnywhere(column: string): boolean {
    if (this.everywhere.has(column)) return true;
    for (const cols of this.tables.values()) if (cols.has(column)) return true;
    return this.patterns.some((p) => p.test(column));
  }

  /** Whether any table lists sensitive columns (or validation.mask names some). */
  anyListed(): boolean {
    return this.everywhere.size > 0 || this.tables.size > 0;
  }

  /** A copy of the row with sensitive values replaced by '***' (null stays null). */
  maskRow(row: Row | null, table?: string): Row | null {
    if (!row) return row;
    const out: Row = {};
    for (const [k, v] of Object.entries(row)) setColumn(out, k, v !== null && this.sensitive(k, table) ? MASK : v);
    return out;
  }

  maskValue(column: string, v: Value, table?: string): Value {
    return v !== null && this.sensitive(column, table) ? MASK : v;
  }

  /** Whether a table has sensitive columns by name (table lists, validation.mask); patterns need the column names. */
  hasSensitive(table?: string): boolean {
    return this.everywhere.size > 0 || (table !== undefined && (this.tables.get(table)?.size ?? 0) > 0);
  }

  /** Text with every occurrence of the given sensitive values (strings of 3+ characters) replaced. */
  maskText(text: string, values: Value[]): string {
    let out = text;
    for (const v of values) {
      const s = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' ? String(v) : '';
      if (s.length >= 3) out = out.split(s).join(MASK);
    }
    return out;
  }
}

/** The masking policy of a config: per table `mask` and `encrypt`, `validation.mask`, `masking.patterns`. */
export function maskPolicy(config: MaskingConfigView): MaskPolicy {
  const tables = new Map<string, Set<string>>();
  const everywhere = new Set<string>();
  for (const p of Object.values(config.pipelines)) {
    for (const c of p.validation?.mask ?? []) everywhere.add(c);
    for (const t of p.tables) {
      const cols = [...(t.mask ?? []), ...(t.encrypt ?? [])];
      if (cols.length === 0) continue;
      const names = new Set<string>();
      for (const c of cols) {
        names.add(c);
        names.add(t.columns?.[c] ?? c);
      }
      for (const name of [t.source, t.target ?? t.source]) {
        const set = tables.get(name) ?? new Set<string>();
        for (const n of names) set.add(n);
        tables.set(name, set);
      }
    }
  }
  const patterns = [...(config.masking?.defaults === false ? [] : DEFAULT_PATTERNS), ...(config.masking?.patterns ?? [])].map((p) => new RegExp(p, 'i'));
  return new MaskPolicy(tables, everywhere, patterns);
}

/**
 * A dead letter as people may see it (CLI, API, console): sensitive values of its conflict versions,
 * diff and of the merged row of a resolve in its history masked, violation values of sensitive fields masked, sensitive values quoted in its error message
 * masked, and the raw Kafka bytes (whole rows) withheld when its table has sensitive columns (listed,
 * or matched by a pattern among the columns the entry shows)
 * (`rawWithheld: true`; revealEntry() in src/dlq/api.ts gives them).
 */
export function maskEntry<E extends MaskableEntry>(e: E, policy: MaskPolicy): E & { rawWithheld?: true } {
  const table = e.table;
  const fields = [
    ...[e.conflict?.source, e.conflict?.target, e.conflict?.lastSynced].flatMap((r) => Object.keys(r ?? {})),
    ...(e.violations ?? []).map((v) => (v as { field?: unknown })?.field).filter((f): f is string => typeof f === 'string'),
    ...(e.history ?? []).flatMap((h) => (isRow(h.merged) ? Object.keys(h.merged) : [])),
  ];
  if (!policy.hasSensitive(table) && !fields.some((f) => policy.sensitive(f, table))) return e;
  const out: E & { rawWithheld?: true } = { ...e };
  const quoted: Value[] = [];
  if (e.conflict) {
    const c = e.conflict;
    for (const row of [c.source, c.target, c.lastSynced]) for (const [k, v] of Object.entries(row ?? {})) if (policy.sensitive(k, table)) quoted.push(v);
    out.conflict = {
      ...c,
      source: policy.maskRow(c.source, table),
      target: policy.maskRow(c.target, table),
      lastSynced: policy.maskRow(c.lastSynced, table),
      diff: c.diff.map((d) => (policy.sensitive(d.field, table) ? { ...d, source: policy.maskValue(d.field, d.source, table), target: policy.maskValue(d.field, d.target, table), lastSynced: policy.maskValue(d.field, d.lastSynced, table) } : d)),
    };
  }
  if (Array.isArray(e.violations)) {
    out.violations = e.violations.map((v) => {
      const o = v as { field?: unknown; value?: unknown };
      if (o && typeof o === 'object' && typeof o.field === 'string' && 'value' in o && policy.sensitive(o.field, table)) {
        quoted.push(o.value as Value);
        return { ...o, value: MASK };
      }
      return v;
    });
  }
  if (e.history?.some((h) => isRow(h.merged))) {
    // The merged row an operator resolved with (kept in the actions topic like the DLQ's own rows).
    out.history = e.history.map((h) => {
      if (!isRow(h.merged)) return h;
      for (const [k, v] of Object.entries(h.merged)) if (policy.sensitive(k, table)) quoted.push(v as Value);
      return { ...h, merged: policy.maskRow(h.merged as Row, table) };
    });
  }
  out.errorMessage = policy.maskText(e.errorMessage, quoted);
  out.reason = policy.maskText(e.reason, quoted);
  if (e.raw.value !== null || e.raw.key !== null) {
    out.raw = { key: e.raw.key, value: null };
    out.rawWithheld = true;
  }
  return out;
}

const isRow = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** What maskEntry needs of a dead letter (src/dlq/store.ts DlqEntry has it). */
export interface MaskableEntry {
  /** Operator actions; a resolve with a merged row keeps the row (`merged`). */
  history?: { merged?: unknown }[];
  table?: string;
  reason: string;
  errorMessage: string;
  violations?: unknown[];
  conflict?: { source: Row | null; target: Row | null; lastSynced: Row | null; diff: { field: string; source: Value; target: Value; lastSynced: Value }[] };
  raw: { key: Buffer | null; value: Buffer | null };
}
