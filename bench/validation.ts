/**
 * Validation benchmark: validations per second of a 10-field record against 10 rules, on one thread
 * (one core), through the same compiled TableValidator the processor calls.
 *
 * The rules (one of each kind that matters for speed):
 *   id         required, type integer              (2 rules)
 *   email      format email (ajv-formats)
 *   country    pattern ^[A-Z]{2}$
 *   balance    min 0        (numeric(12,2): exact decimal string)
 *   age        max 150
 *   status     enum [active, vip, closed]
 *   name       maxLength 100
 *   created_at min -P10Y    (relative to the validation time)
 *   rule       shipped_at >= created_at            (cross-field)
 * The 10th field, `note`, has no rule. Records come from a pool of 1,024 distinct rows (so the JIT
 * does not specialise on one record); a second measurement uses a pool where 1 in 10 is invalid.
 *
 * Baselines, measured in the same process and run: a hand-written JavaScript function doing the
 * same checks (what compiled rules cannot beat by much), and JSON.stringify of the record (the cost
 * of merely touching every field). Each figure: warm-up, then `runs` timed runs; median, min, max.
 */
import { fullFormats } from 'ajv-formats/dist/formats.js';
import type { Row } from '../src/core/envelope.js';
import { compileTable, type TableValidator } from '../src/process/validation/compile.js';

export const TARGET_PER_SEC = 300_000;

export const BENCH_RULES = {
  fields: {
    id: { required: true, type: 'integer' as const },
    email: { format: 'email' as const },
    country: { pattern: '^[A-Z]{2}$' },
    balance: { min: 0 },
    age: { max: 150 },
    status: { enum: ['active', 'vip', 'closed'] },
    name: { maxLength: 100 },
    created_at: { min: '-P10Y' },
  },
  rules: [{ name: 'shipped_after_created', check: 'shipped_at >= created_at', message: 'shipped before it was created' }],
};

const COLUMN_TYPES: Record<string, string> = {
  id: 'int8', email: 'text', name: 'text', status: 'text', balance: 'numeric(12,2)', age: 'int4',
  country: 'bpchar(2)', created_at: 'timestamptz', shipped_at: 'timestamptz', note: 'text',
};

const COUNTRIES = ['FR', 'NO', 'PT', 'AT', 'FI', 'DE', 'US', 'JP'];
const STATUSES = ['active', 'vip', 'closed'];

function iso(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000Z'); // canonical timestamptz: 6 fractional digits
}

/** 1,024 distinct records; every `invalidEvery`-th breaks 1 to 3 rules. */
export function recordPool(nowMs: number, invalidEvery = 0, size = 1024): Row[] {
  const pool: Row[] = [];
  for (let i = 0; i < size; i++) {
    const created = nowMs - (i % 3000) * 86_400_000 - (i % 86_400) * 1000 - 0.123;
    const r: Row = {
      id: BigInt(100_000 + i),
      email: `user${i}@example${i % 7}.com`,
      name: `User number ${i}`,
      status: STATUSES[i % 3]!,
      balance: `${(i * 37) % 100_000}.${String(i % 100).padStart(2, '0')}`,
      age: 18 + (i % 80),
      country: COUNTRIES[i % COUNTRIES.length]!,
      created_at: iso(created),
      shipped_at: iso(created + 3_600_000 * (1 + (i % 48))),
      note: i % 2 ? null : `note ${i}`,
    };
    if (invalidEvery > 0 && i % invalidEvery === 0) {
      if (i % 3 === 0) r.email = `user${i}-at-example.com`;
      if (i % 3 === 1) r.balance = '-5.00';
      if (i % 3 === 2) {
        r.status = 'gone';
        r.shipped_at = iso(nowMs - 20 * 365 * 86_400_000);
      }
    }
    pool.push(r);
  }
  return pool;
}

export function benchValidator(): TableValidator {
  const { validator, problems } = compileTable(BENCH_RULES, { table: 'bench.users', hasModule: false });
  if (!validator) throw new Error(`bench rules do not compile: ${JSON.stringify(problems)}`);
  return validator;
}

const EMAIL = fullFormats.email as RegExp;
const COUNTRY = /^[A-Z]{2}$/u;
const STATUS_SET = new Set(STATUSES);
const TEN_YEARS_MS = 3652.5 * 86_400_000;

/** The same checks written by hand (numbers via Number(), dates via Date.parse: less exact, faster). */
export function handWritten(r: Row): string[] | undefined {
  let errors: string[] | undefined;
  const bad = (m: string) => (errors ??= []).push(m);
  const id = r.id;
  if (id === null || id === undefined) bad('id required');
  else if (typeof id !== 'bigint' && !(typeof id === 'number' && Number.isInteger(id))) bad('id type');
  if (typeof r.email === 'string' && !EMAIL.test(r.email)) bad('email format');
  if (typeof r.country === 'string' && !COUNTRY.test(r.country)) bad('country pattern');
  if (r.balance !== null && !(Number(r.balance) >= 0)) bad('balance min');
  if (typeof r.age === 'number' && !(r.age <= 150)) bad('age max');
  if (typeof r.status === 'string' && !STATUS_SET.has(r.status)) bad('status enum');
  if (typeof r.name === 'string' && r.name.length > 100) bad('name maxLength');
  const created = typeof r.created_at === 'string' ? Date.parse(r.created_at) : NaN;
  if (typeof r.created_at === 'string' && !(created >= Date.now() - TEN_YEARS_MS)) bad('created_at min');
  if (typeof r.shipped_at === 'string' && typeof r.created_at === 'string' && !(r.shipped_at >= r.created_at)) bad('shipped_after_created');
  return errors;
}

const jsonSafe = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v);

export interface Figure {
  /** Operations per second of each timed run. */
  runs: number[];
  median: number;
  min: number;
  max: number;
  /** (max − min) / median, in percent. */
  spreadPct: number;
}

export interface ValidationBenchResult {
  iterations: number;
  runs: number;
  ruleCount: number;
  fieldCount: number;
  /** Compiled rules, valid records. The headline figure. */
  validator: Figure;
  /** Compiled rules, 1 record in 10 invalid (violations built). */
  validatorMixed: Figure;
  handWritten: Figure;
  jsonStringify: Figure;
  /** validator.median / handWritten.median. */
  ratioToHandWritten: number;
  /** validator.median / jsonStringify.median. */
  ratioToStringify: number;
  target: number;
  met: boolean;
  invalidSeen: number;
}

function figure(runs: number[]): Figure {
  const sorted = [...runs].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const min = sorted[0]!;
  const max = sorted[sorted.length - 1]!;
  return { runs, median, min, max, spreadPct: median > 0 ? ((max - min) / median) * 100 : 0 };
}

let sink = 0; // keeps results alive so nothing is optimised away

function timeLoop(iterations: number, pool: Row[], fn: (r: Row) => unknown): number {
  const mask = pool.length - 1;
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    if (fn(pool[i & mask]!) !== undefined) sink++;
  }
  const ns = Number(process.hrtime.bigint() - start);
  return iterations / (ns / 1e9);
}

/** Interleaves the measurements run by run, so that drift in machine load hits all of them alike. */
export function runValidationBench(opts: { iterations?: number; runs?: number; warmupIterations?: number } = {}): ValidationBenchResult {
  const iterations = opts.iterations ?? 500_000;
  const runs = Math.max(1, opts.runs ?? 7);
  const warmup = opts.warmupIterations ?? Math.min(iterations, 200_000);
  const v = benchValidator();
  const now = Date.now();
  const valid = recordPool(now);
  const mixed = recordPool(now, 10);
  const check = (r: Row) => v.validate(r, COLUMN_TYPES);
  let invalidSeen = 0;
  for (const r of mixed) if (v.validate(r, COLUMN_TYPES)?.violations.length) invalidSeen++;
  for (const r of valid) {
    const out = v.validate(r, COLUMN_TYPES);
    if (out) throw new Error(`a benchmark record meant to be valid is not: ${JSON.stringify(out.violations)}`);
    if (handWritten(r)) throw new Error(`the hand-written baseline refuses a valid record: ${handWritten(r)!.join(', ')}`);
  }

  const cases: [string, Row[], (r: Row) => unknown][] = [
    ['validator', valid, check],
    ['validatorMixed', mixed, check],
    ['handWritten', valid, handWritten],
    ['jsonStringify', valid, (r) => (JSON.stringify(r, jsonSafe).length > 0 ? undefined : 1)],
  ];
  for (const [, pool, fn] of cases) timeLoop(warmup, pool, fn);
  const results = new Map<string, number[]>(cases.map(([n]) => [n, []]));
  for (let run = 0; run < runs; run++) for (const [name, pool, fn] of cases) results.get(name)!.push(timeLoop(iterations, pool, fn));

  const f = (n: string) => figure(results.get(n)!);
  const validator = f('validator');
  const hand = f('handWritten');
  const stringify = f('jsonStringify');
  return {
    iterations,
    runs,
    ruleCount: v.ruleCount,
    fieldCount: Object.keys(valid[0]!).length,
    validator,
    validatorMixed: f('validatorMixed'),
    handWritten: hand,
    jsonStringify: stringify,
    ratioToHandWritten: validator.median / hand.median,
    ratioToStringify: validator.median / stringify.median,
    target: TARGET_PER_SEC,
    met: validator.median >= TARGET_PER_SEC,
    invalidSeen: invalidSeen + (sink < 0 ? 1 : 0),
  };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** Markdown table of the figures (also printed to the console). */
export function validationTable(r: ValidationBenchResult): string {
  const row = (name: string, f: Figure, note: string) => `| ${name} | ${fmt(f.median)} | ${fmt(f.min)} – ${fmt(f.max)} | ±${(f.spreadPct / 2).toFixed(1)}% | ${note} |`;
  return [
    '| Measurement | Median validations/s | Min – max | Spread | Note |',
    '|---|---:|---:|---:|---|',
    row('compiled rules, valid records', r.validator, `**${r.met ? 'meets' : 'does NOT meet'} ${fmt(r.target)}/s**`),
    row('compiled rules, 1 in 10 invalid', r.validatorMixed, 'violations built and returned'),
    row('baseline: hand-written JS checks', r.handWritten, `compiled rules run at ${(r.ratioToHandWritten * 100).toFixed(0)}% of this`),
    row('baseline: JSON.stringify(record)', r.jsonStringify, `compiled rules run at ${r.ratioToStringify.toFixed(2)}× this`),
  ].join('\n');
}
