/** Config spec of the file target (registered in ./index.ts). */
import { z } from 'zod';
import { retryOverrideSpec } from '../../src/core/config/schema.js';

export const fileSinkSpec = z
  .object({
    type: z.literal('file'),
    dir: z
      .string()
      .min(1)
      .describe('Directory the files are written under: one folder per table (<schema>.<table>), in it date=YYYY-MM-DD folders and the table\'s _manifest.jsonl (connectors/file/README.md). Created when missing. One sink process per directory.')
      .meta({ examples: ['/var/lib/syncline/out'] }),
    format: z.enum(['jsonl', 'csv', 'parquet']).default('jsonl').describe('File format: JSON Lines, CSV (RFC 4180, header row, CRLF) or Parquet (schema from the table\'s column types).'),
    partitionBy: z
      .enum(['commit-date', 'none'])
      .default('commit-date')
      .describe("commit-date: a folder date=YYYY-MM-DD per UTC day of the source commit time (a change redelivered lands in the same folder); none: the table folder holds the files."),
    rollBytes: z
      .number()
      .int()
      .min(1024)
      .max(2 ** 31)
      .default(64 * 1024 * 1024)
      .describe('A file is finished once its rows reach about this many bytes (the rows as held in memory before encoding; the encoded file is usually smaller, Parquet much smaller).'),
    rollMs: z
      .number()
      .int()
      .min(10)
      .max(60_000)
      .default(5000)
      .describe(
        'A file is finished at the latest this long after its first row. A batch counts as applied (and its Kafka offsets are committed) only once every file holding its rows is finished and in the manifest, so this is also the longest a batch waits. Keep it well below the consumer session timeout.',
      ),
    lingerMs: z
      .number()
      .int()
      .min(0)
      .max(60_000)
      .default(20)
      .describe(
        'A file is finished once no batch has added rows to it for this long (group commit: batches of other partitions arriving meanwhile share the file). Larger: fewer, larger files while changes flow; each partition waits this long per batch. rollMs caps it.',
      ),
    opColumn: z.string().min(1).default('op').describe('Column holding the operation: c (insert or snapshot row), u (update), d (delete: the key columns only), t (truncate: no key).'),
    positionColumn: z.string().min(1).default('_position').describe("Column holding the change's commit position (source order; unique per key with the key)."),
    keyColumn: z.string().min(1).default('_key').describe('Column holding the key as a JSON array of the key values in key column order (what deduplication and downstream readers key on).'),
    timeColumn: z.string().min(1).default('_ts').describe('Column holding the source commit time, ISO 8601 UTC with milliseconds.'),
    retry: retryOverrideSpec.optional().describe('Retry policy of file writes (a full disk, an I/O error); overrides the pipeline and default policy option by option.'),
  })
  .strict()
  .describe(
    'File target: each change appended as a row (deletes as rows with op d) to JSON Lines, CSV or Parquet files, one folder per table, by commit date, finished (temporary name, fsync, rename, manifest line) before a batch counts as applied; exactly once across crashes (connectors/file/README.md). Conflict strategies other than source-wins are refused: files are a log, not rows to compare with.',
  );

export type FileSinkConfig = z.infer<typeof fileSinkSpec>;
