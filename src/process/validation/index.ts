/**
 * Validation rules of a pipeline: compiled once at start-up (validateRules), applied by the
 * processor to every mapped upsert before it is hashed (cdcDecoder → PipelineValidator.check).
 *
 * Lifecycle: the runtime calls validateRules(config) before any stage starts; a rule that cannot
 * compile, a module that cannot load or a custom function the module does not export stops the
 * start with a ConfigError (FILE:LINE:COL, like the loader). The compiled validators are stateless
 * apart from their counters (ValidationStats), so a crash or a replay just validates again: a
 * redelivered invalid record is dead-lettered again, a valid one passes again.
 *
 * An invalid record throws ValidationError (poison, VALIDATION_FAILED): ConsumerStage dead-letters it
 * as `invalid` with every violation in the `syncline.violations` header (values of sensitive and
 * masked columns as '***'), counts it per rule, and the partition moves on. Nothing invalid reaches the
 * target; nothing is dropped without a dead letter.
 */
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { closest, configError, configSource, locateProblem, type ConfigProblem } from '../../core/config/load.js';
import type { SynclineConfig } from '../../core/config/schema.js';
import { SynclineError } from '../../core/errors.js';
import { keyString, type SinkRecord } from '../../sink/sink.js';
import { own, type Row, type Value } from '../../core/envelope.js';
import { compileTable, type TableValidator, type Violation } from './compile.js';

export { compileTable, type Coercion, type TableValidator, type Violation } from './compile.js';

/** A record that breaks its table's rules. Poison: dead-lettered at once as `invalid`. */
export class ValidationError extends SynclineError {
  readonly violations: Violation[];
  /** Target table. */
  readonly table: string;
  readonly position?: string;
  /** Target key (keyString), when known. */
  readonly key?: string;
  constructor(table: string, violations: Violation[], position?: string, key?: string) {
    const list = violations.map((v) => `${v.field} ${v.rule}: ${v.message}`).join('; ');
    const n = violations.length;
    super('poison', 'VALIDATION_FAILED', `${table}${key !== undefined ? ` key ${key}` : ''}: ${n} rule${n === 1 ? '' : 's'} violated: ${list}`);
    this.name = 'ValidationError';
    this.table = table;
    this.violations = violations;
    this.position = position;
    this.key = key;
    // One field: the value error is about that column (several: the violations header lists them).
    const fields = new Set(violations.map((v) => v.field));
    if (fields.size === 1 && !violations[0]!.field.includes(',')) this.column = violations[0]!.field;
  }

  /** Counter keys, one per violation: `table.field.rule` (cross-field rules: the fields they read, comma-separated). */
  counterKeys(): string[] {
    return this.violations.map((v) => `${this.table}.${v.field}.${v.rule}`);
  }
}

/**
 * Field encryption: what the rules see instead of the record's values: a transient copy with the
 * encrypted columns decrypted (`columnTypes` with their own SQL types); `write` puts a coerced value
 * back into the record (encrypted again where the column is).
 */
export interface OpenedValues {
  values: Row;
  columnTypes?: Record<string, string>;
  write: (field: string, value: Value) => void;
}

/** Counters of one pipeline's validation. `failures` counts dead-lettered violations by `table.field.rule`. */
export interface ValidationStats {
  /** Upserts validated. */
  validated: number;
  /** Records dead-lettered as invalid. */
  invalid: number;
  /** Values converted by `coerce`. */
  coerced: number;
  failures: Map<string, number>;
}

export const newValidationStats = (): ValidationStats => ({ validated: 0, invalid: 0, coerced: 0, failures: new Map() });

/** The compiled rules of one pipeline's tables, keyed by source table ('schema.table'). */
export class PipelineValidator {
  readonly stats: ValidationStats = newValidationStats();
  private readonly warned = new Set<string>();

  constructor(
    readonly pipeline: string,
    private readonly tables: Map<string, TableValidator>,
    private readonly log?: Logger,
  ) {}

  forTable(source: string): TableValidator | undefined {
    return this.tables.get(source);
  }

  get size(): number {
    return this.tables.size;
  }

  /**
   * Validates an upsert in place: coerces values (recorded in record.coerced) or throws
   * ValidationError. Deletes and truncates have no row and pass untouched.
   */
  check(v: TableValidator, record: SinkRecord, open?: OpenedValues): void {
    if (record.op !== 'upsert' || record.values === null) return;
    this.stats.validated++;
    const columnTypes = open?.columnTypes ?? record.columnTypes;
    if (columnTypes && !this.warned.has(v.table)) this.warnUnknownFields(v, columnTypes);
    const values = open?.values ?? record.values;
    const r = v.validate(values, columnTypes, record.keep);
    if (r === undefined) return;
    if (r.violations.length > 0) throw new ValidationError(record.table, r.violations, record.position, keyString(record.key));
    this.stats.coerced += r.coerced.length;
    record.coerced = r.coerced;
    if (open) for (const c of r.coerced) open.write(c.field, values[c.field] ?? null);
  }

  /** After the dead letter is written: count it per rule. */
  countInvalid(err: ValidationError): void {
    this.stats.invalid++;
    for (const k of err.counterKeys()) this.stats.failures.set(k, (this.stats.failures.get(k) ?? 0) + 1);
  }

  /** Rules that name a column the table does not have never fire: say so once, when the columns are known. */
  private warnUnknownFields(v: TableValidator, columnTypes: Record<string, string>): void {
    this.warned.add(v.table);
    const unknown = v.fields.filter((f) => !(f in columnTypes));
    if (unknown.length > 0) this.log?.warn({ pipeline: this.pipeline, table: v.table, fields: unknown, columns: Object.keys(columnTypes) }, 'validation.unknown_fields');
  }
}

/**
 * Compiles the validation rules of the config's pipelines (all of them, or `only`), loading each
 * pipeline's `validation.module` (relative to the config file's directory) for custom functions.
 * Throws ConfigError with FILE:LINE:COL for every rule that cannot compile. Pipelines without rules
 * get no validator.
 */
export async function validateRules(config: SynclineConfig, file?: string, only?: readonly string[], log?: Logger): Promise<Map<string, PipelineValidator>> {
  const source = configSource(config);
  const shownFile = file ?? source?.file ?? '<config>';
  const text = source && (file === undefined || file === source.file) ? source.text : undefined;
  const baseDir = dirname(file ?? source?.file ?? resolve('config.yaml'));
  const problems: ConfigProblem[] = [];
  const problem = (path: (string | number)[], message: string, atKey?: boolean) => problems.push(locateProblem(shownFile, text, path, message, atKey));
  const out = new Map<string, PipelineValidator>();

  for (const [name, p] of Object.entries(config.pipelines)) {
    if (only && only.length > 0 && !only.includes(name)) continue;
    if (!p.tables.some((t) => t.validate !== undefined)) continue;
    const moduleSpec = p.validation?.module;
    let functions: Record<string, unknown> | undefined;
    if (moduleSpec !== undefined) {
      const path = resolve(baseDir, moduleSpec);
      try {
        functions = { ...((await import(pathToFileURL(path).href)) as Record<string, unknown>) };
      } catch (err) {
        const code = (err as { code?: string }).code;
        const why = code === 'ERR_MODULE_NOT_FOUND' && (err as Error).message.includes(path) ? 'file not found' : (err as Error).message.split('\n')[0];
        problem(['pipelines', name, 'validation', 'module'], `cannot load validation module ${path}: ${why}`);
        continue;
      }
    }
    const tables = new Map<string, TableValidator>();
    p.tables.forEach((t, i) => {
      if (!t.validate) return;
      const r = compileTable(t.validate, {
        table: t.target ?? t.source,
        // Encrypted columns: rules read their plaintext (decrypted in memory), violations never show it.
        mask: [...(p.validation?.mask ?? []), ...(t.encrypt ?? []).map((c) => own(t.columns, c) ?? c)],
        columns: t.columns,
        hasModule: moduleSpec !== undefined,
        functions,
        moduleLabel: moduleSpec !== undefined ? `module ${moduleSpec}` : undefined,
        suggest: closest,
      });
      for (const pr of r.problems) problem(['pipelines', name, 'tables', i, 'validate', ...pr.path], pr.message, pr.atKey);
      if (r.validator) tables.set(t.source, r.validator);
    });
    out.set(name, new PipelineValidator(name, tables, log));
  }
  if (problems.length > 0) throw configError(shownFile, problems);
  return out;
}
