/**
 * Two-way sync on MariaDB: how the sink tags its writes and how the source reads the tag back.
 *
 * PostgreSQL records a replication origin name with each transaction; MariaDB records only numbers:
 * every transaction's GTID is domain-server-seq, and the server id is the session's `server_id`
 * (the binlog event header carries it too; @vlasky/zongji hands it over on the MariaDB GTID event).
 * So each origin name the sink is given (`<origin>:0` for its plain writes,
 * `republishOrigin(origin, over):0` for re-published rows) gets a server id of its own, the sink's
 * sessions run `SET SESSION server_id = <id>` (needs SUPER or BINLOG REPLAY), and the pairs are
 * written to the table `syncline_origins(server_id, origin)` in the sink's connection database
 * before the first tagged write. The source, meeting a transaction whose server id is not the
 * server's own, looks the id up there (its connection database, then the databases of its tables)
 * and reports `begin({ origin })` with the very name the sink was given, so the capture stage's
 * prefix matching (skipOrigins, decidedOrigins) works unchanged.
 *
 * server_id rather than gtid_domain_id: a session domain id would add GTID domains to the server's
 * gtid_binlog_state for good (and to every replica's gtid_slave_pos); a server id leaves the GTID
 * sequence of the domain as it is. Ids are a hash of the name in 2^31..2^32-1 (probed forward on a
 * collision; the table is the truth, the hash only the first guess), away from the small ids servers
 * and replicas are given by hand. A real replica whose own server_id equals one of these ids would
 * ignore those transactions (replicate_same_server_id): keep replicas' ids below 2^31.
 */
import type mysql from 'mysql2/promise';
import { fatal } from '../../src/core/errors.js';
import { quoteIdent } from './ddl.js';
import { quoteString } from './types.js';

export const ORIGINS_TABLE = 'syncline_origins';
const FIRST = 0x80000000;
const PROBES = 64;

/** The first server id tried for an origin name: FNV-1a of its UTF-8 bytes, in 2^31..2^32-1. */
export function originServerId(name: string, probe = 0): number {
  let h = 2166136261;
  for (const ch of Buffer.from(name, 'utf8')) {
    h ^= ch;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return FIRST + (((h & 0x7fffffff) + probe) % 0x80000000);
}

type Query = (sql: string) => Promise<unknown>;

const createSql = (db: string) =>
  `CREATE TABLE IF NOT EXISTS ${quoteIdent(db)}.${ORIGINS_TABLE} (server_id INT UNSIGNED NOT NULL PRIMARY KEY, origin VARCHAR(512) NOT NULL, created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), UNIQUE KEY origin (origin)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`;

/**
 * The server id of origin `name` in database `db`: the one registered, else the first free id of its
 * probe sequence (registered now, committed before the caller tags anything with it). `q` runs one
 * statement in autocommit mode on an untagged session and returns its rows.
 */
export async function registerOrigin(q: Query, db: string, name: string, serverOwnId: number): Promise<number> {
  const t = `${quoteIdent(db)}.${ORIGINS_TABLE}`;
  await q(createSql(db));
  const text = (v: unknown) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
  for (let probe = 0; probe < PROBES; probe++) {
    const known = (await q(`SELECT server_id FROM ${t} WHERE origin = ${quoteString(name)}`)) as Record<string, unknown>[];
    if (known[0]) return Number(text(known[0].server_id));
    const id = originServerId(name, probe);
    if (id === serverOwnId) continue;
    await q(`INSERT IGNORE INTO ${t} (server_id, origin) VALUES (${id}, ${quoteString(name)})`);
  }
  throw fatal('SINK_ORIGIN_IDS', `no free server id for origin ${name} in ${db}.${ORIGINS_TABLE} after ${PROBES} tries`);
}

/**
 * The source's side: server id → origin name, read from `syncline_origins` in the given databases
 * (first found wins). Names once found are kept; an id found nowhere is asked again after 5 s (the
 * table may be created later by a sink that starts after this source).
 */
export class OriginNames {
  private readonly known = new Map<number, string>();
  private readonly missing = new Map<number, number>();

  constructor(
    private readonly conn: () => mysql.Connection,
    private readonly databases: () => string[],
  ) {}

  async name(serverId: number): Promise<string | undefined> {
    const k = this.known.get(serverId);
    if (k !== undefined) return k;
    const miss = this.missing.get(serverId);
    if (miss !== undefined && Date.now() - miss < 5000) return undefined;
    for (const db of new Set(this.databases())) {
      try {
        const [rows] = await this.conn().query<mysql.RowDataPacket[]>(`SELECT origin FROM ${quoteIdent(db)}.${ORIGINS_TABLE} WHERE server_id = ${Number(serverId)}`);
        if (rows[0]) {
          const name = String(rows[0].origin);
          this.known.set(serverId, name);
          this.missing.delete(serverId);
          return name;
        }
      } catch (err) {
        if ((err as { errno?: number }).errno === 1146) continue; // no such table in that database
        throw err;
      }
    }
    this.missing.set(serverId, Date.now());
    return undefined;
  }
}
