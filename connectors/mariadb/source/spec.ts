/** Config spec of the MariaDB/MySQL source connector (registered in ./index.ts). */
import { z } from 'zod';

export { mariadbConnectionSpec, type MariadbConnection } from '../connection.js';
import { mariadbConnectionSpec } from '../connection.js';

export const mariadbSourceSpec = z
  .object({
    type: z.literal('mariadb'),
    connection: mariadbConnectionSpec,
    serverId: z
      .number()
      .int()
      .min(1)
      .max(4294967295)
      .optional()
      .describe('Server id this reader registers with as a replica. Must differ from the server\'s own server_id, every real replica\'s and every other pipeline\'s (the server ends an older binlog reader with the same id). Default: derived from the pipeline name (a hash in 100000..4294967295).'),
    snapshot: z.enum(['initial', 'never']).default('initial').describe('initial: copy every table once from a consistent snapshot (START TRANSACTION WITH CONSISTENT SNAPSHOT, no locks), then stream the binlog from that snapshot\'s position; never: stream only, from the binlog\'s current end.'),
    heartbeatMs: z.number().int().min(100).default(10000).describe('How often an idle stream\'s acknowledged position is advanced to what the server has sent (transactions of other tables), and stored.'),
    batchSize: z.number().int().min(1).max(100000).default(2000).describe('Changes per Kafka produce batch.'),
    lingerMs: z.number().int().min(0).max(10000).default(20).describe('How long capture waits to fill a batch before producing it.'),
    standbyPollMs: z.number().int().min(100).max(60000).default(1000).describe('Standby capture (several capture processes for one pipeline): the one holding the pipeline\'s user lock (GET_LOCK) on the source server captures; the others try to take it this often (ms), and the one holding it checks its lock connection this often. A killed holder\'s lock is free once the server sees its connection gone.'),
  })
  .strict()
  .describe('MariaDB/MySQL source read from the row-based binary log (binlog_format=ROW, binlog_row_image=FULL).');

export type MariadbSourceConfig = z.infer<typeof mariadbSourceSpec>;

/** The default replica server id of a pipeline: a stable hash of its name, away from small hand-picked ids. */
export function defaultServerId(pipeline: string): number {
  let h = 2166136261;
  for (const ch of Buffer.from(pipeline, 'utf8')) {
    h ^= ch;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return 100000 + (h % (4294967295 - 100000));
}
