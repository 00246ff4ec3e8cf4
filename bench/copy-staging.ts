/**
 * Issue 26's first initial-load lever, measured on its own: the PostgreSQL target written by
 * (a) what the sink does today, one prepared `INSERT … SELECT * FROM unnest($1::t[], …) ON CONFLICT
 * DO UPDATE` per batch (connectors/postgres/sink.ts upsertStatements, the same columnArrayLiteral
 * parameters), against (b) `COPY stage FROM STDIN` (text format) into a temporary staging table and
 * one `INSERT INTO t SELECT * FROM stage ON CONFLICT DO UPDATE` per batch (then the stage emptied).
 * Same rows (the narrow and wide shapes of bench/common.ts, as the sink's text parameters), same
 * batch size, an empty target each time (an initial load), one transaction per batch like the sink.
 * Figures: rows/s, and CPU µs per row of this process (building the parameters / COPY lines and the
 * protocol) and of the PostgreSQL backend serving it (/proc/<pid>/stat of pg_backend_pid()).
 *
 *   npx tsx bench/copy-staging.ts [--rows 200000] [--wide-rows 50000] [--batch 1000] [--repeat 3]
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { columnArrayLiteral } from '../connectors/postgres/pgtypes.js';
import { tableDdl, type Shape } from './common.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROWS = arg('rows', 200_000);
const WIDE = arg('wide-rows', 50_000);
const BATCH = arg('batch', 1000);
const REPEAT = arg('repeat', 3);
const TICK = 100; // USER_HZ: /proc stat times are in clock ticks

/** The rows as the sink's parameters: text for every column (toPgParamUntyped of the decoded values). */
function rowsOf(shape: Shape, n: number): string[][] {
  const now = new Date().toISOString();
  const out: string[][] = [];
  for (let g = 1; g <= n; g++) {
    const r = [String(g), `name ${g}`, String((g % 100000) + 0.25), now, '1'];
    if (shape === 'wide') for (let i = 0; i < 10; i++) r.push(String(g % (1000 + i)), md5ish(g + i).repeat(3));
    out.push(r);
  }
  return out;
}
function md5ish(x: number): string {
  return (x * 2654435761 >>> 0).toString(16).padStart(8, '0').repeat(4);
}
function columns(shape: Shape): string[] {
  const c = ['id', 'name', 'amount', 'updated_at', 'v'];
  if (shape === 'wide') for (let i = 0; i < 10; i++) c.push(`i${i}`, `t${i}`);
  return c;
}
function casts(shape: Shape): string[] {
  const c = ['bigint', 'text', 'numeric', 'timestamptz', 'int'];
  if (shape === 'wide') for (let i = 0; i < 10; i++) c.push('int', 'text');
  return c;
}

/** COPY text format: tab-separated, `\N` for NULL, backslash, tab, newline and carriage return escaped. */
const COPY_ESCAPE = /[\\\t\n\r]/g;
const COPY_CHARS: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
function copyText(rows: string[][]): string {
  let s = '';
  for (const r of rows) {
    for (let j = 0; j < r.length; j++) {
      const v = r[j];
      if (j > 0) s += '\t';
      s += v === null || v === undefined ? '\\N' : COPY_ESCAPE.test(v) ? ((COPY_ESCAPE.lastIndex = 0), v.replace(COPY_ESCAPE, (ch) => COPY_CHARS[ch]!)) : v;
    }
    s += '\n';
  }
  return s;
}

function backendTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const parts = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(parts[11]) + Number(parts[12]); // utime, stime (fields 14, 15)
}

interface Result { rowsPerS: number; clientUs: number; backendUs: number }

async function run(method: 'unnest' | 'copy', shape: Shape, rows: string[][]): Promise<Result> {
  const c = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'postgres' });
  await c.connect();
  const t = `bench_copy_${shape}`;
  await c.query(`drop table if exists ${t}`);
  await c.query(tableDdl(t, shape));
  const cols = columns(shape);
  const set = cols.filter((x) => x !== 'id').map((x) => `${x} = EXCLUDED.${x}`).join(', ');
  const conflict = `ON CONFLICT (id) DO UPDATE SET ${set}`;
  const unnestSql = `INSERT INTO ${t} (${cols.join(',')}) SELECT * FROM unnest(${casts(shape).map((x, i) => `$${i + 1}::${x}[]`).join(',')}) ${conflict}`;
  if (method === 'copy') await c.query(`create temp table stage_${shape} (like ${t}) on commit delete rows`);
  const pid = (await c.query('select pg_backend_pid() as p')).rows[0].p as number;
  const b0 = backendTicks(pid);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < rows.length; i += BATCH) {
    const part = rows.slice(i, i + BATCH);
    await c.query('BEGIN');
    if (method === 'unnest') {
      await c.query({ name: `unnest_${shape}`, text: unnestSql, values: cols.map((_, j) => columnArrayLiteral(part, j)) });
    } else {
      await new Promise<void>((resolve, reject) => {
        const s = c.query(copyFrom(`COPY stage_${shape} (${cols.join(',')}) FROM STDIN`));
        s.on('error', reject);
        s.on('finish', () => resolve());
        s.end(copyText(part));
      });
      await c.query({ name: `merge_${shape}`, text: `INSERT INTO ${t} (${cols.join(',')}) SELECT ${cols.join(',')} FROM stage_${shape} ${conflict}` });
    }
    await c.query('COMMIT');
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const b1 = backendTicks(pid);
  const n = Number((await c.query(`select count(*) as n from ${t}`)).rows[0].n);
  if (n !== rows.length) throw new Error(`${method} ${shape}: ${n} rows on the target, ${rows.length} written`);
  await c.query(`drop table ${t}`);
  await c.end();
  return { rowsPerS: rows.length / wall, clientUs: ((cpu.user + cpu.system) / rows.length), backendUs: ((b1 - b0) * (1e6 / TICK)) / rows.length };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  console.log(`| rows | method | rows/s | client µs/row | PostgreSQL backend µs/row | client + backend µs/row |`);
  console.log(`|---|---|---|---|---|---|`);
  for (const [shape, n] of [['narrow', ROWS], ['wide', WIDE]] as const) {
    if (n <= 0) continue;
    const rows = rowsOf(shape, n);
    const res: Record<string, Result[]> = { unnest: [], copy: [] };
    for (let i = 0; i < REPEAT; i++) for (const m of ['unnest', 'copy'] as const) res[m]!.push(await run(m, shape, rows));
    const med = (m: string) => ({ rowsPerS: median(res[m]!.map((r) => r.rowsPerS)), clientUs: median(res[m]!.map((r) => r.clientUs)), backendUs: median(res[m]!.map((r) => r.backendUs)) });
    const u = med('unnest');
    const c = med('copy');
    for (const [name, r] of [['unnest upsert (today)', u], ['COPY to stage + merge', c]] as const) {
      console.log(`| ${n.toLocaleString('en-US')} ${shape} | ${name} | ${Math.round(r.rowsPerS).toLocaleString('en-US')} | ${r.clientUs.toFixed(1)} | ${r.backendUs.toFixed(1)} | ${(r.clientUs + r.backendUs).toFixed(1)} |`);
    }
    console.log(`| | COPY ÷ unnest | ${(c.rowsPerS / u.rowsPerS).toFixed(2)}× | ${(c.clientUs / u.clientUs).toFixed(2)}× | ${(c.backendUs / u.backendUs).toFixed(2)}× | ${((c.clientUs + c.backendUs) / (u.clientUs + u.backendUs)).toFixed(2)}× |`);
  }
  console.log(`\nbatch ${BATCH} rows, median of ${REPEAT}, one connection, one transaction per batch.`);
}

await main();
