/**
 * Report files of a syncline deployment, in one directory (config `reports.dir`, default `reports`):
 *
 *   sync-status.json  the current state of every pipeline (overwritten at every write): stages
 *                     running, counts (read, produced, applied, skipped, conflicts, dead-lettered by
 *                     kind, validation failures by rule, errors by class, retries), consumer and slot
 *                     lag, commit-to-apply latency per table, last stage failure, newest dead
 *                     letter (its reason masked), health.
 *   history.jsonl     one JSON line per write: the cumulative counters of every pipeline, stamped with
 *                     the time and the instance (process start) they come from. Durable input of the
 *                     daily report; never rewritten, only appended.
 *   sync-report.md    a readable report per UTC day (newest first), rendered from history.jsonl:
 *                     counts, errors, conflicts, top failing validation rules, slowest tables by p95
 *                     commit-to-apply latency.
 *
 * Everything is derived from the Prometheus text of /metrics (and /health), so a running Runtime
 * (in process: Reporter, every `reports.everyMs` and at stop) and `syncline report --url` (from a
 * running instance's endpoints) write the same thing. Counters restart at zero with a process: the
 * daily figures are the differences between consecutive lines of one instance (the first line of an
 * instance counts everything since it started), so restarts and several writers of one instance
 * neither lose nor double-count changes.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage } from '../core/errors.js';
import { redact } from '../core/redact.js';
import type { HealthReport, StageFailure } from './health.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format → samples (comments and blank lines skipped). */
export function parseMetricsText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Cumulative latency histogram of one table: bucket upper bound → count (Prometheus `le`). */
export interface LatencyHistogram {
  buckets: Record<string, number>;
  count: number;
  sum: number;
}

/** Cumulative counters of one pipeline, as the metrics show them (since the instance started). */
export interface PipelineTotals {
  /** By stage: capture, process, sink. */
  read: Record<string, number>;
  produced: number;
  applied: number;
  /** By kind: unchanged, stale. */
  skipped: Record<string, number>;
  /** By target table. */
  conflicts: Record<string, number>;
  /** By kind: invalid, failed. */
  deadLettered: Record<string, number>;
  /** By `stage/class`. */
  errors: Record<string, number>;
  retries: number;
  /** By `table.field.rule` (rule decode: field empty). */
  validationFailures: Record<string, number>;
  /** Commit-to-apply latency by target table. */
  latency: Record<string, LatencyHistogram>;
}

export interface PipelineStatus {
  name: string;
  /** ok: every stage running; failed: a stage failed; stopped; unknown: no health information. */
  health: 'ok' | 'failed' | 'stopped' | 'starting' | 'unknown';
  /** Stage → running | stopped | failed. */
  stages: Record<string, 'running' | 'stopped' | 'failed'>;
  counts: {
    read: Record<string, number>;
    produced: number;
    applied: number;
    skipped: { unchanged: number; stale: number };
    conflicts: number;
    deadLettered: { invalid: number; failed: number };
    validationFailures: number;
    errors: Record<string, number>;
    retries: number;
  };
  conflictsByTable: Record<string, number>;
  /** Dead-lettered violations by `table.field.rule`. */
  validationFailures: Record<string, number>;
  lag: { consumerMessages: number | null; slotBytes: number | null; retainedWalBytes: number | null; slotActive: boolean | null };
  /** Commit-to-apply latency per target table since the instance started, in seconds (estimated from the histogram buckets). */
  latency: Record<string, { count: number; p50: number | null; p95: number | null; p99: number | null }>;
  /** The last stage failure (from /health), or null. */
  lastError: StageFailure | null;
  /** The newest dead letter of the instance (from /health): stage, code, reason (masked) and time, or null. */
  lastDeadLetter: (StageFailure & { at: string }) | null;
}

export interface SyncStatus {
  generatedAt: string;
  /** Where the numbers come from: `runtime` (in process) or the URL of the instance. */
  source: string;
  /** The instance (process) the counters belong to. */
  instance: string;
  /** /health status of the instance. */
  status: string;
  uptimeS: number | null;
  /** Last readiness check of each dependency (syncline_dependency_up). */
  dependencies: Record<string, boolean>;
  pipelines: PipelineStatus[];
}

export interface HistoryLine {
  at: string;
  instance: string;
  pipelines: Record<string, PipelineTotals>;
}

const emptyTotals = (): PipelineTotals => ({ read: {}, produced: 0, applied: 0, skipped: {}, conflicts: {}, deadLettered: {}, errors: {}, retries: 0, validationFailures: {}, latency: {} });

const add = (rec: Record<string, number>, key: string, v: number) => {
  rec[key] = (rec[key] ?? 0) + v;
};

/** The cumulative counters of every pipeline named in the samples. */
export function totalsFromSamples(samples: Sample[]): Record<string, PipelineTotals> {
  const out: Record<string, PipelineTotals> = {};
  const of = (p: string) => (out[p] ??= emptyTotals());
  for (const s of samples) {
    const p = s.labels.pipeline;
    if (p === undefined || !Number.isFinite(s.value)) continue;
    const l = s.labels;
    switch (s.name) {
      case 'syncline_changes_read_total': add(of(p).read, l.stage ?? '', s.value); break;
      case 'syncline_changes_produced_total': of(p).produced += s.value; break;
      case 'syncline_changes_applied_total': of(p).applied += s.value; break;
      case 'syncline_changes_skipped_total': add(of(p).skipped, l.kind ?? '', s.value); break;
      case 'syncline_conflicts_total': add(of(p).conflicts, l.table ?? '', s.value); break;
      case 'syncline_dead_letters_total': add(of(p).deadLettered, l.kind ?? '', s.value); break;
      case 'syncline_errors_total': add(of(p).errors, `${l.stage}/${l.class}`, s.value); break;
      case 'syncline_retries_total': of(p).retries += s.value; break;
      case 'syncline_validation_failures_total': add(of(p).validationFailures, `${l.table}.${l.field}.${l.rule}`, s.value); break;
      case 'syncline_commit_to_apply_seconds_bucket': {
        const h = (of(p).latency[l.table ?? ''] ??= { buckets: {}, count: 0, sum: 0 });
        add(h.buckets, l.le ?? '+Inf', s.value);
        break;
      }
      case 'syncline_commit_to_apply_seconds_count': (of(p).latency[l.table ?? ''] ??= { buckets: {}, count: 0, sum: 0 }).count += s.value; break;
      case 'syncline_commit_to_apply_seconds_sum': (of(p).latency[l.table ?? ''] ??= { buckets: {}, count: 0, sum: 0 }).sum += s.value; break;
      default:
        if (/^syncline_(stage_up|consumer_lag_messages|replication_slot_)/.test(s.name)) of(p);
    }
  }
  return out;
}

/** Prometheus' histogram_quantile over cumulative buckets (linear interpolation inside a bucket); null without observations. */
export function quantile(q: number, h: LatencyHistogram): number | null {
  const bounds = Object.entries(h.buckets)
    .map(([le, n]) => ({ le: le === '+Inf' ? Infinity : Number(le), n }))
    .sort((a, b) => a.le - b.le);
  const total = bounds.length > 0 ? bounds[bounds.length - 1]!.n : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of bounds) {
    if (b.n >= rank) {
      if (b.le === Infinity) return lower;
      if (b.n === below) return b.le;
      return lower + ((b.le - lower) * (rank - below)) / (b.n - below);
    }
    lower = b.le;
    below = b.n;
  }
  return lower;
}

const sumOf = (rec: Record<string, number>) => Object.values(rec).reduce((a, b) => a + b, 0);
const round = (v: number | null) => (v === null ? null : Math.round(v * 1e6) / 1e6);

/** The instance the counters come from: the process start time of the metrics, else /health's uptime. */
export function instanceOf(samples: Sample[], health?: HealthReport, now = Date.now()): string {
  const start = samples.find((s) => s.name === 'syncline_process_start_time_seconds')?.value;
  if (start !== undefined && Number.isFinite(start)) return `start:${start}`;
  if (health) return `start:${Math.round(now / 1000 - health.uptimeS)}`;
  return 'unknown';
}

/** sync-status.json's content from a scrape of /metrics and /health. */
export function buildStatus(samples: Sample[], health: HealthReport | undefined, source: string, now = new Date()): SyncStatus {
  const totals = totalsFromSamples(samples);
  const names = new Set([...(health?.pipelines.map((p) => p.name) ?? []), ...Object.keys(totals)]);
  const dependencies: Record<string, boolean> = {};
  for (const s of samples) if (s.name === 'syncline_dependency_up' && s.labels.dependency) dependencies[s.labels.dependency] = s.value === 1;
  const pipelines: PipelineStatus[] = [];
  for (const name of [...names].sort()) {
    const t = totals[name] ?? emptyTotals();
    const ph = health?.pipelines.find((p) => p.name === name);
    const failed = new Map((ph?.failed ?? []).map((f) => [f.stage, f]));
    const stages: PipelineStatus['stages'] = {};
    for (const s of samples) {
      if (s.name !== 'syncline_stage_up' || s.labels.pipeline !== name) continue;
      stages[s.labels.stage ?? ''] = s.value === 1 ? 'running' : failed.has(s.labels.stage ?? '') ? 'failed' : 'stopped';
    }
    for (const f of failed.keys()) stages[f] = 'failed';
    const pick = (metric: string) => samples.filter((s) => s.name === metric && s.labels.pipeline === name);
    const lagSamples = pick('syncline_consumer_lag_messages');
    const one = (metric: string) => pick(metric)[0]?.value ?? null;
    const slotActive = one('syncline_replication_slot_active');
    const health_: PipelineStatus['health'] = failed.size > 0 ? 'failed'
      : ph ? (ph.running ? (health!.status === 'starting' ? 'starting' : 'ok') : health!.status === 'starting' ? 'starting' : 'stopped')
      : Object.keys(stages).length > 0 ? (Object.values(stages).every((s) => s === 'running') ? 'ok' : 'stopped') : 'unknown';
    const latency: PipelineStatus['latency'] = {};
    for (const [table, h] of Object.entries(t.latency)) latency[table] = { count: h.count, p50: round(quantile(0.5, h)), p95: round(quantile(0.95, h)), p99: round(quantile(0.99, h)) };
    // Error texts are masked where they were recorded (/health); again here for an instance that did not.
    const failure = ph?.failed?.[ph.failed.length - 1];
    const lastFailure: StageFailure | null = failure ? { ...failure, error: redact(failure.error) } : null;
    const letter = ph?.lastDeadLetter;
    const lastDeadLetter = letter ? { ...letter, error: redact(letter.error) } : null;
    pipelines.push({
      name,
      health: health_,
      stages,
      counts: {
        read: t.read,
        produced: t.produced,
        applied: t.applied,
        skipped: { unchanged: t.skipped.unchanged ?? 0, stale: t.skipped.stale ?? 0 },
        conflicts: sumOf(t.conflicts),
        deadLettered: { invalid: t.deadLettered.invalid ?? 0, failed: t.deadLettered.failed ?? 0 },
        validationFailures: sumOf(t.validationFailures),
        errors: t.errors,
        retries: t.retries,
      },
      conflictsByTable: t.conflicts,
      validationFailures: t.validationFailures,
      lag: {
        consumerMessages: lagSamples.length > 0 ? lagSamples.reduce((a, s) => a + s.value, 0) : null,
        slotBytes: one('syncline_replication_slot_lag_bytes'),
        retainedWalBytes: one('syncline_replication_slot_retained_wal_bytes'),
        slotActive: slotActive === null ? null : slotActive === 1,
      },
      latency,
      lastError: lastFailure,
      lastDeadLetter,
    });
  }
  return {
    generatedAt: now.toISOString(),
    source,
    instance: instanceOf(samples, health, now.getTime()),
    status: health?.status ?? 'unknown',
    uptimeS: health?.uptimeS ?? null,
    dependencies,
    pipelines,
  };
}

// ---------------------------------------------------------------------------------------- daily report

function diffRec(cur: Record<string, number>, prev: Record<string, number> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(cur)) {
    const p = prev?.[k] ?? 0;
    out[k] = v >= p ? v - p : v; // lower than before: the counter restarted
  }
  return out;
}

function diffTotals(cur: PipelineTotals, prev: PipelineTotals | undefined): PipelineTotals {
  const n = (c: number, p: number | undefined) => (p === undefined ? c : c >= p ? c - p : c);
  const latency: Record<string, LatencyHistogram> = {};
  for (const [table, h] of Object.entries(cur.latency)) {
    const ph = prev?.latency[table];
    // A histogram that went down as a whole restarted: take it as it is.
    const reset = ph !== undefined && h.count < ph.count;
    latency[table] = reset || !ph ? h : { buckets: diffRec(h.buckets, ph.buckets), count: h.count - ph.count, sum: Math.max(0, h.sum - ph.sum) };
  }
  return {
    read: diffRec(cur.read, prev?.read), produced: n(cur.produced, prev?.produced), applied: n(cur.applied, prev?.applied),
    skipped: diffRec(cur.skipped, prev?.skipped), conflicts: diffRec(cur.conflicts, prev?.conflicts),
    deadLettered: diffRec(cur.deadLettered, prev?.deadLettered), errors: diffRec(cur.errors, prev?.errors),
    retries: n(cur.retries, prev?.retries), validationFailures: diffRec(cur.validationFailures, prev?.validationFailures), latency,
  };
}

function addRec(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) add(into, k, v);
}

function addTotals(into: PipelineTotals, d: PipelineTotals): void {
  addRec(into.read, d.read);
  into.produced += d.produced;
  into.applied += d.applied;
  addRec(into.skipped, d.skipped);
  addRec(into.conflicts, d.conflicts);
  addRec(into.deadLettered, d.deadLettered);
  addRec(into.errors, d.errors);
  into.retries += d.retries;
  addRec(into.validationFailures, d.validationFailures);
  for (const [table, h] of Object.entries(d.latency)) {
    const t = (into.latency[table] ??= { buckets: {}, count: 0, sum: 0 });
    addRec(t.buckets, h.buckets);
    t.count += h.count;
    t.sum += h.sum;
  }
}

/** Per UTC day (YYYY-MM-DD) and pipeline: what happened that day, from the history lines. */
export function dailyTotals(lines: HistoryLine[]): Map<string, Map<string, PipelineTotals>> {
  const days = new Map<string, Map<string, PipelineTotals>>();
  const last = new Map<string, PipelineTotals>(); // instance + pipeline → previous cumulative totals
  for (const line of [...lines].sort((a, b) => a.at.localeCompare(b.at))) {
    const day = line.at.slice(0, 10);
    for (const [pipeline, cur] of Object.entries(line.pipelines)) {
      const id = `${line.instance}\u0000${pipeline}`;
      const d = diffTotals(cur, last.get(id));
      last.set(id, cur);
      let perDay = days.get(day);
      if (!perDay) days.set(day, (perDay = new Map()));
      let t = perDay.get(pipeline);
      if (!t) perDay.set(pipeline, (t = emptyTotals()));
      addTotals(t, d);
    }
  }
  return days;
}

const fmtN = (n: number) => String(Math.round(n));
function fmtS(v: number | null): string {
  if (v === null) return '-';
  if (v < 1) return `${Math.round(v * 1000)} ms`;
  return `${v.toFixed(2)} s`;
}
const cell = (s: string) => s.replace(/\|/g, '\\|');

function mdTable(head: string[], rows: string[][]): string[] {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)];
}

/** sync-report.md: one section per UTC day, newest first. */
export function renderReport(lines: HistoryLine[], now = new Date(), status?: SyncStatus): string {
  const days = dailyTotals(lines);
  const out: string[] = ['# syncline sync report', ''];
  out.push(`Generated ${now.toISOString()} from ${lines.length} snapshot${lines.length === 1 ? '' : 's'} in history.jsonl. Days are UTC; figures are what happened during the day (counter increases between snapshots).`, '');
  if (status) {
    out.push('## Current state', '');
    out.push(...mdTable(['pipeline', 'health', 'stages', 'consumer lag', 'slot lag', 'last error'], status.pipelines.map((p) => [
      p.name, p.health, Object.entries(p.stages).map(([s, st]) => `${s} ${st}`).join(', ') || '-',
      p.lag.consumerMessages === null ? '-' : fmtN(p.lag.consumerMessages), p.lag.slotBytes === null ? '-' : `${fmtN(p.lag.slotBytes)} B`,
      // The last stage failure, else the newest dead letter's reason.
      p.lastError ? redact(`${p.lastError.stage}: ${p.lastError.code}: ${p.lastError.error}`).replace(/\s+/g, ' ').slice(0, 200)
        : p.lastDeadLetter ? redact(`dead letter (${p.lastDeadLetter.stage}): ${p.lastDeadLetter.code}: ${p.lastDeadLetter.error}`).replace(/\s+/g, ' ').slice(0, 200) : '',
    ])), '');
  }
  if (days.size === 0) out.push('No snapshots yet.', '');
  for (const day of [...days.keys()].sort().reverse()) {
    const perPipeline = [...days.get(day)!.entries()].sort(([a], [b]) => a.localeCompare(b));
    out.push(`## ${day}`, '');
    out.push('### Counts', '');
    out.push(...mdTable(
      ['pipeline', 'captured', 'applied', 'skipped unchanged', 'skipped stale', 'conflicts', 'dead-lettered invalid', 'dead-lettered failed', 'validation failures', 'errors', 'retries'],
      perPipeline.map(([p, t]) => [p, fmtN(t.read.capture ?? 0), fmtN(t.applied), fmtN(t.skipped.unchanged ?? 0), fmtN(t.skipped.stale ?? 0), fmtN(sumOf(t.conflicts)),
        fmtN(t.deadLettered.invalid ?? 0), fmtN(t.deadLettered.failed ?? 0), fmtN(sumOf(t.validationFailures)), fmtN(sumOf(t.errors)), fmtN(t.retries)]),
    ), '');
    const errors = perPipeline.flatMap(([p, t]) => Object.entries(t.errors).filter(([, n]) => n > 0).map(([k, n]) => [p, ...k.split('/'), n] as [string, string, string, number]));
    out.push('### Errors', '');
    if (errors.length === 0) out.push('None.', '');
    else out.push(...mdTable(['pipeline', 'stage', 'class', 'errors'], errors.sort((a, b) => b[3] - a[3]).map(([p, s, c, n]) => [p, s, c, fmtN(n)])), '');
    const conflicts = perPipeline.flatMap(([p, t]) => Object.entries(t.conflicts).filter(([, n]) => n > 0).map(([table, n]) => [p, table, n] as [string, string, number]));
    out.push('### Conflicts', '');
    if (conflicts.length === 0) out.push('None.', '');
    else out.push(...mdTable(['pipeline', 'table', 'conflicts'], conflicts.sort((a, b) => b[2] - a[2]).map(([p, t, n]) => [p, t, fmtN(n)])), '');
    const rules = perPipeline.flatMap(([p, t]) => Object.entries(t.validationFailures).filter(([, n]) => n > 0).map(([k, n]) => [p, k, n] as [string, string, number]));
    out.push('### Top failing rules', '');
    if (rules.length === 0) out.push('None.', '');
    else {
      out.push(...mdTable(['pipeline', 'table', 'field', 'rule', 'failures'], rules.sort((a, b) => b[2] - a[2] || a[1].localeCompare(b[1])).slice(0, 10).map(([p, k, n]) => {
        const parts = k.split('.');
        const rule = parts.pop()!;
        const field = parts.pop()!;
        return [p, parts.join('.'), field || '-', rule, fmtN(n)];
      })), '');
    }
    const tables = perPipeline.flatMap(([p, t]) => Object.entries(t.latency).filter(([, h]) => h.count > 0).map(([table, h]) => ({ p, table, h, p95: quantile(0.95, h) })));
    out.push('### Slowest tables (commit-to-apply latency)', '');
    if (tables.length === 0) out.push('No change applied.', '');
    else {
      out.push(...mdTable(['pipeline', 'table', 'applied', 'mean', 'p50', 'p95', 'p99'], tables.sort((a, b) => (b.p95 ?? 0) - (a.p95 ?? 0)).slice(0, 10).map(({ p, table, h, p95 }) => [
        p, table, fmtN(h.count), fmtS(h.count > 0 ? h.sum / h.count : null), fmtS(quantile(0.5, h)), fmtS(p95), fmtS(quantile(0.99, h)),
      ])), '');
    }
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------- files

export const REPORT_FILES = { status: 'sync-status.json', history: 'history.jsonl', report: 'sync-report.md' } as const;

export function readHistory(dir: string): HistoryLine[] {
  const file = join(dir, REPORT_FILES.history);
  if (!existsSync(file)) return [];
  const out: HistoryLine[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const l = JSON.parse(line) as HistoryLine;
      if (typeof l.at === 'string' && l.pipelines && typeof l.pipelines === 'object') out.push(l);
    } catch {
      // a torn last line (crash while appending): skipped
    }
  }
  return out;
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export interface WriteResult {
  dir: string;
  status: SyncStatus;
  files: string[];
}

/**
 * Write the three files from one scrape: sync-status.json (with `extra` fields merged at the top
 * level, e.g. the demo's convergence results), a line appended to history.jsonl, sync-report.md.
 */
export function writeReports(dir: string, metricsText: string, health: HealthReport | undefined, source: string, extra: Record<string, unknown> = {}, now = new Date()): WriteResult {
  mkdirSync(dir, { recursive: true });
  const samples = parseMetricsText(metricsText);
  const status = buildStatus(samples, health, source, now);
  const line: HistoryLine = { at: status.generatedAt, instance: status.instance, pipelines: totalsFromSamples(samples) };
  appendFileSync(join(dir, REPORT_FILES.history), JSON.stringify(line) + '\n');
  writeAtomic(join(dir, REPORT_FILES.status), JSON.stringify({ ...status, ...extra }, null, 2) + '\n');
  writeAtomic(join(dir, REPORT_FILES.report), renderReport(readHistory(dir), now, status));
  return { dir, status, files: Object.values(REPORT_FILES).map((f) => join(dir, f)) };
}

/** Re-render sync-report.md from the history already there (no running instance to ask). */
export function renderFromFiles(dir: string, now = new Date()): string[] {
  mkdirSync(dir, { recursive: true });
  let status: SyncStatus | undefined;
  try {
    status = JSON.parse(readFileSync(join(dir, REPORT_FILES.status), 'utf8')) as SyncStatus;
    if (!Array.isArray(status.pipelines)) status = undefined;
  } catch {
    status = undefined;
  }
  writeAtomic(join(dir, REPORT_FILES.report), renderReport(readHistory(dir), now, status));
  return [join(dir, REPORT_FILES.report)];
}

/** What a Runtime hands the Reporter: its metrics text and health. */
export interface ReportSource {
  metrics: () => Promise<string>;
  health: () => HealthReport;
  /** Top-level fields merged into sync-status.json (the runtime's sync runs: `sync`). */
  extra?: () => Record<string, unknown>;
}

/** Writes the report files of a running Runtime every `everyMs` and once more at stop. */
export class Reporter {
  private timer?: NodeJS.Timeout;
  private writing?: Promise<void>;

  constructor(private readonly cfg: { dir: string; everyMs: number }, private readonly src: ReportSource, private readonly log: Logger) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.write(), this.cfg.everyMs);
    this.timer.unref();
    void this.write();
  }

  /** Write now (one write at a time; a write asked for during one waits for it, then runs). */
  async write(): Promise<void> {
    while (this.writing) await this.writing;
    this.writing = (async () => {
      try {
        const r = writeReports(this.cfg.dir, await this.src.metrics(), this.src.health(), 'runtime', this.src.extra?.());
        this.log.debug({ dir: r.dir, pipelines: r.status.pipelines.length }, 'reports.written');
      } catch (err) {
        this.log.warn({ dir: this.cfg.dir, err: errorMessage(err) }, 'reports.write.failed');
      }
    })();
    try {
      await this.writing;
    } finally {
      this.writing = undefined;
    }
  }

  /** Stop the timer and write the final state. */
  async stop(): Promise<void> {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.write();
  }
}
