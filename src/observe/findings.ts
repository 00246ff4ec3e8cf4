/**
 * Findings of `syncline doctor`: one per prerequisite checked, with, when it fails, what is wrong
 * and the exact SQL, command or setting that fixes it. Connectors produce them for their own
 * systems (connectors/postgres/doctor.ts); src/cli/doctor.ts adds Kafka, the registry and Redis,
 * groups them by what they concern and prints them.
 */

export interface Finding {
  /** What it concerns: 'kafka', 'registry', 'redis', 'pipeline users-sync source', … */
  subject: string;
  /** Short name of the prerequisite: 'wal_level', 'REPLICATION right', … */
  check: string;
  ok: boolean;
  /** What was found (for a failure: what is wrong). */
  detail: string;
  /** For a failure: the statements or settings that fix it, in order. */
  fix?: string[];
}

export const pass = (subject: string, check: string, detail: string): Finding => ({ subject, check, ok: true, detail });
export const fail = (subject: string, check: string, detail: string, fix: string[]): Finding => ({ subject, check, ok: false, detail, fix });

/** The findings grouped by subject (in first-seen order), each line `ok`/`FAIL`, fixes indented under their failure. */
export function formatFindings(title: string, findings: Finding[]): string {
  const out: string[] = [title, ''];
  const subjects = [...new Set(findings.map((f) => f.subject))];
  for (const s of subjects) {
    out.push(s);
    for (const f of findings.filter((x) => x.subject === s)) {
      out.push(`  ${f.ok ? 'ok  ' : 'FAIL'}  ${f.check}: ${f.detail}`);
      if (!f.ok) for (const line of f.fix ?? []) out.push(`        fix: ${line}`);
    }
    out.push('');
  }
  const failed = findings.filter((f) => !f.ok).length;
  out.push(failed === 0 ? `all ${findings.length} checks passed` : `${failed} of ${findings.length} checks failed`);
  return `${out.join('\n')}\n`;
}

/** 1536 → '1.5 KiB' (exact bytes alongside where it matters). */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) (v /= 1024), u++;
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

// ---------------------------------------------------------------------------------------------
// What connectors' doctor hooks take and give (src/core/registry.ts `doctor`, src/cli/doctor.ts).

/** One pipeline's source or target, for its connector's doctor hook. */
export interface DoctorItem<C> {
  pipeline: string;
  /** The connector's config (pipelines.<name>.source or .target, defaults applied). */
  config: C;
  /** The configured tables (source names, target names, keys, renames). */
  tables: { source: string; target?: string; key?: string[]; columns?: Record<string, string> }[];
  /** Two-way sync: the pipeline writes with an origin its peer skips. */
  twoWay: boolean;
  /** Sync mode (src/sync/): scheduled and manual pipelines run only during runs. */
  mode: 'realtime' | 'scheduled' | 'manual';
  /** The findings' subject: `pipeline <name>: source <where>` / `… target <where>`. */
  subject: string;
}

/** A source table as the source's doctor found it, for the target's checks. */
export interface DoctorTable {
  /** The configured source name. */
  source: string;
  /** The key the source reads it with (null: it has none yet; the source's checks say so). */
  key: string[] | null;
  /** Columns written to the target, in table order, with their type as PostgreSQL spells it (ColumnType.pgType). */
  columns: { name: string; pgType: string; notNull: boolean }[];
}

/** What a pipeline's target table must be, from the source table and the config (src/cli/doctor.ts targetDemands). */
export interface TargetDemand {
  /** Source table 'schema.table'. */
  source: string;
  /** Target table 'schema.table'. */
  table: string;
  /** Target key columns (after renames). */
  key: string[];
  /** Target columns the source writes (after renames) with their type as PostgreSQL spells it. */
  columns: { name: string; pgType: string; notNull: boolean }[];
}

export interface DoctorContext {
  timeoutMs: number;
}

/** A source connector's checks: findings, and each pipeline's tables as found (absent: the source could not be read). */
export interface SourceDoctorReport {
  findings: Finding[];
  tables: Map<string, DoctorTable[]>;
}
