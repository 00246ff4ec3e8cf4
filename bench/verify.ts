/**
 * `syncline verify`'s range scan (src/verify/verify.ts over connectors/postgres/verify.ts) next to a
 * full `md5(string_agg(md5(t::text), '' order by id))` of both tables, on two identical PostgreSQL
 * tables of N rows (the scan alone: in sync, so nothing is re-checked and no pipeline is needed).
 *
 *   npm run bench -- --only verify [--verify-rows N (default 1,000,000)] [--repeat K]
 *   npx tsx bench/verify.ts [--rows N] [--repeat K]      (prints only)
 *
 * Rate: source rows / wall time of the whole comparison (both sides; verify queries both sides at
 * once per range, md5(string_agg) is run on both tables one after the other, as a script would).
 */
import { PG, createDb, dropDb, figure, fmt, fmtFigure, runBenchCli, sql, uid, type Figure } from './common.js';
import { PgVerifySide } from '../connectors/postgres/verify.js';
import { verifyTable } from '../src/verify/verify.js';

export interface VerifyBenchResult {
  rows: number;
  repeat: number;
  verify: Figure;
  md5: Figure;
  ranges: number;
}

const DDL = `create table items (id bigint primary key, seq bigint not null, price numeric(12,2) not null, label text, at timestamptz not null)`;

export async function runVerifyBench(o: { rows: number; repeat: number; log?: (s: string) => void }): Promise<VerifyBenchResult> {
  const id = uid();
  const dbs = [`syncline_bench_${id}_vsrc`, `syncline_bench_${id}_vdst`];
  const verify: number[] = [];
  const md5: number[] = [];
  let ranges = 0;
  try {
    for (const db of dbs) {
      await createDb(db);
      await sql(db, DDL);
      await sql(db, `insert into items select g, g * 7, (g % 1000) / 100.0, 'row ' || g, timestamptz '2026-01-01 00:00:00Z' + g * interval '1 second' from generate_series(1, $1::int) g`, [o.rows]);
      await sql(db, 'vacuum analyze items');
    }
    for (let i = 0; i < o.repeat; i++) {
      const src = new PgVerifySide({ ...PG, database: dbs[0]! } as never, 'bench source');
      const dst = new PgVerifySide({ ...PG, database: dbs[1]! } as never, 'bench target');
      const t = { schema: 'public', table: 'items', key: ['id'], columns: ['id', 'seq', 'price', 'label', 'at'] };
      let started = Date.now();
      const r = await verifyTable({ name: 'public.items', source: t, target: t, skippedColumns: [] }, src, dst, { caughtUp: async () => undefined });
      verify.push((o.rows * 1000) / (Date.now() - started));
      ranges = r.ranges;
      if (r.diffs.length !== 0 || r.sourceRows !== o.rows) throw new Error(`verify bench: expected an in-sync pair of ${o.rows} rows, got ${r.sourceRows} rows and ${r.diffs.length} differences`);
      await Promise.all([src.close(), dst.close()]);
      started = Date.now();
      const sums: string[] = [];
      for (const db of dbs) sums.push((await sql(db, `select md5(string_agg(md5(t::text), '' order by id)) as m from items t`)).rows[0].m as string);
      md5.push((o.rows * 1000) / (Date.now() - started));
      if (sums[0] !== sums[1]) throw new Error('verify bench: md5(string_agg) differs between two identical tables');
      o.log?.(`  repeat ${i + 1}: verify ${fmt(verify.at(-1)!)} rows/s (${ranges} ranges), md5(string_agg) of both ${fmt(md5.at(-1)!)} rows/s`);
    }
  } finally {
    for (const db of dbs) await dropDb(db).catch(() => undefined);
  }
  return { rows: o.rows, repeat: o.repeat, verify: figure(verify), md5: figure(md5), ranges };
}

export function verifyBenchTable(r: VerifyBenchResult): string {
  return [
    '| what (both tables compared) | rows/s, median (min – max) |',
    '| --- | --- |',
    `| \`syncline verify\` scan: ${fmt(r.ranges)} key ranges of 10,000 rows, count + hash sum per range on each side | ${fmtFigure(r.verify)} |`,
    `| \`md5(string_agg(md5(t::text), '' order by id))\` of each table | ${fmtFigure(r.md5)} |`,
  ].join('\n');
}

export function verifyBenchSection(r: VerifyBenchResult, m: { nproc: number; cpu: string; node: string; date: string }, command: string): string {
  return [
    '## Verification: `syncline verify` against a full md5 of both tables',
    '',
    `Two identical PostgreSQL tables of ${fmt(r.rows)} rows (bigint key, bigint, numeric(12,2), text, timestamptz), in two databases of the`,
    'same server. Rate = rows / wall time of the whole comparison, median of ' + `${r.repeat} repeat${r.repeat === 1 ? '' : 's'}.`,
    'The verify scan (src/verify/, ADR 0036) walks the key in ranges (`OFFSET 9999 LIMIT 1` from the last boundary) and asks',
    'both sides at once for `count(*)` and the sum of 60-bit md5 prefixes of each row\'s canonical rendering; a range that',
    'differs would be bisected. The md5 baseline sorts and concatenates every row\'s md5 in one query per table: one answer,',
    'no location of a difference, and canonical renderings not applied (numeric 1.50 ≠ 1.5).',
    '',
    verifyBenchTable(r),
    '',
    `Machine: ${m.nproc} CPU${m.nproc === 1 ? '' : 's'} (\`nproc\`), ${m.cpu}, Node ${m.node}, PostgreSQL 15; measured ${m.date}.`,
    `Reproduce: \`npm run stack:up && ${command}\`.`,
  ].join('\n');
}

runBenchCli(import.meta.url, (arg) => runVerifyBench({ rows: Number(arg('rows', '1000000')), repeat: Number(arg('repeat', '1')), log: (s) => console.log(s) }), verifyBenchTable);
