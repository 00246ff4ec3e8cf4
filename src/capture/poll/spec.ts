/**
 * Config of a polling source (the part every dialect shares): how often a pass runs, where the hash
 * mode keeps what it saw, and how each table is tracked. A dialect's spec (connectors/<system>/poll/)
 * adds its `type` and `connection` to these fields.
 */
import { z } from 'zod';

export const pollTableSpec = z
  .object({
    mode: z
      .enum(['timestamp', 'version', 'hash'])
      .default('hash')
      .describe(
        "How changes are found. timestamp: rows whose `column` (set on every write, e.g. updated_at) is later than the last pass's highest value minus `overlapMs`; never sees hard deletes. version: rows whose `column` (a number that grows with every write) is above the last pass's highest value minus `overlap`; never sees hard deletes. hash: every row's content hash compared with what the last pass saw, chunk by chunk of the key range (a chunk whose digest, computed by the database, is unchanged is not fetched): sees inserts, updates and deletes, at the cost of reading the whole table each pass.",
      ),
    column: z.string().min(1).optional().describe('timestamp and version: the tracking column (an index on it keeps a pass cheap).').meta({ examples: ['updated_at'] }),
    overlapMs: z
      .number()
      .int()
      .min(0)
      .default(5000)
      .describe('timestamp: each pass reads again the rows up to this long before the last watermark, so rows written in the same instant and transactions that committed after a pass had moved past their timestamp are seen. Make it longer than the longest write transaction plus the clock skew between the writers. Rows read again unchanged are not emitted twice (and the sink skips unchanged rows by hash).'),
    overlap: z.number().int().min(0).default(0).describe('version: how many version units below the watermark each pass reads again (for versions taken from a sequence by transactions that commit out of order).'),
    chunkSize: z.number().int().min(10).max(1_000_000).default(5000).describe('hash: rows per key-range chunk. Each pass asks the database for one digest per chunk and fetches the rows of changed chunks only; memory holds one chunk.'),
    query: z
      .string()
      .min(1)
      .optional()
      .describe("A SELECT polled instead of the table (the table's name in `tables[]` names its topic only). tables[].key must be given. A view needs no `query`: name it in tables[] with its key.")
      .meta({ examples: ['select id, email, updated_at from app.users where not deleted'] }),
  })
  .strict()
  .superRefine((t, ctx) => {
    if ((t.mode === 'timestamp' || t.mode === 'version') && !t.column) ctx.addIssue({ code: 'custom', path: ['column'], message: `mode ${t.mode} needs a tracking column` });
  })
  .describe('How one table is polled.');

export type PollTableConfig = z.infer<typeof pollTableSpec>;

/** The fields of every polling source's spec. */
export const pollSourceFields = {
  intervalMs: z.number().int().min(10).max(86_400_000).default(5000).describe('Realtime mode: the wait between the end of one pass and the start of the next.'),
  pageSize: z.number().int().min(1).max(100_000).default(5000).describe('Rows per query (keyset pages): a pass never holds more than a page and one hash chunk in memory.'),
  stateDir: z
    .string()
    .min(1)
    .default('.syncline/poll')
    .describe("Directory (relative to the working directory) where hash mode keeps the per-key content hashes of each chunk it saw, under <stateDir>/<stream id>/. The pass number, watermarks and the chunk list are in the capture offsets topic; only the per-key hashes are here. Lost or emptied (a new machine, a container without a volume): the tables in hash mode are read again as a snapshot whose end-of-snapshot sweep deletes on the target what is gone at the source: nothing is missed, it costs a full read."),
  tables: z
    .record(z.string(), pollTableSpec)
    .default({})
    .describe("Tracking per table, by its name as in tables[].source. A table not listed is polled in hash mode."),
  batchSize: z.number().int().min(1).max(100000).default(2000).describe('Changes per Kafka produce batch.'),
  lingerMs: z.number().int().min(0).max(10000).default(20).describe('How long capture waits to fill a batch before producing it.'),
};
