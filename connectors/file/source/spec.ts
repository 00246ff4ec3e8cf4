/** Config spec of the file source (`type: file` under a pipeline's `source`), registered in ./index.ts (ADR 0025). */
import { z } from 'zod';
import { declaredTableIssues } from '../../../src/capture/declared-tables.js';

export const fileTableSpec = z
  .object({
    table: z.string().min(1).describe('The pipeline table the files hold (its `source` name in `tables`, e.g. files.orders).').meta({ examples: ['files.orders'] }),
    glob: z
      .string()
      .min(1)
      .refine((g) => !g.startsWith('/') && !g.split('/').includes('..'), 'a pattern relative to source.dir, without ..')
      .describe('Files of the table, relative to source.dir: * (any name part), ** (any folders), ? (one character), {a,b} (either). Matched against the path with / separators.')
      .meta({ examples: ['orders/*.jsonl', 'exports/**/orders-*.csv'] }),
    format: z
      .enum(['jsonl', 'csv', 'parquet'])
      .describe('jsonl: one JSON object per line (blank lines skipped). csv: RFC 4180, a header row naming the columns, quoted fields may span lines, an empty field is NULL. parquet: read row group by row group with hyparquet.'),
    key: z.array(z.string().min(1)).min(1).describe('Key columns (each in columns): a row is identified by them across versions of a file; a row without them is dead-lettered.'),
    columns: z
      .record(z.string(), z.string().min(1))
      .refine((c) => Object.keys(c).length > 0, 'at least one column')
      .describe('The table\'s columns in order, each with its PostgreSQL type name (int4, int8, numeric(12,2), text, boolean, timestamptz, jsonb, bytea (base64), uuid, date, …): the change topic\'s schema and the value conversion follow them. Fields (JSON) or header columns (CSV) not listed are ignored; a listed one that is missing is NULL.')
      .meta({ examples: [{ id: 'int8', name: 'text', price: 'numeric(12,2)' }] }),
    delimiter: z.string().length(1).default(',').describe('csv: the field separator (one character).'),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.delimiter === '"' || t.delimiter === '\n' || t.delimiter === '\r') ctx.addIssue({ code: 'custom', path: ['delimiter'], message: 'the delimiter cannot be a quote or a line break' });
  });

export const fileSourceSpec = z
  .object({
    type: z.literal('file'),
    dir: z.string().min(1).describe('Directory the globs are taken from (a relative one from the working directory). It must exist.').meta({ examples: ['/var/lib/exports'] }),
    tables: z.array(fileTableSpec).min(1).describe('One entry per table: which files, their format, key and columns.'),
    stableMs: z
      .number()
      .int()
      .min(20)
      .max(86_400_000)
      .default(2000)
      .describe('A file modified less than this long ago is still being written: it is left for a later pass (and read only up to the size it had when found stable). At least 20 ms: file systems set mtime from a coarse clock, and a file is known unchanged by its size, mtime and inode.'),
    intervalMs: z.number().int().min(10).max(86_400_000).default(5000).describe('Realtime mode: the wait between the end of one pass over the files and the start of the next.'),
    stateDir: z
      .string()
      .min(1)
      .default('.syncline/poll')
      .describe('Directory where the source keeps, per file read, its rows\' key → content hash (one file per file version, under <stateDir>/<stream id>/<table>/). Lost: those tables are read again as a snapshot (its end-of-snapshot sweep deletes what is gone).'),
    batchSize: z.number().int().min(1).max(100000).default(2000).describe('Changes per Kafka produce batch.'),
    lingerMs: z.number().int().min(0).max(10000).default(20).describe('How long capture waits to fill a batch before producing it.'),
  })
  .strict()
  .superRefine((c, ctx) => {
    declaredTableIssues(c.tables, 'tables', 'table', ctx);
  })
  .describe('A directory of JSON Lines, CSV or Parquet files polled each pass: new and changed files found by size, time and content hash, their rows compared by key with the file\'s previous version (inserts, updates, deletes; a deleted file deletes its rows); bad lines dead-lettered with file:line (connectors/file/README.md, ADR 0025).');

export type FileSourceConfig = z.infer<typeof fileSourceSpec>;
export type FileTable = z.infer<typeof fileTableSpec>;
